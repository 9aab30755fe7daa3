"""Generation engines: the openai engine against a REAL local server (`transformers serve`, started here on
127.0.0.1 and a free port), including a server killed mid-run; retries on 429/5xx; the API key never written;
the vllm engine's mapping and wiring without vllm installed."""
import importlib
import json
import os
import subprocess
import sys
import time
import types
from pathlib import Path

import pytest

from mipo.inference import Sampling, make_engine
from mipo.inference import openai as engines
from mipo.cli import main
from mipo.config import Config
from mipo.inference.openai import OpenAIEngine
from mipo.inference.vllm import VLLMEngine, vllm_sampling_kwargs
from mipo.seeds import derive
from mipo.io import MipoError

from .conftest import FIXTURES, wait_until
from .openai_server import LocalServer, servable_copy
from .test_resume import prompt_file

PROMPTS = [
    [{"role": "user", "content": "About me: I am vegan.\n\nSuggest a quick dinner."}],
    [{"role": "user", "content": "Explain inflation."}],
    [{"role": "system", "content": "Solve step by step."}, {"role": "user", "content": "What is 3 + 4?"}],
    [{"role": "user", "content": "Plan my week."}],
]
S = Sampling(temperature=1.0, top_p=0.9, max_new_tokens=12)
SECRET = "sk-mipo-test-9f3c2a7e41d04b6b8e0a"


@pytest.fixture(scope="session")
def served_dir(tiny_model_dir, tmp_path_factory):
    return servable_copy(tiny_model_dir, tmp_path_factory.mktemp("served") / "tiny")


@pytest.fixture(scope="session")
def server(served_dir, tmp_path_factory):
    with LocalServer(served_dir, tmp_path_factory.mktemp("server-log") / "serve.log") as s:
        yield s


# --- the real server ------------------------------------------------------------------------------------------

def test_samples_from_a_real_server_and_resumes_from_its_log(server, served_dir, tmp_path):
    eng = OpenAIEngine(server.base_url, max_concurrency=1)
    assert eng.api_model == str(served_dir)  # the server's only model, found through /v1/models
    a = eng.sample(PROMPTS, S, seed=1, batch_size=2, resume_dir=tmp_path)
    assert len(a) == len(PROMPTS) and all(isinstance(x, str) for x in a)
    assert eng.stats["requests"] == len(PROMPTS) and eng.stats["completion_tokens"] > 0
    # Per-request seeds: the same seed gives the same responses (one request at a time), another seed others.
    assert OpenAIEngine(server.base_url, max_concurrency=1).sample(PROMPTS, S, seed=1, batch_size=2) == a
    assert OpenAIEngine(server.base_url, max_concurrency=1).sample(PROMPTS, S, seed=2, batch_size=2) != a
    # Everything finished is in the log: the same call again sends no request.
    again = OpenAIEngine(server.base_url, max_concurrency=4)
    assert again.sample(PROMPTS, S, seed=1, batch_size=2, resume_dir=tmp_path) == a
    assert again.stats["requests"] == 0
    # Concurrent requests return every response in input order.
    many = PROMPTS * 3
    out = OpenAIEngine(server.base_url, max_concurrency=4).sample(many, S, seed=5, batch_size=2)
    assert len(out) == len(many)


def test_token_logprobs_where_offered(server):
    out = OpenAIEngine(server.base_url).sample_with_logprobs(PROMPTS[:2], S, seed=0, batch_size=2)
    assert [type(t) for t, _ in out] == [str, str]
    for _, lps in out:  # transformers serve does not offer them (None); servers that do give one float per token
        assert lps is None or all(isinstance(x, float) and x <= 0 for x in lps)


def test_the_servers_probe_passes_a_live_server(server):
    """What a stage asks a server before any work (mipo/preflight.py): one GET /v1/models, answered 200."""
    def served():
        return server.log_path.read_text(errors="replace").count('"GET /v1/models HTTP/1.1" 200')

    before = served()
    engines.probe(server.base_url, "generate.base_url", "OPENAI_API_KEY", "generate.api_key_env")
    t0 = time.time()
    while served() == before and time.time() - t0 < 10:  # uvicorn logs the request just after answering it
        time.sleep(0.1)
    assert served() == before + 1


