"""infonce and sami: contrastive losses over each pair's 2x2 matrix of policy log-probs.

    L[i, j] = log π_θ(y_i | x_j),   responses i ∈ {chosen y+ (sampled given x), rejected y- (sampled given x')},
                                    prompts   j ∈ {x, x'};  the diagonal pairs each response with its own prompt.

- infonce: one cross-entropy, over prompts for each response:  −½ Σ_i log softmax_j(L[i, :])[i].
  "Which prompt produced y?" — the direction of the InfoNCE bound I(x; y) ≥ log 2 − CE that the evaluation
  reports; comparing one response under two prompts is also free of the response-length bias.
- sami (Fränken et al. 2024, SAMI): the mean of that row cross-entropy and the column one, over responses for
  each prompt:  ½ (row CE + (−½ Σ_j log softmax_i(L[:, j])[j])).
Raw policy log-probs (sums over response tokens), no reference model and no β, as in SAMI.

Written as a small subclass of TRL's DPOTrainer: its tokenisation, LoRA handling, fused log-prob head,
checkpointing and multi-process setup are reused; only x' is tokenised in addition, the collator lays out four
sequences per pair, and the loss is replaced.
"""
from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from trl import DPOTrainer
from trl.trainer.dpo_trainer import DataCollatorForPreference


def contrastive_loss(L: torch.Tensor, kind: str) -> tuple[torch.Tensor, dict]:
    """L: [batch, 2 responses, 2 prompts] log-probs, diagonal = own prompt. Returns the mean loss and diagnostics."""
    target = torch.arange(2, device=L.device).expand(L.shape[0], 2)
    row_ce = F.cross_entropy(L.reshape(-1, 2), target.reshape(-1))  # response i: softmax over prompts j
    col_ce = F.cross_entropy(L.transpose(1, 2).reshape(-1, 2), target.reshape(-1))  # prompt j: over responses i
    loss = row_ce if kind == "infonce" else 0.5 * (row_ce + col_ce)
    diag = L.diagonal(dim1=1, dim2=2)  # [batch, 2]
    stats = {"row_ce": row_ce.item(), "col_ce": col_ce.item(),
             # PMI margin of the pair: [L(y+|x) − L(y+|x')] − [L(y-|x) − L(y-|x')]
             "pmi_margin": ((L[:, 0, 0] - L[:, 0, 1]) - (L[:, 1, 0] - L[:, 1, 1])).mean().item(),
             "row_accuracy": (diag > L.flip(2).diagonal(dim1=1, dim2=2)).float().mean().item()}
    return loss, stats


class Collator(DataCollatorForPreference):
    """Four sequences per pair, in blocks: [x y+ | x y- | x' y+ | x' y-] (TRL's collator lays out the first two)."""

    def torch_call(self, examples):
        swapped = [{**e, "prompt_ids": e["negative_prompt_ids"]} for e in examples]
        a, b = super().torch_call(examples), super().torch_call(swapped)
        width = max(a["input_ids"].shape[1], b["input_ids"].shape[1])

        def padded(t, value):
            return F.pad(t, (0, width - t.shape[1]), value=value)

        return {k: torch.cat([padded(a[k], v), padded(b[k], v)])
                for k, v in (("input_ids", self.pad_token_id), ("attention_mask", 0), ("completion_mask", 0))}


class ContrastiveTrainer(DPOTrainer):
    def __init__(self, *args, loss: str, **kwargs):
        if loss not in ("infonce", "sami"):
            raise ValueError(loss)
        self.contrastive = loss
        super().__init__(*args, **kwargs)

    def _prepare_dataset(self, dataset, processing_class, args, dataset_name):
        dataset = super()._prepare_dataset(dataset, processing_class, args, dataset_name)

        def tokenize_other(example):  # x' rendered exactly as TRL renders x: chat template + generation prompt
            ids = processing_class.apply_chat_template(example["negative_prompt"], add_generation_prompt=True,
                                                       tokenize=True, return_dict=False)
            return {"negative_prompt_ids": list(ids)}

        return dataset.map(tokenize_other, desc=f"Tokenizing x' of {dataset_name} dataset")

    def _set_signature_columns_if_needed(self):
        super()._set_signature_columns_if_needed()
        self._signature_columns = [*self._signature_columns, "negative_prompt_ids"]

    def _precompute_ref_logps(self, dataset, name, batch_size):
        return dataset  # no reference model in these losses (precompute is only switched on to avoid loading one)

    def _compute_loss(self, model, inputs, return_outputs):
        mode = "train" if self.model.training else "eval"
        completion_mask = inputs["completion_mask"]
        labels = inputs["input_ids"].masked_fill(completion_mask == 0, -100)
        outputs = model(input_ids=inputs["input_ids"], attention_mask=inputs["attention_mask"], labels=labels,
                        use_cache=False, fused_lm_head=True)  # TRL's fused head: per-token log-probs of labels
        seq_len = completion_mask.shape[1] - 1
        logps = (outputs.log_probs[:, -seq_len:] * completion_mask[:, 1:]).sum(1)
        # blocks [x y+ | x y- | x' y+ | x' y-] -> L[b, response, prompt]
        L = logps.view(2, 2, -1).permute(2, 1, 0)
        loss, stats = contrastive_loss(L, self.contrastive)
        for k, v in stats.items():
            self._metrics[mode][f"contrastive/{k}"].append(v)
        if mode == "train":
            self._total_train_tokens += self.accelerator.gather_for_metrics(inputs["attention_mask"].sum()).sum().item()
        self._metrics[mode]["num_tokens"] = [self._total_train_tokens]
        return (loss, outputs) if return_outputs else loss


def make_trainer(cfg, model, tok, rows_path: Path, output_dir: str):
    from datasets import Dataset

    from ..train import dpo_config, lora_config, read_rows

    rows = read_rows(rows_path, ("prompt", "chosen", "rejected", "negative_prompt"))
    dataset = Dataset.from_list([{k: r[k] for k in ("prompt", "chosen", "rejected", "negative_prompt")} for r in rows])
    on_cuda = model.device.type == "cuda"
    # Full fine-tuning: DPOTrainer would load a reference copy of the model unless reference log-probs are
    # "precomputed"; our override computes nothing, so no second copy is held. LoRA never needs one.
    args = dpo_config(cfg, output_dir, on_cuda, precompute_ref_log_probs=not cfg.train.lora)
    args.remove_unused_columns = True
    collator = Collator(pad_token_id=tok.pad_token_id, max_length=args.max_length, truncation_mode=args.truncation_mode)
    return ContrastiveTrainer(model=model, args=args, train_dataset=dataset, processing_class=tok,
                              data_collator=collator, peft_config=lora_config(cfg) if cfg.train.lora else None,
                              loss=cfg.method)
