"""`mipo generate | train | evaluate | report | run | compare` — one flag per config field (its help: the field's
comment in config.py, its limit and default), or a YAML recipe."""
from __future__ import annotations

import argparse
import dataclasses
import errno
import inspect
import logging
import re
import signal
import sys
import threading
from contextlib import contextmanager
from dataclasses import fields
from pathlib import Path

from . import progress
from .config import LIMITS, SECTIONS, TOP_LEVEL, Config, check_limits
from .io import MipoError, causes
from .recipe import apply_overrides, load_recipe

STAGES = {
    "generate": "sample responses and build contrastive pairs (run_dir/pairs.jsonl)",
    "train": "DPO on the pairs with TRL (run_dir/train/)",
    "evaluate": "base vs trained (or the base alone) on held-out items (run_dir/metrics.json)",
    "report": "report.md and plot.png from metrics.json",
    "run": "all of the above",
    "compare": "MIPO and its baselines (compare.methods x compare.seeds) on the same prompts: one table",
}


def field_docs(cls) -> dict[str, str]:
    """The comments written beside (or just above) each field of a config dataclass: the flags' help text."""
    docs, pending = {}, []
    for line in inspect.getsource(cls).splitlines()[1:]:
        text = line.strip()
        if text.startswith("#"):
            pending.append(text.lstrip("# "))
            continue
        m = re.match(r"(\w+): [^=]+=.*?(?:#\s*(.*))?$", text)
        if m:
            docs[m.group(1)] = " ".join(pending + ([m.group(2)] if m.group(2) else []))
        pending = []
    return docs


def add_config_flags(parser: argparse.ArgumentParser) -> None:
    """Add `--config` and one flag per config field; unset flags stay None so they do not override the recipe."""
    parser.add_argument("--config", help="YAML recipe; flags override it")
    for name in TOP_LEVEL:
        parser.add_argument(f"--{name.replace('_', '-')}", dest=name, default=None,
                            nargs="?" if name == "overwrite" else None, const="true" if name == "overwrite" else None)
    for section, cls in SECTIONS.items():
        group, docs = parser.add_argument_group(section), field_docs(cls)
        for f in fields(cls):
            default = f.default if f.default is not dataclasses.MISSING else None
            limit = LIMITS.get(f"{section}.{f.name}")
            help_ = "; ".join(x for x in (docs.get(f.name), limit and f"must be {limit[1]}", f"default: {default}") if x)
            group.add_argument(f"--{section}.{f.name}", dest=f"{section}.{f.name}", default=None,
                               metavar=str(f.type).replace(" | None", "").upper(), help=help_.replace("%", "%%"))


def config_from_args(ns: argparse.Namespace) -> Config:
    cfg = load_recipe(ns.config) if getattr(ns, "config", None) else Config()
    flat = {k: v for k, v in vars(ns).items() if v is not None and (k in TOP_LEVEL or "." in k)}
    return check_limits(apply_overrides(cfg, flat, "command line"))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="mipo", description="Self-improvement by maximising prompt-response "
                                     "mutual information (MIPO): pairs from the model's own samples, then DPO.")
    sub = parser.add_subparsers(dest="command", required=True)
    for name, help_ in STAGES.items():
        add_config_flags(stage := sub.add_parser(name, help=help_, description=help_))
        stage.add_argument("--verbose", action="store_true", help="the libraries' own warnings, logs and progress "
                           "bars, and each training step's numbers, as they print them (default: mipo's lines only)")
    ns, unknown = parser.parse_known_args(argv)
    if unknown:
        parser.exit(2, f"mipo: error: {unknown_flag(unknown[0])}\n")
    from .models import keep_freed_memory

    keep_freed_memory()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s mipo %(levelname)s %(message)s", datefmt="%H:%M:%S",
                        handlers=[progress.LineHandler()])  # above the live progress lines, not through them
    for noisy in ("httpx", "httpx2", "openai", "urllib3", "filelock"):  # one line per HTTP request otherwise
        logging.getLogger(noisy).setLevel(logging.WARNING)
    cfg = None
    try:
        with preemptible(), progress.quiet(ns.verbose):
            cfg = config_from_args(ns)
            from . import pipeline
            from .methods import get_method

            get_method(cfg.method)  # an unknown method is refused before any work, with the nearest known one
            check_writable(Path(cfg.run_dir))

            if ns.command == "compare":
                from .compare import compare

                result = compare(cfg)
            else:
                result = getattr(pipeline, ns.command)(cfg)
    except MipoError as e:
        print(f"mipo: error: {e}", file=sys.stderr)
        return 2
    except (KeyboardInterrupt, Preempted) as e:
        why = f"stopped by {e}" if isinstance(e, Preempted) else "interrupted"
        print(f"mipo: {why}; finished work is kept in {cfg.run_dir if cfg else 'the run directory'}: run the same "
              f"command again to resume", file=sys.stderr)
        return 128 + e.signum if isinstance(e, Preempted) else 130
    except Exception as e:  # a disk that fills up or turns read-only mid-run: one line, and how to go on
        why = disk_error(e)
        if why is None:
            raise
        print(f"mipo: error: {why}; finished work is kept in {cfg.run_dir}: free space (or fix the disk) and run the "
              f"same command again to resume", file=sys.stderr)
        return 2
    if ns.command in ("run", "evaluate", "report", "compare"):  # the table, then where the report is
        from .report.terminal import print_compare, print_summary

        (print_compare if ns.command == "compare" else print_summary)(Path(cfg.run_dir))
    else:
        print(f"outputs: {result}")
    return 0


