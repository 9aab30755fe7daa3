"""evaluate.engine: which engine samples each evaluated model's answers (and the answers it is asked to extract).

- hf: the in-process engine that also scores: the base weights, with a trained LoRA adapter put on them, or a full
  (or merged) model loaded beside them;
- openai: an OpenAI-compatible server, the base model under evaluate.base_model_name and the trained one under
  evaluate.trained_model_name, on one server (vLLM serve --lora-modules) or two (evaluate.trained_base_url);
- vllm: one in-process vLLM `LLM` of the base weights, a trained LoRA adapter as its LoRARequest; a full model gets
  an `LLM` of its own, which replaces the last one (one set of vLLM weights on the GPUs at a time).

What needs log-probs stays in process whatever the engine (score.py, `choice_logliks`): it reads the weights. So do
pmi-decode's answers: context-aware decoding mixes two prompts' logits at every step, which no server returns.
"""
from __future__ import annotations

import importlib.util
import logging
from dataclasses import dataclass
from pathlib import Path

from ..config import Config
from ..io import MipoError

log = logging.getLogger("mipo")


@dataclass(frozen=True)
class Served:
    """evaluate.engine=openai's servers and served names, each with the setting it came from (for messages)."""
    base_url: str
    base_setting: str
    trained_url: str
    trained_setting: str
    base_name: str
    trained_name: str | None  # `{name}` in it stands for the evaluated model's name

    def of(self, candidate) -> tuple[str, str, str]:
        """(server, the setting naming it, served model name) of a candidate."""
        if candidate.train_dir is None:
            return self.base_url, self.base_setting, self.base_name
        return self.trained_url, self.trained_setting, self.trained_name.replace("{name}", candidate.name)


def served(cfg: Config, trained: int) -> Served:
    """The servers and served names of evaluate.engine=openai, refused in one line naming the missing setting.
    `trained`: how many trained models are evaluated (0 = the base model alone). A base server and name left
    unset are generate's, the server that sampled the pairs from the same base weights."""
    e, g = cfg.evaluate, cfg.generate
    url, setting = (e.base_url, "evaluate.base_url") if e.base_url else (g.base_url, "generate.base_url")
    if not url:
        raise MipoError("evaluate.engine=openai needs evaluate.base_url (or generate.base_url), e.g. "
                        "http://localhost:8000/v1")
    base_name = e.base_model_name or g.api_model
    if not base_name:
        raise MipoError("evaluate.engine=openai needs evaluate.base_model_name (or generate.api_model): the base "
                        "model's name on the server")
    if trained and not e.trained_model_name:
        raise MipoError("evaluate.engine=openai needs evaluate.trained_model_name: the trained model's name on the "
                        "server (vLLM: --lora-modules NAME=<run_dir>/train/adapter); or --evaluate.base_only true")
    if trained > 1 and "{name}" not in e.trained_model_name:
        raise MipoError(f"evaluate.trained_model_name: {trained} trained models are evaluated and one served name "
                        f"cannot be all of them; put {{name}} in it (replaced by method/seed, e.g. mipo/seed0)")
    trained_url = (e.trained_base_url, "evaluate.trained_base_url") if e.trained_base_url else (url, setting)
    return Served(url, setting, *trained_url, base_name, e.trained_model_name)


def check(cfg: Config, trained: int) -> None:
    """evaluate.engine's settings, before any work (the engine's name itself is a LIMITS rule)."""
    if cfg.evaluate.engine == "openai":
        served(cfg, trained)
    elif cfg.evaluate.engine == "vllm" and importlib.util.find_spec("vllm") is None:
        raise MipoError("evaluate.engine=vllm needs vLLM (a CUDA machine): pip install 'mipo[vllm]'; or serve the "
                        "models with `vllm serve` and use evaluate.engine=openai")


class Samplers:
    """The engine that samples each candidate's answers, under evaluate.engine."""

    def __init__(self, cfg: Config, task, candidates):
        self.cfg, self.task, self.kind = cfg, task, cfg.evaluate.engine
        trained = [c for c in candidates if c.train_dir is not None]
        self.served = served(cfg, len(trained)) if self.kind == "openai" else None
        self.adapters = [a for a in map(adapter_of, trained) if a is not None]
        self._vllm = None  # the one vLLM engine held, made on first use
        self._said = False

    def in_process(self, c) -> bool:
        """Whether a candidate needs its weights in process: to sample (hf, context-aware decoding) or to score its
        own log-likelihoods (multiple choice)."""
        return self.kind == "hf" or c.alpha is not None or hasattr(self.task, "loglik_requests")

    def of(self, c, local):
        """The engine that samples candidate `c`'s answers; `local`: its in-process engine (None if not loaded)."""
        if self.kind == "hf":
            return local
        if c.alpha is not None:
            if not self._said:
                log.warning("evaluate.engine=%s: %s's answers are decoded in process (context-aware decoding needs "
                            "the logits of every step)", self.kind, c.name)
                self._said = True
            return local
        return self._openai(c) if self.kind == "openai" else self._vllm_engine(c)

    def _openai(self, c):
        from ..inference.openai import OpenAIEngine

        url, setting, name = self.served.of(c)
        g = self.cfg.generate
        return OpenAIEngine(url, api_model=name, api_key_env=g.api_key_env, max_concurrency=g.max_concurrency,
                            timeout_s=g.timeout_s, max_retries=g.max_retries, max_retry_s=g.max_retry_s,
                            setting=setting)

    def _vllm_engine(self, c):
        from .. import models
        from ..inference.vllm import VLLMEngine, lora_rank

        adapter = adapter_of(c)
        full = c.train_dir is not None and adapter is None
        path = str(c.train_dir / "model") if full else models.resolve(self.cfg.model)
        if self._vllm is None or self._vllm.model_path != path:
            self._vllm = None  # drop the last LLM before the next one loads: both would not fit the GPUs
            g, m = self.cfg.generate, self.cfg.model
            self._vllm = VLLMEngine(path, tensor_parallel_size=g.tensor_parallel_size, dtype=m.dtype,
                                    gpu_memory_utilization=g.gpu_memory_utilization, seed=self.cfg.seed,
                                    trust_remote_code=m.trust_remote_code, setting="evaluate.engine",
                                    max_lora_rank=None if full else lora_rank(self.adapters))
        return self._vllm.with_adapter(adapter) if adapter else self._vllm


def summary(cfg: Config, candidates) -> dict:
    """What sampled each model's answers and what ran in process, for metrics.json and the report."""
    kind = cfg.evaluate.engine
    out: dict = {"engine": kind, "in_process": [c.name for c in candidates if kind == "hf" or c.alpha is not None]}
    if kind == "openai":
        s = served(cfg, sum(c.train_dir is not None for c in candidates))
        out["served"] = {c.name: s.of(c)[2] for c in candidates if c.alpha is None}
    elif kind == "vllm":
        out["served"] = {c.name: vllm_weights(c) for c in candidates if c.alpha is None}
    return out


def adapter_of(c) -> Path | None:
    """A trained candidate's LoRA adapter (as mipo/train.py saves it); None for the base model or a full model."""
    adapter = c.train_dir / "adapter" if c.train_dir is not None else None
    return adapter if adapter is not None and adapter.is_dir() else None


def vllm_weights(c) -> str:
    """What vLLM loads for a candidate, in words."""
    if c.train_dir is None:
        return "the base weights"
    adapter = adapter_of(c)
    return f"the base weights with {adapter} (LoRARequest)" if adapter else str(c.train_dir / "model")
