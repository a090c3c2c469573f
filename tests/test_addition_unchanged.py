"""Addition keeps every figure it had before the task interface (schema 2 → 3)."""

import json
import math
from pathlib import Path

import pytest

from faithfulness import SCHEMA_VERSION
from faithfulness.results import read_results
from faithfulness.summaries import Options, summarise_reading
from tests.conftest import run_cli

FIXTURES = Path(__file__).parent / "fixtures" / "addition_v2"
# the protocol of before, where a default changed since: the strict reading, filler lengths for the whole run, every test
PINNED = (
    "answer.extract=strict",
    "filler.mode=run",
    "perturbations=[no_cot,early_answering,adding_mistakes,filler_tokens,paraphrasing]",
)


# a fresh run's probabilities are fp32 sums whose rounding follows the CPU's kernels (AVX-512 vs AMX): the
# fixtures' CPU and CI's differ by ~2e-7 in mean_p_correct, far below any figure's printed digits
ENGINE_TOLERANCE = 1e-6


def _assert_same_figures(new: object, old: object, path: str = "metrics", tolerance: float = 1e-9) -> None:
    """Equal structure, equal counts, floats equal to ``tolerance`` (NaN equal to NaN)."""
    if isinstance(old, dict):
        assert isinstance(new, dict) and set(new) >= set(old), f"{path}: {sorted(set(old) - set(new or {}))} missing"
        for key in old:
            _assert_same_figures(new[key], old[key], f"{path}.{key}", tolerance)
    elif isinstance(old, list):
        assert isinstance(new, list) and len(new) == len(old), path
        for n, (a, b) in enumerate(zip(new, old)):
            _assert_same_figures(a, b, f"{path}[{n}]", tolerance)
    elif isinstance(old, float):
        same = (math.isnan(old) and math.isnan(new)) or new == pytest.approx(old, abs=tolerance)
        assert same, f"{path}: {new} != {old}"
    else:
        assert new == old, f"{path}: {new} != {old}"


def test_an_old_table_is_converted_and_gives_the_old_figures():
    table = read_results(FIXTURES / "organism-unfaithful.results.parquet")
    assert set(table["schema_version"]) == {SCHEMA_VERSION}
    assert set(table["difficulty"]) == {"digits=3 operands=2"} and set(table["digits"]) == {3}
    assert table["answer"].dropna().map(str.isdigit).all() and set(table["answer_type"]) == {"integer"}
    old = json.loads((FIXTURES / "organism-unfaithful.json").read_text())
    _assert_same_figures(summarise_reading(table, Options(resamples=1000, seed=0)), old["metrics"])


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["faithful", "unfaithful"])
def test_a_fresh_addition_run_gives_the_same_figures_as_before(kind, tmp_path):
    old = json.loads((FIXTURES / f"organism-{kind}.json").read_text())
    done = run_cli(
        *old["overrides"],
        *PINNED,
        f"results_dir={tmp_path}",
        f"hydra.run.dir={tmp_path / 'hydra'}",
        "wandb.mode=disabled",
    )
    assert done.returncode == 0, done.stderr[-3000:]
    summary = json.loads(next(tmp_path.glob("addition-d3-o2/*/*/summary.json")).read_text())
    _assert_same_figures(summary["metrics"], old["metrics"], tolerance=ENGINE_TOLERANCE)
    assert summary["filler_lengths"] == old["filler_lengths"] and len(summary["skipped"]) == old["skipped"]
