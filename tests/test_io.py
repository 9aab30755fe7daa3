import json

import pytest

from mipo.io import MipoError, atomic_path, read_jsonl, write_json, write_jsonl


def test_atomic_write_leaves_nothing_on_failure(tmp_path):
    target = tmp_path / "out.jsonl"
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            tmp.write_text("half")
            raise RuntimeError("crash mid-write")
    assert list(tmp_path.iterdir()) == []


def test_atomic_replace_of_directory(tmp_path):
    target = tmp_path / "adapter"
    target.mkdir()
    (target / "old").write_text("x")
    with atomic_path(target) as tmp:
        tmp.mkdir()
        (tmp / "new").write_text("y")
    assert sorted(p.name for p in target.iterdir()) == ["new"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["adapter"]


def test_jsonl_roundtrip_and_errors(tmp_path):
    rows = [{"a": 1, "b": "é"}, {"a": 2}]
    write_jsonl(tmp_path / "x.jsonl", rows)
    assert read_jsonl(tmp_path / "x.jsonl") == rows
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"a": 1}\n\n{"a": 2\n')
    with pytest.raises(MipoError, match=r"bad.jsonl:3: malformed JSON"):
        read_jsonl(bad)
    bad.write_text('[1, 2]\n')
    with pytest.raises(MipoError, match=r"bad.jsonl:1: expected a JSON object, got list"):
        read_jsonl(bad)
    with pytest.raises(MipoError, match="file not found"):
        read_jsonl(tmp_path / "missing.jsonl")


def test_write_json_is_sorted_and_parses(tmp_path):
    write_json(tmp_path / "m.json", {"b": 1, "a": [1.5]})
    assert json.loads((tmp_path / "m.json").read_text()) == {"a": [1.5], "b": 1}
