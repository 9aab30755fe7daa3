"""Property tests: answer extractors never raise and never invent a number that is not in the text."""
import re
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from mipo.tasks.math import _NUM, _norm, extract_answer

ADVERSARIAL = st.sampled_from(["####", "#", "-", ",", ".", "1,2,3", "--5", "####-", "1e5", "٣", "½", "\n", " ", "0.",
                               "#### ####", "-0", "00", "1.2.3", "∞", "NaN", "inf"])
TEXT = st.lists(st.one_of(st.text(max_size=20), ADVERSARIAL, st.integers().map(str), st.floats().map(str)),
                max_size=12).map("".join)


@settings(max_examples=400, deadline=None)
@given(TEXT)
def test_extract_never_raises_nor_invents(text):
    got = extract_answer(text)
    if got is not None:
        assert got in {_norm(m) for m in re.findall(_NUM, text)}


@settings(max_examples=200, deadline=None)
@given(prefix=TEXT.filter(lambda t: "####" not in t), n=st.integers(-10**9, 10**9), suffix=st.sampled_from(["", ".", " dollars", "\n"]))
def test_final_answer_after_marker_wins(prefix, n, suffix):
    assert extract_answer(f"{prefix}\n#### {n}{suffix}") == str(n)


def test_no_unsafe_calls_in_the_package():
    """No eval/exec/shell on model or data text, no pickle loading, remote code only through the config flag."""
    src = "\n".join(p.read_text() for p in (Path(__file__).parents[1] / "mipo").rglob("*.py"))
    for pattern in (r"(?<![.\w])eval\(", r"(?<![.\w])exec\(", r"import pickle|pickle\.loads?\(", r"torch\.load\(", r"\bsubprocess\b", r"os\.system",
                    r"shell=True", r"trust_remote_code=True", r"use_safetensors=False"):
        assert not re.search(pattern, src), pattern


LABELS = st.sampled_from([["A", "B", "C", "D"], ["1", "2", "3", "4"], ["A", "B", "C"], ["A", "B", "C", "D", "E"]])
CHOICE_NOISE = st.sampled_from(["The answer is", "the answer is:", "THE ANSWER IS", "A", "B", "(C)", "ARC", "a",
                                "D.", "12", " ", "\n", ":", "answer", "is", "E"])
CHOICE_TEXT = st.lists(st.one_of(st.text(max_size=12), CHOICE_NOISE), max_size=14).map("".join)


@settings(max_examples=400, deadline=None)
@given(CHOICE_TEXT, LABELS)
def test_choice_extraction_never_raises_nor_invents(text, labels):
    from mipo.tasks.choice import MARKER, extract_choice

    got = extract_choice(text, labels)
    if got is not None:
        assert got in labels
        tail = text[text.lower().rfind(MARKER) + len(MARKER):]
        assert re.search(rf"(?<![A-Za-z0-9]){re.escape(got)}(?![A-Za-z0-9])", tail)  # it is really there


@settings(max_examples=200, deadline=None)
@given(prefix=CHOICE_TEXT, labels=LABELS, data=st.data())
def test_choice_after_the_last_marker_wins(prefix, labels, data):
    from mipo.tasks.choice import extract_choice

    label = data.draw(st.sampled_from(labels))
    assert extract_choice(f"{prefix}\nThe answer is: {label}.", labels) == label


JUDGE_NOISE = st.sampled_from(["Score:", "score = ", "**Score:** ", "/5", "6", "0", "3", "Winner:", "tie", "A",
                               "B", " ", "\n", "Score: 10", "4.5"])
JUDGE_TEXT = st.lists(st.one_of(st.text(max_size=12), JUDGE_NOISE), max_size=14).map("".join)


@settings(max_examples=400, deadline=None)
@given(JUDGE_TEXT)
def test_judge_parsers_never_raise_nor_invent(text):
    from mipo.evaluation.judge import parse_score, parse_winner

    score = parse_score(text)
    assert score is None or (1 <= score <= 5 and str(score) in text and "score" in text.lower())
    winner = parse_winner(text)
    assert winner in (None, "A", "B", "tie")
    if winner is not None:
        assert "winner" in text.lower() and winner.lower() in text.lower()


@settings(max_examples=200, deadline=None)
@given(prefix=JUDGE_TEXT.filter(lambda t: "score" not in t.lower()), n=st.integers(1, 5))
def test_judge_final_score_line_wins(prefix, n):
    from mipo.evaluation.judge import parse_score

    assert parse_score(f"{prefix}\nScore: {n}") == n
