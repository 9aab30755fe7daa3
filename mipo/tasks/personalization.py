"""Personalization: a user context (preferences, self-description) plus a request. Negative: the context dropped.

Sets: the built-in demo, PRISM, Community Alignment, Multifaceted-Bench, and `generic` (any prompt set whose
columns are named in the config). Every item's `context` is what the user stated about themselves; the LLM
judge scores responses against it, and `reference` (where the set has one) is the response judged against.
"""
from __future__ import annotations

import re
from dataclasses import replace
from pathlib import Path

from ..config import TaskArgs
from ..behaviour import adherence
from ..io import MipoError, require_id, require_text
from .base import Item, Messages, Task, hub_split, read_rows, register, row_id

DATA = Path(__file__).parent / "data" / "personalization.jsonl"  # the default set: with avoid/expect, see below
DEMO = Path(__file__).parent / "data" / "personalization_demo.jsonl"  # the first, small set (72 items; bench/ uses it)
CONTEXT_NEGATIVES = ("drop_context", "other_user_context", "random_prompt", "drop_sentence")


def _text(value) -> str | None:
    """A stripped non-empty string, or None (Hub rows hold None/NaN/'' for unanswered survey fields)."""
    if value is None or (isinstance(value, float) and value != value):
        return None
    value = str(value).strip()
    return value or None


class ContextTask(Task):
    candidate_kind = "the same request under other users' contexts"
    default_negative = "drop_context"
    negatives = CONTEXT_NEGATIVES
    primary_metric = "cond_mi"

    judge_unparsed = "drop"  # evaluate.judge_mode per_preference: an unparsed score is dropped ("zero": scored 0)

    def preferences(self, item: Item) -> list[str]:
        """The stated preferences the per-preference judge scores one by one: the context's sentences (PRISM: its
        two survey answers)."""
        return [s for s in re.split(r"(?<=[.!?])\s+", (item.context or "").strip()) if s]

    def messages(self, item: Item, with_context: bool = True) -> Messages:
        # The context goes in the user turn (not a system prompt) so that dropping it leaves the model's own
        # default system prompt in place: the two prompts differ only by the user's stated context.
        text = f"About me: {item.context}\n\n{item.prompt}" if with_context and item.context else item.prompt
        return [{"role": "user", "content": text}]

    def score(self, items, responses, base_scorer):
        # Pointwise conditional MI under the base model: log p(y | request, context) - log p(y | request).
        # Higher = the response depends more on what the user said about themselves. A response that repeats the
        # context back raises it too, so items that say what the context rules out (`avoid`) and what a tailored
        # answer holds (`expect`) are also scored by plain text rules (mipo/evaluation/behaviour.py): violations,
        # tailored cues not taken from the context, and how much of the context the response repeats.
        full = base_scorer([self.messages(it) for it in items], responses)
        bare = base_scorer([self.messages(it, with_context=False) for it in items], responses)
        rows = [{"cond_mi": f - b, "logp_full": f, "logp_bare": b} for f, b in zip(full, bare)]
        for row, text in zip(rows, self.text_score(items, responses)):
            row.update(text)
        return rows

    def text_score(self, items, responses):
        if not any("avoid" in it.meta or "expect" in it.meta for it in items):
            return [{} for _ in items]
        return [adherence(r, it.context or "", it.meta.get("avoid", []), it.meta.get("expect", []))
                for it, r in zip(items, responses)]

    def candidates(self, items: list[Item], i: int, rng, k: int) -> list[Messages]:
        """InfoNCE candidates for item i: its own request under k other users' contexts (seeded draw) — prompts that
        differ from the true one only by whose context it is, so the bound measures how much the response depends
        on this user rather than on the request (random other prompts are told apart by the request alone)."""
        it = items[i]
        if it.context is None:
            return super().candidates(items, i, rng, k)
        others = sorted({o.context for o in items if o.context and o.context != it.context})
        return [self.messages(replace(it, context=c)) for c in rng.sample(others, min(k, len(others)))]


