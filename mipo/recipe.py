"""Reading a YAML recipe or the command line's flags into a Config: every key checked against the fields, every
value coerced to its field's type, one line naming the file (or "command line") and the key when one is wrong."""
from __future__ import annotations

import difflib
from dataclasses import fields
from pathlib import Path
from typing import Any

import yaml

from .config import SECTIONS, TOP_LEVEL, Config
from .io import MipoError


def _coerce(value: Any, typ: Any, where: str) -> Any:
    if value is None:
        return None
    name = typ if isinstance(typ, str) else getattr(typ, "__name__", str(typ))
    name = name.replace(" | None", "").replace("None | ", "")
    if name == "bool":
        flags = {**dict.fromkeys(("1", "true", "yes", "on"), True), **dict.fromkeys(("0", "false", "no", "off"), False)}
        if isinstance(value, bool) or str(value).lower() in flags:
            return value if isinstance(value, bool) else flags[str(value).lower()]
        raise MipoError(f"{where}: expected true/false, got {value!r}")
    if isinstance(value, str) and value.lower() in ("none", "null") and "None" in str(typ):
        return None
    if name == "str" and isinstance(value, list):  # compare.methods / seeds written as a YAML list
        return ",".join(str(v) for v in value)
    try:
        return {"bool": bool, "int": int, "float": float, "str": str}[name](value)
    except (KeyError, ValueError, TypeError):
        raise MipoError(f"{where}: expected {name}, got {value!r}") from None


def _types(cls) -> dict[str, str]:
    return {f.name: str(f.type) for f in fields(cls)}


def _unknown(key: str, valid: list[str], where: str) -> MipoError:
    near = difflib.get_close_matches(key, valid, n=1)
    hint = f"; did you mean '{near[0]}'?" if near else f"; valid keys: {', '.join(valid)}"
    return MipoError(f"{where}: unknown key '{key}'{hint}")


def apply_overrides(cfg: Config, overrides: dict[str, Any], where: str) -> Config:
    """Apply a nested dict (YAML recipe) or flat dotted dict (CLI) onto cfg, validating every key."""
    top = _types(Config)
    for key, value in overrides.items():
        if "." in key:
            section, _, name = key.partition(".")
            value = {name: value}
        else:
            section = key
        if section in SECTIONS:
            if not isinstance(value, dict):
                raise MipoError(f"{where}: '{section}' must be a mapping of {', '.join(_types(SECTIONS[section]))}")
            obj, types = getattr(cfg, section), _types(SECTIONS[section])
            for name, v in value.items():
                if name not in types:
                    raise _unknown(f"{section}.{name}", [f"{section}.{n}" for n in types], where)
                setattr(obj, name, _coerce(v, types[name], f"{where}: {section}.{name}"))
        elif section in TOP_LEVEL:
            setattr(cfg, section, _coerce(value, top[section], f"{where}: {section}"))
        else:
            valid = list(TOP_LEVEL) + list(SECTIONS) + [f"{s}.{f.name}" for s, c in SECTIONS.items() for f in fields(c)]
            raise _unknown(section, valid, where)
    return cfg


def load_recipe(path: str | Path, cfg: Config | None = None) -> Config:
    path = Path(path)
    if not path.is_file():
        raise MipoError(f"{path}: recipe not found")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        at = f":{mark.line + 1}:{mark.column + 1}" if mark else ""
        raise MipoError(f"{path}{at}: invalid YAML ({getattr(e, 'problem', None) or str(e).splitlines()[0]})") from None
    if not isinstance(data, dict):
        raise MipoError(f"{path}: a recipe must be a mapping of sections")
    return apply_overrides(cfg or Config(), data, str(path))
