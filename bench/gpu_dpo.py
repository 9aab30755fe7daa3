"""bench/gpu.py's DPO section: steps of mipo's own trainer (`mipo.train.make_dpo_trainer`) on synthetic pairs, full
fine-tune and LoRA, gradient checkpointing on/off, reference log-probs every step or precomputed."""
from __future__ import annotations

import random
import string
import tempfile
import traceback
from pathlib import Path

import torch
from transformers import TrainerCallback

from gpu_model import clock, free, peak_memory, reset_peak

from mipo import models
from mipo.config import Config
from mipo.io import write_jsonl
from mipo.recipe import apply_overrides
from mipo.train import dpo_step_tokens, make_dpo_trainer, pairs_dataset, step_bytes, train_model_args

# (name, train.lora, train.gradient_checkpointing, train.precompute_ref, further DPOConfig settings, CUDA only),
# most telling first (a run cut short keeps the arms it finished): mipo's CUDA defaults for a 1B step that fits
# (checkpointing off, reference precomputed), mipo as shipped before issue 17 (checkpointing on, reference forward
# every step), precompute alone, then TRL's speed options not yet in mipo's defaults: Liger's Triton kernels for
# RMSNorm/SwiGLU/RoPE (TRL keeps its own fused LM head) and torch.compile, which need CUDA (Triton).
ARMS = [("full/ckpt-off/ref-pre", False, "false", "true", {}, False),
        ("full/ckpt-on/ref-step", False, "true", "false", {}, False),
        ("lora/ckpt-off/ref-pre", True, "false", "true", {}, False),
        ("lora/ckpt-on/ref-step", True, "true", "false", {}, False),
        ("full/ckpt-off/ref-step", False, "false", "false", {}, False),
        ("full/ckpt-off/ref-pre/liger", False, "false", "true", {"use_liger_kernel": True}, True),
        ("full/ckpt-off/ref-pre/compile", False, "false", "true", {"torch_compile": True}, True)]
FLOPS = ("FLOP per token counted (tokens = prompt+chosen and prompt+rejected, no padding; N = parameters in matrix "
         "products, attention's own FLOPs not counted): full fine-tune 8N = policy forward+backward 6N + reference "
         "forward 2N; LoRA 6N = policy forward 2N + backward through the activations 2N (frozen weights: no weight "
         "gradients) + reference forward 2N. With the reference precomputed, its pass (timed during the trainer's "
         "construction, spread over the run's steps) is added to the step time, so the same FLOPs are counted.")


