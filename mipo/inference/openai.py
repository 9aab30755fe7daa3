"""Chat completions from any OpenAI-compatible server (vLLM serve, SGLang, TGI, llama.cpp server, Ollama,
`transformers serve`, a hosted API) through the official `openai` client.

Bounded concurrent requests, retries with exponential backoff on 408/409/429/5xx and connection errors within a
total retry time per request (a server that refuses the connection before it ever answered fails at once: nothing
listens there), a per-request timeout, a per-request seed derived from the call's seed and the prompt index. The API key is read
from the environment variable named by `api_key_env` and is never logged or written anywhere.
"""
from __future__ import annotations

import logging
import os
import random
import threading
import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from typing import Any

from ..io import BatchLog, MipoError, causes
from ..progress import Bar
from ..seeds import derive
from . import Messages, Sampling

log = logging.getLogger("mipo")

RETRY_STATUS = {408, 409, 429, 500, 502, 503, 504}  # and any other 5xx
BACKOFF_S, BACKOFF_CAP_S = 1.0, 30.0
FLUSH_S = 2.0  # finished responses are logged at least this often (and every batch_size responses)


class _Stopped(Exception):
    """Another request failed for good: the remaining ones give up instead of retrying."""


class OpenAIEngine:
    """Chat completions from an OpenAI-compatible server, `max_concurrency` requests in flight."""

    name = "openai"

    def __init__(self, base_url: str | None, *, api_model: str | None = None, api_key_env: str = "OPENAI_API_KEY",
                 max_concurrency: int = 16, timeout_s: float = 600.0, max_retries: int = 8, max_retry_s: float = 300.0,
                 setting: str = "generate.base_url"):
        try:
            import openai
        except ImportError:
            raise MipoError("generate.engine=openai needs the openai client: pip install 'mipo[openai]' "
                            "(or pip install openai)") from None
        if max_concurrency < 1 or max_retries < 0 or timeout_s <= 0 or max_retry_s <= 0:
            raise MipoError("generate.max_concurrency must be >= 1, generate.max_retries >= 0, generate.timeout_s > 0, "
                            "generate.max_retry_s > 0")
        self._openai = openai
        # base_url None: the client's default endpoint (a hosted API); named so in messages
        self.base_url = base_url or "the default OpenAI endpoint"
        self.max_concurrency, self.max_retries, self.max_retry_s = max_concurrency, max_retries, max_retry_s
        self._reached = False  # has the server answered once? Until then a refused connection means nobody listens
        self.api_key_env = api_key_env
        self.setting = setting  # the setting that points here, named in messages (the judge's is its own)
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
        t0 = time.monotonic()
        for attempt in range(self.max_retries + 1):
            if self._stop.is_set():
                raise _Stopped()
            try:
                out = fn()
                self._reached = True
                return out
            except o.AuthenticationError:
                raise MipoError(f"{self.base_url}: authentication failed (HTTP 401); check the key in "
                                f"${self.api_key_env}") from None
            except o.APIStatusError as e:
                status = e.status_code
                if status not in RETRY_STATUS and status < 500:
                    hint = f"; does {self.setting} end with /v1?" if status == 404 else ""
                    raise MipoError(f"{self.base_url}: {what} failed: HTTP {status}: "
                                    f"{self._scrub(str(e.message))[:500]}{hint}") from None
                reason, delay = f"HTTP {status}", _retry_after(e.response)
            except o.APIConnectionError as e:  # refused, reset, DNS, and timeouts (APITimeoutError)
                if _refused(e) and not self._reached:
                    raise MipoError(f"{self.base_url}: connection refused: no server listens there; start it, or "
                                    f"check {self.setting} (host, port)") from None
                reason, delay = type(e).__name__, None
            delay = delay if delay is not None else min(BACKOFF_CAP_S, BACKOFF_S * 2 ** attempt) * random.uniform(0.75, 1.25)
            spent = time.monotonic() - t0
            if attempt == self.max_retries or spent + delay > self.max_retry_s:
                raise MipoError(f"{self.base_url}: {what} failed after {attempt + 1} attempts over {spent:.0f} s "
                                f"({reason}; generate.max_retries {self.max_retries}, generate.max_retry_s "
                                f"{self.max_retry_s:g}); finished responses are saved, rerun the same command to "
                                f"resume") from None
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

    def _request(self, messages: Messages, seed: int, sampling: Sampling, want_logprobs: bool) -> Any:
        kw: dict[str, Any] = dict(model=self.api_model, messages=messages, max_tokens=sampling.max_new_tokens, n=1,
                                  seed=seed, temperature=0.0 if sampling.greedy else sampling.temperature)
        if not sampling.greedy:
            kw["top_p"] = sampling.top_p
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
    def _run(self, prompts: list[Messages], sampling: Sampling, *, batch_size, seed, desc, resume_dir,
             want_logprobs) -> list:
        model = self.api_model
        blog = BatchLog(resume_dir, {"op": "sample-openai", "prompts": prompts, "t": sampling.temperature,
                                     "p": sampling.top_p, "n": sampling.max_new_tokens, "seed": seed, "model": model, "logprobs": want_logprobs})
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
            with Bar(len(prompts), desc, "prompts", initial=len(done)) as bar:  # the stage's line (mipo/progress.py)
                futures = {pool.submit(self._request, prompts[i], derive(seed, "request", i), sampling,
                                       want_logprobs): i for i in todo}
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

    def sample(self, prompts: list[Messages], sampling: Sampling, *, seed: int, batch_size: int,
               desc: str | None = "sampling", resume_dir=None) -> list[str]:
        return self._run(prompts, sampling, batch_size=batch_size, seed=seed, desc=desc, resume_dir=resume_dir,
                         want_logprobs=False)

    def sample_with_logprobs(self, prompts: list[Messages], sampling: Sampling, *, seed: int, batch_size: int,
                             desc: str | None = "sampling", resume_dir=None) -> list[tuple[str, list[float] | None]]:
        """Responses with their token log-probs where the server offers them (None where it does not)."""
        out = self._run(prompts, sampling, batch_size=batch_size, seed=seed, desc=desc, resume_dir=resume_dir,
                        want_logprobs=True)
        return [(text, lps) for text, lps in out]


