"""Training with TRL, shared by every method: the settings every trainer gets, DPO (MIPO's trainer; reference =
the base model), LoRA, checkpoints that a killed run resumes from, and saving under `accelerate launch`.

Each method builds its trainer (mipo/methods/); `fit` runs it and writes the result."""
from __future__ import annotations

import dataclasses
import json
import logging
import os
import shutil
import signal
from pathlib import Path

import torch

from . import tracking
from .callbacks import attach
from .config import Config
from .io import MipoError, atomic_path, read_jsonl

log = logging.getLogger("mipo")


def trl_args(cfg: Config, config_cls, output_dir: str, on_cuda: bool, checkpointing: bool | None = None, **extra):
    """The settings every TRL trainer here shares (DPO, SFT, GRPO, the contrastive losses); `extra` adds to them.
    `checkpointing`: gradient checkpointing as `use_checkpointing` decided; None = on unless
    train.gradient_checkpointing is false."""
    checkpointing = cfg.train.gradient_checkpointing != "false" if checkpointing is None else checkpointing
    t = cfg.train
    kwargs = dict(
        output_dir=output_dir, learning_rate=t.learning_rate, num_train_epochs=t.epochs,
        per_device_train_batch_size=t.batch_size, gradient_accumulation_steps=t.grad_accum,
        seed=cfg.seed, data_seed=cfg.seed,
        # TRL defaults to bf16. bf16 matrix products on a CPU are far slower than fp32, so fp32 there.
        bf16=on_cuda and torch.cuda.is_bf16_supported(), fp16=False, activation_checkpointing=checkpointing,
        use_cpu=not on_cuda, adam_beta2=t.adam_beta2, lr_scheduler_type=t.lr_scheduler,
        # transformers reads a float warmup_steps in [0, 1) as a share of the steps (its warmup_ratio is gone)
        warmup_steps=t.warmup_ratio if t.warmup_ratio > 0 else 0,
        lr_scheduler_kwargs={"min_lr_rate": t.min_lr_ratio} if t.lr_scheduler == "cosine_with_min_lr" else None,
        logging_steps=1, save_strategy="steps", save_steps=t.save_steps, save_total_limit=2,
        report_to=tracking.report_to(t.report_to, output_dir), disable_tqdm=False, dataloader_num_workers=0,
    )
    return config_cls(**{**kwargs, **extra})


def train_model_args(cfg: Config):
    """The model settings to train with. Full fine-tuning keeps fp32 master weights (TRL's bf16 flag then autocasts
    the compute): updates of lr 5e-7 vanish when added to bf16 weights. LoRA trains fp32 adapters on a frozen base,
    which may stay in model.dtype."""
    return cfg.model if cfg.train.lora else dataclasses.replace(cfg.model, dtype="float32")


def dpo_config(cfg: Config, output_dir: str, on_cuda: bool, checkpointing: bool | None = None, **extra):
    from trl import DPOConfig

    return trl_args(cfg, DPOConfig, output_dir, on_cuda, checkpointing, beta=cfg.train.beta,
                    max_length=cfg.train.max_length, remove_unused_columns=True,
                    precompute_ref_log_probs=precomputes_reference(cfg, on_cuda), **extra)


def precomputes_reference(cfg: Config, on_cuda: bool) -> bool:
    """train.precompute_ref; auto = on CUDA: TRL scores every pair under the reference once before training (a
    full fine-tune then keeps no reference copy) instead of a reference forward in every step."""
    return cfg.train.precompute_ref == "true" or (cfg.train.precompute_ref == "auto" and on_cuda)


def lora_config(cfg: Config):
    from peft import LoraConfig

    t = cfg.train
    return LoraConfig(r=t.lora_r, lora_alpha=t.lora_alpha, lora_dropout=t.lora_dropout,
                      target_modules="all-linear", task_type="CAUSAL_LM")


def read_rows(path: Path, fields: tuple[str, ...] = ("prompt", "chosen", "rejected")) -> list[dict]:
    rows = read_jsonl(path)
    if not rows:
        raise MipoError(f"{path}: no pairs to train on")
    for i, r in enumerate(rows, 1):
        for k in fields:
            if not r.get(k):
                raise MipoError(f"{path}:{i}: field '{k}' is missing or empty")
    return rows


def pairs_dataset(pairs_path: Path, fields: tuple[str, ...] = ("prompt", "chosen", "rejected")):
    from datasets import Dataset

    return Dataset.from_list([{k: r[k] for k in fields} for r in read_rows(pairs_path, fields)])


def make_dpo_trainer(cfg: Config, model, tok, dataset, output_dir: str, ref_model=None, **extra):
    """`extra`: further DPOConfig settings (bench/gpu.py tries TRL's speed options through it)."""
    from trl import DPOTrainer

    on_cuda = model.device.type == "cuda"
    ckpt = use_checkpointing(cfg, model, lambda: dpo_step_tokens(cfg, tok, dataset))
    return DPOTrainer(
        model=model, ref_model=ref_model, args=dpo_config(cfg, output_dir, on_cuda, ckpt, **extra), train_dataset=dataset,
        processing_class=tok, peft_config=lora_config(cfg) if cfg.train.lora else None)


