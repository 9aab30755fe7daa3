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
