"""Golden tests of the paper protocol (issue 15): the prompts the authors' eval scripts build, rebuilt here with
their own code (eval_scripts/gsm.py, svamp.py, arc.py in contrastive_finetune-main.zip, commit 59d1b5e of
nam630/mutual_information_preference_optimization), their answer rules, and their sampled item sets. A change to
any of them shows here."""
import string

import numpy as np
import pandas as pd
import pytest

from mipo.config import Config, TaskArgs, check_limits
from mipo.recipe import apply_overrides
from mipo.io import MipoError
from mipo.tasks import get_task
from mipo.tasks.base import Item, Task, read_rows
from mipo.tasks.choice import extract_choice, extract_choice_paper
from mipo.tasks.math import extract_answer, extract_answer_paper

from .conftest import FIXTURES

# eval_scripts/gsm.py, verbatim (svamp.py holds the same list)
FEWSHOT_SOURCES = [
    {"question": "There are 15 trees in the grove. Grove workers will plant trees in the grove today. After they are done, there will be 21 trees. How many trees did the grove workers plant today?",
     "answer": "There are 15 trees originally. Then there were 21 trees after some more were planted. So there must have been 21 - 15 = 6. So the answer is 6.",
     "short_answer": "6"},
    {"question": "If there are 3 cars in the parking lot and 2 more cars arrive, how many cars are in the parking lot?",
     "answer": "There are originally 3 cars. 2 more cars arrive. 3 + 2 = 5. So the answer is 5.",
     "short_answer": "5"},
    {"question": "Leah had 32 chocolates and her sister had 42. If they ate 35, how many pieces do they have left in total?",
     "answer": "Originally, Leah had 32 chocolates. Her sister had 42. So in total they had 32 + 42 = 74. After eating 35, they had 74 - 35 = 39. So the answer is 39.",
     "short_answer": "39"},
    {"question": "Jason had 20 lollipops. He gave Denny some lollipops. Now Jason has 12 lollipops. How many lollipops did Jason give to Denny?",
     "answer": "Jason started with 20 lollipops. Then he had 12 after giving some to Denny. So he gave Denny 20 - 12 = 8. So the answer is 8.",
     "short_answer": "8"},
    {"question": "Shawn has five toys. For Christmas, he got two toys each from his mom and dad. How many toys does he have now?",
     "answer": "Shawn started with 5 toys. If he got 2 toys each from his mom and dad, then that is 4 more toys. 5 + 4 = 9. So the answer is 9.",
     "short_answer": "9"},
    {"question": "There were nine computers in the server room. Five more computers were installed each day, from monday to thursday. How many computers are now in the server room?",
     "answer": "There were originally 9 computers. For each of 4 days, 5 more computers were added. So 5 * 4 = 20 computers were added. 9 + 20 is 29. So the answer is 29.",
     "short_answer": "29"},
    {"question": "Michael had 58 golf balls. On tuesday, he lost 23 golf balls. On wednesday, he lost 2 more. How many golf balls did he have at the end of wednesday?",
     "answer": "Michael started with 58 golf balls. After losing 23 on tuesday, he had 58 - 23 = 35. After losing 2 more, he had 35 - 2 = 33 golf balls. So the answer is 33.",
     "short_answer": "33"},
    {"question": "Olivia has $23. She bought five bagels for $3 each. How much money does she have left?",
     "answer": "Olivia had 23 dollars. 5 bagels for 3 dollars each will be 5 x 3 = 15 dollars. So she has 23 - 15 dollars left. 23 - 15 is 8. So the answer is 8.",
     "short_answer": "8"},
]


def authors_math_prompt(question: str) -> str:
    """gsm.py `dataset()` + `evaluate()`: PROMPT + "\\n\\nNew question: " + question, stripped."""
    examples = [f"Example {i+1}:\n" + f"Question: {x['question']}\nAnswer: {x['answer']}\n#### {x['short_answer']}" for i, x in enumerate(FEWSHOT_SOURCES)]
    examples = "\n\n".join(examples)
    PROMPT = "You are a helpful math assistant. Solve the following problem step-by-step and give the final answer after ####.\n\n" + examples
    return (PROMPT + "\n\nNew question: " + question).strip()


