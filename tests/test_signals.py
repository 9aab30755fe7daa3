"""SIGTERM (what a cluster scheduler or a preemptible VM sends) and SIGHUP, sent for real to a `mipo` process: one
line, exit 128 + the signal's number; training first saves a checkpoint at the step it reached, and the rerun ends
with the adapter and the loss of every step of an uninterrupted run."""
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from .conftest import wait_until
from .test_resume import args as resume_args
from .test_resume import finish, log_lines, prompt_file

pytestmark = pytest.mark.slow
N = 40  # prompts, pairs and (batch 1) training steps


def args(model_dir, data, run_dir):
    # no checkpoint but the one the signal asks for; on CPU, where runs are bit-exact
    return resume_args(model_dir, data, run_dir) + ["--train.save_steps", "1000", "--model.device", "cpu"]


class Mipo:
    """`mipo <argv>` in a subprocess whose output is read as it comes; train/log.jsonl gets one line per step."""

    def __init__(self, *argv):
        # the default disposition of both signals, whatever the shell that started pytest set (nohup ignores SIGHUP)
        def defaults():
            for s in (signal.SIGTERM, signal.SIGHUP):
                signal.signal(s, signal.SIG_DFL)

        self.proc = subprocess.Popen([sys.executable, "-m", "mipo", *argv], stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, env={**os.environ, "PYTHONUNBUFFERED": "1"},
                                     preexec_fn=defaults)
        self.run_dir = Path(argv[list(argv).index("--run-dir") + 1])
        self.out, self.err = bytearray(), bytearray()
        self.readers = [threading.Thread(target=self.read, args=(f, buf), daemon=True)
                        for f, buf in ((self.proc.stdout, self.out), (self.proc.stderr, self.err))]
        for t in self.readers:
            t.start()

    @staticmethod
    def read(f, buf: bytearray) -> None:
        while chunk := os.read(f.fileno(), 1 << 16):
            buf += chunk

    def steps(self) -> int:
        path = self.run_dir / "train" / "log.jsonl"
        return len(path.read_text().splitlines()) if path.is_file() else 0

    def stop(self, when, sig) -> str:
        """Send `sig` as soon as `when()` holds; return stderr once the process has ended."""
        try:
            wait_until(when, self.proc)
            self.proc.send_signal(sig)
            self.proc.wait(timeout=120)
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
        for t in self.readers:
            t.join(timeout=10)
        return self.err.decode(errors="replace")


def last_line(err: str) -> str:
    assert "Traceback" not in err, err[-3000:]
    return [line for line in err.splitlines() if line.strip()][-1]


def resume_line(name: str, run: Path) -> str:
    return f"mipo: stopped by {name}; finished work is kept in {run}: run the same command again to resume"


@pytest.fixture(scope="module")
def generated(tiny_model_dir, tmp_path_factory):
    """An uninterrupted `mipo generate`: the pairs the other runs are compared with (and train on)."""
    tmp = tmp_path_factory.mktemp("signals")
    data, ref = prompt_file(tmp / "prompts.jsonl", n_train=N), tmp / "ref"
    finish("generate", *args(tiny_model_dir, data, ref))
    return data, ref


def losses(run: Path) -> dict[int, tuple[float, float]]:
    log = json.loads((run / "train" / "train_summary.json").read_text())["log_history"]
    return {h["step"]: (h["loss"], h["learning_rate"]) for h in log if "loss" in h}


def checkpoints(run: Path) -> list[str]:
    return sorted(p.name for p in (run / "train" / "checkpoints").glob("checkpoint-*"))


