"""Math word problems (GSM8K, SVAMP). Negative: the response written for a random other problem."""
from __future__ import annotations

import re

from ..io import MipoError, require_id, require_text
from .base import Item, Messages, Task, register, row_id

SYSTEM = "Solve the math problem step by step. Give the final answer as a number after '####'."

# The 8 GSM8K chain-of-thought exemplars of Wei et al. (2022, "Chain-of-thought prompting elicits reasoning"),
# with "The answer is N." rewritten as "#### N" so that they teach the output format the scorer reads.
FEWSHOT = [
    ("There are 15 trees in the grove. Grove workers will plant trees in the grove today. After they are done, "
     "there will be 21 trees. How many trees did the grove workers plant today?",
     "There are 15 trees originally. Then there were 21 trees after some more were planted. So there must have "
     "been 21 - 15 = 6.\n#### 6"),
    ("If there are 3 cars in the parking lot and 2 more cars arrive, how many cars are in the parking lot?",
     "There are originally 3 cars. 2 more cars arrive. 3 + 2 = 5.\n#### 5"),
    ("Leah had 32 chocolates and her sister had 42. If they ate 35, how many pieces do they have left in total?",
     "Originally, Leah had 32 chocolates. Her sister had 42. So in total they had 32 + 42 = 74. After eating 35, "
     "they had 74 - 35 = 39.\n#### 39"),
    ("Jason had 20 lollipops. He gave Denny some lollipops. Now Jason has 12 lollipops. How many lollipops did "
     "Jason give to Denny?",
     "Jason started with 20 lollipops. Then he had 12 after giving some to Denny. So he gave Denny 20 - 12 = 8."
     "\n#### 8"),
    ("Shawn has five toys. For Christmas, he got two toys each from his mom and dad. How many toys does he have "
     "now?",
     "Shawn started with 5 toys. If he got 2 toys each from his mom and dad, then that is 4 more toys. "
     "5 + 4 = 9.\n#### 9"),
    ("There were nine computers in the server room. Five more computers were installed each day, from monday to "
     "thursday. How many computers are now in the server room?",
     "There were originally 9 computers. For each of 4 days, 5 more computers were added. So 5 * 4 = 20 "
     "computers were added. 9 + 20 is 29.\n#### 29"),
    ("Michael had 58 golf balls. On tuesday, he lost 23 golf balls. On wednesday, he lost 2 more. How many golf "
     "balls did he have at the end of wednesday?",
     "Michael started with 58 golf balls. After losing 23 on tuesday, he had 58 - 23 = 35. After losing 2 more, "
     "he had 35 - 2 = 33 golf balls.\n#### 33"),
    ("Olivia has $23. She bought five bagels for $3 each. How much money does she have left?",
     "Olivia had 23 dollars. 5 bagels for 3 dollars each will be 5 x 3 = 15 dollars. So she has 23 - 15 dollars "
     "left. 23 - 15 is 8.\n#### 8"),
]
_NUM = r"-?\d[\d,]*(?:\.\d+)?"

# The authors' prompt (eval_scripts/gsm.py and svamp.py, `dataset()`): one user turn, the instruction, the same
# 8 exemplars as "Example i:" blocks whose answers end "So the answer is N." then "#### N", and "New question:".
PAPER_INSTRUCTION = ("You are a helpful math assistant. Solve the following problem step-by-step and give the final "
                     "answer after ####.")


def paper_example(i: int, question: str, answer: str) -> str:
    reasoning, short = answer.rsplit("\n#### ", 1)
    return f"Example {i + 1}:\nQuestion: {question}\nAnswer: {reasoning} So the answer is {short}.\n#### {short}"


def paper_prompt(question: str, k: int = 8) -> str:
    shots = [paper_example(i, q, a) for i, (q, a) in enumerate(FEWSHOT[:k])]
    return "\n\n".join([PAPER_INSTRUCTION, *shots, f"New question: {question}"]).strip()


def extract_answer(text: str) -> str | None:
    """The number after the last `####`, else the last number in the text; None if there is none."""
    tail = text.rsplit("####", 1)
    if len(tail) == 2:
        m = re.search(_NUM, tail[1])
        if m:
            return _norm(m.group())
    nums = re.findall(_NUM, text)
    return _norm(nums[-1]) if nums else None


