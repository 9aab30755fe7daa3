"""What a task plug-in holds: how to read its rows, build its prompts and score its responses."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator

from ..config import TaskArgs
from ..io import MipoError, iter_jsonl

Messages = list[dict[str, str]]
# scorer(prompts, responses) -> log p(response | prompt) under the base model, one float per pair
Scorer = Callable[[list[Messages], list[str]], list[float]]


@dataclass
class Item:
    id: str
    prompt: str  # the request / question
    context: str | None = None  # user context (personalization); None where the task has none
    answer: str | None = None  # gold answer where the task has one
    meta: dict = field(default_factory=dict)
    where: str = ""  # `file:line` it came from, for error messages


class Task:
    name: str = ""
    default_negative: str = "random_prompt"
    negatives: tuple[str, ...] = ("random_prompt",)
    hub_id: str | None = None  # default Hub dataset when no `data` is given
    hub_config: str | None = None

    # -- data -------------------------------------------------------------------------------------------
    def parse(self, row: dict, where: str) -> Item:
        raise NotImplementedError

    def load(self, args: TaskArgs, split: str) -> list[Item]:
        items = []
        for where, row in self.rows(args, split):
            items.append(self.parse(row, where))
            items[-1].where = where
        limit = args.n_train if split == args.train_split else args.n_eval
        items = items[:limit] if limit is not None else items
        if not items:
            raise MipoError(f"task {self.name}: split '{split}' has no items")
        seen = set()
        for it in items:
            if it.id in seen:
                raise MipoError(f"task {self.name}: duplicate item id '{it.id}' in split '{split}'")
            seen.add(it.id)
        return items

    def rows(self, args: TaskArgs, split: str) -> Iterator[tuple[str, dict]]:
        """Rows of a split, each with where it came from (`file:line`) for error messages.

        `data` may be a JSONL/JSON-lines file, a directory holding `<split>.jsonl`, or a Hub dataset name.
        """
        source = args.data or self.hub_id
        if source is None:
            raise MipoError(f"task {self.name}: no data given (--task.data)")
        path = Path(source).expanduser()
        if path.is_dir():
            path = path / f"{split}.jsonl"
            if not path.is_file():
                raise MipoError(f"{path}: split file not found")
            yield from iter_jsonl(path)
        elif path.suffix in (".jsonl", ".json") or path.exists():
            yield from self.split_rows(list(iter_jsonl(path)), split, args)
        else:
            yield from self.hub_rows(source, split)

    def split_rows(self, rows: list[tuple[str, dict]], split: str, args: TaskArgs):
        """One file for every split: rows carry a `split` field, or the last 30% (in file order) are held out."""
        if rows and all("split" in r for _, r in rows):
            return [(w, r) for w, r in rows if r["split"] == split]
        cut = int(len(rows) * 0.7)
        return rows[:cut] if split == args.train_split else rows[cut:]

    def hub_rows(self, name: str, split: str):
        from datasets import load_dataset

        try:
            ds = load_dataset(name, self.hub_config, split=split)
        except Exception as e:  # offline or unknown dataset: say which
            raise MipoError(f"{name}: cannot load Hub dataset split '{split}' ({type(e).__name__})") from None
        for i, row in enumerate(ds):
            yield f"{name}[{split}][{i}]", dict(row)

    # -- prompts ----------------------------------------------------------------------------------------
    def messages(self, item: Item, with_context: bool = True) -> Messages:
        raise NotImplementedError

    # -- scoring ----------------------------------------------------------------------------------------
    primary_metric: str = ""
    higher_is_better: bool = True

    def score(self, items: list[Item], responses: list[str], base_scorer: Scorer) -> list[dict[str, float]]:
        """Per-item metrics of one model's responses (floats; averaged by the evaluator)."""
        raise NotImplementedError


REGISTRY: dict[str, Callable[[], Task]] = {}


def register(cls):
    REGISTRY[cls.name] = cls
    return cls


def get_task(name: str) -> Task:
    if name not in REGISTRY:
        import difflib

        near = difflib.get_close_matches(name, list(REGISTRY), n=1)
        hint = f"; did you mean '{near[0]}'?" if near else ""
        raise MipoError(f"unknown task '{name}' (known: {', '.join(sorted(REGISTRY))}){hint}")
    return REGISTRY[name]()
