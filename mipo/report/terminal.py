"""The table `mipo run | evaluate | report | compare` prints at the end: the rows a user reads first, with the
change and its CI, one line per row fitted to the terminal's width (labels cut short before anything wraps), or
markdown when stdout is not a terminal (a log file, a pipe); then where the full report is."""
from __future__ import annotations

import json
from pathlib import Path

from rich import box
from rich.cells import cell_len
from rich.console import Console
from rich.markup import escape
from rich.measure import Measurement
from rich.table import Table

from .format import LAST, cell, fmt, md_row, row_order
from .format import short_label as label  # the column's name of a metric


def run_table(metrics: dict) -> tuple[str, list[str], list[tuple[str, ...]]]:
    """Title, header and rows of a run: each metric but LAST's (raw log-likelihoods, diversity, length: report.md
    has them) with base, trained and Δ [paired 95% CI]; the base model alone: base [95% CI]."""
    base, trained, ci = metrics["models"]["base"], metrics["models"].get("trained"), metrics.get("ci", {})
    by_metric = metrics.get("paired", {}).get("by_metric", {})
    keys = [k for k in row_order(base, metrics["primary_metric"]) if k not in LAST]
    what = "base vs trained" if trained is not None else "base model"
    title = f"mipo {metrics['task']}: {what} on {metrics['n_items']} held-out items"
    if trained is None:
        return title, ["metric", "base [95% CI]"], [(label(k), cell(base[k], ci.get("base", {}).get(k))) for k in keys]
    rows = []
    for k in keys:
        delta = None if base[k] is None or trained[k] is None else trained[k] - base[k]
        rows.append((label(k), fmt(base[k]), fmt(trained[k]), cell(delta, by_metric.get(k, {}).get("ci"))))
    return title, ["metric", "base", "trained", "Δ [95% CI, paired]"], rows


def compare_table(result: dict) -> tuple[str, list[str], list[tuple[str, ...]]]:
    pm = result["primary_metric"]
    title = f"mipo compare {result['task']}: {result['n_items']} held-out items, seeds {result['seeds']}"
    rows = []
    for m in result["method_order"]:
        e = result["methods"][m]
        r = e["metrics"][pm]
        rows.append((m, cell(r["mean"], r["ci"]), cell(r.get("delta"), r.get("delta_ci")) if "delta" in r else "—",
                     cell(e["metrics"]["self_bleu4"]["mean"])))
    return title, ["method", f"{label(pm)} [95% CI]", "Δ vs prompting [95% CI]", "self-BLEU-4 (↓)"], rows


def table(header: list[str], rows: list[tuple[str, ...]], cols, label_width: int | None = None) -> Table:
    """The columns `cols` of the rows, one line each: the numbers keep their width, the labels (first column) are
    cut to `label_width` with an ellipsis."""
    out = Table(box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False)
    for i in cols:
        width = max(cell_len(r[i]) for r in [header, *rows])
        out.add_column(header[i], justify="right" if i else "left", no_wrap=True, overflow="ellipsis",
                       min_width=width if i else None, max_width=None if i else label_width)
    for row in rows:
        out.add_row(*(row[i] for i in cols))
    return out


def show(console: Console, title: str, header: list[str], rows: list[tuple[str, ...]], narrow: tuple[int, ...]):
    """On a terminal: a table as wide as the terminal at most, each row on one line, the labels cut to what is
    left; where that is under 12 characters, the `narrow` columns alone (the label and the change with its CI).
    Elsewhere (a log file, a pipe): the title and a markdown table, every column."""
    if not console.is_terminal:
        console.print("\n".join([title, "", md_row(header), "|" + "---|" * len(header), *map(md_row, rows)]),
                      markup=False, highlight=False, soft_wrap=True)
        return
    unbounded = console.options.update(max_width=10_000)  # the width it wants, not what the terminal allows
    for cols in (range(len(header)), narrow):
        labels = max(cell_len(r[0]) for r in [header, *rows])
        others = Measurement.get(console, unbounded, table(header, rows, cols)).maximum - labels
        if console.width - others >= 12:
            break
    console.print(title, highlight=False)
    console.print(table(header, rows, cols, label_width=max(console.width - others, 8)), highlight=False)


def print_summary(run_dir: Path, console: Console | None = None) -> None:
    """The run's table (metrics.json), the share of items the trained model scored higher on, and where the
    report is (or the run directory, before `mipo report` wrote one)."""
    console = console or Console()
    metrics = json.loads((run_dir / "metrics.json").read_text())
    show(console, *run_table(metrics), narrow=(0, -1))
    p = metrics.get("paired")
    if p and p["share_trained_higher"] is not None:
        console.print(f"trained > base on {label(p['metric'])} for {p['share_trained_higher']:.0%} of items",
                      highlight=False)
    console.print(f"run directory: {run_dir.resolve()}", highlight=False, soft_wrap=True)
    if (run_dir / "report.md").exists():
        console.print(f"report (every measure, per-model CIs, examples): {(run_dir / 'report.md').resolve()}",
                      highlight=False, soft_wrap=True)


def print_compare(run_dir: Path, console: Console | None = None) -> None:
    console = console or Console()
    result = json.loads((run_dir / "compare.json").read_text())
    show(console, *compare_table(result), narrow=(0, 2))
    for k, v in result.get("failures", {}).items():
        console.print(f"[red]failed[/red] {escape(k)}: {escape(str(v))}", highlight=False)
    console.print(f"run directory: {run_dir.resolve()}", highlight=False, soft_wrap=True)
    if (run_dir / "compare.md").exists():
        console.print(f"report: {(run_dir / 'compare.md').resolve()}", highlight=False, soft_wrap=True)
