"""Generation engines behind one interface, chosen by `generate.engine`.

- `hf`: the in-process transformers engine (mipo/generate.py): batched, seeded per batch.
- `openai`: any OpenAI-compatible server (vLLM serve, SGLang, TGI, llama.cpp server, Ollama, `transformers serve`)
  through the official `openai` client: bounded concurrent requests, retries with exponential backoff on
  408/409/429/5xx and connection errors, a per-request timeout, a per-request seed derived from the run seed and
  the prompt index. The API key is read from the environment variable named by `generate.api_key_env` and is
  never logged or written anywhere.
- `vllm`: in-process vLLM (optional extra, CUDA), tensor parallelism from `generate.tensor_parallel_size`.

Every engine has `sample(prompts, *, temperature, top_p, max_new_tokens, batch_size, seed, desc, resume_dir)
-> list[str]` (one response per prompt, in input order) and logs finished work to `resume_dir` through
mipo.io.BatchLog, so a killed stage (or a server that went away) loses nothing that had finished.
"""
from __future__ import annotations

import logging
import os
import random
import threading
import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from typing import Any, Protocol

from tqdm.auto import tqdm

from .io import BatchLog, MipoError
from .tasks.base import Messages

log = logging.getLogger("mipo")

ENGINES = ("hf", "openai", "vllm")
RETRY_STATUS = {408, 409, 429, 500, 502, 503, 504}  # and any other 5xx
BACKOFF_S, BACKOFF_CAP_S = 1.0, 30.0
FLUSH_S = 2.0  # openai: finished responses are logged at least this often (and every batch_size responses)


class Engine(Protocol):
    name: str

    def sample(self, prompts: list[Messages], *, temperature: float, top_p: float, max_new_tokens: int,
               batch_size: int, seed: int, desc: str = "sampling", resume_dir=None) -> list[str]: ...


def request_seed(seed: int, index: int) -> int:
    """The seed of one request: a function of the call's seed (run seed + sample offset) and the prompt index."""
    return (seed * 1_000_003 + index) % 2**31


class HFEngine:
    """The in-process transformers engine, mipo.generate.sample."""

    name = "hf"

    def __init__(self, model, tok):
        self.model, self.tok = model, tok

    def sample(self, prompts, *, temperature, top_p, max_new_tokens, batch_size, seed, desc="sampling",
               resume_dir=None) -> list[str]:
        from . import generate

        return generate.sample(self.model, self.tok, prompts, temperature=temperature, top_p=top_p,
                               max_new_tokens=max_new_tokens, batch_size=batch_size, seed=seed, desc=desc,
                               resume_dir=resume_dir)


class _Stopped(Exception):
    """Another request failed for good: the remaining ones give up instead of retrying."""


