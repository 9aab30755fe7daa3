import json

import pytest

from mipo.config import TaskArgs
from mipo.io import MipoError
from mipo.tasks import get_task
from mipo.tasks.math import extract_answer
from mipo.tasks.personalization import DATA

from .conftest import FIXTURES


def test_builtin_personalization_set():
    rows = [json.loads(line) for line in DATA.read_text().splitlines()]
    assert len(rows) >= 600
    task = get_task("personalization")
    train, test = task.load(TaskArgs(), "train"), task.load(TaskArgs(), "test")
    assert len(train) + len(test) == len(rows) and len(test) >= 10
    assert not {i.id for i in train} & {i.id for i in test}
    full, bare = task.messages(train[0]), task.messages(train[0], with_context=False)
    assert train[0].context in full[-1]["content"] and train[0].prompt in full[-1]["content"]
    assert bare == [{"role": "user", "content": train[0].prompt}]
    assert train[0].meta["avoid"] and train[0].meta["expect"] and train[0].meta["category"]


def test_personalization_scores_adherence_and_its_fields_are_checked(tmp_path):
    task = get_task("personalization")
    items = task.load(TaskArgs(), "test")[:2]
    it = items[0]
    ok = f"Here is an idea: {it.meta['expect'][0]}."
    bad = f"Try some {it.meta['avoid'][0]}."
    rows = task.score([it, it], [ok, bad], lambda prompts, responses: [0.0] * len(prompts))
    assert (rows[0]["violation"], rows[0]["cue"]) == (0.0, 1.0) and (rows[1]["violation"], rows[1]["cue"]) == (1.0, 0.0)
    # repeating the context back is no tailored cue
    assert task.score([it], [it.context], lambda p, r: [0.0] * len(p))[0]["cue"] in (0.0, None)
    bad_row = tmp_path / "p.jsonl"
    bad_row.write_text(json.dumps({"id": "x", "context": "c", "request": "r", "avoid": "nuts", "split": "train"}) + "\n")
    with pytest.raises(MipoError, match=r"p.jsonl:1: field 'avoid' must be a list of non-empty strings"):
        task.load(TaskArgs(data=str(bad_row)), "train")


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
    with pytest.raises(MipoError, match=r"no file for split 'test' .*splits here: train \(choose with "
                                         r"--task.train_split / --task.eval_split\)"):
        get_task("gsm8k").load(args, "test")


def test_directory_in_hub_layout_with_subset_and_shards(tmp_path):
    """`huggingface-cli download` layout: <subset>/<split>-0000i-of-0000n.<ext>, shards read in order."""
    rows = (FIXTURES / "gsm8k.jsonl").read_text().splitlines()
    (tmp_path / "main").mkdir()
    (tmp_path / "main" / "test-00000-of-00002.jsonl").write_text("\n".join(rows[:3]) + "\n")
    (tmp_path / "main" / "test-00001-of-00002.jsonl").write_text("\n".join(rows[3:5]) + "\n")
    args = TaskArgs(name="gsm8k", data=str(tmp_path), subset="main")
    items = get_task("gsm8k").load(args, "test")
    assert [it.prompt for it in items] == [json.loads(r)["question"] for r in rows[:5]]
    assert items[0].id == "test-00000-of-00002.jsonl:1" and items[3].id == "test-00001-of-00002.jsonl:1"
    with pytest.raises(MipoError, match=r"task.subset 'other' has no sub-directory here \(sub-directories: main\)"):
        get_task("gsm8k").load(TaskArgs(name="gsm8k", data=str(tmp_path), subset="other"), "test")
    with pytest.raises(MipoError, match=r"task.subset 'main' names a Hub config or a sub-directory"):
        get_task("gsm8k").load(TaskArgs(name="gsm8k", data=str(FIXTURES / "gsm8k.jsonl"), subset="main"), "test")


def test_ids_of_id_less_rows_do_not_hold_the_directory(tmp_path):
    """MMLU rows have no id: theirs is `file:line`, the same wherever the data lies."""
    for d in (tmp_path / "a", tmp_path / "b" / "c"):
        d.mkdir(parents=True)
        (d / "test.jsonl").write_text((FIXTURES / "gsm8k.jsonl").read_text())
    ids = [[it.id for it in get_task("gsm8k").load(TaskArgs(name="gsm8k", data=str(d)), "test")]
           for d in (tmp_path / "a", tmp_path / "b" / "c")]
    assert ids[0] == ids[1] and ids[0][0] == "test.jsonl:1"