def authors_arc_prompt(question: str, choices: list[str]) -> str:
    """arc.py `evaluate()`, verbatim."""
    labels = string.ascii_uppercase
    prompt = "You are a helpful assistant. The following is a multiple choice question with answer choices. Your response should show clear and concise reasoning, and you should end with "f'"The answer is: <X>", where X is the correct letter choice.\n\n'
    prompt += question + "\n\n" + "\n".join(
                f"{labels[i]}: {choice}" for i, choice in enumerate(choices)
                )
    prompt += '\n\nYour response should end with 'f'"The answer is: <X>", where X is the correct letter choice.'
    return prompt


def load(task: str, data: str, **kw) -> tuple[Task, list[Item]]:
    args = TaskArgs(name=task, data=str(FIXTURES / data), **kw)
    t = get_task(task, args)
    return t, [t.parse(r, where) for where, r in read_rows(FIXTURES / data)]  # every row of the fixture file


@pytest.mark.parametrize("task,data", [("gsm8k", "gsm8k.jsonl"), ("svamp", "svamp.jsonl")])
def test_math_paper_prompt_is_the_authors(task, data):
    t, items = load(task, data, prompt_style="paper", fewshot=8)
    assert t.messages(items[0]) == [{"role": "user", "content": authors_math_prompt(items[0].prompt)}]


def test_math_prompts_pinned():
    t, items = load("gsm8k", "gsm8k.jsonl", prompt_style="paper", fewshot=1)
    assert t.messages(items[0])[0]["content"] == (
        "You are a helpful math assistant. Solve the following problem step-by-step and give the final answer after "
        "####.\n\nExample 1:\nQuestion: There are 15 trees in the grove. Grove workers will plant trees in the grove "
        "today. After they are done, there will be 21 trees. How many trees did the grove workers plant today?\n"
        "Answer: There are 15 trees originally. Then there were 21 trees after some more were planted. So there must "
        "have been 21 - 15 = 6. So the answer is 6.\n#### 6\n\nNew question: Mia buys 3 packs of pencils with 4 "
        "pencils in each pack. She gives 5 pencils to her brother. How many pencils does Mia have left?")
    t, items = load("svamp", "svamp.jsonl", fewshot=0)  # mipo's own style, the default
    assert t.messages(items[0]) == [
        {"role": "system", "content": "Solve the math problem step by step. Give the final answer as a number after '####'."},
        {"role": "user", "content": "Jack had 8 marbles. His friend gave him 5 more marbles. How many marbles does Jack have now?"}]


def test_choice_paper_prompt_is_the_authors_and_relabels():
    t, items = load("arc_challenge", "arc.jsonl", prompt_style="paper")
    for it in items:
        assert t.messages(it) == [{"role": "user", "content": authors_arc_prompt(it.meta["question"], it.meta["texts"])}]
        assert it.meta["labels"] == list(string.ascii_uppercase[:len(it.meta["texts"])])
    _, mipo_items = load("arc_challenge", "arc.jsonl")
    digits = [(m, p) for m, p in zip(mipo_items, items) if m.meta["labels"][0] == "1"]
    assert digits  # the fixture's rows labelled 1-4: the gold key follows the relabelling
    for m, p in digits:
        assert p.answer == "ABCD"[m.meta["labels"].index(m.answer)]
    assert t.messages(items[0])[0]["content"] == (
        'You are a helpful assistant. The following is a multiple choice question with answer choices. Your response '
        'should show clear and concise reasoning, and you should end with "The answer is: <X>", where X is the correct '
        'letter choice.\n\nAn astronomer observes that a planet rotates faster after a meteorite impact. Which is the '
        'most likely effect of this increase in rotation?\n\nA: Planetary density will decrease.\nB: Planetary years '
        'will become longer.\nC: Planetary days will become shorter.\nD: Planetary gravity will become stronger.\n\n'
        'Your response should end with "The answer is: <X>", where X is the correct letter choice.')


def test_choice_mipo_prompt_pinned():
    t, items = load("mmlu", "mmlu.jsonl")
    assert t.messages(items[0])[0]["content"] == (
        'Answer the multiple choice question. You may reason briefly first; end your response with "The answer is: '
        'X", where X is the label of the correct choice.\n\nFind all c in Z_3 such that Z_3[x]/(x^2 + c) is a field.'
        '\n\nA. 0\nB. 1\nC. 2\nD. 3')


