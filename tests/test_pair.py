import random

import pytest

from mipo.config import Config, TaskArgs
from mipo.generate import sample
from mipo.io import MipoError
from mipo.pair import build_pairs, derangement
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
    pairs = build_pairs(task, items, cfg, _engine(tiny, calls))
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
    pairs = build_pairs(task, items, cfg, _engine(tiny, calls))
    assert calls[0] == [task.messages(i) for i in items]
    assert calls[1] == [[{"role": "user", "content": i.prompt}] for i in items]
    assert all(p["meta"]["negative_from"] == p["meta"]["prompt_id"] for p in pairs)
    assert all(p["meta"]["strategy"] == "drop_context" for p in pairs)


def test_unknown_strategy_is_refused(tiny):
    cfg = Config(task=TaskArgs(name="gsm8k", data=str(FIXTURES / "gsm8k.jsonl"), negative="drop_context"))
    task = get_task("gsm8k")
    with pytest.raises(MipoError, match="unknown negative strategy 'drop_context'"):
        build_pairs(task, task.load(cfg.task, "train"), cfg, _engine(tiny, []))
