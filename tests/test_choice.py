import json

import pytest

from mipo.config import TaskArgs
from mipo.io import MipoError
from mipo.tasks import get_task
from mipo.tasks.choice import extract_choice

from .conftest import FIXTURES

ABCD = ["A", "B", "C", "D"]


@pytest.mark.parametrize("text,labels,expected", [
    ("The answer is: C", ABCD, "C"),
    ("Days get shorter, so the answer is (C).", ABCD, "C"),
    ("I first thought the answer is A, but rotation... The answer is: B", ABCD, "B"),  # the LAST marker counts
    ("THE ANSWER IS: d", ABCD, None),  # labels are case-sensitive: "d"/"a" are words, not choices
    ("The answer is a balance, option A.", ABCD, "A"),  # "a" the article is skipped, A is the first label
    ("The answer is: ARC style, so D", ABCD, "D"),  # the A inside "ARC" is not standalone
    ("Clearly C is right.", ABCD, None),  # no "the answer is": unparsed
    ("The answer is: 3", ["1", "2", "3", "4"], "3"),
    ("The answer is: 13", ["1", "2", "3", "4"], None),  # "1" inside "13" is not standalone
    ("The answer is: E", ["A", "B", "C", "D", "E"], "E"),
    ("The answer is: E", ["A", "B", "C"], None),  # not a label of this question
])
def test_extract_choice(text, labels, expected):
    assert extract_choice(text, labels) == expected


def test_arc_layout_digit_labels_and_odd_choice_counts():
    task = get_task("arc_challenge")
    args = TaskArgs(name="arc_challenge", data=str(FIXTURES / "arc.jsonl"))
    items = task.load(args, "train") + task.load(args, "test")
    rows = [json.loads(line) for line in (FIXTURES / "arc.jsonl").read_text().splitlines()]
    assert [it.id for it in items] == [r["id"] for r in rows]
    by_id = {it.id: it for it in items}
    digit = by_id["NYSEDREGENTS_2015_8_22"]
    assert digit.meta["labels"] == ["1", "2", "3", "4"] and digit.answer == "1" and "\n1. balance" in digit.prompt
    assert len(by_id["Mercury_7234020"].meta["labels"]) == 3 and len(by_id["ACTAAP_2014_7_6"].meta["labels"]) == 5
    msg = task.messages(digit)[-1]["content"]
    assert 'The answer is: X' in msg and digit.prompt in msg
    scores = task.score([digit, digit, digit], ["The answer is: 1", "The answer is: 2", "balance"], None)
    assert scores == [{"accuracy": 1.0, "parsed": 1.0, "_prediction": "1"},
                      {"accuracy": 0.0, "parsed": 1.0, "_prediction": "2"},
                      {"accuracy": 0.0, "parsed": 0.0, "_prediction": None}]  # unparsed = wrong, and counted


def test_arc_bad_answer_key_names_row_and_field(tmp_path):
    f = tmp_path / "arc.jsonl"
    f.write_text(json.dumps({"id": "q1", "question": "Which?", "choices": {"text": ["x", "y"], "label": ["A", "B"]},
                             "answerKey": "3", "split": "train"}) + "\n")
    with pytest.raises(MipoError, match=r"arc.jsonl:1: field 'answerKey' is '3', not one of the labels"):
        get_task("arc_easy").load(TaskArgs(name="arc_easy", data=str(f)), "train")


def test_mmlu_per_subject_macro_and_micro():
    task = get_task("mmlu")
    args = TaskArgs(name="mmlu", data=str(FIXTURES / "mmlu.jsonl"))
    items = task.load(args, "train")
    assert items[0].answer == "B" and items[0].meta["subject"] == "abstract_algebra"
    # correct on every abstract_algebra item, wrong elsewhere
    responses = [f"The answer is: {it.answer}" if it.meta["subject"] == "abstract_algebra" else "The answer is: Z"
                 for it in items]
    per_item = task.score(items, responses, None)
    summary = task.summarize(items, per_item)
    subjects = summary["by_subject"]
    assert subjects["abstract_algebra"] == {"accuracy": 1.0, "n": 2}
    assert all(v["accuracy"] == 0.0 for k, v in subjects.items() if k != "abstract_algebra")
    assert summary["macro_accuracy"] == pytest.approx(1 / len(subjects))
    assert sum(d["accuracy"] for d in per_item) / len(per_item) == pytest.approx(2 / len(items))  # micro
