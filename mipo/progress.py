"""What mipo prints while it works: one line of progress per stage, and the libraries it runs kept quiet.

A stage (`stage`, around pipeline.generate / train / evaluate) gathers the bars opened inside it (`Bar`): bars of
one unit add up on one line named after the stage, so generate's passes (chosen, negatives) read as one line whose
total grows, not one bar per pass. Beside the counts: the rate and what the running pass reports (its name, or the
training's loss and reward margin). On a terminal the lines are live; in a log file (stderr not a terminal) rich
writes each stage's lines once, when the stage ends.

`quiet` (the CLI, unless --verbose) silences what the libraries print on their own: their warnings, info logs and
progress bars ("Loading weights", "Tokenizing train dataset"), through their public switches.
"""
from __future__ import annotations

import logging
import os
import sys
import warnings
from contextlib import contextmanager

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, ProgressColumn, TextColumn
from rich.table import Column
from rich.text import Text

VERBOSE = [False]  # set by `quiet`: the trainer prints its own per-step dicts again when True (mipo/callbacks.py)
_STAGES: list[_Display] = []  # the outermost open stage's display: rich runs one live display at a time
# warnings raised inside these libraries; one that points at mipo's own code (a deprecated name mipo calls) still shows
LIBRARIES = r"(transformers|trl|peft|datasets|accelerate|torch|huggingface_hub|tokenizers|safetensors|vllm)(\.|$)"


def clock(seconds: float) -> str:
    m, s = divmod(int(seconds), 60)
    return f"{m // 60}:{m % 60:02d}:{s:02d}" if m >= 60 else f"{m}:{s:02d}"


class RateColumn(ProgressColumn):
    """Units a second (seconds a unit when slower), over the work done in this process: work read back from a
    resume log is not counted; then the time so far and, while unfinished, the time left at that rate (tqdm's
    "0:12<0:30")."""

    def render(self, task) -> Text:
        done, elapsed = task.completed - task.fields["resumed"], task.elapsed or 0.0
        if done <= 0 or elapsed <= 0:
            return Text(clock(elapsed))
        rate, unit = done / elapsed, task.fields["unit"]
        speed = f"{rate:.1f} {unit}/s" if rate >= 1 else f"{1 / rate:.1f} s/{unit.removesuffix('s')}"
        left = f"<{clock((task.total - task.completed) / rate)}" if task.total and task.completed < task.total else ""
        return Text(f"{speed} {clock(elapsed)}{left}")


class _Display:
    """One stage's lines: a rich Progress, started with its first bar, with one task (line) per unit."""

    def __init__(self, name: str):
        self.name, self.progress, self.lines = name, None, {}

    def line(self, unit: str, total: int, initial: int):
        if self.progress is None:
            fixed = dict(table_column=Column(no_wrap=True))  # one line each: only the note gives way, cut short
            self.progress = Progress(
                TextColumn("{task.description:<8}", **fixed), BarColumn(bar_width=10), MofNCompleteColumn(**fixed),
                TextColumn("{task.fields[unit]}", **fixed), RateColumn(**fixed),
                TextColumn("{task.fields[note]}", table_column=Column(no_wrap=True, overflow="ellipsis")),
                console=Console(stderr=True), refresh_per_second=2)
            self.progress.start()
        if unit not in self.lines:
            self.lines[unit] = self.progress.add_task(self.name, total=total, completed=initial, unit=unit,
                                                      resumed=initial, note="")
        else:
            task = next(t for t in self.progress.tasks if t.id == self.lines[unit])
            self.progress.update(task.id, total=task.total + total, advance=initial,
                                 resumed=task.fields["resumed"] + initial)
        return self.lines[unit]

    def close(self) -> None:
        if self.progress is not None:
            for task_id in self.lines.values():
                self.progress.stop_task(task_id)  # the time shown stops here, not at the last refresh
            self.progress.stop()


