"""PMI at inference time, beside PMI by training: the no-training counterpart of MIPO and its distillation.

- pmi-decode trains nothing: its answers are the base model's under context-aware decoding (Shi et al. 2023,
  mipo/inference/guidance.py), each token drawn from (1 + α) log p(y_t | x, y<t) − α log p(y_t | x′, y<t), with x′
  the task's negative prompt (drop_context: the request without the user's context) and α = generate.pmi_alpha.
  It raises the same pointwise MI that MIPO trains for, at twice the decoding cost (two rows per prompt).
- pmi-distill: SFT of the base model on its own pmi-decoded answers to the training prompts — the contrast put into
  the weights without a preference loss, so a table can say whether DPO is the right way to train on it.
"""
from __future__ import annotations

from ..inference import Sampling
from ..io import MipoError
from ..seeds import derive
from .base import Method
from .sft import SFTSelf


def check_guided(cfg, task, items) -> str:
    """The negative strategy, refused in one line unless it can guide decoding (mipo.pair.guided_negatives)."""
    from ..pair import guided_negatives

    return guided_negatives(task, items[:1], cfg)[0]


class PMIDecode(Method):
    name, samples, trains, guided = "pmi-decode", None, False, True

    def check(self, cfg, task, items):
        return check_guided(cfg, task, items)


class PMIDistill(SFTSelf):
    name, samples = "pmi-distill", "pmi"

    def check(self, cfg, task, items):
        if cfg.generate.engine != "hf":
            raise MipoError(f"pmi-distill: generate.engine '{cfg.generate.engine}' cannot decode with guidance (two "
                            f"prompts per token); use generate.engine hf")
        return check_guided(cfg, task, items)

    def make_samples(self, ctx) -> list[dict]:
        """One pmi-decoded answer per training prompt, as the chosen response of an SFT row."""
        from ..inference.guidance import sample_guided
        from ..pair import guided_negatives

        cfg, task, g = ctx.cfg, ctx.task, ctx.cfg.generate
        strategy, negatives = guided_negatives(task, ctx.items, cfg)
        prompts = [task.messages(it) for it in ctx.items]
        answers = sample_guided(ctx.engine, prompts, negatives, Sampling.of(g), g.pmi_alpha,
                                seed=derive(cfg.seed, "sample", 0), batch_size=g.batch_size, desc="pmi-decoded",
                                resume_dir=ctx.resume_dir)
        return [{"prompt": p, "chosen": [{"role": "assistant", "content": a}],
                 "meta": {"prompt_id": it.id, "strategy": strategy, "pmi_alpha": g.pmi_alpha, "task": task.name,
                          "seed": cfg.seed, "temperature": g.temperature, "top_p": g.top_p,
                          "max_new_tokens": g.max_new_tokens, "model": cfg.model.name}}
                for it, p, a in zip(ctx.items, prompts, answers)]