def test_generate_stage_via_server_and_the_key_is_never_written(server, tiny_model_dir, tmp_path, monkeypatch,
                                                                  capsys, caplog):
    monkeypatch.setenv("MIPO_TEST_API_KEY", SECRET)
    run_dir = tmp_path / "run"
    caplog.set_level("DEBUG")
    argv = ["generate", "--model.name", str(tiny_model_dir), "--run-dir", str(run_dir),
            "--task.data", str(FIXTURES / "personalization.jsonl"), "--generate.max_new_tokens", "8",
            "--generate.engine", "openai", "--generate.base_url", server.base_url,
            "--generate.api_key_env", "MIPO_TEST_API_KEY", "--generate.max_concurrency", "4"]
    assert main(argv) == 0
    pairs = [json.loads(line) for line in (run_dir / "pairs.jsonl").read_text().splitlines()]
    assert len(pairs) == 6 and len({p["meta"]["prompt_id"] for p in pairs}) == 6
    cfg = (run_dir / "config.yaml").read_text()
    assert "api_key_env: MIPO_TEST_API_KEY" in cfg and "engine: openai" in cfg
    files = [p for p in run_dir.rglob("*") if p.is_file()]
    assert files and not [p for p in files if SECRET.encode() in p.read_bytes()]
    out, err = capsys.readouterr()
    assert SECRET not in out + err + caplog.text
    assert OpenAIEngine(server.base_url, api_key_env="MIPO_TEST_API_KEY").client.api_key == SECRET  # it is sent

    # The server's address and concurrency are not part of the config fingerprint: the stage is up to date.
    assert main([*argv, "--generate.max_concurrency", "2", "--generate.base_url", "http://127.0.0.1:1/v1"]) == 0


