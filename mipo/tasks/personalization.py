"""Personalization: a user context (preferences, facts) plus a request. Negative: the context dropped."""
from __future__ import annotations

from pathlib import Path

from ..config import TaskArgs
from ..io import require_text
from .base import Item, Messages, Task, register

DEMO = Path(__file__).parent / "data" / "personalization_demo.jsonl"


@register
class Personalization(Task):
    name = "personalization"
    default_negative = "drop_context"
    negatives = ("drop_context", "random_prompt")
    primary_metric = "cond_mi"

    def rows(self, args: TaskArgs, split: str):
        if args.data is None:  # built-in demo set, written for this project
            args = TaskArgs(**{**vars(args), "data": str(DEMO)})
        return super().rows(args, split)

    def parse(self, row: dict, where: str) -> Item:
        return Item(id=require_text(row, "id", where), prompt=require_text(row, "request", where),
                    context=require_text(row, "context", where))

    def messages(self, item: Item, with_context: bool = True) -> Messages:
        # The context goes in the user turn (not a system prompt) so that dropping it leaves the model's own
        # default system prompt in place: the two prompts differ only by the user's stated context.
        text = f"About me: {item.context}\n\n{item.prompt}" if with_context and item.context else item.prompt
        return [{"role": "user", "content": text}]

    def score(self, items, responses, base_scorer):
        # Pointwise conditional MI under the base model: log p(y | request, context) - log p(y | request).
        # Higher = the response depends more on what the user said about themselves.
        full = base_scorer([self.messages(it) for it in items], responses)
        bare = base_scorer([self.messages(it, with_context=False) for it in items], responses)
        return [{"cond_mi": f - b, "logp_full": f, "logp_bare": b} for f, b in zip(full, bare)]
