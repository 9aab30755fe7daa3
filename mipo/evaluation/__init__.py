"""Evaluation: responses and per-item scores for named models, and their aggregation, shared by `mipo evaluate`
(base vs trained) and `mipo compare` (every method and seed).

- `evaluate_models`: each named model answers the held-out items (same decoding), sampled by evaluate.engine
  (sampler.py: in process, a server, vLLM), and is scored by `Scorer` in process (score.py: the task's metrics,
  InfoNCE MI, the judge, all under the base model);
- aggregate.py: means, CIs, paired differences, the per-item response rows;
- stats.py: bootstrap intervals; judge.py: the LLM judge. The plain-text measures of a response are
  mipo/behaviour.py (the tasks use them too).
"""
from __future__ import annotations

from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path

from ..config import Config
from ..inference import Sampling
from ..inference.adapters import trained_engine
from ..inference.hf import HFEngine
from ..seeds import derive
from ..tasks.base import Item, Task
from .sampler import Samplers
from .score import Scorer


@dataclass(frozen=True)
class Candidate:
    name: str
    train_dir: Path | None  # None = the base model; else the train stage's output (adapter/ or model/)
    seed: int  # the run seed its responses are sampled with
    alpha: float | None = None  # answers by context-aware decoding at this alpha (pmi-decode); None = plain


def evaluate_models(cfg: Config, task: Task, items: list[Item], base: HFEngine, candidates: list[Candidate],
                    resume_dir: Path | None = None) -> tuple[dict[str, list[str]], dict[str, list[dict]], Scorer]:
    """Responses and per-item scores of every candidate, in order. One copy of the base weights: a LoRA adapter
    goes on and comes off it; a full fine-tune is loaded beside it and dropped after. Candidates that would
    answer identically (the same weights with greedy decoding, or the same seed) are evaluated once. A trained model
    whose answers another engine samples is loaded in process only if it scores its own log-likelihoods."""
    from .. import models

    e = cfg.evaluate
    sampling = Sampling.of(e)
    prompts = [task.messages(it) for it in items]
    scorer = Scorer(cfg, task, items, base, resume_dir)
    samplers = Samplers(cfg, task, candidates)
    responses, per_item, done = {}, {}, {}
    for c in candidates:
        key = (c.train_dir, c.alpha, None if sampling.greedy else c.seed)
        if key not in done:
            local = trained_engine(base, c.train_dir, lambda p: models.load(cfg.model, p)[0]) \
                if samplers.in_process(c) else nullcontext()
            with local as engine:
                drawer = samplers.of(c, engine)
                answers = sample(cfg, task, items, drawer, prompts, c, resume_dir)
                replies = model_extractions(cfg, task, drawer, answers, c, resume_dir)
                logliks = choice_logliks(cfg, task, engine, items, resume_dir)
            done[key] = (answers, scorer(answers, replies, logliks))
        responses[c.name], per_item[c.name] = done[key]
    return responses, per_item, scorer


def sample(cfg: Config, task: Task, items: list[Item], engine, prompts, c: Candidate, resume_dir) -> list[str]:
    """The candidate's answers to the held-out prompts: plain sampling, or context-aware decoding against each
    item's negative prompt (mipo/inference/guidance.py)."""
    e = cfg.evaluate
    kw = dict(seed=derive(c.seed, "eval"), batch_size=e.batch_size, desc=f"eval {c.name}", resume_dir=resume_dir)
    if c.alpha is None:
        return engine.sample(prompts, Sampling.of(e), **kw)
    from ..inference.guidance import sample_guided
    from ..pair import guided_negatives

    return sample_guided(engine, prompts, guided_negatives(task, items, cfg)[1], Sampling.of(e), c.alpha, **kw)


def model_extractions(cfg: Config, task: Task, engine, answers: list[str], c: Candidate, resume_dir) -> dict | None:
    """evaluate.extract_with_model: the evaluated model itself reads the answers its rule could not (the authors'
    math fallback), through the same engine; {item index: reply}, or None when off or the task has no fallback."""
    if not cfg.evaluate.extract_with_model or not hasattr(task, "extraction_prompts"):
        return None
    from ..tasks.math import EXTRACT_SAMPLING

    asks = task.extraction_prompts(answers)
    replies = engine.sample(list(asks.values()), Sampling(*EXTRACT_SAMPLING), seed=derive(c.seed, "extract"),
                            batch_size=cfg.evaluate.batch_size, desc=f"extract {c.name}",
                            resume_dir=resume_dir) if asks else []
    return dict(zip(asks, replies))


def choice_logliks(cfg: Config, task: Task, engine, items: list[Item], resume_dir,
                   kinds: tuple[str, ...] = ("chat", "raw", "unconditional")) -> dict | None:
    """Multiple choice: log p(choice | question) of every choice under the evaluated model, lm-evaluation-harness'
    way (raw text, and the unconditional log p(choice) of its acc_mutual_info) and through the chat template, beside
    the generated answer's accuracy; None for other tasks or an engine that cannot score. `kinds`: which of
    the task's ways of scoring to run (a benchmark may skip the chat template's long contexts)."""
    if not hasattr(task, "loglik_requests") or not hasattr(engine, "text_logprobs"):
        return None
    bs = max(1, cfg.evaluate.batch_size // 4)
    score = {"chat": engine.token_logprobs, "raw": engine.text_logprobs, "unconditional": engine.text_logprobs}
    return {kind: score[kind](contexts, conts, batch_size=bs, resume_dir=resume_dir)
            for kind, (contexts, conts) in task.loglik_requests(items).items() if kind in kinds}
