import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mipo.behaviour import (
    adherence,
    char_loop,
    degeneration,
    distinct_n,
    mentions,
    nontext_share,
    wilson_ci,
    words,
)


def test_words_split_on_non_letters_and_keep_any_script():
    assert words("I'm fine, THANKS!") == ["i", "m", "fine", "thanks"]
    assert words("नमस्ते दुनिया") == ["नमस्ते", "दुनिया"]  # combining vowel signs stay inside the word
    assert words("$5 + 3 = 8") == ["5", "3", "8"]
    assert words("") == [] and words(" \n\t") == []


def test_mentions_plurals_whole_words_phrases_and_case():
    assert mentions("I cook lentils daily", "lentil")
    assert mentions("Two buses came", "bus") and mentions("tomatoes", "tomato")
    assert mentions("a bus.", "bus") and mentions("(bus)", "bus") and mentions("bus", "bus")
    assert not mentions("hand me the hammer", "ham")
    assert not mentions("business plan", "bus")
    assert not mentions("lentilsoup", "lentil") and not mentions("lentilx", "lentil")
    assert not mentions("xlentil", "lentil") and not mentions("2bus", "bus") and not mentions("bus9", "bus")
    assert not mentions("busses", "bus")  # only "s" or "es" may follow
    assert mentions("I love ICE   cream", "ice cream") and mentions("ice\ncreams", "Ice Cream")
    assert not mentions("ice-cream", "ice cream") and not mentions("ice", "ice cream")
    assert mentions("PEANUT allergy", "peanut") and mentions("Peanuts", "PEANUT")
    assert mentions("C++ code", "c++") and not mentions("cc", "c")
    assert not mentions("anything", "") and not mentions("anything", "   ")


def test_violation_with_and_without_avoid_terms():
    assert adherence("Try the ham sandwich", "", ["ham", "bacon"], [])["violation"] == 1.0
    assert adherence("Grab a hammer", "", ["ham", "bacon"], [])["violation"] == 0.0
    assert adherence("Crispy Bacon strips", "", ["ham", "bacon"], [])["violation"] == 1.0
    assert adherence("Try the ham sandwich", "", [], [])["violation"] is None


def test_cue_is_not_credited_for_repeating_the_context():
    ctx = "I'm vegan"
    parroting = adherence("As a vegan myself, I love vegan food", ctx, [], ["vegan", "tofu"])
    assert parroting["cue"] == 0.0  # "vegan" is in the context, so it is not creditable
    assert adherence("Try grilled tofu", ctx, [], ["vegan", "tofu"])["cue"] == 1.0
    assert adherence("A vegan tofu bowl", ctx, [], ["vegan", "tofu"])["cue"] == 1.0
    assert adherence("Anything goes", ctx, [], ["vegan"])["cue"] is None  # no creditable term
    assert adherence("Anything goes", ctx, [], [])["cue"] is None
    assert adherence("Try Tofus", "", [], ["tofu"])["cue"] == 1.0


def test_parrot_is_the_share_of_context_content_words_repeated():
    ctx = "I live in Boston and I love hiking with my dog"  # content words: boston, live, love, hiking
    r = adherence("Boston has great hiking trails", ctx, [], [])
    assert r["parrot"] == pytest.approx(2 / 4)
    assert adherence("BOSTON, hiking, love, live!", ctx, [], [])["parrot"] == 1.0
    assert adherence("Sure thing.", ctx, [], [])["parrot"] == 0.0
    assert adherence("anything", "I am a cat", [], [])["parrot"] is None  # only short words
    assert adherence("about these", "about these things", [], [])["parrot"] is None  # only stopwords
    assert adherence("x", "", [], [])["parrot"] is None


def test_degeneration_of_a_normal_sentence():
    d = degeneration("The quick brown fox jumps over the lazy dog, and the dog sleeps.")
    assert d == {"rep4": 0.0, "nontext": 0.0, "char_loop": 0.0, "broken": 0.0, "words": 13}


def test_degeneration_of_repeated_words():
    d = degeneration("the cat the cat the cat the cat the cat")
    # 10 words, 7 four-grams, 2 distinct: "the cat the cat" and "cat the cat the"
    assert d["rep4"] == pytest.approx(1 - 2 / 7) and d["broken"] == 1.0 and d["words"] == 10
    assert degeneration("one two three")["rep4"] == 0.0
    # 5 four-grams, one repeated once: 1 - 4/5 = 0.2, not broken
    d = degeneration("a b c d a b c d")
    assert d["rep4"] == pytest.approx(0.2) and d["broken"] == 0.0


def test_char_loop():
    assert char_loop("Komunikomunikomunikomuni") and degeneration("Komunikomunikomunikomuni")["broken"] == 1.0
    assert char_loop("hahahaha") and char_loop("lol HaHaHa") and char_loop("aaaaaa")
    for normal in ["Mississippi", "banana bread", "coconut", "tartar sauce", "couscous", "Noooo way", "ha ha ha"]:
        assert not char_loop(normal), normal
        assert degeneration(normal)["char_loop"] == 0.0
    assert not char_loop("1,000,000,000 and 121212") and not char_loop("|---|---|---|")
    assert not char_loop("hahaha"[:5])  # "ha" twice and an "h": only 2 back to back


