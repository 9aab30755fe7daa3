"""File helpers: atomic artifacts and JSONL reading that fails with one clear line."""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterable, Iterator


class MipoError(Exception):
    """A user-facing error: the CLI prints its message as one line and exits 2."""


@contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary sibling path; rename it onto `path` only if the block succeeds.

    Works for files and directories, so a reader never sees a half-written artifact.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", dir=path.parent)) / path.name
    try:
        yield tmp
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        os.replace(tmp, path)
    finally:
        shutil.rmtree(tmp.parent, ignore_errors=True)


def write_text(path: str | os.PathLike, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def write_json(path: str | os.PathLike, obj: Any) -> None:
    write_text(path, json.dumps(obj, indent=2, ensure_ascii=False, sort_keys=True, allow_nan=False) + "\n")


def write_jsonl(path: str | os.PathLike, rows: Iterable[dict]) -> None:
    write_text(path, "".join(json.dumps(r, ensure_ascii=False, sort_keys=True) + "\n" for r in rows))


def iter_jsonl(path: str | os.PathLike) -> Iterator[tuple[str, dict]]:
    """Yield (`file:line`, row) for each non-blank line; a bad line raises naming file and line."""
    path = Path(path)
    if not path.is_file():
        raise MipoError(f"{path}: file not found")
    with path.open("rb") as f:
        for lineno, raw in enumerate(f, 1):
            where = f"{path}:{lineno}"
            try:
                line = raw.decode("utf-8-sig" if lineno == 1 else "utf-8")  # a BOM (Windows editors, Excel) is dropped
            except UnicodeDecodeError as e:
                raise MipoError(f"{where}: not UTF-8 text (byte {e.start + 1} of the line is {raw[e.start]:#04x}); "
                                f"save the file as UTF-8") from None
            if not line.strip():
                continue
            try:
                row = json.loads(line.rstrip("\r\n"))
            except json.JSONDecodeError as e:
                raise MipoError(f"{where}: malformed JSON ({e.msg} at column {e.colno})") from None
            if not isinstance(row, dict):
                raise MipoError(f"{where}: expected a JSON object, got {type(row).__name__}")
            yield where, row


def read_jsonl(path: str | os.PathLike) -> list[dict]:
    return [row for _, row in iter_jsonl(path)]


def causes(e: BaseException | None):
    """e, then what caused it, and so on: libraries wrap the errors that matter (an OSError, a refused socket)."""
    while e is not None:
        yield e
        e = e.__cause__ or e.__context__


def require_text(row: dict, field: str, where: str) -> str:
    """Return row[field] as a non-empty string or raise naming the file, row and field: a number, list or mapping
    where text belongs is refused, not turned into a prompt that reads "12345"."""
    value = row.get(field)
    if field not in row:
        present = ", ".join(repr(k) for k in list(row)[:6]) + (", …" if len(row) > 6 else "")
        hint = "; a CSV's first line must name the columns: no header row?" if ".csv:" in where else ""
        raise MipoError(f"{where}: field '{field}' is missing or empty (the row has {present or 'no fields'}{hint})")
    if value is None or (isinstance(value, str) and not value.strip()):
        raise MipoError(f"{where}: field '{field}' is missing or empty")
    if not isinstance(value, str):
        raise MipoError(f"{where}: field '{field}' must be text, got {kind(value)} {short(value)}; quote it in the file")
    return value


def require_id(row: dict, field: str, where: str) -> str:
    """An id or a label: text, or an integer (CSV and parquet columns of numbers), as a string."""
    value = row.get(field)
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return require_text(row, field, where)


def kind(value: Any) -> str:
    """"a number", "a list", … : what a JSON value is, in words."""
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    return {list: "a list", dict: "a mapping"}.get(type(value), f"a {type(value).__name__}")


def short(value: Any, limit: int = 40) -> str:
    text = json.dumps(value, ensure_ascii=False, default=str)
    return text if len(text) <= limit else text[:limit - 1] + "…"


MAX_HEADER = 100_000_000  # safetensors refuses a longer header


def size(n: int) -> str:
    """1.0 MB, 540 MB, 2.3 GB."""
    for unit, k in (("GB", 1e9), ("MB", 1e6), ("KB", 1e3)):
        if n >= k:
            return f"{n / k:.1f} {unit}" if n / k < 100 else f"{n / k:.0f} {unit}"
    return f"{n} bytes"


def safetensors_problem(path: Path) -> str | None:
    """What is wrong with a safetensors file, in words ("truncated: 1.0 MB of 540 MB"); None if nothing is. Reads
    its 8-byte header length and JSON header, compares the tensors' data offsets with the file's size, then lets
    safetensors open it (dtypes and shapes against the offsets): no tensor data is read."""
    total = path.stat().st_size
    with path.open("rb") as f:
        n = int.from_bytes(f.read(8), "little")
        if total < 8:
            return f"truncated: {total} bytes, not even a header length"
        if n > MAX_HEADER:
            return "not a safetensors file (its first 8 bytes are no header length)"
        if 8 + n > total:
            return f"truncated: {size(total)}, cut inside its header of {size(8 + n)}"
        try:
            header = json.loads(f.read(n))
            end = max((int(t["data_offsets"][1]) for k, t in header.items() if k != "__metadata__"), default=0)
        except (ValueError, KeyError, TypeError, AttributeError, IndexError):
            return "corrupt: its header is not a safetensors header"
    want = 8 + n + end
    if total != want:
        return (f"truncated: {size(total)} of {size(want)}" if total < want
                else f"corrupt: {size(total - want)} beyond the {size(want)} its header describes")
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt"):
            pass
    except Exception as e:  # SafetensorError: a dtype or shape at odds with the offsets, overlapping tensors
        return f"corrupt ({str(e).splitlines()[0] if str(e) else type(e).__name__})"
    return None


class BatchLog:
    """Append-only log of finished batches, so a stage killed mid-way resumes where it stopped.

    One JSON line per batch, flushed and fsynced. `key` names everything the values depend on (inputs, settings,
    seed); the file is named after it, so a log written under another config is never reused. A torn last
    line (kill -9 during a write) is ignored and that batch is redone.
    """

    def __init__(self, directory: str | os.PathLike | None, key: dict):
        digest = hashlib.sha256(json.dumps(key, sort_keys=True, default=str).encode()).hexdigest()[:20]
        self.path = Path(directory) / f"{digest}.jsonl" if directory is not None else None

    def load(self) -> dict[int, Any]:
        done: dict[int, Any] = {}
        if self.path is None or not self.path.exists():
            return done
        good = 0
        with self.path.open("rb") as f:
            for line in f:
                try:
                    rec = json.loads(line)
                except json.JSONDecodeError:
                    break  # torn tail: everything after it is redone
                done[rec["batch"]] = rec["values"]
                good += len(line)
        os.truncate(self.path, good)  # drop the torn tail so later appends start on a clean line
        return done

    def append(self, batch: int, values: Any) -> None:
        if self.path is None:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.open("a", encoding="utf-8") as f:
            f.write(json.dumps({"batch": batch, "values": values}, ensure_ascii=False) + "\n")
            f.flush()
            os.fsync(f.fileno())
