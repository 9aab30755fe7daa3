"""infonce and sami: contrastive losses over each pair's 2x2 matrix of policy log-probs.

    L[i, j] = log π_θ(y_i | x_j),   responses i ∈ {chosen y+ (sampled given x), rejected y- (sampled given x')},
                                    prompts   j ∈ {x, x'};  the diagonal pairs each response with its own prompt.

- infonce: one cross-entropy, over prompts for each response:  −½ Σ_i log softmax_j(L[i, :])[i].
  "Which prompt produced y?" — the direction of the InfoNCE bound I(x; y) ≥ log 2 − CE that the evaluation
  reports; comparing one response under two prompts is also free of the response-length bias.
- sami (Fränken et al. 2024, SAMI): the mean of that row cross-entropy and the column one, over responses for
  each prompt:  ½ (row CE + (−½ Σ_j log softmax_i(L[:, j])[j])).
Raw policy log-probs (sums over response tokens), no reference model and no β, as in SAMI.

Written against public APIs only: a `transformers.Trainer` subclass that overrides `compute_loss` (the loss) and
`log` (the loss's diagnostics), our own tokenisation (the tokenizer's chat template) and collator (four sequences
per pair), LoRA through `peft.get_peft_model`. Checkpointing, resumption and multi-process training are the
Trainer's own.
"""
from __future__ import annotations

import logging
from collections import defaultdict
from pathlib import Path

import torch
import torch.nn.functional as F
from transformers import Trainer

from .base import Method

log = logging.getLogger("mipo")

FIELDS = ("prompt", "chosen", "rejected", "negative_prompt")
STATS = ("row_ce", "col_ce", "pmi_margin", "row_accuracy")  # the diagnostics of contrastive_loss, in log order


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


def common_prefix(a: list[int], b: list[int]) -> int:
    n = 0
    while n < min(len(a), len(b)) and a[n] == b[n]:
        n += 1
    return n


def tokenize_pair(tok, row: dict) -> dict:
    """Token ids of one pair, laid out as TRL's DPOTrainer lays out a conversational prompt+completion.

    Prompt = the chat template with the generation prompt (x and x' alike). Response = what the template adds to
    that prompt when it renders the whole conversation prompt + [assistant turn]: the response tokens followed by
    the end of the assistant turn as the template writes it (ChatML: `<|im_end|>` and the newline after it), so the
    log-probs include ending the turn. Both responses are tokenised after x and reused unchanged after x'.
    """
    def render(messages, **kw):
        return list(tok.apply_chat_template(messages, tokenize=True, return_dict=False, **kw))

    x = render(row["prompt"], add_generation_prompt=True)
    x_neg = render(row["negative_prompt"], add_generation_prompt=True)
    with_chosen, with_rejected = render(row["prompt"] + row["chosen"]), render(row["prompt"] + row["rejected"])
    n = min(common_prefix(x, with_chosen), common_prefix(x, with_rejected))
    if n < len(x):
        # The template renders the prompt alone differently from the prompt followed by an answer (e.g. an empty
        # thought block in the generation prompt): the response starts where the two diverge, as in TRL, and x'
        # loses the same template tail so that both prompts end alike.
        log.warning("the chat template's generation prompt is not a prefix of the rendered conversation; the "
                    "response starts where they diverge, dropping %r from the end of x and x'", tok.decode(x[n:]))
        x_neg = x_neg[:len(x_neg) - (len(x) - n)]
    return {"prompt_ids": x[:n], "negative_prompt_ids": x_neg,
            "chosen_ids": with_chosen[n:], "rejected_ids": with_rejected[n:]}


