"""A run directory on a read-only or a full disk: one clear line and exit 2, and once the disk is fixed the same
command finishes the run. The disks are real: small tmpfs mounts (skipped where this process may not mount)."""
import subprocess

import pytest

from mipo.cli import main

from .conftest import FIXTURES


def _mount(path, opts: str):
    path.mkdir(parents=True, exist_ok=True)
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", opts, "tmpfs", str(path)], capture_output=True, text=True)
    if r.returncode:
        pytest.skip(f"cannot mount a tmpfs here: {r.stderr.strip()}")
    return path


@pytest.fixture
def disk(tmp_path):
    d = _mount(tmp_path / "disk", "size=1m")
    yield d
    subprocess.run(["umount", "-l", str(d)], check=False)


def _argv(model_dir, run_dir):
    return ["generate", "--model.name", str(model_dir), "--run-dir", str(run_dir), "--task.data",
            str(FIXTURES / "personalization.jsonl"), "--generate.max_new_tokens", "8"]


def test_read_only_run_directory_is_refused_before_work(disk, tiny_model_dir, capsys):
    subprocess.run(["mount", "-o", "remount,ro", str(disk)], check=True)
    assert main(_argv(tiny_model_dir, disk / "run")) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"mipo: error: {disk / 'run'}: cannot write the run directory ({disk}: read-only file system)"]


def test_full_disk_stops_with_one_line_then_the_same_command_resumes(disk, tiny_model_dir, tmp_path, capsys):
    free = subprocess.run(["df", "--output=avail", "-B1", str(disk)], capture_output=True, text=True, check=True)
    filler = disk / "filler"
    filler.write_bytes(b"\0" * (int(free.stdout.split()[-1]) - 8192))  # two pages left: the run starts, then fills it
    run_dir = disk / "run"
    assert main(_argv(tiny_model_dir, run_dir)) == 2
    last = capsys.readouterr().err.strip().splitlines()[-1]
    assert "No space left on device" in last and "run the same command again to resume" in last, last
    assert not (run_dir / "pairs.jsonl").exists()
    filler.unlink()
    assert main(_argv(tiny_model_dir, run_dir)) == 0
    assert main(_argv(tiny_model_dir, tmp_path / "ref")) == 0
    assert (run_dir / "pairs.jsonl").read_bytes() == (tmp_path / "ref" / "pairs.jsonl").read_bytes()
