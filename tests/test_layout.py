"""The house rules of the code layout, checked on the source: each layer imports only the layers below it (so
there are no import circles between them), and no module or function grows past what a reader takes in at once."""
import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[1] / "mipo"
# lowest first: a module may import its own layer and the layers before it, never one after it
LAYERS = ["io", "seeds", "behaviour", "config", "recipe", "distributed", "models", "inference", "tasks", "pair", "train", "evaluation",
          "methods", "report", "rundir", "pipeline", "compare", "cli", "__main__", "__init__"]
MAX_MODULE_LINES, MAX_FUNCTION_LINES = 300, 60


def modules():
    return sorted(p for p in ROOT.rglob("*.py"))


def component(path: Path) -> str:
    """The layer a file belongs to: its top-level module or package under mipo/."""
    rel = path.relative_to(ROOT)
    return rel.parts[0] if len(rel.parts) > 1 else rel.stem


def imported_components(path: Path, root: Path = ROOT):
    """(line, layer) of every mipo module a file imports, at module level or inside a function."""
    tree = ast.parse(path.read_text())
    package = path.relative_to(root).parent.parts  # e.g. ("methods",)
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            if node.level:  # relative: climb from this file's package
                base = list(package[:len(package) - (node.level - 1)]) if node.level > 1 else list(package)
                target = base + (node.module.split(".") if node.module else [])
                names = [target] if target else [[a.name] for a in node.names]
            elif node.module and node.module.split(".")[0] == "mipo":
                names = [node.module.split(".")[1:] or [a.name for a in node.names]]
            else:
                continue
            for parts in names:
                if parts:
                    yield node.lineno, parts[0]
        elif isinstance(node, ast.Import):
            for a in node.names:
                if a.name.split(".")[0] == "mipo" and len(a.name.split(".")) > 1:
                    yield node.lineno, a.name.split(".")[1]


@pytest.mark.parametrize("path", modules(), ids=lambda p: str(p.relative_to(ROOT)))
def test_imports_run_downward_only(path):
    own = component(path)
    assert own in LAYERS, f"{path}: place '{own}' in LAYERS"
    for line, target in imported_components(path):
        assert target in LAYERS, f"{path}:{line}: imports unknown mipo module '{target}'"
        assert LAYERS.index(target) <= LAYERS.index(own), (
            f"{path.relative_to(ROOT)}:{line}: '{own}' imports '{target}', a layer above it")


@pytest.mark.parametrize("path", modules(), ids=lambda p: str(p.relative_to(ROOT)))
def test_modules_and_functions_stay_small(path):
    text = path.read_text()
    assert len(text.splitlines()) <= MAX_MODULE_LINES, f"{path}: {len(text.splitlines())} lines"
    for node in ast.walk(ast.parse(text)):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            n = node.end_lineno - node.lineno + 1
            assert n <= MAX_FUNCTION_LINES, f"{path}:{node.lineno}: {node.name} is {n} lines"


def test_the_layer_check_sees_an_upward_import(tmp_path):
    """The check above is only worth something if it catches a violation: a module of a low layer importing up."""
    bad = tmp_path / "mipo" / "tasks" / "x.py"
    bad.parent.mkdir(parents=True)
    bad.write_text("from ..methods import get_method\nfrom . import base\n\ndef f():\n    from mipo.pipeline import run\n")
    found = [t for _, t in imported_components(bad, tmp_path / "mipo")]
    assert found == ["methods", "tasks", "pipeline"]
    assert [LAYERS.index(t) > LAYERS.index("tasks") for t in found] == [True, False, True]