def truncate_pair(e: dict, max_length: int | None) -> dict:
    """Cut one pair's prompts and responses so that every prompt+response sequence fits `max_length`.

    Prompts lose their start (the end holds the latest user turn and the generation prompt the response follows);
    responses lose their end (the start is what directly follows the prompt, and the tokens kept are scored on the
    exact context they were sampled in). The cut is per pair, not per sequence: both prompts are cut to one length
    and both responses to one length, so each response is scored on the same tokens under x and under x' (and
    each prompt on the same tokens before y+ and y-) and the 2x2 matrix compares like with like. When both sides
    are long, the response keeps at least half of `max_length`.
    """
    p_len = max(len(e["prompt_ids"]), len(e["negative_prompt_ids"]))
    r_len = max(len(e["chosen_ids"]), len(e["rejected_ids"]))
    if max_length is None or p_len + r_len <= max_length:
        return e
    r_keep = min(r_len, max(max_length - p_len, max_length // 2))
    p_keep = max_length - r_keep
    return {"prompt_ids": e["prompt_ids"][-p_keep:], "negative_prompt_ids": e["negative_prompt_ids"][-p_keep:],
            "chosen_ids": e["chosen_ids"][:r_keep], "rejected_ids": e["rejected_ids"][:r_keep]}


class Collator:
    """Four sequences per pair, in blocks: [x y+ | x y- | x' y+ | x' y-], right-padded.

    Returns input_ids, attention_mask and completion_mask (1 on response tokens) as [4 * pairs, width] tensors.
    """

    def __init__(self, pad_token_id: int, max_length: int | None):
        self.pad_token_id, self.max_length = pad_token_id, max_length

    def __call__(self, examples: list[dict]) -> dict[str, torch.Tensor]:
        examples = [truncate_pair(e, self.max_length) for e in examples]
        blocks = (("prompt_ids", "chosen_ids"), ("prompt_ids", "rejected_ids"),
                  ("negative_prompt_ids", "chosen_ids"), ("negative_prompt_ids", "rejected_ids"))
        seqs = [(e[p], e[r]) for p, r in blocks for e in examples]
        width = max(len(p) + len(r) for p, r in seqs)
        input_ids = torch.full((len(seqs), width), self.pad_token_id, dtype=torch.long)
        attention_mask = torch.zeros((len(seqs), width), dtype=torch.long)
        completion_mask = torch.zeros((len(seqs), width), dtype=torch.long)
        for k, (p, r) in enumerate(seqs):
            input_ids[k, :len(p) + len(r)] = torch.tensor(p + r, dtype=torch.long)
            attention_mask[k, :len(p) + len(r)] = 1
            completion_mask[k, len(p):len(p) + len(r)] = 1
        return {"input_ids": input_ids, "attention_mask": attention_mask, "completion_mask": completion_mask}


def response_logps(model, inputs: dict) -> torch.Tensor:
    """Σ over response tokens of log π(token | prefix), one value per sequence, from the model's logits in fp32."""
    input_ids, completion_mask = inputs["input_ids"], inputs["completion_mask"]
    width = input_ids.shape[1]
    # Only positions from the first response token on are scored (sequences are right-padded, so they all lie in
    # the last `keep` positions): ask for those logits only. A model that ignores `logits_to_keep` returns them all,
    # and the slice below keeps the same positions.
    first = max(1, int(completion_mask.argmax(1).min()))  # token 0 has no prefix to be predicted from
    keep = width - first + 1
    logits = model(input_ids=input_ids, attention_mask=inputs["attention_mask"], use_cache=False,
                   logits_to_keep=keep).logits[:, -keep:-1]  # position t predicts token t + 1
    targets, mask = input_ids[:, first:], completion_mask[:, first:]
    # row by row (as TRL's selective_log_softmax does for bf16): the fp32 copy of the logits is made one row at a time
    token_logps = torch.stack([row.float().log_softmax(-1).gather(-1, t[:, None]).squeeze(-1)
                               for row, t in zip(logits, targets)])
    return (token_logps * mask).sum(-1)


class ContrastiveTrainer(Trainer):
    """A HF Trainer whose loss is `contrastive_loss` on the 2x2 log-prob matrix of each pair (public overrides only:
    `compute_loss` and `log`)."""

    ref_model = None  # these losses use policy log-probs only: no reference model is ever loaded
    loss_is_scaled_for_ga = False  # a mean over pairs: the Trainer divides it by the gradient-accumulation steps

    def __init__(self, *args, loss: str, **kwargs):
        if loss not in ("infonce", "sami"):
            raise ValueError(loss)
        self.contrastive = loss
        self.contrastive_stats = {"train": defaultdict(list), "eval": defaultdict(list)}  # per step, since last log
        super().__init__(*args, **kwargs)

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        logps = response_logps(model, inputs)
        # blocks [x y+ | x y- | x' y+ | x' y-] -> L[b, response, prompt]
        L = logps.view(2, 2, -1).permute(2, 1, 0)
        loss, stats = contrastive_loss(L, self.contrastive)
        mode = "train" if model.training else "eval"
        for k, v in stats.items():
            self.contrastive_stats[mode][k].append(v)
        return (loss, {"logps": L.detach()}) if return_outputs else loss

    def log(self, logs, start_time=None):
        mode = "train" if self.model.training else "eval"
        stats = self.contrastive_stats[mode]
        if stats:
            means = torch.tensor([sum(stats[k]) / len(stats[k]) for k in STATS], device=self.accelerator.device)
            if self.accelerator.num_processes > 1:  # every process logs together; report the mean over them
                means = self.accelerator.reduce(means, reduction="mean")
            prefix = "eval_" if mode == "eval" else ""
            logs = {**logs, **{f"{prefix}contrastive/{k}": v for k, v in zip(STATS, means.tolist())}}
            stats.clear()
        super().log(logs, start_time)


def make_trainer(cfg, model, tok, rows_path: Path, output_dir: str, loss: str | None = None):
    """The trainer of `loss` (infonce | sami; default cfg.method) on the pairs of `rows_path` (with x')."""
    from datasets import Dataset
    from peft import get_peft_model
    from transformers import TrainingArguments

    from ..train import lora_config, read_rows, trl_args

    rows = read_rows(rows_path, FIELDS)
    dataset = Dataset.from_list([tokenize_pair(tok, r) for r in rows])
    on_cuda = model.device.type == "cuda"
    # The collator reads the token columns the Trainer would otherwise drop (they are not forward() arguments).
    # "non_padding": the Trainer logs the real tokens trained on as num_input_tokens_seen.
    args = trl_args(cfg, TrainingArguments, output_dir, on_cuda, remove_unused_columns=False,
                    include_num_input_tokens_seen="non_padding")
    if cfg.train.lora:
        zero3 = args.deepspeed_plugin is not None and args.deepspeed_plugin.zero_stage == 3
        # ZeRO-3 gathers parameters in the dtype of the first one: keep the adapter in the base model's dtype there
        # (TRL does the same), and LoRA under ZeRO-3 needs reentrant checkpointing (TRL, huggingface/trl#2514).
        model = get_peft_model(model, lora_config(cfg), **({"autocast_adapter_dtype": False} if zero3 else {}))
        if zero3 and args.activation_checkpointing:
            name = next(n for n in ("activation_checkpointing_kwargs", "gradient_checkpointing_kwargs")
                        if hasattr(args, n))  # transformers 5 renamed it; the old name is only read at init
            setattr(args, name, {**(getattr(args, name) or {}), "use_reentrant": True})
        if args.activation_checkpointing:  # frozen embeddings: checkpointed layers still need an input with grad
            model.enable_input_require_grads()
    pad = tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id
    return ContrastiveTrainer(model=model, args=args, train_dataset=dataset, processing_class=tok,
                              data_collator=Collator(pad, cfg.train.max_length), loss=loss or cfg.method)


class Contrastive(Method):
    """infonce / sami: the pairs of mipo (with x'), trained with `contrastive_loss` instead of DPO."""
    pair_fields = FIELDS

    def __init__(self, loss: str):
        self.name = loss

    def trainer(self, cfg, model, tok, rows: Path, output_dir: str, ref_model=None):
        return make_trainer(cfg, model, tok, rows, output_dir, loss=self.name)
