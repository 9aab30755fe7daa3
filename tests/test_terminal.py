"""What a user sees (issue 24 item 1): the real CLI in a subprocess on the tiny model, its output read as a log
file reads it (stdout and stderr not terminals). mipo's own lines only unless --verbose; every logged training step
in train/log.jsonl; the final table one line per row in an 80-column terminal, markdown in a file, and the report's
path after it."""
import json
import os
import subprocess
import sys
from io import StringIO

import pytest
from rich.cells import cell_len
from rich.console import Console

from mipo.report.terminal import print_summary, run_table

from .conftest import FIXTURES

# what the libraries print on their own, each seen in a mipo run before this was built
NOISE = ["FutureWarning", "UserWarning", "{'loss'", "'grad_norm'", "Loading weights", "Tokenizing", "Dropping fully",
         "Extracting prompt", "Applying chat template", "it/s]"]


def mipo(*argv, cwd):
    env = {**os.environ, "COLUMNS": "80", "OMP_NUM_THREADS": "1"}
    done = subprocess.run([sys.executable, "-m", "mipo", *argv], capture_output=True, text=True, cwd=cwd, env=env,
                          timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout, done.stderr


@pytest.fixture(scope="module")
def quiet_run(tiny_model_dir, tmp_path_factory):
    root = tmp_path_factory.mktemp("terminal")
    run_dir = root / "run"
    argv = ["run", "--model.name", str(tiny_model_dir), "--run-dir", str(run_dir), "--task.data",
            str(FIXTURES / "personalization.jsonl"), "--generate.max_new_tokens", "8", "--evaluate.max_new_tokens",
            "8", "--train.batch_size", "2"]
    out, err = mipo(*argv, cwd=root)
    return {"argv": argv, "run_dir": run_dir, "out": out, "err": err, "root": root}


def test_a_run_prints_mipo_lines_only_and_logs_every_step(quiet_run):
    out, err, run_dir = quiet_run["out"], quiet_run["err"], quiet_run["run_dir"]
    for noise in NOISE:
        assert noise not in out + err, noise
    # one line per stage (written once when stdout is not a terminal) and mipo's own log lines
    for line in err.splitlines():
        assert " mipo " in line or line.startswith(("generate", "train", "evaluate")), line
    assert any(line.startswith("train") and "steps" in line and "loss" in line for line in err.splitlines()), err
    steps = [json.loads(line) for line in (run_dir / "train" / "log.jsonl").read_text().splitlines()]
    summary = json.loads((run_dir / "train" / "train_summary.json").read_text())
    assert [s["step"] for s in steps] == list(range(1, summary["steps"] + 1))
    assert all("loss" in s and "rewards/margins" in s for s in steps)
    # not a terminal: the table as markdown, then where the report is
    lines = out.splitlines()
    assert lines[0].startswith("mipo personalization: base vs trained on") and lines[2].startswith("| metric |")
    assert lines[3].startswith("|---|") and any(line.startswith("| cond. MI") for line in lines)
    assert lines[-1] == f"report (every measure, per-model CIs, examples): {(run_dir / 'report.md').resolve()}"


def test_verbose_lets_the_libraries_speak(quiet_run):
    """--verbose: the trainer's own dict of numbers per logged step is printed again (training alone, rerun on a
    copy of the run without its trained model)."""
    import shutil

    run_dir = quiet_run["root"] / "verbose"
    shutil.copytree(quiet_run["run_dir"], run_dir)
    shutil.rmtree(run_dir / "train")
    (run_dir / "stages" / "train.json").unlink()
    argv = list(quiet_run["argv"])
    argv[argv.index("--run-dir") + 1] = str(run_dir)
    out, err = mipo("train", *argv[1:], "--verbose", cwd=quiet_run["root"])
    assert "'loss'" in out + err and "'rewards/margins'" in out + err


@pytest.mark.parametrize("width", [80, 60, 200])
def test_the_table_fits_the_terminal_one_line_a_row(quiet_run, width):
    metrics = json.loads((quiet_run["run_dir"] / "metrics.json").read_text())
    buf = StringIO()
    print_summary(quiet_run["run_dir"], Console(file=buf, width=width, force_terminal=True, color_system=None))
    lines = buf.getvalue().splitlines()
    table = [line for line in lines if line.strip() and not line.startswith(("mipo ", "trained >", "run directory",
                                                                             "report ("))]
    assert all(cell_len(line) <= width for line in table), "\n".join(table)
    assert len(table) - 2 == len(run_table(metrics)[2])  # the header and its rule, then one line per row
    assert any("[" in line and "]" in line for line in table[2:])  # Δ with its CI on the rows