def authors_math_rule(response: str):
    """gsm.py `evaluate()`: the first "####", then the first number, as a float; else the fallback (None here)."""
    try:
        return float(__import__("re").search(r"\d+\.?\d*", response.split("####")[1]).group())
    except Exception:
        return None


@pytest.mark.parametrize("text", [
    "So 3 + 4 = 7.\n#### 7\n#### 9", "#### -12 dollars", "#### 1,250", "The total is 18.\n#### 18.0",
    "Step 1: 4 apples. Step 2: 12 apples.", "#### $3.50 then 7", "no number at all ####"])
def test_math_paper_extraction_is_the_authors(text):
    got = extract_answer_paper(text)
    want = authors_math_rule(text)
    assert (None if got is None else float(got)) == want


def test_math_rules_differ_where_the_issue_says():
    text = "#### 12\nChecking: 3 * 4 = 12, plus 1 is 13.\n#### 13"
    assert (extract_answer(text), extract_answer_paper(text)) == ("13", "12")  # last vs first "####"
    assert (extract_answer("#### 1,250"), extract_answer_paper("#### 1,250")) == ("1250", "1")
    assert (extract_answer("it is 5 then 6"), extract_answer_paper("it is 5 then 6")) == ("6", None)


def authors_choice_rule(response: str):
    """arc.py: split once on (?i)"the answer is", the first \\b[ABCD]\\b after it (pandas str.extract)."""
    s = pd.Series([response]).astype(str).str.split(r"(?i)the answer is", n=1, expand=True)
    if s.shape[1] < 2 or s[1].isna()[0]:
        return None
    got = s[1].str.extract(r"\b([ABCD])\b", expand=False).str.upper()[0]
    return None if pd.isna(got) else got


@pytest.mark.parametrize("text", [
    "The answer is: B. Wait, the answer is C.", "the answer is (d)", "THE ANSWER IS: A", "I think C",
    "The answer is: E", "The answer is: Both A and B", "The answer is: <X>, here C"])
def test_choice_paper_extraction_is_the_authors(text):
    assert extract_choice_paper(text) == authors_choice_rule(text)


def test_choice_rules_differ_where_the_issue_says():
    text = "The answer is: B. Wait, the answer is C."
    assert (extract_choice(text, list("ABCD")), extract_choice_paper(text)) == ("C", "B")


def test_paper_scoring_uses_the_paper_rules():
    t, items = load("gsm8k", "gsm8k.jsonl", extraction="paper")
    gold = items[0].answer  # "7"
    rows = t.score(items[:1], [f"#### {gold}\nor maybe\n#### 99"], None)
    assert rows[0]["accuracy"] == 1.0 and rows[0]["_prediction"] == gold
    t, items = load("arc_challenge", "arc.jsonl", prompt_style="paper", extraction="paper")
    rows = t.score(items, [f"The answer is: {it.answer}. No, the answer is Z." for it in items], None)
    assert [r["accuracy"] for r in rows] == [float(it.answer in "ABCD") for it in items]  # E is never read, as theirs


# The authors' draws: gsm.py `f.sample(n=200, random_state=42)` of the 1319 GSM8K test rows; arc.py
# `test_df.sample(n=500, random_state=42)` of the 1172 ARC-Challenge test rows.
DRAWS = {(1319, 200): [677, 1046, 610, 49, 1284, 486, 548, 939, 78, 506],
         (1172, 500): [626, 220, 678, 930, 174, 1009, 723, 830, 58, 240]}


@pytest.mark.parametrize("n_rows,n", sorted(DRAWS))
def test_eval_draw_is_pandas_sample(n_rows, n):
    items = [Item(id=str(i), prompt=str(i)) for i in range(n_rows)]
    got = [int(it.id) for it in Task.subset(items, TaskArgs(n_eval=n, eval_draw="random", eval_seed=42), "test")[0]]
    want = pd.DataFrame({"x": range(n_rows)}).sample(n=n, random_state=42, replace=False).index.tolist()
    assert got == want and got[:10] == DRAWS[(n_rows, n)] and len(set(got)) == n
    first = [int(it.id) for it in Task.subset(items, TaskArgs(n_eval=n, eval_draw="first"), "test")[0]]
    assert first == list(range(n))  # PRISM: the authors' `f.iloc[:200]`
    assert np.array_equal(np.random.RandomState(42).permutation(n_rows)[:n], want)


