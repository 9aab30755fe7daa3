"""A real OpenAI-compatible server for tests and benchmarks: Hugging Face's `transformers serve` on a local model.

Installed by scripts/setup.sh through the `serve` extra (transformers[serving]: fastapi, uvicorn, openai). It loads a
LOCAL model directory with HF_HUB_OFFLINE=1, listens on 127.0.0.1 and a free port, and is stopped by its pid.

`transformers serve` samples only when the served model's generation_config.json has `do_sample: true` (it maps
`temperature` onto the model's generation config but never switches sampling on), so `servable_copy` writes a
copy of a model directory with that one field set; vLLM and the other servers need nothing of the kind.
"""
from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def servable_copy(model_dir: Path, out: Path) -> Path:
    """Symlink the model's files into `out`, with generation_config.json set to sample (do_sample: true)."""
    out.mkdir(parents=True, exist_ok=True)
    for f in Path(model_dir).iterdir():
        if f.name != "generation_config.json" and not (out / f.name).exists():
            (out / f.name).symlink_to(f.resolve())
    gen = json.loads((Path(model_dir) / "generation_config.json").read_text())
    gen["do_sample"] = True
    (out / "generation_config.json").write_text(json.dumps(gen, indent=2))
    return out


class LocalServer:
    """`transformers serve <model_dir>` in a subprocess; `base_url` ends with /v1."""

    def __init__(self, model_dir: Path, log_path: Path, port: int | None = None, extra_args=()):
        self.model_dir, self.log_path, self.port = Path(model_dir), Path(log_path), port or free_port()
        self.extra_args = list(extra_args)
        self.proc: subprocess.Popen | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def start(self, timeout: float = 240.0) -> "LocalServer":
        import importlib.util

        from .conftest import installed_or_skip

        installed_or_skip(all(importlib.util.find_spec(m) for m in ("fastapi", "uvicorn")),
                          "transformers serve (the serve extra: fastapi, uvicorn)")
        exe = Path(sys.executable).parent / "transformers"
        cmd = [str(exe), "serve", str(self.model_dir), "--host", "127.0.0.1", "--port", str(self.port),
               "--device", "cpu", "--dtype", "float32", "--log-level", "info", *self.extra_args]
        env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "PYTHONUNBUFFERED": "1"}
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True)
        t0 = time.time()
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"transformers serve exited with {self.proc.returncode}: "
                                   f"{self.log_path.read_text()[-3000:]}")
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/health", timeout=2) as r:
                    if r.status == 200:
                        return self
            except OSError:
                pass
            if time.time() - t0 > timeout:
                self.stop()
                raise RuntimeError(f"transformers serve not up after {timeout} s: {self.log_path.read_text()[-3000:]}")
            time.sleep(0.25)

    def kill(self) -> None:
        """SIGKILL, as a crash would."""
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)  # its own session: the server and nothing else
            self.proc.wait()

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.kill()

    def completions_served(self) -> int:
        """Chat completions answered with 200, from uvicorn's access log."""
        return sum('"POST /v1/chat/completions HTTP/1.1" 200' in line
                   for line in self.log_path.read_text(errors="replace").splitlines())

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

