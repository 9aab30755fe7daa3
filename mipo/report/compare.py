"""`mipo compare`'s table: compare.md and compare.png from the method x metric result (evaluation/aggregate.py)."""
from __future__ import annotations

from pathlib import Path

from .format import LABELS, cell, fmt, gamed, md_row, row_order
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
    out += deltas(result, keys)
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


def deltas(result: dict, keys: list[str]) -> list[str]:
    """Every method's paired difference to the base model on every per-item metric, the user-facing measures
    beside the MI ones, and the methods whose MI rose while the user got less (the same check as `mipo report`)."""
    keys = [k for k in row_order(keys, result["primary_metric"])
            if any("delta" in e["metrics"].get(k, {}) for e in result["methods"].values())]
    if not keys:
        return []
    out = ["\nPaired difference to `prompting` (the base model) on each item's seed-averaged value [95% CI]:\n",
           md_row(["method"] + [f"Δ {LABELS.get(k, k)}" for k in keys]), "|" + "---|" * (len(keys) + 1)]
    flagged = []
    for m in result["method_order"]:
        ms = result["methods"][m]["metrics"]
        if not any("delta" in ms.get(k, {}) for k in keys):
            continue
        out.append(md_row([m] + [cell(ms[k]["delta"], ms[k]["delta_ci"]) if "delta" in ms.get(k, {}) else "—"
                                 for k in keys]))
        flags = gamed({k: {"mean_difference": ms[k]["delta"], "ci": ms[k]["delta_ci"]} for k in keys if "delta" in ms[k]})
        if flags:
            flagged.append(f"- **{m}**: {flags[0]} " + "; ".join(flags[1:]))
    if flagged:
        out += ["\n**Check: an MI measure rose while the user got less**\n"] + flagged
    return out


def plot(result: dict, path: Path) -> None:
    pm = result["primary_metric"]
    names = result["method_order"]
    means = [result["methods"][m]["metrics"][pm]["mean"] or 0.0 for m in names]
    cis = [result["methods"][m]["metrics"][pm]["ci"] for m in names]
    bars(path, names, [(LABELS.get(pm, pm), means, cis)],
         f"mipo compare: {result['task']} (n={result['n_items']}, seeds={len(result['seeds'])}; 95% CI)",
         colors=[BASE_COLOR if m == "prompting" else MODEL_COLOR for m in names])
