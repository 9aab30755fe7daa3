"""`mipo compare`'s table: compare.md and compare.png from the method x metric result (evaluation/aggregate.py)."""
from __future__ import annotations

from pathlib import Path

from .format import LABELS, cell, fmt, md_row
from .plot import BASE_COLOR, MODEL_COLOR, bars


def render(result: dict, failures: dict, timings: dict) -> str:
    pm = result["primary_metric"]
    order = result["method_order"]
    keys = [pm] + [k for k in result["methods"][order[0]]["metrics"] if k != pm] if order else []
    out = [f"# mipo compare: {result['task']}\n",
           f"Held-out items: {result.get('items', result['n_items'])}; seeds {', '.join(map(str, result['seeds']))}. Each cell: mean over "
           f"seeds [95% CI over items of the seed-averaged per-item values: Wilson for a 0/1 metric with one seed, else "
           f"percentile bootstrap]. Δ = paired difference to "
           f"`prompting` (the base model) [95% CI]. self-BLEU-4 has no per-item values: mean over seeds.\n"]
    head = ["method", "seeds"] + [LABELS.get(k, k) for k in keys] + [f"Δ {LABELS.get(pm, pm)}"]
    out.append(md_row(head) + "\n|" + "---|" * len(head))
    for m in order:
        entry = result["methods"][m]
        cells = [m, str(len(entry["seeds_done"]))]
        cells += [cell(entry["metrics"].get(k, {}).get("mean"), entry["metrics"].get(k, {}).get("ci")) for k in keys]
        r = entry["metrics"].get(pm, {})
        cells.append(cell(r.get("delta"), r.get("delta_ci")) if "delta" in r else "—")
        out.append(md_row(cells))
    out.append(f"\nPer seed, {LABELS.get(pm, pm)}:\n")
    for m in order:
        entry = result["methods"][m]
        vals = ", ".join(f"seed {s}: {fmt(v)}" for s, v in zip(entry["seeds_done"], entry["metrics"][pm]["per_seed"]))
        out.append(f"- {m}: {vals}")
    if failures:
        out.append("\nFailed (not in the table):\n")
        out += [f"- {k}: {v}" for k, v in failures.items()]
    if timings:
        out.append("\nWall time (s): " + ", ".join(f"{k} {v:.0f}" for k, v in timings.items()))
    return "\n".join(out) + "\n\n![compare](compare.png)\n"


def plot(result: dict, path: Path) -> None:
    pm = result["primary_metric"]
    names = result["method_order"]
    means = [result["methods"][m]["metrics"][pm]["mean"] or 0.0 for m in names]
    cis = [result["methods"][m]["metrics"][pm]["ci"] for m in names]
    bars(path, names, [(LABELS.get(pm, pm), means, cis)],
         f"mipo compare: {result['task']} (n={result['n_items']}, seeds={len(result['seeds'])}; 95% CI)",
         colors=[BASE_COLOR if m == "prompting" else MODEL_COLOR for m in names])
