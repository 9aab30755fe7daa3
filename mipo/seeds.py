"""Every seed mipo uses, derived from the run seed in one place.

    derive(seed, purpose, index) = (seed * multiplier + offset + index * step) mod 2**31

The purposes and their constants are the table below. The constants are the ones mipo has always used, so runs
made before this table existed reproduce byte for byte; each purpose gets its own offset or multiplier so that two
purposes of one run do not draw the same stream. Artifacts record the *run* seed (`meta.seed`, `config.yaml`) and
the purpose's index (`meta.sample`, the round), from which any derived seed follows.
"""
from __future__ import annotations

# purpose: (multiplier, offset, step)
PURPOSES = {
    "sample": (1, 0, 1000),        # the s-th set of pairs of a prompt (generate.samples_per_prompt, rlaif samples)
    "negatives": (1, 500, 0),      # the second generation of a pair (from the corrupted prompt x')
    "round": (1, 0, 100),          # mipo-iterative round r samples with index r - 1
    "eval": (1, 7, 0),             # evaluation decoding
    "extract": (1, 13, 0),         # evaluate.extract_with_model: the evaluated model reading its own answers
    "infonce": (1, 11, 0),         # the InfoNCE candidate draw
    "judge": (1, 0, 1),            # the judge's requests; index = attempt (0, then 1 for the format retry)
    "self_judge": (1, 77, 1),      # rlaif's written self-judgements; index = attempt
    "batch": (100_003, 0, 1),      # the generator of the b-th batch of an in-process sampling call
    "request": (1_000_003, 0, 1),  # the seed sent with the i-th request of a server sampling call
}


def derive(seed: int, purpose: str, index: int = 0) -> int:
    mult, offset, step = PURPOSES[purpose]
    return (seed * mult + offset + index * step) % 2**31