def test_unreachable_server_is_one_clear_error(tiny_model_dir, tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(engines, "BACKOFF_S", 0.01)
    from .openai_server import free_port

    argv = ["generate", "--model.name", str(tiny_model_dir), "--run-dir", str(tmp_path / "run"),
            "--task.data", str(FIXTURES / "personalization.jsonl"), "--generate.engine", "openai",
            "--generate.base_url", f"http://127.0.0.1:{free_port()}/v1", "--generate.max_retries", "2"]
    t0 = time.perf_counter()
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err.startswith("mipo: error: http://127.0.0.1:") and "connection refused: no server listens there" in err
    assert time.perf_counter() - t0 < 30  # no retries: nothing listens there (was 151 s of backoff)
    assert main([*argv[:-4], "--generate.engine", "openai"]) == 2  # no base_url
    assert "needs generate.base_url" in capsys.readouterr().err


# --- kill the server mid-run ------------------------------------------------------------------------------------

def _mipo(*argv):
    return subprocess.Popen([sys.executable, "-m", "mipo", *argv], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            text=True, env={**os.environ, "PYTHONUNBUFFERED": "1"})


def _logged(partial: Path) -> dict[str, dict[int, str]]:
    """The responses in the openai engine's logs: {log file: {prompt index: response}}."""
    out = {}
    for f in partial.glob("*.jsonl"):
        rows = []
        for line in f.read_text().splitlines():
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError:  # a line being written
                break
        out[f.name] = {i: text for r in rows for i, text in r["values"]}
    return out


def _args(model_dir, data, run_dir, base_url, *extra):
    return ["--model.name", str(model_dir), "--task.data", str(data), "--run-dir", str(run_dir),
            "--generate.engine", "openai", "--generate.base_url", base_url, "--generate.max_new_tokens", "24",
            "--generate.max_concurrency", "1", "--generate.batch_size", "2", *extra]


def _check_pairs(run_dir, n, logged_before):
    pairs = [json.loads(line) for line in (run_dir / "pairs.jsonl").read_text().splitlines()]
    assert len(pairs) == n and len({p["meta"]["prompt_id"] for p in pairs}) == n  # none lost, none duplicated
    for responses in logged_before.values():  # responses logged before the crash are kept, not re-requested
        kept = [all(pairs[i][role][0]["content"] == t for i, t in responses.items()) for role in ("chosen", "rejected")]
        assert any(kept)
    return pairs


@pytest.mark.slow
def test_server_killed_mid_run_then_rerun_resumes(tiny_model_dir, served_dir, tmp_path):
    """The server dies; mipo gives up after its retries with one error line; a new server (on another port) and
    the same command finish the run: every pair once, the logged responses kept, only the rest requested, and
    the result equals an uninterrupted run (one request at a time: transformers serve seeds each request)."""
    data = prompt_file(tmp_path / "prompts.jsonl", n_train=16, n_test=4)
    n_requests = 2 * 16  # drop_context: one chosen and one rejected generation per prompt
    with LocalServer(served_dir, tmp_path / "ref.log") as ref_server:
        p = _mipo("generate", *_args(tiny_model_dir, data, tmp_path / "ref", ref_server.base_url))
        assert p.wait(timeout=600) == 0, p.stderr.read()[-3000:]

    run, partial = tmp_path / "run", tmp_path / "run" / "partial" / "generate"
    first = LocalServer(served_dir, tmp_path / "first.log").start()
    proc = _mipo("generate", *_args(tiny_model_dir, data, run, first.base_url, "--generate.max_retries", "2"))
    try:
        wait_until(lambda: sum(map(len, _logged(partial).values())) >= 6, proc)
    finally:
        first.kill()
    assert proc.wait(timeout=120) == 2
    err = proc.stderr.read().strip().splitlines()[-1]
    assert "failed after 3 attempts" in err and "rerun the same command to resume" in err
    before = _logged(partial)
    n_before = sum(map(len, before.values()))
    assert 6 <= n_before < n_requests and not (run / "pairs.jsonl").exists()

    with LocalServer(served_dir, tmp_path / "second.log") as second:
        assert second.port != first.port
        p = _mipo("generate", *_args(tiny_model_dir, data, run, second.base_url))
        assert p.wait(timeout=600) == 0, p.stderr.read()[-3000:]
        assert second.completions_served() == n_requests - n_before
    _check_pairs(run, 16, before)
    assert (run / "pairs.jsonl").read_bytes() == (tmp_path / "ref" / "pairs.jsonl").read_bytes()
    assert not partial.exists()


@pytest.mark.slow
def test_server_restarted_while_mipo_retries(tiny_model_dir, served_dir, tmp_path):
    """The server dies and comes back on the same port within the retry budget: the same process finishes."""
    data = prompt_file(tmp_path / "prompts.jsonl", n_train=12, n_test=4)
    run, partial = tmp_path / "run", tmp_path / "run" / "partial" / "generate"
    srv = LocalServer(served_dir, tmp_path / "serve.log").start()
    proc = _mipo("generate", *_args(tiny_model_dir, data, run, srv.base_url, "--generate.max_concurrency", "2"))
    try:
        wait_until(lambda: sum(map(len, _logged(partial).values())) >= 4, proc)
        srv.kill()
        before = _logged(partial)
        time.sleep(1.0)
        srv.start()
        _, err = proc.communicate(timeout=600)
        assert proc.returncode == 0, err[-3000:]
    finally:
        srv.stop()
    assert "retry 1/8" in err  # it did ride out the restart
    _check_pairs(run, 12, before)


# --- retries and errors, on a scripted transport ---------------------------------------------------------------

REFUSED = "refused"


def _scripted(monkeypatch, replies, **kw):
    """An engine whose HTTP transport answers with `replies` (status, body, headers) in turn."""
    import openai

    httpx = importlib.import_module("httpx2") if importlib.util.find_spec("httpx2") else importlib.import_module("httpx")
    monkeypatch.setattr(engines, "BACKOFF_S", 0.01)
    monkeypatch.setenv("MIPO_TEST_API_KEY", SECRET)
    replies, seen = list(replies), []

    def handler(request):
        seen.append(request)
        reply = replies.pop(0)
        if reply == REFUSED:
            raise httpx.ConnectError("[Errno 111] Connection refused", request=request)
        status, body, headers = reply
        return httpx.Response(status, json=body, headers=headers)

    eng = OpenAIEngine("http://server.invalid/v1", api_model="m", api_key_env="MIPO_TEST_API_KEY", max_retries=3,
                       **kw)
    eng.client = openai.OpenAI(base_url="http://server.invalid/v1", api_key=SECRET, max_retries=0,
                               http_client=httpx.Client(transport=httpx.MockTransport(handler)))
    return eng, seen


OK = (200, {"id": "x", "object": "chat.completion", "created": 0, "model": "m", "choices": [
    {"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": " hello "}}],
    "usage": {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5}}, {})