class OpenAIEngine:
    """Chat completions from an OpenAI-compatible server, `max_concurrency` requests in flight."""

    name = "openai"

    def __init__(self, base_url: str | None, *, api_model: str | None = None, api_key_env: str = "OPENAI_API_KEY",
                 max_concurrency: int = 16, timeout_s: float = 600.0, max_retries: int = 8):
        try:
            import openai
        except ImportError:
            raise MipoError("generate.engine=openai needs the openai client: pip install 'mipo[openai]' "
                            "(or pip install openai)") from None
        if not base_url:
            raise MipoError("generate.engine=openai needs generate.base_url, e.g. http://localhost:8000/v1")
        if max_concurrency < 1 or max_retries < 0 or timeout_s <= 0:
            raise MipoError("generate.max_concurrency must be >= 1, generate.max_retries >= 0, generate.timeout_s > 0")
        self._openai = openai
        self.base_url, self.max_concurrency, self.max_retries = base_url, max_concurrency, max_retries
        self.api_key_env = api_key_env
        key = os.environ.get(api_key_env) or ""
        if not key:
            log.info("openai engine: $%s is not set; sending no API key", api_key_env)
        self._secret = key  # only to scrub it from server messages; never logged or stored
        # Retries are ours (max_retries=0 here): backoff long enough to ride out a server restart, and one
        # failure stops the other requests instead of each retrying on its own.
        self.client = openai.OpenAI(base_url=base_url, api_key=key or "EMPTY", timeout=timeout_s, max_retries=0)
        self._api_model = api_model
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self.stats = {"requests": 0, "retries": 0, "prompt_tokens": 0, "completion_tokens": 0}

    # --- one call, with retries ---------------------------------------------------------------------------
    def _scrub(self, text: str) -> str:
        return text.replace(self._secret, "***") if self._secret else text

    def _call(self, fn, what: str):
        o = self._openai
        for attempt in range(self.max_retries + 1):
            if self._stop.is_set():
                raise _Stopped()
            try:
                return fn()
            except o.AuthenticationError:
                raise MipoError(f"{self.base_url}: authentication failed (HTTP 401); check the key in "
                                f"${self.api_key_env}") from None
            except o.APIStatusError as e:
                status = e.status_code
                if status not in RETRY_STATUS and status < 500:
                    hint = "; does generate.base_url end with /v1?" if status == 404 else ""
                    raise MipoError(f"{self.base_url}: {what} failed: HTTP {status}: "
                                    f"{self._scrub(str(e.message))[:500]}{hint}") from None
                reason, delay = f"HTTP {status}", _retry_after(e.response)
            except o.APIConnectionError as e:  # refused, reset, DNS, and timeouts (APITimeoutError)
                reason, delay = type(e).__name__, None
            if attempt == self.max_retries:
                raise MipoError(f"{self.base_url}: {what} failed after {attempt + 1} attempts ({reason}); finished "
                                f"responses are saved, rerun the same command to resume") from None
            delay = delay if delay is not None else min(BACKOFF_CAP_S, BACKOFF_S * 2 ** attempt) * random.uniform(0.75, 1.25)
            with self._lock:
                self.stats["retries"] += 1
            log.log(logging.WARNING if attempt == 0 else logging.INFO, "%s: %s (%s); retry %d/%d in %.1f s",
                    self.base_url, what, reason, attempt + 1, self.max_retries, delay)
            if self._stop.wait(delay):
                raise _Stopped()
        raise AssertionError("unreachable")

    @property
    def api_model(self) -> str:
        """generate.api_model, or the server's only model."""
        if self._api_model is None:
            ids = [m.id for m in self._call(lambda: list(self.client.models.list()), "listing models")]
            if len(ids) != 1:
                raise MipoError(f"{self.base_url}: serves {len(ids)} models ({', '.join(ids) or 'none'}); "
                                f"choose one with generate.api_model")
            self._api_model = ids[0]
            log.info("openai engine: %s serves %s", self.base_url, self._api_model)
        return self._api_model

    def _request(self, messages: Messages, seed: int, temperature: float, top_p: float, max_new_tokens: int,
                 want_logprobs: bool) -> Any:
        kw: dict[str, Any] = dict(model=self.api_model, messages=messages, max_tokens=max_new_tokens, n=1, seed=seed,
                                  temperature=max(0.0, temperature))
        if temperature > 0:
            kw["top_p"] = top_p
        if want_logprobs:
            kw["logprobs"] = True
        r = self._call(lambda: self.client.chat.completions.create(**kw), "chat completion")
        choice = r.choices[0]
        text = (choice.message.content or "").strip()
        with self._lock:
            self.stats["requests"] += 1
            if r.usage is not None:
                self.stats["prompt_tokens"] += r.usage.prompt_tokens or 0
                self.stats["completion_tokens"] += r.usage.completion_tokens or 0
        if not want_logprobs:
            return text
        content = getattr(choice.logprobs, "content", None) if choice.logprobs is not None else None
        return [text, [t.logprob for t in content] if content else None]

    # --- many calls --------------------------------------------------------------------------------------
    def _run(self, prompts: list[Messages], *, temperature, top_p, max_new_tokens, batch_size, seed, desc,
             resume_dir, want_logprobs) -> list:
        model = self.api_model
        blog = BatchLog(resume_dir, {"op": "sample-openai", "prompts": prompts, "t": temperature, "p": top_p,
                                     "n": max_new_tokens, "seed": seed, "model": model, "logprobs": want_logprobs})
        logged = blog.load()
        done: dict[int, Any] = {i: v for rec in logged.values() for i, v in rec}
        flush_id = max(logged, default=-1) + 1
        pending: list[list] = []
        last_flush = time.monotonic()

        def flush():  # one BatchLog line per flush: [[prompt index, response], ...]
            nonlocal flush_id, pending, last_flush
            if pending:
                blog.append(flush_id, pending)
                flush_id, pending = flush_id + 1, []
            last_flush = time.monotonic()

        todo = [i for i in range(len(prompts)) if i not in done]
        if done:
            log.info("%s: %d of %d responses already logged, %d to request", desc, len(done), len(prompts), len(todo))
        self._stop.clear()
        pool = ThreadPoolExecutor(max_workers=self.max_concurrency, thread_name_prefix="mipo-openai")
        futures = {}
        try:
            with tqdm(total=len(prompts), initial=len(done), desc=desc, unit="prompt") as bar:
                futures = {pool.submit(self._request, prompts[i], request_seed(seed, i), temperature, top_p,
                                       max_new_tokens, want_logprobs): i for i in todo}
                for fut in as_completed(futures):
                    i = futures[fut]
                    done[i] = fut.result()
                    pending.append([i, done[i]])
                    bar.update(1)
                    if len(pending) >= max(1, batch_size) or time.monotonic() - last_flush > FLUSH_S:
                        flush()
        except BaseException:
            self._stop.set()  # the other requests stop retrying
            pool.shutdown(wait=False, cancel_futures=True)
            raise
        finally:
            pool.shutdown(wait=True)
            for fut, i in futures.items():  # after a failure: keep every response that did come back
                if i not in done and fut.done() and not fut.cancelled() and fut.exception() is None:
                    done[i] = fut.result()
                    pending.append([i, done[i]])
            flush()
        return [done[i] for i in range(len(prompts))]

    def sample(self, prompts, *, temperature, top_p, max_new_tokens, batch_size, seed, desc="sampling",
               resume_dir=None) -> list[str]:
        return self._run(prompts, temperature=temperature, top_p=top_p, max_new_tokens=max_new_tokens,
                         batch_size=batch_size, seed=seed, desc=desc, resume_dir=resume_dir, want_logprobs=False)

    def sample_with_logprobs(self, prompts, *, temperature, top_p, max_new_tokens, batch_size, seed,
                             desc="sampling", resume_dir=None) -> list[tuple[str, list[float] | None]]:
        """Responses with their token log-probs where the server offers them (None where it does not)."""
        out = self._run(prompts, temperature=temperature, top_p=top_p, max_new_tokens=max_new_tokens,
                        batch_size=batch_size, seed=seed, desc=desc, resume_dir=resume_dir, want_logprobs=True)
        return [(text, lps) for text, lps in out]


