"""Shared bench helpers: the machine's fp32 GEMM peak, the embedded model and prompts, interleaved timing."""
from __future__ import annotations

import json
import platform
import statistics
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]


def gemm_peak_gflops(n: int = 2048, reps: int = 10) -> float:
    """Best-of fp32 GEMM throughput: the compute ceiling every figure is compared with."""
    a, b = torch.randn(n, n), torch.randn(n, n)
    torch.mm(a, b)
    best = float("inf")
    for _ in range(reps):
        t = time.perf_counter()
        torch.mm(a, b)
        best = min(best, time.perf_counter() - t)
    return 2 * n ** 3 / best / 1e9


def machine() -> str:
    return f"{platform.processor() or platform.machine()}, {torch.get_num_threads()} torch threads, torch {torch.__version__}"


def embedded():
    from mipo import ModelArgs, models

    models.keep_freed_memory()  # what the `mipo` CLI sets; process-wide, so every candidate runs with it
    return models.load(ModelArgs(name="embedded"))


def demo_prompts(n: int):
    """The first 72-item personalization set's prompts, cycled to n: the workload every figure in bench/README.md
    was measured on (the built-in default set is larger and newer)."""
    from mipo.config import TaskArgs
    from mipo.tasks import get_task
    from mipo.tasks.personalization import DEMO

    task, args = get_task("personalization"), TaskArgs(data=str(DEMO))
    items = task.load(args, "train") + task.load(args, "test")
    return [task.messages(it) for it in (items * (n // len(items) + 1))[:n]]


def interleave(fns: dict, rounds: int) -> dict[str, list]:
    """Run each candidate once per round, A B A B …, so drift and noise hit all of them alike."""
    results = {k: [] for k in fns}
    for r in range(rounds):
        for name, fn in fns.items():
            results[name].append(fn(r))
    return results


def summary(values: list[float]) -> str:
    med = statistics.median(values)
    spread = (max(values) - min(values)) / med * 100 if med else 0.0
    return f"{med:8.1f} (±{spread / 2:.0f}%)"


def save(name: str, payload: dict) -> Path:
    out = ROOT / "bench" / "results" / f"{name}.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(payload, indent=2) + "\n")
    return out
