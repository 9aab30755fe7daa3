"""What a method is: how it turns the base model's own samples into pairs (the generate stage) and how it trains
on them (the train stage). The pipeline runs the stages and asks the method; it knows no method by name."""
from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

from ..config import Config
from ..inference import Sampling, make_engine
from ..tasks import Item, Task


@dataclass
class SampleContext:
    """What the generate stage hands a method: the config, the task and its train items, where the resolved model
    lives, and where finished batches are logged. The engine (generate.engine) is loaded on first use."""
    cfg: Config
    task: Task
    items: list[Item]
    model_path: str
    resume_dir: Path
    strategy: str | None = None  # the negative strategy Method.check resolved
    stats: dict = field(default_factory=dict)  # what the method wants recorded in the stage's stamp

    @cached_property
    def engine(self):
        return make_engine(self.cfg, self.model_path)

    def sample(self, prompts, seed: int, desc: str, sampling: Sampling | None = None) -> list[str]:
        g = self.cfg.generate
        return self.engine.sample(prompts, sampling or Sampling.of(g), seed=seed, batch_size=g.batch_size,
                                  desc=desc, resume_dir=self.resume_dir)


class Method:
    name: str = ""
    samples: str | None = "pairs"  # the kind of samples: methods of one kind share them (`mipo compare`)
    trains: bool = True
    guided: bool = False  # its answers are decoded with guidance against x' (pmi-decode), at generate.pmi_alpha
    # the fields of a pairs.jsonl row its training reads: checked on every row before the weights load
    pair_fields: tuple[str, ...] = ("prompt", "chosen", "rejected")

    def check(self, cfg: Config, task: Task, items: list[Item]) -> str | None:
        """Refuse settings that cannot work, before any weights load; return the negative strategy (or None)."""
        from ..pair import check

        return check(task, items, cfg)

    def make_samples(self, ctx: SampleContext) -> list[dict]:
        """The rows of pairs.jsonl: chosen | x and rejected | x' (mipo/pair.py)."""
        from ..pair import build_pairs

        return build_pairs(ctx.task, ctx.items, ctx.cfg, ctx.strategy, ctx.sample)

    def trainer(self, cfg: Config, model, tok, rows: Path, output_dir: str, ref_model=None):
        """The TRL trainer on the rows of `rows`: DPO, reference = the base model (or `ref_model`)."""
        from ..train import make_dpo_trainer, pairs_dataset

        return make_dpo_trainer(cfg, model, tok, pairs_dataset(rows), output_dir, ref_model)

    def fit(self, cfg: Config, model, tok, rows: Path, out: Path, ref_model=None) -> dict:
        """Train on `rows`, write the result under `out` (adapter/ or model/), return the training summary."""
        from ..train import fit

        if cfg.train.max_echo < 1:
            rows = drop_echoes(cfg, rows, out)
        model.train()
        trainer = self.trainer(cfg, model, tok, rows, str(out / "checkpoints"), ref_model)
        return fit(cfg, trainer, tok, out, cfg.fingerprint("task", "generate", "train", method=self.name))


class Prompting(Method):
    """The base model with the full prompt: no samples, no training (the "before" of every table)."""
    name, samples, trains = "prompting", None, False


def drop_echoes(cfg: Config, rows: Path, out: Path) -> Path:
    """The pairs whose chosen response echoes at most train.max_echo of what x' lacks (pair.echo_share), in
    out/pairs.echo-filtered.jsonl; out/echo_filter.json says how many were dropped."""
    from ..io import MipoError, read_jsonl, write_json, write_jsonl
    from ..pair import echo_share

    data = read_jsonl(rows)
    shares = [echo_share(r) if r.get("chosen") and r.get("negative_prompt") else None for r in data]
    kept = [r for r, e in zip(data, shares) if e is None or e <= cfg.train.max_echo]
    if not kept:
        raise MipoError(f"{rows}: every pair's chosen response echoes more than train.max_echo="
                        f"{cfg.train.max_echo} of the context; nothing to train on")
    write_jsonl(out / "pairs.echo-filtered.jsonl", kept)
    write_json(out / "echo_filter.json", {"max_echo": cfg.train.max_echo, "pairs": len(data), "kept": len(kept),
                                          "shares": shares})
    return out / "pairs.echo-filtered.jsonl"
