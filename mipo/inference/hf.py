"""The in-process transformers engine: batched sampling and scoring (log-probs, option probabilities).

Work runs in batches of similar length (`run_batches`); each finished batch is logged to `resume_dir`
(mipo.io.BatchLog) under a key naming everything it depends on, the active adapter's weights included.
"""
from __future__ import annotations

import torch

from ..io import BatchLog, MipoError
from ..progress import Bar
from ..seeds import derive
from . import Messages, Sampling
from .adapters import weights_id
from .decode import decode
from .graphs import decode_fixed


def prompt_ids(tok, prompts: list[Messages]) -> list[list[int]]:
    out = tok.apply_chat_template(prompts, add_generation_prompt=True, tokenize=True, return_dict=False)
    return [list(x) for x in out]


def prompt_text(tok, prompts: list[Messages]) -> list[str]:
    """The text the model reads for each prompt: the chat template applied, generation prompt included."""
    return list(tok.apply_chat_template(prompts, add_generation_prompt=True, tokenize=False))


def eos_ids(model, tok) -> set[int]:
    ids = model.generation_config.eos_token_id
    ids = set(ids if isinstance(ids, list) else [ids] if ids is not None else [])
    return ids | {tok.eos_token_id}


def run_batches(lengths: list[int], batch_size: int, log: BatchLog, fn, desc: str | None = None) -> list:
    """fn(batch number, indices) -> one value per index, over batches of similar length (longest first, ties by
    index, so the batches depend on nothing but the inputs); batches already in `log` are read back, new ones
    appended."""
    order = sorted(range(len(lengths)), key=lambda i: (-lengths[i], i))
    batches = [order[s:s + batch_size] for s in range(0, len(order), batch_size)]
    done = log.load()
    out: list = [None] * len(lengths)
    with Bar(len(lengths), desc, "prompts") as bar:  # on the stage's one line (mipo/progress.py)
        for b, idx in enumerate(batches):
            if b not in done:
                done[b] = fn(b, idx)
                log.append(b, done[b])
            for i, v in zip(idx, done[b]):
                out[i] = v
            bar.update(len(idx))
    return out


