"""The LLM judge: reply parsing on real judge-style strings, the local backend and the OpenAI-compatible backend.

The OpenAI path runs the official `openai` client against a small HTTP server that answers with the tiny model
(a real model, so its replies are mostly unparsable: that exercises the retry and the unparsed count).
"""
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from mipo.config import EvalArgs, TaskArgs
from .conftest import sample
from mipo.io import MipoError
from mipo.evaluation.judge import Judge, parse_score, parse_winner
from mipo.tasks import get_task

from .conftest import FIXTURES


@pytest.mark.parametrize("text,expected", [
    ("The response suggests a cheap chili, matching the budget focus.\nScore: 4", 4),
    ("Reason: it ignores the user's request for brevity.\n\n**Score:** 2", 2),
    ("score = 5/5", 5),
    ("It is tailored well (Score: 3). On reflection it is better. Score: 4", 4),  # the last one counts
    ("I would rate this 4 out of 5.", None),  # no "Score:" line: unparsed, not guessed
    ("Score: 7", None),
    ("Score: 10", None),
    ("Score: 3.5", None),
    ("", None),
])
def test_parse_score(text, expected):
    assert parse_score(text) == expected


@pytest.mark.parametrize("text,expected", [
    ("Response A reflects the vegan diet; B suggests steak.\nWinner: A", "A"),
    ("Both are equally generic. Winner: tie", "tie"),
    ("**Winner:** b", "B"),
    ("Response B is better.", None),
])
def test_parse_winner(text, expected):
    assert parse_winner(text) == expected


def _items():
    args = TaskArgs(name="multifaceted", data=str(FIXTURES / "multifaceted.jsonl"))
    return get_task("multifaceted", args).load(args, "train")


def test_local_judge_retries_unparsable_once_and_never_scores_them(tiny_model_dir):
    items = _items()
    judge = Judge(EvalArgs(judge="local", judge_model=str(tiny_model_dir), judge_max_new_tokens=6, batch_size=8))
    out = judge.pointwise(items, [it.reference for it in items])
    assert len(out) == len(items)
    unparsed = [o for o in out if o["value"] is None]
    # a random tiny model almost never writes "Score: N"; every unparsed reply was retried, then left unscored
    assert unparsed and all(o["retried"] for o in unparsed)
    retried = sum(o["retried"] for o in out)
    assert judge.calls == len(items) + retried
    for o in out:
        assert o["value"] == parse_score(o["raw"])
    pair = judge.pairwise(items[:2], [it.reference for it in items[:2]], ["Short answer."] * 2)
    assert all(len(p["orders"]) == 2 and len(p["raw"]) == 2 for p in pair)
    assert all(p["value"] is None or 0.0 <= p["value"] <= 1.0 for p in pair)


def test_judge_config_errors(monkeypatch):
    with pytest.raises(MipoError, match="evaluate.judge_model: required"):
        Judge(EvalArgs(judge="local"))
    with pytest.raises(MipoError, match="expected none, local or openai"):
        Judge(EvalArgs(judge="gpt", judge_model="x"))
    monkeypatch.delenv("MIPO_NO_SUCH_KEY", raising=False)
    with pytest.raises(MipoError, match="environment variable MIPO_NO_SUCH_KEY is not set"):
        Judge(EvalArgs(judge="openai", judge_model="gpt-4o", judge_api_key_env="MIPO_NO_SUCH_KEY"))


@pytest.fixture
def openai_server(tiny):
    """An OpenAI-compatible /v1/chat/completions endpoint answering with the tiny model."""
    model, tok = tiny
    seen, lock = [], threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            seen.append({"path": self.path, "auth": self.headers.get("Authorization"), "body": body})
            with lock:
                text = sample(model, tok, [body["messages"]], temperature=0.0, top_p=1.0,
                              max_new_tokens=body.get("max_tokens") or 8, batch_size=1, seed=0)[0]
            reply = json.dumps({"id": "chatcmpl-1", "object": "chat.completion", "created": 0, "model": body["model"],
                                "choices": [{"index": 0, "finish_reason": "stop",
                                             "message": {"role": "assistant", "content": text}}],
                                "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2}}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(reply)))
            self.end_headers()
            self.wfile.write(reply)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/v1", seen
    server.shutdown()


def test_openai_backend_sends_key_from_env_only(openai_server, monkeypatch):
    url, seen = openai_server
    monkeypatch.setenv("MIPO_TEST_JUDGE_KEY", "sk-test-not-a-real-key-42")
    items = _items()[:3]
    judge = Judge(EvalArgs(judge="openai", judge_model="tiny-judge", judge_base_url=url,
                           judge_api_key_env="MIPO_TEST_JUDGE_KEY", judge_max_new_tokens=6))
    out = judge.pointwise(items, [it.reference for it in items])
    assert len(out) == 3 and all(o["value"] == parse_score(o["raw"]) for o in out)
    assert seen and all(r["path"] == "/v1/chat/completions" for r in seen)
    assert all(r["auth"] == "Bearer sk-test-not-a-real-key-42" for r in seen)
    assert all(r["body"]["model"] == "tiny-judge" and r["body"]["max_tokens"] == 6 for r in seen)
    assert any(items[0].context in r["body"]["messages"][0]["content"] for r in seen)
    assert len(seen) == 3 + sum(o["retried"] for o in out)  # one retry per unparsable reply


def test_openai_judge_in_evaluate_never_writes_or_logs_the_key(openai_server, tiny_model_dir, tmp_path, monkeypatch,
                                                               capsys, caplog):
    from mipo.cli import main

    url, seen = openai_server
    key = "sk-test-secret-do-not-store-7731"
    monkeypatch.setenv("MIPO_TEST_JUDGE_KEY", key)
    run_dir = tmp_path / "run"
    assert main(["evaluate", "--model.name", str(tiny_model_dir), "--run-dir", str(run_dir), "--task.name",
                 "multifaceted", "--task.data", str(FIXTURES / "multifaceted.jsonl"), "--evaluate.base_only", "true",
                 "--evaluate.max_new_tokens", "6", "--evaluate.judge", "openai", "--evaluate.judge_model", "tiny-judge",
                 "--evaluate.judge_base_url", url, "--evaluate.judge_api_key_env", "MIPO_TEST_JUDGE_KEY",
                 "--evaluate.judge_max_new_tokens", "6"]) == 0
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["judge"]["backend"] == "openai" and metrics["judge"]["n_with_reference"] == 2
    assert seen and all(r["auth"] == f"Bearer {key}" for r in seen)
    for f in run_dir.rglob("*"):
        if f.is_file():
            assert key not in f.read_text(errors="replace"), f
    out = capsys.readouterr()
    assert key not in out.out + out.err + caplog.text