@pytest.mark.parametrize("key,value", [("prompt_style", "authors"), ("extraction", "strict")])
def test_bad_protocol_values_refused(key, value):
    cfg = apply_overrides(Config(), {f"task.{key}": value}, "test")
    with pytest.raises(MipoError, match=f"task.{key}: must be one of mipo, paper"):
        check_limits(cfg)


def test_authors_optimizer_through_trl(tiny_model_dir, tmp_path):
    """openrlhf/cli/train_dpo.py: AdamW betas (0.9, 0.95), weight decay 0; cosine_with_min_lr to 0.1 x lr after
    ceil(0.03 x steps) warm-up steps; grad clip 1.0. Built by the real DPOTrainer on the tiny model."""
    import math

    from mipo import ModelArgs, models
    from mipo.train import make_dpo_trainer, pairs_dataset

    from .test_train import write_pairs

    cfg = apply_overrides(Config(seed=42), {"train": {
        "lora": False, "learning_rate": 5e-7, "adam_beta2": 0.95, "lr_scheduler": "cosine_with_min_lr",
        "min_lr_ratio": 0.1, "warmup_ratio": 0.03}}, "test")
    model, tok = models.load(ModelArgs(name=str(tiny_model_dir)))
    trainer = make_dpo_trainer(cfg, model, tok, pairs_dataset(write_pairs(tmp_path / "p.jsonl")), str(tmp_path / "o"))
    steps = 100
    trainer.create_optimizer_and_scheduler(num_training_steps=steps)
    group = trainer.optimizer.param_groups[0]
    assert tuple(group["betas"]) == (0.9, 0.95) and trainer.args.max_grad_norm == 1.0 and trainer.args.seed == 42
    assert all(g["weight_decay"] == 0.0 for g in trainer.optimizer.param_groups)
    lrs = []
    for _ in range(steps):
        lrs.append(trainer.lr_scheduler.get_last_lr()[0])
        trainer.optimizer.step()
        trainer.lr_scheduler.step()
    warm = math.ceil(steps * 0.03)  # 3 steps, as the authors' num_warmup_steps
    assert lrs[0] == 0.0 and lrs[warm] == pytest.approx(5e-7) and lrs[warm - 1] < 5e-7
    assert lrs[-1] == pytest.approx(5e-8, rel=0.01) and min(lrs[warm:]) >= 5e-8 * (1 - 1e-9)


def test_model_extraction_fallback_through_the_engine(tiny):
    """evaluate.extract_with_model: the evaluated model (here the tiny one) is asked, with the authors' words and
    sampling, about exactly the responses whose '####' rule fails; its reply's first number is the prediction."""
    import re

    from mipo.evaluation import Candidate, evaluate_models
    from mipo.inference import Sampling
    from mipo.inference.hf import HFEngine
    from mipo.seeds import derive

    model, tok = tiny
    cfg = apply_overrides(Config(seed=3), {"task": {"name": "gsm8k", "prompt_style": "paper", "extraction": "paper",
                                                    "fewshot": 1},
                                           "evaluate": {"max_new_tokens": 6, "mi_negatives": 0, "bootstrap": 0,
                                                        "extract_with_model": True, "batch_size": 4}}, "test")
    t, items = load("gsm8k", "gsm8k.jsonl", prompt_style="paper", extraction="paper", fewshot=1)
    items = items[:4]
    engine = HFEngine(model, tok)
    responses, per_item, _ = evaluate_models(cfg, t, items, engine, [Candidate("base", None, 0)])
    answers = responses["base"]
    asked = t.extraction_prompts(answers)
    assert asked and set(asked) == {i for i, a in enumerate(answers) if extract_answer_paper(a) is None}
    assert asked[min(asked)][0]["content"] == (
        "Extract the numeric answer from this reasoning, and do not include anythig else in your response other than "
        "the number. " + answers[min(asked)])
    replies = engine.sample(list(asked.values()), Sampling(0.1, 0.9, 1024), seed=derive(0, "extract"), batch_size=4)
    for (i, reply), d in zip(zip(asked, replies), [per_item["base"][i] for i in asked]):
        m = re.search(r"\d+\.?\d*", reply)
        assert d["model_extracted"] == 1.0 and d["parsed"] == 0.0
        assert d["_prediction"] == (extract_answer_paper("####" + m.group()) if m else None)
    assert all(d["model_extracted"] == 0.0 for i, d in enumerate(per_item["base"]) if i not in asked)


