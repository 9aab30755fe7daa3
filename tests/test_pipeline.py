"""The whole recipe through the CLI on the tiny model and the project's fixtures."""
import json

import pytest
import torch

from mipo.cli import main

from .conftest import FIXTURES, check_run_dir


def flags(model_dir, run_dir, *extra):
    return ["--model.name", str(model_dir), "--run-dir", str(run_dir), "--generate.max_new_tokens", "8",
            "--evaluate.max_new_tokens", "8", "--train.batch_size", "2", *extra]


def test_personalization_run_and_stage_reuse(tiny_model_dir, tmp_path, capsys):
    run_dir = tmp_path / "run"
    args = flags(tiny_model_dir, run_dir, "--task.data", str(FIXTURES / "personalization.jsonl"))
    assert main(["run", *args]) == 0
    out = capsys.readouterr().out
    assert "run directory:" in out and "cond. MI" in out
    metrics = check_run_dir(run_dir, n_pairs=6)
    assert metrics["primary_metric"] == "cond_mi" and metrics["train"]["steps"] == 3

    # Re-running skips finished stages; a stage can be re-run alone.
    stamp = (run_dir / "stages" / "generate.json").read_text()
    pairs = (run_dir / "pairs.jsonl").read_bytes()
    assert main(["run", *args]) == 0
    assert (run_dir / "stages" / "generate.json").read_text() == stamp
    assert (run_dir / "pairs.jsonl").read_bytes() == pairs
    assert main(["report", *args]) == 0

    # A config change that invalidates the pairs is refused rather than silently mixed.
    capsys.readouterr()
    assert main(["generate", *args, "--generate.temperature", "0.3"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "made with a different config" in err[0] and "--overwrite" in err[0]
    assert (run_dir / "pairs.jsonl").read_bytes() == pairs


def test_same_seed_same_bytes(tiny_model_dir, tmp_path):
    for name in ("a", "b"):
        assert main(["run", *flags(tiny_model_dir, tmp_path / name, "--task.name", "gsm8k",
                                   "--task.data", str(FIXTURES / "gsm8k.jsonl"))]) == 0
    for artifact in ("pairs.jsonl", "metrics.json", "eval/responses.jsonl"):
        assert (tmp_path / "a" / artifact).read_bytes() == (tmp_path / "b" / artifact).read_bytes()


def test_math_run_full_finetune(tiny_model_dir, tmp_path):
    run_dir = tmp_path / "run"
    assert main(["run", *flags(tiny_model_dir, run_dir, "--task.name", "svamp", "--task.data",
                               str(FIXTURES / "svamp.jsonl"), "--train.lora", "false",
                               "--model.dtype", "bfloat16")]) == 0
    metrics = check_run_dir(run_dir, n_pairs=7)
    assert metrics["primary_metric"] == "accuracy"
    assert 0.0 <= metrics["models"]["trained"]["accuracy"] <= 1.0
    from safetensors.torch import load_file

    weights = load_file(run_dir / "train" / "model" / "model.safetensors")
    assert all(w.dtype == torch.float32 for w in weights.values())  # full fine-tune: fp32 master weights
    pairs = [json.loads(line) for line in (run_dir / "pairs.jsonl").read_text().splitlines()]
    assert all(p["meta"]["strategy"] == "random_prompt" for p in pairs)
    # what the pairs hold, written by generate before training and carried into metrics.json and the report
    stats = json.loads((run_dir / "pairs_stats.json").read_text())
    assert stats == metrics["pairs"] and stats["pairs"] == 7 and {"accuracy", "parsed", "words"} <= set(stats["chosen"])
    assert stats["contrast"]["accuracy"]["n"] == 7
    assert "## What the pairs held (before training)" in (run_dir / "report.md").read_text()


@pytest.mark.parametrize("stage", ["train", "evaluate", "report"])
def test_stage_without_its_input_says_what_to_run(tiny_model_dir, tmp_path, capsys, stage):
    assert main([stage, *flags(tiny_model_dir, tmp_path / "empty")]) == 2
    assert "run `mipo" in capsys.readouterr().err
