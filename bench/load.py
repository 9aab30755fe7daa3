"""Under load (issue 25): `mipo generate` with the openai engine on 10,000 prompts against the scripted local server
of tests/scripted_server.py (429 every 97th request, 503 every 89th), once uninterrupted and once with the server
crashed and restarted mid-run and mipo killed with SIGKILL mid-run and rerun. Prints wall time, requests/s, CPU
time and the peak RSS of each mipo process; checks the interrupted run's pairs.jsonl equals the uninterrupted one's.

    .venv/bin/python bench/load.py [--prompts 10000] [--model DIR]

tests/test_load.py runs the same scenario as a test (no timings). `--model`: a model directory whose tokenizer mipo
reads to check prompt lengths (default: the tests' tiny model, built in a temporary directory); no weights load.
"""
from __future__ import annotations

import argparse
import os
import platform
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.scripted_server import ScriptedServer  # noqa: E402
from tests.test_load import generate_argv, logged, settled, svamp_file  # noqa: E402


def launch(argv, err: Path) -> tuple[subprocess.Popen, float]:
    with err.open("w") as f:  # a file, not a pipe: nobody reads stderr while mipo runs
        proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=f, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    return proc, time.perf_counter()


def reap(proc: subprocess.Popen, t0: float) -> dict:
    """Wait for this one process and read its own resource usage (wait4: not the other children's, the server's)."""
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    return {"rc": proc.returncode, "wall_s": time.perf_counter() - t0, "peak_rss_mb": usage.ru_maxrss / 1024,
            "cpu_s": usage.ru_utime + usage.ru_stime}


def requests_in(lines: list[tuple[float, int, str]]) -> dict:
    """What the server answered, and at what rate from its first to its last answer (mipo's start-up excluded)."""
    span = lines[-1][0] - lines[0][0] if len(lines) > 1 else 0.0
    by = {s: sum(x == s for _, x, _ in lines) for s in (200, 429, 503)}
    return {"answered": len(lines), "ok": by[200], "429": by[429], "503": by[503], "span_s": span,
            "requests_per_s": len(lines) / span if span else None}


def uninterrupted(argv_for, tmp: Path) -> dict:
    with ScriptedServer(tmp / "ref.log") as server:
        proc, t0 = launch(argv_for(tmp / "ref", server.base_url), tmp / "ref.err")
        out = reap(proc, t0)
        if out["rc"]:
            raise SystemExit(f"mipo generate failed ({out['rc']}): {(tmp / 'ref.err').read_text()[-3000:]}")
        return {**out, **requests_in(server.lines())}


def wait_for(ready, proc, timeout: float = 600) -> None:
    t0 = time.monotonic()
    while not ready():
        if proc.poll() is not None or time.monotonic() - t0 > timeout:
            raise SystemExit("mipo ended (or stalled) before the point this benchmark interrupts it at")
        time.sleep(0.05)


def interrupted(argv_for, tmp: Path, n: int) -> dict:
    """Restart the server at 30% logged, SIGKILL mipo at 60%, rerun to the end."""
    run, partial = tmp / "run", tmp / "run" / "partial" / "generate"
    with ScriptedServer(tmp / "run.log") as server:
        argv = argv_for(run, server.base_url)
        proc, t0 = launch(argv, tmp / "killed.err")
        wait_for(lambda: len(logged(partial)) >= 3 * n // 10, proc)
        r0 = time.perf_counter()
        server.restart()
        restart_s = time.perf_counter() - r0
        wait_for(lambda: len(logged(partial)) >= 6 * n // 10, proc)
        proc.send_signal(signal.SIGKILL)
        killed = reap(proc, t0)
        kept, before = len(logged(partial)), settled(server)
        proc, t0 = launch(argv, tmp / "rerun.err")
        rerun = reap(proc, t0)
        if rerun["rc"]:
            raise SystemExit(f"the rerun failed ({rerun['rc']}): {(tmp / 'rerun.err').read_text()[-3000:]}")
        lines = server.lines()
    return {"killed": {**killed, "logged_at_kill": kept, "restart_s": restart_s}, "rerun": rerun,
            "requests": requests_in(lines), "rerun_ok": sum(s == 200 for _, s, _ in lines) - before,
            "identical": (run / "pairs.jsonl").read_bytes() == (tmp / "ref" / "pairs.jsonl").read_bytes()}


def report(n: int, ref: dict, cut: dict) -> None:
    print(f"{n} prompts, one request each (svamp, random_prompt negatives); {platform.machine()}, "
          f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f}, nice {os.nice(0)}")
    print(f"uninterrupted: {ref['wall_s']:.1f} s wall, {n / ref['wall_s']:.0f} responses/s over the wall time; "
          f"server answered {ref['answered']} requests ({ref['ok']} ok, {ref['429']} 429, {ref['503']} 503) in "
          f"{ref['span_s']:.1f} s = {ref['requests_per_s']:.0f} requests/s; mipo CPU {ref['cpu_s']:.1f} s, "
          f"peak RSS {ref['peak_rss_mb']:.0f} MB")
    k, r, q = cut["killed"], cut["rerun"], cut["requests"]
    print(f"interrupted: server restarted ({k['restart_s']:.2f} s down and up again), mipo SIGKILLed after "
          f"{k['wall_s']:.1f} s with {k['logged_at_kill']} responses logged; rerun {r['wall_s']:.1f} s requested "
          f"{cut['rerun_ok']} ({n - k['logged_at_kill']} missing); total wall {k['wall_s'] + r['wall_s']:.1f} s; "
          f"server answered {q['answered']} ({q['ok']} ok: {q['ok'] - n} more than {n}, lost with the kill); "
          f"peak RSS {k['peak_rss_mb']:.0f} / {r['peak_rss_mb']:.0f} MB")
    print(f"pairs.jsonl byte-identical to the uninterrupted run: {cut['identical']}")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--prompts", type=int, default=10_000)
    ap.add_argument("--model", help="a model directory with a tokenizer (default: the tests' tiny model)")
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="mipo-load-"))
    try:
        if args.model:
            model = Path(args.model)
        else:
            from tests.conftest import build_tiny_model

            model = build_tiny_model(tmp / "tiny")
        data = svamp_file(tmp / "svamp.jsonl", args.prompts)

        def argv_for(run_dir, base_url):
            return generate_argv(model, data, run_dir, base_url)

        ref = uninterrupted(argv_for, tmp)
        cut = interrupted(argv_for, tmp, args.prompts)
        report(args.prompts, ref, cut)
        from common import save

        print("results:", save("load", {"prompts": args.prompts, "uninterrupted": ref, "interrupted": cut,
                                        "loadavg": os.getloadavg(), "nice": os.nice(0)}))
        if not cut["identical"] or cut["rerun_ok"] != args.prompts - cut["killed"]["logged_at_kill"]:
            raise SystemExit("the interrupted run differs from the uninterrupted one")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
