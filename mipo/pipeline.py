"""The recipe, one stage after another: generate (sample + pair) → train → evaluate → report.

Each stage reads and writes files in one run directory, so any stage can be re-run alone. A stage whose
outputs exist with the same config fingerprint is skipped; with a different fingerprint it refuses to mix
them unless `overwrite` is set.
"""
from __future__ import annotations

import dataclasses
import json
import logging
import resource
import shutil
import time
from pathlib import Path

import yaml

from . import models
from .config import Config
from .distributed import is_main, single_process_only
from .io import MipoError, write_json, write_jsonl, write_text
from .tasks import get_task

log = logging.getLogger("mipo")

# stage -> (config sections its outputs depend on, main artifact relative to the run dir)
STAGES = {
    "generate": (("task", "generate"), "pairs.jsonl"),
    "train": (("task", "generate", "train"), "train"),
    "evaluate": (("task", "generate", "train", "evaluate"), "metrics.json"),
}


def _stamp_path(run_dir: Path, stage: str) -> Path:
    return run_dir / "stages" / f"{stage}.json"


def _should_run(cfg: Config, stage: str) -> bool:
    run_dir = Path(cfg.run_dir)
    sections, artifact = STAGES[stage]
    stamp = _stamp_path(run_dir, stage)
    if cfg.overwrite or not stamp.exists() or not (run_dir / artifact).exists():
        return True
    old = json.loads(stamp.read_text())["fingerprint"]
    if old != cfg.fingerprint(*sections):
        raise MipoError(f"{run_dir / artifact}: made with a different config (fingerprint {old}); "
                        f"use --overwrite or another --run-dir")
    log.info("%s: up to date (%s), skipped", stage, run_dir / artifact)
    return False


def _partial(cfg: Config, stage: str) -> Path:
    """Where a stage logs finished batches (resume after a crash). Wiped on --overwrite or a config change."""
    path = Path(cfg.run_dir) / "partial" / stage
    stamp, fp = path / "fingerprint", cfg.fingerprint(*STAGES[stage][0])
    if path.exists() and (cfg.overwrite or not stamp.exists() or stamp.read_text() != fp):
        shutil.rmtree(path)
    path.mkdir(parents=True, exist_ok=True)
    stamp.write_text(fp)
    return path


def _validate(cfg: Config, task, items, max_new_tokens: int):
    """Everything that can be checked before loading weights: model path, tokenizer, prompt lengths.

    Returns the resolved model path. Prompts that cannot fit the context with room for the response are refused.
    """
    from .generate import prompt_ids

    path = models.resolve(cfg.model)
    tok = models.load_tokenizer(path, cfg.model.trust_remote_code)
    limit = models.context_length(path, cfg.model.trust_remote_code)
    if not limit:
        return path
    for it, ids in zip(items, prompt_ids(tok, [task.messages(it) for it in items])):
        if len(ids) + max_new_tokens > limit:
            raise MipoError(f"{it.where}: prompt is {len(ids)} tokens; with max_new_tokens={max_new_tokens} it "
                            f"exceeds the model's context of {limit} tokens")
    return path


def _finish(cfg: Config, stage: str, seconds: float, **extra) -> None:
    run_dir = Path(cfg.run_dir)
    shutil.rmtree(run_dir / "partial" / stage, ignore_errors=True)
    # ru_maxrss is the process peak: exact for a stage run alone (`mipo train`), cumulative within `mipo run`
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    write_json(_stamp_path(run_dir, stage), {"fingerprint": cfg.fingerprint(*STAGES[stage][0]), "seconds": seconds,
                                             "peak_rss_mb": round(peak_mb), **extra})
    timings_path = run_dir / "timings.json"
    timings = json.loads(timings_path.read_text()) if timings_path.exists() else {}
    timings[stage] = seconds
    write_json(timings_path, timings)


def _save_config(cfg: Config) -> None:
    write_text(Path(cfg.run_dir) / "config.yaml", yaml.safe_dump(cfg.to_dict(), sort_keys=False))


