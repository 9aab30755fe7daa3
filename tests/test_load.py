"""Under load (issue 25): `mipo generate` with the openai engine on 10,000 prompts against a scripted local server
(tests/scripted_server.py) that answers 429 and 503 on a fixed schedule and crashes and restarts once mid-run,
while mipo itself is killed with SIGKILL mid-run and rerun: exactly 10,000 pairs, none twice, only the missing
responses requested again, and the bytes of an uninterrupted run. Its wall time and memory are bench/load.py's."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from .scripted_server import ScriptedServer

pytestmark = pytest.mark.slow  # ~20,000 requests and three mipo processes: more than a minute on 2 cores
N = 10_000
RESTART_AT, KILL_AT = 3_000, 6_000  # logged responses at which the server restarts and mipo is killed


def svamp_file(path: Path, n_train: int, n_test: int = 4) -> Path:
    """A SVAMP-layout JSONL set: every prompt distinct (so every response is), a few held-out rows for the check."""
    with path.open("w") as f:
        for i in range(n_train + n_test):
            a, b = 3 + i % 97, 2 + i // 97
            f.write(json.dumps({"ID": f"s{i:05d}", "Body": f"Ann has {a} apples. Ben gives her {b} more.",
                                "Question": "How many apples does Ann have now?", "Answer": float(a + b),
                                "split": "train" if i < n_train else "test"}) + "\n")
    return path


def generate_argv(model_dir, data, run_dir, base_url) -> list[str]:
    """What a user types: svamp's default negative (random_prompt) costs one request per prompt."""
    return [sys.executable, "-m", "mipo", "generate", "--task.name", "svamp", "--task.data", str(data),
            "--model.name", str(model_dir), "--run-dir", str(run_dir), "--generate.engine", "openai",
            "--generate.base_url", base_url]


def start(argv, err: Path) -> subprocess.Popen:
    # stderr to a file, not a pipe nobody reads while mipo runs: a minute of progress bars and retry warnings
    # would fill a pipe's buffer and block mipo
    with err.open("w") as f:
        return subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=f, env={**os.environ, "PYTHONUNBUFFERED": "1"})


def until(ready, proc: subprocess.Popen, err: Path, timeout: float = 300) -> None:
    t0 = time.monotonic()
    while not ready():
        assert proc.poll() is None, f"mipo ended first ({proc.returncode}): {err.read_text()[-3000:]}"
        assert time.monotonic() - t0 < timeout, f"not reached in {timeout} s: {err.read_text()[-3000:]}"
        time.sleep(0.05)


def finish(argv, err: Path) -> None:
    proc = start(argv, err)
    try:
        assert proc.wait(timeout=600) == 0, err.read_text()[-3000:]
    finally:
        if proc.poll() is None:
            proc.kill()


def logged(partial: Path) -> dict[int, str]:
    """The responses in the openai engine's log, as mipo will read them: up to the first torn line. A prompt index
    logged twice would be a request sent twice."""
    out: dict[int, str] = {}
    for f in partial.glob("*.jsonl"):
        for line in f.read_bytes().splitlines():
            try:
                rec = json.loads(line)
            except json.JSONDecodeError:
                break
            for i, text in rec["values"]:
                assert i not in out, f"prompt {i} logged twice"
                out[i] = text
    return out


def settled(server: ScriptedServer, quiet_s: float = 0.5, timeout: float = 30) -> int:
    """Requests served once the log stops growing: a killed client's last requests may still be finishing."""
    n, t0 = len(server.lines()), time.monotonic()
    while time.monotonic() - t0 < timeout:
        time.sleep(quiet_s)
        if (m := len(server.lines())) == n:
            return server.served()
        n = m
    raise AssertionError(f"the server log kept growing for {timeout} s")


def check_pairs(run_dir: Path) -> list[dict]:
    rows = [json.loads(line) for line in (run_dir / "pairs.jsonl").read_text().splitlines()]
    ids = [r["meta"]["prompt_id"] for r in rows]
    assert len(rows) == N and len(set(ids)) == N and set(ids) == {f"s{i:05d}" for i in range(N)}
    assert all(r["chosen"][0]["content"].endswith(tuple("0123456789")) for r in rows)  # the server's text, stripped
    assert not (run_dir / "partial" / "generate").exists()
    return rows


def test_ten_thousand_prompts_through_429s_503s_a_server_restart_and_a_kill(tiny_model_dir, tmp_path):
    data = svamp_file(tmp_path / "svamp.jsonl", N)
    ref, run, partial = tmp_path / "ref", tmp_path / "run", tmp_path / "run" / "partial" / "generate"

    with ScriptedServer(tmp_path / "ref.log") as server:  # the uninterrupted run (the server's 429s and 503s too)
        finish(generate_argv(tiny_model_dir, data, ref, server.base_url), tmp_path / "ref.err")
        assert server.served(200) == N and server.served(429) > 50 and server.served(503) > 50
    err = (tmp_path / "ref.err").read_text()
    assert "(HTTP 429); retry 1/8" in err and "(HTTP 503); retry 1/8" in err and "Traceback" not in err
    check_pairs(ref)

    server = ScriptedServer(tmp_path / "run.log").start()
    try:
        argv = generate_argv(tiny_model_dir, data, run, server.base_url)
        proc = start(argv, tmp_path / "killed.err")
        try:
            until(lambda: len(logged(partial)) >= RESTART_AT, proc, tmp_path / "killed.err")
            server.restart()  # mipo's open requests fail, new connections are refused for a while
            until(lambda: len(logged(partial)) >= KILL_AT, proc, tmp_path / "killed.err")  # it rode out the restart
        finally:
            proc.send_signal(signal.SIGKILL)
            proc.wait()
        assert proc.returncode == -signal.SIGKILL
        killed_err = (tmp_path / "killed.err").read_text()
        assert "APIConnectionError); retry 1/8" in killed_err and "Traceback" not in killed_err
        assert not (run / "pairs.jsonl").exists()
        before, served_before = logged(partial), settled(server)
        assert KILL_AT <= len(before) < N

        finish(argv, tmp_path / "rerun.err")
        assert server.served() - served_before == N - len(before)  # only the missing responses were requested
    finally:
        server.kill()
    assert "of 10000 responses already logged" in (tmp_path / "rerun.err").read_text()
    rows = check_pairs(run)
    assert all(rows[i]["chosen"][0]["content"] == text for i, text in before.items())  # the logged ones were kept
    assert (run / "pairs.jsonl").read_bytes() == (ref / "pairs.jsonl").read_bytes()
