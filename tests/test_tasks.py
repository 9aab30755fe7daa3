import json

import pytest

from mipo.config import TaskArgs
from mipo.io import MipoError
from mipo.tasks import get_task
from mipo.tasks.math import extract_answer
from mipo.tasks.personalization import DEMO

from .conftest import FIXTURES


def test_builtin_demo_set():
    rows = [json.loads(line) for line in DEMO.read_text().splitlines()]
    assert len(rows) >= 60
    task = get_task("personalization")
    train, test = task.load(TaskArgs(), "train"), task.load(TaskArgs(), "test")
    assert len(train) + len(test) == len(rows) and len(test) >= 10
    assert not {i.id for i in train} & {i.id for i in test}
    full, bare = task.messages(train[0]), task.messages(train[0], with_context=False)
    assert train[0].context in full[-1]["content"] and train[0].prompt in full[-1]["content"]
    assert bare == [{"role": "user", "content": train[0].prompt}]


def test_gsm8k_fixture_layout():
    task = get_task("gsm8k")
    items = task.load(TaskArgs(name="gsm8k", data=str(FIXTURES / "gsm8k.jsonl")), "train")
    rows = [json.loads(line) for line in (FIXTURES / "gsm8k.jsonl").read_text().splitlines()]
    assert len(items) == int(len(rows) * 0.7)
    for it, row in zip(items, rows):
        assert it.prompt == row["question"]
        assert it.answer == row["answer"].rsplit("####", 1)[1].strip().replace(",", "")
    msgs = task.messages(items[0])
    assert msgs[0]["role"] == "system" and "####" in msgs[0]["content"] and msgs[1]["content"] == items[0].prompt


def test_svamp_joins_body_and_question():
    task = get_task("svamp")
    args = TaskArgs(name="svamp", data=str(FIXTURES / "svamp.jsonl"))
    train, test = task.load(args, "train"), task.load(args, "test")
    row = json.loads((FIXTURES / "svamp.jsonl").read_text().splitlines()[0])
    assert train[0].prompt == f"{row['Body'].strip()} {row['Question'].strip()}"
    assert train[0].answer == extract_answer(str(row["Answer"]))
    assert len(train) + len(test) == 10


def test_split_directory_and_limits(tmp_path):
    (tmp_path / "train.jsonl").write_text((FIXTURES / "gsm8k.jsonl").read_text())
    args = TaskArgs(name="gsm8k", data=str(tmp_path), n_train=3)
    assert len(get_task("gsm8k").load(args, "train")) == 3
    with pytest.raises(MipoError, match=r"test.jsonl: split file not found"):
        get_task("gsm8k").load(args, "test")


@pytest.mark.parametrize("text,expected", [
    ("so 3 + 4 = 7\n#### 7", "7"),
    ("#### 1,200 dollars", "1200"),
    ("The answer is 12.50.", "12.5"),
    ("#### -3", "-3"),
    ("first 4 then 9", "9"),
    ("#### 8.0", "8"),
    ("no digits here", None),
    ("#### nothing after", None),
])
def test_extract_answer(text, expected):
    assert extract_answer(text) == expected


def test_bad_rows_name_file_line_field(tmp_path):
    f = tmp_path / "g.jsonl"
    f.write_text('{"question": "q1", "answer": "#### 1"}\n{"question": "", "answer": "#### 2"}\n' + '{"question": "q3", "answer": "#### 3"}\n')
    with pytest.raises(MipoError, match=r"g.jsonl:2: field 'question' is missing or empty"):
        get_task("gsm8k").load(TaskArgs(name="gsm8k", data=str(f), n_train=None), "train")
    f.write_text('{"question": "q1", "answer": "no final"}\n' * 3)
    with pytest.raises(MipoError, match=r"g.jsonl:1: field 'answer' has no '#### <number>'"):
        get_task("gsm8k").load(TaskArgs(name="gsm8k", data=str(f)), "train")
    p = tmp_path / "p.jsonl"
    p.write_text('{"id": "a", "request": "r", "split": "train"}\n')
    with pytest.raises(MipoError, match=r"p.jsonl:1: field 'context' is missing or empty"):
        get_task("personalization").load(TaskArgs(data=str(p)), "train")


def test_unknown_task_suggests():
    with pytest.raises(MipoError, match="unknown task 'gsm9k'.*did you mean 'gsm8k'"):
        get_task("gsm9k")