def test_model_extraction_rescoring():
    t, items = load("gsm8k", "gsm8k.jsonl", extraction="paper")
    rows = t.score(items[:2], ["no number here", "#### " + items[1].answer], None)
    t.apply_extractions(items[:2], rows, {0: f"{items[0].answer}."})
    assert [(d["accuracy"], d["parsed"], d["model_extracted"]) for d in rows] == [(1.0, 0.0, 1.0), (1.0, 1.0, 0.0)]


def test_paper_options_refused_where_the_task_has_none():
    from mipo.pipeline import protocol_options

    for overrides in ({"task.prompt_style": "paper"}, {"task.extraction": "paper"},
                      {"evaluate.extract_with_model": True}):
        cfg = apply_overrides(Config(), {"task.name": "multifaceted", **overrides}, "test")
        with pytest.raises(MipoError, match=f"{next(iter(overrides))}: task multifaceted has no paper variant"):
            protocol_options(cfg, get_task("multifaceted", cfg.task))
    cfg = apply_overrides(Config(), {"task.name": "arc_easy", "evaluate.extract_with_model": True}, "test")
    with pytest.raises(MipoError, match=r"\(only gsm8k, svamp\)"):
        protocol_options(cfg, get_task("arc_easy", cfg.task))
    cfg = apply_overrides(Config(), {"task.name": "prism", "task.extraction": "paper"}, "test")
    with pytest.raises(MipoError, match=r"\(only arc_challenge, arc_easy, gsm8k, mmlu, svamp\)"):
        protocol_options(cfg, get_task("prism", cfg.task))
    cfg = apply_overrides(Config(), {"task.name": "prism", "task.prompt_style": "paper"}, "test")
    protocol_options(cfg, get_task("prism", cfg.task))  # PRISM has the authors' prompt


def authors_prism_prompts(prompt: str, instructions: list[str]) -> tuple[str, str]:
    """prism.py `dpo_dataset()`, verbatim: the augmented prompt (chosen) and the base prompt (rejected)."""
    prompt = prompt.strip()
    request = " ".join(instructions)
    augmented_prompt = f"Give me short 2-3 sentence answers to the following prompt: {prompt} Please respect the following requirements made by the user: {request} Respond with short 2-3 sentences."
    base_prompt = f"Give me short 2-3 sentence answers to the following prompt: {prompt} Respond with short 2-3 sentences."
    return augmented_prompt, base_prompt


def test_prism_paper_prompt_is_the_authors():
    args = TaskArgs(name="prism", data=str(FIXTURES / "prism"), prompt_style="paper")
    t = get_task("prism", args)
    items = t.load(args, "train")
    survey = {r["user_id"]: r for _, r in read_rows(FIXTURES / "prism" / "survey.jsonl")}
    for it in items:
        s = survey[it.meta["user"]]
        stated = [x for x in (s.get("self_description"), s.get("system_string")) if x and x.strip()]
        assert t.preferences(it) == [x.strip() for x in stated]
        augmented, base = authors_prism_prompts(it.prompt, t.preferences(it))
        assert t.messages(it) == [{"role": "user", "content": augmented}]
        assert t.messages(it, with_context=False) == [{"role": "user", "content": base}]  # the drop_context negative
    other = t.candidates(items, 0, __import__("random").Random(0), 1)[0][0]["content"]
    assert other != t.messages(items[0])[0]["content"] and other.startswith("Give me short")  # InfoNCE: others' answers


