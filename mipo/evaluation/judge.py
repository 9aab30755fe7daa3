"""LLM judge for personalization: how well a response addresses the user's stated preferences.

Backends: `local` (any model mipo can load, the in-process engine) or `openai` (any OpenAI-compatible endpoint
through mipo's openai engine, with its retries; base_url and model from the config, the API key only from the
environment variable named by `evaluate.judge_api_key_env`, never logged or written). Greedy decoding.

- pointwise: a 1-5 score per response; the win rate against the reference response is the share of items
  whose score is >= the reference's (ties are wins), the strict win rate the share with >.
- pairwise (option): response vs reference in both orders (A/B swapped) to cancel position bias; per item the
  mean over the two orders of 1 (response preferred), 0.5 (tie) or 0 (reference preferred).

A reply that does not parse is asked again once with a format reminder; if it still does not parse it is
counted as unparsed and left out of the rates (never given a score).
"""
from __future__ import annotations

import logging
import os
import re

from ..config import EvalArgs, ModelArgs
from ..inference import Sampling
from ..io import MipoError
from ..seeds import derive
from ..tasks.base import Item

log = logging.getLogger("mipo")

POINTWISE = """You are judging how well an AI assistant's response addresses a user's stated preferences.

[The user's stated preferences and background]
{context}

[The user's request]
{prompt}

[The assistant's response]
{response}

Rate how well the response addresses the user's stated preferences while answering the request, from 1 to 5:
1 = ignores or contradicts them; 2 = barely reflects them; 3 = partly reflects them; 4 = mostly reflects them;
5 = fully tailored to them. Give a one-sentence reason, then end with a line of the form "Score: N"."""

PAIRWISE = """You are comparing two AI assistant responses by how well they address a user's stated preferences.

[The user's stated preferences and background]
{context}

[The user's request]
{prompt}

[Response A]
{a}

[Response B]
{b}

Which response better addresses the user's stated preferences while answering the request? Give a one-sentence
reason, then end with a line of the form "Winner: A", "Winner: B" or "Winner: tie"."""

# The authors' per-preference judge (eval_scripts/prism.py, ca.py, mb.py), word for word: a system turn, then one
# user turn per stated preference; sampled at T 0.1, top_p 0.9; the first integer of the reply is the score.
RUBRIC = ("You are a helpful assistant, that evaluates another assistant's response based on how well the response is "
          "personalized to this user based on their stated preference. Give a score between 1 and 5, 1 if the "
          "response is general, and 5 if the response sufficiently addresses the user's preference. Only respond with "
          "a number between 1 and 5 and do not provide an explanation.")
PREFERENCE = "User: {prompt}\n\nAssistant: {response}\n\nUser's preference: {preference}"

REMINDER = {"score": '\n\nImportant: your reply must end with a line "Score: N" where N is 1, 2, 3, 4 or 5.',
            "winner": '\n\nImportant: your reply must end with a line "Winner: A", "Winner: B" or "Winner: tie".'}


def parse_score(text: str) -> int | None:
    """The N of the last "Score: N" (N in 1-5; "**Score:** 4", "score = 4/5" accepted); None if absent."""
    found = re.findall(r"score\W{0,4}\s*[:=]?\s*\**\s*([1-5])(?:\s*/\s*5)?(?![\d.])", text, flags=re.IGNORECASE)
    return int(found[-1]) if found else None


def parse_winner(text: str) -> str | None:
    """"A", "B" or "tie" from the last "Winner: X"; None if absent."""
    found = re.findall(r"winner\W{0,4}\s*[:=]?\s*\**\s*(tie|A|B)\b", text, flags=re.IGNORECASE)
    if not found:
        return None
    w = found[-1]
    return "tie" if w.lower() == "tie" else w.upper()


def check_config(e: EvalArgs) -> None:
    """Fail before any generation or training when the judge settings cannot work."""
    if e.judge == "none":
        return
    if e.judge not in ("local", "openai"):
        raise MipoError(f"evaluate.judge: expected none, local or openai, got '{e.judge}'")
    if not e.judge_model:
        raise MipoError("evaluate.judge_model: required when evaluate.judge is set")
    if e.judge == "openai" and not os.environ.get(e.judge_api_key_env) and not e.judge_base_url:
        raise MipoError(f"evaluate.judge_api_key_env: environment variable {e.judge_api_key_env} is not set")


