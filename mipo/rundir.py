"""The run directory: where every stage's artifacts, stamps, resume logs and timings live.

    config.yaml          the settings of the last stage that ran
    pairs.jsonl          generate: the samples of the method (pairs, or prompt pairs for online methods)
    train/               train: adapter/ (LoRA), model/ (full fine-tune or merged rounds), train_summary.json
    eval/responses.jsonl evaluate: every held-out item's prompt, responses and per-item metrics
    metrics.json         evaluate: means, 95% CIs, paired differences
    report.md, plot.png  report
    stages/<stage>.json  the config fingerprint a stage's outputs were made with, its time and peak memory
    partial/<stage>/     resume logs of a running stage (mipo.io.BatchLog), removed when it finishes
    timings.json         seconds per stage

A stage whose outputs exist with the same fingerprint is skipped; with a different fingerprint it refuses to mix
them unless `overwrite` is set.
"""
from __future__ import annotations

import json
import logging
import resource
import shutil
from pathlib import Path

import yaml

from .config import Config, check_limits
from .io import MipoError, write_json, write_text
from .methods import get_method

log = logging.getLogger("mipo")

# stage -> (config sections its outputs depend on, main artifact relative to the run dir)
STAGES = {
    "generate": (("task", "generate"), "pairs.jsonl"),
    "train": (("task", "generate", "train"), "train"),
    "evaluate": (("task", "generate", "train", "evaluate"), "metrics.json"),
}


class RunDir:
    def __init__(self, cfg: Config):
        check_limits(cfg)  # every stage opens its run directory first: the Python API gets the CLI's checks
        self.cfg, self.path = cfg, Path(cfg.run_dir)
        self.pairs = self.path / "pairs.jsonl"
        self.train = self.path / "train"
        self.metrics = self.path / "metrics.json"
        self.responses = self.path / "eval" / "responses.jsonl"

    def fingerprint(self, stage: str) -> str:
        """The config sections a stage depends on, plus what the method decides: methods reading the same kind of
        samples share one generate stage (`mipo compare` samples once per kind); training depends on the method."""
        sections = STAGES[stage][0]
        method = get_method(self.cfg.method)
        extra = {"samples": method.samples}
        if "train" in sections:
            extra["method"] = method.name
        return self.cfg.fingerprint(*sections, **extra)

    def should_run(self, stage: str) -> bool:
        artifact = self.path / STAGES[stage][1]
        stamp = self.path / "stages" / f"{stage}.json"
        if self.cfg.overwrite or not stamp.exists() or not artifact.exists():
            return True
        old = json.loads(stamp.read_text())["fingerprint"]
        if old != self.fingerprint(stage):
            raise MipoError(f"{artifact}: made with a different config (fingerprint {old}); "
                            f"use --overwrite or another --run-dir")
        log.info("%s: up to date (%s), skipped", stage, artifact)
        return False

    def partial(self, stage: str) -> Path:
        """Where a stage logs finished batches (resume after a crash). Wiped on --overwrite or a config change."""
        path, fp = self.path / "partial" / stage, self.fingerprint(stage)
        stamp = path / "fingerprint"
        if path.exists() and (self.cfg.overwrite or not stamp.exists() or stamp.read_text() != fp):
            shutil.rmtree(path)
        path.mkdir(parents=True, exist_ok=True)
        stamp.write_text(fp)
        return path

    def finish(self, stage: str, seconds: float, **extra) -> None:
        """Stamp a finished stage, drop its resume logs, record its time."""
        shutil.rmtree(self.path / "partial" / stage, ignore_errors=True)
        if not any((self.path / "partial").glob("*")):
            shutil.rmtree(self.path / "partial", ignore_errors=True)
        # ru_maxrss is the process peak: exact for a stage run alone (`mipo train`), cumulative within `mipo run`
        peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        write_json(self.path / "stages" / f"{stage}.json",
                   {"fingerprint": self.fingerprint(stage), "seconds": seconds, "peak_rss_mb": round(peak_mb), **extra})
        timings_path = self.path / "timings.json"
        timings = json.loads(timings_path.read_text()) if timings_path.exists() else {}
        timings[stage] = seconds
        write_json(timings_path, timings)

    def save_config(self) -> None:
        write_text(self.path / "config.yaml", yaml.safe_dump(self.cfg.to_dict(), sort_keys=False))
