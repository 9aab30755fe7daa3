"""Per-response behaviour measures that a model cannot raise by parroting the user or by breaking down.

Pure Python. A *word* is a maximal run of letters, combining marks and digits (Unicode categories L*, M*, N*),
lowercased; everything else (spaces, punctuation, symbols, apostrophes) separates words, so "I'm" is two words.
"""
from __future__ import annotations

import math
import re
import unicodedata
from collections import Counter
from functools import lru_cache
from statistics import NormalDist

_STOPWORDS = frozenset(
    "about above after again also always am among another anyone anything around because been before being below "
    "between both cannot could does doing done down during each either else ever every from further have having "
    "hello here herself himself into itself just know like made make many maybe more most much must myself need "
    "never often only other ours ourselves over please quite rather really same should since some something still "
    "such than thank thanks that their theirs them themselves then there these they thing things this those "
    "though through today under until upon usually very want wants well were what whatever when where whether "
    "which while will with within without would your yours yourself".split()
)
_Z95 = 1.959963984540054


def words(text: str) -> list[str]:
    """The lowercased words of `text`: maximal runs of characters in Unicode categories L*, M* or N*."""
    kept = "".join(c if unicodedata.category(c)[0] in "LMN" else " " for c in text)
    return kept.lower().split()


@lru_cache(maxsize=4096)
def _term_pattern(term: str) -> re.Pattern[str] | None:
    parts = term.split()
    if not parts:
        return None
    body = r"\s+".join(re.escape(p) for p in parts)
    return re.compile(rf"(?<![^\W_])(?:{body})(?:e?s)?(?![^\W_])", re.IGNORECASE)


def mentions(text: str, term: str) -> bool:
    """Whether `text` contains `term` as a whole word or phrase, case-insensitively.

    Rule: the term's words (split on whitespace) must appear in order, separated by any run of whitespace,
    optionally followed by the plural suffix "s" or "es", and the match must be neither preceded nor followed
    by a letter or digit (Python's `\\w` minus "_"). So "lentils" mentions "lentil", "buses" mentions "bus",
    "Ice  Cream" mentions "ice cream", but "hammer" does not mention "ham" nor "business" "bus".
    A blank term is never mentioned.
    """
    pattern = _term_pattern(term)
    return pattern is not None and pattern.search(text) is not None


def content_words(text: str) -> set[str]:
    """The distinct words of `text` (see `words`) having at least 4 letters and not in the built-in stopword list."""
    return {w for w in words(text) if sum(c.isalpha() for c in w) >= 4 and w not in _STOPWORDS}


def adherence(response: str, context: str, avoid: list[str], expect: list[str]) -> dict:
    """How `response` follows the user's `context`, without credit for repeating the context back.

    - violation: 1.0 if the response mentions (see `mentions`) any `avoid` term, else 0.0; None if `avoid` is empty.
    - cue: 1.0 if the response mentions at least one creditable `expect` term, else 0.0. A term is creditable
      only if the context does not mention it, so echoing the context earns nothing; None if no term is creditable.
    - parrot: share of the context's content words (see `content_words`) that occur as words of the response,
      exact lowercase match (0-1); None if the context has no content word.
    """
    violation = float(any(mentions(response, t) for t in avoid)) if avoid else None
    creditable = [t for t in expect if not mentions(context, t)]
    cue = float(any(mentions(response, t) for t in creditable)) if creditable else None
    ctx = content_words(context)
    parrot = len(ctx & set(words(response))) / len(ctx) if ctx else None
    return {"violation": violation, "cue": cue, "parrot": parrot}


def _ngrams(ws: list[str], n: int) -> list[tuple[str, ...]]:
    return [tuple(ws[i : i + n]) for i in range(len(ws) - n + 1)]


def _is_text_char(c: str) -> bool:
    cat = unicodedata.category(c)
    if cat[0] in "LMNP" or cat in ("Sm", "Sc"):
        return True
    return ord(c) < 0x100 and cat[0] != "C"  # Latin-1 symbols such as ^ | ~ ° © ×