def test_n_eval_is_the_pandas_draw_with_the_seed():
    """n_eval items are the rows `df.sample(n, random_state=eval_seed)` picks, in its order (the paper's draws:
    GSM8K 200, ARC 500 with 42); `eval_draw first` keeps file order; n_train always takes the first rows."""
    pd = pytest.importorskip("pandas")
    args = TaskArgs(name="personalization", n_eval=40, n_train=5)
    task = get_task("personalization")
    every = task.load(TaskArgs(name="personalization"), "test")
    drawn = task.load(args, "test")
    expect = pd.DataFrame({"i": range(len(every))}).sample(40, random_state=42)["i"].tolist()
    assert [it.id for it in drawn] == [every[i].id for i in expect]
    assert task.drawn["test"] == f"40 of {len(every)} items of split 'test', a random draw (task.eval_seed 42)"
    assert [it.id for it in task.load(TaskArgs(name="personalization", n_eval=40, eval_seed=7), "test")] != \
        [it.id for it in drawn]
    first = task.load(TaskArgs(name="personalization", n_eval=40, eval_draw="first"), "test")
    assert [it.id for it in first] == [it.id for it in every[:40]]
    train = task.load(args, "train")
    assert task.drawn["train"] == "5 of 532 items of split 'train', the first in file order"
    assert [it.id for it in train] == [it.id for it in task.load(TaskArgs(name="personalization"), "train")[:5]]


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


def test_gsm8k_fewshot_is_eight_cot_turns_ending_in_answers():
    from mipo.tasks.math import FEWSHOT

    task = get_task("gsm8k", TaskArgs(name="gsm8k", fewshot=8))
    item = task.load(TaskArgs(name="gsm8k", data=str(FIXTURES / "gsm8k.jsonl"), fewshot=8), "train")[0]
    msgs = task.messages(item)
    assert len(msgs) == 1 + 16 + 1 and msgs[0]["role"] == "system" and msgs[-1]["content"] == item.prompt
    assert [m["role"] for m in msgs[1:-1]] == ["user", "assistant"] * 8
    # each exemplar's worked answer ends "#### N" with the right N (Wei et al. 2022's answers)
    assert [extract_answer(a) for _, a in FEWSHOT] == ["6", "5", "39", "8", "9", "29", "33", "8"]
    assert all(a.rsplit("\n", 1)[-1].startswith("#### ") for _, a in FEWSHOT)
    task.args.fewshot = 0
    assert len(task.messages(item)) == 2
    task.args.fewshot = 9
    with pytest.raises(MipoError, match="task.fewshot: must be between 0 and 8"):
        task.messages(item)


@pytest.mark.parametrize("fmt", ["parquet", "csv"])
def test_parquet_and_csv_files_in_hub_layout(tmp_path, fmt):
    from datasets import Dataset

    rows = [json.loads(line) for line in (FIXTURES / "svamp.jsonl").read_text().splitlines()]
    path = tmp_path / f"svamp.{fmt}"
    getattr(Dataset.from_list(rows), f"to_{fmt}")(str(path))
    args = TaskArgs(name="svamp", data=str(path))
    task = get_task("svamp")
    train, test = task.load(args, "train"), task.load(args, "test")
    assert [it.id for it in train + test] == [r["ID"] for r in rows]
    assert train[0].answer == "13"  # the CSV cell "13.0" is read as the number
    # a directory of <split>.<fmt> files works too, and a bad row names file, row and field
    (tmp_path / "d").mkdir()
    rows[1]["Question"] = ""
    getattr(Dataset.from_list(rows), f"to_{fmt}")(str(tmp_path / "d" / f"train.{fmt}"))
    where = "train.csv:3" if fmt == "csv" else "train.parquet:row 2"
    with pytest.raises(MipoError, match=rf"{where}: field 'Question' is missing or empty"):
        task.load(TaskArgs(name="svamp", data=str(tmp_path / "d")), "train")


