"""`mipo generate | train | evaluate | report | run` — one flag per config field, or a YAML recipe."""
from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from .config import add_config_flags, config_from_args
from .io import MipoError

STAGES = {
    "generate": "sample responses and build contrastive pairs (run_dir/pairs.jsonl)",
    "train": "DPO on the pairs with TRL (run_dir/train/)",
    "evaluate": "base vs trained (or the base alone) on held-out items (run_dir/metrics.json)",
    "report": "report.md and plot.png from metrics.json",
    "run": "all of the above",
    "compare": "MIPO and its baselines (compare.methods x compare.seeds) on the same prompts: one table",
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="mipo", description="Self-improvement by maximising prompt-response "
                                     "mutual information (MIPO): pairs from the model's own samples, then DPO.")
    sub = parser.add_subparsers(dest="command", required=True)
    for name, help_ in STAGES.items():
        add_config_flags(sub.add_parser(name, help=help_, description=help_))
    ns = parser.parse_args(argv)
    from .models import keep_freed_memory

    keep_freed_memory()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s mipo %(levelname)s %(message)s", datefmt="%H:%M:%S")
    for noisy in ("httpx", "httpx2", "openai", "urllib3", "filelock"):  # one line per HTTP request otherwise
        logging.getLogger(noisy).setLevel(logging.WARNING)
    try:
        cfg = config_from_args(ns)
        from . import pipeline
        from .methods import get_method

        get_method(cfg.method)  # an unknown method is refused before any work, with the nearest known one

        if ns.command == "compare":
            from .compare import compare

            result = compare(cfg)
        else:
            result = getattr(pipeline, ns.command)(cfg)
    except MipoError as e:
        print(f"mipo: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"mipo: interrupted; finished work is kept in {cfg.run_dir}: run the same command again to resume",
              file=sys.stderr)
        return 130
    if ns.command in ("run", "report"):
        print_summary(Path(cfg.run_dir))
    if ns.command == "compare":
        print_compare(Path(cfg.run_dir))
    print(f"outputs: {result}")
    return 0


def print_summary(run_dir: Path) -> None:
    import json

    from rich.console import Console
    from rich.table import Table

    from .report import table_header, table_rows

    metrics = json.loads((run_dir / "metrics.json").read_text())
    what = "base vs trained" if "trained" in metrics["models"] else "base model"
    table = Table(title=f"mipo {metrics['task']}: {what} on {metrics['n_items']} held-out items")
    for col in table_header(metrics):
        table.add_column(col, justify="left" if col == "metric" else "right")
    for row in table_rows(metrics):
        table.add_row(*row)
    console = Console()
    console.print(table)
    p = metrics.get("paired")
    if p and p["share_trained_higher"] is not None:
        console.print(f"trained > base on {p['metric']} for {p['share_trained_higher']:.0%} of items")
    console.print(f"run directory: {run_dir.resolve()}")


def print_compare(run_dir: Path) -> None:
    import json

    from rich.console import Console
    from rich.table import Table

    from .report import cell

    result = json.loads((run_dir / "compare.json").read_text())
    pm = result["primary_metric"]
    table = Table(title=f"mipo compare {result['task']}: {result['n_items']} held-out items, seeds {result['seeds']}")
    for col in ("method", f"{pm} [95% CI]", "Δ vs prompting [95% CI]", "self-BLEU-4"):
        table.add_column(col, justify="left" if col == "method" else "right")
    for m in result["method_order"]:
        e = result["methods"][m]
        r = e["metrics"][pm]
        table.add_row(m, cell(r["mean"], r["ci"]), cell(r.get("delta"), r.get("delta_ci")) if "delta" in r else "—",
                      cell(e["metrics"]["self_bleu4"]["mean"]))
    console = Console()
    console.print(table)
    for k, v in result.get("failures", {}).items():
        console.print(f"[red]failed[/red] {k}: {v}")
    console.print(f"run directory: {run_dir.resolve()}")


if __name__ == "__main__":
    sys.exit(main())
