"""mi-grpo: online RL with TRL's GRPOTrainer and the PMI reward r(y) = log π_ref(y|x) − log π_ref(y|x′).

The policy samples a group of responses to each true prompt x; the frozen base model scores each under x and under
the corrupted prompt x′ of the same row (pair.prompt_rows), and GRPO moves the policy towards the responses of the
group with above-average PMI. Unlike mipo (DPO on pairs sampled once from the base), the samples come from the
policy being trained.
"""
from __future__ import annotations

import dataclasses
import logging
from contextlib import nullcontext
from pathlib import Path

from ..config import Config
from ..distributed import world_size
from ..inference import Sampling
from ..inference.hf import HFEngine
from ..io import MipoError
from ..train import lora_config, read_rows, trl_args
from .base import Method, SampleContext

log = logging.getLogger("mipo")


class PMIReward:
    """TRL reward function: log π_ref(y|x) − log π_ref(y|x′) per completion y of x (x′: column negative_prompt).

    π_ref is `ref` when given (full fine-tuning: a frozen copy), else the trainer's own model with its LoRA adapter
    disabled: the same weights, no second copy. That model belongs to the trainer, which needs this function to be
    built, so `trainer` is set afterwards.
    """

    def __init__(self, tok, batch_size: int, ref=None):
        self.__name__ = "pmi"  # TRL logs rewards/<__name__>/mean
        self.tok, self.batch_size, self.ref, self.trainer = tok, batch_size, ref, None

    def __call__(self, prompts, completions, negative_prompt, **_) -> list[float]:
        responses = ["".join(m["content"] for m in c if m["role"] == "assistant") for c in completions]
        if self.ref is not None:
            model, base = self.ref, nullcontext()
        else:
            model = self.trainer.accelerator.unwrap_model(self.trainer.model)
            base = model.disable_adapter()
        training = model.training
        model.eval()  # TRL calls rewards in train mode: no dropout, and no gradient checkpointing (train mode only)
        try:
            with base:
                engine = HFEngine(model, self.tok)
                pos = engine.logprobs(prompts, responses, batch_size=self.batch_size)
                neg = engine.logprobs(negative_prompt, responses, batch_size=self.batch_size)
        finally:
            model.train(training)
        return [p - n for p, n in zip(pos, neg)]


def make_trainer(cfg: Config, model, tok, rows_path: Path, output_dir: str):
    from datasets import Dataset
    from trl import GRPOConfig, GRPOTrainer

    from .. import models

    t, g = cfg.train, cfg.generate
    rows = read_rows(rows_path, ("prompt", "negative_prompt"))
    # Extra columns reach the reward function as keyword arguments (GRPOConfig keeps them: remove_unused_columns=False)
    dataset = Dataset.from_list([{"prompt": r["prompt"], "negative_prompt": r["negative_prompt"]} for r in rows])
    n = t.grpo_generations
    # TRL counts batches in completions, and a batch must hold whole groups of n. train.batch_size keeps the meaning
    # it has for DPO, prompts per device step, so a step trains on batch_size groups of n completions. TRL's sampler
    # drops an incomplete generation batch (prompts_per_step x processes x grad_accum prompts): on a smaller
    # dataset the batch shrinks so that one step runs rather than none.
    prompts_per_step = max(1, min(t.batch_size, len(rows) // (world_size() * t.grad_accum)))
    if prompts_per_step < t.batch_size:
        log.warning("mi-grpo: %d prompt pairs; %d prompts per step instead of train.batch_size %d",
                    len(rows), prompts_per_step, t.batch_size)
    args = trl_args(
        cfg, GRPOConfig, output_dir, model.device.type == "cuda",
        per_device_train_batch_size=prompts_per_step * n, num_generations=n,
        max_completion_length=g.max_new_tokens, temperature=g.temperature, top_p=g.top_p,
        # No KL term, TRL's default: the reward is already relative to the base model, and with beta 0 TRL keeps
        # no reference and skips its forward pass. Loss: TRL's default 'dapo' (token-level, no length bias).
        beta=0.0, use_vllm=False)  # the plain transformers generate(): vLLM needs a GPU and its own process setup
    ref = None
    if not t.lora:  # full fine-tuning: the policy's weights move, so the reward needs its own frozen base
        ref = models.load(dataclasses.replace(cfg.model, dtype="float32"))[0].requires_grad_(False)
    reward = PMIReward(tok, args.per_device_train_batch_size, ref)
    trainer = GRPOTrainer(model=model, reward_funcs=reward, args=args, train_dataset=dataset, processing_class=tok,
                          peft_config=lora_config(cfg) if t.lora else None)
    reward.trainer = trainer
    return trainer


class MIGRPO(Method):
    """Online: the generate stage writes only the prompt pairs (x, x'); the policy samples while training."""
    name, samples = "mi-grpo", "prompts"
    pair_fields = ("prompt", "negative_prompt")

    def check(self, cfg, task, items) -> str | None:
        if Sampling.of(cfg.generate).greedy:
            raise MipoError("mi-grpo samples a group of different responses per prompt: generate.temperature "
                            "must be > 0")
        return super().check(cfg, task, items)

    def make_samples(self, ctx: SampleContext) -> list[dict]:
        from ..pair import prompt_rows

        return prompt_rows(ctx.task, ctx.items, ctx.cfg, ctx.strategy)

    def trainer(self, cfg, model, tok, rows: Path, output_dir: str, ref_model=None):
        return make_trainer(cfg, model, tok, rows, output_dir)
