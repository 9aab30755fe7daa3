"""A run's report: metrics.json -> report.md and plot.png (+ train_curve.png), in the run directory.

report.md: the before/after table with CIs, a check that the MI measures did not rise at the user's expense
(fluency, adherence, breakdown), example requests with both models' answers side by side, the training curve,
stage times and the settings."""
from __future__ import annotations

import io
import json
from pathlib import Path

import yaml

from ..io import read_jsonl, write_text
from .format import LABELS, fmt, fmt_ci, gamed, md_row, row_order
from .plot import bars, curves

N_EXAMPLES = 4


def table_header(metrics: dict, counts: bool = True) -> list[str]:
    """The before/after table's columns; `counts`: the items gained / lost column (the report has it; the
    terminal's summary leaves it out to fit 80 columns)."""
    if "trained" in metrics["models"]:
        return ["metric", "base", "base 95% CI", "trained", "trained 95% CI", "Δ", "Δ 95% CI (paired)"] + (
            ["items gained / lost (McNemar p)"] if counts else [])
    return ["metric", "base", "base 95% CI"]


def table_rows(metrics: dict, counts: bool = True) -> list[tuple[str, ...]]:
    """One row per metric: value and bootstrap CI per model, and the paired difference with its CI."""
    models, ci = metrics["models"], metrics.get("ci", {})
    base, trained = models["base"], models.get("trained")
    by_metric = metrics.get("paired", {}).get("by_metric", {})
    rows = []
    for k in row_order(base, metrics["primary_metric"]):
        row = [LABELS.get(k, k), fmt(base[k]), fmt_ci(ci.get("base", {}).get(k))]
        if trained is not None:
            b, t = base[k], trained[k]
            p = by_metric.get(k, {})
            row += [fmt(t), fmt_ci(ci.get("trained", {}).get(k)), fmt(None if b is None or t is None else t - b),
                    fmt_ci(p.get("ci"))]
            if counts:
                row.append(f"+{p['gained']} / −{p['lost']} ({p['mcnemar_p']:.3g})" if "gained" in p else "")
        rows.append(tuple(row))
    return rows


def examples(run_dir: Path, n: int = N_EXAMPLES) -> str:
    """The first n held-out items (evaluation order) on which base and trained answer differently, side by side."""
    path = run_dir / "eval" / "responses.jsonl"
    if not path.exists():
        return ""
    rows = [r for r in read_jsonl(path) if "trained" in r and r["trained"] != r["base"]][:n]
    out = []
    for r in rows:
        out.append(f"\n**{r['id']}** — {r['prompt'][-1]['content']}\n")
        for name in ("base", "trained"):
            m = r[f"{name}_metrics"]
            marks = ", ".join(f"{k} {fmt(m[k])}" for k in ("violation", "cue", "broken") if m.get(k) is not None)
            out.append(f"- {name}{f' ({marks})' if marks else ''}: {r[name]}")
    return ("\n## Examples (base vs trained, first items where they differ)\n" + "\n".join(out) + "\n") if out else ""


def render_markdown(metrics: dict, config: dict, timings: dict, run_dir: Path | None = None) -> str:
    out = io.StringIO()
    base_only = "trained" not in metrics["models"]
    out.write(f"# mipo report: {metrics['task']}\n\n")
    out.write(f"Held-out items: {metrics.get('items', metrics['n_items'])}. " + (
        "The base model alone (evaluate.base_only).\n\n" if base_only else
        "Base = the model before training; trained = after training on its own samples.\n\n"))
    out.write(sampling_note(metrics.get("sampling")))
    if metrics.get("pmi"):
        q = metrics["pmi"]
        out.write(f"{q['method']}: {q['of']} decoded by context-aware decoding, {q['rule']}, alpha {q['alpha']}, "
                  f"x' = the prompt by the {q['negative']} negative"
                  + (" (`trained` = the base model decoded so; nothing is trained).\n\n" if q["method"] == "pmi-decode"
                     else ".\n\n"))
    flags = gamed(metrics.get("paired", {}).get("by_metric", {}))
    if flags:
        out.write(f"**Check: an MI measure rose while the user got less** — {flags[0]} " + "; ".join(flags[1:]) + "\n\n")
    header = table_header(metrics)
    out.write(md_row(header) + "\n|" + "---|" * len(header) + "\n")
    for r in table_rows(metrics):
        out.write(md_row(r) + "\n")
    out.write(notes(metrics))
    out.write(pairs_section(metrics.get("pairs")))
    out.write(examples(run_dir) if run_dir else "")
    if timings:
        order = ["generate", "train", "evaluate"]
        out.write("\n## Stage times\n\n| stage | seconds |\n|---|---|\n")
        for k in sorted(timings, key=lambda k: order.index(k) if k in order else len(order)):
            out.write(f"| {k} | {timings[k]:.1f} |\n")
    if "train" in metrics:
        out.write(f"\n## Training\n\nsteps: {metrics['train'].get('steps')}, final loss: "
                  f"{fmt(metrics['train'].get('final_loss'))}\n")
        if run_dir and (run_dir / "train_curve.png").exists():
            out.write("\n![training curve](train_curve.png)\n")
    out.write("\n## Settings\n\n```yaml\n" + yaml.safe_dump(config, sort_keys=False) + "```\n")
    out.write("\n![before/after](plot.png)\n")
    return out.getvalue()