@register
class Personalization(ContextTask):
    name = "personalization"

    def rows(self, args: TaskArgs, split: str):
        if args.data is None:  # the built-in set, written for this project
            args = TaskArgs(**{**vars(args), "data": str(DATA)})
        return super().rows(args, split)

    def parse(self, row: dict, where: str) -> Item:
        meta = {k: _terms(row, k, where) for k in ("avoid", "expect") if row.get(k) is not None}
        if row.get("category") is not None:
            meta["category"] = str(row["category"])
        return Item(id=require_id(row, "id", where), prompt=require_text(row, "request", where),
                    context=require_text(row, "context", where), reference=_text(row.get("reference")), meta=meta)


def _terms(row: dict, field: str, where: str) -> list[str]:
    """A list of non-empty strings (the avoid / expect terms of a personalization row)."""
    value = row[field]
    if not isinstance(value, list) or not all(isinstance(t, str) and t.strip() for t in value):
        raise MipoError(f"{where}: field '{field}' must be a list of non-empty strings")
    return [t.strip() for t in value]


ABOUT, WANTS = "What matters to me: ", "How I want an AI assistant to behave: "


@register
class PRISM(ContextTask):
    """PRISM (Kirk et al. 2024): one item per conversation, joined to its author's survey row by `user_id`.

    context = the survey's `self_description` (values, beliefs) and `system_string` (how the user wants an AI
    to behave, in their own words); prompt = `opening_prompt`; reference = the opening-turn model response the
    user rated highest (`conversation_history` entry with turn 0, role model, if_chosen true).
    `data`: a directory with `survey.jsonl` and `conversations.jsonl`, or the Hub set (configs survey and
    conversations, one split `train`, cut 70/30 in file order).
    """
    name, hub_id = "prism", "HannahRoseKirk/prism-alignment"

    def rows(self, args: TaskArgs, split: str):
        source = args.data or self.hub_id
        path = Path(source).expanduser()
        if path.is_dir():
            survey = list(read_rows(path / "survey.jsonl"))
            convs = list(read_rows(path / "conversations.jsonl"))
            survey_where = str(path / "survey.jsonl")
        else:
            survey, convs = hub_split(source, "survey", "train"), hub_split(source, "conversations", "train")
            survey_where = f"{source}[survey]"
        users = {str(r.get("user_id")): r for _, r in survey}
        joined = []
        for where, row in convs:
            uid = require_id(row, "user_id", where)
            if uid not in users:
                raise MipoError(f"{where}: field 'user_id' is '{uid}', which has no row in {survey_where}")
            joined.append((where, {**row, "_survey": users[uid]}))
        return self.split_rows(joined, split, args)

    paper_options = ("task.prompt_style",)

    def preferences(self, item: Item) -> list[str]:
        """The user's two survey answers, read back from the context (which may be another user's: InfoNCE)."""
        return [p.strip() for p in re.split(f"{ABOUT}|{WANTS}", item.context or "") if p.strip()]

    def messages(self, item: Item, with_context: bool = True) -> Messages:
        """paper: the authors' PRISM prompt (eval_scripts/prism.py), their `instructions` (unreleased) replaced by
        the user's two survey answers; without the context, their `base_prompt`."""
        if self.args.prompt_style != "paper":
            return super().messages(item, with_context)
        wants = " ".join(self.preferences(item)) if with_context and item.context else ""
        keep = f" Please respect the following requirements made by the user: {wants}" if wants else ""
        return [{"role": "user", "content": "Give me short 2-3 sentence answers to the following prompt: "
                 f"{item.prompt.strip()}{keep} Respond with short 2-3 sentences."}]

    def parse(self, row, where):
        s = row["_survey"]
        about, wants = _text(s.get("self_description")), _text(s.get("system_string"))
        if not about and not wants:
            raise MipoError(f"{where}: the survey row of user '{row['user_id']}' has neither field "
                            f"'self_description' nor 'system_string'")
        context = " ".join(x for x in (about and f"{ABOUT}{about}", wants and f"{WANTS}{wants}") if x)
        reference = None
        for turn in row.get("conversation_history") or []:
            if turn.get("turn") == 0 and turn.get("role") == "model" and turn.get("if_chosen"):
                reference = _text(turn.get("content"))
                break
        return Item(id=require_id(row, "conversation_id", where), prompt=require_text(row, "opening_prompt", where),
                    context=context, reference=reference, meta={"user": str(row["user_id"])})


