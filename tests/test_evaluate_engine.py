"""evaluate.engine: the base and trained models' responses sampled by another engine, every score in process.

openai against REAL local servers (`transformers serve`, tests/openai_server.py): one pinned to the base model, one
to the merged trained model (train.merge), greedy: the responses and every score equal the in-process engine's. The
trained model asked of the base's server fails in one line; the rerun, pointed at its server, resumes per model (the
base's logged responses are not requested again). Bad settings are refused before any work. vLLM needs CUDA: its
wiring only, on a stand-in module, as tests/test_engines.py does."""
import json
import re
import shutil
import sys
import types

import pytest

from mipo.cli import main
from mipo.config import Config
from mipo.evaluation import Candidate
from mipo.evaluation.sampler import Samplers
from mipo.inference import Sampling
from mipo.io import read_jsonl
from mipo.tasks import get_task

from .openai_server import LocalServer, free_port
from .test_bad_input import refused
from .test_resume import prompt_file

N_TEST = 4


def common(model_dir, data, run_dir):
    return ["--model.name", str(model_dir), "--task.data", str(data), "--run-dir", str(run_dir),
            "--generate.max_new_tokens", "8", "--evaluate.max_new_tokens", "12", "--evaluate.mi_negatives", "2",
            "--train.batch_size", "2", "--train.learning_rate", "1e-2", "--train.merge", "true"]


@pytest.fixture(scope="module")
def trained(sharp_model_dir, tmp_path_factory):
    """A trained run (LoRA adapter and its merged model) evaluated in process, and a copy evaluated by nothing yet."""
    root = tmp_path_factory.mktemp("engine")
    data = prompt_file(root / "prompts.jsonl", n_train=8, n_test=N_TEST)
    run = root / "hf"
    assert main(["generate", *common(sharp_model_dir, data, run)]) == 0
    assert main(["train", *common(sharp_model_dir, data, run)]) == 0
    shutil.copytree(run, root / "openai")
    assert main(["evaluate", *common(sharp_model_dir, data, run)]) == 0
    return {"data": data, "hf": run, "openai": root / "openai", "merged": root / "openai" / "train" / "merged"}


def test_openai_engine_samples_what_the_in_process_one_does_and_resumes_per_model(trained, sharp_model_dir, tmp_path,
                                                                                  capsys):
    run, merged = trained["openai"], trained["merged"]
    with LocalServer(sharp_model_dir, tmp_path / "base.log") as base_server:
        argv = ["evaluate", *common(sharp_model_dir, trained["data"], run), "--evaluate.engine", "openai",
                "--evaluate.base_url", base_server.base_url, "--evaluate.base_model_name", str(sharp_model_dir),
                "--evaluate.trained_model_name", str(merged), "--generate.max_concurrency", "2"]
        # no trained_base_url: the trained model is asked of the base's server, which serves only the base model
        assert main(argv) == 2
        err = capsys.readouterr().err.strip().splitlines()[-1]
        assert err.startswith(f"mipo: error: {base_server.base_url}: chat completion failed: HTTP 400")
        assert base_server.completions_served() == N_TEST and not (run / "metrics.json").exists()
        with LocalServer(merged, tmp_path / "trained.log") as trained_server:
            assert main([*argv, "--evaluate.trained_base_url", trained_server.base_url]) == 0
            assert trained_server.completions_served() == N_TEST
        assert base_server.completions_served() == N_TEST  # the base's responses came from the resume log

    rows, hf_rows = read_jsonl(run / "eval" / "responses.jsonl"), read_jsonl(trained["hf"] / "eval" / "responses.jsonl")
    assert len(rows) == N_TEST and any(r["base"] != r["trained"] for r in rows)  # two names, two models
    assert rows == hf_rows  # the same greedy responses, so the same per-item scores under the base model
    metrics, hf = (json.loads((d / "metrics.json").read_text()) for d in (run, trained["hf"]))
    assert metrics["models"] == hf["models"] and metrics["paired"] == hf["paired"]
    assert metrics["sampling"] == {"engine": "openai", "in_process": [],
                                   "served": {"base": str(sharp_model_dir), "trained": str(merged)}}
    assert hf["sampling"] == {"engine": "hf", "in_process": ["base", "trained"]}
    assert main(["report", *common(sharp_model_dir, trained["data"], run)]) == 0
    report = (run / "report.md").read_text()
    assert (f"Responses sampled by evaluate.engine openai (base: `{sharp_model_dir}`, trained: `{merged}`). Scores "
            f"that need log-probs (cond. MI, fluency, InfoNCE, log-likelihood accuracy) ran in process") in report
    assert main(["report", *common(sharp_model_dir, trained["data"], trained["hf"])]) == 0
    assert "Responses sampled in process (evaluate.engine hf)" in (trained["hf"] / "report.md").read_text()


