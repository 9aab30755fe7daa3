"""mipo-iterative: `train.rounds` rounds of MIPO; round r samples from the round r-1 model and uses it as the
DPO reference (round 1 = plain MIPO on the shared pairs).

Each round ends with a full model in `train/round<r>/model` (a LoRA adapter is merged into the weights it was
trained on), which round r+1 loads as both sampler and reference; the last round's is also `train/model`, what
`mipo evaluate` loads. A finished round is not redone when the stage is re-run after a crash. Later rounds sample
through generate.engine when it can serve the round's weights (hf, vllm); a server (openai) serves the base
model only, so they sample in process.
"""
from __future__ import annotations

import dataclasses
import gc
import logging
import os
import shutil
from pathlib import Path

from .. import models
from ..distributed import single_process_only
from ..inference import Sampling, make_engine
from ..io import atomic_path, write_jsonl
from .base import Method

log = logging.getLogger("mipo")


class Iterative(Method):
    name = "mipo-iterative"

    def fit(self, cfg, model, tok, rows: Path, out: Path, ref_model=None) -> dict:
        from ..train import merge_from_disk, train_model_args

        single_process_only(self.name)
        rounds, prev = [], None  # prev: weights of the round r-1 model (None = the base)
        for r in range(1, cfg.train.rounds + 1):
            rdir = out / f"round{r}"
            if (rdir / "model").is_dir():
                log.info("mipo-iterative: round %d already done (%s)", r, rdir / "model")
                prev = str(rdir / "model")
                continue
            if r > 1:
                model, tok = models.load(train_model_args(cfg), prev)
                rows = self._round_pairs(cfg, model, tok, prev, r, rdir)
            # reference = the round r-1 model: with LoRA the weights under the adapter (adapters disabled); with full
            # fine-tuning an explicit frozen copy (DPOTrainer would otherwise reload the original base from its path)
            ref = None
            if not cfg.train.lora and prev is not None:
                ref, _ = models.load(train_model_args(cfg), prev)
                ref.eval()
            summary = super().fit(cfg, model, tok, rows, rdir, ref_model=ref)
            del model, ref
            gc.collect()
            if (rdir / "adapter").is_dir():  # LoRA: merge into the weights it was trained on (full FT wrote model/)
                merge_from_disk(cfg, rdir / "adapter", rdir / "model", base_dir=prev)
            rounds.append({"round": r, **{k: summary[k] for k in ("steps", "final_loss", "train_runtime_s")}})
            prev = str(rdir / "model")
            log.info("mipo-iterative: round %d done, model in %s", r, prev)
        with atomic_path(out / "model") as tmp:  # hard links: the last round's files, no second copy on disk
            shutil.copytree(prev, tmp, copy_function=os.link)
        return {"steps": sum(x["steps"] for x in rounds), "final_loss": rounds[-1]["final_loss"] if rounds else None,
                "rounds": rounds, "train_runtime_s": sum(x["train_runtime_s"] or 0 for x in rounds)}

    @staticmethod
    def _round_pairs(cfg, model, tok, prev: str, r: int, rdir: Path) -> Path:
        """Fresh pairs sampled from the round r-1 model (round index r-1: not the round-1 draws)."""
        from ..pair import build_pairs, check
        from ..tasks import get_task

        rpairs = rdir / "pairs.jsonl"
        if rpairs.exists():
            return rpairs
        task = get_task(cfg.task.name, cfg.task)
        items = task.load(cfg.task, cfg.task.train_split)
        g = cfg.generate
        engine_cfg = cfg if g.engine != "openai" else dataclasses.replace(
            cfg, generate=dataclasses.replace(g, engine="hf"))
        engine = make_engine(engine_cfg, prev, model=model.eval(), tok=tok)

        def sample_fn(prompts, seed, desc):
            return engine.sample(prompts, Sampling.of(g), seed=seed, batch_size=g.batch_size,
                                 desc=f"round {r} {desc}", resume_dir=rdir / "partial")

        write_jsonl(rpairs, build_pairs(task, items, cfg, check(task, items, cfg), sample_fn, round_=r - 1))
        shutil.rmtree(rdir / "partial", ignore_errors=True)
        return rpairs
