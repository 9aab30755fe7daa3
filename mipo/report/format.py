"""How numbers and metrics read in every report and table."""
from __future__ import annotations

import math

LABELS = {
    "accuracy": "accuracy (↑)", "parsed": "answer parsed (↑)", "cond_mi": "cond. MI, nats (↑)",
    "logp_full": "log p(y | request, context)", "logp_bare": "log p(y | request)", "self_bleu4": "self-BLEU-4 (↓)",
    "mean_response_chars": "mean response chars", "macro_accuracy": "macro accuracy over subjects (↑)",
    "infonce_mi": "InfoNCE MI bound, nats (↑)", "judge_score": "judge score 1-5 (↑)",
    "judge_win": "judge win rate vs reference, ties win (↑)", "judge_strict_win": "judge strict win rate (↑)",
    "judge_pairwise_win": "judge pairwise vs reference, both orders (↑)", "judge_unparsed": "judge replies unparsed",
}


def fmt(v) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "n/a"
    return f"{v:.4f}" if isinstance(v, float) else str(v)


def fmt_ci(ci) -> str:
    return "n/a" if not ci else f"[{ci[0]:.4f}, {ci[1]:.4f}]"


def cell(v, ci=None) -> str:
    """A value with its CI in one table cell: "0.1234 [0.1000, 0.1500]"."""
    return fmt(v) + (f" {fmt_ci(ci)}" if ci and v is not None else "")


def md_row(cells) -> str:
    return "| " + " | ".join(str(c).replace("|", "\\|") for c in cells) + " |"
