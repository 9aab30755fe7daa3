"""Multiple choice (ARC-Easy, ARC-Challenge, MMLU), zero-shot. Negative: the response to a random other question."""
from __future__ import annotations

import re
from collections import defaultdict
from statistics import fmean

from ..io import MipoError, require_id, require_text
from .base import Item, Messages, Task, register, row_id

INSTRUCTION = ('Answer the multiple choice question. You may reason briefly first; end your response with '
               '"The answer is: X", where X is the label of the correct choice.')
MARKER = "the answer is"
# The authors' prompt (eval_scripts/arc.py): the instruction before and after the question, choices "A: ...".
PAPER_BEFORE = ("You are a helpful assistant. The following is a multiple choice question with answer choices. Your "
                'response should show clear and concise reasoning, and you should end with "The answer is: <X>", '
                "where X is the correct letter choice.\n\n")
PAPER_AFTER = '\n\nYour response should end with "The answer is: <X>", where X is the correct letter choice.'
LETTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"


def extract_choice(text: str, labels: list[str]) -> str | None:
    """The first standalone choice label after the LAST "the answer is" (case-insensitive); None if none.

    Labels match case-sensitively and only as whole tokens, so the article "a" or the "A" inside "ARC" never
    count as choice A.
    """
    at = text.lower().rfind(MARKER)
    if at < 0:
        return None
    alts = "|".join(re.escape(label) for label in sorted(labels, key=len, reverse=True))
    m = re.search(rf"(?<![A-Za-z0-9])({alts})(?![A-Za-z0-9])", text[at + len(MARKER):])
    return m.group(1) if m else None


def extract_choice_paper(text: str) -> str | None:
    """The authors' rule: the first standalone A, B, C or D after the FIRST "the answer is"; None if none."""
    parts = re.split(r"(?i)the answer is", text, maxsplit=1)
    m = re.search(r"\b([ABCD])\b", parts[1]) if len(parts) > 1 else None
    return m.group(1) if m else None


def paper_question(question: str, texts: list[str]) -> str:
    return PAPER_BEFORE + question + "\n\n" + "\n".join(f"{LETTERS[i]}: {t}" for i, t in enumerate(texts)) + PAPER_AFTER


def relabel(labels: list[str], answer: str, style: str) -> tuple[list[str], str]:
    """paper: the choices relabelled A, B, ... in order (ARC rows labelled 1-4 too), the gold key with them."""
    if style != "paper":
        return labels, answer
    letters = list(LETTERS[:len(labels)])
    return letters, letters[labels.index(answer)]


def format_question(question: str, labels: list[str], texts: list[str]) -> str:
    return question.strip() + "\n\n" + "\n".join(f"{label}. {t}" for label, t in zip(labels, texts))


class ChoiceTask(Task):
    default_negative = "random_prompt"
    negatives = ("random_prompt",)
    primary_metric = "accuracy"
    paper_options = ("task.prompt_style", "task.extraction")

    def messages(self, item: Item, with_context: bool = True) -> Messages:
        if self.args.prompt_style == "paper":
            return [{"role": "user", "content": paper_question(item.meta["question"], item.meta["texts"])}]
        return [{"role": "user", "content": f"{INSTRUCTION}\n\n{item.prompt}"}]

    def item(self, id_: str, question: str, labels: list[str], texts: list[str], answer: str, **meta) -> Item:
        labels, answer = relabel(labels, answer, self.args.prompt_style)
        return Item(id=id_, prompt=format_question(question, labels, texts), answer=answer,
                    meta={"labels": labels, "question": question, "texts": texts, **meta})

    def loglik_request(self, it: Item) -> tuple[str, list[str]]:
        """lm-evaluation-harness' ARC context and continuations: "Question: q\nAnswer:" / each choice's text."""
        return f"Question: {it.meta['question'].strip()}\nAnswer:", it.meta["texts"]

    def loglik_requests(self, items: list[Item]) -> dict[str, tuple[list, list[str]]]:
        """Every (context, choice) pair to score under the evaluated model, per way of scoring, choices of an item
        in label order:
        - chat: the context as the user turn, the choice as the assistant's whole reply (end of turn included), as
          a chat model reads them;
        - raw: lm-evaluation-harness' request on raw text, the context then " " + the choice (its target delimiter);
        - unconditional: the harness' acc_mutual_info denominator, the empty context then " " + the choice (the
          engine reads an empty context as the harness does: the BOS token)."""
        out: dict[str, tuple[list, list[str]]] = {"chat": ([], []), "raw": ([], []), "unconditional": ([], [])}
        for it in items:
            context, choices = self.loglik_request(it)
            for kind, ctx, conts in (("chat", [{"role": "user", "content": context}], choices),
                                     ("raw", context, [" " + c for c in choices]),
                                     ("unconditional", "", [" " + c for c in choices])):
                out[kind][0].extend([ctx] * len(conts))
                out[kind][1].extend(conts)
        return out

    def apply_logliks(self, items: list[Item], rows: list[dict], scores: dict[str, list[tuple[float, int]]]) -> None:
        """Per item, the likeliest choice is the gold one:
        - accuracy_loglik / _norm: through the chat template, by log p and by log p per byte of the choice;
        - accuracy_loglik_raw / _raw_norm: the harness' acc / acc_norm (log p per character of the choice);
        - accuracy_pmi: the harness' acc_mutual_info, log p(" c" | context) - log p(" c" | BOS) on raw text.
        Each is computed from the ways of scoring present in `scores`; the per-choice log-probs stay with the item
        (`_logliks`) for the reports' analyses."""
        at = 0
        for it, d in zip(items, rows):
            _, choices = self.loglik_request(it)
            got = {k: [lp for lp, _ in v[at:at + len(choices)]] for k, v in scores.items()}
            at += len(choices)
            gold = it.meta["labels"].index(it.answer)

            def hit(values: list[float]) -> float:
                return float(max(range(len(values)), key=values.__getitem__) == gold)

            if "chat" in got:
                d["accuracy_loglik"] = hit(got["chat"])
                d["accuracy_loglik_norm"] = hit([lp / max(1, len(c.encode())) for lp, c in zip(got["chat"], choices)])
            if "raw" in got:
                d["accuracy_loglik_raw"] = hit(got["raw"])
                d["accuracy_loglik_raw_norm"] = hit([lp / max(1, len(c)) for lp, c in zip(got["raw"], choices)])
            if "raw" in got and "unconditional" in got:
                d["accuracy_pmi"] = hit([c - u for c, u in zip(got["raw"], got["unconditional"])])
            d["_logliks"] = {**got, "gold": gold}

    def score(self, items, responses, base_scorer):
        return self.text_score(items, responses)

    def text_score(self, items, responses):
        out = []
        for it, resp in zip(items, responses):
            pred = (extract_choice_paper(resp) if self.args.extraction == "paper"
                    else extract_choice(resp, it.meta["labels"]))
            # An answer that cannot be parsed is wrong (and counted in `parsed`), never dropped.
            out.append({"accuracy": float(pred == it.answer), "parsed": float(pred is not None), "_prediction": pred})
        return out


