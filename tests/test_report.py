"""The report's check that an MI measure did not rise at the user's expense, and the InfoNCE candidates of the
personalization task (the same request under other users' contexts)."""
import random

from mipo.config import TaskArgs
from mipo.report.format import gamed
from mipo.tasks import get_task


def _metrics(**deltas):
    return {k: {"mean_difference": v, "ci": [v - 0.1, v + 0.1]} for k, v in deltas.items()}


def test_mi_up_while_the_user_gets_less_is_flagged():
    flags = gamed(_metrics(cond_mi=2.0, fluency=-0.5, violation=0.05, cue=0.02, broken=0.0))
    assert flags and "cond. MI" in flags[0]
    assert any("fluency" in f and "(CI excludes 0)" in f for f in flags)
    assert any("violations" in f for f in flags) and not any("tailored cues" in f for f in flags)
    assert not any("broken" in f for f in flags)  # no change is no harm


def test_no_flag_when_mi_falls_or_nothing_got_surely_worse():
    assert gamed(_metrics(cond_mi=-1.0, fluency=-0.5)) == []
    assert gamed(_metrics(cond_mi=1.0, fluency=0.2, violation=-0.05, cue=0.1)) == []
    assert gamed(_metrics(cond_mi=1.0, fluency=-0.05, cue=-0.02)) == []  # worse, but every CI spans 0: noise
    assert gamed({}) == []


def test_personalization_infonce_candidates_change_only_the_context():
    task = get_task("personalization")
    items = task.load(TaskArgs(), "test")[:12]
    own = task.messages(items[0])[-1]["content"]
    cands = task.candidates(items, 0, random.Random(0), 5)
    assert len(cands) == 5 and len({c[-1]["content"] for c in cands}) == 5
    for c in cands:
        text = c[-1]["content"]
        assert text != own and text.endswith(items[0].prompt) and items[0].context not in text
    assert cands == task.candidates(items, 0, random.Random(0), 5)  # seeded
