"""Task plug-ins. Each holds its data loading, prompt building, negatives and scoring in one file."""
from . import choice, math, personalization  # noqa: F401  (registers the tasks)
from .base import REGISTRY, Item, Task, get_task

__all__ = ["REGISTRY", "Item", "Task", "get_task"]
