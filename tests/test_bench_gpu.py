"""bench/gpu.py runs end to end with the tiny shape on whatever device is here (a CPU in CI, CUDA on a GPU machine)
and writes every section's figures, each a finite positive number."""
import json
import math
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).parents[1]


def positive(value) -> bool:
    return isinstance(value, (int, float)) and math.isfinite(value) and value > 0


def test_gpu_bench_tiny_writes_every_figure(tmp_path):
    out = tmp_path / "gpu.json"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    # peaks given, so the fractions of the limit and the MFU are computed on a CPU too
    proc = subprocess.run([sys.executable, "bench/gpu.py", "--shape", "tiny", "--out", str(out), "--peak-bw", "2e10",
                           "--peak-flops", "1e11", "--timed-steps", "2", "--keep-model", str(tmp_path / "model")],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "MFU" in proc.stdout and "tokens/s" in proc.stdout  # the table
    assert (tmp_path / "model" / "model.safetensors").is_file()  # kept for `mipo run --model.name` (the device run)
    report = json.loads(out.read_text())
    assert {"machine", "model", "generation", "dpo"} <= set(report)
    assert report["model"]["logits"]["nucleus_tokens_median"] <= 8  # the random model's logits were peaked
    gen = report["generation"]
    assert positive(gen["limit_tok_s"])
    assert set(gen["engines"]) == {"mipo@16", "mipo-graphs@16", "generate@16", "generate-static@16"}
    for name, fig in gen["engines"].items():
        for key in ("tokens", "seconds", "tok_s", "ms_per_step", "peak_memory_bytes", "of_limit"):
            assert positive(fig[key]), (name, key, fig[key])
    arms = report["dpo"]["arms"]
    assert len(arms) == 7 and "8N" in report["dpo"]["flop_convention"]
    # TRL's Triton-based options are recorded as skipped on a CPU; the other five arms ran
    assert {k for k, v in arms.items() if "skipped" in v} == {"full/ckpt-off/ref-pre/liger",
                                                               "full/ckpt-off/ref-pre/compile"}
    for name, fig in [(k, v) for k, v in arms.items() if "skipped" not in v]:
        for key in ("s_per_step", "tokens_per_step", "tok_s", "mfu", "peak_memory_bytes", "build_s",
                    "estimated_step_bytes_without_checkpointing"):
            assert positive(fig[key]), (name, key, fig[key])
        assert fig["steps_timed"] == 2
        used = fig["trainer"]
        assert used["gradient_checkpointing"] == ("ckpt-on" in name)
        assert used["precompute_ref_log_probs"] == ("ref-pre" in name)
        # the precompute pass is timed where there is one; a full fine-tune without it keeps a reference copy
        assert positive(fig["precompute_s_per_step"]) == ("ref-pre" in name)
        assert used["reference_copy"] == (name == "full/ckpt-on/ref-step" or name == "full/ckpt-off/ref-step")
        assert not used["use_liger_kernel"] and not used["torch_compile"]