def extract_answer_paper(text: str) -> str | None:
    """The authors' rule: the first number (unsigned, no commas) after the FIRST "####"; None if there is none."""
    parts = text.split("####")
    return first_number(parts[1]) if len(parts) > 1 else None


def first_number(text: str) -> str | None:
    """The first unsigned number in text as the authors read it (`\\d+\\.?\\d*`, no commas), normalised; None if none."""
    m = re.search(r"\d+\.?\d*", text)
    return _norm(m.group()) if m else None


def _norm(num: str) -> str:
    num = num.replace(",", "").rstrip(".")
    try:
        value = float(num)
    except ValueError:
        return num
    return str(int(value)) if value.is_integer() else repr(value)


# The authors' fallback (eval_scripts/gsm.py; "anythig" sic): asked of the evaluated model when the rule fails,
# sampled at T 0.1, top_p 0.9, up to 1024 tokens; the first number of its reply is the prediction.
EXTRACT_PROMPT = ("Extract the numeric answer from this reasoning, and do not include anythig else in your response "
                  "other than the number. ")
EXTRACT_SAMPLING = (0.1, 0.9, 1024)


class MathTask(Task):
    default_negative = "random_prompt"
    negatives = ("random_prompt", "drop_sentence")
    primary_metric = "accuracy"
    paper_options = ("task.prompt_style", "task.extraction", "evaluate.extract_with_model")

    def messages(self, item: Item, with_context: bool = True) -> Messages:
        k = self.args.fewshot
        if not 0 <= k <= len(FEWSHOT):
            raise MipoError(f"task.fewshot: must be between 0 and {len(FEWSHOT)}, got {k}")
        if self.args.prompt_style == "paper":
            return [{"role": "user", "content": paper_prompt(item.prompt, k)}]
        shots = [m for q, a in FEWSHOT[:k] for m in ({"role": "user", "content": q}, {"role": "assistant", "content": a})]
        return [{"role": "system", "content": SYSTEM}, *shots, {"role": "user", "content": item.prompt}]

    def extract(self, text: str) -> str | None:
        return (extract_answer_paper if self.args.extraction == "paper" else extract_answer)(text)

    def score(self, items, responses, base_scorer):
        return self.text_score(items, responses)

    def text_score(self, items, responses):
        out = []
        for it, resp in zip(items, responses):
            pred = self.extract(resp)
            out.append({"accuracy": float(pred is not None and pred == it.answer), "parsed": float(pred is not None),
                        "_prediction": pred})
        return out

    def extraction_prompts(self, responses: list[str]) -> dict[int, Messages]:
        """The fallback's requests: one per response whose answer the rule cannot read."""
        return {i: [{"role": "user", "content": EXTRACT_PROMPT + r}] for i, r in enumerate(responses)
                if self.extract(r) is None}

    def apply_extractions(self, items: list[Item], rows: list[dict], replies: dict[int, str]) -> None:
        """Re-score the items the fallback answered; `model_extracted` counts them (`parsed` stays the rule's)."""
        for i, d in enumerate(rows):
            d["model_extracted"] = float(i in replies)
            if i in replies:
                pred = first_number(replies[i])
                d.update(accuracy=float(pred is not None and pred == items[i].answer), _prediction=pred)


@register
class GSM8K(MathTask):
    name = "gsm8k"
    hub_id, hub_config = "openai/gsm8k", "main"

    def parse(self, row, where):
        question, solution = require_text(row, "question", where), require_text(row, "answer", where)
        if "####" not in solution:
            raise MipoError(f"{where}: field 'answer' has no '#### <number>' final answer")
        answer = self.extract(solution)  # paper: the gold read by the authors' rule too, as their preprocessing did
        if answer is None:
            raise MipoError(f"{where}: field 'answer' has no number after '####'")
        return Item(id=row_id(row, where), prompt=question, answer=answer)


@register
class SVAMP(MathTask):
    name = "svamp"
    hub_id = "ChilleD/SVAMP"

    def parse(self, row, where):
        body, question = require_text(row, "Body", where), require_text(row, "Question", where)
        answer = row.get("Answer")
        if isinstance(answer, str):  # CSV cells are strings
            try:
                answer = float(answer)
            except ValueError:
                pass
        if not isinstance(answer, (int, float)) or isinstance(answer, bool):
            raise MipoError(f"{where}: field 'Answer' is missing or not a number")
        return Item(id=require_id(row, "ID", where), prompt=f"{body.strip()} {question.strip()}",
                    answer=_norm(str(answer)))
