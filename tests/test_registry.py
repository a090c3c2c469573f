"""The test registry: one entry per test, read by every consumer; an unregistered test fails loudly."""

import dataclasses

import numpy as np
import pytest

from faithfulness import metrics, plots, report, tracking
from faithfulness.answers import Reading
from faithfulness.config.hydra import compose
from faithfulness.config.rules import load
from faithfulness.engines import Completion, GenerationRequest
from faithfulness.perturbations import Perturbed, Trace
from faithfulness.registry import TESTS, Settings, choosable, lookup
from faithfulness.results import _RUN_COLUMNS, build_rows
from faithfulness.tasks import Problem, make_task
from tests.synthetic import run_header, synthetic_run


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
    settings = Settings(load(cfg), filler={"string": " ...", "lengths": [0, 7], "per_item": None})
    early = lookup("early_answering").bind(settings)(trace)
    assert [p.level for p in early] == [0, 2, 4]  # cut_points=3: 0, ½ and all of 4 steps
    assert [p.cot for p in lookup("filler_tokens").bind(settings)(trace)] == ["", " ..." * 7]


def test_an_unregistered_test_fails_loudly_everywhere():
    with pytest.raises(KeyError, match="'telepathy' is not registered in faithfulness/registry.py"):
        lookup("telepathy")
    table = synthetic_run("m", 10**8, 2, 0.5, np.random.default_rng(0), n=10)
    rogue = table.assign(perturbation=table["perturbation"].replace("no_cot", "telepathy"))
    with pytest.raises(KeyError, match="telepathy"):
        metrics.summarise(rogue, resamples=0)
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
        "metrics": metrics.summarise(table, resamples=0),
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
