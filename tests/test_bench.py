"""scripts/bench.py end to end on the tiny random model: every field present and consistent.

The benchmark's targets (speed-ups, cache share, overhead, exponent) are checked by running it on a
real model (README, docs/benchmarks.md), not here: this test checks that its numbers are computed
from what it measured.
"""

import json
import os
import sys

import numpy as np
import pandas as pd
import pytest

from faithfulness.engines import COUNTERS
from tests.conftest import ROOT, run_in_group

sys.path.insert(0, str(ROOT / "scripts"))
from engine_floor import decode_rate, drain_seconds, stage_floors  # noqa: E402

STAGES = ["chains of thought", "rewrites", "regenerations", "forced answers", "answer scores"]
COUNTS = list(COUNTERS)


@pytest.fixture(scope="module")
def bench(tiny_model_dir, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("bench")
    cmd = [
        sys.executable,
        str(ROOT / "scripts" / "bench.py"),
        "model=hf",
        f"model.path={tiny_model_dir}",
        "n=3",
        "sampling.max_tokens=40",
        "engine.enforce_eager=true",
        "engine.kv_cache_gib=1",
        "engine.max_model_len=1024",
        "store_chunk=4",  # stages go to the engine in several calls, as large runs do
        f"results_dir={tmp / 'results'}",
        f"cache_dir={tmp / 'cache'}",
        "--naive-max=6",
        "--naive-min=2",
        "--lengths=2,4,8",
        "--reps=2",
        f"--json={tmp / 'bench.json'}",
        f"--markdown={tmp / 'bench.md'}",
    ]
    done = run_in_group(cmd, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads((tmp / "bench.json").read_text()), done.stdout, tmp


def test_every_stage_has_harness_and_naive_figures(bench):
    report, _, _ = bench
    stages = report["summary"]["stages"]
    assert list(stages) == STAGES
    for name, st in stages.items():
        h, n = st["harness"], st["naive"]
        assert set(COUNTS + ["seconds", "cpu_seconds", "cache_share", "generated_tok_s", "processed_tok_s"]) <= set(h)
        assert {
            "requests",
            "sampled",
            "extrapolated",
            "seconds",
            "measured_seconds",
            "prompt_tokens",
            "generated_tokens",
            "generated_tok_s",
            "processed_tok_s",
            "agreement",
            "cpu_seconds",
        } <= set(n)
        assert 0 <= h["cached_tokens"] <= h["prompt_tokens"], name
        assert h["seconds"] > 0 or h["requests"] == 0
        assert n["sampled"] <= n["requests"] and n["extrapolated"] == (n["sampled"] < n["requests"])
        if n["requests"]:
            assert n["sampled"] >= min(2, n["requests"])
            assert n["seconds"] == pytest.approx(n["measured_seconds"] / n["sampled"] * n["requests"])
            assert st["ratio"] == pytest.approx(n["seconds"] / h["seconds"])
            assert st["cpu_ratio"] == pytest.approx(n["cpu_seconds"] / h["cpu_seconds"])
    # the stages every workload has (a random model writes no CoT steps to rewrite: those stages stay empty here)
    assert stages["chains of thought"]["harness"]["requests"] == 3
    assert stages["forced answers"]["harness"]["requests"] > 3 and stages["answer scores"]["harness"]["requests"] > 0
    # a chunked stage is still one stage: all its requests are there for the naive reference to replay
    assert stages["forced answers"]["naive"]["requests"] == stages["forced answers"]["harness"]["requests"] > 4
    assert stages["answer scores"]["naive"]["requests"] > 4


def test_tokens_add_up_across_stages_and_rows(bench):
    report, _, _ = bench
    harness = report["harness"]
    for key in COUNTS:
        assert sum(s[key] for s in harness["stages"].values()) == harness["engine_counters"][key], key
    table = pd.read_parquet(os.path.join(harness["results_dir"], "results.parquet"))
    forced = harness["stages"]["forced answers"]
    # no CoT, early answering at 0 and filler prompts are asked once per distinct prompt and reported under each row
    shared = (table["shown_cot"].fillna("") == "") | (table["perturbation"] == "filler_tokens")
    asked = pd.concat([table[~shared], table[shared].drop_duplicates("prompt")])
    assert len(asked) == forced["requests"]
    for key in ("prompt_tokens", "generated_tokens"):
        assert int(asked[key].sum()) == forced[key], key
    # greedy fp32: the reference gives the harness's own answers, so the comparison is fair
    assert report["summary"]["stages"]["forced answers"]["naive"]["answer_agreement"] >= 0.8
    assert report["summary"]["stages"]["chains of thought"]["naive"]["agreement"] >= 0.8


def test_overall_ratios_come_from_the_measured_times(bench):
    report, _, _ = bench
    s, h, n = report["summary"], report["harness"], report["naive"]
    engine = sum(st["seconds"] for st in h["stages"].values())
    naive = sum(st["seconds"] for st in n["stages"].values())
    assert s["harness_engine_s"] == pytest.approx(engine) and s["naive_s"] == pytest.approx(naive)
    assert 0 <= s["harness_overhead_s"] == pytest.approx(h["wall_s"] - engine)
    assert s["overhead_share_of_engine_time"] == pytest.approx((h["wall_s"] - engine) / engine)
    assert s["speedup_excluding_engine_start"] == pytest.approx(naive / h["wall_s"])
    assert s["speedup_including_engine_start"] == pytest.approx(
        (naive + n["start_s"]) / (h["wall_s"] + h["engine_start_s"])
    )
    assert s["cpu_speedup_excluding_engine_start"] == pytest.approx(s["naive_cpu_s"] / h["cpu_s"])
    forced = h["stages"]["forced answers"]
    assert s["forced_answer_cache_share"] == pytest.approx(forced["cached_tokens"] / forced["prompt_tokens"])
    assert h["engine_start_s"] > 0 and n["start_s"] > 0
    assert s["peak_rss_gib"] == max(report["peak_rss_gib"].values()) > 0
    for t in s["targets"].values():
        assert t["met"] == (
            t["value"] >= float(t["target"][3:])
            if t["target"].startswith(">=")
            else t["value"] <= float(t["target"][3:])
        )


def test_forced_answer_cache_ceiling_bounds_the_measured_share(bench):
    report, _, _ = bench
    cache, share = report["forced_answer_cache"], report["summary"]["forced_answer_cache_share"]
    assert cache["suffix_tokens"] > 0 and cache["unique_prompts"] <= cache["prompts"]
    assert share <= cache["ceiling_any_block"] < 1
    assert cache["ceiling_this_block_size"] <= cache["ceiling_any_block"]
    per_test = cache["per_test"]
    assert sum(t["prompts"] for t in per_test.values()) == cache["prompts"]
    assert {"original", "no_cot", "early_answering", "filler_tokens"} <= set(per_test)


def test_scaling_probe_fits_the_exponent_of_its_points(bench):
    report, _, _ = bench
    sc = report["scaling"]
    points = sc["points"]
    assert [round(p["steps"]) for p in points] == [2, 4, 8]
    assert all(p["cached_tokens"] <= p["prompt_tokens"] and p["requests"] == 2 * (p["steps"] + 2) for p in points)
    x = np.log([p["steps"] for p in points])
    assert sc["exponent_time"] == pytest.approx(np.polyfit(x, np.log([p["seconds"] for p in points]), 1)[0])
    # the prefix cache computes fewer of the truncations' prompt tokens, and they grow slower with length
    assert all(p["cached_tokens"] > 0 for p in points)
    assert sc["exponent_computed_prompt_tokens"] < sc["exponent_prompt_tokens_without_cache"]
    assert report["summary"]["early_answering_exponent"] == sc["exponent_time"]


def test_printed_table_and_markdown_line(bench):
    report, stdout, tmp = bench
    assert "| CoT generation | harness |" in stdout and "targets:" in stdout
    assert f"{report['summary']['speedup_excluding_engine_start']:.1f}× excluding engine start" in stdout
    lines = (tmp / "bench.md").read_text().splitlines()
    assert lines[-1].startswith("| 20") and "bench.json" in lines[-1]
    assert f"| {report['summary']['speedup_excluding_engine_start']:.1f} |" in lines[-1]


def test_the_engine_floor_gives_every_stage_a_ratio(bench):
    report, stdout, tmp = bench
    floor, s, h = report["engine_floor"], report["summary"], report["harness"]
    assert floor["prefill_tok_s"] > 0 and sorted(int(b) for b in floor["decode_tok_s"]) == [1, 4, 16, 64, 256]
    assert floor["max_num_seqs"] >= 1 and all(rate > 0 for rate in floor["decode_tok_s"].values())
    for name, st in s["engine_floor"]["stages"].items():
        work = h["stages"][name]
        assert st["batch"] == min(work["requests"] / work["calls"], floor["max_num_seqs"])
        lengths = work.get(
            "generated_lengths", {"1": work["requests"]}
        )  # a stage without lengths is the one-token scores
        assert (
            sum(lengths.values()) == work["requests"]
            and sum(int(k) * v for k, v in lengths.items()) == work["generated_tokens"]
        )
        expected = (work["prompt_tokens"] - work["cached_tokens"]) / floor["prefill_tok_s"] + drain_seconds(
            lengths, floor, floor["max_num_seqs"]
        )
        assert st["floor_s"] == pytest.approx(expected) and st["ratio"] == pytest.approx(work["seconds"] / expected)
    assert s["harness_over_engine_floor"] == pytest.approx(h["wall_s"] / s["engine_floor"]["floor_s"])
    assert f"÷ floor {s['engine_floor']['floor_s']:.1f} s = {s['harness_over_engine_floor']:.2f}" in stdout
    assert f"| {s['harness_over_engine_floor']:.2f} | " in (tmp / "bench.md").read_text().splitlines()[-1]
    # the speedup a harness exactly at the floor would show, per stage from the naive stage times
    assert s["naive_over_engine_floor"] == pytest.approx(s["naive_s"] / s["engine_floor"]["floor_s"])
    for name, st in s["engine_floor"]["stages"].items():
        assert st["naive_over_floor"] == pytest.approx(s["stages"][name]["naive"]["seconds"] / st["floor_s"])
    assert f"naive ÷ floor = {s['naive_over_engine_floor']:.1f}× (chains of thought " in stdout


def test_a_saved_report_reprints_to_the_same_figures(bench):
    report, stdout, tmp = bench
    copy = tmp / "reprinted.json"
    copy.write_text(json.dumps(report))
    done = run_in_group([sys.executable, str(ROOT / "scripts" / "bench.py"), "--reprint", str(copy)], timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    again = json.loads(copy.read_text())
    assert again["forced_answer_cache"] == report["forced_answer_cache"]  # recomputed from the results table
    for key in ("speedup_excluding_engine_start", "harness_over_engine_floor", "naive_over_engine_floor"):
        assert again["summary"][key] == pytest.approx(report["summary"][key])
    targets = stdout.split("targets:")[1].split("report:")[0].strip()  # the run's own output then names its report
    assert targets in done.stdout  # the same targets, met or missed


def test_the_decode_floor_thins_the_batch_as_requests_finish():
    constant = {"prefill_tok_s": 1.0, "decode_tok_s": {"1": 10.0, "256": 10.0}}
    # 1-token requests decode nothing; steps 4, 2, 2 at most 2 at once: batch 2 throughout, 8 tokens at 10 tok/s
    assert drain_seconds({"1": 5, "3": 2, "5": 1}, constant, max_num_seqs=2) == pytest.approx(0.8)
    rising = {"prefill_tok_s": 1.0, "decode_tok_s": {"1": 10.0, "4": 40.0}}  # 25 tok/s at batch 2 (log interpolation)
    # steps 4 and 2 together: 2 steps at batch 2 (2 × 2/25 s), then the longer one alone (2 × 1/10 s)
    assert drain_seconds({"3": 1, "5": 1}, rising) == pytest.approx(0.16 + 0.2)
    assert drain_seconds({"1": 7}, rising) == 0.0 and drain_seconds({}, rising) == 0.0
    # at a mean batch of 2 the old floor would say 6 tokens / 25 tok/s = 0.24 s: thinning costs more
    stages = {
        "cots": {
            "calls": 1,
            "requests": 2,
            "prompt_tokens": 10,
            "cached_tokens": 0,
            "generated_tokens": 8,
            "generated_lengths": {"3": 1, "5": 1},
            "seconds": 1.0,
        }
    }
    out = stage_floors(stages, rising)["stages"]["cots"]
    assert out["decode"] == "drain" and out["floor_s"] == pytest.approx(10 / 1.0 + 0.36)


def test_a_summary_without_lengths_gets_the_floor_at_its_mean_batch_size():
    floor = {"prefill_tok_s": 1000.0, "decode_tok_s": {"1": 10.0, "16": 100.0, "256": 400.0}}
    assert decode_rate(floor, 4) == pytest.approx(55.0)  # halfway between 1 and 16 in log batch size
    assert decode_rate(floor, 0.5) == 10.0 and decode_rate(floor, 1000) == 400.0  # clamped at the probes
    stages = {
        "a": {
            "calls": 2,
            "requests": 32,
            "prompt_tokens": 3000,
            "cached_tokens": 1000,
            "generated_tokens": 500,
            "seconds": 9.0,
        },
        "from the store": {
            "calls": 0,
            "requests": 0,
            "prompt_tokens": 0,
            "cached_tokens": 0,
            "generated_tokens": 0,
            "seconds": 0.1,
        },
    }
    out = stage_floors(stages, floor, max_num_seqs=256)
    assert list(out["stages"]) == ["a"] and out["stages"]["a"]["batch"] == 16
    assert out["stages"]["a"]["floor_s"] == pytest.approx(2000 / 1000 + 500 / 100) and out["ratio"] == pytest.approx(
        9.0 / 7.0
    )
    assert out["stages"]["a"]["decode"] == "mean batch"
