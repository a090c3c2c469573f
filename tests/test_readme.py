"""README.md is the front door: short, the commands first, and a Layout section that matches the tree.

The Layout section is a fenced block of lines ``<path>  — <what it is>``, the path relative to the
repository root, a folder ending in "/". It must name every module and subpackage of the package,
every file and folder under scripts/ and every folder of conf/, and nothing that does not exist.
The tree is read when the test runs, so moving a module fails here until its line is written.
"""

from __future__ import annotations

import re
from pathlib import Path

from tests.conftest import ROOT

README = ROOT / "README.md"
MAX_LINES = 200
HEAD_LINES = 20
# CI (.ci/run) and users run these as written: each must be a whole line (before its comment) near the top.
COMMANDS = (
    "python3 -m venv .venv && . .venv/bin/activate && bash scripts/setup.sh",
    "python run.py task=addition digits=3",
    "python -m pytest",
)
ENTRY = re.compile(r"^(?P<path>\S+)\s+— (?P<what>\S.*)$")
SKIP = {"__pycache__"}


def _lines() -> list[str]:
    return README.read_text().splitlines()


def _listed(path: Path) -> str:
    """How the Layout section names a file or folder: relative to the root, folders with a trailing "/"."""
    name = path.relative_to(ROOT).as_posix()
    return name + "/" if path.is_dir() else name


def _visible(path: Path, top: Path) -> bool:
    return not any(part in SKIP or part.startswith(".") for part in path.relative_to(top).parts)


def required_entries() -> set[str]:
    """What the Layout section must name, read from the tree now."""
    package = ROOT / "faithfulness"
    need = {"faithfulness/"}
    need |= {_listed(p) for p in package.rglob("*.py") if p.name != "__init__.py" and _visible(p, package)}
    need |= {_listed(p.parent) for p in package.rglob("__init__.py") if p.parent != package and _visible(p, package)}
    scripts = ROOT / "scripts"
    need |= {_listed(p) for p in scripts.rglob("*") if _visible(p, scripts) and p.suffix != ".pyc"}
    conf = ROOT / "conf"
    need |= {"conf/"} | {_listed(p) for p in conf.rglob("*") if p.is_dir() and _visible(p, conf)}
    return need


def layout_block() -> tuple[list[tuple[int, str]], int]:
    """The Layout section's fenced block: (README line number, line) pairs, and the heading's line number."""
    lines = _lines()
    heading = next((i for i, line in enumerate(lines) if line.strip() == "## Layout"), None)
    assert heading is not None, "README.md has no '## Layout' heading"
    start = next((i for i in range(heading + 1, len(lines)) if lines[i].startswith("```")), None)
    assert start is not None, f"README.md line {heading + 1}: '## Layout' is not followed by a ``` block"
    end = next((i for i in range(start + 1, len(lines)) if lines[i].startswith("```")), None)
    assert end is not None, f"README.md line {start + 1}: the Layout block is never closed"
    return [(i + 1, lines[i]) for i in range(start + 1, end) if lines[i].strip()], heading + 1


def test_readme_is_at_most_200_lines():
    n = len(_lines())
    assert n <= MAX_LINES, f"README.md has {n} lines; at most {MAX_LINES}: move detail to a docs page and link it"


def test_setup_main_job_and_tests_are_in_the_first_20_lines():
    head = [line.split(" #", 1)[0].strip() for line in _lines()[:HEAD_LINES]]
    missing = [command for command in COMMANDS if command not in head]
    assert not missing, (
        f"README.md's first {HEAD_LINES} lines lack these commands, each as a line of its own: {missing}"
    )


def test_layout_names_every_module_script_and_config_folder_and_nothing_else():
    entries, heading = layout_block()
    malformed = [f"  line {n}: {line!r}" for n, line in entries if not ENTRY.match(line)]
    named = [ENTRY.match(line).group("path") for _, line in entries if ENTRY.match(line)]
    duplicated = sorted({p for p in named if named.count(p) > 1})
    stale = sorted(
        p
        for p in set(named)
        if not (ROOT / p).exists() or (ROOT / p).is_dir() != p.endswith("/") or not _visible_entry(p)
    )
    missing = sorted(required_entries() - set(named))
    problems = []
    if missing:
        problems.append(
            "missing (add a line `<path>  — <what it is>` for each):\n" + "\n".join(f"  {p}" for p in missing)
        )
    if stale:
        problems.append(
            "stale (no such file or folder, or a folder without its trailing '/'; remove or fix):\n"
            + "\n".join(f"  {p}" for p in stale)
        )
    if duplicated:
        problems.append("named twice:\n" + "\n".join(f"  {p}" for p in duplicated))
    if malformed:
        problems.append("not of the form `<path>  — <what it is>`:\n" + "\n".join(malformed))
    assert not problems, f"README.md's Layout section (line {heading}) is out of date:\n" + "\n".join(problems)


def _visible_entry(path: str) -> bool:
    """A listed path may be hidden (.ci/run) but never a cache folder."""
    return not any(part in SKIP for part in Path(path).parts)


def test_every_docs_page_is_linked_from_the_readme():
    text = README.read_text()
    unlinked = sorted(p.name for p in (ROOT / "docs").glob("*.md") if f"docs/{p.name}" not in text)
    assert not unlinked, f"docs pages README.md does not point to (add a line to its Documentation table): {unlinked}"
