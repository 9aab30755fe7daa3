"""Each bad input: one error line naming file, line and field; exit code 2; nothing written."""
import json
from pathlib import Path

import pytest

from mipo.cli import main
from mipo.io import MipoError

from .conftest import FIXTURES, embedded_gguf


def personalization(tmp_path, rows):
    f = tmp_path / "prompts.jsonl"
    rows = rows + [dict(GOOD, id="held-out", split="test")]
    f.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows))
    return f


GOOD = {"id": "a", "context": "I am vegan.", "request": "Suggest a dinner.", "split": "train"}


def case_malformed_json(tmp_path):
    f = personalization(tmp_path, [GOOD, dict(GOOD, id="b"), '{"id": "c", "context": "x",'])
    return ["--task.data", str(f)], rf"{f}:3: malformed JSON"


def case_missing_request(tmp_path):
    f = personalization(tmp_path, [GOOD, {k: v for k, v in GOOD.items() if k != "request"} | {"id": "b"}])
    return ["--task.data", str(f)], rf"{f}:2: field 'request' is missing or empty"


def case_empty_context(tmp_path):
    f = personalization(tmp_path, [GOOD, dict(GOOD, id="b", context="  ")])
    return ["--task.data", str(f)], rf"{f}:2: field 'context' is missing or empty"


def case_missing_answer(tmp_path):
    f = tmp_path / "gsm.jsonl"
    f.write_text('{"question": "1+1?", "answer": "#### 2"}\n{"question": "2+2?"}\n{"question": "3+3?", "answer": "#### 6"}\n')
    return ["--task.name", "gsm8k", "--task.data", str(f)], rf"{f}:2: field 'answer' is missing or empty"


def case_bad_svamp_answer(tmp_path):
    row = json.loads((FIXTURES / "svamp.jsonl").read_text().splitlines()[0])
    f = tmp_path / "svamp.jsonl"
    f.write_text(json.dumps(row) + "\n" + json.dumps(dict(row, ID="x", Answer="seven")) + "\n" + json.dumps(row) + "\n")
    return ["--task.name", "svamp", "--task.data", str(f)], rf"{f}:2: field 'Answer' is missing or not a number"


def case_one_prompt_for_random_negatives(tmp_path):
    f = FIXTURES / "gsm8k.jsonl"
    return ["--task.name", "gsm8k", "--task.data", str(f), "--task.n_train", "1"], \
        rf"{f}: random_prompt negatives need at least 2 prompts, got 1"


def case_prompt_longer_than_context(tmp_path):
    f = personalization(tmp_path, [GOOD, dict(GOOD, id="b", request="Explain this. " * 600)])
    return ["--task.data", str(f)], rf"{f}:2: prompt is \d+ tokens; with max_new_tokens=8 it exceeds the model's context of 1024"


def case_held_out_prompt_longer_than_context(tmp_path):
    """Caught by `mipo generate`, before sampling and training, not by the evaluate stage an hour later."""
    f = personalization(tmp_path, [GOOD, dict(GOOD, id="b"), dict(GOOD, id="c", split="test", request="Why? " * 900)])
    return ["--task.data", str(f)], rf"{f}:3: prompt is \d+ tokens; with max_new_tokens=\d+ it exceeds the model's context"


def case_unknown_task(tmp_path):
    return ["--task.name", "gsm8kk"], r"unknown task 'gsm8kk' \(known: .*\); did you mean 'gsm8k'\?"


def case_unknown_strategy(tmp_path):
    return ["--task.negative", "drop_contxt", "--task.data", str(FIXTURES / "personalization.jsonl")], \
        r"task personalization: unknown negative strategy 'drop_contxt'"


def case_missing_model(tmp_path):
    return ["--model.name", str(tmp_path / "no-such-model")], rf"{tmp_path}/no-such-model: model path does not exist"


def case_unknown_hub_id_without_network(tmp_path):
    return ["--model.name", "nobody-here/no-such-model-3f9c"], \
        r"nobody-here/no-such-model-3f9c: (cannot reach the Hugging Face Hub \(\w+\) and the model is not in the local " \
        r"cache; download it|no such model on the Hub)"


def case_pickle_model(tmp_path):
    d = tmp_path / "pickled"
    d.mkdir()
    (d / "config.json").write_text("{}")
    (d / "pytorch_model.bin").write_bytes(b"\x80\x04not loaded")
    return ["--model.name", str(d)], rf"{d}: model directory holds only pickle weights \(pytorch_model.bin\)"


def case_truncated_gguf(tmp_path):
    g = tmp_path / "cut.gguf"
    with embedded_gguf().open("rb") as f:
        g.write_bytes(f.read(4 << 20))
    return ["--model.name", str(g), "--model.cache_dir", str(tmp_path / "cache")], rf"{g}: cannot read GGUF"


def case_recipe_unknown_key(tmp_path):
    r = tmp_path / "r.yaml"
    r.write_text("model:\n  nmae: embedded\n")
    return ["--config", str(r)], rf"{r}: unknown key 'model.nmae'; did you mean 'model.name'\?"


def case_unknown_method(tmp_path):
    return ["--method", "infonse"], r"unknown method 'infonse' \(known: .*\); did you mean 'infonce'\?"


def case_compare_bad_seeds(tmp_path):
    return ["--compare.seeds", "0,one"], r"compare.seeds: expected comma-separated integers, got '0,one'"


def case_negative_temperature(tmp_path):
    return ["--generate.temperature", "-1"], r"generate.temperature: must be >= 0, got -1.0$"


