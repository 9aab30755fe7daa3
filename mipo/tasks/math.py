"""Math word problems (GSM8K, SVAMP). Negative: the response written for a random other problem."""
from __future__ import annotations

import re

from ..io import MipoError, require_text
from .base import Item, Messages, Task, register

SYSTEM = "Solve the math problem step by step. Give the final answer as a number after '####'."
_NUM = r"-?\d[\d,]*(?:\.\d+)?"


def extract_answer(text: str) -> str | None:
    """The number after the last `####`, else the last number in the text; None if there is none."""
    tail = text.rsplit("####", 1)
    if len(tail) == 2:
        m = re.search(_NUM, tail[1])
        if m:
            return _norm(m.group())
    nums = re.findall(_NUM, text)
    return _norm(nums[-1]) if nums else None


def _norm(num: str) -> str:
    num = num.replace(",", "").rstrip(".")
    try:
        value = float(num)
    except ValueError:
        return num
    return str(int(value)) if value.is_integer() else repr(value)


class MathTask(Task):
    default_negative = "random_prompt"
    negatives = ("random_prompt",)
    primary_metric = "accuracy"

    def messages(self, item: Item, with_context: bool = True) -> Messages:
        return [{"role": "system", "content": SYSTEM}, {"role": "user", "content": item.prompt}]

    def score(self, items, responses, base_scorer):
        out = []
        for it, resp in zip(items, responses):
            pred = extract_answer(resp)
            out.append({"accuracy": float(pred is not None and pred == it.answer), "parsed": float(pred is not None)})
        return out


@register
class GSM8K(MathTask):
    name = "gsm8k"
    hub_id, hub_config = "openai/gsm8k", "main"

    def parse(self, row, where):
        question, solution = require_text(row, "question", where), require_text(row, "answer", where)
        if "####" not in solution:
            raise MipoError(f"{where}: field 'answer' has no '#### <number>' final answer")
        answer = extract_answer(solution)
        if answer is None:
            raise MipoError(f"{where}: field 'answer' has no number after '####'")
        return Item(id=str(row.get("id") or where.rsplit("/", 1)[-1]), prompt=question, answer=answer)


@register
class SVAMP(MathTask):
    name = "svamp"
    hub_id = "ChilleD/SVAMP"

    def parse(self, row, where):
        body, question = require_text(row, "Body", where), require_text(row, "Question", where)
        answer = row.get("Answer")
        if not isinstance(answer, (int, float)) or isinstance(answer, bool):
            raise MipoError(f"{where}: field 'Answer' is missing or not a number")
        return Item(id=require_text(row, "ID", where), prompt=f"{body.strip()} {question.strip()}",
                    answer=_norm(str(answer)))
