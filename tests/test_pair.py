import random

import pytest

from mipo.config import Config, TaskArgs
from .conftest import sample
from mipo.io import MipoError
from mipo.pair import build_pairs, check, derangement
from mipo.tasks import get_task

from .conftest import FIXTURES


def test_derangement_has_no_fixed_points():
    for n in range(2, 30):
        perm = derangement(n, random.Random(n))
        assert sorted(perm) == list(range(n)) and all(i != p for i, p in enumerate(perm))
    with pytest.raises(MipoError, match="at least 2 prompts"):
        derangement(1, random.Random(0))


def _engine(tiny, calls):
    model, tok = tiny

    def sample_fn(prompts, seed, desc):
        calls.append(prompts)
        return sample(model, tok, prompts, temperature=1.0, top_p=0.95, max_new_tokens=8, batch_size=4, seed=seed)
    return sample_fn


def test_random_prompt_pairs_cost_one_generation(tiny):
    cfg = Config(task=TaskArgs(name="gsm8k", data=str(FIXTURES / "gsm8k.jsonl")))
    cfg.generate.samples_per_prompt = 2
    task = get_task("gsm8k")
    items = task.load(cfg.task, "train")
    calls = []
    pairs = build_pairs(task, items, cfg, check(task, items, cfg), _engine(tiny, calls))
    assert len(calls) == 2 and all(len(c) == len(items) for c in calls)  # one pass per sample index
    assert len(pairs) == 2 * len(items)
    by_key = {(p["meta"]["prompt_id"], p["meta"]["sample"]): p for p in pairs}
    for p in pairs:
        m = p["meta"]
        assert m["strategy"] == "random_prompt" and m["negative_from"] != m["prompt_id"]
        # the negative is exactly the response sampled for the other prompt, stored under this prompt
        assert p["rejected"] == by_key[(m["negative_from"], m["sample"])]["chosen"]
        assert p["prompt"] == task.messages(next(i for i in items if i.id == m["prompt_id"]))
        assert p["chosen"][0]["role"] == "assistant"


def test_drop_context_negatives_come_from_the_bare_request(tiny):
    cfg = Config(task=TaskArgs(data=str(FIXTURES / "personalization.jsonl")))
    task = get_task("personalization")
    items = task.load(cfg.task, "train")
    calls = []
    pairs = build_pairs(task, items, cfg, check(task, items, cfg), _engine(tiny, calls))
    assert calls[0] == [task.messages(i) for i in items]
    assert calls[1] == [[{"role": "user", "content": i.prompt}] for i in items]
    assert all(p["meta"]["negative_from"] == p["meta"]["prompt_id"] for p in pairs)
    assert all(p["meta"]["strategy"] == "drop_context" for p in pairs)


def test_unknown_strategy_is_refused(tiny):
    cfg = Config(task=TaskArgs(name="gsm8k", data=str(FIXTURES / "gsm8k.jsonl"), negative="drop_context"))
    task = get_task("gsm8k")
    with pytest.raises(MipoError, match="unknown negative strategy 'drop_context'"):
        check(task, task.load(cfg.task, "train"), cfg)


def test_drop_sentence_never_drops_the_question(tiny):
    from mipo.pair import drop_sentence, sentences

    text = "Jack had 8 marbles. His friend gave him 5 more! Is that a lot? How many marbles does Jack have now?"
    for seed in range(20):
        corrupted, dropped = drop_sentence(text, random.Random(seed))
        assert dropped in ("Jack had 8 marbles.", "His friend gave him 5 more!")
        assert corrupted.endswith("How many marbles does Jack have now?") and "Is that a lot?" in corrupted
        assert len(sentences(corrupted)) == 3
    assert drop_sentence("How many are left?", random.Random(0)) is None
    assert sentences("It costs $3.50 each. Buy 2.") == ["It costs $3.50 each.", "Buy 2."]

    cfg = Config(task=TaskArgs(name="svamp", data=str(FIXTURES / "svamp.jsonl"), negative="drop_sentence"))
    task = get_task("svamp", cfg.task)
    items = task.load(cfg.task, "train")
    calls = []
    pairs = build_pairs(task, items, cfg, check(task, items, cfg), _engine(tiny, calls))
    assert len(pairs) == len(items)  # every SVAMP prompt is Body (>= 1 sentence) + Question
    for p, it in zip(pairs, items):
        m = p["meta"]
        assert m["strategy"] == "drop_sentence" and m["negative_from"] == it.id
        assert m["dropped_sentence"] in it.prompt and not m["dropped_sentence"].endswith("?")
        assert p["prompt"] == task.messages(it)  # stored under the true prompt
    bodies = [msgs[-1]["content"] for msgs in calls[1]]
    assert all(m["dropped_sentence"] not in b for m, b in zip((p["meta"] for p in pairs), bodies))


