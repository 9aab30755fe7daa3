"""Context-aware decoding (mipo.inference.guidance) against transformers' classifier-free guidance and against
itself: batched = one pair at a time, alpha = 0 = plain decoding, seeded sampling reproducible and resumable."""
import pytest
import torch

from .conftest import sharp_fp32

REQUESTS = ["Suggest a quick dinner.", "Explain inflation.", "What is 3 + 4?", "Write a haiku about the sea."]
CONTEXTS = ["About me: I am vegan.", "About me: I live in Paris and love jazz.", "Solve step by step.",
            "About me: I grew up on a small island and I miss it."]
PROMPTS = [[{"role": "user", "content": f"{c}\n\n{r}"}] for c, r in zip(CONTEXTS, REQUESTS)]
NEGATIVES = [[{"role": "user", "content": r}] for r in REQUESTS]  # the same request without its context
GREEDY = 16


@pytest.fixture(scope="module")
def sharp(tiny_model_dir):
    """conftest's `sharp_fp32`: greedy paths differ between prompts and between guidance strengths, and padding's
    rounding cannot flip one."""
    return sharp_fp32(tiny_model_dir)


@pytest.fixture(scope="module")
def pairs(sharp):
    from mipo.inference.hf import prompt_ids

    _, tok = sharp
    return prompt_ids(tok, PROMPTS), prompt_ids(tok, NEGATIVES)


def _guided(model, tok, ids, neg, alpha, stop, n=GREEDY, **kw):
    from mipo.inference import Sampling
    from mipo.inference.guidance import guided_decode

    return guided_decode(model, ids, neg, Sampling(0, 1.0, n), alpha, pad_id=tok.pad_token_id, eos_ids=stop,
                         gen=None, **kw)


def _hf(model, tok, ids, neg, alpha, stop):
    """transformers' own guidance (UnbatchedClassifierFreeGuidanceLogitsProcessor), one unpadded pair: new tokens."""
    x, nx = torch.tensor([ids], device=model.device), torch.tensor([neg], device=model.device)
    out = model.generate(x, attention_mask=torch.ones_like(x), guidance_scale=1 + alpha, negative_prompt_ids=nx,
                         do_sample=False, max_new_tokens=GREEDY, pad_token_id=tok.pad_token_id, eos_token_id=sorted(stop))
    return out[0, x.shape[1]:].tolist()


def _only_in(rows: list[list[int]], i: int, at: int) -> int:
    """A token of rows[i], at `at` or after, that no other row holds: a stop token that ends row i alone."""
    others = {t for j, r in enumerate(rows) if j != i for t in r}
    return next(t for t in rows[i][at:] if t not in others and t not in rows[i][:at])


@pytest.mark.parametrize("alpha", [0.5, 2.0])
def test_greedy_guidance_equals_transformers_cfg(sharp, pairs, alpha):
    from mipo.inference.hf import eos_ids

    model, tok = sharp
    ids, neg = pairs
    stop = eos_ids(model, tok)
    # the last case's negative is another pair's longer true prompt: not only x' shorter than x
    cases = [(ids[0], neg[0]), (ids[1], neg[1]), (neg[0], ids[1])]
    mine = [_guided(model, tok, [p], [q], alpha, stop)[0] for p, q in cases]
    assert mine == [_hf(model, tok, p, q, alpha, stop) for p, q in cases]
    # the guidance did something: some greedy path differs from the unguided one
    assert mine != _guided(model, tok, [p for p, _ in cases], [q for _, q in cases], 0.0, stop)
    # a stop token met mid-way: both sides end there, the stop token kept as the last
    early = stop | {mine[0][5]}
    ended = _guided(model, tok, [ids[0]], [neg[0]], alpha, early)[0]
    assert ended == _hf(model, tok, ids[0], neg[0], alpha, early) and len(ended) <= 6 and ended[-1] == mine[0][5]

def test_batched_pairs_equal_pairs_decoded_alone(sharp, pairs):
    from mipo.inference.decode import shared_prefix
    from mipo.inference.hf import eos_ids

    model, tok = sharp
    ids, neg = pairs
    assert len({len(p) for p in ids + neg}) >= 6  # rows of many lengths: padding in the batch
    alone = [_guided(model, tok, [p], [q], 1.0, eos_ids(model, tok))[0] for p, q in zip(ids, neg)]
    # stop tokens that end two pairs early while the others go on: pairs leave the batch mid-decode
    stop = eos_ids(model, tok) | {_only_in(alone, 0, 4), _only_in(alone, 2, 8)}
    alone = [_guided(model, tok, [p], [q], 1.0, stop)[0] for p, q in zip(ids, neg)]
    assert min(map(len, alone)) < GREEDY and max(map(len, alone)) == GREEDY
    assert shared_prefix(ids + neg) >= 4  # the system turn goes through the shared-prefix cache
    batched = _guided(model, tok, ids, neg, 1.0, stop, min_prefix=4)
    assert batched == alone
    assert _guided(model, tok, ids, neg, 1.0, stop, min_prefix=4, prefill_rows=3) == alone  # uneven groups
    assert _guided(model, tok, ids, neg, 1.0, stop, min_prefix=10**9) == alone  # no shared prefix


def test_alpha_zero_or_same_negative_is_plain_decoding(sharp, pairs):
    from mipo.inference import Sampling
    from mipo.inference.decode import decode
    from mipo.inference.hf import eos_ids

    model, tok = sharp
    ids, neg = pairs
    stop = eos_ids(model, tok)
    plain = decode(model, ids, Sampling(0, 1.0, GREEDY), pad_id=tok.pad_token_id, eos_ids=stop, gen=None)
    assert _guided(model, tok, ids, neg, 0.0, stop) == plain
    assert _guided(model, tok, ids, ids, 2.0, stop) == plain  # lp_c - lp_u = 0: the guidance cancels


def test_guided_sampling_is_seeded_and_resumes(sharp, tmp_path, monkeypatch):
    from mipo.inference import Sampling
    from mipo.inference import guidance
    from mipo.inference.hf import HFEngine

    engine = HFEngine(*sharp)
    kw = dict(seed=1, batch_size=2)
    s = Sampling(1.0, 0.9, 12)
    a = guidance.sample_guided(engine, PROMPTS, NEGATIVES, s, 1.0, resume_dir=tmp_path, **kw)
    assert len(a) == len(PROMPTS) and all(isinstance(x, str) for x in a)
    assert guidance.sample_guided(engine, PROMPTS, NEGATIVES, s, 1.0, **kw) == a
    assert guidance.sample_guided(engine, PROMPTS, NEGATIVES, s, 1.0, seed=2, batch_size=2) != a
    assert guidance.sample_guided(engine, PROMPTS, NEGATIVES, s, 0.5, **kw) != a
    assert len(list(tmp_path.glob("*.jsonl"))) == 1

    def boom(*args, **kwargs):
        raise AssertionError("a logged batch was decoded again")

    monkeypatch.setattr(guidance, "guided_decode", boom)
    assert guidance.sample_guided(engine, PROMPTS, NEGATIVES, s, 1.0, resume_dir=tmp_path, **kw) == a
    with pytest.raises(AssertionError):  # another alpha is another log: decoded anew
        guidance.sample_guided(engine, PROMPTS, NEGATIVES, s, 0.5, resume_dir=tmp_path, **kw)
