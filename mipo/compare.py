"""`mipo compare`: MIPO and its baselines on the same prompts, seeds and held-out items, in one table.

    run_dir/samples/<kind>-seed<s>/      one generate stage per kind of samples and seed, shared by the methods
    run_dir/<method>/seed<s>/            each method's run directory (pairs.jsonl copied in, train/)
    run_dir/compare.json, compare.md, compare.png, compare_responses.jsonl

It only orchestrates: the stages are pipeline's, evaluation and the table are mipo/evaluation's (the same code as
`mipo evaluate`), rendering is mipo/report's. Evaluation loads the base model once; every model answers the same
held-out items with the same decoding and is scored by the same base model.
"""
from __future__ import annotations

import dataclasses
import logging
import shutil
import time
from pathlib import Path

from . import models, pipeline
from .config import Config
from .io import MipoError, atomic_path, write_json, write_jsonl, write_text
from .methods import get_method
from .preflight import check_eval_engine, check_servers
from .rundir import RunDir, drop_partial
from .tasks import get_task

log = logging.getLogger("mipo")


def parse_lists(cfg: Config) -> tuple[list[str], list[int]]:
    methods = [m.strip() for m in cfg.compare.methods.split(",") if m.strip()]
    for m in methods:
        get_method(m)
    if len(set(methods)) != len(methods):
        raise MipoError(f"compare.methods: a method is listed twice ({cfg.compare.methods})")
    try:
        seeds = [int(s) for s in cfg.compare.seeds.split(",") if s.strip()]
    except ValueError:
        raise MipoError(f"compare.seeds: expected comma-separated integers, got '{cfg.compare.seeds}'") from None
    if not methods or not seeds:
        raise MipoError("compare: needs at least one method and one seed")
    return methods, seeds


def method_cfg(cfg: Config, method: str, seed: int) -> Config:
    return dataclasses.replace(cfg, method=method, seed=seed, run_dir=str(Path(cfg.run_dir) / method / f"seed{seed}"))


def train_all(cfg: Config, methods: list[str], seeds: list[int]) -> dict:
    """Generate (shared per kind and seed) and train every method; a method that fails is recorded, not fatal."""
    failures = {}
    for seed in seeds:
        for m in methods:
            kind = get_method(m).samples
            if kind is None:
                continue
            mcfg = method_cfg(cfg, m, seed)
            try:
                shared = Path(pipeline.generate(dataclasses.replace(
                    mcfg, run_dir=str(Path(cfg.run_dir) / "samples" / f"{kind}-seed{seed}"))))
                dst = Path(mcfg.run_dir)
                for rel in ("pairs.jsonl", "stages/generate.json", "config.yaml"):
                    if not (dst / rel).exists() or (dst / rel).read_bytes() != (shared.parent / rel).read_bytes():
                        with atomic_path(dst / rel) as tmp:
                            shutil.copyfile(shared.parent / rel, tmp)
                pipeline.train(mcfg)
            except MipoError as e:  # e.g. rlaif when the model's self-scores never separate two samples
                log.error("compare: %s seed %d failed: %s", m, seed, e)
                failures[f"{m}/seed{seed}"] = str(e)
    return failures


def evaluate_all(cfg: Config, methods: list[str], seeds: list[int], failures: dict):
    """Responses and per-item metrics of every (method, seed) on the held-out items."""
    from .evaluation import Candidate, evaluate_models
    from .inference.hf import HFEngine

    root = Path(cfg.run_dir)
    task = get_task(cfg.task.name, cfg.task)
    pipeline.protocol_options(cfg, task)  # before reading any data, as generate and evaluate do
    items = task.load(cfg.task, cfg.task.eval_split)
    base = HFEngine(*models.load(cfg.model, pipeline.validate(cfg, task, (items, cfg.evaluate.max_new_tokens))))
    candidates = []
    for seed in seeds:
        for m in methods:
            key, train_dir = f"{m}/seed{seed}", root / m / f"seed{seed}" / "train"
            if key in failures:
                continue
            if get_method(m).trains and not ((train_dir / "adapter").is_dir() or (train_dir / "model").is_dir()):
                failures[key] = f"{train_dir}: no trained model"
                continue
            guided = cfg.generate.pmi_alpha if get_method(m).guided else None
            candidates.append(Candidate(key, train_dir if get_method(m).trains else None, seed, guided))
    resume = RunDir(dataclasses.replace(cfg, method="mipo")).partial("evaluate")
    # the scoring model and the InfoNCE draw are the same for every model: the root config's seed
    responses, per, _ = evaluate_models(cfg, task, items, base, candidates, resume)
    drop_partial(resume)
    return task, items, responses, per


def compare(cfg: Config) -> Path:
    from .evaluation.aggregate import method_table, response_rows
    from .report.compare import plot, render

    methods, seeds = parse_lists(cfg)
    # every server the methods will call, now: train_all records a failing method and goes on to the next
    check_servers(cfg, engine=any(get_method(m).samples for m in methods))
    check_eval_engine(cfg, reach=False, trained=len(seeds) * sum(get_method(m).trains for m in methods))
    root = Path(cfg.run_dir)
    t0 = time.perf_counter()
    failures = train_all(cfg, methods, seeds)
    t1 = time.perf_counter()
    task, items, responses, per = evaluate_all(cfg, methods, seeds, failures)
    t2 = time.perf_counter()
    result = method_table(task, len(items), methods, seeds, per, responses, cfg.evaluate.bootstrap, cfg.seed)
    result["failures"], result["items"] = failures, task.drawn[cfg.task.eval_split]
    timings = {"generate+train": t1 - t0, "evaluate": t2 - t1}
    write_jsonl(root / "compare_responses.jsonl", response_rows(items, [task.messages(it) for it in items], responses, per))
    write_json(root / "compare.json", result)
    plot(result, root / "compare.png")
    write_text(root / "compare.md", render(result, failures, timings))
    log.info("compare: table in %s, per-item responses in %s", root / "compare.md", root / "compare_responses.jsonl")
    return root / "compare.md"
