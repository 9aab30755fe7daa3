"""train.report_to: TRL's trainers and the evaluation log to the trackers named, tensorboard under the run directory;
read back here with tensorboard's own event reader, offline."""
import importlib.util
import json

import pytest

from mipo.cli import main
from mipo.config import Config, check_limits
from mipo.io import MipoError
from mipo.tracking import PACKAGES, TRACKERS

from .conftest import FIXTURES


def flags(model_dir, run_dir, *extra):
    return ["--model.name", str(model_dir), "--run-dir", str(run_dir), "--task.data",
            str(FIXTURES / "personalization.jsonl"), "--generate.max_new_tokens", "8", "--evaluate.max_new_tokens", "8",
            "--evaluate.mi_negatives", "0", "--evaluate.bootstrap", "0", "--train.batch_size", "2", *extra]


def scalars(log_dir, tag):
    """(step, value) of every event of a scalar, as TensorBoard reads the directory."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(log_dir))
    acc.Reload()
    assert tag in acc.Tags()["scalars"], acc.Tags()["scalars"]
    return [(e.step, e.value) for e in acc.Scalars(tag)]


def test_tensorboard_gets_every_logged_loss_and_the_evaluation(tiny_model_dir, tmp_path, monkeypatch):
    monkeypatch.delenv("TENSORBOARD_LOGGING_DIR", raising=False)  # set by the run; unset again after the test
    run_dir = tmp_path / "run"
    assert main(["run", *flags(tiny_model_dir, run_dir, "--train.report_to", "tensorboard")]) == 0

    train_logs = run_dir / "train" / "tb"
    assert list(train_logs.glob("events.out.tfevents.*"))
    history = json.loads((run_dir / "train" / "train_summary.json").read_text())["log_history"]
    logged = [(h["step"], h["loss"]) for h in history if "loss" in h]
    assert [s for s, _ in logged] == [1, 2, 3]  # 6 pairs, 2 per step, logging_steps 1
    read = scalars(train_logs, "train/loss")
    assert [s for s, _ in read] == [s for s, _ in logged]
    assert [v for _, v in read] == pytest.approx([v for _, v in logged], rel=1e-6)  # TensorBoard keeps float32

    metrics = json.loads((run_dir / "metrics.json").read_text())
    for model in ("base", "trained"):
        assert scalars(run_dir / "eval" / "tb", f"eval/{model}/cond_mi") == [
            (3, pytest.approx(metrics["models"][model]["cond_mi"], rel=1e-6))]  # at the training's last step
    assert scalars(run_dir / "eval" / "tb", "eval/paired/cond_mi") == [
        (3, pytest.approx(metrics["paired"]["mean_difference"], rel=1e-6, abs=1e-7))]


def test_no_tracker_by_default_and_the_setting_keeps_the_fingerprint(tmp_path):
    from trl import DPOConfig

    from mipo.train import trl_args

    cfg = Config()
    assert trl_args(cfg, DPOConfig, str(tmp_path / "checkpoints"), on_cuda=False).report_to == []
    tracked = Config()
    tracked.train.report_to = "tensorboard"
    assert tracked.fingerprint("train") == cfg.fingerprint("train")  # a run resumes with a tracker switched on


def test_the_names_are_those_transformers_has_callbacks_for():
    from transformers.integrations import INTEGRATION_TO_CALLBACK

    assert sorted(TRACKERS) == sorted(INTEGRATION_TO_CALLBACK)


@pytest.mark.parametrize("value", ["tensorbord", "none,tensorboard", ""])
def test_a_bad_tracker_is_refused_in_one_line_before_work(tiny_model_dir, tmp_path, capsys, value):
    run_dir = tmp_path / "run"
    assert main(["train", *flags(tiny_model_dir, run_dir, "--train.report_to", value)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("mipo: error: train.report_to: must be none or comma-separated names")
    assert "tensorboard, trackio, wandb" in err[0] and repr(value) in err[0]
    assert not run_dir.exists()


def test_a_tracker_not_installed_is_refused_naming_its_package():
    absent = [name for name, package in PACKAGES.items() if importlib.util.find_spec(package) is None]
    if not absent:
        pytest.skip("every tracker the evaluation logs to is installed here")
    cfg = Config()
    cfg.train.report_to = f"tensorboard,{absent[0]}"
    with pytest.raises(MipoError, match=rf"^train\.report_to: {absent[0]} needs the package {PACKAGES[absent[0]]} "):
        check_limits(cfg)