class HFEngine:
    """A transformers model and its tokenizer. With a PEFT model, whatever adapter is active answers."""

    name = "hf"

    def __init__(self, model, tok):
        self.model, self.tok = model, tok

    @torch.inference_mode()
    def sample(self, prompts: list[Messages], sampling: Sampling, *, seed: int, batch_size: int,
               desc: str | None = "sampling", resume_dir=None) -> list[str]:
        """One response per prompt, in input order. Each batch draws from its own generator seeded from (seed,
        batch index): the output depends on nothing but inputs and settings."""
        model, tok = self.model, self.tok
        ids = prompt_ids(tok, prompts)
        log = BatchLog(resume_dir, {"op": "sample", "ids": ids, "t": sampling.temperature, "p": sampling.top_p,
                                    "n": sampling.max_new_tokens, "bs": batch_size, "seed": seed, **weights_id(model)})
        stop = eos_ids(model, tok)
        # a CPU is bound by compute: drop rows as they end; a GPU by kernel launches: replay a recorded step
        loop = decode_fixed if model.device.type == "cuda" else decode

        def batch(b: int, idx: list[int]) -> list[str]:
            gen = torch.Generator(device=model.device).manual_seed(derive(seed, "batch", b))
            toks = loop(model, [ids[i] for i in idx], sampling, pad_id=tok.pad_token_id, eos_ids=stop, gen=gen)
            return [tok.decode(t, skip_special_tokens=True).strip() for t in toks]

        return run_batches([len(x) for x in ids], batch_size, log, batch, desc)

    @torch.inference_mode()
    def logprobs(self, prompts: list[Messages], responses: list[str], *, batch_size: int = 8,
                 resume_dir=None) -> list[float]:
        """Sum of log p(response tokens + end-of-turn | prompt), one float per (prompt, response)."""
        return [lp for lp, _ in self.token_logprobs(prompts, responses, batch_size=batch_size, resume_dir=resume_dir)]

    @torch.inference_mode()
    def token_logprobs(self, prompts: list[Messages], responses: list[str], *, batch_size: int = 8,
                       resume_dir=None) -> list[tuple[float, int]]:
        """(sum of log p(response tokens + end-of-turn | prompt), number of those tokens) per (prompt, response)."""
        tok = self.tok
        return self.score_ids([(p, tok(r, add_special_tokens=False)["input_ids"] + [tok.eos_token_id])
                               for p, r in zip(prompt_ids(tok, prompts), responses)], batch_size, resume_dir)

    @torch.inference_mode()
    def text_logprobs(self, contexts: list[str], continuations: list[str], *, batch_size: int = 8,
                      resume_dir=None) -> list[tuple[float, int]]:
        """(sum of log p(continuation | context), its tokens) on raw text, no chat template, as
        lm-evaluation-harness' `loglikelihood` scores a request: the context's trailing spaces move to the
        continuation, the pair is encoded whole and the continuation is what follows the context's own encoding;
        an empty context is the tokenizer's BOS token (else its EOS), the harness' `prefix_token_id`."""
        tok = self.tok
        prefix = tok.bos_token_id if tok.bos_token_id is not None else tok.eos_token_id
        seqs = []
        for ctx, cont in zip(contexts, continuations):
            if not ctx:
                seqs.append(([prefix], tok(cont, add_special_tokens=False)["input_ids"]))
                continue
            spaces = len(ctx) - len(ctx.rstrip())
            if spaces:
                ctx, cont = ctx[:-spaces], ctx[-spaces:] + cont
            whole = tok(ctx + cont, add_special_tokens=False)["input_ids"]
            at = len(tok(ctx, add_special_tokens=False)["input_ids"])
            seqs.append((whole[:at], whole[at:]))
        return self.score_ids(seqs, batch_size, resume_dir)

    @torch.inference_mode()
    def score_ids(self, seqs: list[tuple[list[int], list[int]]], batch_size: int,
                  resume_dir=None) -> list[tuple[float, int]]:
        """(sum of log p(y | p), len(y)) per (p, y) pair of token ids, in batches of similar length."""
        model, tok = self.model, self.tok
        log = BatchLog(resume_dir, {"op": "logprobs", "seqs": seqs, "bs": batch_size, **weights_id(model)})

        def batch(b: int, idx: list[int]) -> list[float]:
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
            lp = -torch.nn.functional.cross_entropy(logits[:, :-1].transpose(1, 2), labels.clamp(min=0),
                                                    reduction="none")
            return (lp * (labels != -100)).sum(-1).tolist()

        sums = run_batches([sum(map(len, s)) for s in seqs], batch_size, log, batch)
        return [(s, len(y)) for s, (_, y) in zip(sums, seqs)]

    @torch.inference_mode()
    def option_probs(self, prompts: list[Messages], options: list[str], *, batch_size: int,
                     resume_dir=None) -> list[list[float]]:
        """p(option | chat prompt) renormalised over `options`, one list per prompt, from one forward pass: the
        options must share a token prefix and differ in exactly one final token each ("Score: 1".."Score: 5")."""
        model, tok = self.model, self.tok
        encoded = [tok(o, add_special_tokens=False)["input_ids"] for o in options]
        k = 0
        while all(len(o) > k + 1 and o[k] == encoded[0][k] for o in encoded):
            k += 1
        if any(len(o) != k + 1 for o in encoded):
            raise MipoError(f"the tokenizer does not end the options {options} with one distinct token each "
                            f"({encoded}); use a server engine, which parses written answers")
        last = torch.tensor([o[k] for o in encoded])
        seqs = [ids + encoded[0][:k] for ids in prompt_ids(tok, prompts)]
        log = BatchLog(resume_dir, {"op": "option_probs", "seqs": seqs, "options": encoded, "bs": batch_size,
                                    **weights_id(model)})

        def batch(b: int, idx: list[int]) -> list[list[float]]:
            width = max(len(seqs[i]) for i in idx)
            ids = torch.full((len(idx), width), tok.pad_token_id, dtype=torch.long)
            mask = torch.zeros_like(ids)
            for r, i in enumerate(idx):  # left padding: the last position is every row's next token
                ids[r, width - len(seqs[i]):] = torch.tensor(seqs[i])
                mask[r, width - len(seqs[i]):] = 1
            pos = (mask.cumsum(-1) - 1).clamp(min=0)
            logits = model(input_ids=ids.to(model.device), attention_mask=mask.to(model.device),
                           position_ids=pos.to(model.device), logits_to_keep=1).logits[:, -1].float()
            return logits[:, last.to(logits.device)].softmax(-1).tolist()

        return run_batches([len(s) for s in seqs], batch_size, log, batch)
