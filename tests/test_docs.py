"""The documentation stays true to the code, cheaply: docs/configuration.md is what scripts/config_reference.py
writes from mipo/config.py; every relative link of README.md and docs/*.md reaches an existing file and heading;
every test, script, recipe or module path they name exists; the README stays short and its second command is
the one CI runs."""
from __future__ import annotations

import importlib.util
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")
TEST_NODE = re.compile(r"\btests/(test_\w+\.py)::(\w+)")
PATH = re.compile(r"(?<![\w./-])((?:mipo|bench|recipes|scripts|configs|tests|docs)/[\w./-]*\w\.(?:py|yaml|sh|jsonl|md|txt))\b")


def script():
    spec = importlib.util.spec_from_file_location("config_reference", ROOT / "scripts" / "config_reference.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def prose(text: str) -> str:
    """The text outside fenced code blocks and inline code: where a link is a link."""
    text = re.sub(r"^```.*?^```", "", text, flags=re.S | re.M)
    return re.sub(r"`[^`\n]*`", "", text)


def slugs(page: Path) -> set[str]:
    """GitHub's heading anchors: lower case, punctuation dropped, spaces as hyphens, repeats numbered."""
    seen: dict[str, int] = {}
    for line in re.sub(r"^```.*?^```", "", page.read_text(encoding="utf-8"), flags=re.S | re.M).splitlines():
        m = re.match(r"#{1,6} (.+)", line)
        if m:
            s = re.sub(r"[^\w\- ]", "", m.group(1).strip().lower()).replace(" ", "-")
            seen[s] = seen.get(s, -1) + 1
            if seen[s]:
                seen[f"{s}-{seen[s]}"] = 0
    return set(seen)


def test_configuration_reference_is_current():
    s = script()
    if not s.OUT.is_file() or s.OUT.read_text(encoding="utf-8") != s.render():
        pytest.fail(f"docs/configuration.md is stale: run {s.COMMAND}", pytrace=False)


def test_every_config_field_is_in_the_reference():
    from dataclasses import fields

    from mipo.config import SECTIONS, TOP_LEVEL

    text = script().render()
    flags = [f"--{n.replace('_', '-')}" for n in TOP_LEVEL]
    flags += [f"--{section}.{f.name}" for section, cls in SECTIONS.items() for f in fields(cls)]
    missing = [f for f in flags if f"`{f}`" not in text]
    assert not missing, f"not in docs/configuration.md: {missing}"


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_relative_links_reach_a_file_and_heading(page):
    broken = []
    for target in LINK.findall(prose(page.read_text(encoding="utf-8"))):
        if re.match(r"[a-z]+:", target):  # https:, mailto:
            continue
        path, _, anchor = target.partition("#")
        dest = (page.parent / path).resolve() if path else page
        if not dest.exists():
            broken.append(f"{target}: no file {dest.relative_to(ROOT) if ROOT in dest.parents else dest}")
        elif anchor and (dest.suffix != ".md" or anchor not in slugs(dest)):
            broken.append(f"{target}: no heading '#{anchor}' in {dest.relative_to(ROOT)}")
    assert not broken, f"{page.relative_to(ROOT)}: broken links: {'; '.join(broken)}"


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_named_tests_and_files_exist(page):
    text = page.read_text(encoding="utf-8")
    missing = [p for p in PATH.findall(text) if not (ROOT / p).exists()]
    for file, name in TEST_NODE.findall(text):
        path = ROOT / "tests" / file
        if not path.exists() or not re.search(rf"^def {name}\(", path.read_text(encoding="utf-8"), re.M):
            missing.append(f"tests/{file}::{name}")
    assert not missing, f"{page.relative_to(ROOT)} names what does not exist: {', '.join(missing)}"


def test_readme_is_short_and_starts_with_the_two_commands_ci_runs_one_of():
    lines = (ROOT / "README.md").read_text(encoding="utf-8").splitlines()
    assert len(lines) <= 150, f"README.md has {len(lines)} lines; move detail into docs/"
    assert lines[:3] == ["# mipo", "", "```bash"]
    demo, suite = (line.split("  #")[0].strip() for line in lines[3:5])
    assert demo == "bash scripts/setup.sh && .venv/bin/mipo run --config recipes/demo.yaml"
    assert (ROOT / ".ci" / "run").read_text().strip().splitlines()[-1] == suite