def synthetic_pairs(path: Path, n: int, prompt_chars: int, response_chars: int, seed: int) -> Path:
    """n conversational pairs (mipo's pairs.jsonl rows) of random words; the byte tokenizer makes one token per
    character, so the lengths are set in characters, ±25% per row."""
    rng = random.Random(seed)

    def text(chars):
        words, size, target = [], 0, rng.randint(3 * chars // 4, 5 * chars // 4)
        while size < target:
            words.append("".join(rng.choices(string.ascii_lowercase, k=rng.randint(2, 9))))
            size += len(words[-1]) + 1
        return " ".join(words)

    write_jsonl(path, [{"prompt": [{"role": "user", "content": text(prompt_chars)}],
                        "chosen": [{"role": "assistant", "content": text(response_chars)}],
                        "rejected": [{"role": "assistant", "content": text(response_chars)}]} for _ in range(n)])
    return path


class StepClock(TrainerCallback):
    """The time at the end of each optimizer step, after the device's work is done: a step's time is the gap
    between two step ends, so data loading, logging and the optimizer are in it."""

    def __init__(self, device):
        self.device, self.ends = device, []

    def on_step_end(self, args, state, control, **kwargs):
        self.ends.append(clock(self.device))


def first_forward(model, device) -> tuple[list, object]:
    """A hook noting when the model first runs forward: during the trainer's construction that is the start of
    TRL's reference log-prob precompute (its only forward pass there)."""
    seen = []

    def hook(module, args):
        if not seen:
            seen.append(clock(device))
    return seen, model.register_forward_pre_hook(hook)


def run_arm(arm, model_dir: Path, pairs: Path, args, device) -> dict:
    """Build the trainer as `mipo train` does (the config overrides the CLI would take), train warm-up + timed
    steps, return the figures of the timed steps."""
    name, lora, ckpt, precompute, extra, _ = arm
    cfg = apply_overrides(Config(), {
        "model.name": str(model_dir), "train.lora": lora, "train.batch_size": args.pairs_per_step,
        "train.max_length": args.max_length, "train.save_steps": 10**6,
        "train.gradient_checkpointing": ckpt, "train.precompute_ref": precompute}, "bench/gpu.py")
    reset_peak(device)  # the peak includes the weights, the reference copy and the optimizer state
    before = torch.cuda.memory_allocated(device) if device.type == "cuda" else 0  # left over by earlier arms
    model, tok = models.load(train_model_args(cfg))
    model.train()
    with tempfile.TemporaryDirectory() as out:
        seen, hook = first_forward(model, device)
        t0 = clock(device)
        data = pairs_dataset(pairs)
        trainer = make_dpo_trainer(cfg, model, tok, data, out, **extra)
        built = clock(device)
        # what train.gradient_checkpointing=auto weighs against free memory, beside the measured peak: its calibration
        estimate = step_bytes(model.config, model.num_parameters(), dpo_step_tokens(cfg, tok, data), not lora,
                              trainer.ref_model is not None)
        hook.remove()
        steps = StepClock(device)
        trainer.add_callback(steps)
        trainer.train()
        tokens = {h["step"]: h["num_tokens"] for h in trainer.state.log_history if "num_tokens" in h}
        n, w = trainer.state.global_step, args.warmup_steps
        timed = steps.ends[-1] - steps.ends[w - 1]
        used = {"gradient_checkpointing": trainer.args.activation_checkpointing,
                "precompute_ref_log_probs": trainer.args.precompute_ref_log_probs,
                "reference_copy": trainer.ref_model is not None, "bf16": trainer.args.bf16,
                "use_liger_kernel": trainer.args.use_liger_kernel, "torch_compile": trainer.args.torch_compile}
    figures = {"steps_timed": n - w, "s_per_step": timed / (n - w),
               "tokens_per_step": (tokens[n] - tokens[w]) / (n - w), "build_s": built - t0,
               "precompute_s_per_step": (built - seen[0]) / n if precompute == "true" and seen else 0.0,
               "peak_memory_bytes": peak_memory(device), "memory_before_bytes": before, "trainer": used,
               "estimated_step_bytes_without_checkpointing": estimate}
    del trainer, model
    free(device)
    return figures


def mfu(fig: dict, lora: bool, n_matmul: int, peak_flops: float | None) -> dict:
    """tokens/s over the step (plus the precompute's share of it) and, given a peak, the model FLOP utilisation."""
    seconds = fig["s_per_step"] + fig["precompute_s_per_step"]
    tok_s = fig["tokens_per_step"] / seconds
    flops = (6 if lora else 8) * n_matmul
    return {"tok_s": tok_s, "flop_per_token": flops, "mfu": tok_s * flops / peak_flops if peak_flops else None}


def dpo_section(model_dir: Path, facts: dict, peak: dict, args, device, say, save) -> dict:
    """Every arm in turn; `save()` after each, so a run cut short keeps the arms it finished. An arm that fails (a
    7B full fine-tune does not fit one GPU) is recorded with its error and the next one runs."""
    steps = args.warmup_steps + args.timed_steps
    section = {"flop_convention": FLOPS, "pairs_per_step": args.pairs_per_step, "max_length": args.max_length,
               "warmup_steps": args.warmup_steps, "arms": {}}
    with tempfile.TemporaryDirectory() as tmp:
        pairs = synthetic_pairs(Path(tmp) / "pairs.jsonl", steps * args.pairs_per_step, args.prompt_chars,
                                args.response_chars, args.seed)
        for arm in [a for a in ARMS if not args.arms or a[0] in args.arms.split(",")]:
            if arm[5] and device.type != "cuda":
                section["arms"][arm[0]] = {"skipped": "needs CUDA (Triton)"}
                save(section)
                continue
            say(f"dpo {arm[0]}: {steps} steps of {args.pairs_per_step} pairs ({args.warmup_steps} warm-up)")
            try:
                fig = run_arm(arm, model_dir, pairs, args, device)
                fig.update(mfu(fig, arm[1], facts["matmul_params"], peak["peak_flops"]))
                say(f"dpo {arm[0]}: {fig['s_per_step']:.3f} s/step, {fig['tok_s']:.0f} tokens/s")
            except Exception as e:  # noqa: BLE001 - recorded, and the other arms still run
                traceback.print_exc()
                fig = {"error": f"{type(e).__name__}: {str(e).splitlines()[0][:200] if str(e) else ''}"}
                say(f"dpo {arm[0]}: {fig['error']}")
                free(device)
            section["arms"][arm[0]] = fig
            save(section)
    return section
