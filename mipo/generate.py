"""The in-process Hugging Face engine: batched sampling and log-prob scoring of chat prompts.

Both functions take `resume_dir`: finished batches are logged there (mipo.io.BatchLog) and skipped on restart,
so a killed stage loses at most one batch and a resumed run gives exactly the same outputs.
"""
from __future__ import annotations

import hashlib

import torch
from tqdm.auto import tqdm
from transformers.cache_utils import StaticLayer

from .io import BatchLog
from .tasks.base import Messages


def prompt_ids(tok, prompts: list[Messages]) -> list[list[int]]:
    out = tok.apply_chat_template(prompts, add_generation_prompt=True, tokenize=True, return_dict=False)
    return [list(x) for x in out]


def _model_id(model) -> str:
    return str(getattr(model, "name_or_path", "") or getattr(model.config, "_name_or_path", ""))


def pick(logits: torch.Tensor, temperature: float, top_p: float, gen: torch.Generator | None) -> torch.Tensor:
    """Next token per row: greedy at temperature 0, else temperature + nucleus (top-p) sampling.

    Same nucleus as transformers' TopPLogitsWarper (keep the most likely tokens until their mass reaches top_p),
    but it looks at the 256 most likely tokens first and sorts the whole vocabulary only for rows whose nucleus
    is wider than that: a full sort of 49k logits per row per step costs more than the rest of sampling.
    """
    if temperature <= 0:
        return logits.argmax(-1)
    logits = logits / temperature
    if top_p < 1.0:
        k = min(256, logits.shape[-1])
        vals, idx = logits.topk(k, dim=-1)
        probs = (vals - logits.logsumexp(-1, keepdim=True)).exp()
        cum = probs.cumsum(-1)
        wide = cum[:, -1] < top_p
        if wide.any():  # the nucleus does not fit in the top k: fall back to the whole vocabulary for those rows
            full_vals, full_idx = logits[wide].sort(-1, descending=True)
            return _nucleus_draw(logits, wide, vals, idx, cum, probs, top_p, gen, full_vals, full_idx)
        logits_kept = vals.masked_fill(cum - probs >= top_p, float("-inf"))
        choice = torch.multinomial(logits_kept.softmax(-1), 1, generator=gen).squeeze(1)
        return idx.gather(-1, choice[:, None]).squeeze(1)
    return torch.multinomial(logits.softmax(-1), 1, generator=gen).squeeze(1)


def _nucleus_draw(logits, wide, vals, idx, cum, probs, top_p, gen, full_vals, full_idx):
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


class _Slots(StaticLayer):
    """A static (preallocated) KV cache layer — each step writes in place, where the dynamic cache re-concatenates
    the whole cache (+6% tokens/s, bench/generation.py) — that attends only over the slots written so far rather
    than all `max_cache_len` of them (attention time is linear in the slots read: 23% fewer on the demo's batches).
    `filled` is a Python int so the mask size costs no device sync."""

    filled = 0

    def update(self, key_states, value_states, *args, **kwargs):
        keys, values = super().update(key_states, value_states, *args, **kwargs)
        self.filled += key_states.shape[-2]
        return keys[:, :, :self.filled], values[:, :, :self.filled]

    def get_mask_sizes(self, query_length: int) -> tuple[int, int]:
        return self.filled + query_length, 0


def _cache(model, length: int):
    """`_Slots` layers for `length` positions; models with sliding-window layers keep transformers' dynamic cache
    (a static sliding layer wraps around). Returns (cache, static)."""
    from transformers import DynamicCache, StaticCache
    from transformers.cache_utils import Cache

    layers = StaticCache(config=model.config, max_cache_len=length).layers
    if all(type(layer) is StaticLayer for layer in layers):
        return Cache(layers=[_Slots(max_cache_len=length) for _ in layers]), True
    return DynamicCache(config=model.config), False


