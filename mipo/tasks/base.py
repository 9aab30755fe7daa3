"""What a task plug-in holds: how to read its rows, build its prompts and score its responses."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator

from ..config import TaskArgs
from ..inference import Messages
from ..io import MipoError, iter_jsonl

# scorer(prompts, responses) -> log p(response | prompt) under the base model, one float per pair
Scorer = Callable[[list[Messages], list[str]], list[float]]


@dataclass
class Item:
    id: str
    prompt: str  # the request / question
    context: str | None = None  # user context (personalization); None where the task has none
    answer: str | None = None  # gold answer where the task has one
    reference: str | None = None  # a reference response (personalization sets), compared against by the judge
    meta: dict = field(default_factory=dict)
    where: str = ""  # `file:line` it came from, for error messages


class Task:
    name: str = ""
    default_negative: str = "random_prompt"
    negatives: tuple[str, ...] = ("random_prompt",)
    hub_id: str | None = None  # default Hub dataset when no `data` is given
    hub_config: str | None = None
    hub_single_split: str | None = None  # Hub sets published as one split: load it and cut it like a single file
    # the authors' variants this task has: "task.prompt_style", "task.extraction", "evaluate.extract_with_model"
    paper_options: tuple[str, ...] = ()
    args: TaskArgs  # set by get_task / load: prompts may depend on config (few-shot, column names)

    def __init__(self, args: TaskArgs | None = None):
        self.args = args or TaskArgs(name=self.name)
        self.drawn: dict[str, str] = {}  # split -> which of its items `load` took, for the reports

    # -- data -------------------------------------------------------------------------------------------
    def parse(self, row: dict, where: str) -> Item:
        raise NotImplementedError

    def load(self, args: TaskArgs, split: str) -> list[Item]:
        self.args = args
        items = []
        for where, row in self.rows(args, split):
            items.append(self.parse(row, where))
            items[-1].where = where
        if not items:
            raise self.no_items(args, split)
        unique_ids(items, split)  # every row of the split, not only the ones `subset` takes
        items, self.drawn[split] = self.subset(items, args, split)
        return items

    def no_items(self, args: TaskArgs, split: str) -> MipoError:
        """Why a split has no items, naming the file: it holds no rows, none of its rows is of that split, or it is
        one file too short to cut 70/30."""
        path = Path(args.data).expanduser() if args.data else None
        if path is None or not path.is_file():
            return MipoError(f"{args.data or self.hub_id or 'task ' + self.name}: split '{split}' has no items")
        rows = [r for _, r in read_rows(path)]
        if not rows:
            return MipoError(f"{path}: the file holds no rows, so split '{split}' has no items")
        if all("split" in r for r in rows):
            named = ", ".join(sorted({str(r["split"]) for r in rows}))
            return MipoError(f"{path}: no row has split '{split}' (the rows' 'split' fields name: {named}); choose "
                             f"with --task.train_split / --task.eval_split")
        return MipoError(f"task {self.name}: split '{split}' has no items; a single file whose rows have no 'split' "
                         f"field is cut 70/30 in file order, so it needs at least 2 rows, and {path} holds "
                         f"{len(rows)} (or give each row a 'split' field)")

    @staticmethod
    def subset(items: list[Item], args: TaskArgs, split: str) -> tuple[list[Item], str]:
        """The first `n_train` items of the train split; `n_eval` items of the eval split drawn as `eval_draw` says.
        Returns them and what was taken, in words."""
        limit = args.n_train if split == args.train_split else args.n_eval
        if limit is None or limit >= len(items):
            return items, f"all {len(items)} items of split '{split}'"
        taken = f"{limit} of {len(items)} items of split '{split}'"
        if split != args.train_split and args.eval_draw == "random":
            import numpy as np

            order = np.random.RandomState(args.eval_seed).permutation(len(items))[:limit]
            return [items[i] for i in order], f"{taken}, a random draw (task.eval_seed {args.eval_seed})"
        return items[:limit], f"{taken}, the first in file order"

    def rows(self, args: TaskArgs, split: str) -> Iterator[tuple[str, dict]]:
        """Rows of a split, each with where it came from (`file:line`, `file:row N`) for error messages.

        `data` may be a JSONL/JSON/parquet/CSV file (one file for every split, see `split_rows`), a directory
        holding `<split>.jsonl|.json|.parquet|.csv`, or a Hub dataset name (config: `task.subset`).
        """
        source = args.data or self.hub_id
        if source is None:
            raise MipoError(f"task {self.name}: no data given (--task.data)")
        path = Path(source).expanduser()
        if path.is_dir():
            yield from dir_rows(path, args.subset, split)
        elif args.data and args.subset:
            raise MipoError(f"{path}: task.subset '{args.subset}' names a Hub config or a sub-directory of a local "
                            f"directory, not part of a file; point --task.data at the subset's own file instead")
        elif path.suffix in DATA_SUFFIXES or path.exists():
            yield from self.split_rows(list(read_rows(path)), split, args)
        else:
            yield from self.hub_rows(source, split, args)

    def split_rows(self, rows: list[tuple[str, dict]], split: str, args: TaskArgs):
        """One file for every split: rows carry a `split` field, or the last 30% (in file order) are held out."""
        if rows and all("split" in r for _, r in rows):
            return [(w, r) for w, r in rows if r["split"] == split]
        cut = int(len(rows) * 0.7)
        return rows[:cut] if split == args.train_split else rows[cut:]

    def hub_rows(self, name: str, split: str, args: TaskArgs):
        config = args.subset or self.hub_config
        rows = hub_split(name, config, self.hub_single_split or split)
        return self.split_rows(rows, split, args) if self.hub_single_split else rows

    # -- prompts ----------------------------------------------------------------------------------------
    def messages(self, item: Item, with_context: bool = True) -> Messages:
        raise NotImplementedError

    candidate_kind = "other held-out prompts"  # what `candidates` draws, for the report

    def candidates(self, items: list[Item], i: int, rng, k: int) -> list[Messages]:
        """The InfoNCE candidate prompts of item i besides its own: k other items' prompts (seeded draw)."""
        return [self.messages(items[j]) for j in rng.sample([j for j in range(len(items)) if j != i], k)]

    # -- scoring ----------------------------------------------------------------------------------------
    primary_metric: str = ""
    higher_is_better: bool = True

    def score(self, items: list[Item], responses: list[str], base_scorer: Scorer) -> list[dict[str, float]]:
        """Per-item metrics of one model's responses (floats; averaged by the evaluator)."""
        raise NotImplementedError

    def text_score(self, items: list[Item], responses: list[str]) -> list[dict[str, float]]:
        """The per-item metrics that need no model (the answer read from the text, adherence to the context): what
        `mipo generate` can say of the pairs before anything is trained (mipo/pair.py: `diagnose`); none by
        default."""
        return [{} for _ in items]

    def summarize(self, items: list[Item], per_item: list[dict]) -> dict:
        """Extra aggregate metrics beyond the per-item means (e.g. MMLU per subject); {} by default."""
        return {}


