import json
import math

from mipo.cli import main
from mipo.config import TaskArgs
from mipo.evaluation.score import infonce_mi
from .conftest import logprobs
from mipo.io import read_jsonl
from mipo.tasks import get_task

from .conftest import FIXTURES, check_run_dir


def _gsm8k_items(n=6):
    args = TaskArgs(name="gsm8k", data=str(FIXTURES / "gsm8k.jsonl"))
    task = get_task("gsm8k", args)
    return task, task.load(args, "train")[:n]


def test_infonce_bound_limits():
    task, items = _gsm8k_items()
    own = {json.dumps(task.messages(it)): i for i, it in enumerate(items)}
    responses = [f"r{i}" for i in range(len(items))]

    def perfect(prompts, resps):  # each response is likely only under its own prompt
        return [0.0 if own[json.dumps(p)] == int(r[1:]) else -50.0 for p, r in zip(prompts, resps)]

    def blind(prompts, resps):  # the response does not depend on the prompt at all
        return [-3.0 for _ in prompts]

    k = 3
    assert all(abs(v - math.log(k + 1)) < 1e-9 for v in infonce_mi(task, items, responses, perfect, k, seed=0))
    assert all(abs(v) < 1e-12 for v in infonce_mi(task, items, responses, blind, k, seed=0))
    assert infonce_mi(task, items[:1], responses[:1], blind, k, seed=0) == [None]  # no other prompt to contrast
    assert len(infonce_mi(task, items[:2], responses[:2], blind, k, seed=0)) == 2  # K capped at n - 1


def test_infonce_under_a_real_model_is_within_its_bounds(tiny):
    model, tok = tiny
    task, items = _gsm8k_items()
    responses = [f"{it.answer} is the answer. #### {it.answer}" for it in items]
    values = infonce_mi(task, items, responses, lambda p, r: logprobs(model, tok, p, r, batch_size=8), 4, seed=0)
    assert all(v <= math.log(5) + 1e-9 for v in values)  # at most log(K+1)
    again = infonce_mi(task, items, responses, lambda p, r: logprobs(model, tok, p, r, batch_size=3), 4, seed=0)
    assert all(abs(a - b) < 1e-4 for a, b in zip(values, again))  # same draw of negatives, batching-independent


def test_base_only_evaluation_needs_no_training(tiny_model_dir, tmp_path, capsys):
    run_dir = tmp_path / "run"
    args = ["evaluate", "--model.name", str(tiny_model_dir), "--run-dir", str(run_dir), "--task.name", "arc_easy",
            "--task.data", str(FIXTURES / "arc.jsonl"), "--evaluate.base_only", "true",
            "--evaluate.max_new_tokens", "8", "--evaluate.mi_negatives", "2"]
    assert main(args) == 0
    assert not (run_dir / "train").exists()
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert set(metrics["models"]) == {"base"} and "paired" not in metrics
    base = metrics["models"]["base"]
    assert {"accuracy", "parsed", "infonce_mi", "self_bleu4"} <= set(base)
    assert 0.0 <= base["accuracy"] <= 1.0 and base["infonce_mi"] <= math.log(3) + 1e-9
    lo, hi = metrics["ci"]["base"]["infonce_mi"]
    assert lo <= base["infonce_mi"] <= hi
    rows = read_jsonl(run_dir / "eval" / "responses.jsonl")
    assert len(rows) == metrics["n_items"] == 3 and "trained" not in rows[0]
    # each row shows what the model read, the gold answer, what was extracted and whether it was right
    from mipo.tasks import get_task
    from mipo.tasks.choice import extract_choice

    items = {it.id: it for it in get_task("arc_easy").load(TaskArgs(name="arc_easy", data=str(FIXTURES / "arc.jsonl")), "test")}
    for r in rows:
        it = items[r["id"]]
        assert r["gold"] == it.answer and r["prompt_text"].rstrip().endswith("assistant")
        assert it.prompt in r["prompt_text"]
        assert r["base_prediction"] == extract_choice(r["base"], it.meta["labels"])
        assert r["base_metrics"]["accuracy"] == float(r["base_prediction"] == r["gold"])
    assert metrics["items"] == "all 3 items of split 'test'"
    assert main(["report", *args[1:]]) == 0
    report = (run_dir / "report.md").read_text()
    assert "| metric | base | base 95% CI |" in report and "The base model alone" in report
    assert "InfoNCE MI bound" in report


def test_run_reports_cis_paired_differences_and_judge(tiny_model_dir, tmp_path):
    run_dir = tmp_path / "run"
    assert main(["run", "--model.name", str(tiny_model_dir), "--run-dir", str(run_dir), "--task.name", "prism",
                 "--task.data", str(FIXTURES / "prism"), "--generate.max_new_tokens", "8",
                 "--evaluate.max_new_tokens", "8", "--train.batch_size", "2", "--evaluate.judge", "local",
                 "--evaluate.judge_model", str(tiny_model_dir), "--evaluate.judge_max_new_tokens", "6",
                 "--evaluate.judge_pairwise", "true"]) == 0
    metrics = check_run_dir(run_dir, n_pairs=4)
    for name in ("base", "trained"):
        m = metrics["models"][name]
        assert {"cond_mi", "infonce_mi", "judge_score", "judge_win", "judge_strict_win", "judge_unparsed"} <= set(m)
        assert m["judge_unparsed"] == sum(r[f"{name}_metrics"]["judge_score"] is None
                                          for r in read_jsonl(run_dir / "eval" / "responses.jsonl"))
        ci = metrics["ci"][name]["cond_mi"]
        assert ci[0] <= m["cond_mi"] <= ci[1]
    p = metrics["paired"]
    assert p["metric"] == "cond_mi" and p["ci"][0] <= p["mean_difference"] <= p["ci"][1]
    assert metrics["judge"]["n_with_reference"] == 2 and metrics["judge"]["backend"] == "local"
    rows = read_jsonl(run_dir / "eval" / "responses.jsonl")
    for r in rows:
        assert r["reference"] and "raw" in r["base_judge"] and len(r["trained_judge"]["pairwise"]["orders"]) == 2
        j, ref = r["base_metrics"]["judge_score"], r["base_judge"]["reference_score"]
        expected = None if j is None or ref is None else float(j >= ref)
        assert r["base_metrics"]["judge_win"] == expected  # ties win; unparsed never scored
    report = (run_dir / "report.md").read_text()
    assert "Δ 95% CI (paired)" in report and "Judge: local" in report
