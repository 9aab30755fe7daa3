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
    "violation": "violations: mentions what the context rules out (↓)",
    "cue": "tailored cues not taken from the context (↑)", "parrot": "share of the context repeated back",
    "broken": "broken responses: loops, non-text, empty (↓)", "rep4": "repeated word 4-grams (↓)",
    "nontext": "non-text characters (↓)", "words": "words per response",
    "fluency": "fluency: base log-lik per token, nats (↑)", "cond_mi_per_token": "cond. MI per token, nats (↑)",
    "distinct_2": "distinct-2 over all responses (↑)",
    "accuracy_loglik": "accuracy by choice log-likelihood, chat template (↑)",
    "accuracy_loglik_norm": "accuracy by choice log-likelihood per byte, chat template (↑)",
    "accuracy_loglik_raw": "accuracy by choice log-likelihood, raw text: lm-eval acc (↑)",
    "accuracy_loglik_raw_norm": "accuracy by choice log-likelihood per character, raw text: lm-eval acc_norm (↑)",
    "accuracy_pmi": "accuracy by PMI of the choice, raw text: lm-eval acc_mutual_info (↑)",
    "model_extracted": "answers read by the model itself (rule found none)",
}
# the same in a terminal's column, which must leave room for the numbers (report/terminal.py)
SHORT = {
    "cond_mi_per_token": "cond. MI / token (↑)", "infonce_mi": "InfoNCE MI (↑)",
    "violation": "violations (↓)", "cue": "tailored cues (↑)", "parrot": "context repeated",
    "broken": "broken (↓)", "rep4": "repeated 4-grams (↓)", "nontext": "non-text chars (↓)",
    "fluency": "fluency, nats/token (↑)", "macro_accuracy": "macro accuracy (↑)", "judge_win": "judge win rate (↑)",
    "judge_strict_win": "judge strict win (↑)", "judge_pairwise_win": "judge pairwise win (↑)",
    "accuracy_loglik": "acc. by log-lik (↑)", "accuracy_loglik_norm": "acc. by log-lik/byte (↑)",
    "accuracy_loglik_raw": "lm-eval acc (↑)", "accuracy_loglik_raw_norm": "lm-eval acc_norm (↑)",
    "accuracy_pmi": "lm-eval acc_mutual_info (↑)", "model_extracted": "answers read by model",
    "judge_unparsed": "judge unparsed",
}


def short_label(key: str) -> str:
    """A metric's name in a terminal's column: SHORT's, else LABELS', else the key."""
    return SHORT.get(key, LABELS.get(key, key))


# the order of a report's rows: what the user gets, what could fool it, the information measures, the rest
ORDER = ("accuracy", "parsed", "accuracy_loglik_raw", "accuracy_loglik_raw_norm", "accuracy_pmi", "accuracy_loglik",
         "accuracy_loglik_norm", "model_extracted", "violation", "cue", "parrot",
         "broken", "rep4", "nontext", "fluency", "words", "cond_mi", "cond_mi_per_token", "infonce_mi")
LAST = ("logp_full", "logp_bare", "judge_unparsed", "self_bleu4", "distinct_2", "mean_response_chars")
# direction in which each measure is better, for the report's check that MI did not rise at the user's expense
BETTER = {"violation": -1, "cue": 1, "broken": -1, "rep4": -1, "nontext": -1, "fluency": 1}


def fmt(v) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "n/a"
    return f"{v:.4f}" if isinstance(v, float) else str(v)


def fmt_ci(ci) -> str:
    return "n/a" if not ci else f"[{ci[0]:.4f}, {ci[1]:.4f}]"


def cell(v, ci=None) -> str:
    """A value with its CI in one table cell: "0.1234 [0.1000, 0.1500]"."""
    return fmt(v) + (f" {fmt_ci(ci)}" if ci and v is not None else "")


def row_order(keys, primary: str) -> list[str]:
    """The primary metric, then ORDER, then the rest alphabetically, then LAST."""
    def rank(k):
        if k == primary:
            return (0, 0, k)
        if k in LAST:
            return (3, LAST.index(k), k)
        return (1, ORDER.index(k), k) if k in ORDER else (2, 0, k)
    return sorted(keys, key=rank)


def md_row(cells) -> str:
    return "| " + " | ".join(str(c).replace("|", "\\|") for c in cells) + " |"


def gamed(by: dict) -> list[str]:
    """The measures that got worse for the user while an MI measure rose, from paired differences
    {metric: {"mean_difference", "ci"}}; [] unless at least one of them got worse with its CI excluding 0 (a flag
    on noise would teach readers to ignore it). CIs beside each."""
    rose = [k for k in ("cond_mi", "cond_mi_per_token", "infonce_mi") if (by.get(k, {}).get("mean_difference") or 0) > 0]
    if not rose:
        return []
    worse = []
    for k, sign in BETTER.items():
        d = by.get(k, {})
        if d.get("mean_difference") is not None and d["mean_difference"] * sign < 0:
            ci = d.get("ci")
            sure = " (CI excludes 0)" if ci and (ci[0] > 0 or ci[1] < 0) else ""
            worse.append(f"{LABELS.get(k, k)}: Δ {fmt(d['mean_difference'])} {fmt_ci(ci)}{sure}")
    if not any(w.endswith("(CI excludes 0)") for w in worse):
        return []
    return [f"{', '.join(LABELS.get(k, k) for k in rose)} rose, while:"] + worse
