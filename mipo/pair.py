"""Contrastive pairs from the model's own samples: chosen | true prompt x, rejected | a corrupted prompt.

Both responses are stored under the true prompt x, so DPO on them raises log p(y|x) - log p(y|x') and with it
the pointwise mutual information between prompt and response (the rejected sample stands in for the marginal).
"""
from __future__ import annotations

import random

from .config import Config
from .io import MipoError
from .tasks.base import Item, Task


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
    return strategy


def build_pairs(task: Task, items: list[Item], cfg: Config, sample_fn) -> list[dict]:
    """Sample responses and pair each chosen response with its negative.

    `sample_fn(prompts, seed, desc) -> responses`. Strategies:
    - random_prompt: one generation per prompt; prompt i's negative is the response sampled for prompt
      perm[i] of a derangement, so a pair costs one generation, not two;
    - drop_context: a second generation from the same request with the user context removed.
    """
    strategy = check(task, items, cfg)
    g = cfg.generate
    rows = []
    for s in range(g.samples_per_prompt):
        seed = cfg.seed + 1000 * s
        chosen = sample_fn([task.messages(it) for it in items], seed, f"chosen {s + 1}/{g.samples_per_prompt}")
        if strategy == "random_prompt":
            perm = derangement(len(items), random.Random(seed))
            rejected, sources = [chosen[p] for p in perm], [items[p].id for p in perm]
        else:  # drop_context
            rejected = sample_fn([task.messages(it, with_context=False) for it in items], seed + 500,
                                 f"negatives {s + 1}/{g.samples_per_prompt}")
            sources = [it.id for it in items]
        for it, c, r, src in zip(items, chosen, rejected, sources):
            rows.append({
                "prompt": task.messages(it),
                "chosen": [{"role": "assistant", "content": c}],
                "rejected": [{"role": "assistant", "content": r}],
                "meta": {"prompt_id": it.id, "negative_from": src, "strategy": strategy, "sample": s,
                         "task": task.name, "seed": seed, "temperature": g.temperature, "top_p": g.top_p,
                         "max_new_tokens": g.max_new_tokens, "model": cfg.model.name},
            })
    return rows
