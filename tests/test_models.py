import pytest
import torch

from mipo import ModelArgs, models
from mipo.io import MipoError


def test_local_dir_loads_fp32_on_cpu(tiny_model_dir):
    model, tok = models.load(ModelArgs(name=str(tiny_model_dir)))
    assert model.dtype == torch.float32 and model.device.type == "cpu" and not model.training
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
    with models.embedded_gguf().open("rb") as f:
        truncated.write_bytes(f.read(1 << 20))  # the real header, cut after 1 MiB
    with pytest.raises(MipoError, match="truncated.gguf: cannot read GGUF"):
        models.resolve(ModelArgs(name=str(truncated), cache_dir=str(tmp_path / "cache")))
    assert not (tmp_path / "cache" / "truncated").exists()
