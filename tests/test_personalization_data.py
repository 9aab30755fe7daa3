"""The personalization set (mipo/tasks/data/personalization.jsonl): sizes, fields, held-out disjointness, and the
avoid/expect terms under the metric's matching rule. Stdlib only; no model, no torch."""
from __future__ import annotations

import importlib.util
import json
import re
from collections import Counter
from pathlib import Path

import pytest

from mipo.behaviour import mentions

ROOT = Path(__file__).parents[1]
DATA = ROOT / "mipo" / "tasks" / "data" / "personalization.jsonl"
SCRIPT = ROOT / "scripts" / "make_personalization.py"
FIELDS = {"id": str, "context": str, "request": str, "split": str, "avoid": list, "expect": list, "category": str}


def matches(term: str, text: str) -> bool:
    """The metric's own matching rule, so the data is checked exactly as it is scored."""
    return mentions(text, term)


def norm(text: str) -> str:
    return " ".join(text.lower().split())


ROWS = [json.loads(line) for line in DATA.read_text(encoding="utf-8").splitlines() if line.strip()]
TRAIN = [r for r in ROWS if r.get("split") == "train"]
TEST = [r for r in ROWS if r.get("split") == "test"]


def where(r):
    return f"{r.get('id')}: {r.get('context')!r} / {r.get('request')!r}"


def test_matching_rule():
    assert matches("lentil", "Try red lentils tonight.") and matches("bus", "Take one of the BUSES.")
    assert matches("peanut butter", "peanut\n  butter toast") and matches("tofu", "tofu.")
    assert not matches("egg", "roasted eggplant") and not matches("fish", "no shellfish")
    assert not matches("app", "an apple") and not matches("cake", "pancakes")
    assert matches("peanut", "peanut-free") and not matches("drive", "driving")


def test_sizes_and_splits():
    assert len(TRAIN) >= 420 and len(TEST) >= 210
    assert len(TRAIN) + len(TEST) == len(ROWS), "every row has split 'train' or 'test'"


def test_fields_and_types():
    for r in ROWS:
        assert set(r) == set(FIELDS), where(r)
        for key, kind in FIELDS.items():
            assert isinstance(r[key], kind), f"{where(r)}: {key}"
        for key in ("id", "context", "request", "category"):
            assert r[key].strip() == r[key] and r[key], f"{where(r)}: {key}"
        assert all(isinstance(t, str) for t in r["avoid"] + r["expect"]), where(r)
        assert 1 <= len(re.findall(r"[.!?](?:\s|$)", r["context"])) <= 2, f"{where(r)}: context is 1-2 sentences"


def test_ids_unique_and_prefixed():
    ids = [r["id"] for r in ROWS]
    assert len(set(ids)) == len(ids)
    assert all(re.fullmatch(r"pt\d{4}", r["id"]) for r in TRAIN)
    assert all(re.fullmatch(r"ph\d{4}", r["id"]) for r in TEST)


@pytest.mark.parametrize("key", ["context", "request"])
def test_held_out_unseen_in_training(key):
    train = {norm(r[key]) for r in TRAIN}
    clash = sorted({r[key] for r in TEST if norm(r[key]) in train})
    assert not clash


def test_pairs_unique():
    pairs = Counter((norm(r["context"]), norm(r["request"])) for r in ROWS)
    assert max(pairs.values()) == 1


def test_terms_shape():
    for r in ROWS:
        for key in ("avoid", "expect"):
            terms = r[key]
            assert 2 <= len(terms) <= 8, f"{where(r)}: {len(terms)} {key} terms"
            assert len(set(terms)) == len(terms), f"{where(r)}: repeated {key} term"
            for t in terms:
                assert t == t.lower() and len(t) >= 3, f"{where(r)}: {key} term {t!r}"
                assert re.fullmatch(r"\w(.*\w)?", t), f"{where(r)}: {key} term {t!r} has a non-word edge"


def test_expect_terms_not_given_away():
    # repeating the user's words back must not count as tailoring
    for r in ROWS:
        for t in r["expect"]:
            assert not matches(t, r["context"]), f"{where(r)}: expect {t!r} is in the context"
            assert not matches(t, r["request"]), f"{where(r)}: expect {t!r} is in the request"


def test_avoid_terms_not_in_prompt():
    for r in ROWS:
        for t in r["avoid"]:
            assert not matches(t, r["request"]), f"{where(r)}: avoid {t!r} is in the request"
            assert not matches(t, r["context"]), f"{where(r)}: avoid {t!r} is in the context"


def test_avoid_and_expect_do_not_overlap():
    for avoid, expect in {(tuple(r["avoid"]), tuple(r["expect"])) for r in ROWS}:
        for a in avoid:
            for e in expect:
                assert not matches(a, e) and not matches(e, a), f"avoid {a!r} / expect {e!r}"


def test_categories_count_balance_and_transfer():
    counts = Counter(r["category"] for r in ROWS)
    assert len(counts) >= 15
    assert max(counts.values()) <= 0.15 * len(ROWS), counts.most_common(3)
    assert {r["category"] for r in TRAIN} == {r["category"] for r in TEST} == set(counts)


def test_matches_generator():
    if not SCRIPT.exists():
        pytest.skip("no generator script")
    spec = importlib.util.spec_from_file_location("make_personalization", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert module.build() == ROWS, "re-run scripts/make_personalization.py"