def sampling_note(s: dict | None) -> str:
    """Which engine sampled the responses (evaluate.engine) and what ran in process; '' for runs that predate it."""
    if not s:
        return ""
    if s["engine"] == "hf":
        return "Responses sampled in process (evaluate.engine hf), as every score.\n\n"
    models = ", ".join(f"{name}: `{what}`" for name, what in s.get("served", {}).items())
    local = f" {', '.join(s['in_process'])}: decoded in process (context-aware decoding)." if s["in_process"] else ""
    return (f"Responses sampled by evaluate.engine {s['engine']}{f' ({models})' if models else ''}.{local} Scores "
            f"that need log-probs (cond. "
            f"MI, fluency, InfoNCE, log-likelihood accuracy) ran in process, on the weights.\n\n")


def notes(metrics: dict) -> str:
    """What each kind of row means and what could fool it."""
    out, b = io.StringIO(), metrics.get("bootstrap", {})
    out.write("\n95% CIs over items: Wilson's score interval for a 0/1 metric (violation, cue, broken, correct) and "
              "Newcombe's paired interval for its Δ (neither collapses at 0 of n); for other metrics a percentile "
              f"bootstrap ({b.get('resamples')} resamples, seed {b.get('seed')}) resampling items with both models' "
              "values together (paired). n/a = no per-item values (self-BLEU-4, distinct-2, lengths) or fewer than 2 "
              "items.\n")
    p = metrics.get("paired")
    if p:
        out.write(f"\nPaired, on `{p['metric']}` ({p['n']} items): trained higher on {fmt(p['share_trained_higher'])} "
                  f"of items, tied on {fmt(p['share_tied'])}, mean difference {fmt(p['mean_difference'])} "
                  f"(95% CI {fmt_ci(p['ci'])}).\n")
    base = metrics["models"]["base"]
    if "violation" in base or "cue" in base:
        out.write("\nAdherence (plain text rules, mipo/behaviour.py): a violation is a response that names a term the "
                  "user's context rules out; a tailored cue is a term a tailored answer would hold that the context "
                  "does not itself contain (repeating the context back earns nothing). Whole words, plural -s/-es.\n")
    if "broken" in base:
        out.write("\nBreakdown: broken = empty, > 50% repeated word 4-grams, > 10% non-text characters or a letter "
                  "loop (\"komunikomuni\"). Fluency = the base model's mean log-likelihood per response token given the "
                  "full prompt; repetition is *likely*, so read it beside broken and rep4.\n")
    if metrics["primary_metric"] == "cond_mi" or "cond_mi" in base:
        out.write("\ncond. MI: log p(y | request, user context) − log p(y | request) under the base model (nats; per "
                  "token: divided by the response's tokens). Repeating the context back raises it: read it with the "
                  "adherence rows.\n")
    if "infonce" in metrics:
        i = metrics["infonce"]
        out.write(f"\nInfoNCE MI bound: each response is scored by the base model against its own prompt and "
                  f"K = {i['negatives']} candidates ({i['candidates']}), the same draw for every model; "
                  f"I(prompt; response) ≥ log(K+1) − mean CE. Ceiling log(K+1) = {i['ceiling']:.4f} nats.\n")
    out.write("\nself-BLEU-4 (each response against the model's other responses; lower = more diverse) and distinct-2 "
              "(distinct word bigrams / all bigrams over the model's responses) measure diversity.\n")
    j = metrics.get("judge")
    if j and j.get("mode") == "per_preference":
        rule = "left out of the item's mean" if j["unparsed_rule"] == "drop" else "scored 0"
        out.write(f"\nJudge: {j['backend']} `{j['model']}`, the authors' per-preference rubric: one 1-5 score per "
                  f"stated preference (the first integer of the reply, T 0.1), averaged per item; win = mean ≥ the "
                  f"reference response's (ties win), strict = >. {j['n_with_reference']} items have a reference. "
                  f"Unparsed replies are {rule} (`judge_unparsed` above: per item; references: "
                  f"{j['reference_unparsed_replies']}).\n")
    elif j:
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
    return out.getvalue()


