"""mipo (the paper's method) and mipo-filtered: DPO on pairs chosen | x, rejected | x' (reference = the base)."""
from __future__ import annotations

import logging
from pathlib import Path

from ..distributed import single_process_only
from ..inference.hf import HFEngine
from ..io import MipoError, read_jsonl, write_json, write_jsonl
from .base import Method

log = logging.getLogger("mipo")


class Mipo(Method):
    name = "mipo"


class Filtered(Method):
    """DPO on the pairs whose PMI margin under the base model is above train.filter_margin (mipo/pair.py)."""
    name = "mipo-filtered"

    def fit(self, cfg, model, tok, rows: Path, out: Path, ref_model=None) -> dict:
        single_process_only(self.name)
        return super().fit(cfg, model, tok, self.filter(cfg, HFEngine(model, tok), rows, out), out, ref_model)

    @staticmethod
    def filter(cfg, base: HFEngine, pairs: Path, out: Path) -> Path:
        from ..pair import pmi_margins

        rows = read_jsonl(pairs)
        if any("negative_prompt" not in r for r in rows):
            raise MipoError(f"{pairs}: rows lack 'negative_prompt' (made by an older mipo); re-run generate")
        scored = pmi_margins(rows, lambda p, r: base.logprobs(p, r, batch_size=max(1, cfg.train.batch_size)))
        t = cfg.train.filter_margin
        kept = [{**r, "meta": {**r["meta"], "pmi_margin": s["margin"]}} for r, s in zip(rows, scored)
                if s["margin"] > t]
        if not kept:
            raise MipoError(f"{pairs}: every pair has a PMI margin <= {t}; nothing to train on")
        margins = sorted(s["margin"] for s in scored)
        write_jsonl(out / "pairs.filtered.jsonl", kept)
        write_json(out / "filter.json", {"threshold": t, "pairs": len(rows), "kept": len(kept),
                                         "dropped": len(rows) - len(kept), "median_margin": margins[len(margins) // 2],
                                         "margins": [s["margin"] for s in scored]})
        log.info("mipo-filtered: kept %d of %d pairs (PMI margin > %g); dropped %d", len(kept), len(rows), t,
                 len(rows) - len(kept))
        return out / "pairs.filtered.jsonl"