def generate(cfg: Config) -> Path:
    from .engines import make_engine
    from .methods import get_method
    from .pair import build_pairs, check, prompt_rows

    run_dir, out = Path(cfg.run_dir), Path(cfg.run_dir) / "pairs.jsonl"
    single_process_only("generate")
    kind = get_method(cfg.method).samples
    if kind is None:
        log.info("generate: method %s samples nothing", cfg.method)
        return out
    if not _should_run(cfg, "generate"):
        return out
    t0 = time.perf_counter()
    task = get_task(cfg.task.name, cfg.task)
    items = task.load(cfg.task, cfg.task.train_split)
    task.load(cfg.task, cfg.task.eval_split)  # validate the held-out rows now, not after an hour of sampling
    check(task, items, cfg)
    if kind == "prompts":  # online methods sample while training: only the prompt pairs (x, x') are needed
        _validate(cfg, task, items, cfg.generate.max_new_tokens)
        rows = prompt_rows(task, items, cfg)
        _save_config(cfg)
        write_jsonl(out, rows)
        _finish(cfg, "generate", time.perf_counter() - t0, n_pairs=len(rows))
        log.info("generate: %d prompt pairs written to %s", len(rows), out)
        return out
    g = cfg.generate
    engine = make_engine(cfg, _validate(cfg, task, items, g.max_new_tokens))  # generate.engine: hf | openai | vllm
    partial = _partial(cfg, "generate")

    def sample_fn(prompts, seed, desc, temperature=g.temperature, top_p=g.top_p, max_new_tokens=g.max_new_tokens):
        return engine.sample(prompts, temperature=temperature, top_p=top_p, max_new_tokens=max_new_tokens,
                             batch_size=g.batch_size, seed=seed, desc=desc, resume_dir=partial)

    extra = {}
    if kind == "rlaif":
        from .methods.rlaif import build_pairs as rlaif_pairs

        score_fn = None
        if getattr(engine, "model", None) is not None:  # in process: probability-weighted scores, see methods/rlaif
            from .methods.rlaif import expected_scores

            def score_fn(prompts):
                return expected_scores(engine.model, engine.tok, prompts, max(1, g.batch_size // 4), partial)
        pairs, extra = rlaif_pairs(task, items, cfg, sample_fn, score_fn)
    else:
        pairs = build_pairs(task, items, cfg, sample_fn)
    _save_config(cfg)
    write_jsonl(out, pairs)
    _finish(cfg, "generate", time.perf_counter() - t0, n_pairs=len(pairs), **extra)
    log.info("generate: %d pairs written to %s", len(pairs), out)
    if getattr(engine, "stats", None):
        log.info("generate: %s engine %s", engine.name, engine.stats)
    return out


def _filter_pairs(cfg: Config, model, tok, pairs: Path, out: Path) -> Path:
    """mipo-filtered: keep the pairs whose PMI margin under the base model is above train.filter_margin."""
    from .generate import logprobs
    from .io import read_jsonl
    from .pair import pmi_margins

    rows = read_jsonl(pairs)
    if any("negative_prompt" not in r for r in rows):
        raise MipoError(f"{pairs}: rows lack 'negative_prompt' (made by an older mipo); re-run generate")
    scored = pmi_margins(rows, lambda p, r: logprobs(model, tok, p, r, batch_size=max(1, cfg.train.batch_size)))
    kept = [{**r, "meta": {**r["meta"], "pmi_margin": s["margin"]}} for r, s in zip(rows, scored)
            if s["margin"] > cfg.train.filter_margin]
    if not kept:
        raise MipoError(f"{pairs}: every pair has a PMI margin <= {cfg.train.filter_margin}; nothing to train on")
    margins = sorted(s["margin"] for s in scored)
    write_jsonl(out / "pairs.filtered.jsonl", kept)
    write_json(out / "filter.json", {"threshold": cfg.train.filter_margin, "pairs": len(rows), "kept": len(kept),
                                     "dropped": len(rows) - len(kept), "median_margin": margins[len(margins) // 2],
                                     "margins": [s["margin"] for s in scored]})
    log.info("mipo-filtered: kept %d of %d pairs (PMI margin > %g); dropped %d", len(kept), len(rows),
             cfg.train.filter_margin, len(rows) - len(kept))
    return out / "pairs.filtered.jsonl"


def train(cfg: Config) -> Path:
    from .methods import get_method
    from .train import train as run_train

    run_dir = Path(cfg.run_dir)
    out = run_dir / "train"
    if get_method(cfg.method).trainer is None:
        log.info("train: method %s trains nothing", cfg.method)
        return out
    if not _should_run(cfg, "train"):
        return out
    pairs = run_dir / "pairs.jsonl"
    if not pairs.exists():
        raise MipoError(f"{pairs}: not found; run `mipo generate` first")
    t0 = time.perf_counter()
    # Full fine-tuning keeps fp32 master weights (TRL's bf16 flag then autocasts the compute): updates of lr 5e-7
    # vanish when added to bf16 weights. LoRA trains fp32 adapters on a frozen base, which may stay in bf16.
    model, tok = models.load(cfg.model if cfg.train.lora else dataclasses.replace(cfg.model, dtype="float32"))
    if is_main():  # under `accelerate launch` every process trains; only rank 0 writes the run directory
        if cfg.overwrite:
            shutil.rmtree(out / "checkpoints", ignore_errors=True)
        shutil.rmtree(run_dir / "partial" / "evaluate", ignore_errors=True)  # responses of an older trained model
    if cfg.method == "mipo-filtered":
        single_process_only("mipo-filtered")
        pairs = _filter_pairs(cfg, model, tok, pairs, out)
    model.train()
    if cfg.method == "mipo-iterative":
        from .methods.iterative import train as iterate

        single_process_only("mipo-iterative")
        summary = iterate(cfg, model, tok, pairs, out)
    else:
        summary = run_train(cfg, model, tok, pairs, out)
    if not is_main():
        return out
    _save_config(cfg)
    write_json(out / "train_summary.json", summary)
    _finish(cfg, "train", time.perf_counter() - t0, steps=summary["steps"])
    log.info("train: %d steps, outputs in %s", summary["steps"], out)
    return out


def evaluate(cfg: Config) -> Path:
    from .evaluate import evaluate as run_eval, load_trained

    run_dir = Path(cfg.run_dir)
    out = run_dir / "metrics.json"
    single_process_only("evaluate")
    if not _should_run(cfg, "evaluate"):
        return out
    from .judge import check_config

    check_config(cfg.evaluate)
    from .methods import get_method

    base_only = cfg.evaluate.base_only or get_method(cfg.method).trainer is None  # prompting: the base model
    if not base_only and not (run_dir / "train").is_dir():
        raise MipoError(f"{run_dir / 'train'}: not found; run `mipo train` first (or evaluate the base model "
                        f"alone with --evaluate.base_only true)")
    t0 = time.perf_counter()
    task = get_task(cfg.task.name, cfg.task)
    items = task.load(cfg.task, cfg.task.eval_split)
    base, tok = models.load(cfg.model, _validate(cfg, task, items, cfg.evaluate.max_new_tokens))
    trained, base_ctx = (None, None) if base_only else load_trained(cfg, base, run_dir / "train")
    metrics, rows = run_eval(cfg, task, items, tok, base, trained, base_ctx, resume_dir=_partial(cfg, "evaluate"))
    summary_path = run_dir / "train" / "train_summary.json"
    if summary_path.exists() and not base_only:  # no run time here: metrics.json is identical across same-seed runs
        s = json.loads(summary_path.read_text())
        metrics["train"] = {k: s[k] for k in ("steps", "final_loss")}
    write_jsonl(run_dir / "eval" / "responses.jsonl", rows)
    write_json(out, metrics)
    _save_config(cfg)  # evaluate may run alone (base_only): the report reads the settings from here
    _finish(cfg, "evaluate", time.perf_counter() - t0)
    log.info("evaluate: metrics in %s, responses in %s", out, run_dir / "eval" / "responses.jsonl")
    return out


def report(cfg: Config) -> Path:
    from .report import write_report

    run_dir = Path(cfg.run_dir)
    if not (run_dir / "metrics.json").exists():
        raise MipoError(f"{run_dir / 'metrics.json'}: not found; run `mipo evaluate` first")
    path = write_report(run_dir)
    log.info("report: %s and %s", path, run_dir / "plot.png")
    return path


def run(cfg: Config) -> Path:
    """All stages, each loading what it needs (a fresh base model for training, not the sampler's)."""
    from .judge import check_config

    check_config(cfg.evaluate)  # a judge that cannot run should fail now, not after training
    generate(cfg)
    train(cfg)
    evaluate(cfg)
    return report(cfg)
