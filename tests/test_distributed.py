"""`accelerate launch ... -m mipo train`: two processes (CPU, gloo) train like one process with the same global
batch, and only rank 0 writes the run directory; the shipped accelerate configs are valid."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from mipo.cli import main
from mipo.config import Config

from .openai_server import free_port

CONFIGS = Path(__file__).parents[1] / "configs" / "accelerate"
PAIRS = [
    ("About me: I am vegan.\n\nSuggest a quick dinner.", "Lentil soup with rice.", "Grilled steak."),
    ("Explain inflation.", "Prices rise over time.", "I like trains."),
    ("What is 3 + 4?", "3 + 4 = 7 #### 7", "The answer is 12."),
    ("About me: I run.\n\nPlan my week.", "Run Monday, rest Tuesday.", "Watch films."),
    ("About me: I have two cats.\n\nName a good pet toy.", "A feather wand.", "A tennis racket."),
    ("What is 10 - 4?", "10 - 4 = 6 #### 6", "It is 3."),
    ("About me: I live in Oslo.\n\nWhat should I wear today?", "A warm coat.", "Flip-flops."),
    ("Explain rain.", "Water vapour condenses and falls.", "Rain is a colour."),
]


def write_pairs(run_dir: Path) -> None:
    run_dir.mkdir(parents=True)
    with (run_dir / "pairs.jsonl").open("w") as f:
        for i, (x, c, r) in enumerate(PAIRS):
            f.write(json.dumps({"prompt": [{"role": "user", "content": x}],
                                "chosen": [{"role": "assistant", "content": c}],
                                "rejected": [{"role": "assistant", "content": r}], "meta": {"prompt_id": str(i)}}) + "\n")


def train_args(model_dir, run_dir, per_device_batch):
    # on CPU: the two processes run with CUDA hidden (gloo), so the one-process run they must equal does too
    return ["train", "--model.name", str(model_dir), "--run-dir", str(run_dir), "--train.learning_rate", "1e-2",
            "--train.batch_size", str(per_device_batch), "--model.device", "cpu"]


def files(run_dir: Path) -> set[str]:
    return {str(p.relative_to(run_dir)) for p in run_dir.rglob("*")}


def test_two_processes_train_like_one_with_the_same_global_batch(tiny_model_dir, tmp_path):
    one, two = tmp_path / "one", tmp_path / "two"
    write_pairs(one)
    write_pairs(two)
    assert main(train_args(tiny_model_dir, one, 2)) == 0  # 1 process x batch 2

    # 2 processes x batch 1. On a machine without GPUs (CUDA hidden here, so this also holds on a GPU runner)
    # `--multi_gpu` makes accelerate start torchrun, and each process falls back to CPU with the gloo backend.
    cmd = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
           "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no",
           "--main_process_port", str(free_port()), "-m", "mipo", *train_args(tiny_model_dir, two, 1)]
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": "", "PYTHONUNBUFFERED": "1"}
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=tmp_path, timeout=600)
    assert proc.returncode == 0, proc.stderr[-4000:]

    s1 = json.loads((one / "train" / "train_summary.json").read_text())
    s2 = json.loads((two / "train" / "train_summary.json").read_text())
    assert (s1["num_processes"], s2["num_processes"]) == (1, 2)
    assert s1["steps"] == s2["steps"] == 4
    assert abs(s1["final_loss"] - s2["final_loss"]) < 1e-4
    a = load_file(one / "train" / "adapter" / "adapter_model.safetensors")
    b = load_file(two / "train" / "adapter" / "adapter_model.safetensors")
    assert a.keys() == b.keys()
    assert max(v.abs().max().item() for k, v in a.items() if "lora_B" in k) > 1e-3  # it trained (B starts at 0)
    assert all(torch.allclose(a[k], b[k], atol=1e-4, rtol=0) for k in a)

    # Rank 0 alone wrote the run directory: the same files as the one-process run, the stage logged once.
    assert files(one) == files(two)
    assert proc.stderr.count("mipo INFO train: 4 steps") == 1
    assert proc.stderr.count("mipo INFO adapter written") == 1


@pytest.mark.parametrize("stage", ["generate", "evaluate", "run"])
def test_stages_that_run_once_refuse_several_processes(tiny_model_dir, tmp_path, monkeypatch, capsys, stage):
    monkeypatch.setenv("WORLD_SIZE", "2")
    assert main([stage, "--model.name", str(tiny_model_dir), "--run-dir", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err
    assert "runs in one process, but 2 were launched" in err and "-m mipo train" in err
    assert not (tmp_path / "run").exists()


def test_merge_from_disk_equals_merge_in_memory(tiny_model_dir, tmp_path):
    """Under ZeRO-3/FSDP the adapter is merged into a fresh base from disk; it must equal the in-memory merge."""
    from mipo import ModelArgs, models
    from mipo.methods import get_method
    from mipo.train import merge_from_disk

    write_pairs(tmp_path / "run")
    model, tok = models.load(ModelArgs(name=str(tiny_model_dir)))
    cfg = Config(seed=0)
    cfg.model.name = str(tiny_model_dir)
    cfg.train.learning_rate, cfg.train.batch_size, cfg.train.merge = 1e-2, 4, True
    get_method("mipo").fit(cfg, model, tok, tmp_path / "run" / "pairs.jsonl", tmp_path / "train")
    merge_from_disk(cfg, tmp_path / "train" / "adapter", tmp_path / "merged2")
    a = load_file(tmp_path / "train" / "merged" / "model.safetensors")
    b = load_file(tmp_path / "merged2" / "model.safetensors")
    assert a.keys() == b.keys()
    for k in a:  # the dtype training used (bf16 on CUDA), each within that dtype's rounding
        assert a[k].dtype == b[k].dtype == model.dtype
        torch.testing.assert_close(a[k], b[k], rtol=1e-6 if a[k].dtype == torch.float32 else 2e-2, atol=1e-6)


def test_shipped_accelerate_configs_are_valid():
    from accelerate.commands.config.config_args import load_config_from_file
    from accelerate.commands.launch import launch_command_parser

    options = {a.dest for a in launch_command_parser()._actions}
    found = {}
    for path in sorted(CONFIGS.glob("*.yaml")):
        cfg = load_config_from_file(str(path))  # refuses unknown top-level keys
        for nested in (cfg.deepspeed_config or {}, cfg.fsdp_config or {}):
            unknown = set(nested) - options
            assert not unknown, f"{path.name}: keys accelerate launch does not know: {unknown}"
        found[path.stem] = cfg
    assert {"ddp", "zero2", "zero3", "fsdp"} <= set(found)
    assert found["zero3"].deepspeed_config["zero_stage"] == 3 and found["zero3"].deepspeed_config["zero3_save_16bit_model"]
    assert found["zero2"].deepspeed_config["zero_stage"] == 2
    assert found["fsdp"].fsdp_config["fsdp_state_dict_type"] == "FULL_STATE_DICT"
    assert all(c.num_processes == 8 and c.mixed_precision == "bf16" for c in found.values())
