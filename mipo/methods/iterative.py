"""mipo-iterative: `train.rounds` rounds of MIPO; round r samples from the round r-1 model and uses it as the
DPO reference (round 1 = plain MIPO on the shared pairs).

Each round ends with a full model in `train/round<r>/model` (a LoRA adapter is merged into the weights it was
trained on), which round r+1 loads as both sampler and reference; the last round's is also `train/model`, what
`mipo evaluate` loads. A finished round is not redone when the stage is re-run after a crash.
"""
from __future__ import annotations

import dataclasses
import gc
import logging
import os
import shutil
from pathlib import Path

from .. import models
from ..io import atomic_path, write_jsonl

log = logging.getLogger("mipo")


def train(cfg, model, tok, pairs: Path, out: Path) -> dict:
    from .. import generate
    from ..pair import build_pairs
    from ..tasks import get_task
    from ..train import merge_from_disk, train as run_train

    rounds = []
    prev: str | None = None  # weights of the round r-1 model (None = the base)
    for r in range(1, cfg.train.rounds + 1):
        rdir = out / f"round{r}"
        if (rdir / "model").is_dir():
            log.info("mipo-iterative: round %d already done (%s)", r, rdir / "model")
            prev = str(rdir / "model")
            continue
        if r > 1:
            model, tok = models.load(cfg.model if cfg.train.lora else dataclasses.replace(cfg.model, dtype="float32"), prev)
            rpairs = rdir / "pairs.jsonl"
            if not rpairs.exists():
                task = get_task(cfg.task.name, cfg.task)
                items = task.load(cfg.task, cfg.task.train_split)
                g = cfg.generate
                model.eval()

                def sample_fn(prompts, seed, desc):
                    return generate.sample(model, tok, prompts, temperature=g.temperature, top_p=g.top_p,
                                           max_new_tokens=g.max_new_tokens, batch_size=g.batch_size, seed=seed,
                                           desc=f"round {r} {desc}", resume_dir=rdir / "partial")

                # fresh samples from the round r-1 model: seed offset per round so they are not the round-1 draws
                write_jsonl(rpairs, build_pairs(task, items, dataclasses.replace(cfg, seed=cfg.seed + 100 * (r - 1)),
                                                sample_fn))
                shutil.rmtree(rdir / "partial", ignore_errors=True)
                model.train()
        else:
            rpairs = pairs
        # reference = the round r-1 model: with LoRA the weights under the adapter (adapters disabled); with full
        # fine-tuning an explicit frozen copy (DPOTrainer would otherwise reload the original base from its path)
        ref = None
        if not cfg.train.lora and prev is not None:
            ref, _ = models.load(dataclasses.replace(cfg.model, dtype="float32"), prev)
            ref.eval()
        model.train()
        summary = run_train(cfg, model, tok, rpairs, rdir, ref_model=ref)
        del model, ref
        gc.collect()
        if (rdir / "adapter").is_dir():  # LoRA: merge into the weights it was trained on (full FT wrote rdir/model)
            merge_from_disk(cfg, rdir / "adapter", rdir / "model", base_dir=prev)
        rounds.append({"round": r, **{k: summary[k] for k in ("steps", "final_loss", "train_runtime_s")}})
        prev = str(rdir / "model")
        log.info("mipo-iterative: round %d done, model in %s", r, prev)
    final = out / "model"
    with atomic_path(final) as tmp:  # hard links: the last round's files, no second copy on disk
        shutil.copytree(prev, tmp, copy_function=os.link)
    return {"steps": sum(x["steps"] for x in rounds), "final_loss": rounds[-1]["final_loss"] if rounds else None,
            "rounds": rounds, "train_runtime_s": sum(x["train_runtime_s"] or 0 for x in rounds)}