def _retry_after(response) -> float | None:
    """Seconds from a Retry-After header (capped), or None."""
    try:
        value = float(response.headers.get("retry-after"))
    except (AttributeError, TypeError, ValueError):
        return None
    return min(max(value, 0.0), 120.0)


def vllm_sampling_kwargs(*, temperature: float, top_p: float, max_new_tokens: int, seed: int) -> dict:
    """mipo's sampling settings as vllm.SamplingParams keyword arguments (temperature 0 = greedy)."""
    greedy = temperature <= 0
    return {"n": 1, "temperature": 0.0 if greedy else float(temperature), "top_p": 1.0 if greedy else float(top_p),
            "max_tokens": int(max_new_tokens), "seed": int(seed), "skip_special_tokens": True}


class VLLMEngine:
    """In-process vLLM: one `LLM` (tensor parallel over `tensor_parallel_size` GPUs), chat prompts in chunks."""

    name = "vllm"

    def __init__(self, model_path: str, *, tensor_parallel_size: int = 1, gpu_memory_utilization: float = 0.9,
                 dtype: str = "auto", seed: int = 0, trust_remote_code: bool = False):
        try:
            import vllm
        except ImportError:
            raise MipoError("generate.engine=vllm needs vLLM (a CUDA machine): pip install 'mipo[vllm]'; or serve "
                            "the model with `vllm serve` and use generate.engine=openai") from None
        self._vllm = vllm
        self.model_path = model_path
        self.llm = vllm.LLM(model=model_path, tensor_parallel_size=tensor_parallel_size, dtype=dtype, seed=seed,
                            gpu_memory_utilization=gpu_memory_utilization, trust_remote_code=trust_remote_code)

    def sample(self, prompts, *, temperature, top_p, max_new_tokens, batch_size, seed, desc="sampling",
               resume_dir=None) -> list[str]:
        blog = BatchLog(resume_dir, {"op": "sample-vllm", "prompts": prompts, "t": temperature, "p": top_p,
                                     "n": max_new_tokens, "bs": batch_size, "seed": seed, "model": self.model_path})
        done = blog.load()
        chunks = [list(range(s, min(s + batch_size, len(prompts)))) for s in range(0, len(prompts), batch_size)]
        out: list[str] = [""] * len(prompts)
        with tqdm(total=len(prompts), desc=desc, unit="prompt") as bar:
            for b, idx in enumerate(chunks):
                if b not in done:
                    params = [self._vllm.SamplingParams(**vllm_sampling_kwargs(
                        temperature=temperature, top_p=top_p, max_new_tokens=max_new_tokens,
                        seed=request_seed(seed, i))) for i in idx]
                    results = self.llm.chat([prompts[i] for i in idx], params, use_tqdm=False)
                    done[b] = [r.outputs[0].text.strip() for r in results]
                    blog.append(b, done[b])
                for i, text in zip(idx, done[b]):
                    out[i] = text
                bar.update(len(idx))
        return out


def make_engine(cfg, model_path: str | None = None) -> Engine:
    """The engine named by cfg.generate.engine. `model_path`: the resolved cfg.model (hf and vllm load it)."""
    g = cfg.generate
    if g.engine == "hf":
        from . import models

        model, tok = models.load(cfg.model, model_path)
        return HFEngine(model, tok)
    if g.engine == "openai":
        return OpenAIEngine(g.base_url, api_model=g.api_model, api_key_env=g.api_key_env,
                            max_concurrency=g.max_concurrency, timeout_s=g.timeout_s, max_retries=g.max_retries)
    if g.engine == "vllm":
        from . import models

        return VLLMEngine(model_path or models.resolve(cfg.model), tensor_parallel_size=g.tensor_parallel_size,
                          gpu_memory_utilization=g.gpu_memory_utilization, dtype=cfg.model.dtype, seed=cfg.seed,
                          trust_remote_code=cfg.model.trust_remote_code)
    raise MipoError(f"unknown generate.engine '{g.engine}' (choose from {', '.join(ENGINES)})")