def nontext_share(text: str) -> float:
    """Share of the non-whitespace characters of `text` that are not text; 0.0 when there are none.

    A character is text if its Unicode category is a letter (L*, any script), mark (M*), number (N*),
    punctuation (P*), math symbol (Sm) or currency symbol (Sc), or if it is a non-control Latin-1 character
    (code point < 256, e.g. ° © ^ |). Everything else counts as non-text: emoji and other symbols (So, Sk
    beyond Latin-1), control, format (e.g. zero-width joiner), private-use, surrogate and unassigned characters.
    """
    chars = [c for c in text if not c.isspace()]
    return sum(not _is_text_char(c) for c in chars) / len(chars) if chars else 0.0


_LOOP = re.compile(r"(\S{2,12})\1{2,}", re.IGNORECASE)


def char_loop(text: str) -> bool:
    """Whether some chunk of 2-12 letters repeats at least 3 times back to back inside one run of letters.

    Rule: every character that is not a letter or mark (L*, M*) is replaced by a space, then the regex
    `(\\S{2,12})\\1{2,}` is searched case-insensitively. "Komunikomunikomuni", "hahaha" and "aaaaaa" loop;
    "Mississippi" ("iss" twice), "banana" ("an" twice), "ha ha ha", numbers and "-----" rules do not.
    """
    kept = "".join(c if unicodedata.category(c)[0] in "LM" else " " for c in text)
    return _LOOP.search(kept) is not None


def degeneration(response: str) -> dict:
    """Signs that `response` broke down into repetition or non-text.

    - rep4: 1 - distinct word 4-grams / word 4-grams over the response's words (see `words`); 0.0 under 4 words.
    - nontext: see `nontext_share`.
    - char_loop: 1.0 if `char_loop` holds, else 0.0.
    - broken: 1.0 if rep4 > 0.5, nontext > 0.1, char_loop, or the response has no word at all (empty, blank or
      only punctuation/symbols); else 0.0.
    - words: number of words.
    """
    ws = words(response)
    grams = _ngrams(ws, 4)
    rep4 = 1.0 - len(set(grams)) / len(grams) if grams else 0.0
    nontext = nontext_share(response)
    loop = 1.0 if char_loop(response) else 0.0
    broken = rep4 > 0.5 or nontext > 0.1 or loop == 1.0 or not ws
    return {"rep4": rep4, "nontext": nontext, "char_loop": loop, "broken": float(broken), "words": len(ws)}


def distinct_n(responses: list[str], n: int) -> float | None:
    """Corpus-level distinct-n: distinct word n-grams / all word n-grams, n-grams taken within each response
    (see `words`) and pooled over all responses; None when there is no n-gram. Raises ValueError if n < 1."""
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    counts: Counter[tuple[str, ...]] = Counter()
    for r in responses:
        counts.update(_ngrams(words(r), n))
    total = sum(counts.values())
    return len(counts) / total if total else None


def wilson_ci(successes: float, n: int, level: float = 0.95) -> list[float] | None:
    """Wilson score interval [lo, hi] for the proportion successes / n; None when n == 0.

    With p = successes/n and z the two-sided normal quantile of `level` (1.959963984540054 for 0.95, else
    NormalDist().inv_cdf((1 + level) / 2)): centre = (p + z²/2n) / (1 + z²/n),
    half-width = z·sqrt(p(1-p)/n + z²/4n²) / (1 + z²/n). lo is exactly 0 at 0 successes and hi exactly 1 at n,
    both clipped to [0, 1]. Raises ValueError unless 0 <= successes <= n and 0 < level < 1.
    """
    if n == 0:
        return None
    if not 0 <= successes <= n or not 0 < level < 1:
        raise ValueError(f"need 0 <= successes <= n and 0 < level < 1, got {successes}, {n}, {level}")
    z = _Z95 if level == 0.95 else NormalDist().inv_cdf((1 + level) / 2)
    p, z2 = successes / n, z * z
    denom = 1 + z2 / n
    centre = (p + z2 / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z2 / (4 * n * n)) / denom
    lo = 0.0 if successes == 0 else max(0.0, centre - half)
    hi = 1.0 if successes == n else min(1.0, centre + half)
    return [lo, hi]
