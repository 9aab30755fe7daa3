"""Context-aware decoding (Shi et al. 2023, "Trusting Your Evidence"), batched: each step's next token is drawn from

    score(y) = (1 + alpha) * log p(y | x, y_<t) - alpha * log p(y | x', y_<t)

where x is the true prompt and x' the negative one (x without its context, say), and the token drawn is appended to
both. This is transformers' classifier-free guidance (`UnbatchedClassifierFreeGuidanceLogitsProcessor`,
`generate(guidance_scale=1 + alpha, negative_prompt_ids=...)`): guidance_scale * (lp_c - lp_u) + lp_u. That one
decodes the negative branch unbatched, a second model call per step; here the 2n rows of n pairs share one batch
and one KV cache, and a pair leaves the batch (both rows) as soon as it ends.
"""
from __future__ import annotations

import torch

from ..io import BatchLog, MipoError
from ..seeds import derive
from . import Messages, Sampling
from .adapters import weights_id
from .decode import advance, pick, start
from .hf import eos_ids, prompt_ids, run_batches


def guide(logits_c: torch.Tensor, logits_u: torch.Tensor, alpha: float) -> torch.Tensor:
    """(1 + alpha) * log_softmax(logits_c) - alpha * log_softmax(logits_u), in fp32."""
    lp_c, lp_u = logits_c.float().log_softmax(-1), logits_u.float().log_softmax(-1)
    return (1 + alpha) * lp_c - alpha * lp_u


def _pair_rows(order: list[int], n: int, device) -> tuple[torch.Tensor, torch.Tensor]:
    """Cache rows of each pair's true prompt (input row i) and of its negative (input row n + i): `start` orders
    the rows longest first, so the two rows of a pair land anywhere in the cache."""
    row_of = [0] * len(order)
    for cache_row, input_row in enumerate(order):
        row_of[input_row] = cache_row
    return (torch.tensor(row_of[:n], device=device), torch.tensor(row_of[n:], device=device))


@torch.inference_mode()
def guided_decode(model, prompts: list[list[int]], negatives: list[list[int]], sampling: Sampling, alpha: float, *,
                  pad_id: int, eos_ids: set[int], gen: torch.Generator | None, min_prefix: int = 8,
                  prefill_rows: int = 16) -> list[list[int]]:
    """Context-aware decoding of n (prompt, negative) pairs in one batch of 2n rows; tokens per pair, in input
    order, an end token included as the last (as `decode` returns them). `pick` draws from the guided scores, so
    temperature and top-p apply to them as transformers' warpers do after its guidance processor; alpha = 0 is
    plain decoding of the prompts."""
    if len(prompts) != len(negatives):
        raise MipoError(f"{len(prompts)} prompts but {len(negatives)} negative prompts: one negative per prompt")
    device, max_new_tokens, n = model.device, sampling.max_new_tokens, len(prompts)
    rows = prompts + negatives
    order, used, cache, _, logits, mask = start(model, rows, max_new_tokens, pad_id=pad_id, min_prefix=min_prefix,
                                                prefill_rows=prefill_rows)  # used: cache slots filled so far
    mask = mask.long()
    eos = torch.tensor(sorted(eos_ids), device=device)
    cond, neg = _pair_rows(order, n, device)
    alive = torch.arange(n, device=device)  # input pair of each pair still decoding
    next_pos = torch.tensor([len(rows[i]) for i in order], device=device)  # per cache row
    tokens: list[list[int]] = [[] for _ in prompts]
    for step in range(max_new_tokens):
        nxt = pick(guide(logits[cond], logits[neg], alpha), sampling, gen)
        for p, t in zip(alive.tolist(), nxt.tolist()):
            tokens[p].append(t)
        keep = ~torch.isin(nxt, eos)
        if step == max_new_tokens - 1 or not keep.any():
            break
        if not keep.all():  # drop ended pairs, both rows; the cache becomes [true rows | negative rows]
            kept = torch.cat([cond[keep], neg[keep]])
            cache.reorder_cache(kept)
            mask, next_pos, alive, nxt = mask[kept], next_pos[kept], alive[keep], nxt[keep]
            k = len(alive)
            cond, neg = torch.arange(k, device=device), torch.arange(k, 2 * k, device=device)
        ids = torch.empty(len(next_pos), dtype=torch.long, device=device)
        ids[cond], ids[neg] = nxt, nxt  # the pair's token goes into both of its rows
        logits, used, next_pos = advance(model, cache, ids, mask, used, next_pos)
    return tokens


def sample_guided(engine, prompts: list[Messages], negatives: list[Messages], sampling: Sampling, alpha: float, *,
                  seed: int, batch_size: int, desc: str | None = None, resume_dir=None) -> list[str]:
    """One context-aware response per (prompt, negative prompt) pair of chat messages, in input order, from an
    `HFEngine`. Batches of pairs of similar length (the longer prompt of the pair), each drawing from its own
    generator seeded from (seed, batch index), as `HFEngine.sample` does; finished batches go to `resume_dir`."""
    model, tok = engine.model, engine.tok
    ids, neg = prompt_ids(tok, prompts), prompt_ids(tok, negatives)
    if len(ids) != len(neg):
        raise MipoError(f"{len(ids)} prompts but {len(neg)} negative prompts: one negative per prompt")
    log = BatchLog(resume_dir, {"op": "sample_guided", "alpha": alpha, "ids": ids, "neg": neg,
                                "t": sampling.temperature, "p": sampling.top_p, "n": sampling.max_new_tokens,
                                "bs": batch_size, "seed": seed, **weights_id(model)})
    stop = eos_ids(model, tok)

    def batch(b: int, idx: list[int]) -> list[str]:
        gen = torch.Generator(device=model.device).manual_seed(derive(seed, "batch", b))
        toks = guided_decode(model, [ids[i] for i in idx], [neg[i] for i in idx], sampling, alpha,
                             pad_id=tok.pad_token_id, eos_ids=stop, gen=gen)
        return [tok.decode(t, skip_special_tokens=True).strip() for t in toks]

    return run_batches([max(len(a), len(b)) for a, b in zip(ids, neg)], batch_size, log, batch, desc)
