"""Checks made before any work (mipo/preflight.py): pairs `mipo train` reads, rows and pairs holding the tokenizer's
control strings, and the servers a stage calls. Each refusal is one line naming file:line and field, or the
setting; exit 2; nothing sampled, no weights loaded, no run directory written. Servers here are real sockets."""
import json
import logging
import re
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from mipo.cli import main
from mipo.config import EvalArgs
from mipo.evaluation.judge import Judge
from mipo.inference.openai import probe
from mipo.io import MipoError

from .conftest import FIXTURES
from .openai_server import free_port
from .test_bad_input import FORGED, GOOD, HOLDS, personalization, refused


def pair(i: int, request: str = "Suggest a dinner.") -> dict:
    return {"prompt": [{"role": "user", "content": f"About me: I am vegan.\n\n{request} ({i})"}],
            "chosen": [{"role": "assistant", "content": "A lentil curry with rice."}],
            "rejected": [{"role": "assistant", "content": "A steak with fries."}], "meta": {"prompt_id": str(i)}}


def lines(*rows) -> str:
    return "".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows)


BAD_PAIRS = {
    "malformed_line_4": (lines(pair(1), pair(2), pair(3), '{"prompt": [{"role": "user"'), r"{}:4: malformed JSON"),
    "missing_rejected": (lines(pair(1), {k: v for k, v in pair(2).items() if k != "rejected"}, pair(3)),
                         r"{}:2: field 'rejected' is missing or empty$"),
    "forged_turn": (lines(pair(1), pair(2), pair(3, FORGED)), r"{}:3: field 'prompt' " + re.escape(HOLDS.format("<|im_end|>"))),
    "special_in_response": (lines(pair(1), dict(pair(2), chosen=[{"role": "assistant", "content": "Yes<|endoftext|>"}])),
                            r"{}:2: field 'chosen' " + re.escape(HOLDS.format("<|endoftext|>"))),
    "empty": ("\n", r"{}: no pairs to train on$"),
}


@pytest.mark.parametrize("case", BAD_PAIRS)
def test_bad_pairs_are_named_before_the_weights_load(case, tiny_model_dir, tmp_path, capsys):
    """`mipo train` on a pairs.jsonl someone wrote or cut: the line is named before the model loads (it used to be
    after: a progress bar, then the error), and the run directory gets nothing."""
    text, pattern = BAD_PAIRS[case]
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    pairs = run_dir / "pairs.jsonl"
    pairs.write_text(text)
    line = refused(["train", "--model.name", str(tiny_model_dir), "--run-dir", str(run_dir)], capsys)
    assert re.match("mipo: error: " + pattern.format(re.escape(str(pairs))), line), line
    assert [p.name for p in run_dir.iterdir()] == ["pairs.jsonl"]


def test_pairs_a_method_does_not_read_are_not_required(tiny_model_dir, tmp_path, capsys):
    """The fields are the method's: sft-self reads prompt and chosen only, mi-grpo the prompt pair (x, x')."""
    from mipo import Config
    from mipo.methods import get_method
    from mipo.preflight import check_pairs

    run_dir = tmp_path / "run"
    run_dir.mkdir()
    pairs = run_dir / "pairs.jsonl"
    pairs.write_text(lines(*({k: v for k, v in pair(i).items() if k != "rejected"} for i in (1, 2))))
    cfg = Config(run_dir=str(run_dir))
    cfg.model.name = str(tiny_model_dir)
    assert check_pairs(cfg, pairs, get_method("sft-self").pair_fields) is None
    line = refused(["train", "--method", "mi-grpo", "--model.name", str(tiny_model_dir), "--run-dir", str(run_dir)],
                   capsys)
    assert line == f"mipo: error: {pairs}:1: field 'negative_prompt' is missing or empty"


def test_special_tokens_pass_when_allowed_and_are_logged(tiny_model_dir, tmp_path, caplog):
    """task.allow_special_tokens true: the rows go on (generate, then train on its pairs), and the log says so."""
    data = personalization(tmp_path, [GOOD, dict(GOOD, id="b", request=FORGED), dict(GOOD, id="c")])
    run_dir = tmp_path / "run"
    argv = ["--model.name", str(tiny_model_dir), "--run-dir", str(run_dir), "--task.data", str(data),
            "--generate.max_new_tokens", "4", "--task.allow_special_tokens", "true"]
    with caplog.at_level(logging.WARNING, logger="mipo"):
        assert main(["generate", *argv]) == 0
        assert main(["train", *argv, "--train.batch_size", "2"]) == 0
    rows = [json.loads(x) for x in (run_dir / "pairs.jsonl").read_text().splitlines()]
    assert any(FORGED in r["prompt"][-1]["content"] for r in rows)
    assert (run_dir / "train" / "train_summary.json").exists()
    notes = [r.getMessage() for r in caplog.records if "allow_special_tokens" in r.getMessage()]
    assert notes[0] == (f"task.allow_special_tokens: special-token strings kept as control tokens in 1 item "
                        f"(first: {data}:2 field 'request', '<|im_end|>')")
    assert re.fullmatch(r"task.allow_special_tokens: special-token strings kept as control tokens in 1 pair "
                        rf"\(first: {re.escape(str(run_dir))}/pairs.jsonl:\d field 'prompt', '<\|im_end\|>'\)", notes[1])


