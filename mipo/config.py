"""One config tree for the CLI, YAML recipes and the Python API.

Every field of every section is a CLI flag `--section.field` (top-level fields: `--field`); a YAML recipe uses
the same names nested by section; flags override the recipe, which overrides the defaults (mipo/recipe.py reads
them)."""
from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass, field
from typing import Any

from . import tracking
from .io import MipoError


@dataclass
class ModelArgs:
    name: str = "embedded"  # "embedded" (SmolLM2-135M-Instruct GGUF shipped on PyPI), a Hub id, a local dir or a .gguf
    trust_remote_code: bool = False
    dtype: str = "auto"  # auto = bfloat16 on CUDA, float32 on CPU (bf16 matrix products are far slower on CPUs)
    device: str = "auto"
    cache_dir: str = "~/.cache/mipo"  # where GGUF models are materialised as safetensors


@dataclass
class TaskArgs:
    name: str = "personalization"  # see `mipo.tasks.REGISTRY` / docs/tasks.md
    data: str | None = None  # local JSON/JSONL/parquet/CSV file or dir, or Hub dataset; None = the task's default
    subset: str | None = None  # Hub config name (e.g. ARC-Easy, an MMLU subject); None = the task's default
    train_split: str = "train"
    eval_split: str = "test"
    n_train: int | None = None  # first n prompts of the train split (None = all)
    n_eval: int | None = None  # n items of the eval split, drawn as `eval_draw` says (None = all, in file order)
    # random = the rows pandas' `df.sample(n, random_state=eval_seed)` picks (the paper's draws: 42); first = file order
    eval_draw: str = "random"
    eval_seed: int = 42
    negative: str | None = None  # None = the task's default strategy
    fewshot: int = 0  # math: number of fixed CoT exemplars as user/assistant turns (paper: 8; 0 keeps CPU demos fast)
    # mipo = mipo's prompts; paper = the authors' eval scripts word for word (math: one user turn, their exemplars;
    # multiple choice: choices relabelled "A: ..."; PRISM: their template); the other tasks have mipo's only
    prompt_style: str = "mipo"
    # math and multiple choice: mipo = the last "####" (else the last number) / the last "the answer is";
    # paper = the authors' rule: the first "####" then the first number / the first "the answer is" then [ABCD]
    extraction: str = "mipo"
    # generic task: column names of the prompt set
    prompt_field: str = "prompt"
    context_field: str | None = None  # optional user context; rows where it is empty have none
    id_field: str | None = None  # None = row position
    reference_field: str | None = None  # optional reference response, used by the LLM judge
    # rows (and pairs) whose text holds the tokenizer's special tokens (e.g. "<|im_end|>") are refused: it reads them
    # as control tokens, so a row could forge a chat turn; true keeps them as such, with a warning
    allow_special_tokens: bool = False


@dataclass
class GenerateArgs:
    temperature: float = 0.7  # sampling temperature of the pairs' responses (0 = greedy; the paper: 0.1, ARC 1.0)
    top_p: float = 0.9  # nucleus sampling: keep the likeliest tokens up to this probability mass
    max_new_tokens: int = 128  # tokens per sampled response
    samples_per_prompt: int = 1  # pairs per prompt (1 = the paper's one pair per prompt)
    # prompts decoded together: wider decode matrix products run faster on CPU too, up to ~128 (bench/README.md)
    batch_size: int = 128
    # Engine (mipo/inference/): hf = in-process transformers; openai = any OpenAI-compatible server (vLLM serve,
    # SGLang, TGI, llama.cpp server, Ollama, transformers serve); vllm = in-process vLLM (optional extra).
    engine: str = "hf"
    base_url: str | None = None  # openai: e.g. http://localhost:8000/v1
    api_model: str | None = None  # openai: the served model name; None = the server's only model
    api_key_env: str = "OPENAI_API_KEY"  # openai: NAME of the env var holding the key (the key is never stored)
    max_concurrency: int = 16  # openai: requests in flight
    timeout_s: float = 600.0  # openai: per request
    max_retries: int = 8  # openai: on 408/409/429/5xx/connection errors, exponential backoff (1 s doubling, cap 30 s)
    max_retry_s: float = 300.0  # openai: most seconds one request retries (a refusal before any answer: none)
    rlaif_samples: int = 4  # rlaif: responses per prompt, scored 1-5 by the base model; best vs worst form the pair
    rlaif_judge_tokens: int = 48  # rlaif: tokens the base model may write for its score
    # pmi-decode, pmi-distill: alpha of context-aware decoding, (1 + alpha) log p(y_t | x) - alpha log p(y_t | x'),
    # x' = the task's negative prompt (0 = plain decoding)
    pmi_alpha: float = 0.5
    tensor_parallel_size: int = 1  # vllm
    gpu_memory_utilization: float = 0.9  # vllm