def test_prism_joins_survey_and_conversations():
    task = get_task("prism")
    args = TaskArgs(name="prism", data=str(FIXTURES / "prism"))
    items = task.load(args, "train") + task.load(args, "test")
    convs = [json.loads(line) for line in (FIXTURES / "prism" / "conversations.jsonl").read_text().splitlines()]
    survey = {json.loads(line)["user_id"]: json.loads(line)
              for line in (FIXTURES / "prism" / "survey.jsonl").read_text().splitlines()}
    assert [it.id for it in items] == [c["conversation_id"] for c in convs]
    for it, c in zip(items, convs):
        s = survey[c["user_id"]]
        assert it.prompt == c["opening_prompt"] and s["system_string"] in it.context
        assert ("What matters to me" in it.context) == bool(s["self_description"])  # empty answers left out
        assert s["self_description"] in it.context
        chosen = [t for t in c["conversation_history"] if t["role"] == "model" and t["if_chosen"]]
        assert it.reference == chosen[0]["content"]
    assert task.messages(items[0])[0]["content"].startswith("About me: What matters to me:")


def test_prism_unknown_user_names_file_row_and_field(tmp_path):
    (tmp_path / "survey.jsonl").write_text((FIXTURES / "prism" / "survey.jsonl").read_text())
    (tmp_path / "conversations.jsonl").write_text(
        json.dumps({"conversation_id": "x", "user_id": "ghost", "opening_prompt": "Hi"}) + "\n")
    with pytest.raises(MipoError, match=r"conversations.jsonl:1: field 'user_id' is 'ghost', which has no row in"):
        get_task("prism").load(TaskArgs(name="prism", data=str(tmp_path)), "test")


def test_community_alignment_profile_and_preferred_response():
    task = get_task("community_alignment")
    args = TaskArgs(name="community_alignment", data=str(FIXTURES / "community_alignment.jsonl"))
    items = task.load(args, "train")
    rows = [json.loads(line) for line in (FIXTURES / "community_alignment.jsonl").read_text().splitlines()]
    for it, r in zip(items, rows):
        assert it.prompt == r["first_turn_prompt"]
        assert it.reference == r["first_turn_" + r["first_turn_preferred_response"]]
        assert r["annotator_country"] in it.context and r["annotator_age"] in it.context
    assert items[1].reference.startswith("Idli")  # response_c


def test_multifaceted_keeps_the_system_message():
    task = get_task("multifaceted")
    items = task.load(TaskArgs(name="multifaceted", data=str(FIXTURES / "multifaceted.jsonl")), "train")
    row = json.loads((FIXTURES / "multifaceted.jsonl").read_text().splitlines()[0])
    assert task.messages(items[0]) == [{"role": "system", "content": row["system"]},
                                       {"role": "user", "content": row["prompt"]}]
    assert task.messages(items[0], with_context=False) == [{"role": "user", "content": row["prompt"]}]
    assert items[0].reference == row["reference_answer"]


def test_generic_columns_from_config():
    args = TaskArgs(name="generic", data=str(FIXTURES / "prompts.jsonl"), prompt_field="instruction",
                    context_field="persona", id_field="uid", reference_field="gold")
    task = get_task("generic", args)
    items = task.load(args, "train") + task.load(args, "test")
    assert [it.id for it in items] == ["g1", "g2", "g3", "g4", "g5", "g6"]
    assert items[3].context is None and items[0].context.startswith("I have two toddlers")
    assert task.primary_metric == "cond_mi" and task.default_negative == "drop_context"
    bare = TaskArgs(name="generic", data=str(FIXTURES / "prompts.jsonl"), prompt_field="instruction")
    task = get_task("generic", bare)
    assert task.load(bare, "train")[0].context is None
    assert task.primary_metric == "infonce_mi" and task.default_negative == "random_prompt"
    wrong = TaskArgs(name="generic", data=str(FIXTURES / "prompts.jsonl"), prompt_field="question")
    with pytest.raises(MipoError, match=r"prompts.jsonl:1: field 'question' is missing or empty"):
        get_task("generic", wrong).load(wrong, "train")
