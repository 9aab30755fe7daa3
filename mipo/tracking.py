"""Experiment trackers (train.report_to): the names transformers knows, where TRL's trainers log, and the
evaluation's headline numbers sent after training.

transformers 5 dropped TrainingArguments' `logging_dir`: its TensorBoardCallback reads the env variable
TENSORBOARD_LOGGING_DIR when the trainer is built, else writes `<output_dir>/runs/<time>_<host>`, which here is the
checkpoints directory, deleted after training. So `report_to` sets that variable just before the trainer is built.
Below the config layer (config.py validates with it), so it takes plain values and the config duck-typed.
"""
from __future__ import annotations

import importlib.util
import logging
import os
from pathlib import Path

log = logging.getLogger("mipo")
# the trackers transformers 5.24 has callbacks for (its INTEGRATION_TO_CALLBACK; tests/test_tracking.py compares)
TRACKERS = ("azure_ml", "clearml", "codecarbon", "comet_ml", "dagshub", "dvclive", "flyte", "kubeflow", "mlflow",
            "neptune", "swanlab", "tensorboard", "trackio", "wandb")
# the trackers the evaluation logs to as well, and the package each needs
PACKAGES = {"tensorboard": "tensorboard", "wandb": "wandb", "trackio": "trackio", "mlflow": "mlflow"}
LOGS = "tb"  # tensorboard: <run_dir>/train/tb beside checkpoints/ (mipo-iterative: train/round<r>/tb), eval/tb
PROJECT = "huggingface"  # transformers' default project for wandb (WANDB_PROJECT overrides) and trackio


def trackers(value: str | None) -> list[str]:
    """The tracker names of a train.report_to value ([] for none)."""
    return [] if not value or value.strip() == "none" else [n.strip() for n in value.split(",") if n.strip()]


def valid(value: str) -> bool:
    """none, or one or more known tracker names (not mixed with none)."""
    names = trackers(value)
    return value.strip() == "none" or (bool(names) and all(n in TRACKERS for n in names))


def missing_package(value: str | None) -> tuple[str, str] | None:
    """(tracker, package) of the first tracker of `value` whose package is not installed, or None."""
    for name in trackers(value):
        if name in PACKAGES and importlib.util.find_spec(PACKAGES[name]) is None:
            return name, PACKAGES[name]
    return None


def report_to(value: str | None, output_dir: str) -> list[str]:
    """TRL's report_to for a train.report_to value ([] = none). With tensorboard, the trainer built next with
    `output_dir` (`<train dir>/checkpoints`) logs to `<train dir>/tb`."""
    names = trackers(value)
    if "tensorboard" in names:
        os.environ["TENSORBOARD_LOGGING_DIR"] = str(Path(output_dir).parent / LOGS)
    return names


def headline(metrics: dict) -> dict[str, float]:
    """The numbers of metrics.json a tracker plots: every model's means (`eval/<model>/<metric>`) and the paired
    trained - base difference of the primary metric (`eval/paired/<metric>`)."""
    out = {f"eval/{model}/{k}": float(v) for model, means in metrics["models"].items() for k, v in means.items()
           if isinstance(v, (int, float)) and not isinstance(v, bool)}
    paired = metrics.get("paired") or {}
    if paired.get("mean_difference") is not None:
        out[f"eval/paired/{paired['metric']}"] = float(paired["mean_difference"])
    return out


def log_evaluation(cfg, metrics: dict, eval_dir: Path) -> None:
    """The headline numbers to each tracker of cfg.train.report_to, at the training's last step (0 without one).
    tensorboard: `eval_dir/tb`. wandb, trackio, mlflow: a run of its own named after the run directory (the
    trainer's run ended with training, maybe in another process), set up by their env variables as transformers'
    callbacks are. The other trackers get none: metrics.json holds everything."""
    names = trackers(cfg.train.report_to)
    if not names:
        return
    scalars, step = headline(metrics), (metrics.get("train") or {}).get("steps") or 0
    name = f"{cfg.run_dir} evaluate"
    for tracker in names:
        if tracker == "tensorboard":
            from torch.utils.tensorboard import SummaryWriter

            with SummaryWriter(log_dir=str(eval_dir / LOGS)) as writer:
                for key, value in scalars.items():
                    writer.add_scalar(key, value, step)
        elif tracker == "wandb":
            import wandb

            run = wandb.init(project=os.getenv("WANDB_PROJECT", PROJECT), name=name, job_type="evaluate")
            run.log(scalars, step=step)
            run.finish()
        elif tracker == "trackio":
            import trackio

            trackio.init(project=PROJECT, name=name)
            trackio.log(scalars, step=step)
            trackio.finish()
        elif tracker == "mlflow":
            import mlflow

            with mlflow.start_run(run_name=name):
                mlflow.log_metrics(scalars, step=step)
        else:
            log.info("evaluate: train.report_to %s gets no evaluation metrics (metrics.json has them)", tracker)
