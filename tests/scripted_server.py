"""A scripted OpenAI-compatible server for load tests and benchmarks: fast, deterministic, and unreliable on purpose.

Each chat completion's text is a pure function of the request (messages, seed, sampling settings), so a run that
was interrupted and resumed can be compared byte for byte with one that was not, whatever order the requests
arrived in. Every 97th request is answered 429 (with `Retry-After: 0`, as rate limiters send it) and every 89th
503 (without one, so the client's own backoff runs); the schedule counts requests from the server's start, so it
is the same in every run. One line per request goes to a log (`<unix time> <status> <request seed>`), read by the
tests and the benchmark for what was served.

Standard library only, run as a script (`python tests/scripted_server.py --port N --log FILE`) in its own process,
so that killing it drops its connections as a crash would; `ScriptedServer` starts, kills and restarts it.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

MODEL = "scripted"
TOO_MANY_EVERY, UNAVAILABLE_EVERY = 97, 89
WORDS = ("add", "then", "take", "away", "so", "there", "are", "left", "each", "in", "total", "we", "get")


def answer(body: dict) -> str:
    """The completion's text: words and a final answer drawn from a hash of everything that shapes a sample."""
    key = json.dumps([body.get(k) for k in ("messages", "seed", "temperature", "top_p", "max_tokens")],
                     sort_keys=True, ensure_ascii=False)
    h = hashlib.sha256(key.encode()).digest()
    words = " ".join(WORDS[b % len(WORDS)] for b in h[:12])
    return f" {words.capitalize()}.\n#### {int.from_bytes(h[12:14], 'big') % 1000} "


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive: the client reuses its connections, as with a real server
    disable_nagle_algorithm = True
    counter = 0
    lock = threading.Lock()
    log_file = None

    def log_message(self, *args):  # our own one-line log instead of http.server's to stderr
        pass

    def reply(self, status: int, payload: dict, headers: dict | None = None) -> None:
        data = json.dumps(payload).encode()
        head = [f"HTTP/1.1 {status} {self.responses[status][0]}", "Content-Type: application/json",
                f"Content-Length: {len(data)}", *(f"{k}: {v}" for k, v in (headers or {}).items())]
        # one write for head and body: two small writes would wait on the client's delayed ACK (40 ms each)
        self.wfile.write(("\r\n".join(head) + "\r\n\r\n").encode() + data)

    def do_GET(self):
        if self.path == "/v1/models":
            self.reply(200, {"object": "list", "data": [{"id": MODEL, "object": "model", "created": 0,
                                                         "owned_by": "tests"}]})
        elif self.path == "/health":
            self.reply(200, {"status": "ok"})
        else:
            self.reply(404, {"error": {"message": f"no route {self.path}"}})

    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"{}")
        if self.path != "/v1/chat/completions":
            return self.reply(404, {"error": {"message": f"no route {self.path}"}})
        with Handler.lock:
            Handler.counter += 1
            n = Handler.counter
        if n % TOO_MANY_EVERY == 0:
            status, payload, headers = 429, {"error": {"message": "rate limited"}}, {"Retry-After": "0"}
        elif n % UNAVAILABLE_EVERY == 0:
            status, payload, headers = 503, {"error": {"message": "overloaded"}}, None
        else:
            text = answer(body)
            status, headers = 200, None
            payload = {"id": f"c{n}", "object": "chat.completion", "created": 0, "model": MODEL, "choices": [
                {"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": text}}],
                "usage": {"prompt_tokens": 1, "completion_tokens": len(text.split()),
                          "total_tokens": 1 + len(text.split())}}
        self.reply(status, payload, headers)
        with Handler.lock:  # after the reply went out: a logged 200 is one the client was sent
            Handler.log_file.write(f"{time.time():.3f} {status} {body.get('seed')}\n")


def serve(port: int, log: Path) -> None:
    Handler.log_file = open(log, "a", buffering=1)  # line-buffered: the tests read it while it grows
    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)  # allow_reuse_address: a restart rebinds the port
    server.daemon_threads = True
    signal.signal(signal.SIGTERM, lambda *_: os._exit(0))
    server.serve_forever()


class ScriptedServer:
    """This file as a server process on 127.0.0.1; `base_url` ends with /v1. Log lines accumulate across restarts."""

    def __init__(self, log_path: Path, port: int | None = None):
        from .openai_server import free_port  # here, not at the top: the server process runs this file as a script

        self.log_path, self.port = Path(log_path), port or free_port()
        self.proc: subprocess.Popen | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def start(self, timeout: float = 60.0) -> "ScriptedServer":
        self.proc = subprocess.Popen([sys.executable, __file__, "--port", str(self.port), "--log", str(self.log_path)],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)
        t0 = time.time()
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"scripted server exited with {self.proc.returncode}: {self.proc.stderr.read()}")
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/health", timeout=2) as r:
                    if r.status == 200:
                        return self
            except OSError:
                pass
            if time.time() - t0 > timeout:
                self.kill()
                raise RuntimeError(f"scripted server not up after {timeout} s")
            time.sleep(0.02)

    def kill(self) -> None:
        """SIGKILL, as a crash would: open connections are dropped mid-request."""
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)  # its own session: the server and nothing else
            self.proc.wait()

    def restart(self, gap_s: float = 0.5) -> None:
        """Crash, stay down `gap_s` (clients meet refused connections), come back on the same port."""
        self.kill()
        time.sleep(gap_s)
        self.start()

    def lines(self) -> list[tuple[float, int, str]]:
        """(time, status, request seed) per request answered so far."""
        if not self.log_path.exists():
            return []
        # the text after the last newline is a line still being written (or nothing): left out
        return [(float(t), int(s), seed) for t, s, seed in
                (line.split() for line in self.log_path.read_text().split("\n")[:-1])]

    def served(self, status: int = 200) -> int:
        return sum(s == status for _, s, _ in self.lines())

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.kill()


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--log", type=Path, required=True)
    a = ap.parse_args()
    serve(a.port, a.log)