def _prefill(model, cache, static: bool, prefix: list[int], rest: list[list[int]], pad_id: int, group_rows: int):
    """Run the shared prefix once, then the rows' own suffixes (longest first) in groups of `group_rows`, each group
    left-padded only to its own longest suffix, positions continuing from the prefix. A static cache gets each
    group's keys/values copied into its rows' slots [prefix | suffix, right-aligned]; the dynamic fallback prefills
    all rows as one group and keeps that group's cache. Returns the cache and every row's last logits."""
    from transformers import DynamicCache

    device, shared, width = model.device, len(prefix), len(rest[0])
    pre = DynamicCache(config=model.config)
    if shared:
        model(input_ids=torch.tensor([prefix], device=device), cache=pre, use_cache=True, logits_to_keep=1)
    group_rows = group_rows if static else len(rest)
    last = []
    for g in range(0, len(rest), group_rows):
        rows = rest[g:g + group_rows]
        w = len(rows[0])
        grp = DynamicCache(config=model.config)
        for i, layer in enumerate(pre.layers if shared else []):  # the prefix, repeated over the group's rows
            grp.update(layer.keys.expand(len(rows), -1, -1, -1), layer.values.expand(len(rows), -1, -1, -1), i)
        ids = torch.full((len(rows), w), pad_id, dtype=torch.long)
        mask = torch.zeros((len(rows), shared + w), dtype=torch.long)
        mask[:, :shared] = 1
        for r, p in enumerate(rows):
            ids[r, w - len(p):] = torch.tensor(p)
            mask[r, shared + w - len(p):] = 1
        pos = shared + (mask[:, shared:].cumsum(-1) - 1).clamp(min=0)
        out = model(input_ids=ids.to(device), attention_mask=mask.to(device), position_ids=pos.to(device), cache=grp,
                    use_cache=True, logits_to_keep=1)
        last.append(out.logits[:, -1])
        if not static:
            return grp, last[0]
        for i, (layer, src) in enumerate(zip(cache.layers, grp.layers)):
            if not layer.is_initialized:  # all rows' slots [0, shared + width): the prefix, zeros until a group writes
                k, v = (x.new_zeros(len(rest), x.shape[1], shared + width, x.shape[3]) for x in (src.keys, src.values))
                k[:, :, :shared], v[:, :, :shared] = src.keys[:1, :, :shared], src.values[:1, :, :shared]
                cache.update(k, v, i)
            layer.keys[g:g + len(rows), :, shared + width - w:shared + width] = src.keys[:, :, shared:]
            layer.values[g:g + len(rows), :, shared + width - w:shared + width] = src.values[:, :, shared:]
    return cache, torch.cat(last)


@torch.inference_mode()
def decode(model, prompts: list[list[int]], *, pad_id: int, eos_ids: set[int], temperature: float, top_p: float,
           max_new_tokens: int, gen: torch.Generator | None, min_prefix: int = 8,
           prefill_rows: int = 16) -> list[list[int]]:
    """Batched decoding with a KV cache that drops each row as soon as it ends; tokens per prompt, in input order.

    Written here because `model.generate` keeps finished rows in the batch until the longest one ends (at
    batch 64 most of a late step is wasted on finished rows) and transformers' continuous batching targets
    GPUs (25 tokens/s on this 2-core CPU vs 105 for plain generate at batch 64).

    Chat prompts share a prefix (the system turn, the start of the user turn: 27 of ~62 tokens on the demo
    set). When at least `min_prefix` tokens are shared, the prefix is run once and its KV cache repeated over the
    batch. The rows' own suffixes are prefilled in groups of `prefill_rows` similar lengths (`_prefill`): one
    padded prefill of the demo's 128 prompts computed 6,016 suffix tokens for 4,475 real ones.
    """
    device = model.device
    shared = shared_prefix(prompts) if len(prompts) > 1 else 0
    if shared < min_prefix:
        shared = 0
    # rows longest first, ties in input order: the order run_batches gives, so a sorted batch keeps its rows
    order = sorted(range(len(prompts)), key=lambda r: -len(prompts[r]))
    rest = [prompts[r][shared:] for r in order]
    width = len(rest[0])
    cache, static = _cache(model, shared + width + max_new_tokens)
    cache, logits = _prefill(model, cache, static, prompts[0][:shared], rest, pad_id, prefill_rows)
    mask = torch.zeros((len(prompts), shared + width + max_new_tokens), dtype=torch.long, device=device)
    mask[:, :shared] = 1
    for r, p in enumerate(rest):
        mask[r, shared + width - len(p):shared + width] = 1
    used = shared + width  # cache slots filled so far
    eos = torch.tensor(sorted(eos_ids), device=device)
    alive = torch.tensor(order, device=device)  # input row of each row still decoding
    next_pos = torch.tensor([shared + len(p) for p in rest], device=device)
    tokens: list[list[int]] = [[] for _ in prompts]
    for step in range(max_new_tokens):
        nxt = pick(logits.float(), temperature, top_p, gen)
        for r, t in zip(alive.tolist(), nxt.tolist()):
            tokens[r].append(t)
        keep = ~torch.isin(nxt, eos)
        if step == max_new_tokens - 1 or not keep.any():
            break
        if not keep.all():
            rows = keep.nonzero().squeeze(1)
            cache.reorder_cache(rows)
            mask, alive, nxt, next_pos = mask[rows], alive[rows], nxt[rows], next_pos[rows]
        mask[:, used] = 1
        used += 1
        logits = model(input_ids=nxt[:, None], attention_mask=mask[:, :used], position_ids=next_pos[:, None],
                       cache=cache, use_cache=True).logits[:, -1]
        next_pos = next_pos + 1
    return tokens