def test_other_user_context_keeps_request_and_swaps_user(tiny):
    cfg = Config(task=TaskArgs(name="prism", data=str(FIXTURES / "prism"), negative="other_user_context", n_train=None))
    cfg.generate.samples_per_prompt = 2
    task = get_task("prism", cfg.task)
    items = task.load(cfg.task, "train")
    calls = []
    pairs = build_pairs(task, items, cfg, check(task, items, cfg), _engine(tiny, calls))
    assert len(pairs) == 2 * len(items) and len(calls) == 4  # n pairs per prompt: chosen + negatives per sample
    by_id = {it.id: it for it in items}
    for p, neg_prompt in zip(pairs[:len(items)], calls[1]):
        it, other = by_id[p["meta"]["prompt_id"]], by_id[p["meta"]["negative_from"]]
        assert other.context != it.context  # another user's context (same user's other conversation excluded)
        assert neg_prompt[-1]["content"] == f"About me: {other.context}\n\n{it.prompt}"
    assert {p["meta"]["sample"] for p in pairs} == {0, 1}
    # meta records the run seed and the sample index; the sample's seed follows from them (mipo/seeds.py)
    assert {p["meta"]["seed"] for p in pairs} == {cfg.seed}
    assert pairs[0]["chosen"] != pairs[len(items)]["chosen"] or pairs[0]["rejected"] != pairs[len(items)]["rejected"]


def test_items_without_context_give_no_drop_context_pair(tiny):
    args = TaskArgs(name="generic", data=str(FIXTURES / "prompts.jsonl"), prompt_field="instruction",
                    context_field="persona", id_field="uid")
    cfg = Config(task=args)
    task = get_task("generic", args)
    items = task.load(args, "train") + task.load(args, "test")  # all 6; g4 has an empty persona
    pairs = build_pairs(task, items, cfg, check(task, items, cfg), _engine(tiny, []))
    assert [p["meta"]["prompt_id"] for p in pairs] == ["g1", "g2", "g3", "g5", "g6"]


def test_echo_share_is_what_the_chosen_response_repeats_of_the_context():
    from mipo.pair import echo_share

    def row(chosen, x="About me: I am vegan and love spicy food.\n\nSuggest a dinner.", xn="Suggest a dinner."):
        return {"prompt": [{"role": "user", "content": x}], "negative_prompt": [{"role": "user", "content": xn}],
                "chosen": [{"role": "assistant", "content": chosen}]}

    # x has "vegan", "love", "spicy", "food" (content words, >= 4 letters) that x' lacks
    assert echo_share(row("Try a spicy lentil curry.")) == pytest.approx(1 / 4)
    assert echo_share(row("As a vegan who loves spicy food, you love spicy things!")) == pytest.approx(4 / 4)
    assert echo_share(row("Tofu stir-fry with rice.")) == 0.0
    assert echo_share(row("Anything.", x="Suggest a dinner.")) is None  # x and x' differ by no content word