class Preempted(BaseException):
    """SIGTERM or SIGHUP (a cluster scheduler, a preemptible VM, a closed terminal) raised where the program is, as
    Ctrl-C raises KeyboardInterrupt: the CLI prints one line and exits 128 + the signal's number (143, 129)."""

    def __init__(self, signum: int):
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


def on_signal(signum, frame) -> None:
    """Raise Preempted, except while mipo.train.fit trains: then note the first signal there and return; the trainer
    saves a checkpoint at the end of the step and stops, and fit delivers the signal again. A second one raises."""
    train = sys.modules.get("mipo.train")
    if train is not None and train.TRAINING and not train.TRAINING[-1]:
        train.TRAINING[-1].append(signum)
        return
    raise Preempted(signum)


@contextmanager
def preemptible():
    """SIGTERM and SIGHUP go to `on_signal` until the block ends, then the previous handlers come back (main() also
    runs in-process). A signal ignored when mipo started (SIGHUP under nohup) stays ignored."""
    if threading.current_thread() is not threading.main_thread():  # only the main thread may set handlers
        yield
        return
    previous = {s: signal.getsignal(s) for s in (signal.SIGTERM, signal.SIGHUP)}
    for s, handler in previous.items():
        if handler is not signal.SIG_IGN:
            signal.signal(s, on_signal)
    try:
        yield
    finally:
        for s, handler in previous.items():
            signal.signal(s, signal.SIG_DFL if handler is None else handler)


DISK_ERRNOS = {errno.ENOSPC, errno.EROFS, errno.EDQUOT, errno.EACCES, errno.EPERM}


def disk_error(e: BaseException | None) -> str | None:
    """"<file>: No space left on device" when e (or what caused it: libraries wrap OSErrors) is a disk failure."""
    for c in causes(e):
        if isinstance(c, OSError) and c.errno in DISK_ERRNOS:
            return f"{c.filename}: {c.strerror}" if c.filename else c.strerror
        for text in ("No space left on device", "Read-only file system", "Disk quota exceeded"):
            if text in str(c):
                return text
    return None


def check_writable(run_dir: Path) -> None:
    """Refuse a run directory that cannot be written (read-only disk, no permission) before any work starts,
    creating nothing: the check is on the directory, or on its nearest existing parent."""
    import os

    where = run_dir.resolve()
    while not where.exists():
        where = where.parent
    if not where.is_dir():
        raise MipoError(f"{run_dir}: cannot create the run directory: {where} is a file")
    if not os.access(where, os.W_OK | os.X_OK):
        why = "read-only file system" if os.statvfs(where).f_flag & os.ST_RDONLY else "permission denied"
        raise MipoError(f"{run_dir}: cannot write the run directory ({where}: {why})")


def unknown_flag(flag: str) -> str:
    """"unknown flag --train.betta; did you mean --train.beta?" (every stage takes the same flags: the config's)."""
    import difflib

    known = ["--config", "--help", "--verbose"] + [f"--{n.replace('_', '-')}" for n in TOP_LEVEL]
    known += [f"--{section}.{f.name}" for section, cls in SECTIONS.items() for f in fields(cls)]
    near = difflib.get_close_matches(flag.split("=")[0], known, n=1)
    return f"unknown flag {flag}" + (f"; did you mean {near[0]}?" if near else "; see mipo <stage> --help")


if __name__ == "__main__":
    sys.exit(main())