def eos_ids(model, tok) -> set[int]:
    ids = model.generation_config.eos_token_id
    ids = set(ids if isinstance(ids, list) else [ids] if ids is not None else [])
    return ids | {tok.eos_token_id}


def weights_id(model) -> dict:
    """What a model's outputs depend on, for BatchLog keys: its weights' path and, when a PEFT adapter is on,
    a digest of the active adapter weights (the base and every adapter trained on it share one path)."""
    from peft.tuners.tuners_utils import BaseTunerLayer

    digest, active = hashlib.blake2b(digest_size=16), False
    for mod_name, m in model.named_modules():
        if not isinstance(m, BaseTunerLayer) or m.disable_adapters:
            continue
        for layer in m.adapter_layer_names:
            store = getattr(m, layer)  # ModuleDict or ParameterDict keyed by adapter name
            for adapter in (a for a in m.active_adapters if a in store):
                obj = store[adapter]
                params = sorted(obj.named_parameters()) if isinstance(obj, torch.nn.Module) else [("", obj)]
                for name, p in params:
                    active = True
                    digest.update(f"{mod_name}.{layer}.{adapter}.{name}".encode())
                    digest.update(p.detach().float().cpu().contiguous().numpy().tobytes())
    return {"model": _model_id(model), "adapter": digest.hexdigest() if active else None}


def run_batches(lengths: list[int], batch_size: int, log: BatchLog, fn, desc: str | None = None) -> list:
    """fn(batch number, indices) -> one value per index, over batches of similar length (longest first, ties by index, so the
    batches depend on nothing but the inputs); batches already in `log` are read back, new ones appended."""
    order = sorted(range(len(lengths)), key=lambda i: (-lengths[i], i))
    batches = [order[s:s + batch_size] for s in range(0, len(order), batch_size)]
    done = log.load()
    out: list = [None] * len(lengths)
    with tqdm(total=len(lengths), desc=desc, unit="prompt", disable=desc is None) as bar:
        for b, idx in enumerate(batches):
            if b not in done:
                done[b] = fn(b, idx)
                log.append(b, done[b])
            for i, v in zip(idx, done[b]):
                out[i] = v
            bar.update(len(idx))
    return out


@torch.inference_mode()
def sample(model, tok, prompts: list[Messages], *, temperature: float, top_p: float, max_new_tokens: int,
           batch_size: int, seed: int, desc: str = "sampling", resume_dir=None) -> list[str]:
    """One response per prompt, in input order.

    Prompts are sorted by length so a batch holds similar lengths (less padding), and each batch draws from
    its own generator seeded from (seed, batch index): the output depends on nothing but inputs and settings.
    """
    ids = prompt_ids(tok, prompts)
    log = BatchLog(resume_dir, {"op": "sample", "ids": ids, "t": temperature, "p": top_p, "n": max_new_tokens,
                                "bs": batch_size, "seed": seed, **weights_id(model)})
    stop = eos_ids(model, tok)

    def batch(b: int, idx: list[int]) -> list[str]:
        gen = torch.Generator(device=model.device).manual_seed(seed * 100_003 + b)
        toks = decode(model, [ids[i] for i in idx], pad_id=tok.pad_token_id, eos_ids=stop, temperature=temperature,
                      top_p=top_p, max_new_tokens=max_new_tokens, gen=gen)
        return [tok.decode(t, skip_special_tokens=True).strip() for t in toks]

    return run_batches([len(x) for x in ids], batch_size, log, batch, desc)


@torch.inference_mode()
def logprobs(model, tok, prompts: list[Messages], responses: list[str], batch_size: int = 8,
             resume_dir=None) -> list[float]:
    """Sum of log p(response tokens + end-of-turn | prompt) under `model`, one float per (prompt, response)."""
    eos = tok.eos_token_id
    seqs = [(p, tok(r, add_special_tokens=False)["input_ids"] + [eos]) for p, r in zip(prompt_ids(tok, prompts), responses)]
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
        lp = -torch.nn.functional.cross_entropy(logits[:, :-1].transpose(1, 2), labels.clamp(min=0), reduction="none")
        return (lp * (labels != -100)).sum(-1).tolist()

    return run_batches([sum(map(len, s)) for s in seqs], batch_size, log, batch)