@pytest.mark.parametrize("task,data", [("prism", "prism"), ("multifaceted", "multifaceted.jsonl")])
def test_per_preference_judge_is_the_authors(task, data, tiny_model_dir, tiny):
    """One request per stated preference with the authors' rubric and wording, sampled at T 0.1 / top_p 0.9; the
    first integer of each reply; averaged; unparsed replies dropped (PRISM) or scored 0 (MB), and counted."""
    import re

    from mipo.config import EvalArgs
    from mipo.evaluation.judge import Judge
    from mipo.inference import Sampling
    from mipo.inference.hf import HFEngine
    from mipo.seeds import derive

    args = TaskArgs(name=task, data=str(FIXTURES / data))
    t = get_task(task, args)
    context, want = (("What matters to me: Be brief. How I want an AI assistant to behave: Use bullets!",
                      ["Be brief.", "Use bullets!"]) if task == "prism" else  # the two survey answers
                     ("Be brief.  Use bullets! Costs?", ["Be brief.", "Use bullets!", "Costs?"]))  # the sentences
    items = t.load(args, "train")[:3] + [Item(id="x", prompt="Plan a trip.", context=context)]
    prefs = [t.preferences(it) for it in items]
    assert prefs[-1] == want
    assert all(prefs) and sum(map(len, prefs)) > len(items)  # some item has several
    judge = Judge(EvalArgs(judge="local", judge_model=str(tiny_model_dir), judge_max_new_tokens=4, batch_size=8))
    responses = [f"Answer {i}" for i in range(len(items))]
    out = judge.per_preference(items, responses, prefs, t.judge_unparsed)
    asks = [[{"role": "system", "content": (
        "You are a helpful assistant, that evaluates another assistant's response based on how well the response is "
        "personalized to this user based on their stated preference. Give a score between 1 and 5, 1 if the response "
        "is general, and 5 if the response sufficiently addresses the user's preference. Only respond with a number "
        "between 1 and 5 and do not provide an explanation.")},
        {"role": "user", "content": f"User: {it.prompt}\n\nAssistant: {r}\n\nUser's preference: {p}"}]
        for it, r, ps in zip(items, responses, prefs) for p in ps]
    replies = HFEngine(*tiny).sample(asks, Sampling(0.1, 0.9, 4), seed=derive(0, "judge"), batch_size=8)
    assert judge.calls == len(asks) and [r for o in out for r in o["raw"]] == replies
    at = 0
    for o, ps in zip(out, prefs):
        got = [re.search(r"\d+", r) for r in replies[at:at + len(ps)]]
        at += len(ps)
        kept = [int(m.group()) if m else 0 for m in got if m or t.judge_unparsed == "zero"]
        assert o["unparsed"] == sum(m is None for m in got)
        assert o["value"] == (sum(kept) / len(kept) if kept else None)
    assert t.judge_unparsed == ("drop" if task == "prism" else "zero")


def test_choice_loglik_accuracy_beside_generated(tiny):
    """Every choice scored under the evaluated model given lm-eval's context, argmax vs the gold: reported as
    accuracy_loglik (sum) and accuracy_loglik_norm (per byte) beside the generated answer's accuracy."""
    from mipo.evaluation import Candidate, evaluate_models
    from mipo.inference.hf import HFEngine

    t, items = load("arc_challenge", "arc.jsonl", prompt_style="paper", extraction="paper")
    it = items[0]
    assert t.loglik_request(it) == ("Question: An astronomer observes that a planet rotates faster after a meteorite "
                                    "impact. Which is the most likely effect of this increase in rotation?\nAnswer:",
                                    it.meta["texts"])
    mt, mitems = load("mmlu", "mmlu.jsonl")
    assert mt.loglik_request(mitems[0]) == (
        "Find all c in Z_3 such that Z_3[x]/(x^2 + c) is a field.\nA. 0\nB. 1\nC. 2\nD. 3\nAnswer:", list("ABCD"))
    engine = HFEngine(*tiny)
    cfg = apply_overrides(Config(), {"task": {"name": "arc_challenge", "prompt_style": "paper"}, "evaluate": {
        "max_new_tokens": 4, "mi_negatives": 0, "bootstrap": 0}}, "test")
    _, per_item, _ = evaluate_models(cfg, t, items, engine, [Candidate("base", None, 0)])
    for it, d in zip(items, per_item["base"]):
        q, choices = it.meta["question"].strip(), it.meta["texts"]
        got = engine.token_logprobs([[{"role": "user", "content": f"Question: {q}\nAnswer:"}]] * len(choices), choices)
        sums = [lp for lp, _ in got]
        norm = [lp / len(c.encode()) for lp, c in zip(sums, choices)]
        gold = it.meta["labels"].index(it.answer)
        assert d["accuracy_loglik"] == float(sums.index(max(sums)) == gold)
        assert d["accuracy_loglik_norm"] == float(norm.index(max(norm)) == gold)
        assert "accuracy" in d and "parsed" in d  # the generated answer's, beside



