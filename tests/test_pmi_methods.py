"""pmi-decode (context-aware decoding of the base model, nothing trained) and pmi-distill (SFT on its pmi-decoded
answers) through the CLI on the tiny model: the answers are mipo/inference/guidance.py's, the report names the rule,
and strategies or engines that cannot guide decoding are refused in one line before any work."""
import json

import pytest

from mipo.cli import main
from mipo.io import read_jsonl

from .conftest import FIXTURES


def flags(model_dir, run_dir, *extra):
    return ["--model.name", str(model_dir), "--run-dir", str(run_dir), "--task.data",
            str(FIXTURES / "personalization.jsonl"), "--generate.max_new_tokens", "6", "--evaluate.max_new_tokens", "6",
            "--evaluate.mi_negatives", "0", "--train.batch_size", "2", *extra]


def test_pmi_decode_answers_are_the_guided_rule(sharp_model_dir, tmp_path):
    from mipo.config import TaskArgs
    from mipo.inference import Sampling
    from mipo.inference.guidance import sample_guided
    from mipo.inference.hf import HFEngine
    from mipo.seeds import derive
    from mipo.tasks import get_task

    run_dir = tmp_path / "run"
    assert main(["run", *flags(sharp_model_dir, run_dir, "--method", "pmi-decode", "--generate.pmi_alpha", "2")]) == 0
    assert not (run_dir / "train").exists() and not (run_dir / "pairs.jsonl").exists()  # nothing sampled or trained
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["pmi"]["alpha"] == 2.0 and metrics["pmi"]["negative"] == "drop_context"
    rows = read_jsonl(run_dir / "eval" / "responses.jsonl")
    t = get_task("personalization", TaskArgs(data=str(FIXTURES / "personalization.jsonl")))
    items = t.load(t.args, "test")
    from mipo import ModelArgs, models

    want = sample_guided(HFEngine(*models.load(ModelArgs(name=str(sharp_model_dir)))), [t.messages(it) for it in items],
                         [t.messages(it, with_context=False) for it in items], Sampling(0.0, 1.0, 6), 2.0,
                         seed=derive(0, "eval"), batch_size=32)
    assert [r["trained"] for r in rows] == want
    assert [r["base"] for r in rows] != want  # guidance at alpha 2 changes the greedy answers
    assert "context-aware decoding" in (run_dir / "report.md").read_text()


def test_pmi_distill_trains_on_pmi_decoded_answers(tiny_model_dir, tmp_path):
    run_dir = tmp_path / "run"
    assert main(["run", *flags(tiny_model_dir, run_dir, "--method", "pmi-distill")]) == 0
    rows = read_jsonl(run_dir / "pairs.jsonl")
    assert rows and all("rejected" not in r and r["meta"]["pmi_alpha"] == 0.5 for r in rows)
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["train"]["steps"] >= 1 and metrics["pmi"]["of"] == "the training samples"


@pytest.mark.parametrize("method,extra,says", [
    ("pmi-decode", ["--task.negative", "random_prompt"], "cannot guide decoding"),
    ("pmi-distill", ["--generate.engine", "openai", "--generate.base_url", "http://127.0.0.1:9/v1"], "engine hf"),
])
def test_what_cannot_guide_is_refused_before_work(tiny_model_dir, tmp_path, capsys, method, extra, says):
    run_dir = tmp_path / "run"
    assert main(["run", *flags(tiny_model_dir, run_dir, "--method", method, *extra)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and says in err[0]
    assert not (run_dir / "eval").exists() and not (run_dir / "pairs.jsonl").exists()