CA_PROFILE = (("annotator_age", "age"), ("annotator_gender", "gender"), ("annotator_country", "country"),
              ("annotator_education_level", "education"), ("annotator_ethnicity", "ethnicity"),
              ("annotator_political", "political leaning"))


@register
class CommunityAlignment(ContextTask):
    """Community Alignment (Meta, 2025): one item per conversation's first turn.

    context = the annotator's profile fields (`annotator_age`, `_gender`, `_country`, `_education_level`,
    `_ethnicity`, `_political`) as one sentence; prompt = `first_turn_prompt`; reference = the response named by
    `first_turn_preferred_response` (`response_a`..`response_d` -> `first_turn_response_a`..`_d`).
    One Hub split `train`, cut 70/30 in file order.
    """
    name, hub_id, hub_single_split = "community_alignment", "facebook/community-alignment-dataset", "train"
    judge_unparsed = "zero"  # the authors' ca.py

    def parse(self, row, where):
        profile = [f"{label}: {_text(row.get(k))}" for k, label in CA_PROFILE if _text(row.get(k))]
        if not profile:
            raise MipoError(f"{where}: no annotator profile field ({', '.join(k for k, _ in CA_PROFILE)}) is set")
        preferred = _text(row.get("first_turn_preferred_response"))
        reference = _text(row.get(f"first_turn_{preferred}")) if preferred else None
        return Item(id=require_id(row, "conversation_id", where), prompt=require_text(row, "first_turn_prompt", where),
                    context="; ".join(profile) + ".", reference=reference,
                    meta={"user": str(row.get("annotator_id"))})


@register
class Multifaceted(ContextTask):
    """Multifaceted-Bench (Lee et al. 2024): `system` (the user's multifaceted preferences, written as a system
    message), `prompt`, `reference_answer`. The context stays a system message, as the benchmark intends;
    dropping it leaves no system message. One Hub split `train`, cut 70/30 in file order."""
    name, hub_id, hub_single_split = "multifaceted", "kaist-ai/Multifaceted-Bench", "train"
    judge_unparsed = "zero"  # the authors' mb.py

    def parse(self, row, where):
        return Item(id=row_id(row, where), prompt=require_text(row, "prompt", where),
                    context=require_text(row, "system", where), reference=_text(row.get("reference_answer")),
                    meta={"source": str(row.get("source") or "")})

    def messages(self, item, with_context=True):
        system = [{"role": "system", "content": item.context}] if with_context and item.context else []
        return [*system, {"role": "user", "content": item.prompt}]


@register
class Generic(ContextTask):
    """Any prompt set: the columns are named by task.prompt_field / context_field / id_field / reference_field.

    With a context column it behaves like `personalization` (metric cond. MI, negative drop_context); without,
    the metric is the InfoNCE MI bound and the negative random_prompt.
    """
    name = "generic"

    @property
    def primary_metric(self):
        return "cond_mi" if self.args.context_field else "infonce_mi"

    @property
    def default_negative(self):
        return "drop_context" if self.args.context_field else "random_prompt"

    def parse(self, row, where):
        a = self.args
        context = None
        if a.context_field:
            if a.context_field not in row:
                raise MipoError(f"{where}: field '{a.context_field}' (task.context_field) is missing")
            context = _text(row.get(a.context_field))
        return Item(id=require_id(row, a.id_field, where) if a.id_field else row_id({}, where),
                    prompt=require_text(row, a.prompt_field, where), context=context,
                    reference=_text(row.get(a.reference_field)) if a.reference_field else None)

    def score(self, items, responses, base_scorer):
        if not self.args.context_field:
            return [{} for _ in items]  # the evaluator adds the InfoNCE MI per item
        return super().score(items, responses, base_scorer)
