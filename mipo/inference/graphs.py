"""Decoding with fixed shapes, each decode step replayed from a CUDA graph on a GPU: the hf engine's loop on CUDA.

On a GPU a 1B model's decode step is bound by kernel launches, not by the bytes it reads (issue 17 measured the
eager loop at ~0.5% of the step's limit). A CUDA graph launches a recorded step at once, but it fixes the step's
shapes and buffers when it is recorded, so this loop differs from `decode`, which reshapes every step to save work
(right on a CPU, where compute is the cost):
- every row stays in the batch until the last one ends: finished rows are computed and their tokens dropped;
- attention reads all slots of transformers' static cache under a 4D mask that grows by one column per step.
The step is recorded once per batch, after one eager step that is the real step and warms up the kernels' lazy
set-up. No torch.compile: it recompiles for every new batch shape, which would cost more than the batch. Sampling
stays outside the graph (`pick`, the same nucleus as `decode`), and the host reads which rows ended every
`check_every` steps, not every token. Figures: bench/README.md, "GPU".
"""
from __future__ import annotations

import logging
from contextlib import nullcontext
from functools import partial

import torch

from . import Sampling
from .decode import decode, pick, start
from .kv_cache import make_cache

log = logging.getLogger("mipo")
_warned: set[str] = set()  # recording failures already logged: each batch tries again, the log says it once


def forward(model, ids, mask, pos, cache) -> torch.Tensor:
    """One decode step at fixed shapes, what the graph records: it reads no value back to the host and builds no
    tensor from host data (tests/test_generate.py checks both on a CPU)."""
    return model(input_ids=ids, attention_mask=mask, position_ids=pos, cache=cache, use_cache=True).logits[:, -1]


def record(step, strict: bool):
    """Run `step` once eagerly on a side stream (the real step, and the warm-up recording needs), then record it in
    a CUDA graph. Returns (this step's logits, the graph, the tensor each replay writes its logits to); the graph
    and tensor are None when recording failed and not `strict`."""
    side = torch.cuda.Stream()  # on the current device: decode_fixed makes the model's device current
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):
        logits = step()
    torch.cuda.current_stream().wait_stream(side)
    graph = torch.cuda.CUDAGraph()
    try:  # thread_local: CUDA work of other threads (an HTTP judge, say) may go on while this one records
        with torch.cuda.graph(graph, capture_error_mode="thread_local"):
            out = step()
    except RuntimeError as e:  # e.g. a model whose forward reads a value back to the host mid-step
        if strict:
            raise
        why = str(e).splitlines()[0] if str(e) else type(e).__name__
        if why not in _warned:
            _warned.add(why)
            log.warning("decode: the step could not be recorded in a CUDA graph (%s); decoding with eager steps", why)
        return logits, None, None
    return logits, graph, out


@torch.inference_mode()
def decode_fixed(model, prompts: list[list[int]], sampling: Sampling, *, pad_id: int, eos_ids: set[int],
                 gen: torch.Generator | None, graphs: bool | None = None, min_prefix: int = 8, prefill_rows: int = 16,
                 check_every: int = 8) -> list[list[int]]:
    """Tokens per prompt, in input order, each up to and including its first end token, as `decode` returns them.

    graphs: True = record the step in a CUDA graph (an error if that fails); None = the same on CUDA, falling back
    to eager steps with a warning if recording fails; False = eager steps of the same shapes (how the CPU tests
    check this loop). Models with sliding-window layers have no fixed-shape cache: `decode` runs them.
    """
    if not make_cache(model, 1)[1]:
        return decode(model, prompts, sampling, pad_id=pad_id, eos_ids=eos_ids, gen=gen, min_prefix=min_prefix,
                      prefill_rows=prefill_rows)
    device = model.device
    order, used, cache, _, logits, mask = start(model, prompts, sampling.max_new_tokens, pad_id=pad_id,
                                                min_prefix=min_prefix, prefill_rows=prefill_rows, slots=False)
    mask = mask[:, None, None, :]  # the 4D form attention takes as is (True: attend), a view written in place
    ids = torch.zeros((len(prompts), 1), dtype=torch.long, device=device)
    pos = torch.tensor([[len(prompts[i]) - 1] for i in order], device=device)  # +1 before each step
    step = partial(forward, model, ids, mask, pos, cache)
    with torch.cuda.device(device) if device.type == "cuda" else nullcontext():
        out = _steps(step, logits, ids, pos, mask, used, sampling, gen, eos_ids,
                     graphs=device.type == "cuda" if graphs is None else graphs, strict=graphs is True,
                     check_every=check_every).tolist()
    tokens: list[list[int]] = [[] for _ in prompts]
    for r, row in enumerate(out):
        end = next((j + 1 for j, x in enumerate(row) if x in eos_ids), len(row))
        tokens[order[r]] = row[:end]
    return tokens


def _steps(step, logits, ids, pos, mask, used: int, sampling: Sampling, gen, eos_ids: set[int], *, graphs: bool,
           strict: bool, check_every: int) -> torch.Tensor:
    """The decode loop over the step's fixed input buffers (ids, pos, mask: written in place before each step);
    `used`: cache slots filled so far. Returns the tokens drawn, one row per batch row, one column per step run."""
    n = sampling.max_new_tokens
    out = torch.zeros((ids.shape[0], n), dtype=torch.long, device=ids.device)
    ended = torch.zeros(ids.shape[0], dtype=torch.bool, device=ids.device)
    eos = torch.tensor(sorted(eos_ids), device=ids.device)
    graph = replayed = None
    for t in range(n):
        out[:, t] = nxt = pick(logits.float(), sampling, gen)
        ended |= torch.isin(nxt, eos)
        if t == n - 1 or ((t + 1) % check_every == 0 and bool(ended.all())):
            break
        ids.copy_(nxt[:, None])
        pos.add_(1)
        mask[:, :, :, used] = True
        used += 1
        if graph is not None:
            graph.replay()
            logits = replayed
        elif graphs and t == 0:
            logits, graph, replayed = record(step, strict)
        else:
            logits = step()
    return out[:, :t + 1]
