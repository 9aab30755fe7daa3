"""bench/effect.py --study reasoning runs end to end on the tiny model and a fixture set: trains mipo and sft-self as
`mipo compare` does, scores every model on two held-out sets (one with generated answers) and writes the tables."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).parents[1]
FIXTURE = ROOT / "tests" / "fixtures" / "arc.jsonl"


def tiny_recipe(tmp_path, model_dir, methods: str, seeds: str, n_train: int | None = None) -> Path:
    """The study's recipe on the tiny model and the fixture set, shrunk to seconds a model."""
    recipe = tmp_path / "arc.yaml"
    recipe.write_text(yaml.safe_dump({
        "model": {"name": str(model_dir)},
        "task": {"name": "arc_easy", "data": str(FIXTURE), "negative": "random_prompt", "n_train": n_train},
        "generate": {"temperature": 1.0, "max_new_tokens": 4, "batch_size": 8},
        "train": {"batch_size": 2, "learning_rate": 1e-3},
        "evaluate": {"max_new_tokens": 4, "mi_negatives": 0, "bootstrap": 0},
        "compare": {"methods": methods, "seeds": seeds}}))
    return recipe


ENV = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}


def test_reasoning_study_tiny(tiny_model_dir, tmp_path):
    recipe = tiny_recipe(tmp_path, tiny_model_dir, "mipo,sft-self", "0,1,2")
    cmd = [sys.executable, "bench/effect.py", "--study", "reasoning", "--recipe", str(recipe), "--root",
           str(tmp_path / "arc"), "--seeds", "0,1", "--heldout", f"easy+gen=arc_easy:{FIXTURE}:test",
           "--heldout", f"challenge=arc_challenge:{FIXTURE}:test:2"]
    proc = subprocess.run(cmd, cwd=ROOT, env=ENV, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    names = ["base", "mipo/seed0", "sft-self/seed0", "mipo/seed1", "sft-self/seed1"]
    for held, generated in (("easy+gen", True), ("challenge", False)):
        rows = [json.loads(x) for x in (tmp_path / "arc" / "heldout" / held / "per_item.jsonl").read_text().splitlines()]
        assert len(rows) == (3 if generated else 2) and sorted(rows[0]["models"]) == sorted(names)
        for r in rows:
            for m in r["models"].values():
                assert {"accuracy_loglik_raw", "accuracy_loglik_raw_norm", "accuracy_pmi"} <= set(m)
                assert ("accuracy" in m) == ("accuracy_loglik" in m) == generated  # the chat template's too
                assert len(m["_logliks"]["raw"]) == len(r["choice_chars"])
        table = (tmp_path / "arc" / "heldout" / held / "table.md").read_text()
        assert table in proc.stdout and "2 seeds pooled" in table and "agrees with base PMI" in table
        beside = table.split("| Δ words | Δ fluency | Δ rep4 | Δ broken |")  # what could fool generated answers
        assert len(beside) == (2 if generated else 1)
        assert not generated or "| mipo/seed1 | " in beside[1].split("Where the change is")[0]
    # the table is rebuilt from the files alone, with nothing trained or scored again
    again = subprocess.run(cmd + ["--table"], cwd=ROOT, env=ENV, capture_output=True, text=True, timeout=600)
    assert again.returncode == 0 and "train:" not in again.stderr and table in again.stdout
    # the sweep table: one row per trained model of each point under a root, its pairs' contrast beside its Δs
    sweep = subprocess.run([sys.executable, "bench/effect.py", "--study", "reasoning", "--root", str(tmp_path),
                            "--sweep"], cwd=ROOT, env=ENV, capture_output=True, text=True, timeout=600)
    assert sweep.returncode == 0, sweep.stderr[-3000:]
    rows = [line.split(" | ") for line in sweep.stdout.splitlines() if line.startswith("| arc |")]
    assert [r[1] for r in rows] == sorted(names[1:])
    stats = json.loads((tmp_path / "arc" / "samples" / "pairs-seed0" / "pairs_stats.json").read_text())
    assert rows[0][2] == f"{100 * stats['chosen']['accuracy']:.1f}% / {100 * stats['rejected']['accuracy']:.1f}%"
    assert all(len(r) == 4 + 6 and "—" not in r for r in rows)  # 3 Δs on each of the two held-out sets
    # the per-item record (what bench/results/arc.json keeps across machines) and the goal check read from it
    rec_cmd = [sys.executable, "bench/effect.py", "--study", "reasoning", "--root", str(tmp_path / "arc"),
               "--record", str(tmp_path / "rec.json"), "--goal"]
    for _ in range(2):  # recording the same models again adds nothing and refuses nothing
        proc = subprocess.run(rec_cmd, cwd=ROOT, env=ENV, capture_output=True, text=True, timeout=600)
        assert proc.returncode == 0, proc.stderr[-3000:]
    rec = json.loads((tmp_path / "rec.json").read_text())
    per_item = [json.loads(x) for x in (tmp_path / "arc" / "heldout" / "challenge" / "per_item.jsonl").read_text()
                .splitlines()]
    assert rec["challenge"]["ids"] == [r["id"] for r in per_item] and sorted(rec["challenge"]["models"]) == sorted(names)
    assert rec["challenge"]["models"]["mipo/seed1"]["accuracy_pmi"] == "".join(
        str(int(r["models"]["mipo/seed1"]["accuracy_pmi"])) for r in per_item)
    assert "| mipo − sft-self, accuracy_loglik_raw |" in proc.stdout and "Goal (the study mipo): not met" in proc.stdout


def test_sweep_scores_the_base_model_once(tiny_model_dir, tmp_path):
    """Two points of one sweep: the second reuses the first's base-model rows (same model, items, scoring), so only
    its trained model is scored."""
    recipe = tiny_recipe(tmp_path, tiny_model_dir, "mipo", "0", n_train=4)
    cmd = [sys.executable, "bench/effect.py", "--study", "reasoning", "--recipe", str(recipe), "--root",
           str(tmp_path / "sweep"), "--heldout", f"challenge=arc_challenge:{FIXTURE}:test:2",
           "--heldout", f"other-train=arc_challenge:{FIXTURE}:train", "--point", "a", "--point", "b:generate.temperature=0.5"]
    proc = subprocess.run(cmd, cwd=ROOT, env=ENV, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    written = [line.split("written ")[1] for line in proc.stderr.splitlines() if "per_item.jsonl written" in line]
    assert written == ["(base, mipo/seed0)"] * 2 + ["(mipo/seed0)"] * 2
    # a held-out set from a train split is the whole split (the fixture's 8 rows cut 70/30: 5), not task.n_train's 4
    assert len((tmp_path / "sweep" / "a" / "heldout" / "other-train" / "per_item.jsonl").read_text().splitlines()) == 5
    rows = {p: [json.loads(x) for x in (tmp_path / "sweep" / p / "heldout" / "challenge" / "per_item.jsonl")
                .read_text().splitlines()] for p in "ab"}
    assert [r["models"]["base"] for r in rows["a"]] == [r["models"]["base"] for r in rows["b"]]
    assert all(sorted(r["models"]) == ["base", "mipo/seed0"] for r in rows["b"])


def test_goal_reads_the_record():
    """The goal check from recorded 0/1 outcomes alone: met only when mipo beats base and sft-self, pooled over >= 3
    seeds, on every loglik set, with generated accuracy not falling; a record refuses a model scored differently."""
    sys.path.insert(0, str(ROOT / "bench"))
    from effect_reasoning import add, goal

    n = 400
    base = "0" * 200 + "1" * 200
    better = "1" * 60 + "0" * 140 + "1" * 200   # +15 points, nothing lost
    models = {"base": {"accuracy_loglik_raw": base}}
    for s in range(3):
        models[f"p/mipo/seed{s}"] = {"accuracy_loglik_raw": better}
        models[f"p/sft-self/seed{s}"] = {"accuracy_loglik_raw": base}
    gen = {"base": {"accuracy": base, "parsed": base, "accuracy_loglik_raw": base},
           **{f"p/mipo/seed{s}": {"accuracy": base, "parsed": better, "accuracy_loglik_raw": base} for s in range(3)}}
    rec = {"easy": {"ids": list(range(n)), "models": models}, "easy+gen": {"ids": list(range(n)), "models": gen}}
    text = goal(rec, "p")
    assert "Goal (p/mipo): met" in text and "mipo − sft-self raw acc +15.0" in text
    assert "| mipo − base, accuracy_loglik_raw | +15.0 [" in text and "(0,1,2) |" in text
    # two seeds are not enough; a fall in generated accuracy fails it; sft-self as good as mipo fails it
    two = {"easy": {"ids": rec["easy"]["ids"], "models": {k: v for k, v in models.items() if "seed2" not in k}}}
    assert "over 2 seeds ✗" in goal(two, "p")
    worse = "0" * 260 + "1" * 140
    fell = {**rec, "easy+gen": {"ids": rec["easy"]["ids"], "models": {
        **gen, "p/mipo/seed0": {**gen["p/mipo/seed0"], "accuracy": worse}}}}
    assert "easy+gen: accuracy (generated) falls" in goal(fell, "p") and "not met" in goal(fell, "p")
    same = {"easy": {"ids": rec["easy"]["ids"], "models": {
        **models, **{f"p/sft-self/seed{s}": {"accuracy_loglik_raw": better} for s in range(3)}}}}
    assert "mipo − sft-self raw acc +0.0" in goal(same, "p") and "not met" in goal(same, "p")
    # the record: the same bits again are accepted, other bits under a recorded name or other items are refused
    add(rec, "easy", list(range(n)), {"base": {"accuracy_loglik_raw": base}}, "again.jsonl")
    with pytest.raises(SystemExit, match="other.jsonl: easy: base's outcomes differ"):
        add(rec, "easy", list(range(n)), {"base": {"accuracy_loglik_raw": better}}, "other.jsonl")
    with pytest.raises(SystemExit, match="scored on other items"):
        add(rec, "easy", list(range(n - 1)), {}, "short.jsonl")
