import pytest

from mipo.cli import main
from mipo.cli import config_from_args
from mipo.config import Config
from mipo.recipe import apply_overrides, load_recipe
from mipo.io import MipoError


def test_recipe_then_flags_override(tmp_path):
    recipe = tmp_path / "r.yaml"
    recipe.write_text("seed: 3\ntrain:\n  beta: 0.5\n  lora: false\ntask:\n  name: gsm8k\n")
    import argparse

    from mipo.cli import add_config_flags

    p = argparse.ArgumentParser()
    add_config_flags(p)
    cfg = config_from_args(p.parse_args(["--config", str(recipe), "--train.beta", "0.2", "--task.n_train", "5"]))
    assert cfg.seed == 3 and cfg.train.beta == 0.2 and cfg.train.lora is False
    assert cfg.task.name == "gsm8k" and cfg.task.n_train == 5
    assert cfg.generate.top_p == Config().generate.top_p  # untouched defaults stay


def test_unknown_recipe_key_suggests_nearest(tmp_path):
    recipe = tmp_path / "r.yaml"
    recipe.write_text("train:\n  betta: 0.5\n")
    with pytest.raises(MipoError, match=r"r.yaml: unknown key 'train.betta'; did you mean 'train.beta'\?"):
        load_recipe(recipe)
    recipe.write_text("trian:\n  beta: 0.5\n")
    with pytest.raises(MipoError, match="did you mean 'train'"):
        load_recipe(recipe)


def test_bad_value_type_names_the_field():
    with pytest.raises(MipoError, match=r"command line: train.beta: expected float, got 'high'"):
        apply_overrides(Config(), {"train.beta": "high"}, "command line")
    with pytest.raises(MipoError, match="expected true/false"):
        apply_overrides(Config(), {"train.lora": "maybe"}, "command line")
    assert apply_overrides(Config(), {"task.n_train": "none"}, "x").task.n_train is None


def test_fingerprint_tracks_only_named_sections():
    a, b = Config(), Config()
    b.evaluate.max_new_tokens = 7
    assert a.fingerprint("task", "generate") == b.fingerprint("task", "generate")
    assert a.fingerprint("evaluate") != b.fingerprint("evaluate")


def test_cli_error_is_one_line_and_exit_2(tmp_path, capsys):
    recipe = tmp_path / "r.yaml"
    recipe.write_text("generate:\n  temprature: 0.1\n")
    assert main(["generate", "--config", str(recipe), "--run-dir", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"mipo: error: {recipe}: unknown key 'generate.temprature'; did you mean 'generate.temperature'?"]
    assert not (tmp_path / "run").exists()


def test_shipped_recipes_load():
    from pathlib import Path

    recipes = sorted((Path(__file__).parents[1] / "recipes").rglob("*.yaml"))
    assert recipes
    for r in recipes:
        assert isinstance(load_recipe(r), Config)


def test_the_eval_draw_is_in_fingerprints_only_when_it_picks_a_subset():
    a, b = Config(), Config()
    b.task.eval_draw, b.task.eval_seed = "first", 7
    assert a.fingerprint("task") == b.fingerprint("task")  # every held-out item either way
    a.task.n_eval = b.task.n_eval = 50
    assert a.fingerprint("task") != b.fingerprint("task")
