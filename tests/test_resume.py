"""kill -9 a real `mipo` process mid-stage; the same command resumes and gives the uninterrupted result."""
import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from .conftest import FIXTURES, wait_until

pytestmark = pytest.mark.slow


def prompt_file(path: Path, n_train=24, n_test=12) -> Path:
    """A real JSONL prompt set in the personalization layout, big enough that a stage takes seconds."""
    base = [json.loads(line) for line in (FIXTURES / "personalization.jsonl").read_text().splitlines()]
    with path.open("w") as f:
        for i in range(n_train + n_test):
            row = dict(base[i % len(base)], id=f"r{i:03d}", split="train" if i < n_train else "test")
            row["request"] = f"{row['request']} (variant {i})"
            f.write(json.dumps(row) + "\n")
    return path


def args(model_dir, data, run_dir):
    return ["--model.name", str(model_dir), "--task.data", str(data), "--run-dir", str(run_dir),
            "--generate.batch_size", "2", "--generate.max_new_tokens", "48", "--evaluate.batch_size", "1",
            "--evaluate.max_new_tokens", "48", "--train.batch_size", "1", "--train.save_steps", "1"]


def mipo(*argv, **kw):
    return subprocess.Popen([sys.executable, "-m", "mipo", *argv], stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True, env={**os.environ, "PYTHONUNBUFFERED": "1"}, **kw)


def kill_when(proc, ready, timeout=240):
    """SIGKILL `proc` as soon as `ready()` holds; fail if it finished first (then nothing was tested)."""
    wait_until(ready, proc, timeout)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL


def finish(*argv):
    proc = mipo(*argv)
    _, err = proc.communicate(timeout=600)
    assert proc.returncode == 0, err[-3000:]


def log_lines(directory: Path) -> int:
    return sum(len(p.read_text().splitlines()) for p in directory.glob("*.jsonl")) if directory.exists() else 0


def test_kill_and_resume_every_stage(tiny_model_dir, tmp_path):
    data = prompt_file(tmp_path / "prompts.jsonl")
    ref, run = tmp_path / "ref", tmp_path / "run"
    finish("run", *args(tiny_model_dir, data, ref))

    # generate: killed after some batches were logged, before pairs.jsonl exists
    proc = mipo("generate", *args(tiny_model_dir, data, run))
    kill_when(proc, lambda: log_lines(run / "partial" / "generate") >= 3)
    assert not (run / "pairs.jsonl").exists()
    finish("generate", *args(tiny_model_dir, data, run))
    assert (run / "pairs.jsonl").read_bytes() == (ref / "pairs.jsonl").read_bytes()
    assert not (run / "partial" / "generate").exists()

    # train: killed after a checkpoint, resumed from it
    proc = mipo("train", *args(tiny_model_dir, data, run))
    kill_when(proc, lambda: any((p / "trainer_state.json").exists()
                                for p in (run / "train" / "checkpoints").glob("checkpoint-*")))
    assert not (run / "train" / "adapter").exists()
    finish("train", *args(tiny_model_dir, data, run))
    summary = json.loads((run / "train" / "train_summary.json").read_text())
    assert summary["resumed_from"] and summary["steps"] == 24
    got = load_file(run / "train" / "adapter" / "adapter_model.safetensors")
    want = load_file(ref / "train" / "adapter" / "adapter_model.safetensors")
    assert got.keys() == want.keys()
    assert all(torch.allclose(got[k], want[k], atol=1e-5) for k in got)

    # evaluate: killed after some items were generated and logged
    proc = mipo("evaluate", *args(tiny_model_dir, data, run))
    kill_when(proc, lambda: log_lines(run / "partial" / "evaluate") >= 2)
    assert not (run / "metrics.json").exists()
    finish("evaluate", *args(tiny_model_dir, data, run))
    assert json.loads((run / "metrics.json").read_text()) == json.loads((ref / "metrics.json").read_text())


def test_torn_batch_log_line_is_redone(tmp_path):
    from mipo.io import BatchLog

    log = BatchLog(tmp_path, {"k": 1})
    log.append(0, ["a", "b"])
    log.append(1, ["c"])
    with log.path.open("a") as f:
        f.write('{"batch": 2, "values": ["d"')  # kill -9 mid-write
    assert log.load() == {0: ["a", "b"], 1: ["c"]}
    log.append(2, ["d"])
    assert BatchLog(tmp_path, {"k": 1}).load() == {0: ["a", "b"], 1: ["c"], 2: ["d"]}
    assert BatchLog(tmp_path, {"k": 2}).load() == {}  # another config never reuses it
    shutil.rmtree(tmp_path)


def test_ctrl_c_is_one_line_and_exit_130_then_resume(tiny_model_dir, tmp_path):
    """SIGINT (Ctrl-C) mid-generate: one line saying how to resume, exit code 130; the rerun finishes."""
    # 120 prompts: seconds of sampling even on a fast machine, so the signal lands mid-stage
    data, run = prompt_file(tmp_path / "prompts.jsonl", n_train=120), tmp_path / "run"
    # A shell that starts a job in the background (`bash .ci/run &`) makes it ignore SIGINT, and Python then never
    # raises KeyboardInterrupt: give the child the terminal's default disposition, as for a user pressing Ctrl-C.
    proc = mipo("generate", *args(tiny_model_dir, data, run),
                preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    wait_until(lambda: log_lines(run / "partial" / "generate") >= 1, proc)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130
    last = [line for line in err.splitlines() if line.strip()][-1]
    assert last.startswith("mipo: interrupted;") and "run the same command again to resume" in last
    assert "Traceback" not in err
    finish("generate", *args(tiny_model_dir, data, run))
    assert (run / "pairs.jsonl").exists() and not (run / "partial").exists()


def test_second_mipo_on_a_run_directory_is_refused_and_a_dead_holder_is_taken_over(tiny_model_dir, tmp_path, capsys):
    from mipo.cli import main

    data, run = prompt_file(tmp_path / "prompts.jsonl", n_train=120), tmp_path / "run"  # still sampling when asked
    first = mipo("generate", *args(tiny_model_dir, data, run))
    wait_until(lambda: log_lines(run / "partial" / "generate") >= 1, first)
    assert main(["generate", *args(tiny_model_dir, data, run)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"mipo: error: {run}: another mipo (pid {first.pid}) is writing this run directory; wait for it "
                   f"to finish or use another --run-dir"]
    first.send_signal(signal.SIGKILL)
    first.wait()
    assert main(["generate", *args(tiny_model_dir, data, run)]) == 0  # the dead holder's lock is gone with it
    assert (run / "pairs.jsonl").exists()