def row_id(row: dict, where: str, key: str = "id") -> str:
    """The row's id, or for a row without one its place without the directory (`test.jsonl:12`, `mmlu[test][3]`):
    stable when the data moves (an absolute path would change the ids, and with them every resume key)."""
    value = row.get(key)
    return str(value) if value not in (None, "") else where.replace("\\", "/").rsplit("/", 1)[-1]


def unique_ids(items: list[Item], split: str) -> None:
    """Refuse two items with one id (resume keys, pairs and reports are keyed by it), naming both places."""
    seen: dict[str, str] = {}
    for it in items:
        if it.id in seen:
            raise MipoError(f"{seen[it.id]}: item id '{it.id}' is used again at {again(it.where, seen[it.id])} (split "
                            f"'{split}'); ids must be unique")
        seen[it.id] = it.where


def again(where: str, first: str) -> str:
    """`where` without the file when it is the file of `first`: "line 9", "item 3", "row 4"."""
    file, _, at = where.rpartition(":")
    if file and file == first.rpartition(":")[0]:
        return f"line {at}" if at.isdigit() else at
    return where


DATA_SUFFIXES = (".jsonl", ".json", ".parquet", ".csv")


def dir_rows(path: Path, subset: str | None, split: str) -> Iterator[tuple[str, dict]]:
    """A directory in a Hub layout: `[<subset>/]<split>.<ext>`, or the shards `<split>-00000-of-00002.<ext>`, … ."""
    if subset:
        if not (path / subset).is_dir():
            subdirs = sorted(p.name for p in path.iterdir() if p.is_dir())
            raise MipoError(f"{path}: task.subset '{subset}' has no sub-directory here (sub-directories: "
                            f"{', '.join(subdirs) or 'none'})")
        path = path / subset
    for ext in DATA_SUFFIXES:
        files = [path / f"{split}{ext}"] if (path / f"{split}{ext}").is_file() else sorted(path.glob(f"{split}-*{ext}"))
        if files:
            n = 0
            for f in files:
                for n, row in enumerate(read_rows(f), n + 1):
                    yield row
            if not n:
                raise MipoError(f"{', '.join(map(str, files))}: the file holds no rows, so split '{split}' has no items")
            return
    present = sorted({f.name.split("-")[0].rsplit(".", 1)[0] for f in path.iterdir() if f.suffix in DATA_SUFFIXES})
    raise MipoError(f"{path}: no file for split '{split}' ({split}.jsonl, .json, .parquet or .csv); splits here: "
                    f"{', '.join(present) or 'none'} (choose with --task.train_split / --task.eval_split)")


