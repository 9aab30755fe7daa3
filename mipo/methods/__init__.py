"""MIPO and the paper's baselines: each a `Method` (base.py) that turns the base model's own samples into a model.

| method         | samples (generate stage)                     | training (train stage)                              |
|----------------|----------------------------------------------|-----------------------------------------------------|
| mipo           | pairs: chosen | x, rejected | x' (pair.py)   | TRL DPOTrainer, reference = base                    |
| mipo-filtered  | the same pairs                               | DPO on the pairs whose PMI margin > train.filter_margin |
| mipo-iterative | the same pairs for round 1                   | train.rounds x (sample from round r-1, DPO vs it)   |
| prompting      | none                                         | none: the base model with the full prompt           |
| sft-self       | the same pairs (chosen only)                 | TRL SFTTrainer on the chosen responses              |
| infonce, sami  | the same pairs (+ the prompt x' of each)     | contrastive loss over {chosen, rejected} x {x, x'}  |
| rlaif          | rlaif_samples per prompt, scored 1-5 by base | DPO on best vs worst (Self-Rewarding)               |
| mi-grpo        | prompt pairs (x, x') only                    | TRL GRPOTrainer, reward log p_ref(y|x) - log p_ref(y|x') |
| pmi-decode     | none                                         | none: the base model, context-aware decoding vs x'  |
| pmi-distill    | one pmi-decoded answer per prompt            | TRL SFTTrainer on those answers                     |

Methods whose samples are the same kind read the same pairs.jsonl (the generate stage's fingerprint records the
kind, not the method), so `mipo compare` samples once per seed for all of them.
"""
from __future__ import annotations

import difflib

from ..io import MipoError
from .base import Method, Prompting, SampleContext
from .contrastive import Contrastive
from .grpo import MIGRPO
from .iterative import Iterative
from .mipo import Filtered, Mipo
from .pmi import PMIDecode, PMIDistill
from .rlaif import RLAIF
from .sft import SFTSelf

METHODS: dict[str, Method] = {m.name: m for m in (
    Mipo(), Filtered(), Iterative(), Prompting(), SFTSelf(), Contrastive("infonce"), Contrastive("sami"), RLAIF(),
    MIGRPO(), PMIDecode(), PMIDistill())}

__all__ = ["METHODS", "Method", "SampleContext", "get_method"]


def get_method(name: str) -> Method:
    if name not in METHODS:
        near = difflib.get_close_matches(name, list(METHODS), n=1)
        hint = f"; did you mean '{near[0]}'?" if near else ""
        raise MipoError(f"unknown method '{name}' (known: {', '.join(METHODS)}){hint}")
    return METHODS[name]
