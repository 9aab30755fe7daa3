import os

import pytest
import torch

from mipo import ModelArgs, models
from mipo.io import MipoError

from .conftest import embedded_gguf


def test_local_dir_loads_on_the_auto_device_and_dtype(tiny_model_dir):
    model, tok = models.load(ModelArgs(name=str(tiny_model_dir)))
    cuda = torch.cuda.is_available()  # auto: bf16 on CUDA, fp32 on CPU
    assert model.device.type == ("cuda" if cuda else "cpu") and not model.training
    assert model.dtype == (torch.bfloat16 if cuda and torch.cuda.is_bf16_supported() else torch.float32)
    model, _ = models.load(ModelArgs(name=str(tiny_model_dir), device="cpu"))
    assert model.dtype == torch.float32 and model.device.type == "cpu"
    assert tok.chat_template and tok.pad_token_id is not None


def test_dtype_and_device_choice():
    assert models.pick_dtype("auto", torch.device("cpu")) == torch.float32
    assert models.pick_dtype("bfloat16", torch.device("cpu")) == torch.bfloat16


def test_missing_and_pickle_only_models_are_refused(tmp_path):
    with pytest.raises(MipoError, match="model path does not exist"):
        models.resolve(ModelArgs(name=str(tmp_path / "nope")))
    (tmp_path / "m").mkdir()
    (tmp_path / "m" / "config.json").write_text("{}")
    (tmp_path / "m" / "pytorch_model.bin").write_bytes(b"\x80\x02pickle")
    with pytest.raises(MipoError, match=r"holds only pickle weights \(pytorch_model.bin\), which mipo refuses"):
        models.resolve(ModelArgs(name=str(tmp_path / "m")))
    assert models.resolve(ModelArgs(name="HuggingFaceTB/SmolLM2-135M-Instruct")) == "HuggingFaceTB/SmolLM2-135M-Instruct"


def test_bad_gguf_files_are_refused(tmp_path):
    fake = tmp_path / "fake.gguf"
    fake.write_bytes(b"PK\x03\x04 not a gguf")
    with pytest.raises(MipoError, match="not a GGUF file"):
        models.resolve(ModelArgs(name=str(fake), cache_dir=str(tmp_path / "cache")))
    truncated = tmp_path / "truncated.gguf"
    with embedded_gguf().open("rb") as f:
        truncated.write_bytes(f.read(1 << 20))  # the real header, cut after 1 MiB
    with pytest.raises(MipoError, match="truncated.gguf: cannot read GGUF"):
        models.resolve(ModelArgs(name=str(truncated), cache_dir=str(tmp_path / "cache")))
    assert not (tmp_path / "cache" / "truncated").exists()


def test_keep_freed_memory_stops_refaulting_big_blocks():
    """Allocating and freeing a 64 MB tensor 20 times: glibc's default faults its pages in every time; with the
    setting the CLI applies, the block is reused. Counts page faults in fresh processes, so no timing."""
    import subprocess
    import sys

    code = ("import resource, sys, torch\n"
            "from mipo.models import keep_freed_memory\n"
            "took = keep_freed_memory()\n"
            "torch.ones(16 << 20)\n"
            "before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt\n"
            "for _ in range(20):\n"
            "    torch.ones(16 << 20)\n"
            "print(took, resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)\n")

    def faults(mode):
        out = subprocess.run([sys.executable, "-c", code], env={**os.environ, "MIPO_MALLOC": mode},
                             capture_output=True, text=True, check=True).stdout.split()
        return out[0] == "True", int(out[1])

    took, kept = faults("mipo")
    off, default = faults("system")
    if not sys.platform.startswith("linux"):
        pytest.skip("mallopt is glibc's")
    assert took and not off
    assert default >= 20  # glibc's default: the pages are faulted in again on every allocation
    assert kept * 10 < default
