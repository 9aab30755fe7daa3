"""Base model vs trained model on held-out items: task metrics, bootstrap CIs, paired comparison, self-BLEU-4,
the InfoNCE MI diagnostic and (optionally) the LLM judge."""
from __future__ import annotations

import contextlib
import logging
import math
import random
from pathlib import Path
from statistics import fmean

from sacrebleu.metrics import BLEU

from . import generate
from .config import Config
from .stats import bootstrap_ci, mean_present, paired_diff_ci
from .tasks.base import Item, Task

log = logging.getLogger("mipo")


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


def load_trained(cfg: Config, base_model, train_dir: Path):
    """Return (model, base_context): `base_context()` switches the same object back to the base model.

    LoRA: the adapter on top of the base weights already in memory, disabled for the base (one copy).
    Full fine-tune: a second model; the base stays the original object.
    """
    if (train_dir / "adapter").is_dir():
        from peft import PeftModel

        model = PeftModel.from_pretrained(base_model, str(train_dir / "adapter")).eval()
        return model, model.disable_adapter
    from . import models

    trained, _ = models.load(cfg.model, str(train_dir / "model"))
    return trained, None


def infonce_mi(task: Task, items: list[Item], responses: list[str], scorer, k: int, seed: int) -> list[float | None]:
    """Per-item InfoNCE terms: log(K+1) - CE_i, with CE_i = -log softmax_j(log p(y_i | x_j))[own prompt].

    Response y_i is scored against its own prompt x_i and K other prompts of the set (seeded draw, the same for
    every model). The mean over items is the InfoNCE lower bound I(prompt; response) >= log(K+1) - mean CE
    under the scoring model (nats; at most log(K+1)).
    """
    n = len(items)
    k = min(k, n - 1)
    if k < 1:
        return [None] * n
    rng = random.Random(seed)
    prompts = [task.messages(it) for it in items]
    cands = [[i] + rng.sample([j for j in range(n) if j != i], k) for i in range(n)]
    flat = scorer([prompts[j] for c in cands for j in c], [responses[i] for i, c in enumerate(cands) for _ in c])
    out = []
    for i in range(n):
        s = flat[i * (k + 1):(i + 1) * (k + 1)]
        top = max(s)
        logsumexp = top + math.log(sum(math.exp(v - top) for v in s))
        out.append(math.log(k + 1) + s[0] - logsumexp)  # = log(K+1) - CE_i
    return out


def run_judge(cfg: Config, items: list[Item], responses: dict[str, list[str]], per_item: dict, device: str) -> dict:
    """Judge every model's responses (and the references once); add per-item judge metrics; return a summary."""
    from .judge import Judge

    e = cfg.evaluate
    judge = Judge(e, seed=cfg.seed, device=device)
    refs = [i for i, it in enumerate(items) if it.reference]
    ref_scores = dict(zip(refs, judge.pointwise([items[i] for i in refs], [items[i].reference for i in refs])))
    for name, resp in responses.items():
        scores = judge.pointwise(items, resp)
        pair = dict(zip(refs, judge.pairwise([items[i] for i in refs], [resp[i] for i in refs],
                                             [items[i].reference for i in refs]))) if e.judge_pairwise else {}
        for i, (d, sc) in enumerate(zip(per_item[name], scores)):
            d["judge_score"] = sc["value"]
            ref = ref_scores.get(i, {}).get("value")
            both = sc["value"] is not None and ref is not None
            d["judge_win"] = float(sc["value"] >= ref) if both else None  # ties are wins
            d["judge_strict_win"] = float(sc["value"] > ref) if both else None
            d["_judge"] = {"raw": sc["raw"], "retried": sc["retried"],
                           "reference_score": ref, **({"pairwise": pair[i]} if i in pair else {})}
            if e.judge_pairwise and i in pair:
                d["judge_pairwise_win"] = pair[i]["value"]
    return {"backend": e.judge, "model": e.judge_model, "pairwise": e.judge_pairwise,
            "n_with_reference": len(refs), "reference_unparsed": sum(v["value"] is None for v in ref_scores.values()),
            "requests": judge.calls}


def score_all(cfg: Config, task: Task, items: list[Item], responses: dict[str, list[str]], base_scorer,
              device: str) -> tuple[dict[str, list[dict]], dict | None]:
    """Per-item metrics of each model's responses: the task's scores, the InfoNCE MI terms, the judge's."""
    e = cfg.evaluate
    per_item = {name: task.score(items, resp, base_scorer) for name, resp in responses.items()}
    if e.mi_negatives > 0:
        for name, resp in responses.items():
            for d, v in zip(per_item[name], infonce_mi(task, items, resp, base_scorer, e.mi_negatives, cfg.seed + 11)):
                d["infonce_mi"] = v
    judge_summary = run_judge(cfg, items, responses, per_item, device) if e.judge != "none" else None
    return per_item, judge_summary


