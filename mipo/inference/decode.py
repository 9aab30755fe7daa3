"""Batched sampling with a KV cache: next-token choice, prefill of a batch sharing a prompt prefix, decode loop.

Written here because `model.generate` keeps finished rows in the batch until the longest one ends (most of a late
step is then wasted on finished rows) and transformers' continuous batching targets GPUs. Figures: bench/README.md.
"""
from __future__ import annotations

import torch

from . import Sampling
from .kv_cache import dynamic_cache, make_cache


def pick(logits: torch.Tensor, sampling: Sampling, gen: torch.Generator | None) -> torch.Tensor:
    """Next token per row: greedy (Sampling.greedy), else temperature + nucleus (top-p) sampling.

    Same nucleus as transformers' TopPLogitsWarper (keep the most likely tokens until their mass reaches top_p),
    but it looks at the 256 most likely tokens first and sorts the whole vocabulary only for rows whose nucleus
    is wider than that: a full sort of the vocabulary per row per step costs more than the rest of sampling.
    """
    if sampling.greedy:
        return logits.argmax(-1)
    logits, top_p = logits / sampling.temperature, sampling.top_p
    if top_p >= 1.0:
        return torch.multinomial(logits.softmax(-1), 1, generator=gen).squeeze(1)
    k = min(256, logits.shape[-1])
    vals, idx = logits.topk(k, dim=-1)
    probs = (vals - logits.logsumexp(-1, keepdim=True)).exp()
    cum = probs.cumsum(-1)
    wide = cum[:, -1] < top_p  # the nucleus does not fit in the top k: the whole vocabulary for those rows
    if not wide.any():
        kept = vals.masked_fill(cum - probs >= top_p, float("-inf"))
        choice = torch.multinomial(kept.softmax(-1), 1, generator=gen).squeeze(1)
        return idx.gather(-1, choice[:, None]).squeeze(1)
    full_vals, full_idx = logits[wide].sort(-1, descending=True)
    out = torch.empty(logits.shape[0], dtype=torch.long, device=logits.device)
    narrow = ~wide
    if narrow.any():
        kept = vals[narrow].masked_fill(cum[narrow] - probs[narrow] >= top_p, float("-inf"))
        choice = torch.multinomial(kept.softmax(-1), 1, generator=gen)
        out[narrow] = idx[narrow].gather(-1, choice).squeeze(1)
    fp = full_vals.softmax(-1)
    kept = full_vals.masked_fill(fp.cumsum(-1) - fp >= top_p, float("-inf"))
    choice = torch.multinomial(kept.softmax(-1), 1, generator=gen)
    out[wide] = full_idx.gather(-1, choice).squeeze(1)
    return out


def shared_prefix(prompts: list[list[int]]) -> int:
    """Length of the token prefix every prompt starts with, leaving each prompt at least one token of its own."""
    n = min(len(p) for p in prompts) - 1
    first = prompts[0]
    for p in prompts[1:]:
        k = 0
        while k < n and p[k] == first[k]:
            k += 1
        n = k
    return max(n, 0)


def _group_inputs(rows: list[list[int]], shared: int, pad_id: int):
    """Left-padded ids, the attention mask over [prefix | suffix] and positions continuing from the prefix."""
    w = len(rows[0])
    ids = torch.full((len(rows), w), pad_id, dtype=torch.long)
    mask = torch.zeros((len(rows), shared + w), dtype=torch.long)
    mask[:, :shared] = 1
    for r, p in enumerate(rows):
        ids[r, w - len(p):] = torch.tensor(p)
        mask[r, shared + w - len(p):] = 1
    pos = shared + (mask[:, shared:].cumsum(-1) - 1).clamp(min=0)
    return ids, mask, pos


def prefill(model, cache, static: bool, prefix: list[int], rest: list[list[int]], pad_id: int, group_rows: int):
    """Run the shared prefix once, then the rows' own suffixes (longest first) in groups of `group_rows`, each group
    left-padded only to its own longest suffix. A static cache gets each group's keys/values copied into its rows'
    slots [prefix | suffix, right-aligned]; the dynamic fallback prefills all rows as one group and keeps that
    group's cache. Returns the cache and every row's last logits."""
    device, shared, width = model.device, len(prefix), len(rest[0])
    pre = dynamic_cache(model)
    if shared:
        model(input_ids=torch.tensor([prefix], device=device), cache=pre, use_cache=True, logits_to_keep=1)
    group_rows = group_rows if static else len(rest)
    last = []
    for g in range(0, len(rest), group_rows):
        rows = rest[g:g + group_rows]
        grp = dynamic_cache(model)
        for i, layer in enumerate(pre.layers if shared else []):  # the prefix, repeated over the group's rows
            grp.update(layer.keys.expand(len(rows), -1, -1, -1), layer.values.expand(len(rows), -1, -1, -1), i)
        ids, mask, pos = _group_inputs(rows, shared, pad_id)
        out = model(input_ids=ids.to(device), attention_mask=mask.to(device), position_ids=pos.to(device), cache=grp,
                    use_cache=True, logits_to_keep=1)
        last.append(out.logits[:, -1])
        if not static:
            return grp, last[0]
        _copy_group(cache, grp, g, len(rows), len(rest), shared, width, len(rows[0]))
    return cache, torch.cat(last)


