"""Base model vs trained model on held-out items: task metrics, paired comparison and self-BLEU-4."""
from __future__ import annotations

import contextlib
import logging
from pathlib import Path
from statistics import fmean

from sacrebleu.metrics import BLEU

from . import generate
from .config import Config
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


def evaluate(cfg: Config, task: Task, items: list[Item], tok, base_model, trained_model, base_ctx,
             resume_dir: Path | None = None) -> tuple[dict, list[dict]]:
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
    responses = {"base": run(base_model_obj, base_ctx, "base"), "trained": run(trained_model, None, "trained")}

    def base_scorer(p, r):
        with (base_ctx() if base_ctx else contextlib.nullcontext()):
            return generate.logprobs(base_model_obj, tok, p, r, batch_size=max(1, e.batch_size // 4),
                                    resume_dir=resume_dir)

    per_item = {name: task.score(items, resp, base_scorer) for name, resp in responses.items()}
    metrics: dict = {"task": task.name, "n_items": len(items), "primary_metric": task.primary_metric, "models": {}}
    for name in responses:
        keys = per_item[name][0].keys()
        m = {k: fmean(d[k] for d in per_item[name]) for k in keys}
        m["self_bleu4"] = self_bleu4(responses[name])
        m["mean_response_chars"] = fmean(len(r) for r in responses[name])
        metrics["models"][name] = m
    pm = task.primary_metric
    diffs = [t[pm] - b[pm] for t, b in zip(per_item["trained"], per_item["base"])]
    metrics["paired"] = {"metric": pm, "share_trained_higher": fmean(d > 0 for d in diffs),
                         "share_tied": fmean(d == 0 for d in diffs), "mean_difference": fmean(diffs)}
    rows = [{"id": it.id, "prompt": p, "base": responses["base"][i], "trained": responses["trained"][i],
             "base_metrics": per_item["base"][i], "trained_metrics": per_item["trained"][i]}
            for i, (it, p) in enumerate(zip(items, prompts))]
    return metrics, rows
