"""The ceiling on this machine for exact fp32 decoding of the embedded model: its own weight matrices only.

    .venv/bin/python bench/decode_ceiling.py [--rows 16,64,128,256,2048]

One "step" runs every linear layer of SmolLM2-135M (30 x q,k,v,o,gate,up,down + the tied LM head) once on M rows,
in model order, so each weight comes from memory as it would in a forward pass; no attention, norms, KV cache or
sampling. M/step time is the most tokens/s any exact fp32 engine built on these GEMMs can decode at batch M
(M = 2048 stands for prefill). Compared with the sampler's figures in bench/README.md it shows where the rest goes.
"""
from __future__ import annotations

import argparse
import statistics
import time

import torch

from common import embedded, gemm_peak_gflops, machine, save


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", default="16,64,128,256,2048")
    ap.add_argument("--reps", type=int, default=5)
    args = ap.parse_args()
    model, _ = embedded()
    weights = [m.weight.detach() for m in model.modules() if isinstance(m, torch.nn.Linear)]
    peak = gemm_peak_gflops()
    print(f"machine: {machine()}; fp32 GEMM peak {peak:.1f} GFLOP/s; {len(weights)} weight matrices, "
          f"{sum(w.numel() for w in weights) / 1e6:.1f}M weights")
    out = {}
    for m in (int(x) for x in args.rows.split(",")):
        xs = {k: torch.randn(m, k) for k in {w.shape[1] for w in weights}}
        times = []
        with torch.inference_mode():
            for rep in range(args.reps + 1):
                t = time.perf_counter()
                for w in weights:
                    torch.nn.functional.linear(xs[w.shape[1]], w)
                if rep:  # the first pass warms up
                    times.append(time.perf_counter() - t)
        step = statistics.median(times)
        flops = 2 * m * sum(w.numel() for w in weights)
        out[m] = {"step_s": step, "tok_s": m / step, "gflops": flops / step / 1e9}
        print(f"M={m:5d}: step {step * 1e3:7.1f} ms  {m / step:7.0f} tokens/s  {flops / step / 1e9:6.1f} GFLOP/s "
              f"({flops / step / 1e9 / peak:.0%} of peak)")
    print("results:", save("decode_ceiling", {"machine": machine(), "gemm_gflops": peak, "rows": out}))


if __name__ == "__main__":
    main()