def longest_row(tok, rows, responses: tuple[str, ...], max_length: int, sample: int = 32) -> int:
    """Tokens of the longest prompt + response among the rows (conversational: message lists), capped at
    max_length; only the `sample` longest rows by characters are tokenized."""
    def chars(r, k):
        return sum(len(m["content"]) for m in r["prompt"] + r[k])

    longest = sorted(((chars(r, k), i, k) for i, r in enumerate(rows) for k in responses), reverse=True)[:sample]
    lengths = [len(tok.apply_chat_template(rows[i]["prompt"] + rows[i][k], tokenize=True, return_dict=False))
               for _, i, k in longest]
    return min(max(lengths, default=1), max_length)


def dpo_step_tokens(cfg: Config, tok, rows) -> int:
    """The tokens of DPO's largest step: batch x (chosen, rejected) sequences of the longest row."""
    return 2 * cfg.train.batch_size * longest_row(tok, rows, ("chosen", "rejected"), cfg.train.max_length)


# TRL (>= 1.16) scores the LM head in tiles of 4096 tokens x 32768 vocabulary entries (bf16 tile and its fp32
# gradient, trl/kernels/chunked_logprob.py), never the full logits: a fixed workspace, not a per-token cost
LM_HEAD_TILE_BYTES = 4096 * 32768 * (2 + 4)


