"""Contrastive pairs from the model's own samples: chosen | true prompt x, rejected | a corrupted prompt.

Both responses are stored under the true prompt x, so DPO on them raises log p(y|x) - log p(y|x') and with it
the pointwise mutual information between prompt and response (the rejected sample stands in for the marginal).
"""
from __future__ import annotations

import logging
import random
import re
from dataclasses import replace

from .config import Config
from .io import MipoError
from .seeds import derive
from .tasks.base import Item, Task

log = logging.getLogger("mipo")


def derangement(n: int, rng: random.Random) -> list[int]:
    """A uniformly random permutation with no fixed point (rejection sampling; ~e tries on average)."""
    if n < 2:
        raise MipoError(f"random_prompt negatives need at least 2 prompts, got {n}")
    while True:
        perm = list(range(n))
        rng.shuffle(perm)
        if all(i != p for i, p in enumerate(perm)):
            return perm


def check(task: Task, items: list[Item], cfg: Config) -> str:
    """Validate the strategy for these items before any model is loaded; return the strategy name."""
    strategy = cfg.task.negative or task.default_negative
    if strategy not in task.negatives:
        raise MipoError(f"task {task.name}: unknown negative strategy '{strategy}' (choose from {', '.join(task.negatives)})")
    if strategy == "random_prompt" and len(items) < 2:
        source = items[0].where.rsplit(":", 1)[0] if items and items[0].where else f"task {task.name}"
        raise MipoError(f"{source}: random_prompt negatives need at least 2 prompts, got {len(items)}")
    if strategy != "random_prompt" and all(c is None for c in corrupt(strategy, items, cfg.seed)):
        raise MipoError(f"{strategy}: no item can be corrupted this way ({NO_PAIR[strategy]})")
    return strategy


# A sentence ends at ., ! or ? (optionally followed by a closing quote or bracket) *and then whitespace*, so
# "$3.50" or "e.g.x" do not split.
_BOUNDARY = re.compile(r"(?<=[.!?])\s+|(?<=[.!?][\"')\]])\s+")


def sentences(text: str) -> list[str]:
    return [p for p in _BOUNDARY.split(text.strip()) if p.strip()]


def drop_sentence(text: str, rng: random.Random) -> tuple[str, str] | None:
    """The text with one sentence removed, and that sentence; None when no sentence may be dropped.

    Never dropped: the last sentence and any sentence ending in "?" (the one asking the question), so the
    corrupted prompt still asks the same thing and differs only by a piece of its premises.
    """
    parts = sentences(text)
    droppable = [i for i, p in enumerate(parts[:-1]) if not p.rstrip("\"')]").endswith("?")]
    if not droppable:
        return None
    k = rng.choice(droppable)
    return " ".join(parts[:k] + parts[k + 1:]), parts[k]


NO_PAIR = {"drop_context": "no user context to drop",
           "drop_sentence": "one sentence only, or only question sentences besides the last",
           "other_user_context": "no context of its own, or no other item with a different context"}


def corrupt(strategy: str, items: list[Item], seed: int) -> list[tuple[Item, dict] | None]:
    """For strategies that need a second generation: the corrupted item for each item (None = no pair) and
    what was changed, for the pair's `meta`."""
    rng = random.Random(seed)
    out: list[tuple[Item, dict] | None] = []
    if strategy == "drop_context":
        for it in items:  # an item without context has nothing to drop: no pair
            out.append((replace(it, context=None), {"negative_from": it.id}) if it.context else None)
    elif strategy == "drop_sentence":
        for it in items:
            dropped = drop_sentence(it.prompt, rng)
            out.append(None if dropped is None else
                       (replace(it, prompt=dropped[0]), {"negative_from": it.id, "dropped_sentence": dropped[1]}))
    elif strategy == "other_user_context":
        # Another user's context with the same request; "another" = a different context text, so a user with
        # several conversations never serves as their own negative.
        for it in items:
            others = [o for o in items if o.context and o.context != it.context]
            if not it.context or not others:
                out.append(None)
                continue
            o = rng.choice(others)
            out.append((replace(it, context=o.context), {"negative_from": o.id}))
    else:
        raise AssertionError(strategy)
    return out


GUIDED = ("drop_context", "other_user_context", "drop_sentence")


