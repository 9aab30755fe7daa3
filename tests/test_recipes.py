"""The paper recipes: every one loads and holds the paper's settings, and each task's recipe runs end to end in a
dry run (the tiny model, the project's fixtures, tiny sizes) through generate -> train -> evaluate -> report."""
from pathlib import Path

import pytest

from mipo import pipeline
from mipo.recipe import apply_overrides, load_recipe
from mipo.tasks import get_task

from .conftest import FIXTURES, check_run_dir

ROOT = Path(__file__).parents[1]
RECIPES = sorted((ROOT / "recipes" / "paper").glob("*.yaml"))
FIXTURE_DATA = {"gsm8k": "gsm8k.jsonl", "svamp": "svamp.jsonl", "arc_easy": "arc.jsonl", "arc_challenge": "arc.jsonl",
                "mmlu": "mmlu.jsonl", "prism": "prism", "community_alignment": "community_alignment.jsonl",
                "multifaceted": "multifaceted.jsonl"}
MODELS = {"meta-llama/Llama-3.2-1B-Instruct", "meta-llama/Llama-3.2-3B-Instruct", "Qwen/Qwen2.5-1.5B-Instruct",
          "Qwen/Qwen2.5-3B-Instruct", "Qwen/Qwen2.5-7B-Instruct"}


# The authors' eval scripts, row by row (tests/test_protocol.py pins their prompts and draws):
# task -> (n_eval, eval_draw, eval temperature, eval max tokens, pair max tokens, pair temperature)
AUTHORS = {"gsm8k": (200, "random", 0.1, 5012, 1024, 0.1), "svamp": (None, "random", 0.1, 1024, 1024, 0.1),
           "arc_easy": (500, "random", 1.0, 1024, 1024, 1.0), "arc_challenge": (500, "random", 1.0, 1024, 1024, 1.0),
           "mmlu": (None, "random", 1.0, 1024, 1024, 1.0), "prism": (200, "first", 0.1, 512, 512, 0.1),
           "community_alignment": (None, "random", 0.1, 512, 512, 0.1),
           "multifaceted": (None, "random", 0.1, 1024, 512, 0.1)}


def test_every_recipe_holds_the_authors_protocol():
    seen = set()
    for r in RECIPES:
        cfg = load_recipe(r)
        task = get_task(cfg.task.name, cfg.task)
        seen.add((cfg.model.name, cfg.task.name))
        assert r.stem.endswith(cfg.task.name) and cfg.run_dir.endswith(r.stem)
        assert (cfg.task.negative or task.default_negative) in task.negatives
        t, g, e, k = cfg.train, cfg.generate, cfg.evaluate, cfg.task
        launched = "--num_processes 4" in r.read_text()  # the 7B recipes: accelerate launch, ZeRO-3
        assert launched == cfg.model.name.endswith("7B-Instruct")
        if launched:
            import yaml

            zero = yaml.safe_load((ROOT / "configs" / "accelerate" / "zero3.yaml").read_text())
            assert "--config_file configs/accelerate/zero3.yaml" in r.read_text() and zero["deepspeed_config"][
                "zero_stage"] == 3 and zero["mixed_precision"] == "bf16" and cfg.model.dtype == "bfloat16"
        assert (t.lora, t.beta, t.learning_rate, t.epochs, t.batch_size * (4 if launched else 1)) == (
            False, 0.1, 5e-7, 1.0, 4)
        assert (t.adam_beta2, t.lr_scheduler, t.min_lr_ratio, t.warmup_ratio, t.max_length, cfg.seed) == (
            0.95, "cosine_with_min_lr", 0.1, 0.03, 15360, 42)
        n, draw, e_temp, e_tokens, g_tokens, g_temp = AUTHORS[k.name]
        assert (k.n_eval, k.eval_draw, k.eval_seed) == (n, draw, 42)
        assert (e.temperature, e.top_p, e.max_new_tokens) == (e_temp, 0.9, e_tokens)
        assert (g.temperature, g.top_p, g.max_new_tokens) == (g_temp, 0.9, g_tokens)
        math_or_choice = k.name not in ("prism", "community_alignment", "multifaceted")
        assert (k.prompt_style, k.extraction) == (("paper", "paper") if math_or_choice else (
            "paper" if k.name == "prism" else "mipo", "mipo"))
        assert k.fewshot == e.extract_with_model * 8 == (8 if k.name in ("gsm8k", "svamp") else 0)
        assert cfg.model.dtype == "bfloat16"
        judged = {"prism": 1024, "community_alignment": 4, "multifaceted": 256}
        assert (e.judge_mode, e.judge_max_new_tokens) == (
            ("per_preference", judged[k.name]) if k.name in judged else ("whole", 256))
    assert seen == {(m, t) for m in MODELS for t in FIXTURE_DATA}  # every model x task, once


def dry_run(recipe: Path, model_dir: Path, run_dir: Path):
    """The recipe with the model, data and sizes swapped for ones that run on a CPU in seconds."""
    cfg = load_recipe(recipe)
    judged = cfg.evaluate.judge != "none"
    return apply_overrides(cfg, {
        "run_dir": str(run_dir),
        "model": {"name": str(model_dir), "dtype": "float32"},
        "task": {"data": str(FIXTURES / FIXTURE_DATA[cfg.task.name]), "n_train": 4, "n_eval": 2,
                 "fewshot": min(cfg.task.fewshot, 1)},  # 8 exemplars exceed the tiny model's 1024 positions
        "generate": {"max_new_tokens": 8},
        "train": {"batch_size": 2, "max_length": 512},
        "evaluate": {"max_new_tokens": 8, "mi_negatives": 1, "bootstrap": 50,
                     **({"judge": "local", "judge_model": str(model_dir), "judge_max_new_tokens": 4} if judged else {})},
    }, f"dry run of {recipe.name}")


# one recipe per task (the models differ only by model.name, which the dry run swaps anyway)
PER_TASK = {load_recipe(r).task.name: r for r in RECIPES}


@pytest.mark.parametrize("task", sorted(PER_TASK))
def test_recipe_dry_run(task, tiny_model_dir, tmp_path):
    recipe = PER_TASK[task]
    cfg = dry_run(recipe, tiny_model_dir, tmp_path / "run")
    pipeline.run(cfg)
    metrics = check_run_dir(tmp_path / "run", n_pairs=4)
    assert metrics["task"] == task and metrics["n_items"] == 2
    assert (tmp_path / "run" / "train" / "model" / "model.safetensors").is_file()  # full fine-tune, as the paper
    assert ("judge" in metrics) == (task in ("prism", "community_alignment", "multifaceted"))
