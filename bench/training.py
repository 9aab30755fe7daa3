"""DPO training throughput: mipo's TRL settings vs TRL's DPOTrainer with fp32 and its other defaults.

    .venv/bin/python bench/training.py --pairs runs/demo/pairs.jsonl [--steps 4] [--rounds 2]

Both arms are TRL's DPOTrainer with the same LoRA adapter, pairs, batch size and steps. The baseline keeps
every TRL default except bf16 (which is ~270x slower on this CPU; it did not finish 8 steps in 12 minutes):
gradient checkpointing on. mipo's config runs with checkpointing as set in `mipo/train.py`, and a third arm
without it shows what that choice is worth on this machine. Tokens = prompt+chosen and prompt+rejected
tokens TRL reports as `num_tokens`.
"""
from __future__ import annotations

import argparse
import statistics
import resource
import tempfile
from pathlib import Path

from common import embedded, gemm_peak_gflops, interleave, machine, save, summary

from mipo.config import Config
from mipo.train import dpo_config, lora_config, pairs_dataset


def run_arm(arm: str, pairs: Path, steps: int, batch: int):
    from trl import DPOConfig, DPOTrainer

    model, tok = embedded()
    model.train()
    cfg = Config()
    cfg.train.batch_size = batch
    with tempfile.TemporaryDirectory() as out:
        if arm.startswith("mipo"):
            args = dpo_config(cfg, out, on_cuda=False)
            if arm != "mipo":  # mipo's config with checkpointing flipped: what that one choice is worth here
                args.activation_checkpointing = not args.activation_checkpointing  # the name the Trainer reads
        else:  # TRL defaults, fp32
            args = DPOConfig(output_dir=out, bf16=False, use_cpu=True, per_device_train_batch_size=batch,
                             report_to="none", save_strategy="no", seed=cfg.seed, data_seed=cfg.seed)  # same batches
        args.max_steps, args.save_strategy, args.logging_steps = steps, "no", 1
        trainer = DPOTrainer(model=model, args=args, train_dataset=pairs_dataset(pairs), processing_class=tok,
                             peft_config=lora_config(cfg))
        assert trainer.ref_model is None  # LoRA: the reference is the base with adapters off, no second copy
        result = trainer.train()
        tokens = max(float(h.get("num_tokens", 0)) for h in trainer.state.log_history)
    return tokens / result.metrics["train_runtime"], result.metrics["train_runtime"]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--pairs", type=Path, default=Path("runs/demo/pairs.jsonl"))
    ap.add_argument("--steps", type=int, default=4)
    ap.add_argument("--batch-size", type=int, default=4)
    ap.add_argument("--rounds", type=int, default=2)
    args = ap.parse_args()
    if not args.pairs.exists():
        raise SystemExit(f"{args.pairs}: not found; run the demo first (mipo run --config recipes/demo.yaml)")
    peak = gemm_peak_gflops()
    model, _ = embedded()
    n = model.num_parameters()
    del model
    # LoRA DPO per token: policy forward 2N + backward through activations ~2N (frozen weights: no weight
    # gradients) + reference forward 2N = 6N FLOPs
    limit = peak * 1e9 / (6 * n)
    on = dpo_config(Config(), "/tmp", on_cuda=False).activation_checkpointing
    flipped = "mipo-checkpointing-" + ("off" if on else "on")
    res = interleave({arm: (lambda r, arm=arm: run_arm(arm, args.pairs, args.steps, args.batch_size)[0])
                      for arm in ("trl-defaults-fp32", "mipo", flipped)}, args.rounds)
    med = {k: statistics.median(v) for k, v in res.items()}
    print(f"machine: {machine()}; fp32 GEMM peak {peak:.1f} GFLOP/s -> LoRA DPO limit {limit:.0f} tokens/s")
    print(f"{args.steps} steps x batch {args.batch_size} pairs, {args.rounds} rounds interleaved; "
          f"peak RSS of this process {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB")
    for k, v in res.items():
        print(f"{k:20s} {summary(v)} tokens/s  {med[k] / med['trl-defaults-fp32']:.2f}x  {med[k] / limit:.0%} of limit")
    print("results:", save("training", {"machine": machine(), "gemm_gflops": peak, "limit_tok_s": limit,
                                         "args": {k: str(v) for k, v in vars(args).items()}, "tok_s": res}))


if __name__ == "__main__":
    main()
