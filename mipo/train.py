"""Training with TRL, shared by every method: the settings every trainer gets, DPO (MIPO's trainer; reference =
the base model), LoRA, checkpoints that a killed run resumes from, and saving under `accelerate launch`.

Each method builds its trainer (mipo/methods/); `fit` runs it and writes the result."""
from __future__ import annotations

import dataclasses
import json
import logging
import os
import shutil
from pathlib import Path

import torch

from .config import Config
from .io import MipoError, atomic_path, read_jsonl

log = logging.getLogger("mipo")


def trl_args(cfg: Config, config_cls, output_dir: str, on_cuda: bool, **extra):
    """The settings every TRL trainer here shares (DPO, SFT, GRPO, the contrastive losses); `extra` adds to them."""
    t = cfg.train
    kwargs = dict(
        output_dir=output_dir, learning_rate=t.learning_rate, num_train_epochs=t.epochs,
        per_device_train_batch_size=t.batch_size, gradient_accumulation_steps=t.grad_accum,
        seed=cfg.seed, data_seed=cfg.seed,
        # TRL defaults to bf16 + gradient checkpointing. bf16 matrix products on a CPU are far slower than fp32, so
        # fp32 there. Checkpointing stays on (TRL's default): on CPU it cost no speed and holds fewer activations
        # (bench/training.py, figures in bench/README.md).
        bf16=on_cuda and torch.cuda.is_bf16_supported(), fp16=False, gradient_checkpointing=True,
        use_cpu=not on_cuda, adam_beta2=t.adam_beta2, lr_scheduler_type=t.lr_scheduler,
        # transformers reads a float warmup_steps in [0, 1) as a share of the steps (its warmup_ratio is gone)
        warmup_steps=t.warmup_ratio if t.warmup_ratio > 0 else 0,
        lr_scheduler_kwargs={"min_lr_rate": t.min_lr_ratio} if t.lr_scheduler == "cosine_with_min_lr" else None,
        logging_steps=1, save_strategy="steps", save_steps=t.save_steps, save_total_limit=2,
        report_to="none", disable_tqdm=False, dataloader_num_workers=0,
    )
    kwargs.update(extra)
    return config_cls(**kwargs)


def train_model_args(cfg: Config):
    """The model settings to train with. Full fine-tuning keeps fp32 master weights (TRL's bf16 flag then autocasts
    the compute): updates of lr 5e-7 vanish when added to bf16 weights. LoRA trains fp32 adapters on a frozen base,
    which may stay in model.dtype."""
    return cfg.model if cfg.train.lora else dataclasses.replace(cfg.model, dtype="float32")


def dpo_config(cfg: Config, output_dir: str, on_cuda: bool, **extra):
    from trl import DPOConfig

    return trl_args(cfg, DPOConfig, output_dir, on_cuda, beta=cfg.train.beta, max_length=cfg.train.max_length,
                    remove_unused_columns=True, **extra)


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


def make_dpo_trainer(cfg: Config, model, tok, dataset, output_dir: str, ref_model=None):
    from trl import DPOTrainer

    on_cuda = model.device.type == "cuda"
    return DPOTrainer(
        model=model, ref_model=ref_model, args=dpo_config(cfg, output_dir, on_cuda), train_dataset=dataset,
        processing_class=tok, peft_config=lora_config(cfg) if cfg.train.lora else None)


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
    default the configured model) and write the merged model to `out`."""
    from peft import PeftModel

    from . import models

    base, tok = models.load(dataclasses.replace(cfg.model, device="cpu"), base_dir)
    merged = PeftModel.from_pretrained(base, str(adapter_dir)).merge_and_unload()
    with atomic_path(out) as tmp:
        merged.save_pretrained(tmp, safe_serialization=True)
        tok.save_pretrained(tmp)


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
    result = trainer.train(resume_from_checkpoint=resume)
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
