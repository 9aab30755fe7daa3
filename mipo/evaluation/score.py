"""Per-item scores of a model's responses to the held-out items, all under the same base model (and judge):
the task's metrics, the InfoNCE MI diagnostic, the LLM judge; and self-BLEU-4 over a model's responses."""
from __future__ import annotations

import json
import math
import random
from statistics import fmean

from sacrebleu.metrics import BLEU

from ..behaviour import degeneration
from ..config import Config
from ..inference.hf import HFEngine
from ..seeds import derive
from ..tasks.base import Item, Task


def self_bleu4(responses: list[str]) -> float | None:
    """Mean sentence BLEU-4 of each response against all the others as references (0-100; lower = more diverse).

    sacrebleu sentence BLEU: 13a tokenizer, exponential smoothing, effective order; empty responses skipped;
    None when fewer than two responses are left.
    """
    texts = [r for r in responses if r.strip()]
    if len(texts) < 2:
        return None
    bleu = BLEU(tokenize="13a", smooth_method="exp", effective_order=True)
    return fmean(bleu.sentence_score(t, texts[:i] + texts[i + 1:]).score for i, t in enumerate(texts))


def infonce_mi(task: Task, items: list[Item], responses: list[str], scorer, k: int, seed: int) -> list[float | None]:
    """Per-item InfoNCE terms: log(K+1) - CE_i, with CE_i = -log softmax_j(log p(y_i | x_j))[own prompt].

    Response y_i is scored against its own prompt x_i and the K candidate prompts the task draws for it
    (`Task.candidates`, seeded: the same for every model; personalization: the same request under other users'
    contexts). The mean over items is the InfoNCE lower bound I(prompt; response) >= log(K+1) - mean CE under the
    scoring model (nats; at most log(K+1), its ceiling).
    """
    n = len(items)
    k = min(k, n - 1)
    if k < 1:
        return [None] * n
    rng = random.Random(seed)
    cands = [[task.messages(it)] + task.candidates(items, i, rng, k) for i, it in enumerate(items)]
    flat = scorer([p for c in cands for p in c], [responses[i] for i, c in enumerate(cands) for _ in c])
    out, at = [], 0
    for c in cands:
        s = flat[at:at + len(c)]
        at += len(c)
        if len(s) < 2:
            out.append(None)
            continue
        top = max(s)
        logsumexp = top + math.log(sum(math.exp(v - top) for v in s))
        out.append(math.log(len(s)) + s[0] - logsumexp)  # = log(K+1) - CE_i
    return out