def test_choice_raw_and_pmi_accuracy_follow_the_harness_by_hand(tiny_fp32):
    """lm-evaluation-harness' multiple-choice rules, recomputed here with plain forward passes: acc and acc_norm
    score "Question: q\nAnswer:" + " choice" on raw text (the continuation = what follows the context's own
    encoding; acc_norm divides by the choice's characters), acc_mutual_info subtracts log p(" choice" | BOS)."""
    import torch

    from mipo.evaluation import Candidate, evaluate_models
    from mipo.inference.hf import HFEngine

    model, tok = tiny_fp32
    t, items = load("arc_challenge", "arc.jsonl")
    cfg = apply_overrides(Config(), {"task": {"name": "arc_challenge"}, "evaluate": {
        "max_new_tokens": 2, "mi_negatives": 0, "bootstrap": 0}}, "test")
    _, per_item, _ = evaluate_models(cfg, t, items, HFEngine(model, tok), [Candidate("base", None, 0)])

    def logp(prefix: list[int], cont: list[int]) -> float:
        ids = torch.tensor([prefix + cont], device=model.device)
        with torch.no_grad():
            lp = model(input_ids=ids).logits.float().log_softmax(-1)[0]
        return sum(lp[len(prefix) - 1 + j, c].item() for j, c in enumerate(cont))

    enc = lambda text: tok(text, add_special_tokens=False)["input_ids"]  # noqa: E731
    bos = tok.bos_token_id if tok.bos_token_id is not None else tok.eos_token_id
    for it, d in zip(items, per_item["base"]):
        context = f"Question: {it.meta['question'].strip()}\nAnswer:"
        raw = [logp(enc(context), enc(context + " " + c)[len(enc(context)):]) for c in it.meta["texts"]]
        uncond = [logp([bos], enc(" " + c)) for c in it.meta["texts"]]
        gold = it.meta["labels"].index(it.answer)
        argmax = lambda v: max(range(len(v)), key=v.__getitem__)  # noqa: E731
        assert d["_logliks"]["raw"] == pytest.approx(raw, abs=1e-4)
        assert d["_logliks"]["unconditional"] == pytest.approx(uncond, abs=1e-4)
        assert d["accuracy_loglik_raw"] == float(argmax(raw) == gold)
        assert d["accuracy_loglik_raw_norm"] == float(argmax([v / len(c) for v, c in zip(raw, it.meta["texts"])]) == gold)
        assert d["accuracy_pmi"] == float(argmax([c - u for c, u in zip(raw, uncond)]) == gold)