def evaluate(cfg: Config, task: Task, items: list[Item], tok, base_model, trained_model, base_ctx,
             resume_dir: Path | None = None) -> tuple[dict, list[dict]]:
    """Generate with each model, score, and aggregate. `trained_model` None = the base model alone."""
    e = cfg.evaluate
    prompts = [task.messages(it) for it in items]

    def run(model, ctx, name):
        with (ctx() if ctx else contextlib.nullcontext()):
            return generate.sample(model, tok, prompts, temperature=e.temperature, top_p=e.top_p,
                                   max_new_tokens=e.max_new_tokens, batch_size=e.batch_size, seed=cfg.seed + 7,
                                   desc=f"eval {name}", resume_dir=resume_dir)

    # In the LoRA case base and trained are one object: the base is the trained model with adapters disabled.
    base_is_trained = base_ctx is not None
    base_model_obj = trained_model if base_is_trained else base_model
    responses = {"base": run(base_model_obj, base_ctx, "base")}
    if trained_model is not None:
        responses["trained"] = run(trained_model, None, "trained")

    def base_scorer(p, r):
        with (base_ctx() if base_ctx else contextlib.nullcontext()):
            return generate.logprobs(base_model_obj, tok, p, r, batch_size=max(1, e.batch_size // 4),
                                    resume_dir=resume_dir)

    per_item, judge_summary = score_all(cfg, task, items, responses, base_scorer, str(base_model_obj.device))

    metrics: dict = {"task": task.name, "n_items": len(items), "primary_metric": task.primary_metric, "models": {},
                     "ci": {}, "groups": {},
                     "bootstrap": {"resamples": e.bootstrap, "seed": cfg.seed, "level": 0.95, "method": "percentile"}}
    keys = [k for k in per_item["base"][0] if not k.startswith("_")] if items else []
    for name in responses:
        rows = per_item[name]
        m = {k: mean_present(d[k] for d in rows) for k in keys}
        extra = task.summarize(items, rows)
        m.update({k: v for k, v in extra.items() if not isinstance(v, dict)})
        metrics["groups"][name] = {k: v for k, v in extra.items() if isinstance(v, dict)}
        if judge_summary:
            m["judge_unparsed"] = float(sum(d["judge_score"] is None for d in rows))
        m["self_bleu4"] = self_bleu4(responses[name])
        m["mean_response_chars"] = fmean(len(r) for r in responses[name])
        metrics["models"][name] = m
        metrics["ci"][name] = {k: bootstrap_ci([d[k] for d in rows], e.bootstrap, cfg.seed) for k in keys}
    if judge_summary:
        metrics["judge"] = judge_summary
    if "trained" in responses:
        pm = task.primary_metric
        pairs = [(t[pm], b[pm]) for t, b in zip(per_item["trained"], per_item["base"])
                 if t.get(pm) is not None and b.get(pm) is not None]
        diffs = [t - b for t, b in pairs]
        metrics["paired"] = {
            "metric": pm, "n": len(diffs),
            "share_trained_higher": mean_present(d > 0 for d in diffs), "share_tied": mean_present(d == 0 for d in diffs),
            "mean_difference": mean_present(diffs),
            "ci": paired_diff_ci([t for t, _ in pairs], [b for _, b in pairs], e.bootstrap, cfg.seed),
            "by_metric": {k: {"mean_difference": mean_present(t[k] - b[k] for t, b in zip(per_item["trained"], per_item["base"])
                                                        if t[k] is not None and b[k] is not None),
                              "ci": paired_diff_ci([t[k] for t in per_item["trained"]], [b[k] for b in per_item["base"]],
                                                   e.bootstrap, cfg.seed)} for k in keys}}
    rows = []
    for i, (it, p) in enumerate(zip(items, prompts)):
        row = {"id": it.id, "prompt": p, **({"reference": it.reference} if it.reference else {})}
        for name in responses:
            row[name] = responses[name][i]
            row[f"{name}_metrics"] = {k: v for k, v in per_item[name][i].items() if not k.startswith("_")}
            if "_judge" in per_item[name][i]:
                row[f"{name}_judge"] = per_item[name][i]["_judge"]
        rows.append(row)
    return metrics, rows
