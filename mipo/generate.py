"""The in-process Hugging Face engine: batched sampling and log-prob scoring of chat prompts."""
from __future__ import annotations

import torch
from tqdm.auto import tqdm

from .tasks.base import Messages


def _prompt_ids(tok, prompts: list[Messages]) -> list[list[int]]:
    return [tok.apply_chat_template(m, add_generation_prompt=True, tokenize=True, return_dict=False) for m in prompts]


def _as_ids(x) -> list[int]:
    return list(x["input_ids"]) if isinstance(x, dict) or hasattr(x, "keys") else list(x)


@torch.inference_mode()
def sample(model, tok, prompts: list[Messages], *, temperature: float, top_p: float, max_new_tokens: int,
           batch_size: int, seed: int, desc: str = "sampling") -> list[str]:
    """One response per prompt, in input order.

    Prompts are sorted by length so a batch holds similar lengths (less padding), left-padded, and each batch
    is seeded from (seed, batch index): the output does not depend on anything but the config.
    """
    ids = [_as_ids(x) for x in _prompt_ids(tok, prompts)]
    order = sorted(range(len(ids)), key=lambda i: (-len(ids[i]), i))
    out: list[str] = [""] * len(ids)
    pad = tok.pad_token_id
    greedy = temperature <= 0
    bar = tqdm(total=len(ids), desc=desc, unit="prompt")
    for b, start in enumerate(range(0, len(order), batch_size)):
        idx = order[start:start + batch_size]
        width = max(len(ids[i]) for i in idx)
        input_ids = torch.full((len(idx), width), pad, dtype=torch.long)
        mask = torch.zeros((len(idx), width), dtype=torch.long)
        for r, i in enumerate(idx):
            input_ids[r, width - len(ids[i]):] = torch.tensor(ids[i])
            mask[r, width - len(ids[i]):] = 1
        torch.manual_seed(seed * 100_003 + b)
        gen = model.generate(
            input_ids=input_ids.to(model.device), attention_mask=mask.to(model.device),
            do_sample=not greedy, temperature=None if greedy else temperature, top_p=None if greedy else top_p,
            top_k=None, max_new_tokens=max_new_tokens, pad_token_id=pad)
        for r, i in enumerate(idx):
            out[i] = tok.decode(gen[r, width:], skip_special_tokens=True).strip()
        bar.update(len(idx))
    bar.close()
    return out


@torch.inference_mode()
def logprobs(model, tok, prompts: list[Messages], responses: list[str], batch_size: int = 8) -> list[float]:
    """Sum of log p(response tokens + end-of-turn | prompt) under `model`, one float per (prompt, response)."""
    eos = tok.eos_token_id
    seqs = []
    for p, r in zip(_prompt_ids(tok, prompts), responses):
        p = _as_ids(p)
        seqs.append((p, tok(r, add_special_tokens=False)["input_ids"] + [eos]))
    order = sorted(range(len(seqs)), key=lambda i: -sum(map(len, seqs[i])))
    out = [0.0] * len(seqs)
    for start in range(0, len(order), batch_size):
        idx = order[start:start + batch_size]
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
        lp = -torch.nn.functional.cross_entropy(
            logits[:, :-1].transpose(1, 2), labels.clamp(min=0), reduction="none")
        lp = (lp * (labels != -100)).sum(-1)
        for r, i in enumerate(idx):
            out[i] = lp[r].item()
    return out