# How outputs are obtained, not what they are: left out of fingerprints, so a server restarted on another port or
# run with more concurrency resumes the same run. The engine fields are left out entirely for the default engine.
OPERATIONAL = {"generate": ("base_url", "api_key_env", "max_concurrency", "timeout_s", "max_retries", "max_retry_s",
                            "tensor_parallel_size", "gpu_memory_utilization"),
               "train": ("gradient_checkpointing", "precompute_ref", "report_to"),
               "evaluate": ("base_url", "trained_base_url")}
ENGINE_ONLY = {"generate": ("engine", "api_model"), "evaluate": ("engine", "base_model_name", "trained_model_name")}
# Fields added after run directories existed: left out of fingerprints at these defaults, so those runs still resume.
LATER = {"task.prompt_style": "mipo", "task.extraction": "mipo", "train.adam_beta2": 0.999,
         "train.lr_scheduler": "linear", "train.min_lr_ratio": 0.1, "train.warmup_ratio": 0.0,
         "evaluate.extract_with_model": False, "evaluate.judge_mode": "whole", "generate.pmi_alpha": 0.5,
         "task.allow_special_tokens": False}


@dataclass
class TrainArgs:
    lora: bool = True  # LoRA: the reference is the base with adapters disabled (no second model copy)
    lora_r: int = 16  # LoRA rank (adapters on every linear layer)
    lora_alpha: int = 32
    lora_dropout: float = 0.0
    beta: float = 0.1  # DPO beta: how far the policy may move from the reference (the paper: 0.1)
    learning_rate: float = 5e-5  # the paper's full fine-tune: 5e-7; LoRA needs more
    epochs: float = 1.0
    batch_size: int = 4  # pairs per device step (the paper: 4)
    grad_accum: int = 1  # steps accumulated per optimizer update
    max_length: int = 1024  # tokens of prompt + response kept per sequence
    adam_beta2: float = 0.999  # AdamW's second-moment decay (the authors: 0.95; beta1 0.9, weight decay 0 as TRL's)
    lr_scheduler: str = "linear"  # linear (to 0, TRL's default) | cosine_with_min_lr (cosine to min_lr_ratio x lr)
    min_lr_ratio: float = 0.1  # cosine_with_min_lr: the floor as a share of learning_rate (the authors: 0.1)
    warmup_ratio: float = 0.0  # share of the optimizer steps spent warming up linearly from 0 (the authors: 0.03)
    merge: bool = False  # also write a merged full model (LoRA only)
    save_steps: int = 50  # checkpoint every n steps; a killed `mipo train` resumes from the last one
    rounds: int = 2  # mipo-iterative: round r samples from and is referenced to the round r-1 model
    filter_margin: float = 0.0  # mipo-filtered: keep pairs whose PMI margin under the base model is above this
    # keep only pairs whose chosen response repeats at most this share of the words x has and x' lacks (the user's
    # context, for drop_context): DPO otherwise learns to echo the context back (README "Does it work?"); 1 = all
    max_echo: float = 1.0
    grpo_generations: int = 4  # mi-grpo: completions per prompt (the group)
    # Speed only (left out of fingerprints). auto: on CPU checkpointing on (it cost no speed there), no precompute;
    # on CUDA checkpointing only when the step would not fit without it (mipo.train.use_checkpointing), and the
    # reference log-probs of every pair computed in one pass before training (no reference forward per step)
    gradient_checkpointing: str = "auto"  # auto | true | false
    precompute_ref: str = "auto"  # auto | true | false (DPO-trained methods: mipo, mipo-filtered/-iterative, rlaif)
    # Experiment trackers of the training, passed to TRL as report_to (left out of fingerprints): none, or
    # comma-separated names (tensorboard, wandb, trackio, mlflow, ...). tensorboard writes under the run directory:
    # train/tb/ (mipo-iterative: train/round<r>/tb/) and the evaluation's means in eval/tb/ (`tensorboard --logdir
    # <run_dir>`); wandb, trackio and mlflow get the evaluation's means too, each set up by its own env variables
    report_to: str = "none"