def test_retries_on_429_and_5xx_then_succeeds(monkeypatch):
    eng, seen = _scripted(monkeypatch, [(503, {"error": "busy"}, {}), (429, {"error": "slow down"}, {"retry-after": "0"}),
                                        (502, {}, {}), OK])
    assert eng.sample(PROMPTS[:1], S, seed=3, batch_size=2) == ["hello"]
    assert eng.stats["retries"] == 3 and len(seen) == 4
    body = json.loads(seen[-1].content)
    assert body["seed"] == derive(3, "request", 0) and body["temperature"] == 1.0 and body["top_p"] == 0.9
    assert body["max_tokens"] == 12 and seen[-1].headers["authorization"] == f"Bearer {SECRET}"


def test_refused_fails_at_once_until_the_server_has_answered(monkeypatch):
    """Refused before any answer: nobody listens, no retry. Refused after one: a restart, ridden out."""
    eng, seen = _scripted(monkeypatch, [REFUSED, OK])
    with pytest.raises(MipoError, match=r"connection refused: no server listens there"):
        eng.sample(PROMPTS[:1], S, seed=0, batch_size=2)
    assert len(seen) == 1 and eng.stats["retries"] == 0
    eng, seen = _scripted(monkeypatch, [OK, REFUSED, REFUSED, OK])
    assert eng.sample(PROMPTS[:2], S, seed=0, batch_size=1) == ["hello", "hello"]
    assert eng.stats["retries"] == 2


def test_retrying_stops_at_the_total_retry_time(monkeypatch):
    """429/5xx keep backing off, but one request retries for at most max_retry_s, then the run stops."""
    # attempts at 0, 1 and 2 s; a fourth would end past 2.5 s. Seconds, not tenths: a loaded machine's own
    # overhead per request must not cost an attempt
    eng, seen = _scripted(monkeypatch, [(503, {}, {"retry-after": "1"})] * 4, max_retry_s=2.5)
    t0 = time.perf_counter()
    with pytest.raises(MipoError, match=r"failed after 3 attempts over [23] s \(HTTP 503; generate.max_retries 3, "
                                        r"generate.max_retry_s 2.5\); finished responses are saved"):
        eng.sample(PROMPTS[:1], S, seed=0, batch_size=2)
    assert len(seen) == 3 and time.perf_counter() - t0 < 5


def test_client_errors_are_not_retried_and_the_key_is_scrubbed(monkeypatch):
    eng, seen = _scripted(monkeypatch, [(400, {"error": {"message": f"bad request from key {SECRET}"}}, {})])
    with pytest.raises(MipoError, match=r"HTTP 400") as e:
        eng.sample(PROMPTS[:1], S, seed=0, batch_size=2)
    assert SECRET not in str(e.value) and "***" in str(e.value) and len(seen) == 1
    eng, _ = _scripted(monkeypatch, [(401, {"error": {"message": f"invalid key {SECRET}"}}, {})])
    with pytest.raises(MipoError, match=r"authentication failed \(HTTP 401\); check the key in \$MIPO_TEST_API_KEY") as e:
        eng.sample(PROMPTS[:1], S, seed=0, batch_size=2)
    assert SECRET not in str(e.value)


def test_greedy_sends_temperature_zero_and_no_top_p(monkeypatch):
    eng, seen = _scripted(monkeypatch, [OK])
    eng.sample(PROMPTS[:1], Sampling(0.0, 0.9, 12), seed=0, batch_size=2)
    body = json.loads(seen[0].content)
    assert body["temperature"] == 0.0 and "top_p" not in body


