"""The sampler's prefill alone: the batch's prompt suffixes in groups of similar length vs one padded pass.

    .venv/bin/python bench/prefill.py [--prompts 128] [--rounds 5] [--rows 16]

Times `mipo.inference.decode.prefill` (shared prefix once, then the suffixes into a static KV cache) on the demo prompts
sorted longest first, as a sampling batch holds them. Prefill is ~a quarter of a 128-prompt sampling batch here, and
the decode steps after it swing ±10% from run to run on this shared machine, so its gain is measured on its own.
"""
from __future__ import annotations

import argparse
import statistics
import time

import torch

from common import demo_prompts, embedded, interleave, machine, save, summary

from mipo.inference.decode import prefill, shared_prefix
from mipo.inference.hf import prompt_ids
from mipo.inference.kv_cache import make_cache


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--prompts", type=int, default=128)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--rows", type=int, default=16, help="rows per prefill group (mipo's default: 16)")
    args = ap.parse_args()
    model, tok = embedded()
    ids = sorted(prompt_ids(tok, demo_prompts(args.prompts)), key=lambda p: -len(p))
    shared = shared_prefix(ids)
    rest = [p[shared:] for p in ids]
    real = sum(map(len, rest))

    def padded(rows: int) -> int:
        return sum(len(rest[g]) * len(rest[g:g + rows]) for g in range(0, len(rest), rows))

    def arm(rows: int):
        @torch.inference_mode()
        def run(r):
            cache, static = make_cache(model, shared + len(rest[0]) + 64)
            t0 = time.perf_counter()
            prefill(model, cache, static, ids[0][:shared], rest, tok.pad_token_id, rows)
            return real / (time.perf_counter() - t0)
        return run

    fns = {"one padded pass": arm(len(rest)), f"groups of {args.rows}": arm(args.rows)}
    res = interleave(fns, args.rounds)
    med = {k: statistics.median(v) for k, v in res.items()}
    base = med["one padded pass"]
    print(f"machine: {machine()}; {args.prompts} demo prompts: shared prefix {shared} tokens, {real} suffix tokens; "
          f"{args.rounds} rounds interleaved")
    print(f"{'prefill':18s} {'computed tokens':>15s} {'real tokens/s':>18s} {'speed-up':>9s}")
    for k, v in res.items():
        computed = padded(len(rest) if k == "one padded pass" else args.rows)
        print(f"{k:18s} {computed:15d} {summary(v):>18s} {med[k] / base:8.2f}x")
    print("results:", save("prefill", {"machine": machine(), "args": vars(args), "real_tokens": real,
                                        "real_tok_s": res}))


if __name__ == "__main__":
    main()