OPENAI = ["--evaluate.engine", "openai"]
DEAD = "http://127.0.0.1:{port}/v1"
BAD = {
    "unknown engine": ("evaluate", ["--evaluate.engine", "tgi"],
                       r"evaluate.engine: must be one of hf, openai, vllm, got 'tgi'"),
    "no server": ("evaluate", OPENAI, r"evaluate.engine=openai needs evaluate.base_url \(or generate.base_url\)"),
    "no base name": ("evaluate", [*OPENAI, "--evaluate.base_url", DEAD],
                     r"evaluate.engine=openai needs evaluate.base_model_name \(or generate.api_model\)"),
    "no trained name": ("evaluate", [*OPENAI, "--evaluate.base_url", DEAD, "--evaluate.base_model_name", "b"],
                        r"evaluate.engine=openai needs evaluate.trained_model_name: the trained model's name"),
    "no trained name, before generating": (
        "run", [*OPENAI, "--evaluate.base_url", DEAD, "--evaluate.base_model_name", "b"],
        r"evaluate.engine=openai needs evaluate.trained_model_name"),
    "one name for several trained models": (
        "compare", [*OPENAI, "--evaluate.base_url", DEAD, "--evaluate.base_model_name", "b",
                    "--evaluate.trained_model_name", "t", "--compare.methods", "prompting,mipo,sft-self",
                    "--compare.seeds", "0"],
        r"evaluate.trained_model_name: 2 trained models are evaluated .* put \{name\} in it"),
    "base server down, generate's settings": (
        "evaluate", [*OPENAI, "--generate.base_url", DEAD, "--generate.api_model", "b", "--evaluate.base_only", "true"],
        r"http://127.0.0.1:\d+/v1: connection refused: no server listens there; start it, or check generate.base_url"),
}


@pytest.mark.parametrize("case", BAD, ids=list(BAD))
def test_bad_engine_settings_are_refused_before_any_work(case, tiny_model_dir, tmp_path, capsys):
    command, extra, pattern = BAD[case]
    run_dir = tmp_path / "run"
    extra = [x.format(port=free_port()) if x == DEAD else x for x in extra]
    line = refused([command, "--model.name", str(tiny_model_dir), "--run-dir", str(run_dir), *extra], capsys)
    assert re.match(rf"mipo: error: {pattern}", line), line
    assert not run_dir.exists() or not any(p.is_file() for p in run_dir.rglob("*"))  # not even the pairs


def test_vllm_missing_is_refused_before_any_work(tiny_model_dir, tmp_path, capsys):
    import importlib.util

    if importlib.util.find_spec("vllm") is not None:
        pytest.skip("vLLM is installed here")
    line = refused(["evaluate", "--model.name", str(tiny_model_dir), "--run-dir", str(tmp_path / "run"),
                    "--evaluate.engine", "vllm", "--evaluate.base_only", "true"], capsys)
    assert line.startswith("mipo: error: evaluate.engine=vllm needs vLLM (a CUDA machine): pip install 'mipo[vllm]'")


