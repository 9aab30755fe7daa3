"""The in-process Hugging Face engine: batched sampling and log-prob scoring of chat prompts.

Both functions take `resume_dir`: finished batches are logged there (mipo.io.BatchLog) and skipped on restart,
so a killed stage loses at most one batch and a resumed run gives exactly the same outputs.
"""
from __future__ import annotations

import torch
from tqdm.auto import tqdm

from .io import BatchLog
from .tasks.base import Messages


def prompt_ids(tok, prompts: list[Messages]) -> list[list[int]]:
    out = tok.apply_chat_template(prompts, add_generation_prompt=True, tokenize=True, return_dict=False)
    return [list(x) for x in out]


def _model_id(model) -> str:
    return str(getattr(model, "name_or_path", "") or getattr(model.config, "_name_or_path", ""))


@torch.inference_mode()
def sample(model, tok, prompts: list[Messages], *, temperature: float, top_p: float, max_new_tokens: int,
           batch_size: int, seed: int, desc: str = "sampling", resume_dir=None) -> list[str]:
    """One response per prompt, in input order.

    Prompts are sorted by length so a batch holds similar lengths (less padding), left-padded, and each batch
    is seeded from (seed, batch index): the output depends on nothing but the inputs and settings.
    """
    ids = prompt_ids(tok, prompts)
    order = sorted(range(len(ids)), key=lambda i: (-len(ids[i]), i))
    batches = [order[s:s + batch_size] for s in range(0, len(order), batch_size)]
    greedy = temperature <= 0
    log = BatchLog(resume_dir, {"op": "sample", "ids": ids, "t": temperature, "p": top_p, "n": max_new_tokens,
                                "bs": batch_size, "seed": seed, "model": _model_id(model),
                                "adapters": _adapters_active(model)})
    done = log.load()
    out: list[str] = [""] * len(ids)
    pad = tok.pad_token_id
    with tqdm(total=len(ids), desc=desc, unit="prompt") as bar:
        for b, idx in enumerate(batches):
            if b not in done:
                width = max(len(ids[i]) for i in idx)
                input_ids = torch.full((len(idx), width), pad, dtype=torch.long)
                mask = torch.zeros((len(idx), width), dtype=torch.long)
                for r, i in enumerate(idx):
                    input_ids[r, width - len(ids[i]):] = torch.tensor(ids[i])
                    mask[r, width - len(ids[i]):] = 1
                torch.manual_seed(seed * 100_003 + b)
                gen = model.generate(
                    input_ids=input_ids.to(model.device), attention_mask=mask.to(model.device),
                    do_sample=not greedy, temperature=None if greedy else temperature,
                    top_p=None if greedy else top_p, top_k=None, max_new_tokens=max_new_tokens, pad_token_id=pad)
                done[b] = [tok.decode(gen[r, width:], skip_special_tokens=True).strip() for r in range(len(idx))]
                log.append(b, done[b])
            for i, text in zip(idx, done[b]):
                out[i] = text
            bar.update(len(idx))
    return out


@torch.inference_mode()
def logprobs(model, tok, prompts: list[Messages], responses: list[str], batch_size: int = 8,
             resume_dir=None) -> list[float]:
    """Sum of log p(response tokens + end-of-turn | prompt) under `model`, one float per (prompt, response)."""
    eos = tok.eos_token_id
    seqs = [(p, tok(r, add_special_tokens=False)["input_ids"] + [eos]) for p, r in zip(prompt_ids(tok, prompts), responses)]
    order = sorted(range(len(seqs)), key=lambda i: (-sum(map(len, seqs[i])), i))
    batches = [order[s:s + batch_size] for s in range(0, len(order), batch_size)]
    log = BatchLog(resume_dir, {"op": "logprobs", "seqs": seqs, "bs": batch_size, "model": _model_id(model),
                                "adapters": _adapters_active(model)})
    done = log.load()
    out = [0.0] * len(seqs)
    for b, idx in enumerate(batches):
        if b not in done:
            width = max(sum(map(len, seqs[i])) for i in idx)
            input_ids = torch.full((len(idx), width), tok.pad_token_id, dtype=torch.long)
            labels = torch.full((len(idx), width), -100, dtype=torch.long)
            mask = torch.zeros((len(idx), width), dtype=torch.long)
            for r, i in enumerate(idx):
                p, y = seqs[i]
                input_ids[r, :len(p) + len(y)] = torch.tensor(p + y)
                labels[r, len(p):len(p) + len(y)] = torch.tensor(y)
                mask[r, :len(p) + len(y)] = 1
            logits = model(input_ids=input_ids.to(model.device), attention_mask=mask.to(model.device)).logits.float()
            labels = labels[:, 1:].to(logits.device)
            lp = -torch.nn.functional.cross_entropy(logits[:, :-1].transpose(1, 2), labels.clamp(min=0), reduction="none")
            done[b] = (lp * (labels != -100)).sum(-1).tolist()
            log.append(b, done[b])
        for i, v in zip(idx, done[b]):
            out[i] = v
    return out


def _adapters_active(model) -> bool:
    """Whether a PEFT adapter is on: the base and trained models are one object in the LoRA case."""
    from peft.tuners.tuners_utils import BaseTunerLayer

    return any(not m.disable_adapters for m in model.modules() if isinstance(m, BaseTunerLayer))