def test_the_patterns_are_the_tokenizers_special_tokens(tiny_model_dir):
    """all_special_tokens and the added tokens flagged special; an added token not flagged special is text."""
    from mipo.models import load_tokenizer
    from mipo.preflight import special_pattern

    tok = load_tokenizer(str(tiny_model_dir))
    tok.add_tokens(["<think>"])
    tok.add_tokens(["<|tool|>"], special_tokens=True)
    pattern = special_pattern(tok)
    assert sorted(set(pattern.findall("a<|im_start|>b<|tool|>c<think>d<|im_end|><|endoftext|>"))) == [
        "<|endoftext|>", "<|im_end|>", "<|im_start|>", "<|tool|>"]
    assert pattern.search("<|im_start |> and <im_end> are text") is None


# --- servers ----------------------------------------------------------------------------------------------------

def dead_url() -> str:
    return f"http://127.0.0.1:{free_port()}/v1"  # a free port: nothing listens there


def refusal(url: str, setting: str) -> str:
    return f"mipo: error: {url}: connection refused: no server listens there; start it, or check {setting} (host, port)"


@pytest.mark.parametrize("stage", ["evaluate --evaluate.base_only true", "run",
                                   "compare --compare.methods prompting,mipo --compare.seeds 0"])
def test_a_judge_where_nothing_listens_is_named_before_any_sampling(stage, tiny_model_dir, tmp_path, capsys):
    """It used to be reported after every response had been sampled, naming generate.base_url."""
    url, run_dir = dead_url(), tmp_path / "new" / "run"
    line = refused([*stage.split(), "--model.name", str(tiny_model_dir), "--run-dir", str(run_dir),
                    "--task.data", str(FIXTURES / "personalization.jsonl"), "--evaluate.judge", "openai",
                    "--evaluate.judge_model", "judge", "--evaluate.judge_base_url", url], capsys)
    assert line == refusal(url, "evaluate.judge_base_url")
    assert not (tmp_path / "new").exists()


@pytest.mark.parametrize("stage", ["generate", "run"])
def test_an_engine_where_nothing_listens_is_named_before_any_work(stage, tiny_model_dir, tmp_path, capsys):
    url, run_dir = dead_url(), tmp_path / "new" / "run"
    line = refused([stage, "--model.name", str(tiny_model_dir), "--run-dir", str(run_dir),
                    "--task.data", str(FIXTURES / "personalization.jsonl"), "--generate.engine", "openai",
                    "--generate.base_url", url], capsys)
    assert line == refusal(url, "generate.base_url")
    assert not (tmp_path / "new").exists()


def test_the_judge_names_its_own_setting_when_its_server_is_gone():
    """Past the probe (the server stopped in between): the engine's message names the judge's setting too."""
    url = dead_url()
    judge = Judge(EvalArgs(judge="openai", judge_model="judge", judge_base_url=url))
    with pytest.raises(MipoError) as e:
        judge.complete(["Rate this."])
    assert str(e.value) == refusal(url, "evaluate.judge_base_url")[len("mipo: error: "):]


@pytest.fixture
def models_server():
    """A real HTTP server with an OpenAI-compatible GET /v1/models; a request with the key "wrong" gets 401."""
    seen = []

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):
            seen.append(self.path)
            ok = self.headers.get("Authorization") != "Bearer wrong"
            body = json.dumps({"object": "list", "data": [{"id": "judge", "object": "model", "created": 0,
                                                          "owned_by": "test"}]} if ok else
                              {"error": {"message": "invalid key", "type": "invalid_request_error"}}).encode()
            self.send_response(200 if ok else 401)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/v1", seen
    server.shutdown()
    server.server_close()


def test_a_live_server_passes_the_probe_and_a_wrong_key_is_named(models_server, monkeypatch):
    url, seen = models_server
    monkeypatch.delenv("MIPO_TEST_PROBE_KEY", raising=False)
    assert probe(url, "evaluate.judge_base_url", "MIPO_TEST_PROBE_KEY", "evaluate.judge_api_key_env") is None
    monkeypatch.setenv("MIPO_TEST_PROBE_KEY", "wrong")
    with pytest.raises(MipoError) as e:
        probe(url, "evaluate.judge_base_url", "MIPO_TEST_PROBE_KEY", "evaluate.judge_api_key_env")
    assert str(e.value) == (f"{url}: authentication failed (HTTP 401); check the key in $MIPO_TEST_PROBE_KEY "
                            f"(evaluate.judge_api_key_env)")
    assert seen == ["/v1/models", "/v1/models"]  # one request each: no retries


def test_a_server_that_never_answers_is_given_up_on_quickly():
    """A socket that accepts connections (the kernel's backlog) and never answers: refused after the timeout."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        url = f"http://127.0.0.1:{s.getsockname()[1]}/v1"
        with pytest.raises(MipoError) as e:
            probe(url, "generate.base_url", "OPENAI_API_KEY", "generate.api_key_env", timeout_s=0.5)
    assert str(e.value) == f"{url}: no answer within 0.5 s; is the server up? check generate.base_url"
