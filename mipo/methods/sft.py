"""sft-self: supervised fine-tuning on the model's own chosen responses (the same pairs, no negative).

The ablation that isolates the contrastive negative: same data, same steps, same LoRA, only the rejected half
of each pair is unused. TRL's SFTTrainer on prompt-completion rows; the loss covers the completion only.
"""
from __future__ import annotations

from pathlib import Path

from .base import Method


class SFTSelf(Method):
    name = "sft-self"
    pair_fields = ("prompt", "chosen")

    def trainer(self, cfg, model, tok, rows: Path, output_dir: str, ref_model=None):
        from datasets import Dataset
        from trl import SFTConfig, SFTTrainer

        from ..train import longest_row, lora_config, read_rows, trl_args, use_checkpointing

        data = read_rows(rows, ("prompt", "chosen"))
        dataset = Dataset.from_list([{"prompt": r["prompt"], "completion": r["chosen"]} for r in data])
        ckpt = use_checkpointing(cfg, model, lambda: cfg.train.batch_size * longest_row(
            tok, data, ("chosen",), cfg.train.max_length), reference=False)
        args = trl_args(cfg, SFTConfig, output_dir, model.device.type == "cuda", ckpt,
                        max_length=cfg.train.max_length, completion_only_loss=True, packing=False)
        return SFTTrainer(model=model, args=args, train_dataset=dataset, processing_class=tok,
                          peft_config=lora_config(cfg) if cfg.train.lora else None)
