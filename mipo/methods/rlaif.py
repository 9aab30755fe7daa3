"""rlaif: the base model judges its own samples (Self-Rewarding, Yuan et al. 2024); best vs worst form the pair.

Each prompt gets `generate.rlaif_samples` responses (sample s drawn with seed + 1000 s, so sample 0 is the very
response MIPO uses as its chosen one). The same model scores each 1-5 with an additive rubric:
- in process (engine hf): the expected score Σ d·p(d) / Σ p(d) over d = 1..5 from the model's next-token
  distribution after "Score:" (probability-weighted rubric scores, as in G-Eval). It always yields a score —
  small models rarely write the requested format (the embedded 135M model: 0 of 32 replies parsed) — and costs
  one forward pass per judgement instead of a generation;
- through a server (engine openai / vllm): the model writes a justification and "Score: N", greedy; a reply
  without a score is asked again once with a format reminder, then left unscored.
A prompt gives a pair when at least two of its samples are scored and the scores differ: chosen = the highest,
rejected = the lowest (first by sample index on ties). Both are samples of the true prompt x — the negative is a worse answer, not a less
prompt-specific one, which is what separates this baseline from MIPO.
"""
from __future__ import annotations

import logging

from ..evaluation.judge import REMINDER, parse_score
from ..inference import Sampling
from ..inference.hf import HFEngine
from ..io import MipoError
from ..seeds import derive
from .base import Method, SampleContext

log = logging.getLogger("mipo")

RUBRIC = """Review the user's request and the response below, then score the response from 1 to 5 with this \
additive rubric:
- Add 1 point if the response is relevant and gives some information related to the request.
- Add a second point if it addresses a substantial part of the request.
- Add a third point if it answers the basic elements of the request in a useful way.
- Add a fourth point if it addresses the request directly and completely and fits what the user said about \
themselves.
- Add a fifth point if it is tailored to the user and flawless, without extraneous information.

[Request]
{request}

[Response]
{response}

Give a one-sentence justification, then end with a line of the form "Score: N"."""


def request_text(messages: list[dict]) -> str:
    """The last user turn: the request with any user context (few-shot turns before it are left out)."""
    return [m["content"] for m in messages if m["role"] == "user"][-1]


def expected_scores(engine: HFEngine, prompts: list[list[dict]], batch_size: int, resume_dir=None) -> list[float]:
    """Σ d·p(d) / Σ p(d), d = 1..5, p = the model's next-token probabilities after the chat prompt + "Score:"."""
    probs = engine.option_probs(prompts, [f"Score: {d}" for d in range(1, 6)], batch_size=batch_size,
                                resume_dir=resume_dir)
    return [sum(d * p for d, p in zip(range(1, 6), row)) for row in probs]


def build_pairs(task, items, cfg, sample_fn, score_fn=None) -> tuple[list[dict], dict]:
    """`sample_fn(prompts, seed, desc, sampling=None)`; `score_fn(judge prompts) -> scores` (in process) or None
    (written scores, parsed); returns (pairs, stats)."""
    g = cfg.generate
    n = g.rlaif_samples
    prompts = [task.messages(it) for it in items]
    samples = [sample_fn(prompts, derive(cfg.seed, "sample", s), f"rlaif samples {s + 1}/{n}") for s in range(n)]
    flat = [(i, s) for s in range(n) for i in range(len(items))]
    asks = [[{"role": "user", "content": RUBRIC.format(request=request_text(prompts[i]), response=samples[s][i])}]
            for i, s in flat]
    scores, again = (score_fn(asks), []) if score_fn is not None else _written_scores(cfg, asks, sample_fn)
    by_item: dict[int, list[tuple[float, int]]] = {}
    for (i, s), v in zip(flat, scores):
        if v is not None:
            by_item.setdefault(i, []).append((v, s))
    rows, tied = [], 0
    for i, it in enumerate(items):
        scored = by_item.get(i, [])
        if len(scored) < 2:
            continue
        best = max(scored, key=lambda t: (t[0], -t[1]))
        worst = min(scored, key=lambda t: (t[0], t[1]))
        if best[0] == worst[0]:
            tied += 1
            continue
        rows.append({
            "prompt": prompts[i],
            "chosen": [{"role": "assistant", "content": samples[best[1]][i]}],
            "rejected": [{"role": "assistant", "content": samples[worst[1]][i]}],
            "negative_prompt": prompts[i],  # both responses come from x itself
            "meta": {"prompt_id": it.id, "negative_from": it.id, "strategy": "rlaif",
                     "scores": [scores[s * len(items) + i] for s in range(n)], "chosen_sample": best[1],
                     "rejected_sample": worst[1], "task": task.name, "seed": cfg.seed, "temperature": g.temperature,
                     "top_p": g.top_p, "max_new_tokens": g.max_new_tokens, "model": cfg.model.name},
        })
    stats = {"rlaif_scoring": "expected score from next-token probabilities" if score_fn else "written, parsed",
             "rlaif_judged": len(asks), "rlaif_unparsed": sum(v is None for v in scores),
             "rlaif_retried": len(again), "rlaif_tied_prompts": tied, "rlaif_prompts_without_pair": len(items) - len(rows)}
    log.info("rlaif: %d pairs from %d prompts; %d of %d self-judgements unparsable after a retry; %d prompts tied",
             len(rows), len(items), stats["rlaif_unparsed"], len(asks), tied)
    if not rows:
        raise MipoError(f"rlaif: no pair: the base model's self-scores never separate two samples of a prompt "
                        f"({stats['rlaif_unparsed']} of {len(asks)} judgements unparsable, {tied} prompts tied)")
    return rows, stats


def _written_scores(cfg, asks, sample_fn) -> tuple[list[int | None], list[int]]:
    """The model writes "Score: N" (greedy); unparsed replies are asked once more with a format reminder."""
    greedy = Sampling(0.0, 1.0, cfg.generate.rlaif_judge_tokens)

    def judge(prompts, attempt):
        return sample_fn(prompts, derive(cfg.seed, "self_judge", attempt),
                         "rlaif self-judge" + (" retry" if attempt else ""), greedy)

    scores = [parse_score(r) for r in judge(asks, 0)]
    again = [k for k, v in enumerate(scores) if v is None]
    if again:
        reminded = [[{"role": "user", "content": asks[k][0]["content"] + REMINDER["score"]}] for k in again]
        for k, r in zip(again, judge(reminded, 1)):
            scores[k] = parse_score(r)
    return scores, again


class RLAIF(Method):
    name, samples = "rlaif", "rlaif"

    def check(self, cfg, task, items) -> None:
        if cfg.generate.rlaif_samples < 2:
            raise MipoError(f"generate.rlaif_samples: rlaif needs at least 2 samples per prompt, "
                            f"got {cfg.generate.rlaif_samples}")
        return None  # both responses of a pair come from x itself: no negative strategy

    def make_samples(self, ctx: SampleContext) -> list[dict]:
        score_fn = None
        if isinstance(ctx.engine, HFEngine):  # in process: probability-weighted scores (see the module docstring)
            bs = max(1, ctx.cfg.generate.batch_size // 4)

            def score_fn(prompts):
                return expected_scores(ctx.engine, prompts, bs, ctx.resume_dir)
        rows, stats = build_pairs(ctx.task, ctx.items, ctx.cfg, ctx.sample, score_fn)
        ctx.stats.update(stats)
        return rows