def step_bytes(config, n_params: int, tokens: int, full: bool, ref_copy: bool) -> int:
    """What a training step needs on the GPU beyond the loaded weights, without gradient checkpointing, in bytes.
    Full fine-tune: fp32 gradients and AdamW's two moments (12 B/param), bf16 copies of the weights under autocast
    (2) and a bf16 reference copy unless precomputed (2). Activations kept for the backward pass (bf16), per token
    and layer: the norms' inputs, q/k/v, attention and projection outputs (~6 hidden + 2 kv), the MLP's gate, up,
    activation and product (4 intermediate); the LM head's tile. A coarse estimate (flash/SDPA attention keeps no
    seq x seq scores); bench/gpu.py measures the peak beside it."""
    kv = config.num_key_value_heads * (config.hidden_size // config.num_attention_heads)
    per_token = 2 * config.num_hidden_layers * (6 * config.hidden_size + 2 * kv + 4 * config.intermediate_size)
    weights = n_params * (12 + 2 + (2 if ref_copy else 0)) if full else 0
    return weights + tokens * per_token + LM_HEAD_TILE_BYTES


def use_checkpointing(cfg: Config, model, step_tokens, reference: bool = True) -> bool:
    """train.gradient_checkpointing: true/false as set; auto = on CPU, on (measured: no speed cost there, fewer
    activations held); on CUDA, only when `step_bytes` exceeds 80% of the free memory: checkpointing runs every
    layer's forward twice (issue 17: 1.01 vs 0.59 s per 1B full fine-tune step). Sharded runs (DeepSpeed, FSDP)
    keep it on: their memory is not this process's to estimate. `step_tokens()`: the tokens of the largest step;
    `reference`: the trainer scores a reference model (DPO) unless precomputed."""
    setting = cfg.train.gradient_checkpointing
    if setting != "auto":
        return setting == "true"
    from accelerate import DistributedType, PartialState

    if model.device.type != "cuda" or PartialState().distributed_type in (DistributedType.DEEPSPEED,
                                                                          DistributedType.FSDP):
        return True
    full = not cfg.train.lora  # a full fine-tune without precomputed reference log-probs keeps a reference copy
    ref_copy = reference and not precomputes_reference(cfg, on_cuda=True)
    need = step_bytes(model.config, model.num_parameters(), step_tokens(), full, ref_copy)
    free = torch.cuda.mem_get_info(model.device)[0]
    log.info("gradient checkpointing %s: a step needs ~%.1f GiB beyond the weights, %.1f GiB free "
             "(train.gradient_checkpointing true/false overrides)", "on" if need > 0.8 * free else "off",
             need / 2**30, free / 2**30)
    return need > 0.8 * free


def last_checkpoint(ckpt_dir: Path, fingerprint: str, clean: bool = True) -> str | None:
    """The newest complete checkpoint written under this config, or None.

    The HF Trainer writes a checkpoint in place and trainer_state.json last, so a checkpoint without a readable
    trainer_state.json was cut by a crash: it is deleted. Checkpoints of another config are wiped. With
    `clean=False` (the other processes of a multi-process run, after rank 0 cleaned) nothing is touched.
    """
    stamp = ckpt_dir / "fingerprint"
    if clean:
        if ckpt_dir.exists() and (not stamp.exists() or stamp.read_text() != fingerprint):
            shutil.rmtree(ckpt_dir)
        ckpt_dir.mkdir(parents=True, exist_ok=True)
        stamp.write_text(fingerprint)
    ckpts = sorted((p for p in ckpt_dir.glob("checkpoint-*") if p.name.split("-")[-1].isdigit()),
                   key=lambda p: int(p.name.split("-")[-1]), reverse=True)
    for p in ckpts:
        try:
            json.loads((p / "trainer_state.json").read_text())
            return str(p)
        except (OSError, json.JSONDecodeError):
            if clean:
                log.warning("deleting incomplete checkpoint %s", p)
                shutil.rmtree(p)
    return None


def save_model(trainer, final: Path) -> None:
    """trainer.save_model into `final`, atomically; call it on every process.

    Under DeepSpeed ZeRO-3 or FSDP the weights are sharded, and save_model gathers them (a collective) and writes
    on the main process only; a plain policy.save_pretrained there would write the local shard. LoRA: the adapter.
    """
    acc = trainer.accelerator
    tmp = final.parent / f".{final.name}.saving"
    if acc.is_main_process:
        shutil.rmtree(tmp, ignore_errors=True)
    acc.wait_for_everyone()
    trainer.save_model(str(tmp))
    acc.wait_for_everyone()
    if acc.is_main_process:
        (tmp / "training_args.bin").unlink(missing_ok=True)  # a pickle of the Trainer's args, not needed
        if final.exists():
            shutil.rmtree(final)
        os.replace(tmp, final)
    acc.wait_for_everyone()


def merge_from_disk(cfg: Config, adapter_dir: Path, out: Path, base_dir: str | None = None) -> None:
    """Merge a saved LoRA adapter into a fresh copy of the weights it was trained on (on CPU: `base_dir`, by
    default the configured model) and write the merged model to `out`, in the dtype training used (bf16 on CUDA by
    default), as the in-memory merge writes it. The merge itself runs in fp32 (bf16 matrix products are slow on CPUs)."""
    from peft import PeftModel

    from . import models

    dtype = models.pick_dtype(cfg.model.dtype, models.pick_device(cfg.model.device))
    base, tok = models.load(dataclasses.replace(cfg.model, device="cpu", dtype="float32"), base_dir)
    merged = PeftModel.from_pretrained(base, str(adapter_dir)).merge_and_unload().to(dtype)
    with atomic_path(out) as tmp:
        merged.save_pretrained(tmp, safe_serialization=True)
        tok.save_pretrained(tmp)


TRAINING: list[list[int]] = []  # where the CLI's SIGTERM/SIGHUP handler notes a signal while `fit` trains


def fit(cfg: Config, trainer, tok, out_dir: Path, fingerprint: str) -> dict:
    """Train and save: LoRA adapter in `out_dir/adapter` (+ `out_dir/merged` on request) or the full model in
    `out_dir/model`. Checkpoints go to the trainer's output_dir (`out_dir/checkpoints`), stamped with `fingerprint`.

    Runs unchanged under `accelerate launch` (DDP, DeepSpeed, FSDP): every process trains, only the main process
    writes files. Every process returns the same summary.
    """
    ckpt_dir = Path(trainer.args.output_dir)
    acc = trainer.accelerator
    if acc.is_main_process:
        last_checkpoint(ckpt_dir, fingerprint)  # wipe stale and incomplete checkpoints once, on rank 0
    acc.wait_for_everyone()
    resume = last_checkpoint(ckpt_dir, fingerprint, clean=False)
    if resume:
        log.info("resuming training from %s", resume)
    TRAINING.append(noted := [])
    attach(trainer, noted, out_dir / "log.jsonl")  # mipo's progress line, train/log.jsonl, the signal stop
    try:
        result = trainer.train(resume_from_checkpoint=resume)
    finally:
        TRAINING.remove(noted)
    if noted:  # the trainer saved this step and stopped: the run is not finished, no final output; deliver it now
        signal.raise_signal(noted[0])
    if cfg.train.lora:
        _save_lora(cfg, trainer, tok, out_dir)
    else:
        save_model(trainer, out_dir / "model")
        if acc.is_main_process:
            log.info("model written to %s", out_dir / "model")
    history = [h for h in trainer.state.log_history if "loss" in h]
    if acc.is_main_process:
        shutil.rmtree(ckpt_dir, ignore_errors=True)  # the final weights are saved; checkpoints only served resumption
    acc.wait_for_everyone()
    return {"train_runtime_s": result.metrics.get("train_runtime"), "steps": trainer.state.global_step,
            "resumed_from": resume, "final_loss": history[-1]["loss"] if history else None,
            "num_processes": acc.num_processes, "log_history": trainer.state.log_history}


def _save_lora(cfg: Config, trainer, tok, out_dir: Path) -> None:
    acc = trainer.accelerator
    save_model(trainer, out_dir / "adapter")
    if acc.is_main_process:
        log.info("adapter written to %s", out_dir / "adapter")
    if cfg.train.merge and acc.is_main_process:
        if trainer.is_deepspeed_enabled or trainer.is_fsdp_enabled:  # sharded: merge the saved adapter instead
            merge_from_disk(cfg, out_dir / "adapter", out_dir / "merged")
        else:
            merged = trainer.model.merge_and_unload()
            with atomic_path(out_dir / "merged") as tmp:
                merged.save_pretrained(tmp, safe_serialization=True)
                tok.save_pretrained(tmp)
        log.info("merged model written to %s", out_dir / "merged")
    acc.wait_for_everyone()
