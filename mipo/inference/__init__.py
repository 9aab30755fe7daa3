"""Inference: every consumer (the generate stage, mipo-iterative's rounds, evaluation, compare, the judge, rlaif)
samples and scores through one `Engine` interface.

- `hf` (`hf.py`): in process, transformers; also scores (`logprobs`, `option_probs`), which needs the weights;
- `openai` (`openai.py`): any OpenAI-compatible server (vLLM serve, SGLang, TGI, llama.cpp server, Ollama,
  `transformers serve`), bounded concurrency and retries;
- `vllm` (`vllm.py`): in-process vLLM on CUDA machines.

`Sampling` holds the decoding settings and the one rule that temperature <= 0 means greedy decoding. Every engine
logs finished work to `resume_dir` (mipo.io.BatchLog), so a killed stage loses at most one batch and a resumed run
gives the same outputs.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from ..io import MipoError

Messages = list[dict[str, str]]
ENGINES = ("hf", "openai", "vllm")


@dataclass(frozen=True)
class Sampling:
    temperature: float = 0.0
    top_p: float = 1.0
    max_new_tokens: int = 128

    @property
    def greedy(self) -> bool:
        """Temperature 0 (or below) means greedy decoding, in every engine."""
        return self.temperature <= 0

    @classmethod
    def of(cls, args) -> "Sampling":
        """The settings of a config section that has temperature, top_p and max_new_tokens (generate, evaluate)."""
        return cls(args.temperature, args.top_p, args.max_new_tokens)


class Engine(Protocol):
    name: str

    def sample(self, prompts: list[Messages], sampling: Sampling, *, seed: int, batch_size: int,
               desc: str | None = "sampling", resume_dir=None) -> list[str]:
        """One response per prompt, in input order."""
        ...


def make_engine(cfg, model_path: str | None = None, model=None, tok=None) -> Engine:
    """The engine named by cfg.generate.engine. `model_path`: the resolved cfg.model (hf and vllm load it);
    `model`, `tok`: weights already in memory (hf only)."""
    g = cfg.generate
    if g.engine == "hf":
        from .hf import HFEngine

        if model is None:
            from .. import models

            model, tok = models.load(cfg.model, model_path)
        return HFEngine(model, tok)
    if g.engine == "openai":
        from .openai import OpenAIEngine

        if not g.base_url:
            raise MipoError("generate.engine=openai needs generate.base_url, e.g. http://localhost:8000/v1")
        return OpenAIEngine(g.base_url, api_model=g.api_model, api_key_env=g.api_key_env,
                            max_concurrency=g.max_concurrency, timeout_s=g.timeout_s, max_retries=g.max_retries,
                            max_retry_s=g.max_retry_s)
    if g.engine == "vllm":
        from .. import models
        from .vllm import VLLMEngine

        return VLLMEngine(model_path or models.resolve(cfg.model), tensor_parallel_size=g.tensor_parallel_size,
                          gpu_memory_utilization=g.gpu_memory_utilization, dtype=cfg.model.dtype, seed=cfg.seed,
                          trust_remote_code=cfg.model.trust_remote_code)
    raise MipoError(f"unknown generate.engine '{g.engine}' (choose from {', '.join(ENGINES)})")