def test_nontext_counts_emoji_and_controls_but_not_letters_of_any_script():
    d = degeneration("😀😀😀😀🎉🎉")
    assert d["nontext"] == 1.0 and d["broken"] == 1.0 and d["words"] == 0
    assert degeneration("Great 😀😀😀😀")["nontext"] == pytest.approx(4 / 9)
    assert degeneration("Great 😀😀😀😀")["broken"] == 1.0
    assert degeneration("Ça va très bien, merci")["nontext"] == 0.0
    assert nontext_share("Привет, мир! 你好。 नमस्ते") == 0.0
    assert nontext_share("It is 25°C; costs $5 + 3 = 8 (¿ok?) ^_^ | ~") == 0.0
    assert nontext_share("ab\x00\ue000") == pytest.approx(2 / 4)  # a control and a private-use character
    assert nontext_share("a\u200db") == pytest.approx(1 / 3)  # zero-width joiner (format)
    assert nontext_share("") == 0.0 and nontext_share(" \n ") == 0.0
    assert degeneration("Nice 😀 thanks for asking, here is the plan")["broken"] == 0.0  # 1 of 34 characters


def test_empty_or_wordless_responses_are_broken():
    for r in ["", "   ", "...", "|---|"]:
        assert degeneration(r)["broken"] == 1.0 and degeneration(r)["words"] == 0


def test_distinct_n_by_hand():
    rs = ["a b a b", "a b c"]
    # unigrams: a b a b a b c = 7, distinct 3; bigrams: ab ba ab | ab bc = 5, distinct 3 (ab, ba, bc)
    assert distinct_n(rs, 1) == pytest.approx(3 / 7)
    assert distinct_n(rs, 2) == pytest.approx(3 / 5)
    # trigrams: aba bab | abc = 3, all distinct; n-grams never span two responses
    assert distinct_n(rs, 3) == 1.0
    assert distinct_n(rs, 5) is None and distinct_n([], 1) is None and distinct_n(["", "!!"], 1) is None
    assert distinct_n(["The cat", "the CAT"], 2) == 0.5  # lowercased
    with pytest.raises(ValueError):
        distinct_n(rs, 0)


def test_wilson_ci_by_hand():
    # z = 1.959963984540054, z² = 3.841458820694124; at 0 of 10: hi = (z²/10) / (1 + z²/10)
    lo, hi = wilson_ci(0, 10)
    assert lo == 0.0 and hi == pytest.approx(0.3841458820694124 / 1.3841458820694124, abs=1e-12)
    assert hi == pytest.approx(0.2775328, abs=1e-7)
    # at 5 of 10: centre 0.5, half = z·sqrt(0.025 + z²/400) / (1 + z²/10) = 0.2634069...
    lo, hi = wilson_ci(5, 10)
    assert lo == pytest.approx(0.2365931, abs=1e-7) and hi == pytest.approx(0.7634069, abs=1e-7)
    lo, hi = wilson_ci(10, 10)
    assert lo == pytest.approx(1 - 0.2775328, abs=1e-7) and hi == 1.0
    lo, hi = wilson_ci(1, 1)
    assert lo == pytest.approx(1 / (1 + 3.841458820694124), abs=1e-12) and hi == 1.0
    # 3 of 20 at 90%: z = 1.6448536, centre 0.1917081, half 0.1301257
    lo, hi = wilson_ci(3, 20, level=0.9)
    assert lo == pytest.approx(0.0615824, abs=1e-6) and hi == pytest.approx(0.3218281, abs=1e-6)
    assert wilson_ci(2.5, 10) is not None  # fractional successes are allowed
    assert wilson_ci(0, 0) is None
    for bad in [(-1, 10), (11, 10)]:
        with pytest.raises(ValueError):
            wilson_ci(*bad)
    with pytest.raises(ValueError):
        wilson_ci(1, 10, level=1.0)


@settings(max_examples=200, deadline=None)
@given(st.text(), st.text(), st.lists(st.text(max_size=8), max_size=3), st.lists(st.text(max_size=8), max_size=3))
def test_never_raises_and_rates_stay_in_unit_interval(response, context, avoid, expect):
    a = adherence(response, context, avoid, expect)
    d = degeneration(response)
    for v in [*a.values(), d["rep4"], d["nontext"], d["char_loop"], d["broken"]]:
        assert v is None or 0.0 <= v <= 1.0
    assert d["words"] == len(words(response)) >= 0
    for n in (1, 2, 4):
        v = distinct_n([response, context], n)
        assert v is None or 0.0 < v <= 1.0


@given(st.integers(1, 500), st.floats(0, 1), st.sampled_from([0.5, 0.8, 0.9, 0.95, 0.99]))
def test_wilson_ci_brackets_the_proportion(n, frac, level):
    k = math.floor(frac * n)
    lo, hi = wilson_ci(k, n, level)
    assert 0.0 <= lo <= k / n <= hi <= 1.0