# One held-out fixture item's prompt per task and style not pinned above, exactly as mipo builds it today.
PINNED = [
    ("gsm8k", "gsm8k.jsonl", {"fewshot": 1}, [
        {"role": "system", "content": "Solve the math problem step by step. Give the final answer as a number after '####'."},
        {"role": "user", "content": "There are 15 trees in the grove. Grove workers will plant trees in the grove today. "
                                    "After they are done, there will be 21 trees. How many trees did the grove workers "
                                    "plant today?"},
        {"role": "assistant", "content": "There are 15 trees originally. Then there were 21 trees after some more were "
                                         "planted. So there must have been 21 - 15 = 6.\n#### 6"},
        {"role": "user", "content": "Nina baked 4 trays of cookies with 12 cookies on each tray. She ate 6 cookies and "
                                    "shared the rest equally among 3 friends. How many cookies did each friend get?"}]),
    ("arc_easy", "arc.jsonl", {}, [{"role": "user", "content": (
        'Answer the multiple choice question. You may reason briefly first; end your response with "The answer is: X", '
        "where X is the label of the correct choice.\n\nWhat causes the seasons on Earth?\n\nA. the distance from Earth "
        "to the Sun\nB. the tilt of Earth's axis\nC. the phases of the Moon\nD. the speed of Earth's rotation")}]),
    ("mmlu", "mmlu.jsonl", {"prompt_style": "paper"}, [{"role": "user", "content": (
        "You are a helpful assistant. The following is a multiple choice question with answer choices. Your response "
        'should show clear and concise reasoning, and you should end with "The answer is: <X>", where X is the correct '
        "letter choice.\n\nLet p = (1, 2, 5, 4)(2, 3) in S_5. Find the index of <p> in S_5.\n\nA: 8\nB: 2\nC: 24\nD: "
        '120\n\nYour response should end with "The answer is: <X>", where X is the correct letter choice.')}]),
    ("prism", "prism", {}, [{"role": "user", "content": (
        "About me: What matters to me: I value honesty and kindness. Family comes first for me, and I try to treat "
        "everyone with respect. How I want an AI assistant to behave: Be direct and concise. Do not lecture me about "
        "morals; give practical steps.\n\nShould I lend money to a friend who is struggling?")}]),
    ("prism", "prism", {"prompt_style": "paper"}, [{"role": "user", "content": (
        "Give me short 2-3 sentence answers to the following prompt: Should I lend money to a friend who is struggling? "
        "Please respect the following requirements made by the user: I value honesty and kindness. Family comes first "
        "for me, and I try to treat everyone with respect. Be direct and concise. Do not lecture me about morals; give "
        "practical steps. Respond with short 2-3 sentences.")}]),
    ("community_alignment", "community_alignment.jsonl", {}, [{"role": "user", "content": (
        "About me: age: 46-54; gender: Male; country: Nigeria; education: (At most) Complete Secondary; ethnicity: "
        "Black or African American; political leaning: I don't think of myself in this way.\n\nHow do I start a small "
        "farm business?")}]),
    ("multifaceted", "multifaceted.jsonl", {}, [
        {"role": "system", "content": "You are a cautious travel adviser who prioritises safety and budget tips for solo "
                                      "travellers."},
        {"role": "user", "content": "Plan a weekend in Lisbon."}]),
]


@pytest.mark.parametrize("task,data,kw,want", PINNED, ids=[f"{t}-{kw.get('prompt_style', 'mipo')}" for t, _, kw, _ in PINNED])
def test_prompt_pinned(task, data, kw, want):
    args = TaskArgs(name=task, data=str(FIXTURES / data), **kw)
    t = get_task(task, args)
    assert t.messages(t.load(args, "test")[0]) == want


def test_new_settings_at_their_defaults_leave_old_fingerprints_alone():
    """Run directories made before these settings existed still resume (stage and checkpoint fingerprints): at
    their defaults the new fields are not hashed; set to anything else they are."""
    import hashlib
    import json

    from mipo.config import ENGINE_ONLY, LATER, OPERATIONAL

    cfg = Config()
    d = cfg.to_dict()
    for key in LATER:
        section, _, name = key.partition(".")
        assert getattr(getattr(cfg, section), name) == LATER[key]  # LATER holds the true defaults
        del d[section][name]
    for name in ("eval_draw", "eval_seed"):  # added too, and moot (not hashed) while n_eval takes every item
        del d["task"][name]
    # Where and how fast responses are made is never hashed (config.OPERATIONAL), nor the engine's fields while the
    # engine is the in-process default (config.ENGINE_ONLY): a run resumes on another server or tracker.
    for section, names in {**OPERATIONAL, **{s: OPERATIONAL.get(s, ()) + n for s, n in ENGINE_ONLY.items()}}.items():
        for name in names:
            del d[section][name]
    old = {k: d[k] for k in ("model", "seed", "task", "generate", "train", "evaluate")}
    want = hashlib.sha256(json.dumps(old, sort_keys=True).encode()).hexdigest()[:16]
    assert cfg.fingerprint("task", "generate", "train", "evaluate") == want
    for key, value in (("task.prompt_style", "paper"), ("train.lr_scheduler", "cosine_with_min_lr"),
                       ("evaluate.judge_mode", "per_preference")):
        assert apply_overrides(Config(), {key: value}, "test").fingerprint("task", "train", "evaluate") != \
            cfg.fingerprint("task", "train", "evaluate")
