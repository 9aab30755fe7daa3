"""Bar charts of the reports (run: base vs trained; compare: every method), with their 95% CIs where known."""
from __future__ import annotations

from pathlib import Path

from ..io import atomic_path
from .format import fmt

BASE_COLOR, MODEL_COLOR = "#9aa5b1", "#2f6fde"


def bars(path: Path, names: list[str], panels: list[tuple[str, list[float], list | None]], title: str,
         annotate: bool = False, colors: list[str] | None = None) -> None:
    """One panel per (title, values, CIs or None) side by side, one bar per name; written atomically as PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    wide = len(names) > 3
    size = (1.1 * len(names) + 2, 3.6) if wide else (4 * len(panels), 3.2)
    fig, axes = plt.subplots(1, len(panels), figsize=size, squeeze=False)
    colors = colors or [BASE_COLOR, MODEL_COLOR][:len(names)]
    for ax, (label, vals, cis) in zip(axes[0], panels):
        if cis is None:
            ax.bar(names, vals, color=colors)
        else:
            err = [[v - (c[0] if c else v) for v, c in zip(vals, cis)], [(c[1] if c else v) - v for v, c in zip(vals, cis)]]
            ax.bar(names, vals, yerr=err, capsize=4, color=colors)
        ax.set_title(label)
        if annotate:
            for i, v in enumerate(vals):
                ax.annotate(fmt(v), (i, v), ha="center", va="bottom", fontsize=8)
        if wide:
            plt.setp(ax.get_xticklabels(), rotation=30, ha="right")
    fig.suptitle(title)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110)
    plt.close(fig)


def curves(path: Path, series: list[tuple[str, list[tuple[float, float]]]], title: str) -> None:
    """One panel per (name, [(x, y), ...]) line; written atomically as PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(series), figsize=(4 * len(series), 3.2), squeeze=False)
    for ax, (name, pts) in zip(axes[0], series):
        ax.plot([x for x, _ in pts], [y for _, y in pts], marker="o", color=MODEL_COLOR)
        ax.set_title(name)
        ax.set_xlabel("step")
    fig.suptitle(title)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110)
    plt.close(fig)
