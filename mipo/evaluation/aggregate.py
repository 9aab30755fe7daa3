"""From per-item scores to what the reports show: means, 95% CIs, paired differences. One set of functions for
`mipo evaluate` (base vs trained) and `mipo compare` (every method, averaged over seeds)."""
from __future__ import annotations

from statistics import fmean

from ..behaviour import distinct_n
from .score import self_bleu4
from .stats import METHOD, gained_lost, interval, mean_present, paired_diff_ci


def metric_keys(rows: list[dict]) -> list[str]:
    """The per-item metrics (keys starting with "_" hold raw material, not metrics), in first-seen order."""
    keys: dict[str, None] = {}
    for r in rows:
        keys.update((k, None) for k in r if not k.startswith("_"))
    return list(keys)


def paired(after: list, before: list, resamples: int, seed: int) -> tuple[float | None, list[float] | None]:
    """Mean of after - before over items where both are present, and its paired bootstrap CI."""
    both = [(a, b) for a, b in zip(after, before) if a is not None and b is not None]
    return (mean_present(a - b for a, b in both),
            paired_diff_ci([a for a, _ in both], [b for _, b in both], resamples, seed))


def run_metrics(task, items, responses: dict[str, list[str]], per_item: dict[str, list[dict]], resamples: int,
                seed: int) -> dict:
    """metrics.json of `mipo evaluate`: per model the mean of each per-item metric with its bootstrap CI, the
    task's extra aggregates, self-BLEU-4 and mean length; with a trained model, the paired base -> trained
    differences."""
    metrics: dict = {"task": task.name, "n_items": len(items), "primary_metric": task.primary_metric, "models": {},
                     "ci": {}, "groups": {},
                     "bootstrap": {"resamples": resamples, "seed": seed, "level": 0.95, "method": METHOD}}
    keys = metric_keys(per_item["base"][:1]) if items else []
    for name, rows in per_item.items():
        m = {k: mean_present(d[k] for d in rows) for k in keys}
        extra = task.summarize(items, rows)
        m.update({k: v for k, v in extra.items() if not isinstance(v, dict)})
        metrics["groups"][name] = {k: v for k, v in extra.items() if isinstance(v, dict)}
        if any("_judge" in d for d in rows):
            m["judge_unparsed"] = float(sum(d["judge_score"] is None for d in rows))
        m["self_bleu4"] = self_bleu4(responses[name])
        m["distinct_2"] = distinct_n(responses[name], 2)
        m["mean_response_chars"] = fmean(len(r) for r in responses[name])
        metrics["models"][name] = m
        metrics["ci"][name] = {k: interval([d[k] for d in rows], resamples, seed) for k in keys}
    if "trained" in per_item:
        metrics["paired"] = _paired_summary(task.primary_metric, keys, per_item["trained"], per_item["base"],
                                            resamples, seed)
    return metrics


def _paired_summary(pm: str, keys: list[str], trained: list[dict], base: list[dict], resamples: int, seed: int):
    diffs = [t[pm] - b[pm] for t, b in zip(trained, base) if t.get(pm) is not None and b.get(pm) is not None]
    mean, ci = paired([t.get(pm) for t in trained], [b.get(pm) for b in base], resamples, seed)
    by_metric = {}
    for k in keys:
        after, before = [t[k] for t in trained], [b[k] for b in base]
        d, c = paired(after, before, resamples, seed)
        by_metric[k] = {"mean_difference": d, "ci": c, **(gained_lost(after, before) or {})}
    return {"metric": pm, "n": len(diffs), "share_trained_higher": mean_present(d > 0 for d in diffs),
            "share_tied": mean_present(d == 0 for d in diffs), "mean_difference": mean, "ci": ci,
            "by_metric": by_metric}


def method_table(task, n_items: int, methods: list[str], seeds: list[int], per: dict, responses: dict,
                 resamples: int, seed: int, baseline: str = "prompting") -> dict:
    """`mipo compare`: per method and metric the mean over seeds, a bootstrap CI over items of the seed-averaged
    per-item values, per-seed means, and the paired difference to `baseline` (the base model) with its CI."""
    keys = sorted({k for rows in per.values() for k in metric_keys(rows[:1])})
    keys.sort(key=lambda k: k != task.primary_metric)

    def item_means(m: str, k: str) -> list[float | None]:
        runs = [per[f"{m}/seed{s}"] for s in seeds if f"{m}/seed{s}" in per]
        return [mean_present(r[i].get(k) for r in runs) for i in range(n_items)]

    base = {k: item_means(baseline, k) for k in keys} if any(k.startswith(f"{baseline}/") for k in per) else None
    result = {"task": task.name, "n_items": n_items, "primary_metric": task.primary_metric, "seeds": seeds,
              "methods": {}, "bootstrap": {"resamples": resamples, "seed": seed, "level": 0.95, "method": METHOD}}
    for m in methods:
        done = [s for s in seeds if f"{m}/seed{s}" in per]
        if not done:
            continue
        entry = {"seeds_done": done, "metrics": {}}
        for k in keys:
            vals = item_means(m, k)
            row = {"mean": mean_present(vals), "ci": interval(vals, resamples, seed),
                   "per_seed": [mean_present(d.get(k) for d in per[f"{m}/seed{s}"]) for s in done]}
            if base is not None and m != baseline:
                row["delta"], row["delta_ci"] = paired(vals, base[k], resamples, seed)
            entry["metrics"][k] = row
        for name, fn in (("self_bleu4", self_bleu4), ("distinct_2", lambda r: distinct_n(r, 2))):
            vals = [fn(responses[f"{m}/seed{s}"]) for s in done]
            entry["metrics"][name] = {"mean": mean_present(vals), "ci": None, "per_seed": vals}
        result["methods"][m] = entry
    result["method_order"] = list(result["methods"])  # compare.json is written with sorted keys
    return result


def response_rows(items, prompts, responses: dict[str, list[str]], per_item: dict[str, list[dict]],
                  prompt_text: list[str] | None = None) -> list[dict]:
    """One row per item, to inspect errors by: its prompt (the messages and, given, the text the model read after
    the chat template), the gold answer or reference, and per model the response, what was extracted from it
    (`<model>_prediction`, math and multiple choice), its metrics (correctness among them) and raw judge replies."""
    rows = []
    for i, (it, p) in enumerate(zip(items, prompts)):
        row = {"id": it.id, "prompt": p, **({"prompt_text": prompt_text[i]} if prompt_text else {}),
               **({"gold": it.answer} if it.answer is not None else {}),
               **({"reference": it.reference} if it.reference else {})}
        for name in responses:
            d = per_item[name][i]
            row[name] = responses[name][i]
            if "_prediction" in d:
                row[f"{name}_prediction"] = d["_prediction"]
            if "_logliks" in d:  # multiple choice: each choice's log p, per way of scoring, and the gold index
                row[f"{name}_choice_logliks"] = d["_logliks"]
            row[f"{name}_metrics"] = {k: v for k, v in d.items() if not k.startswith("_")}
            if "_judge" in d:
                row[f"{name}_judge"] = d["_judge"]
        rows.append(row)
    return rows