class Judge:
    def __init__(self, e: EvalArgs, seed: int = 0, device: str = "auto"):
        check_config(e)
        if e.judge == "none":
            raise MipoError("evaluate.judge: none (no judge configured)")
        self.e, self.seed, self.calls = e, seed, 0
        if e.judge == "local":
            from .. import models
            from ..inference.hf import HFEngine

            self.engine = HFEngine(*models.load(ModelArgs(name=e.judge_model, device=device)))
        else:
            from ..inference.openai import OpenAIEngine

            self.engine = OpenAIEngine(e.judge_base_url, api_model=e.judge_model, api_key_env=e.judge_api_key_env,
                                       max_concurrency=8, setting="evaluate.judge_base_url")

    def complete(self, prompts: list[str], attempt: int = 0) -> list[str]:
        self.calls += len(prompts)
        return self.engine.sample([[{"role": "user", "content": p}] for p in prompts],
                                  Sampling(0.0, 1.0, self.e.judge_max_new_tokens), seed=derive(self.seed, "judge", attempt),
                                  batch_size=self.e.batch_size, desc=f"judge{' retry' if attempt else ''}")

    def _ask(self, prompts: list[str], parse, kind: str) -> list[dict]:
        """Ask, parse, re-ask the unparsed once with a format reminder; [{'value', 'raw', 'retried'}]."""
        raw = self.complete(prompts)
        out = [{"value": parse(r), "raw": r, "retried": False} for r in raw]
        again = [i for i, o in enumerate(out) if o["value"] is None]
        if again:
            for i, r in zip(again, self.complete([prompts[i] + REMINDER[kind] for i in again], attempt=1)):
                out[i] = {"value": parse(r), "raw": r, "retried": True}
            left = sum(out[i]["value"] is None for i in again)
            log.info("judge: %d of %d replies unparsable, retried; %d still unparsable (counted, not scored)",
                     len(again), len(prompts), left)
        return out

    def pointwise(self, items: list[Item], responses: list[str]) -> list[dict]:
        prompts = [POINTWISE.format(context=it.context or "(none stated)", prompt=it.prompt, response=r)
                   for it, r in zip(items, responses)]
        return self._ask(prompts, parse_score, "score")

    def per_preference(self, items: list[Item], responses: list[str], preferences: list[list[str]],
                       unparsed: str) -> list[dict]:
        """One score per stated preference, averaged per item. An unparsed reply (no integer) is dropped from the
        mean (`unparsed` "drop", the authors' PRISM; no score left = None) or scored 0 ("zero": their CA and MB)."""
        asks = [(i, p) for i, prefs in enumerate(preferences) for p in prefs]
        self.calls += len(asks)
        raw = self.engine.sample(
            [[{"role": "system", "content": RUBRIC}, {"role": "user", "content": PREFERENCE.format(
                prompt=items[i].prompt, response=responses[i], preference=p)}] for i, p in asks],
            Sampling(0.1, 0.9, self.e.judge_max_new_tokens), seed=derive(self.seed, "judge"),
            batch_size=self.e.batch_size, desc="judge per preference") if asks else []
        per: list[list] = [[] for _ in items]
        for (i, _), r in zip(asks, raw):
            m = re.search(r"\d+", r)
            per[i].append((int(m.group()) if m else None, r))
        out = []
        for got in per:
            scores = [v if v is not None else 0 for v, _ in got if v is not None or unparsed == "zero"]
            out.append({"value": sum(scores) / len(scores) if scores else None, "raw": [r for _, r in got],
                        "unparsed": sum(v is None for v, _ in got), "retried": False})
        return out

    def pairwise(self, items: list[Item], responses: list[str], references: list[str]) -> list[dict]:
        """Both orders per item; value = mean preference for `responses` over `references` (None if no order parsed)."""
        n = len(items)
        prompts = [PAIRWISE.format(context=it.context or "(none stated)", prompt=it.prompt, a=r, b=ref)
                   for it, r, ref in zip(items, responses, references)]
        prompts += [PAIRWISE.format(context=it.context or "(none stated)", prompt=it.prompt, a=ref, b=r)
                    for it, r, ref in zip(items, responses, references)]
        got = self._ask(prompts, parse_winner, "winner")
        out = []
        for i in range(n):
            first, second = got[i]["value"], got[n + i]["value"]  # response is A in the first order, B in the second
            votes = [{"A": 1.0, "tie": 0.5, "B": 0.0}[first]] if first else []
            votes += [{"B": 1.0, "tie": 0.5, "A": 0.0}[second]] if second else []
            out.append({"value": sum(votes) / len(votes) if votes else None,
                        "orders": [first, second], "raw": [got[i]["raw"], got[n + i]["raw"]]})
        return out
