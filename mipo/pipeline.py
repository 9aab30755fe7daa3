"""The recipe, one stage after another: generate (sample + pair) → train → evaluate → report.

Each stage reads and writes files in one run directory (mipo/rundir.py), so any stage can be re-run alone; what
is sampled and how it is trained is the method's (mipo/methods/), which the stages ask and never name.
"""
from __future__ import annotations

import json
import logging
import shutil
import time
from pathlib import Path

from . import models, progress, tracking
from .config import Config
from .distributed import is_main, single_process_only
from .inference.hf import prompt_ids, prompt_text
from .io import MipoError, read_jsonl, write_json, write_jsonl
from .methods import SampleContext, get_method
from .pair import diagnose
from .preflight import check_eval_engine, check_pairs, check_servers, refuse_special_tokens
from .rundir import RunDir
from .tasks import get_task

log = logging.getLogger("mipo")


def validate(cfg: Config, task, *groups: tuple[list, int]) -> str:
    """Everything that can be checked before loading weights: model path, tokenizer, prompt lengths.

    `groups`: (items, max_new_tokens) pairs. Returns the resolved model path. Prompts that cannot fit the context
    with room for the response are refused.
    """
    path = models.resolve(cfg.model)
    if not Path(path).is_dir():
        models.check_hub(path)
    tok = models.load_tokenizer(path, cfg.model.trust_remote_code)
    refuse_special_tokens(cfg, task, tok, *(items for items, _ in groups))
    limit = models.context_length(path, cfg.model.trust_remote_code)
    if not limit:
        return path
    for items, max_new_tokens in groups:
        for s in range(0, len(items), 1000):  # the token ids of 1,000 prompts at a time: memory bounded
            chunk = items[s:s + 1000]
            for it, ids in zip(chunk, prompt_ids(tok, [task.messages(i) for i in chunk])):
                if len(ids) + max_new_tokens > limit:
                    raise MipoError(f"{it.where}: prompt is {len(ids)} tokens; with max_new_tokens={max_new_tokens} "
                                    f"it exceeds the model's context of {limit} tokens")
    return path


def protocol_options(cfg: Config, task) -> None:
    """The authors' prompts, answer rules and fallback exist for some tasks only (`Task.paper_options`)."""
    from .tasks.base import REGISTRY

    k = cfg.task
    for key, on in (("task.prompt_style", k.prompt_style == "paper"), ("task.extraction", k.extraction == "paper"),
                    ("evaluate.extract_with_model", cfg.evaluate.extract_with_model)):
        if on and key not in task.paper_options:
            have = ", ".join(n for n, cls in sorted(REGISTRY.items()) if key in cls.paper_options)
            raise MipoError(f"{key}: task {task.name} has no paper variant (only {have})")


@progress.stage("generate")  # one line of progress for the stage
def generate(cfg: Config):
    method, rd = get_method(cfg.method), RunDir(cfg)
    single_process_only("generate")
    if method.samples is None:
        log.info("generate: method %s samples nothing", cfg.method)
        return rd.pairs
    if not rd.should_run("generate"):
        return rd.pairs
    t0 = time.perf_counter()
    task = get_task(cfg.task.name, cfg.task)
    protocol_options(cfg, task)  # before reading any data
    items = task.load(cfg.task, cfg.task.train_split)
    held_out = task.load(cfg.task, cfg.task.eval_split)  # checked now, not after an hour of sampling and training
    strategy = method.check(cfg, task, items)
    path = validate(cfg, task, (items, cfg.generate.max_new_tokens), (held_out, cfg.evaluate.max_new_tokens))
    check_servers(cfg, judge=False)  # the engine's server, before the lock: nothing is written for a dead one
    with rd.lock():
        ctx = SampleContext(cfg, task, items, path, rd.partial("generate"), strategy)
        rows = method.make_samples(ctx)
        rd.save_config()
        write_jsonl(rd.pairs, rows)
        stats = diagnose(task, items, rows)
        if stats:
            write_json(rd.pairs_stats, stats)
        rd.finish("generate", time.perf_counter() - t0, n_pairs=len(rows), **ctx.stats)
    log.info("generate: %d rows written to %s", len(rows), rd.pairs)
    if stats:
        log.info("generate: what the pairs hold (%s): %s", rd.pairs_stats, describe_pairs(stats))
    if "engine" in vars(ctx) and getattr(ctx.engine, "stats", None):
        log.info("generate: %s engine %s", ctx.engine.name, ctx.engine.stats)
    return rd.pairs


def describe_pairs(stats: dict) -> str:
    """One line: each side's model-free metrics read under the true prompt, and the 0/1 contrasts."""
    sides = "; ".join(f"{side}: " + ", ".join(f"{k} {v:.3f}" for k, v in stats[side].items() if v is not None)
                      for side in ("chosen", "rejected"))
    contrast = "; ".join(f"{k} only in the chosen {c['only_chosen']}, only in the rejected {c['only_rejected']} "
                         f"of {c['n']}" for k, c in stats["contrast"].items())
    return sides + (f" — {contrast}" if contrast else "")