def test_max_echo_drops_the_pairs_that_echo_the_context(tmp_path):
    import json

    from mipo.io import read_jsonl
    from mipo.methods.base import drop_echoes

    x, xn = "About me: I am vegan and love spicy food.\n\nSuggest a dinner.", "Suggest a dinner."
    rows = tmp_path / "pairs.jsonl"
    rows.write_text("".join(json.dumps({"prompt": [{"role": "user", "content": x}],
                                        "negative_prompt": [{"role": "user", "content": xn}],
                                        "chosen": [{"role": "assistant", "content": c}],
                                        "rejected": [{"role": "assistant", "content": "Pasta."}]}) + "\n"
                        for c in ("You are vegan and love spicy food!", "Tofu curry.", "A spicy bean chili.")))
    cfg = Config()
    cfg.train.max_echo = 0.25
    kept = read_jsonl(drop_echoes(cfg, rows, tmp_path / "train"))
    assert [r["chosen"][0]["content"] for r in kept] == ["Tofu curry.", "A spicy bean chili."]
    report = json.loads((tmp_path / "train" / "echo_filter.json").read_text())
    assert report["pairs"] == 3 and report["kept"] == 2 and report["shares"] == [1.0, 0.0, 0.25]
    cfg.train.max_echo = 0.0
    with pytest.raises(MipoError, match="nothing to train on"):
        drop_echoes(cfg, _only(rows, 0, tmp_path), tmp_path / "t2")


def _only(rows, i, tmp_path):
    path = tmp_path / f"only{i}.jsonl"
    path.write_text(rows.read_text().splitlines()[i] + "\n")
    return path


def test_diagnose_reads_both_responses_under_the_true_prompt():
    """From the pairs alone: how often each side's answer parses and is right under the TRUE question, and the
    pairs where only one side is right (the contrast DPO would learn)."""
    from mipo.pair import diagnose

    t = get_task("arc_easy", TaskArgs(name="arc_easy", data=str(FIXTURES / "arc.jsonl")))
    items = t.load(t.args, "train")
    a, b, c = items[:3]
    def row(it, chosen, rejected):
        return {"prompt": t.messages(it), "negative_prompt": t.messages(it),
                "chosen": [{"role": "assistant", "content": chosen}],
                "rejected": [{"role": "assistant", "content": rejected}], "meta": {"prompt_id": it.id}}
    wrong = lambda it: next(x for x in it.meta["labels"] if x != it.answer)  # noqa: E731
    rows = [row(a, f"The answer is: {a.answer}", f"The answer is: {wrong(a)}"),  # right only in the chosen
            row(b, f"The answer is: {wrong(b)}", f"The answer is: {b.answer}"),  # right only in the rejected
            row(c, "no idea at all", "no idea at all"),                           # identical, neither parses
            {**row(c, "x", "y"), "meta": {"prompt_id": "not-an-item"}}]           # not among the items: left out
    d = diagnose(t, items, rows)
    assert d["pairs"] == 3 and d["identical"] == pytest.approx(1 / 3)
    assert d["chosen"]["accuracy"] == pytest.approx(1 / 3) and d["rejected"]["accuracy"] == pytest.approx(1 / 3)
    assert d["chosen"]["parsed"] == pytest.approx(2 / 3) and d["chosen"]["words"] == 4.0
    assert d["contrast"]["accuracy"] == {"only_chosen": 1, "only_rejected": 1, "n": 3}
    assert d["contrast"]["parsed"] == {"only_chosen": 0, "only_rejected": 0, "n": 3}
    assert diagnose(t, items, [{"prompt": [], "negative_prompt": [], "meta": {"prompt_id": a.id}}]) is None


def test_diagnose_personalization_counts_violations_cues_and_echo():
    from mipo.pair import diagnose

    t = get_task("personalization", TaskArgs())
    it = next(i for i in t.load(t.args, "train") if i.meta.get("avoid") and i.meta.get("expect"))
    bad = it.meta["avoid"][0]
    rows = [{"prompt": t.messages(it), "negative_prompt": t.messages(it, with_context=False),
             "chosen": [{"role": "assistant", "content": f"Try {bad}. " + it.context}],
             "rejected": [{"role": "assistant", "content": "Something general."}], "meta": {"prompt_id": it.id}}]
    d = diagnose(t, [it], rows)
    assert d["chosen"]["violation"] == 1.0 and d["rejected"]["violation"] == 0.0
    assert d["contrast"]["violation"] == {"only_chosen": 1, "only_rejected": 0, "n": 1}
    assert d["chosen_echo"] == 1.0  # the chosen response repeats the whole context
