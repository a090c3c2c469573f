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

from tests.conftest import ROOT, run_in_group

STAGES = ["chains of thought", "rewrites", "regenerations", "forced answers", "answer scores"]
COUNTS = ["calls", "requests", "prompt_tokens", "cached_tokens", "generated_tokens"]


@pytest.fixture(scope="module")
def bench(tiny_model_dir, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("bench")
    cmd = [sys.executable, str(ROOT / "scripts" / "bench.py"), "model=hf", f"model.path={tiny_model_dir}", "n=3",
           "sampling.max_tokens=40",
           "engine.enforce_eager=true", "engine.kv_cache_gib=1", "engine.max_model_len=1024",
           "store_chunk=4",  # stages go to the engine in several calls, as large runs do
           f"results_dir={tmp / 'results'}", f"cache_dir={tmp / 'cache'}", "--naive-max=6", "--naive-min=2",
           "--lengths=2,4,8", "--reps=2", f"--json={tmp / 'bench.json'}", f"--markdown={tmp / 'bench.md'}"]  # fmt: skip
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
        assert {"requests", "sampled", "extrapolated", "seconds", "measured_seconds", "prompt_tokens",
                    "generated_tokens", "generated_tok_s", "processed_tok_s", "agreement", "cpu_seconds"} <= set(n)  # fmt: skip
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
    assert s["speedup_including_engine_start"] == pytest.approx((naive + n["start_s"]) / (h["wall_s"] + h["engine_start_s"]))
    assert s["cpu_speedup_excluding_engine_start"] == pytest.approx(s["naive_cpu_s"] / h["cpu_s"])
    forced = h["stages"]["forced answers"]
    assert s["forced_answer_cache_share"] == pytest.approx(forced["cached_tokens"] / forced["prompt_tokens"])
    assert h["engine_start_s"] > 0 and n["start_s"] > 0
    assert s["peak_rss_gib"] == max(report["peak_rss_gib"].values()) > 0
    for t in s["targets"].values():
        assert t["met"] == (t["value"] >= float(t["target"][3:]) if t["target"].startswith(">=") else t["value"] <= float(t["target"][3:]))


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
