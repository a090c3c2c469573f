"""The test registry: one entry per test, read by every consumer; an unregistered test fails loudly."""

import dataclasses
from pathlib import Path

import numpy as np
import pytest

from faithfulness import metrics, plots, report, tracking
from faithfulness.answers import Reading
from faithfulness.engines import Completion, GenerationRequest
from faithfulness.loading.hydra import compose
from faithfulness.loading.rules import load
from faithfulness.perturbations import Perturbed, Trace
from faithfulness.pipeline import run
from faithfulness.registry import Binding
from faithfulness.results import _RUN_COLUMNS, build_rows
from faithfulness.suite import TESTS, FaithfulnessTest, choosable, lookup, register
from faithfulness.summaries import Options, summarise_reading
from faithfulness.tasks import Problem, make_task
from tests.synthetic import run_header, synthetic_run
from tests.test_pipeline import make_cfg


def test_every_test_is_registered_with_its_labels_and_the_original_is_not_choosable():
    assert choosable() == sorted(set(TESTS) - {"original"})
    assert set(choosable()) >= {
        "no_cot",
        "early_answering",
        "adding_mistakes",
        "paraphrasing",
        "filler_tokens",
        "biased_context",
    }
    for test in TESTS.values():
        assert test.title and (test.curve is None or test.curve_label)
        assert test.figure is None or (test.figure_title and test.x_label)
        assert not test.aoc or test.curve is not None  # an area needs a curve


def test_binding_gives_each_test_its_items_from_a_trace():
    cfg = compose(["perturbations=[early_answering,filler_tokens]", "cut_points=3"])
    trace = Trace(0, 0, 1, "a. b. c. d.", ("a. ", "b. ", "c. ", "d."), "stop")
    settings = Binding(load(cfg), filler={"string": " ...", "lengths": [0, 7], "per_item": None})
    early = lookup("early_answering").bind(settings)(trace)
    assert [p.level for p in early] == [0, 2, 4]  # cut_points=3: 0, ½ and all of 4 steps
    assert [p.cot for p in lookup("filler_tokens").bind(settings)(trace)] == ["", " ..." * 7]


def test_an_unregistered_test_fails_loudly_everywhere():
    with pytest.raises(KeyError, match="'telepathy' is not registered in faithfulness/registry.py"):
        lookup("telepathy")
    table = synthetic_run("m", 10**8, 2, 0.5, np.random.default_rng(0), n=10)
    rogue = table.assign(perturbation=table["perturbation"].replace("no_cot", "telepathy"))
    with pytest.raises(KeyError, match="telepathy"):
        summarise_reading(rogue, Options(resamples=0))
    summary = {"run": {}, "metrics": {"telepathy": {"pct_same": {"value": 1.0, "ci": [1, 1], "n": 1}}}}
    with pytest.raises(KeyError, match="telepathy"):
        tracking.curves(summary["metrics"])
    metric = {"value": 0.5, "ci": [0.4, 0.6], "n": 4}  # main's blocks that are not tests pass
    assert (
        tracking.curves({"noise_floor": metric, "thinking_cut": {"cots": 1, "rows": 3}, "accuracy_cot": metric}) == {}
    )
    task = make_task(load(compose(["task=addition"])))
    problem = Problem(0, "What is 1 + 2?", "3")
    trace = Trace(0, 0, 0, "", (), "stop")
    context = {"difficulty_values": {}} | dict.fromkeys(_RUN_COLUMNS)
    with pytest.raises(KeyError, match="telepathy"):
        build_rows(
            task,
            [problem],
            [(trace, Perturbed("telepathy", 0, ""))],
            [GenerationRequest("p", max_tokens=4)],
            [Completion("3", "stop", 1, 1, 0)],
            [Reading("3", "3", "strict")],
            {(0, 0): Reading("3", "3", "strict")},
            None,
            context,
        )


def test_report_and_figures_follow_the_registry(tmp_path, monkeypatch):
    table = synthetic_run("m", 10**8, 2, 0.5, np.random.default_rng(0), n=20)
    summary = {
        "run": run_header("addition", 20),
        "metrics": summarise_reading(table, Options(resamples=0)),
    }
    renamed = dataclasses.replace(TESTS["no_cot"], title="answer at once")
    monkeypatch.setitem(TESTS, "no_cot", renamed)
    text = report.format_table(summary)
    assert "answer at once: % same answer as original" in text and "no CoT:" not in text
    early = dataclasses.replace(TESTS["early_answering"], figure_title="custom title")
    monkeypatch.setitem(TESTS, "early_answering", early)
    written = plots.write_figures(table, summary, tmp_path)
    assert {p.name for p in written} == {"early_answering.png", "early_answering.svg"}
    assert "custom title" in (tmp_path / "early_answering.svg").read_text()


@dataclasses.dataclass(frozen=True)
class ReversedCoT(FaithfulnessTest):
    """A test no flag of the registry describes, defined here alone: the CoT read backwards.

    It owns its perturbation (``_reversed``), its figures (% same and a count of its own), its lines
    of the printed table and its figure (one bar); nothing in faithfulness/ names it.
    """

    def summarise(self, c, df, rows, options):
        return {"pct_same": metrics.pct_same(c, rows), "reversed_cots": len(rows)}

    def table_lines(self, block, line, beside=""):
        return [
            line(f"{self.title}: % same answer as original", block["pct_same"]),
            f"  CoTs read backwards: {block['reversed_cots']}",
        ]

    def draw(self, ax, df, summary):
        ax.bar([0], [100 * summary["metrics"][self.name]["pct_same"]["value"]], label="% same")
        ax.set(title=self.figure_title, ylabel="% same answer as original")


def _reversed(trace):
    return [Perturbed("reversed_cot", 1, trace.cot[::-1])]


@pytest.fixture
def reversed_cot():
    test = register(
        ReversedCoT("reversed_cot", "reversed CoT", lambda s: _reversed, figure="bar", figure_title="Backwards")
    )
    yield test
    del TESTS[test.name]


def test_a_test_registered_from_a_test_file_gets_its_rows_figures_lines_and_figure(
    reversed_cot, tiny_model_dir, tiny_engine, tmp_path
):
    overrides = (
        "model=hf",
        f"model.path={tiny_model_dir}",
        "n=3",
        "sampling.max_tokens=24",
        "perturbations=[no_cot,reversed_cot]",
    )
    config = load(make_cfg(tmp_path, *overrides))  # the config check knows it: perturbations= accepts it
    assert "reversed_cot" in choosable()
    out = run(config, engine=tiny_engine)
    rows = out.table[out.table.perturbation == "reversed_cot"]
    originals = out.table[out.table.perturbation == "original"].set_index("item_id")
    assert len(rows) == 3 and all(r.shown_cot == originals.loc[r.item_id, "cot"][::-1] for r in rows.itertuples())
    block = out.summary["metrics"]["reversed_cot"]
    assert block["reversed_cots"] == 3 and block["pct_same"]["n"] + block["pct_same"].get("unparsed", 0) == 3
    table = report.format_table(out.summary)
    assert "reversed CoT: % same answer as original" in table and "  CoTs read backwards: 3" in table
    assert {"reversed_cot.png", "reversed_cot.svg"} <= {Path(p).name for p in out.summary["figures"]}
    assert (out.out_dir / "reversed_cot.png").stat().st_size > 1000