class ARC(ChoiceTask):
    hub_id = "allenai/ai2_arc"

    def parse(self, row, where):
        question = require_text(row, "question", where)
        choices = row.get("choices")
        if not isinstance(choices, dict) or not choices.get("text") or not choices.get("label"):
            raise MipoError(f"{where}: field 'choices' must hold non-empty 'text' and 'label' lists")
        labels, texts = [str(x) for x in choices["label"]], [str(x) for x in choices["text"]]
        if len(labels) != len(texts) or len(set(labels)) != len(labels):
            raise MipoError(f"{where}: field 'choices' has {len(texts)} texts for labels {labels}")
        key = require_id(row, "answerKey", where).strip()
        if key not in labels:  # some ARC rows use digits 1-4 for both key and labels; they must agree
            raise MipoError(f"{where}: field 'answerKey' is '{key}', not one of the labels {labels}")
        return self.item(require_id(row, "id", where), question, labels, texts, key)


@register
class ARCEasy(ARC):
    name, hub_config = "arc_easy", "ARC-Easy"


@register
class ARCChallenge(ARC):
    name, hub_config = "arc_challenge", "ARC-Challenge"


@register
class MMLU(ChoiceTask):
    name, hub_id, hub_config = "mmlu", "cais/mmlu", "all"

    def parse(self, row, where):
        question = require_text(row, "question", where)
        choices = row.get("choices")
        if not isinstance(choices, list) or not choices:
            raise MipoError(f"{where}: field 'choices' is missing or not a list")
        labels = [chr(ord("A") + i) for i in range(len(choices))]
        answer = row.get("answer")
        if isinstance(answer, str) and answer.strip().isdigit():  # CSV cells are strings
            answer = int(answer)
        if not isinstance(answer, int) or isinstance(answer, bool) or not 0 <= answer < len(choices):
            raise MipoError(f"{where}: field 'answer' must be an index 0-{len(choices) - 1}, got {answer!r}")
        return self.item(row_id(row, where), question, labels, [str(c) for c in choices], labels[answer],
                         subject=str(row.get("subject") or "unknown"))

    def loglik_request(self, it: Item) -> tuple[str, list[str]]:
        """lm-evaluation-harness' MMLU context (question, "A. ..." lines, "Answer:") and continuations: the labels."""
        lines = "\n".join(f"{label}. {t}" for label, t in zip(LETTERS, it.meta["texts"]))
        return f"{it.meta['question'].strip()}\n{lines}\nAnswer:", list(LETTERS[:len(it.meta["texts"])])

    def summarize(self, items, per_item):
        # micro accuracy = the per-item mean (the `accuracy` row); macro = mean of per-subject accuracies
        by: dict[str, list[float]] = defaultdict(list)
        for it, d in zip(items, per_item):
            by[it.meta["subject"]].append(d["accuracy"])
        subjects = {s: {"accuracy": fmean(v), "n": len(v)} for s, v in sorted(by.items())}
        return {"macro_accuracy": fmean(s["accuracy"] for s in subjects.values()), "by_subject": subjects}