@dataclass
class EvalArgs:
    temperature: float = 0.0  # 0 = greedy decoding
    top_p: float = 1.0
    max_new_tokens: int = 128  # tokens per evaluated response
    batch_size: int = 32  # prompts decoded together (scoring uses a quarter of it)
    # Engine that samples the base and trained models' responses (mipo/inference/): hf = in process; openai = an
    # OpenAI-compatible server serving both under the names below (vLLM serve: --lora-modules), or two servers;
    # vllm = in-process vLLM, a LoRA adapter as a LoRARequest (CUDA). API key, concurrency, timeout and retries:
    # generate's; vllm's GPUs: generate's. Scoring that needs log-probs (cond. MI, fluency, InfoNCE, log-likelihood
    # accuracy) runs in process whatever the engine; so do pmi-decode's answers (every step needs the logits)
    engine: str = "hf"
    base_url: str | None = None  # openai: the server of the base model (and of the trained one); None = generate's
    trained_base_url: str | None = None  # openai: the trained model's server, if another one; None = base_url
    base_model_name: str | None = None  # openai: the base model's served name; None = generate.api_model
    # openai: the trained model's served name (needed unless only the base model is evaluated); a `{name}` in it is
    # replaced by the evaluated model's name: trained, or in `mipo compare` method/seed (mipo/seed0, ...)
    trained_model_name: str | None = None
    base_only: bool = False  # evaluate the base model alone (no run_dir/train needed)
    bootstrap: int = 1000  # resamples for the 95% confidence intervals (0 = none)
    mi_negatives: int = 7  # InfoNCE MI: K other prompts each response is scored against (0 = skip)
    extract_with_model: bool = False  # math: where the rule finds no number, the evaluated model is asked (authors')
    judge: str = "none"  # none | local (an HF model) | openai (any OpenAI-compatible endpoint)
    judge_model: str | None = None  # local: model name as in model.name; openai: the endpoint's model id
    judge_base_url: str | None = None  # openai: e.g. http://localhost:8000/v1 (None = the client's default)
    judge_api_key_env: str = "OPENAI_API_KEY"  # the key is read from this env var only, never stored
    judge_pairwise: bool = False  # also judge each response against the reference pairwise, in both orders
    judge_max_new_tokens: int = 256
    # whole = one call per item, whole context; per_preference = the authors' (one per stated preference, averaged)
    judge_mode: str = "whole"


@dataclass
class CompareArgs:
    # `mipo compare`: every method on the same prompts, one table. Comma-separated (a YAML list works too).
    methods: str = ("prompting,mipo,mipo-filtered,sft-self,infonce,sami,rlaif,mi-grpo,mipo-iterative,pmi-decode,"
                    "pmi-distill")
    seeds: str = "0,1,2"


@dataclass
class Config:
    run_dir: str = "runs/demo"
    seed: int = 0
    overwrite: bool = False
    # mipo | mipo-filtered | mipo-iterative | prompting | sft-self | infonce | sami | rlaif | mi-grpo | pmi-decode |
    # pmi-distill (mipo/methods/)
    method: str = "mipo"
    model: ModelArgs = field(default_factory=ModelArgs)
    task: TaskArgs = field(default_factory=TaskArgs)
    generate: GenerateArgs = field(default_factory=GenerateArgs)
    train: TrainArgs = field(default_factory=TrainArgs)
    evaluate: EvalArgs = field(default_factory=EvalArgs)
    compare: CompareArgs = field(default_factory=CompareArgs)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def fingerprint(self, *sections: str, **extra: Any) -> str:
        """Hash of the named sections (plus model, seed and `extra`): stored beside an artifact to detect stale
        reuse. The run directory adds what the method decides (mipo.rundir.RunDir.fingerprint)."""
        d = self.to_dict()
        keep = {**{k: d[k] for k in ("model", "seed", *sections)}, **extra}
        for section, names in OPERATIONAL.items():
            if section in keep:
                keep[section] = {k: v for k, v in keep[section].items() if k not in names}
                if keep[section].get("engine") == "hf":
                    keep[section] = {k: v for k, v in keep[section].items() if k not in ENGINE_ONLY[section]}
        for s in set(keep) & set(SECTIONS):
            keep[s] = {k: v for k, v in keep[s].items() if f"{s}.{k}" not in LATER or LATER[f"{s}.{k}"] != v}
        if keep.get("task", {}).get("n_eval", 0) is None:  # every held-out item: how a subset is drawn is moot
            keep["task"] = {k: v for k, v in keep["task"].items() if k not in ("eval_draw", "eval_seed")}
        return hashlib.sha256(json.dumps(keep, sort_keys=True).encode()).hexdigest()[:16]