def _copy_group(cache, grp, g: int, n: int, total: int, shared: int, width: int, w: int) -> None:
    """Copy group g's suffix keys/values into rows g..g+n of the static cache, right-aligned at shared + width."""
    for i, (layer, src) in enumerate(zip(cache.layers, grp.layers)):
        if not layer.is_initialized:  # all rows' slots [0, shared + width): the prefix, zeros until a group writes
            k, v = (x.new_zeros(total, x.shape[1], shared + width, x.shape[3]) for x in (src.keys, src.values))
            k[:, :, :shared], v[:, :, :shared] = src.keys[:1, :, :shared], src.values[:1, :, :shared]
            cache.update(k, v, i)
        layer.keys[g:g + n, :, shared + width - w:shared + width] = src.keys[:, :, shared:]
        layer.values[g:g + n, :, shared + width - w:shared + width] = src.values[:, :, shared:]


def start(model, prompts: list[list[int]], max_new_tokens: int, *, pad_id: int, min_prefix: int, prefill_rows: int,
          slots: bool = True):
    """What both decode loops start from: rows ordered longest first (ties in input order: the order run_batches
    gives, so a sorted batch keeps its rows), the prefilled cache, every row's first logits and its attention mask
    over the cache's slots [shared prefix | own suffix, right-aligned | max_new_tokens to come]. Returns (order,
    used, cache, static, logits, mask); `used`: the slots the prefill filled."""
    shared = shared_prefix(prompts) if len(prompts) > 1 else 0
    if shared < min_prefix:
        shared = 0
    order = sorted(range(len(prompts)), key=lambda r: -len(prompts[r]))
    rest = [prompts[r][shared:] for r in order]
    used = shared + len(rest[0])
    cache, static = make_cache(model, used + max_new_tokens, slots=slots)
    cache, logits = prefill(model, cache, static, prompts[0][:shared], rest, pad_id, prefill_rows)
    mask = torch.zeros((len(prompts), used + max_new_tokens), dtype=torch.bool, device=model.device)
    mask[:, :shared] = True
    for r, p in enumerate(rest):
        mask[r, used - len(p):used] = True
    return order, used, cache, static, logits, mask


@torch.inference_mode()
def decode(model, prompts: list[list[int]], sampling: Sampling, *, pad_id: int, eos_ids: set[int],
           gen: torch.Generator | None, min_prefix: int = 8, prefill_rows: int = 16) -> list[list[int]]:
    """Batched decoding with a KV cache that drops each row as soon as it ends; tokens per prompt, in input order.

    Chat prompts share a prefix (the system turn, the start of the user turn). When at least `min_prefix` tokens
    are shared, the prefix is run once and its KV cache repeated over the batch; the rows' own suffixes are
    prefilled in groups of `prefill_rows` similar lengths (`prefill`), so short rows are not padded to the longest.
    """
    device, max_new_tokens = model.device, sampling.max_new_tokens
    order, used, cache, _, logits, mask = start(model, prompts, max_new_tokens, pad_id=pad_id, min_prefix=min_prefix,
                                                prefill_rows=prefill_rows)  # used: cache slots filled so far
    mask = mask.long()
    eos = torch.tensor(sorted(eos_ids), device=device)
    alive = torch.tensor(order, device=device)  # input row of each row still decoding
    next_pos = torch.tensor([len(prompts[i]) for i in order], device=device)
    tokens: list[list[int]] = [[] for _ in prompts]
    for step in range(max_new_tokens):
        nxt = pick(logits.float(), sampling, gen)
        for r, t in zip(alive.tolist(), nxt.tolist()):
            tokens[r].append(t)
        keep = ~torch.isin(nxt, eos)
        if step == max_new_tokens - 1 or not keep.any():
            break
        if not keep.all():
            rows = keep.nonzero().squeeze(1)
            cache.reorder_cache(rows)
            mask, alive, nxt, next_pos = mask[rows], alive[rows], nxt[rows], next_pos[rows]
        logits, used, next_pos = advance(model, cache, nxt, mask, used, next_pos)
    return tokens


def advance(model, cache, ids: torch.Tensor, mask: torch.Tensor, used: int, next_pos: torch.Tensor):
    """One decode step of the dynamic-length loops (`decode`, guidance.guided_decode): each row's token `ids` goes
    into cache slot `used` (its mask column opened in place) at position `next_pos`. Returns the rows' next logits,
    the slots now used and the next positions."""
    mask[:, used] = 1
    logits = model(input_ids=ids[:, None], attention_mask=mask[:, :used + 1], position_ids=next_pos[:, None],
                   cache=cache, use_cache=True).logits[:, -1]
    return logits, used + 1, next_pos + 1