@progress.stage("train")
def train(cfg: Config):
    from .train import train_model_args

    method, rd = get_method(cfg.method), RunDir(cfg)
    if not method.trains:
        log.info("train: method %s trains nothing", cfg.method)
        return rd.train
    if not rd.should_run("train"):
        return rd.train
    if not rd.pairs.exists():
        raise MipoError(f"{rd.pairs}: not found; run `mipo generate` first")
    check_pairs(cfg, rd.pairs, method.pair_fields)  # a corrupt line is named before the weights load, not after
    with rd.lock():
        t0 = time.perf_counter()
        model, tok = models.load(train_model_args(cfg))
        if is_main():  # under `accelerate launch` every process trains; only rank 0 writes the run directory
            if cfg.overwrite:
                shutil.rmtree(rd.train / "checkpoints", ignore_errors=True)
            shutil.rmtree(rd.path / "partial" / "evaluate", ignore_errors=True)  # responses of an older trained model
        summary = method.fit(cfg, model, tok, rd.pairs, rd.train)
        if not is_main():
            return rd.train
        rd.save_config()
        write_json(rd.train / "train_summary.json", summary)
        rd.finish("train", time.perf_counter() - t0, steps=summary["steps"])
        log.info("train: %d steps, outputs in %s", summary["steps"], rd.train)
        return rd.train


@progress.stage("evaluate")
def evaluate(cfg: Config):
    from .evaluation import Candidate
    from .evaluation.judge import check_config
    from .inference.hf import HFEngine

    method, rd = get_method(cfg.method), RunDir(cfg)
    single_process_only("evaluate")
    if not rd.should_run("evaluate"):
        return rd.metrics
    check_config(cfg.evaluate)
    check_servers(cfg, engine=False)  # the judge's server, before any response is sampled
    check_eval_engine(cfg)  # evaluate.engine's settings and servers, likewise
    base_only = cfg.evaluate.base_only or not (method.trains or method.guided)  # prompting: the base model
    if not base_only and method.trains and not rd.train.is_dir():
        raise MipoError(f"{rd.train}: not found; run `mipo train` first (or evaluate the base model "
                        f"alone with --evaluate.base_only true)")
    t0 = time.perf_counter()
    task = get_task(cfg.task.name, cfg.task)
    protocol_options(cfg, task)
    items = task.load(cfg.task, cfg.task.eval_split)
    if method.guided and not base_only:
        method.check(cfg, task, items)  # a negative that cannot guide decoding: refused before the weights load
    base = HFEngine(*models.load(cfg.model, validate(cfg, task, (items, cfg.evaluate.max_new_tokens))))
    after = Candidate("trained", rd.train if method.trains else None, cfg.seed,
                      cfg.generate.pmi_alpha if method.guided else None)
    candidates = [Candidate("base", None, cfg.seed)] + ([] if base_only else [after])
    with rd.lock():
        return _evaluate(cfg, rd, task, items, base, candidates, base_only, t0)


def _evaluate(cfg: Config, rd: RunDir, task, items, base, candidates, base_only: bool, t0: float):
    from .evaluation import evaluate_models
    from .evaluation.aggregate import response_rows, run_metrics
    from .evaluation.sampler import summary as sampling_summary

    responses, per_item, scorer = evaluate_models(cfg, task, items, base, candidates, rd.partial("evaluate"))
    metrics = run_metrics(task, items, responses, per_item, cfg.evaluate.bootstrap, cfg.seed)
    metrics["items"] = task.drawn[cfg.task.eval_split]
    metrics["sampling"] = sampling_summary(cfg, candidates)  # which engine sampled; what ran in process
    method = get_method(cfg.method)
    if not base_only and (method.guided or method.samples == "pmi"):  # which rule made the answers, or the samples
        metrics["pmi"] = {"method": method.name, "alpha": cfg.generate.pmi_alpha,
                          "negative": cfg.task.negative or task.default_negative,
                          "rule": "(1 + alpha) log p(y_t | x) - alpha log p(y_t | x')",
                          "of": "the answers of `trained`" if method.guided else "the training samples"}
    if rd.pairs.exists() and not base_only:  # what the model was trained on, read from the pairs alone
        pairs = diagnose(task, task.load(cfg.task, cfg.task.train_split), read_jsonl(rd.pairs))
        if pairs:
            metrics["pairs"] = pairs
    for key, summary in (("judge", scorer.judge_summary()), ("infonce", scorer.infonce_summary())):
        if summary:
            metrics[key] = summary
    summary_path = rd.train / "train_summary.json"
    if summary_path.exists() and not base_only:  # no run time here: metrics.json is identical across same-seed runs
        s = json.loads(summary_path.read_text())
        metrics["train"] = {k: s[k] for k in ("steps", "final_loss")}
    prompts = [task.messages(it) for it in items]
    write_jsonl(rd.responses, response_rows(items, prompts, responses, per_item, prompt_text(base.tok, prompts)))
    write_json(rd.metrics, metrics)
    tracking.log_evaluation(cfg, metrics, rd.responses.parent)  # train.report_to's trackers get them (eval/tb/)
    rd.save_config()  # evaluate may run alone (base_only): the report reads the settings from here
    rd.finish("evaluate", time.perf_counter() - t0)
    log.info("evaluate: metrics in %s, responses in %s", rd.metrics, rd.responses)
    return rd.metrics


def report(cfg: Config):
    from .report import write_report

    rd = RunDir(cfg)
    if not rd.metrics.exists():
        raise MipoError(f"{rd.metrics}: not found; run `mipo evaluate` first")
    path = write_report(rd.path)
    log.info("report: %s and %s", path, rd.path / "plot.png")
    return path


def run(cfg: Config):
    """All stages, each loading what it needs (a fresh base model for training, not the sampler's)."""
    from .evaluation.judge import check_config

    check_config(cfg.evaluate)  # a judge that cannot run should fail now, not after training
    check_servers(cfg, engine=False)
    check_eval_engine(cfg, reach=False)  # its servers serve the trained model only once it is trained
    generate(cfg)
    with RunDir(cfg).lock():  # held from here to the report: no other mipo slips in between the stages
        train(cfg)
        evaluate(cfg)
        return report(cfg)
