"""PEFT in inference: which adapter weights are active in a model (the one place that reaches into PEFT's tuner
layers), and a trained adapter put on the base weights already in memory."""
from __future__ import annotations

import hashlib
from contextlib import contextmanager
from pathlib import Path

import torch
from peft import PeftModel
from peft.tuners.tuners_utils import BaseTunerLayer

from ..io import MipoError


def model_path(model) -> str:
    return str(getattr(model, "name_or_path", "") or getattr(model.config, "_name_or_path", ""))


def weights_id(model) -> dict:
    """What a model's outputs depend on, for BatchLog keys: its weights' path and, when a PEFT adapter is on,
    a digest of the active adapter weights (the base and every adapter trained on it share one path)."""
    digest, active = hashlib.blake2b(digest_size=16), False
    for mod_name, m in model.named_modules():
        if not isinstance(m, BaseTunerLayer) or m.disable_adapters:
            continue
        for layer in m.adapter_layer_names:
            store = getattr(m, layer)  # ModuleDict or ParameterDict keyed by adapter name
            for adapter in (a for a in m.active_adapters if a in store):
                obj = store[adapter]
                params = sorted(obj.named_parameters()) if isinstance(obj, torch.nn.Module) else [("", obj)]
                for name, p in params:
                    active = True
                    digest.update(f"{mod_name}.{layer}.{adapter}.{name}".encode())
                    digest.update(p.detach().float().cpu().contiguous().numpy().tobytes())
    return {"model": model_path(model), "adapter": digest.hexdigest() if active else None}


@contextmanager
def trained_engine(base, train_dir: Path | None, load_model):
    """The engine of a trained model beside `base` (an HFEngine): the base itself (train_dir None), the base with
    the LoRA adapter of `train_dir/adapter` (removed again on exit: one copy of the weights), or the full model of
    `train_dir/model` (`load_model(path)` loads it). The trained engine is of base's own class: hf.py imports
    this module (weights_id), so naming HFEngine here would close an import circle."""
    engine = type(base)
    if train_dir is None:
        yield base
    elif (train_dir / "adapter").is_dir():
        peft = PeftModel.from_pretrained(base.model, str(train_dir / "adapter")).eval()
        try:
            yield engine(peft, base.tok)
        finally:
            base.model = peft.unload()  # the base weights without the adapter's layers
    elif (train_dir / "model").is_dir():
        yield engine(load_model(str(train_dir / "model")), base.tok)
    else:
        raise MipoError(f"{train_dir}: no trained model (neither adapter/ nor model/)")
