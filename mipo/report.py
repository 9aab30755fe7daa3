"""metrics.json -> report.md (before/after table + settings) and plot.png, in the run directory."""
from __future__ import annotations

import io
import json
import math
from pathlib import Path

import yaml

from .io import atomic_path, write_text

LABELS = {
    "accuracy": "accuracy (↑)", "parsed": "answer parsed (↑)", "cond_mi": "cond. MI, nats (↑)",
    "logp_full": "log p(y | request, context)", "logp_bare": "log p(y | request)", "self_bleu4": "self-BLEU-4 (↓)",
    "mean_response_chars": "mean response chars",
}


def fmt(v) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "n/a"
    return f"{v:.4f}" if isinstance(v, float) else str(v)


def table_rows(metrics: dict) -> list[tuple[str, str, str, str]]:
    base, trained = metrics["models"]["base"], metrics["models"]["trained"]
    rows = []
    for k in base:
        b, t = base[k], trained[k]
        rows.append((LABELS.get(k, k), fmt(b), fmt(t), fmt(None if b is None or t is None else t - b)))
    return rows


def render_markdown(metrics: dict, config: dict, timings: dict) -> str:
    out = io.StringIO()
    out.write(f"# mipo report: {metrics['task']}\n\n")
    out.write(f"Held-out items: {metrics['n_items']}. Base = the model before training; trained = after MIPO "
              f"(DPO on self-generated contrastive pairs).\n\n")
    out.write("| metric | base | trained | Δ |\n|---|---|---|---|\n")
    for r in table_rows(metrics):
        out.write("| " + " | ".join(c.replace("|", "\\|") for c in r) + " |\n")
    p = metrics["paired"]
    out.write(f"\nPaired, on `{p['metric']}`: trained higher on {fmt(p['share_trained_higher'])} of items, "
              f"tied on {fmt(p['share_tied'])}, mean difference {fmt(p['mean_difference'])}.\n")
    out.write("\nself-BLEU-4: sacrebleu sentence BLEU (13a tokenizer, exp smoothing, effective order) of each "
              "response against all other responses of the same model, averaged; lower = more diverse.\n")
    if metrics["primary_metric"] == "cond_mi":
        out.write("\ncond. MI: log p(y | request, user context) − log p(y | request) under the base model, "
                  "averaged over held-out responses (nats); higher = the response depends more on the user.\n")
    if timings:
        out.write("\n## Stage times\n\n| stage | seconds |\n|---|---|\n")
        for k in sorted(timings, key=["generate", "train", "evaluate"].index):
            v = timings[k]
            out.write(f"| {k} | {v:.1f} |\n")
    if "train" in metrics:
        out.write(f"\n## Training\n\nsteps: {metrics['train'].get('steps')}, final loss: "
                  f"{fmt(metrics['train'].get('final_loss'))}\n")
    out.write("\n## Settings\n\n```yaml\n" + yaml.safe_dump(config, sort_keys=False) + "```\n")
    out.write("\n![before/after](plot.png)\n")
    return out.getvalue()


def plot(metrics: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    base, trained = metrics["models"]["base"], metrics["models"]["trained"]
    keys = [metrics["primary_metric"], "self_bleu4"]
    fig, axes = plt.subplots(1, len(keys), figsize=(4 * len(keys), 3.2))
    for ax, k in zip(axes, keys):
        vals = [base[k] or 0.0, trained[k] or 0.0]
        ax.bar(["base", "trained"], vals, color=["#9aa5b1", "#2f6fde"])
        ax.set_title(LABELS.get(k, k))
        for i, v in enumerate(vals):
            ax.annotate(fmt(v), (i, v), ha="center", va="bottom", fontsize=8)
    fig.suptitle(f"mipo: {metrics['task']} (n={metrics['n_items']})")
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110)
    plt.close(fig)


def write_report(run_dir: Path) -> Path:
    metrics = json.loads((run_dir / "metrics.json").read_text())
    config = yaml.safe_load((run_dir / "config.yaml").read_text()) if (run_dir / "config.yaml").exists() else {}
    timings = json.loads((run_dir / "timings.json").read_text()) if (run_dir / "timings.json").exists() else {}
    plot(metrics, run_dir / "plot.png")
    write_text(run_dir / "report.md", render_markdown(metrics, config, timings))
    return run_dir / "report.md"
