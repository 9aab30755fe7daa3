"""glibc's default allocator vs `mipo.models.keep_freed_memory` (what the CLI sets), on the demo's stages.

    .venv/bin/python bench/allocator.py [--stages generate,train] [--rounds 2]

The setting is process-wide, so each arm is its own `mipo` process (MIPO_MALLOC=system turns it off), run
A B A B on the same recipe and run directory. Prints wall time, system time and minor page faults per stage.
"""
from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import time

from common import ROOT, machine, save


def run(stage: str, argv: list[str], system: bool) -> dict:
    env = {**os.environ, "MIPO_MALLOC": "system" if system else "mipo"}
    t0 = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-m", "mipo", stage, *argv], env=env, cwd=ROOT,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    _, status, ru = os.wait4(proc.pid, 0)
    if status:
        raise SystemExit(f"mipo {stage} failed ({status}); rerun it by hand to see why")
    return {"wall_s": time.perf_counter() - t0, "sys_s": ru.ru_stime, "user_s": ru.ru_utime, "minflt": ru.ru_minflt,
            "maxrss_mb": ru.ru_maxrss / 1024}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--config", default="recipes/demo.yaml")
    ap.add_argument("--run-dir", default="runs/bench-allocator")
    ap.add_argument("--stages", default="generate,train")
    ap.add_argument("--rounds", type=int, default=2)
    args = ap.parse_args()
    run_dir = ROOT / args.run_dir
    shutil.rmtree(run_dir, ignore_errors=True)
    argv = ["--config", args.config, "--run-dir", str(run_dir)]
    res: dict = {}
    for stage in args.stages.split(","):
        if stage != "generate" and not (run_dir / "pairs.jsonl").exists():
            run("generate", argv, system=True)  # the later stages need the pairs
        for r in range(args.rounds):
            for arm in ("glibc-default", "keep-freed"):
                res.setdefault(stage, {}).setdefault(arm, []).append(
                    run(stage, argv + ["--overwrite", "true"], system=arm == "glibc-default"))
    print(f"machine: {machine()}; {args.config}, {args.rounds} rounds interleaved, each stage its own process")
    print(f"{'stage':9s} {'allocator':14s} {'wall s':>8s} {'sys s':>7s} {'minor faults':>13s} {'peak RSS MB':>12s} {'speed-up':>9s}")
    for stage, arms in res.items():
        base = statistics.median(x["wall_s"] for x in arms["glibc-default"])
        for arm, runs in arms.items():
            med = {k: statistics.median(x[k] for x in runs) for k in runs[0]}
            print(f"{stage:9s} {arm:14s} {med['wall_s']:8.1f} {med['sys_s']:7.1f} {med['minflt']:13.0f} "
                  f"{med['maxrss_mb']:12.0f} {base / med['wall_s']:8.2f}x")
    print("results:", save("allocator", {"machine": machine(), "args": vars(args), "runs": res}))


if __name__ == "__main__":
    main()