class Scorer:
    """Scores any model's responses to `items` the same way: under `base` (the model before training), with the
    same InfoNCE draw, and with one judge whose verdicts on the reference responses are made once."""

    def __init__(self, cfg: Config, task: Task, items: list[Item], base: HFEngine, resume_dir=None):
        self.cfg, self.task, self.items, self.base, self.resume_dir = cfg, task, items, base, resume_dir
        self.judge, self.ref_scores = None, {}
        self._scored: dict[str, list[tuple[float, int]]] = {}  # the task's log p(y | full prompt) is fluency's too

    def token_logprobs(self, prompts, responses) -> list[tuple[float, int]]:
        """(sum of log p, tokens) per (prompt, response) under the base model, each distinct call computed once."""
        key = json.dumps([prompts, responses])
        if key not in self._scored:
            self._scored[key] = self.base.token_logprobs(
                prompts, responses, batch_size=max(1, self.cfg.evaluate.batch_size // 4), resume_dir=self.resume_dir)
        return self._scored[key]

    def logprobs(self, prompts, responses) -> list[float]:
        return [lp for lp, _ in self.token_logprobs(prompts, responses)]

    def __call__(self, responses: list[str], extractions: dict[int, str] | None = None,
                 logliks: list | None = None) -> list[dict]:
        """Per-item metrics (floats, None where not defined); keys starting with "_" hold raw material. From the
        evaluated model: `extractions`, its replies where the task's rule read no answer (math fallback);
        `logliks`, its log p of every choice (multiple choice)."""
        e, items = self.cfg.evaluate, self.items
        rows = self.task.score(items, responses, self.logprobs)
        if extractions is not None:
            self.task.apply_extractions(items, rows, extractions)
        if logliks is not None:
            self.task.apply_logliks(items, rows, logliks)
        self._plain(responses, rows)
        if e.mi_negatives > 0:
            terms = infonce_mi(self.task, items, responses, self.logprobs, e.mi_negatives,
                               derive(self.cfg.seed, "infonce"))
            for d, v in zip(rows, terms):
                d["infonce_mi"] = v
        if e.judge != "none":
            self._judge(responses, rows)
        return rows

    def _plain(self, responses: list[str], rows: list[dict]) -> None:
        """What a degenerate model cannot hide: breakdown, repetition, non-text, length (mipo/behaviour.py), and
        fluency = the base model's mean log-likelihood per response token given the full prompt (repetitive text
        is *likely*, so fluency is read beside `broken` and `rep4`, never alone). Scores that sum over tokens
        (cond. MI) also get a per-token value, so that longer responses do not raise them by length alone."""
        prompts = [self.task.messages(it) for it in self.items]
        for d, r, (lp, n) in zip(rows, responses, self.token_logprobs(prompts, responses)):
            deg = degeneration(r)
            d.update({k: deg[k] for k in ("broken", "rep4", "nontext", "words")}, fluency=lp / n)
            if "cond_mi" in d:
                d["cond_mi_per_token"] = d["cond_mi"] / n

    def _judge(self, responses: list[str], rows: list[dict]) -> None:
        from .judge import Judge

        e, items = self.cfg.evaluate, self.items
        refs = [i for i, it in enumerate(items) if it.reference]
        if self.judge is None:
            self.judge = Judge(e, seed=self.cfg.seed, device=str(self.base.model.device))
            self.ref_scores = dict(zip(refs, self._pointwise([items[i] for i in refs],
                                                             [items[i].reference for i in refs])))
        scores = self._pointwise(items, responses)
        pair = dict(zip(refs, self.judge.pairwise([items[i] for i in refs], [responses[i] for i in refs],
                                                  [items[i].reference for i in refs]))) if e.judge_pairwise else {}
        for i, (d, sc) in enumerate(zip(rows, scores)):
            d["judge_score"] = sc["value"]
            ref = self.ref_scores.get(i, {}).get("value")
            both = sc["value"] is not None and ref is not None
            d["judge_win"] = float(sc["value"] >= ref) if both else None  # ties are wins
            d["judge_strict_win"] = float(sc["value"] > ref) if both else None
            if "unparsed" in sc:  # per preference: the unparsed replies of this item, dropped or scored 0
                d["judge_unparsed"] = float(sc["unparsed"])
            d["_judge"] = {"raw": sc["raw"], "retried": sc["retried"],
                           "reference_score": ref, **({"pairwise": pair[i]} if i in pair else {})}
            if i in pair:
                d["judge_pairwise_win"] = pair[i]["value"]

    def _pointwise(self, items: list[Item], responses: list[str]) -> list[dict]:
        if self.cfg.evaluate.judge_mode == "per_preference":
            return self.judge.per_preference(items, responses, [self.task.preferences(it) for it in items],
                                             self.task.judge_unparsed)
        return self.judge.pointwise(items, responses)

    def infonce_summary(self) -> dict | None:
        """How many candidates each response was scored against, and the bound's ceiling log(K+1)."""
        k = min(self.cfg.evaluate.mi_negatives, len(self.items) - 1)
        if k < 1:
            return None
        return {"negatives": k, "ceiling": math.log(k + 1), "candidates": self.task.candidate_kind}

    def judge_summary(self) -> dict | None:
        if self.judge is None:
            return None
        e = self.cfg.evaluate
        return {"backend": e.judge, "model": e.judge_model, "pairwise": e.judge_pairwise, "mode": e.judge_mode,
                **({"unparsed_rule": self.task.judge_unparsed, "reference_unparsed_replies": sum(
                    v["unparsed"] for v in self.ref_scores.values())} if e.judge_mode == "per_preference" else {}),
                "n_with_reference": sum(1 for it in self.items if it.reference),
                "reference_unparsed": sum(v["value"] is None for v in self.ref_scores.values()),
                "requests": self.judge.calls}
