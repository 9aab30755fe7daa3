"""Which process am I? Read from the environment that `accelerate launch` / `torchrun` set for every process.

mipo does no distribution itself: `accelerate launch ... -m mipo train` runs the HF Trainer under DDP, DeepSpeed or
FSDP, and these helpers only decide which process writes the run directory (rank 0) and refuse to run the stages
that are not meant to be replicated (generation and evaluation run once; scale them out with generate.engine).
"""
from __future__ import annotations

import os

from .io import MipoError


def world_size() -> int:
    return int(os.environ.get("WORLD_SIZE", "1"))


def rank() -> int:
    return int(os.environ.get("RANK", "0"))


def local_rank() -> int | None:
    value = os.environ.get("LOCAL_RANK")
    return int(value) if value is not None else None


def is_main() -> bool:
    return rank() == 0


def single_process_only(stage: str) -> None:
    if world_size() > 1:
        raise MipoError(
            f"mipo {stage} runs in one process, but {world_size()} were launched; launch only `mipo train` with "
            f"accelerate (e.g. accelerate launch --config_file configs/accelerate/ddp.yaml -m mipo train ...), and "
            f"scale generation out with --generate.engine openai|vllm")