@contextmanager
def stage(name: str):
    """The bars opened inside share this stage's lines; a stage opened inside another joins the outer one's."""
    if _STAGES:
        yield
        return
    _STAGES.append(_Display(name))
    try:
        yield
    finally:
        _STAGES.pop().close()


class Bar:
    """A pass over `total` units (`initial` of them done before and read back), on its stage's line for `unit`, or
    on a line of its own named `desc` outside any stage. desc None or `disable`: no line (a library caller that
    wants none, a process other than the first)."""

    def __init__(self, total: int, desc: str | None, unit: str = "prompts", initial: int = 0, disable: bool = False):
        self.display = None if desc is None or disable else (_STAGES[0] if _STAGES else _Display(desc))
        self.own, self.desc, self.done = bool(self.display) and not _STAGES, desc, initial
        if self.display is not None:
            self.task = self.display.line(unit, total, initial)
            self.note(desc if _STAGES and desc != self.display.name else "")

    def update(self, n: int = 1) -> None:
        self.done += n
        if self.display is not None:
            self.display.progress.update(self.task, advance=n)

    def note(self, text: str) -> None:
        """What the line says beside the counts: the pass running now, or the latest training numbers."""
        if self.display is not None:
            self.display.progress.update(self.task, note=text)

    def close(self) -> None:
        if self.display is not None and self.own:
            self.display.close()
        elif self.display is not None and self.desc != self.display.name:
            self.note("")  # the pass is over: its name would mislead while the stage does something else
        self.display = None

    def __enter__(self) -> Bar:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class LineHandler(logging.StreamHandler):
    """A StreamHandler on whatever sys.stderr is when a record comes: while a line is live on a terminal, rich's
    stand-in for it, which prints the record above the live lines instead of through them."""

    @property
    def stream(self):
        return sys.stderr

    @stream.setter
    def stream(self, _):
        pass  # StreamHandler.__init__ stores a stream; this handler always looks it up


@contextmanager
def quiet(verbose: bool = False):
    """Inside the block, unless `verbose`: the libraries' warnings (those raised in their own code), their logs
    below ERROR and their progress bars are off. Every setting is put back after."""
    import datasets
    from datasets.utils import logging as ds_logging
    from transformers.utils import logging as hf_logging

    names = ("trl", "peft", "accelerate", "torch", "huggingface_hub")
    saved = (VERBOSE[0], hf_logging.get_verbosity(), hf_logging.is_progress_bar_enabled(),
             ds_logging.get_verbosity(), datasets.is_progress_bar_enabled(), os.environ.get("TQDM_DISABLE"),
             [logging.getLogger(n).level for n in names])
    VERBOSE[0] = verbose
    with warnings.catch_warnings():
        if not verbose:
            warnings.filterwarnings("ignore", module=LIBRARIES)
            hf_logging.set_verbosity_error()
            hf_logging.disable_progress_bar()  # "Loading weights" (and the Hub's download bars)
            ds_logging.set_verbosity_error()
            datasets.disable_progress_bars()  # "Tokenizing train dataset", "Dropping fully truncated examples"
            os.environ["TQDM_DISABLE"] = "1"  # TRL's bar over the reference log-probs reads this switch
            for n in names:
                logging.getLogger(n).setLevel(logging.ERROR)
        try:
            yield
        finally:
            VERBOSE[0] = saved[0]
            hf_logging.set_verbosity(saved[1])
            (hf_logging.enable_progress_bar if saved[2] else hf_logging.disable_progress_bar)()
            ds_logging.set_verbosity(saved[3])
            (datasets.enable_progress_bars if saved[4] else datasets.disable_progress_bars)()
            if saved[5] is None:
                os.environ.pop("TQDM_DISABLE", None)
            else:
                os.environ["TQDM_DISABLE"] = saved[5]
            for n, level in zip(names, saved[6]):
                logging.getLogger(n).setLevel(level)
