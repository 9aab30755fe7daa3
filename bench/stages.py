"""Wall time and peak memory of each stage of the demo, beside its compute lower bound.

    .venv/bin/python bench/stages.py [--config recipes/demo.yaml] [--run-dir runs/bench-stages]

Each stage runs as its own `mipo` process (so its peak RSS is its own). Lower bound = the stage's FLOPs at
the measured fp32 GEMM peak: 2N per forward token (prompt + response), 6N per LoRA-DPO token (policy forward,
backward through activations, reference forward).
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

from common import ROOT, gemm_peak_gflops, machine, save


def run_stage(stage, argv):
    t0 = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-m", "mipo", stage, *argv], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, cwd=ROOT)
    _, status, usage = os.wait4(proc.pid, 0)
    if status:
        raise SystemExit(f"mipo {stage} failed ({status}); rerun it by hand to see why")
    return time.perf_counter() - t0, usage.ru_maxrss / 1024


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--config", default="recipes/demo.yaml")
    ap.add_argument("--run-dir", default="runs/bench-stages")
    args = ap.parse_args()
    run_dir = ROOT / args.run_dir
    shutil.rmtree(run_dir, ignore_errors=True)
    argv = ["--config", args.config, "--run-dir", str(run_dir)]

    from mipo import load_recipe, models
    from mipo.inference.hf import prompt_ids
    from mipo.io import read_jsonl

    cfg = load_recipe(ROOT / args.config)
    path = models.resolve(cfg.model)  # materialise once, outside the timed stages
    tok = models.load_tokenizer(path)
    from transformers import AutoConfig, AutoModelForCausalLM

    n = AutoModelForCausalLM.from_config(AutoConfig.from_pretrained(path)).num_parameters()
    peak = gemm_peak_gflops() * 1e9

    times = {s: run_stage(s, argv) for s in ("generate", "train", "evaluate")}
    pairs = read_jsonl(run_dir / "pairs.jsonl")

    def count(msgs, text):
        return len(prompt_ids(tok, [msgs])[0]) + len(tok(text)["input_ids"]) + 1

    gen_tokens = sum(count(p["prompt"], p["chosen"][0]["content"]) for p in pairs)
    bare = [[{"role": "user", "content": p["prompt"][-1]["content"].split("\n\n", 1)[-1]}] for p in pairs]
    gen_tokens += sum(count(b, p["rejected"][0]["content"]) for b, p in zip(bare, pairs))
    train_tokens = sum(count(p["prompt"], p["chosen"][0]["content"]) + count(p["prompt"], p["rejected"][0]["content"])
                       for p in pairs)
    rows = read_jsonl(run_dir / "eval" / "responses.jsonl")
    eval_tokens = sum(count(r["prompt"], r[m]) for r in rows for m in ("base", "trained"))
    # evaluate, per response of each model: its generation, log p under the full and the bare prompt (cond. MI),
    # and under its own + K other prompts (InfoNCE)
    passes = 1 + 2 + (cfg.evaluate.mi_negatives + 1 if cfg.evaluate.mi_negatives else 0)
    bounds = {"generate": 2 * n * gen_tokens / peak, "train": 6 * n * train_tokens / peak,
              "evaluate": 2 * n * eval_tokens * passes / peak}
    print(f"machine: {machine()}; fp32 GEMM peak {peak / 1e9:.1f} GFLOP/s; model {n / 1e6:.1f}M params")
    print(f"{'stage':10s} {'wall s':>8s} {'bound s':>8s} {'bound/wall':>10s} {'peak RSS MB':>12s}")
    for s, (wall, rss) in times.items():
        print(f"{s:10s} {wall:8.1f} {bounds[s]:8.1f} {bounds[s] / wall:10.0%} {rss:12.0f}")
    total = sum(w for w, _ in times.values())
    print(f"{'total':10s} {total:8.1f} {sum(bounds.values()):8.1f}")
    print("results:", save("stages", {"machine": machine(), "gemm_gflops": peak / 1e9, "params": n,
                                       "stages": {s: {"wall_s": w, "peak_rss_mb": r, "bound_s": bounds[s]}
                                                  for s, (w, r) in times.items()}}))
    print(json.dumps(json.loads((run_dir / "metrics.json").read_text())["models"], indent=1))


if __name__ == "__main__":
    main()