SECTIONS = {
    "model": ModelArgs, "task": TaskArgs, "generate": GenerateArgs, "train": TrainArgs, "evaluate": EvalArgs,
    "compare": CompareArgs}
TOP_LEVEL = ("run_dir", "seed", "overwrite", "method")


def _at_least(lo, strict: bool = False):
    return (lambda v: v > lo) if strict else (lambda v: v >= lo), f"{'>' if strict else '>='} {lo}"


def _in(lo, hi, lo_open: bool = False):
    return (lambda v: (lo < v if lo_open else lo <= v) and v <= hi), f"in {'(' if lo_open else '['}{lo}, {hi}]"


def _one_of(*choices):
    return (lambda v: v in choices), f"one of {', '.join(choices)}"


# The limits of every bounded field, checked before any work (`validate`): (test, the rule as the message says it).
LIMITS = {
    "seed": _at_least(0), "model.dtype": _one_of("auto", "float32", "bfloat16", "float16"),
    "task.n_train": _at_least(1), "task.n_eval": _at_least(1), "task.fewshot": _in(0, 8),
    "task.eval_draw": _one_of("random", "first"), "task.eval_seed": _at_least(0),
    "task.prompt_style": _one_of("mipo", "paper"), "task.extraction": _one_of("mipo", "paper"),
    "generate.temperature": _at_least(0), "generate.top_p": _in(0, 1, lo_open=True),
    "generate.max_new_tokens": _at_least(1), "generate.samples_per_prompt": _at_least(1),
    "generate.batch_size": _at_least(1), "generate.engine": _one_of("hf", "openai", "vllm"),
    "generate.max_concurrency": _at_least(1), "generate.timeout_s": _at_least(0, strict=True),
    "generate.max_retries": _at_least(0), "generate.max_retry_s": _at_least(0, strict=True),
    "generate.rlaif_samples": _at_least(1), "generate.rlaif_judge_tokens": _at_least(1),
    "generate.pmi_alpha": _at_least(0),
    "generate.tensor_parallel_size": _at_least(1), "generate.gpu_memory_utilization": _in(0, 1, lo_open=True),
    "train.lora_r": _at_least(1), "train.lora_alpha": _at_least(0, strict=True), "train.lora_dropout": _in(0, 0.99),
    "train.beta": _at_least(0, strict=True), "train.learning_rate": _at_least(0, strict=True),
    "train.epochs": _at_least(0, strict=True), "train.batch_size": _at_least(1), "train.grad_accum": _at_least(1),
    "train.max_length": _at_least(2), "train.save_steps": _at_least(1), "train.rounds": _at_least(1),
    "train.grpo_generations": _at_least(2), "train.max_echo": _in(0, 1), "train.adam_beta2": _in(0, 1),
    "train.lr_scheduler": _one_of("linear", "cosine_with_min_lr"), "train.min_lr_ratio": _in(0, 1),
    "train.warmup_ratio": _in(0, 0.99), "train.gradient_checkpointing": _one_of("auto", "true", "false"),
    "train.precompute_ref": _one_of("auto", "true", "false"),
    "train.report_to": (tracking.valid, f"none or comma-separated names of {', '.join(tracking.TRACKERS)}"),
    "evaluate.temperature": _at_least(0), "evaluate.top_p": _in(0, 1, lo_open=True),
    "evaluate.max_new_tokens": _at_least(1), "evaluate.batch_size": _at_least(1), "evaluate.bootstrap": _at_least(0),
    "evaluate.engine": _one_of("hf", "openai", "vllm"),
    "evaluate.mi_negatives": _at_least(0), "evaluate.judge": _one_of("none", "local", "openai"),
    "evaluate.judge_max_new_tokens": _at_least(1), "evaluate.judge_mode": _one_of("whole", "per_preference"),
}


def check_limits(cfg: Config) -> Config:
    """Refuse a value outside its field's limits (LIMITS), in one line, before any work starts."""
    for key, (ok, rule) in LIMITS.items():
        section, _, name = key.rpartition(".")
        value = getattr(getattr(cfg, section) if section else cfg, name)
        if value is not None and not ok(value):
            raise MipoError(f"{key}: must be {rule}, got {value!r}")
    missing = tracking.missing_package(cfg.train.report_to)  # transformers would say so once the weights are loaded
    if missing:
        raise MipoError(f"train.report_to: {missing[0]} needs the package {missing[1]} (pip install {missing[1]})")
    return cfg