def _refused(e: BaseException) -> bool:
    """Whether a connection error was a refusal (nothing listens on the port), looking through its causes."""
    return any(isinstance(c, ConnectionRefusedError) or "connection refused" in str(c).lower() for c in causes(e))


def _retry_after(response) -> float | None:
    """Seconds from a Retry-After header (capped), or None."""
    try:
        value = float(response.headers.get("retry-after"))
    except (AttributeError, TypeError, ValueError):
        return None
    return min(max(value, 0.0), 120.0)


PROBE_TIMEOUT_S = 10.0  # an idle server lists its models in milliseconds; a dropped SYN would otherwise wait minutes


def probe(base_url: str | None, setting: str, api_key_env: str, key_setting: str,
          timeout_s: float = PROBE_TIMEOUT_S) -> None:
    """One GET <base_url>/models, no retries, before a stage does any work: a server that is not there is refused
    in one line naming `setting` (the one that points there), not after every response has been sampled. Any HTTP
    answer but 401 passes: a server listens (one without /models is told by its first request)."""
    try:
        import openai
    except ImportError:
        raise MipoError(f"{setting}: talking to a server needs the openai client: pip install 'mipo[openai]' "
                        f"(or pip install openai)") from None
    where = base_url or "the default OpenAI endpoint"
    client = openai.OpenAI(base_url=base_url, api_key=os.environ.get(api_key_env) or "EMPTY", timeout=timeout_s,
                           max_retries=0)
    try:
        client.models.list()
    except openai.AuthenticationError:
        raise MipoError(f"{where}: authentication failed (HTTP 401); check the key in ${api_key_env} "
                        f"({key_setting})") from None
    except openai.APIStatusError:
        return
    except openai.APITimeoutError:
        raise MipoError(f"{where}: no answer within {timeout_s:g} s; is the server up? check {setting}") from None
    except openai.APIConnectionError as e:
        root = str(list(causes(e))[-1])[:200]
        what = "connection refused: no server listens there" if _refused(e) else f"cannot connect ({root})"
        raise MipoError(f"{where}: {what}; start it, or check {setting} (host, port)") from None
    finally:
        client.close()