def case_top_p_above_one(tmp_path):
    return ["--generate.top_p", "2"], r"generate.top_p: must be in \(0, 1\], got 2.0$"


def case_zero_new_tokens(tmp_path):
    return ["--generate.max_new_tokens", "0"], r"generate.max_new_tokens: must be >= 1, got 0$"


def case_zero_samples_per_prompt(tmp_path):
    return ["--generate.samples_per_prompt", "0"], r"generate.samples_per_prompt: must be >= 1, got 0$"


def case_negative_n_train(tmp_path):
    return ["--task.n_train", "-3"], r"task.n_train: must be >= 1, got -3$"


def case_zero_train_batch(tmp_path):
    return ["--train.batch_size", "0"], r"train.batch_size: must be >= 1, got 0$"


def case_zero_generate_batch(tmp_path):
    return ["--generate.batch_size", "0"], r"generate.batch_size: must be >= 1, got 0$"


def case_unknown_dtype(tmp_path):
    return ["--model.dtype", "fp8"], r"model.dtype: must be one of auto, float32, bfloat16, float16, got 'fp8'$"


def case_not_utf8(tmp_path):
    f = tmp_path / "p.jsonl"
    f.write_bytes(json.dumps(GOOD).encode() + b"\n" + b'{"id": "b", "context": "caf\xe9", "request": "x", "split": "train"}\n')
    return ["--task.data", str(f)], rf"{f}:2: not UTF-8 text \(byte 28 of the line is 0xe9\); save the file as UTF-8$"


def case_one_row_file(tmp_path):
    f = tmp_path / "one.jsonl"
    f.write_text(json.dumps({k: v for k, v in GOOD.items() if k != "split"}) + "\n")
    return ["--task.data", str(f)], r"task personalization: split 'train' has no items; a single file whose rows have no " \
        r"'split' field is cut 70/30 in file order, so it needs at least 2 rows"


def case_yaml_syntax_error(tmp_path):
    f = tmp_path / "r.yaml"
    f.write_text("train:\n  beta: 0.1\n  lr: [1, 2\n")
    return ["--config", str(f)], rf"{f}:\d+:\d+: invalid YAML"


def case_headerless_csv(tmp_path):
    f = tmp_path / "gsm.csv"
    f.write_text("Natalia sold clips to 48 friends. How many?,#### 48\n" + "A pen costs 2. Two pens?,#### 4\n" * 3)
    return ["--task.name", "gsm8k", "--task.data", str(f)], \
        rf"{f}:2: field 'question' is missing or empty \(the row has .*no header row\?\)"


def case_split_file_not_found(tmp_path):
    (tmp_path / "train.jsonl").write_text((FIXTURES / "gsm8k.jsonl").read_text())
    (tmp_path / "validation.jsonl").write_text((FIXTURES / "gsm8k.jsonl").read_text())
    return ["--task.name", "gsm8k", "--task.data", str(tmp_path)], \
        rf"{tmp_path}: no file for split 'test' .*splits here: train, validation \(choose with --task.train_split"


def case_subset_with_a_local_directory(tmp_path):
    (tmp_path / "train.jsonl").write_text((FIXTURES / "gsm8k.jsonl").read_text())
    return ["--task.name", "gsm8k", "--task.data", str(tmp_path), "--task.subset", "main"], \
        rf"{tmp_path}: task.subset 'main' has no sub-directory here \(sub-directories: none\)"


def case_unknown_eval_draw(tmp_path):
    return ["--task.eval_draw", "shuffled"], r"task.eval_draw: must be one of random, first, got 'shuffled'$"


CASES = [v for k, v in dict(globals()).items() if k.startswith("case_")]


@pytest.mark.parametrize("case", CASES, ids=[c.__name__[5:] for c in CASES])
def test_bad_input_one_line_no_output(case, tiny_model_dir, tmp_path, capsys):
    extra, pattern = case(tmp_path)
    run_dir = tmp_path / "run"
    argv = ["compare" if "compare" in case.__name__ else "generate", "--model.name", str(tiny_model_dir), "--run-dir", str(run_dir),
            "--generate.max_new_tokens", "8", *extra]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err  # checked before any weights load: no progress bar, no traceback
    import re

    assert re.match(rf"mipo: error: {pattern}", err[0]), err[0]
    assert not run_dir.exists() or not any(p.is_file() for p in run_dir.rglob("*"))
    assert not any(Path(tmp_path / "cache").rglob("*.safetensors"))


def test_python_api_gets_the_same_limits(tiny_model_dir, tmp_path):
    from mipo import Config, pipeline

    cfg = Config(run_dir=str(tmp_path / "run"))
    cfg.model.name, cfg.train.beta = str(tiny_model_dir), 0.0
    with pytest.raises(MipoError, match=r"train.beta: must be > 0, got 0.0"):
        pipeline.generate(cfg)
    assert not (tmp_path / "run").exists()


def test_every_flag_documents_its_limit_and_default(capsys):
    from mipo.cli import main as cli

    with pytest.raises(SystemExit):
        cli(["run", "--help"])
    out = " ".join(capsys.readouterr().out.split())
    assert "sampling temperature of the pairs' responses (0 = greedy" in out and "must be >= 0; default: 0.7" in out
    assert "DPO beta: how far the policy may move from the reference" in out


def test_a_mistyped_flag_gets_the_nearest_one(capsys):
    from mipo.cli import main as cli

    with pytest.raises(SystemExit) as e:
        cli(["train", "--train.betta", "0.2"])
    assert e.value.code == 2
    assert capsys.readouterr().err.strip().splitlines() == ["mipo: error: unknown flag --train.betta; did you mean --train.beta?"]