def test_vllm_answers_the_trained_adapter_through_a_lora_request_on_the_base_weights(trained, sharp_model_dir,
                                                                                     monkeypatch, tmp_path):
    """vLLM is not installable here: a stand-in module checks what mipo asks of it (one LLM with LoRA enabled at the
    adapter's rank, the adapter as a LoRARequest for the trained model only) and that each model's answers are
    logged apart, so a rerun resumes both."""
    calls = {"init": [], "chat": []}

    class LoRARequest:
        def __init__(self, name, lora_id, path):
            self.name, self.lora_id, self.path = name, lora_id, path

    class LLM:
        def __init__(self, **kw):
            calls["init"].append(kw)

        def chat(self, messages, params, use_tqdm=False, lora_request=None):
            calls["chat"].append(lora_request)
            who = lora_request.path if lora_request else "base"
            return [types.SimpleNamespace(outputs=[types.SimpleNamespace(text=f" {who} {i} ")])
                    for i in range(len(messages))]

    vllm = types.SimpleNamespace(LLM=LLM, SamplingParams=lambda **kw: kw)
    monkeypatch.setitem(sys.modules, "vllm", vllm)
    monkeypatch.setitem(sys.modules, "vllm.lora", types.SimpleNamespace())
    monkeypatch.setitem(sys.modules, "vllm.lora.request", types.SimpleNamespace(LoRARequest=LoRARequest))
    cfg = Config()
    cfg.model.name, cfg.evaluate.engine = str(sharp_model_dir), "vllm"
    train_dir = trained["openai"] / "train"
    candidates = [Candidate("base", None, 0), Candidate("trained", train_dir, 0)]
    prompts = [[{"role": "user", "content": f"q{i}"}] for i in range(3)]

    def answers():
        samplers = Samplers(cfg, get_task("personalization"), candidates)
        return [samplers.of(c, None).sample(prompts, Sampling(), seed=0, batch_size=2, resume_dir=tmp_path)
                for c in candidates]

    base, trained_answers = answers()
    assert base == [f"base {i}" for i in (0, 1, 0)]  # stand-in: numbered within each batch of 2
    assert trained_answers == [f"{train_dir / 'adapter'} {i}" for i in (0, 1, 0)]
    assert len(calls["init"]) == 1 and calls["init"][0]["enable_lora"] and calls["init"][0]["max_lora_rank"] == 16
    assert calls["init"][0]["model"] == str(sharp_model_dir)
    assert [r.path if r else None for r in calls["chat"]] == [None, None] + [str(train_dir / "adapter")] * 2
    calls["chat"].clear()
    assert answers() == [base, trained_answers] and calls["chat"] == []  # both read back from their own logs


def test_context_aware_decoding_stays_in_process_said_once(tiny, caplog):
    """pmi-decode's answers need the logits of every step, which no server returns: they are decoded by the
    in-process engine, with one warning, and metrics.json says so."""
    from mipo.evaluation.sampler import summary
    from mipo.inference.hf import HFEngine

    cfg = Config()
    cfg.evaluate.engine, cfg.evaluate.base_url, cfg.evaluate.base_model_name = "openai", "http://127.0.0.1:1/v1", "b"
    guided = [Candidate("pmi-decode/seed0", None, 0, alpha=0.5), Candidate("pmi-decode/seed1", None, 1, alpha=0.5)]
    samplers, local = Samplers(cfg, get_task("personalization"), guided), HFEngine(*tiny)
    caplog.set_level("WARNING", logger="mipo")
    assert all(samplers.in_process(c) and samplers.of(c, local) is local for c in guided)
    assert [r.message for r in caplog.records] == [
        "evaluate.engine=openai: pmi-decode/seed0's answers are decoded in process (context-aware decoding needs the "
        "logits of every step)"]
    assert summary(cfg, guided) == {"engine": "openai", "in_process": ["pmi-decode/seed0", "pmi-decode/seed1"],
                                    "served": {}}
