"""The run directory: where every stage's artifacts, stamps, resume logs and timings live.

    config.yaml          the settings of the last stage that ran
    pairs.jsonl          generate: the samples of the method (pairs, or prompt pairs for online methods)
    pairs_stats.json     generate: what the pairs hold, read without a model (mipo.pair.diagnose)
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

import fcntl
import json
import logging
import os
import resource
import shutil
from contextlib import contextmanager
from pathlib import Path

import yaml

from .config import Config, check_limits
from .distributed import is_main
from .io import MipoError, write_json, write_text
from .methods import get_method

log = logging.getLogger("mipo")

_HELD: set[Path] = set()  # run directories whose lock this process holds (stages nest inside `mipo run`)

# stage -> (config sections its outputs depend on, main artifact relative to the run dir)
STAGES = {
    "generate": (("task", "generate"), "pairs.jsonl"),
    "train": (("task", "generate", "train"), "train"),
    "evaluate": (("task", "generate", "train", "evaluate"), "metrics.json"),
}


def drop_unused(path: Path) -> None:
    """Remove a run directory a refused start created, if nothing was written in it but the lock file and the resume
    logs' fingerprints: a start refused in one line leaves no directory behind. Finished batches are kept."""
    files = [p for p in path.rglob("*") if not p.is_dir()]
    if all(p.name == ".lock" or (p.name == "fingerprint" and p.parent.parent.name == "partial") for p in files):
        shutil.rmtree(path, ignore_errors=True)


def drop_partial(path: Path) -> None:
    """Remove a stage's resume logs, and the `partial/` directory above them once it holds nothing else."""
    shutil.rmtree(path, ignore_errors=True)
    if path.parent.is_dir() and not any(path.parent.iterdir()):
        path.parent.rmdir()


class RunDir:
    def __init__(self, cfg: Config):
        check_limits(cfg)  # every stage opens its run directory first: the Python API gets the CLI's checks
        self.cfg, self.path = cfg, Path(cfg.run_dir)
        self.pairs = self.path / "pairs.jsonl"
        self.pairs_stats = self.path / "pairs_stats.json"
        self.train = self.path / "train"
        self.metrics = self.path / "metrics.json"
        self.responses = self.path / "eval" / "responses.jsonl"

    @contextmanager
    def lock(self):
        """One mipo process writes a run directory at a time: a second one is refused with the holder's pid. The lock
        is the OS's (flock on `.lock`), so it goes away with its process, kill -9 included: a lock left by a dead
        process is simply taken. Taken once per process (re-entrant); under `accelerate launch` by rank 0. A stage
        refused inside it leaves no run directory behind where the lock created one and nothing was written."""
        key = self.path.resolve()
        if not is_main() or key in _HELD:
            yield
            return
        created = None if self.path.exists() else self.path  # the outermost directory this lock creates, if any
        while created is not None and not created.parent.exists():
            created = created.parent
        self.path.mkdir(parents=True, exist_ok=True)
        try:
            with self._locked(key):
                yield
        except BaseException:
            if created is not None:
                drop_unused(created)
            raise

    @contextmanager
    def _locked(self, key: Path):
        with open(self.path / ".lock", "a+") as f:
            try:
                fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                f.seek(0)
                holder = f.read().strip() or "unknown"
                raise MipoError(f"{self.path}: another mipo (pid {holder}) is writing this run directory; wait for it "
                                f"to finish or use another --run-dir") from None
            f.truncate(0)
            f.write(str(os.getpid()))
            f.flush()
            _HELD.add(key)
            try:
                yield
            finally:
                _HELD.discard(key)
                fcntl.flock(f, fcntl.LOCK_UN)

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
        drop_partial(self.path / "partial" / stage)
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