def test_sigterm_in_training_checkpoints_the_step_and_the_rerun_equals_an_uninterrupted_run(
        tiny_model_dir, generated, tmp_path):
    data, pairs = generated
    ref, run = tmp_path / "ref", tmp_path / "run"
    shutil.copytree(pairs, ref)
    shutil.copytree(pairs, run)
    finish("train", *args(tiny_model_dir, data, ref))

    proc = Mipo("train", *args(tiny_model_dir, data, run))
    err = proc.stop(lambda: proc.steps() >= 3, signal.SIGTERM)
    assert proc.proc.returncode == 143, err[-3000:]
    assert last_line(err) == resume_line("SIGTERM", run)
    step = proc.steps()  # the trainer logs the step it stops at, then saves it
    assert 3 <= step < N and f"train: SIGTERM: saving a checkpoint at step {step} of {N}" in err
    assert checkpoints(run) == [f"checkpoint-{step}"]
    state = json.loads((run / "train" / "checkpoints" / f"checkpoint-{step}" / "trainer_state.json").read_text())
    assert state["global_step"] == step
    assert not (run / "train" / "adapter").exists() and not (run / "train" / "train_summary.json").exists()
    assert not (run / "stages" / "train.json").exists()

    finish("train", *args(tiny_model_dir, data, run))
    summary = json.loads((run / "train" / "train_summary.json").read_text())
    assert summary["resumed_from"].endswith(f"checkpoint-{step}") and summary["steps"] == N
    got = load_file(run / "train" / "adapter" / "adapter_model.safetensors")
    want = load_file(ref / "train" / "adapter" / "adapter_model.safetensors")
    assert got.keys() == want.keys() and all(torch.equal(got[k], want[k]) for k in got)
    assert losses(run) == losses(ref) and len(losses(ref)) == N


def test_sigterm_in_generate_is_one_line_then_the_rerun_writes_the_same_pairs(tiny_model_dir, generated, tmp_path):
    data, ref = generated
    run = tmp_path / "run"
    proc = Mipo("generate", *args(tiny_model_dir, data, run))
    err = proc.stop(lambda: log_lines(run / "partial" / "generate") >= 2, signal.SIGTERM)
    assert proc.proc.returncode == 143, err[-3000:]
    assert last_line(err) == resume_line("SIGTERM", run)
    assert not (run / "pairs.jsonl").exists() and log_lines(run / "partial" / "generate") >= 2
    finish("generate", *args(tiny_model_dir, data, run))
    assert (run / "pairs.jsonl").read_bytes() == (ref / "pairs.jsonl").read_bytes()


def test_sighup_in_training_exits_129_with_a_checkpoint(tiny_model_dir, generated, tmp_path):
    data, pairs = generated
    run = tmp_path / "run"
    shutil.copytree(pairs, run)
    proc = Mipo("train", *args(tiny_model_dir, data, run))
    err = proc.stop(lambda: proc.steps() >= 2, signal.SIGHUP)
    assert proc.proc.returncode == 129, err[-3000:]
    assert last_line(err) == resume_line("SIGHUP", run)
    assert checkpoints(run) == [f"checkpoint-{proc.steps()}"]


def test_handlers_are_restored_and_an_ignored_signal_stays_ignored(tmp_path):
    """main() also runs in-process; `nohup mipo ...` must survive its terminal closing."""
    from mipo import train
    from mipo.cli import Preempted, main, on_signal, preemptible

    def mine(signum, frame):
        pass

    before = signal.signal(signal.SIGTERM, mine), signal.signal(signal.SIGHUP, signal.SIG_IGN)
    try:
        with preemptible():
            assert signal.getsignal(signal.SIGTERM) is on_signal
            assert signal.getsignal(signal.SIGHUP) is signal.SIG_IGN
        assert main(["report", "--run-dir", str(tmp_path / "none")]) == 2  # metrics.json not found
        assert signal.getsignal(signal.SIGTERM) is mine and signal.getsignal(signal.SIGHUP) is signal.SIG_IGN
    finally:
        signal.signal(signal.SIGTERM, before[0])
        signal.signal(signal.SIGHUP, before[1])

    with pytest.raises(Preempted) as e:  # outside training: raised at once
        on_signal(signal.SIGTERM, None)
    assert e.value.signum == signal.SIGTERM and str(e.value) == "SIGTERM"
    train.TRAINING.append(noted := [])
    try:
        on_signal(signal.SIGHUP, None)  # while training: noted, for the trainer to act on at the step's end
        assert noted == [signal.SIGHUP]
        with pytest.raises(Preempted):  # a second signal does not wait
            on_signal(signal.SIGTERM, None)
    finally:
        train.TRAINING.remove(noted)