def read_rows(path: Path) -> Iterator[tuple[str, dict]]:
    """(where, row) for a JSONL/JSON, parquet or CSV file in a Hub row layout."""
    if path.suffix == ".json" and path.is_file():
        text = read_text(path)
        if text.lstrip().startswith("["):
            yield from json_rows(path, text)
            return
    if path.suffix not in (".parquet", ".csv"):
        yield from iter_jsonl(path)
        return
    if not path.is_file():
        raise MipoError(f"{path}: file not found")
    import datasets

    shown = datasets.is_progress_bar_enabled()
    datasets.disable_progress_bars()  # a local file is read in a blink: no "Generating train split" bars
    try:
        ds = datasets.load_dataset(path.suffix[1:], data_files=str(path), split="train")
    except Exception as e:  # unreadable file: say which and why, in one line
        raise MipoError(f"{path}: cannot read {path.suffix[1:]} ({type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''})") from None
    finally:
        if shown:
            datasets.enable_progress_bars()
    for i, row in enumerate(ds):  # CSV: `file:line` (line 1 is the header); parquet: `file:row N` (from 1)
        yield (f"{path}:{i + 2}" if path.suffix == ".csv" else f"{path}:row {i + 1}"), dict(row)


def read_text(path: Path) -> str:
    """A text file's content, without the BOM Windows editors and Excel put first; not UTF-8: one line."""
    try:
        return path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as e:
        raise MipoError(f"{path}: not UTF-8 text (byte {e.start + 1} is {e.object[e.start]:#04x}); save the file as "
                        f"UTF-8") from None


def json_rows(path: Path, text: str) -> Iterator[tuple[str, dict]]:
    """The objects of a JSON array, each `file:item i`."""
    import json

    try:
        data = json.loads(text)
    except json.JSONDecodeError as e:
        raise MipoError(f"{path}: malformed JSON ({e.msg} at line {e.lineno})") from None
    for i, row in enumerate(data):
        if not isinstance(row, dict):
            raise MipoError(f"{path}: item {i}: expected a JSON object, got {type(row).__name__}")
        yield f"{path}:item {i}", row


def hub_split(name: str, config: str | None, split: str) -> list[tuple[str, dict]]:
    from datasets import load_dataset

    try:
        ds = load_dataset(name, config, split=split)
    except Exception as e:  # offline or unknown dataset: say which
        what = f"{name}" + (f" ({config})" if config else "")
        raise MipoError(f"{what}: cannot load Hub dataset split '{split}' ({type(e).__name__})") from None
    return [(f"{name}[{split}][{i}]", dict(row)) for i, row in enumerate(ds)]


REGISTRY: dict[str, Callable[[], Task]] = {}


def register(cls):
    REGISTRY[cls.name] = cls
    return cls


def get_task(name: str, args: TaskArgs | None = None) -> Task:
    if name not in REGISTRY:
        import difflib

        near = difflib.get_close_matches(name, list(REGISTRY), n=1)
        hint = f"; did you mean '{near[0]}'?" if near else ""
        raise MipoError(f"unknown task '{name}' (known: {', '.join(sorted(REGISTRY))}){hint}")
    return REGISTRY[name](args)