def guided_negatives(task: Task, items: list[Item], cfg: Config) -> tuple[str, list]:
    """The negative prompt x' of each item for context-aware decoding (pmi-decode, pmi-distill): the task's
    strategy, which must corrupt the prompt it decodes against token by token — a random other prompt asks another
    question, so its next-token distribution says nothing about this one's. An item the strategy cannot corrupt
    is its own x' (guidance then changes nothing: plain decoding). Returns (strategy, x' messages per item)."""
    strategy = cfg.task.negative or task.default_negative
    if strategy not in GUIDED or strategy not in task.negatives:
        usable = [s for s in GUIDED if s in task.negatives]
        raise MipoError(f"{cfg.method}: task.negative '{strategy}' cannot guide decoding (it needs the same prompt "
                        f"with a piece taken out: {', '.join(usable) or f'none for task {task.name}'})")
    corrupted = corrupt(strategy, items, cfg.seed)
    return strategy, [task.messages(c[0] if c else it) for it, c in zip(items, corrupted)]


def negative_prompts(task: Task, items: list[Item], strategy: str, seed: int) -> list[tuple[Item, dict] | None]:
    """The prompt x' each item's negative comes from (None = no pair) and what was changed, for `meta`."""
    if strategy == "random_prompt":
        perm = derangement(len(items), random.Random(seed))
        return [(items[p], {"negative_from": items[p].id}) for p in perm]
    return corrupt(strategy, items, seed)


def prompt_rows(task: Task, items: list[Item], cfg: Config, strategy: str) -> list[dict]:
    """Prompt pairs (x, x') without responses, for methods that sample online (mi-grpo)."""
    return [{"prompt": task.messages(it), "negative_prompt": task.messages(neg[0]),
             "meta": {"prompt_id": it.id, **neg[1], "strategy": strategy, "task": task.name, "seed": cfg.seed}}
            for it, neg in zip(items, negative_prompts(task, items, strategy, cfg.seed)) if neg is not None]


def build_pairs(task: Task, items: list[Item], cfg: Config, strategy: str, sample_fn, round_: int = 0) -> list[dict]:
    """Sample responses and pair each chosen response with its negative (`strategy`, already checked by `check`).

    `sample_fn(prompts, seed, desc) -> responses`. Strategies (tasks declare which they support):
    - random_prompt: one generation per prompt; prompt i's negative is the response sampled for prompt
      perm[i] of a derangement, so a pair costs one generation, not two;
    - drop_context, drop_sentence, other_user_context: a second generation from the corrupted prompt x'.
    Items a strategy cannot corrupt (see NO_PAIR) give no pair; a warning says how many.
    With `generate.samples_per_prompt` = n every prompt gets n pairs (sample index s). `round_` > 0: a later
    round of mipo-iterative, drawing other samples. Each row keeps `negative_prompt`, the x' its rejected response
    was sampled from (the contrastive losses and the PMI filter score both responses under both prompts), and
    `meta` records the run seed, the sample index (and round) from which every seed used follows (mipo/seeds.py).
    """
    g = cfg.generate
    rows = []
    for s in range(g.samples_per_prompt):
        seed = derive(derive(cfg.seed, "round", round_), "sample", s)
        chosen = sample_fn([task.messages(it) for it in items], seed, f"chosen {s + 1}/{g.samples_per_prompt}")
        neg_prompts = negative_prompts(task, items, strategy, seed)
        negs = _negatives(task, items, strategy, neg_prompts, chosen, sample_fn, derive(seed, "negatives"),
                          f"negatives {s + 1}/{g.samples_per_prompt}")
        for it, c, neg, np_ in zip(items, chosen, negs, neg_prompts):
            if neg is None:
                continue
            r, how = neg
            rows.append({
                "prompt": task.messages(it),
                "chosen": [{"role": "assistant", "content": c}],
                "rejected": [{"role": "assistant", "content": r}],
                "negative_prompt": task.messages(np_[0]),
                "meta": {"prompt_id": it.id, **how, "strategy": strategy, "sample": s, **({"round": round_} if round_ else {}),
                         "task": task.name, "seed": cfg.seed, "temperature": g.temperature, "top_p": g.top_p,
                         "max_new_tokens": g.max_new_tokens, "model": cfg.model.name},
            })
    return rows


def _negatives(task, items, strategy, neg_prompts, chosen, sample_fn, seed, desc) -> list:
    """(rejected response, what was changed) per item, None where the item gives no pair."""
    if strategy == "random_prompt":  # the response already sampled for the other prompt: no second generation
        pos = {it.id: i for i, it in enumerate(items)}
        return [(chosen[pos[n[0].id]], n[1]) for n in neg_prompts]
    keep = [i for i, c in enumerate(neg_prompts) if c is not None]
    if len(keep) < len(items):
        log.warning("%s: %d of %d prompts give no pair (%s)", strategy, len(items) - len(keep), len(items),
                    NO_PAIR[strategy])
    sampled = sample_fn([task.messages(neg_prompts[i][0]) for i in keep], seed, desc)
    negs = [None] * len(items)
    for i, r in zip(keep, sampled):
        negs[i] = (r, neg_prompts[i][1])
    return negs


