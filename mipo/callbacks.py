"""What mipo adds to every trainer it runs (mipo/train.py `fit`): a stop at the end of the step in which a signal
came, and mipo's progress line in place of the trainer's own bar, with every logged step's numbers in a file."""
from __future__ import annotations

import json
import logging
import signal
from pathlib import Path

from . import progress
from .io import read_jsonl, write_jsonl

log = logging.getLogger("mipo")


def attach(trainer, noted: list[int], log_path: Path) -> None:
    """Swap the trainer's progress callback (a tqdm bar that prints each step's dict of ~20 numbers) for mipo's
    line (`StepLog`); with --verbose the dicts are printed as before (PrinterCallback). Add `stop_on_signal`."""
    from transformers import PrinterCallback, ProgressCallback

    for cls in (ProgressCallback, PrinterCallback):  # in a notebook the trainer's widget stays: no terminal there
        trainer.pop_callback(cls)
    if progress.VERBOSE[0]:
        trainer.add_callback(PrinterCallback)
    trainer.add_callback(step_log(log_path))
    trainer.add_callback(stop_on_signal(trainer.accelerator, noted))


def describe(logs: dict) -> str:
    """The numbers of a step that say how training goes: the loss and, for DPO, the reward margin (β times the
    chosen-minus-rejected log-ratio, which rises as the policy learns the pairs) and the share of pairs it orders."""
    parts = [f"loss {logs['loss']:.3f}"] if "loss" in logs else []
    if "rewards/margins" in logs:
        parts.append(f"margin {logs['rewards/margins']:+.3f}")
    if "rewards/accuracies" in logs:
        parts.append(f"acc {logs['rewards/accuracies']:.0%}")
    return " ".join(parts)


def step_log(path: Path):
    """A TrainerCallback: mipo's line for the steps (`describe` beside it), and one JSON row per logged step in
    `path` ({"step", and what the trainer logged}), appended as training goes, so a long run can be followed
    (`tail -f`) and a killed one keeps its history. A fresh run starts the file empty; a resumed one keeps the rows
    up to its checkpoint. The first process alone shows and writes."""
    from transformers import TrainerCallback

    class StepLog(TrainerCallback):
        bar = None

        def on_train_begin(self, args, state, control, **kwargs):
            if not state.is_world_process_zero:
                return
            kept = [r for r in read_jsonl(path) if r["step"] <= state.global_step] if state.global_step and \
                path.is_file() else []
            write_jsonl(path, kept)
            self.bar = progress.Bar(state.max_steps, "train", unit="steps", initial=state.global_step)

        def on_step_end(self, args, state, control, **kwargs):
            if self.bar is not None:
                self.bar.update(state.global_step - self.bar.done)

        def on_log(self, args, state, control, logs=None, **kwargs):
            if self.bar is None or not logs or "loss" not in logs:  # the end-of-training summary is not a step
                return
            with path.open("a", encoding="utf-8") as f:
                f.write(json.dumps({"step": state.global_step, **logs}, sort_keys=True) + "\n")
            self.bar.note(describe(logs))

        def on_train_end(self, args, state, control, **kwargs):
            if self.bar is not None:
                self.bar.close()
                self.bar = None

    return StepLog()


def stop_on_signal(acc, noted: list[int]):
    """A TrainerCallback: after the step in which a signal was noted (not acted on inside torch code) on
    any process, every process's trainer saves a normal checkpoint through its own saving path and stops."""
    from transformers import TrainerCallback

    class StopOnSignal(TrainerCallback):
        stopped = False

        def on_step_end(self, args, state, control, **kwargs):
            if noted and not self.stopped:
                acc.set_trigger()
            if not self.stopped and acc.check_trigger():  # a signal on any process: all stop at this step
                self.stopped = control.should_save = control.should_training_stop = True
                noted[:] = noted or [signal.SIGTERM]
                if acc.is_main_process:
                    log.warning("train: %s: saving a checkpoint at step %d of %d in %s, then stopping",
                                signal.Signals(noted[0]).name, state.global_step, state.max_steps, args.output_dir)

    return StopOnSignal()
