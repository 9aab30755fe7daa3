"""Pair-generation throughput on the embedded model: mipo's sampler vs plain `model.generate`, side by side.

    .venv/bin/python bench/generation.py [--prompts 128] [--max-new-tokens 64] [--rounds 3] [--candidates ...]

Counts generated tokens up to and including the end-of-turn token (no padding), same prompts, same
temperature/top_p. Prints tokens/s (median and spread over rounds), ratios, and the fraction of the compute
limit: fp32 GEMM peak / (2 × parameters) forward tokens per second.
"""
from __future__ import annotations

import argparse
import statistics
import time

import torch

from common import demo_prompts, embedded, gemm_peak_gflops, interleave, machine, save, summary

import mipo.inference.decode as dec_mod
from mipo.inference import Sampling
from mipo.inference.decode import decode
from mipo.inference.hf import HFEngine, eos_ids, prompt_ids

static_cache = dec_mod.make_cache


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--prompts", type=int, default=128)
    ap.add_argument("--max-new-tokens", type=int, default=64)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--temperature", type=float, default=0.7)
    ap.add_argument("--top-p", type=float, default=0.9)
    ap.add_argument("--candidates", default="generate@16,mipo@128,mipo-allslots@128,mipo-onepass@128",
                    help="comma list of engine@batch; engines: generate, mipo, mipo-noprefix (no shared-prefix "
                         "cache), mipo-dyncache (transformers' DynamicCache instead of the static one), mipo-onepass "
                         "(the batch's suffixes prefilled in one padded pass instead of groups of 16 similar lengths), "
                         "mipo-allslots (transformers' StaticCache: attention over every preallocated slot)")
    args = ap.parse_args()
    model, tok = embedded()
    prompts = demo_prompts(args.prompts)
    ids = prompt_ids(tok, prompts)
    stop = eos_ids(model, tok)
    n_params = model.num_parameters()

    def hf_generate(batch_size):
        def run(r):
            order = sorted(range(len(ids)), key=lambda i: -len(ids[i]))
            tokens, t0 = 0, time.perf_counter()
            torch.manual_seed(r)
            for s in range(0, len(order), batch_size):
                idx = order[s:s + batch_size]
                tok.padding_side = "left"
                enc = tok.pad({"input_ids": [ids[i] for i in idx]}, return_tensors="pt")
                with torch.inference_mode():
                    out = model.generate(**enc, do_sample=True, temperature=args.temperature, top_p=args.top_p,
                                         top_k=None, max_new_tokens=args.max_new_tokens, pad_token_id=tok.pad_token_id)
                for row in out[:, enc["input_ids"].shape[1]:].tolist():
                    tokens += next((j + 1 for j, t in enumerate(row) if t in stop), len(row))
            return tokens / (time.perf_counter() - t0)
        return run

    def mipo_sampler(batch_size, min_prefix=8, dynamic_cache=False, prefill_rows=16, all_slots=False):
        def run(r):
            from transformers import DynamicCache, StaticCache

            if dynamic_cache:  # what the static cache buys: the same sampler on transformers' DynamicCache
                dec_mod.make_cache = lambda model, length: (DynamicCache(config=model.config), False)
            if all_slots:  # what attending over the filled slots only buys: transformers' StaticCache layers
                dec_mod.make_cache = lambda model, length: (StaticCache(config=model.config, max_cache_len=length), True)
            order = sorted(range(len(ids)), key=lambda i: -len(ids[i]))
            tokens, t0 = 0, time.perf_counter()
            for b, s in enumerate(range(0, len(order), batch_size)):
                gen = torch.Generator().manual_seed(r * 1000 + b)
                out = decode(model, [ids[i] for i in order[s:s + batch_size]], sampling, pad_id=tok.pad_token_id,
                             eos_ids=stop, gen=gen, min_prefix=min_prefix, prefill_rows=prefill_rows)
                tokens += sum(len(t) for t in out)
            dec_mod.make_cache = static_cache
            return tokens / (time.perf_counter() - t0)
        return run

    sampling = Sampling(args.temperature, args.top_p, args.max_new_tokens)
    HFEngine(model, tok).sample(prompts[:4], Sampling(0.7, 0.9, 4), seed=0, batch_size=4, desc=None)  # warm-up
    peak = gemm_peak_gflops()
    limit = peak * 1e9 / (2 * n_params)
    engines = {"generate": hf_generate, "mipo": mipo_sampler,
               # the same sampler without the shared-prefix KV cache: what the prefix cache buys
               "mipo-noprefix": lambda bs: mipo_sampler(bs, min_prefix=10**9),
               "mipo-dyncache": lambda bs: mipo_sampler(bs, dynamic_cache=True),
               "mipo-onepass": lambda bs: mipo_sampler(bs, prefill_rows=10**9),
               "mipo-allslots": lambda bs: mipo_sampler(bs, all_slots=True)}
    names = ["generate@16"] + [c for c in args.candidates.split(",") if c != "generate@16"]  # the baseline first
    fns = {c: engines[c.split("@")[0]](int(c.split("@")[1])) for c in names}
    res = interleave(fns, args.rounds)
    med = {k: statistics.median(v) for k, v in res.items()}
    print(f"machine: {machine()}; fp32 GEMM peak {peak:.1f} GFLOP/s -> compute limit {limit:.0f} tokens/s "
          f"({n_params / 1e6:.1f}M params)")
    print(f"{args.prompts} prompts, max_new_tokens {args.max_new_tokens}, T={args.temperature}, top_p={args.top_p}, "
          f"{args.rounds} rounds interleaved")
    print(f"{'engine@batch':17s} {'tokens/s':>18s} {'vs generate@16':>15s} {'of limit':>9s}")
    for k, v in res.items():
        print(f"{k:17s} {summary(v):>18s} {med[k] / med['generate@16']:14.2f}x {med[k] / limit:8.0%}")
    print("results:", save("generation", {"machine": machine(), "gemm_gflops": peak, "limit_tok_s": limit,
                                           "args": vars(args), "tok_s": res}))


if __name__ == "__main__":
    main()