def pairs_section(p: dict | None) -> str:
    """What the training pairs held, read without a model (mipo.pair.diagnose): both responses as answers to the
    true prompt, and the 0/1 contrasts DPO was shown."""
    if not p:
        return ""
    keys = list(p["chosen"])
    out = io.StringIO()
    out.write(f"\n## What the pairs held (before training)\n\n{p['pairs']} pairs; both responses read as answers to "
              f"the true prompt, with no model. Identical chosen and rejected: {fmt(p['identical'])}"
              + (f"; share of what only the true prompt says that the chosen response repeats: {fmt(p['chosen_echo'])}"
                 if p.get("chosen_echo") is not None else "") + ".\n\n")
    out.write(md_row(["", *(LABELS.get(k, k) for k in keys)]) + "\n|" + "---|" * (len(keys) + 1) + "\n")
    for side in ("chosen", "rejected"):
        out.write(md_row([side, *(fmt(p[side].get(k)) for k in keys)]) + "\n")
    for k, c in p["contrast"].items():
        out.write(f"\n- {LABELS.get(k, k)}: only the chosen response {c['only_chosen']}, only the rejected "
                  f"{c['only_rejected']}, of {c['n']} pairs")
    out.write("\n\nDPO raises the chosen response over the rejected one: a contrast of right against wrong answers "
              "is in the first count; pairs that differ only in what they are about teach the model to answer "
              "the question it was asked, not to answer it right.\n" if "accuracy" in p["contrast"] else "\n")
    return out.getvalue()


def plot(metrics: dict, path: Path) -> None:
    names = list(metrics["models"])
    keys = [k for k in (metrics["primary_metric"], "violation", "cue", "broken") if k in metrics["models"]["base"]]
    ci = metrics.get("ci", {})
    panels = [(LABELS.get(k, k), [metrics["models"][n][k] or 0.0 for n in names],
               [ci.get(n, {}).get(k) for n in names]) for k in keys]
    bars(path, names, panels, f"mipo: {metrics['task']} (n={metrics['n_items']}; 95% CI)", annotate=True)


def train_curve(run_dir: Path) -> bool:
    """train_curve.png: loss and (DPO) reward margin per logged step, from train/train_summary.json."""
    path = run_dir / "train" / "train_summary.json"
    if not path.exists():
        return False
    history = [h for h in json.loads(path.read_text()).get("log_history", []) if "loss" in h and "step" in h]
    series = [(k, [(h["step"], h[k]) for h in history if k in h]) for k in ("loss", "rewards/margins")]
    series = [(k, pts) for k, pts in series if pts]
    if not series:
        return False
    curves(run_dir / "train_curve.png", series, "training (per logged step)")
    return True


def write_report(run_dir: Path) -> Path:
    metrics = json.loads((run_dir / "metrics.json").read_text())
    config = yaml.safe_load((run_dir / "config.yaml").read_text()) if (run_dir / "config.yaml").exists() else {}
    timings = json.loads((run_dir / "timings.json").read_text()) if (run_dir / "timings.json").exists() else {}
    plot(metrics, run_dir / "plot.png")
    if "train" in metrics:
        train_curve(run_dir)
    write_text(run_dir / "report.md", render_markdown(metrics, config, timings, run_dir))
    return run_dir / "report.md"
