"""A run's report: metrics.json -> report.md (before/after table + settings) and plot.png, in the run directory."""
from __future__ import annotations

import io
import json
from pathlib import Path

import yaml

from ..io import write_text
from .format import LABELS, fmt, fmt_ci, md_row
from .plot import bars


def table_header(metrics: dict) -> list[str]:
    if "trained" in metrics["models"]:
        return ["metric", "base", "base 95% CI", "trained", "trained 95% CI", "Δ", "Δ 95% CI (paired)"]
    return ["metric", "base", "base 95% CI"]


def table_rows(metrics: dict) -> list[tuple[str, ...]]:
    """One row per metric: value and bootstrap CI per model, and the paired difference with its CI."""
    models, ci = metrics["models"], metrics.get("ci", {})
    base, trained = models["base"], models.get("trained")
    by_metric = metrics.get("paired", {}).get("by_metric", {})
    # metrics.json is written with sorted keys: show the primary metric first and the descriptive rows last
    last = ("judge_unparsed", "self_bleu4", "mean_response_chars")
    order = sorted(base, key=lambda k: (k != metrics["primary_metric"], k in last, last.index(k) if k in last else 0))
    rows = []
    for k in order:
        row = [LABELS.get(k, k), fmt(base[k]), fmt_ci(ci.get("base", {}).get(k))]
        if trained is not None:
            b, t = base[k], trained[k]
            row += [fmt(t), fmt_ci(ci.get("trained", {}).get(k)), fmt(None if b is None or t is None else t - b),
                    fmt_ci(by_metric.get(k, {}).get("ci"))]
        rows.append(tuple(row))
    return rows


def render_markdown(metrics: dict, config: dict, timings: dict) -> str:
    out = io.StringIO()
    base_only = "trained" not in metrics["models"]
    out.write(f"# mipo report: {metrics['task']}\n\n")
    if base_only:
        out.write(f"Held-out items: {metrics['n_items']}. The base model alone (evaluate.base_only).\n\n")
    else:
        out.write(f"Held-out items: {metrics['n_items']}. Base = the model before training; trained = after MIPO "
                  f"(DPO on self-generated contrastive pairs).\n\n")
    header = table_header(metrics)
    out.write(md_row(header) + "\n|" + "---|" * len(header) + "\n")
    for r in table_rows(metrics):
        out.write(md_row(r) + "\n")
    b = metrics.get("bootstrap", {})
    out.write(f"\n95% CIs: percentile bootstrap over items ({b.get('resamples')} resamples, seed {b.get('seed')}); "
              "the Δ interval resamples items with both models' values together (paired). n/a = no per-item values "
              "(self-BLEU-4, lengths) or fewer than 2 items.\n")
    p = metrics.get("paired")
    if p:
        out.write(f"\nPaired, on `{p['metric']}` ({p['n']} items): trained higher on {fmt(p['share_trained_higher'])} "
                  f"of items, tied on {fmt(p['share_tied'])}, mean difference {fmt(p['mean_difference'])} "
                  f"(95% CI {fmt_ci(p['ci'])}).\n")
    out.write("\nself-BLEU-4: sacrebleu sentence BLEU (13a tokenizer, exp smoothing, effective order) of each "
              "response against all other responses of the same model, averaged; lower = more diverse.\n")
    if "infonce_mi" in metrics["models"]["base"]:
        out.write("\nInfoNCE MI bound: each response y_i is scored by the base model against its own prompt and K "
                  "other prompts of the held-out set (the same draw for every model); I(prompt; response) ≥ "
                  "log(K+1) − mean CE, CE_i = −log softmax_j log p(y_i | x_j) at the own prompt. At most "
                  "log(K+1) nats.\n")
    if metrics["primary_metric"] == "cond_mi":
        out.write("\ncond. MI: log p(y | request, user context) − log p(y | request) under the base model, "
                  "averaged over held-out responses (nats); higher = the response depends more on the user.\n")
    j = metrics.get("judge")
    if j:
        out.write(f"\nJudge: {j['backend']} `{j['model']}`, pointwise 1-5 on how well the response addresses the "
                  f"user's stated preferences; win = score ≥ the reference response's score (ties win), strict = >. "
                  f"{j['n_with_reference']} items have a reference; {j['reference_unparsed']} reference judgements "
                  f"and the `judge replies unparsed` counts above stayed unparsable after one retry and are left out "
                  f"of the rates, not scored.\n")
    for name, groups in metrics.get("groups", {}).items():
        for gname, table in groups.items():
            out.write(f"\n### {name}: {gname.replace('_', ' ')}\n\n| group | n | accuracy |\n|---|---|---|\n")
            for g, v in table.items():
                out.write(f"| {g} | {v['n']} | {fmt(v['accuracy'])} |\n")
    if timings:
        order = ["generate", "train", "evaluate"]
        out.write("\n## Stage times\n\n| stage | seconds |\n|---|---|\n")
        for k in sorted(timings, key=lambda k: order.index(k) if k in order else len(order)):
            out.write(f"| {k} | {timings[k]:.1f} |\n")
    if "train" in metrics:
        out.write(f"\n## Training\n\nsteps: {metrics['train'].get('steps')}, final loss: "
                  f"{fmt(metrics['train'].get('final_loss'))}\n")
    out.write("\n## Settings\n\n```yaml\n" + yaml.safe_dump(config, sort_keys=False) + "```\n")
    out.write("\n![before/after](plot.png)\n")
    return out.getvalue()


def plot(metrics: dict, path: Path) -> None:
    names = list(metrics["models"])
    keys = [k for k in (metrics["primary_metric"], "self_bleu4") if k in metrics["models"]["base"]]
    panels = [(LABELS.get(k, k), [metrics["models"][n][k] or 0.0 for n in names], None) for k in keys]
    bars(path, names, panels, f"mipo: {metrics['task']} (n={metrics['n_items']})", annotate=True)


def write_report(run_dir: Path) -> Path:
    metrics = json.loads((run_dir / "metrics.json").read_text())
    config = yaml.safe_load((run_dir / "config.yaml").read_text()) if (run_dir / "config.yaml").exists() else {}
    timings = json.loads((run_dir / "timings.json").read_text()) if (run_dir / "timings.json").exists() else {}
    plot(metrics, run_dir / "plot.png")
    write_text(run_dir / "report.md", render_markdown(metrics, config, timings))
    return run_dir / "report.md"