def test_fingerprint_ignores_how_outputs_are_obtained_not_what_they_are():
    base = Config()
    fp = base.fingerprint("task", "generate")
    c = Config()
    c.generate.base_url, c.generate.max_concurrency, c.generate.api_model = "http://x:1/v1", 99, "ignored-for-hf"
    assert c.fingerprint("task", "generate") == fp  # engine hf: the engine fields are left out entirely
    c.generate.engine = "openai"
    fp_openai = c.fingerprint("task", "generate")
    assert fp_openai != fp
    c.generate.base_url, c.generate.max_concurrency, c.generate.timeout_s, c.generate.max_retries = "http://y/v1", 1, 5, 0
    assert c.fingerprint("task", "generate") == fp_openai  # another server address, concurrency, retries: same run
    c.generate.api_model = "other-model"
    assert c.fingerprint("task", "generate") != fp_openai


def test_request_seed_depends_on_run_seed_and_index():
    seeds = {derive(s, "request", i) for s in (0, 1, 1000) for i in range(100)}
    assert len(seeds) == 300 and all(0 <= x < 2**31 for x in seeds)


# --- vllm (not installed here) ----------------------------------------------------------------------------------

def test_vllm_sampling_params_mapping():
    assert vllm_sampling_kwargs(Sampling(0.7, 0.9, 64), seed=5) == {
        "n": 1, "temperature": 0.7, "top_p": 0.9, "max_tokens": 64, "seed": 5, "skip_special_tokens": True}
    greedy = vllm_sampling_kwargs(Sampling(0.0, 0.9, 8), seed=1)
    assert greedy["temperature"] == 0.0 and greedy["top_p"] == 1.0


def test_vllm_missing_is_a_clear_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "vllm", None)  # import vllm raises ImportError
    with pytest.raises(MipoError, match=r"generate.engine=vllm needs vLLM .*pip install 'mipo\[vllm\]'"):
        VLLMEngine("some/model")


def test_vllm_engine_wiring_with_a_stand_in_module(monkeypatch, tmp_path):
    calls = {}

    class SamplingParams:
        def __init__(self, **kw):
            self.kw = kw

    class LLM:
        def __init__(self, **kw):
            calls["init"] = kw
            calls["chat"] = []

        def chat(self, messages, params, use_tqdm=False, lora_request=None):
            calls["chat"].append((messages, [p.kw for p in params]))
            out = types.SimpleNamespace
            return [out(outputs=[out(text=f" reply to {m[-1]['content'][:10]} ")]) for m in messages]

    monkeypatch.setitem(sys.modules, "vllm", types.SimpleNamespace(LLM=LLM, SamplingParams=SamplingParams))
    cfg = Config(seed=4)
    cfg.generate.engine, cfg.generate.tensor_parallel_size, cfg.model.dtype = "vllm", 8, "bfloat16"
    eng = make_engine(cfg, "/models/qwen-7b")
    assert calls["init"] == {"model": "/models/qwen-7b", "tensor_parallel_size": 8, "dtype": "bfloat16", "seed": 4,
                             "gpu_memory_utilization": 0.9, "trust_remote_code": False}
    out = eng.sample(PROMPTS, S, seed=7, batch_size=3, resume_dir=tmp_path)
    assert out == [f"reply to {p[-1]['content'][:10]}".strip() for p in PROMPTS]
    assert [len(m) for m, _ in calls["chat"]] == [3, 1]
    assert [kw["seed"] for _, ps in calls["chat"] for kw in ps] == [derive(7, "request", i) for i in range(4)]
    calls["chat"].clear()
    assert eng.sample(PROMPTS, S, seed=7, batch_size=3, resume_dir=tmp_path) == out
    assert calls["chat"] == []  # resumed from the batch log


def test_unknown_engine_is_refused():
    cfg = Config()
    cfg.generate.engine = "tgi"
    with pytest.raises(MipoError, match=r"unknown generate.engine 'tgi' \(choose from hf, openai, vllm\)"):
        make_engine(cfg)
