"""The house rules of the code layout, checked on the source: each layer imports only the layers below it (so
there are no import circles between them), and no module or function grows past what a reader takes in at once."""
import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[1] / "mipo"
# lowest first: a module may import its own layer and the layers before it, never one after it
LAYERS = ["io", "progress", "seeds", "behaviour", "tracking", "config", "recipe", "distributed", "models", "inference", "tasks", "pair", "callbacks", "train", "evaluation",
          "methods", "report", "rundir", "preflight", "pipeline", "compare", "cli", "__main__", "__init__"]
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


def module_of(path: Path, root: Path = ROOT) -> str:
    """A file's module, dotted under mipo/ ("inference.hf"; a package is its __init__: "inference"; mipo: "")."""
    parts = path.relative_to(root).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported_modules(path: Path, known, root: Path = ROOT):
    """The mipo modules a file imports, at module level or inside a function: `from .x import y` is module x.y
    where that is a file, else x."""
    package = list(path.relative_to(root).parent.parts)
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                target = package[:len(package) - node.level + 1] + (node.module.split(".") if node.module else [])
            elif node.module and node.module.split(".")[0] == "mipo":
                target = node.module.split(".")[1:]
            else:
                continue
            for a in node.names:
                sub = ".".join(target + [a.name])
                yield sub if sub in known else ".".join(target)
        elif isinstance(node, ast.Import):
            yield from (a.name[len("mipo."):] for a in node.names if a.name.startswith("mipo."))


def import_graph(root: Path = ROOT) -> dict[str, set[str]]:
    """module -> the modules it imports. A package's __init__ importing its own modules is left out: that is how a
    package offers its interface and loads an implementation on demand (inference.make_engine loads hf.py, which
    imports the interface back)."""
    files = {module_of(p, root): p for p in root.rglob("*.py")}
    graph = {}
    for mod, path in files.items():
        package = path.name == "__init__.py"
        graph[mod] = {t for t in imported_modules(path, files, root)
                      if t in files and t != mod and not (package and (not mod or t.startswith(f"{mod}.")))}
    return graph


def circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Every import circle a depth-first walk meets, as the path that closes it."""
    found, state = [], {}

    def visit(mod: str, path: list[str]) -> None:
        state[mod] = "open"
        for t in sorted(graph[mod]):
            if state.get(t) == "open":
                found.append(path[path.index(t):] + [t])
            elif t not in state:
                visit(t, path + [t])
        state[mod] = "done"

    for mod in sorted(graph):
        if mod not in state:
            visit(mod, [mod])
    return found


def test_no_import_circles():
    """The layers keep components apart; within one (inference, evaluation, ...) no two modules may import each
    other round either, even inside a function: such a pair can only be read, and changed, together."""
    assert circles(import_graph()) == []


def test_the_circle_check_sees_a_circle(tmp_path):
    """The circle adapters.py <-> hf.py had (hf imported weights_id, adapters HFEngine inside a function) is
    caught; the package's __init__ loading hf.py on demand is not a circle."""
    pkg = tmp_path / "mipo" / "inference"
    pkg.mkdir(parents=True)
    (pkg / "__init__.py").write_text("def make_engine():\n    from .hf import HFEngine\n")
    (pkg / "hf.py").write_text("from . import Sampling\nfrom .adapters import weights_id\n")
    (pkg / "adapters.py").write_text("def trained_engine():\n    from .hf import HFEngine\n")
    assert circles(import_graph(tmp_path / "mipo")) == [["inference.adapters", "inference.hf", "inference.adapters"]]