def pmi_margins(rows: list[dict], scorer, desc: str = "PMI margins") -> list[dict]:
    """Each pair's 2x2 log-probs under the base model and its PMI margin.

    PMI(y) = log p(y | x) - log p(y | x'), with x the true prompt and x' the prompt the negative came from;
    margin = PMI(chosen) - PMI(rejected). A margin <= 0 means the "negative" is at least as tied to the true
    prompt as the positive: the pair teaches the wrong direction (or nothing) about prompt-response MI.
    `scorer(prompts, responses) -> log-probs`.
    """
    prompts, responses = [], []
    for r in rows:
        for p in (r["prompt"], r["negative_prompt"]):
            for y in (r["chosen"][0]["content"], r["rejected"][0]["content"]):
                prompts.append(p)
                responses.append(y)
    lp = scorer(prompts, responses)
    out = []
    for k in range(len(rows)):
        cx, rx, cxn, rxn = lp[4 * k:4 * k + 4]  # (chosen|x), (rejected|x), (chosen|x'), (rejected|x')
        out.append({"logp": [[cx, cxn], [rx, rxn]], "margin": (cx - cxn) - (rx - rxn)})
    return out


def echo_share(row: dict) -> float | None:
    """The share of the content words that the true prompt x has and the corrupted prompt x' lacks (for
    drop_context: the user's context) that the chosen response repeats; None when x and x' differ by no content word.

    The contrast log p(y|x) - log p(y|x') is largest for a response that repeats what only x says, so pairs whose
    chosen response echoes x teach the model to echo, not to use what it read."""
    from .behaviour import content_words, words

    only_x = content_words(row["prompt"][-1]["content"]) - content_words(row["negative_prompt"][-1]["content"])
    if not only_x:
        return None
    said = set(words(row["chosen"][0]["content"]))
    return len(only_x & said) / len(only_x)


def diagnose(task: Task, items: list[Item], rows: list[dict]) -> dict | None:
    """What the pairs hold, from the pairs alone (no model): is there a contrast worth training on?

    Both responses are read as answers to the TRUE prompt x by the task's model-free metrics (`Task.text_score`:
    the answer parsed and right for math and multiple choice; violations, tailored cues and the share of the
    context repeated for personalization), with their lengths and the share of chosen responses that echo what
    only x says (`echo_share`). For each 0/1 metric, the pairs where only the chosen response has it and where
    only the rejected one does: DPO pushes towards the first and away from the second, so "right only in the
    chosen" is the contrast a reasoning task needs, and "violates only in the chosen" a contrast against the user.
    None for samples that are not pairs (online methods)."""
    from statistics import fmean

    from .behaviour import words

    by_id = {it.id: it for it in items}
    rows = [r for r in rows if "chosen" in r and "rejected" in r and r.get("meta", {}).get("prompt_id") in by_id]
    if not rows:
        return None
    its = [by_id[r["meta"]["prompt_id"]] for r in rows]
    sides = {s: [r[s][0]["content"] for r in rows] for s in ("chosen", "rejected")}
    scored = {s: task.text_score(its, texts) for s, texts in sides.items()}
    out: dict = {"pairs": len(rows), "identical": fmean(c == r for c, r in zip(*sides.values()))}
    for s, texts in sides.items():
        per = scored[s]
        keys = [k for k in (per[0] if per else {}) if not k.startswith("_")]
        present = {k: [d[k] for d in per if d.get(k) is not None] for k in keys}
        out[s] = {k: fmean(v) if v else None for k, v in present.items()}
        out[s]["words"] = fmean(len(words(t)) for t in texts)
    contrast = {}
    for k in out["chosen"]:
        both = [(c[k], r[k]) for c, r in zip(scored["chosen"], scored["rejected"])
                if c.get(k) in (0.0, 1.0) and r.get(k) in (0.0, 1.0)]
        if both:
            contrast[k] = {"only_chosen": sum(c > r for c, r in both), "only_rejected": sum(c < r for c, r in both),
                           "n": len(both)}
    out["contrast"] = contrast
    echo = [e for e in map(echo_share, rows) if e is not None]
    out["chosen_echo"] = fmean(echo) if echo else None
    return out
