"""The repository stands on its own: it cites only files a user has."""

import re
import shutil
import subprocess

import pytest

from tests.conftest import ROOT

SKIP_DIRS = {".git", ".venv", "__pycache__", ".pytest_cache", ".hypothesis", "results", "multirun", "outputs", "wandb"}
# spelled in pieces so that this file does not match itself
PRIVATE = ("REFER" + "ENCE", "../" + "shared")


def repository_files():
    for path in sorted(ROOT.rglob("*")):
        parts = path.relative_to(ROOT).parts
        if path.is_file() and not SKIP_DIRS.intersection(parts) and not any(p.endswith(".egg-info") for p in parts):
            yield path


def test_no_file_cites_notes_users_do_not_have():
    hits = [
        f"{path.relative_to(ROOT)}: {word}"
        for path in repository_files()
        for word in PRIVATE
        if word.encode() in path.read_bytes()
    ]
    assert not hits


def test_every_cited_docs_file_exists():
    cited = {
        name
        for path in repository_files()
        if path.suffix in {".py", ".md", ".yaml", ".sh", ".sbatch", ".toml"}
        for name in re.findall(r"\bdocs/[\w.-]+\.md\b", path.read_text(errors="replace"))
    }
    assert {"docs/vllm-cpu.md", "docs/models.md", "docs/organisms.md"} <= cited
    assert [name for name in sorted(cited) if not (ROOT / name).is_file()] == []


@pytest.mark.parametrize("command", [["format", "--check"], ["check"]], ids=["format", "lint"])
def test_the_code_is_formatter_and_lint_clean(command):
    ruff = shutil.which("ruff")
    assert ruff, "ruff is missing: it is a dev dependency (pip install -e '.[dev]')"
    done = subprocess.run([ruff, *command, "."], cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-1000:]


def test_below_run_py_the_config_is_typed_never_a_plain_dict():
    """``run.py`` builds the typed config once (faithfulness/loading/rules.load); nothing below indexes a plain one."""
    plain_reads = re.compile(r"\b(?:cfg|config|plain)\[\"|\bcfg\.get\(")
    found = [
        f"{path.relative_to(ROOT)}:{n}: {line.strip()}"
        for path in sorted((ROOT / "faithfulness").rglob("*.py"))
        if path.parent.name != "loading"  # where the plain dict becomes the typed config
        for n, line in enumerate(path.read_text().splitlines(), 1)
        if plain_reads.search(line)
    ]
    assert not found, "plain config reads below run.py:\n" + "\n".join(found)


def test_only_tasks_know_what_their_answers_are():
    """No switch on the answer kind outside faithfulness/tasks/: code finds the kind (``answer_kind``) and asks it."""
    switch = re.compile(r"""(?:answer_type|\.kind\.name)\s*[!=]=|[!=]=\s*["'](?:letter|integer)["']""")
    found = [
        f"{path.relative_to(ROOT)}:{n}: {line.strip()}"
        for path in sorted((ROOT / "faithfulness").rglob("*.py"))
        if path.parent.name != "tasks"
        for n, line in enumerate(path.read_text().splitlines(), 1)
        if switch.search(line)
    ]
    assert not found, "answer-kind switches outside faithfulness/tasks/:\n" + "\n".join(found)


def test_every_function_reads_in_a_screen_and_the_pipeline_in_one():
    """No function of the package over 50 lines; the pipeline's run (its stages in order) at most 40."""
    import ast

    long = []
    for path in sorted((ROOT / "faithfulness").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                lines = node.end_lineno - node.lineno + 1
                limit = 40 if (path.name, node.name) == ("pipeline.py", "run") else 50
                if lines > limit:
                    long.append(f"{path.relative_to(ROOT)}:{node.lineno} {node.name}: {lines} lines (≤ {limit})")
    assert not long, "functions to split:\n" + "\n".join(long)
