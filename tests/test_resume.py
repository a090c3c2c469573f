"""The kill test: `run.py` SIGKILLed at several points and rerun gives exactly the uninterrupted table.

One results folder lives through three kills (during CoT generation, during forced answers, while
writing results.parquet), as a requeued Slurm job would, and a fourth, clean run. Kills come from
the test-only hook ``FAITHFULNESS_KILL_AT`` (``faithfulness.store.kill_point``), right after a chunk
is stored, so the engine work each attempt did is known exactly: the store records which process
computed each result. The uninterrupted reference runs the same config in-process on the shared engine.
"""

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time

import pandas as pd
import pytest

from faithfulness.loading.rules import load
from faithfulness.pipeline import run
from faithfulness.results import read_results
from faithfulness.store import KILL_ENV, STORE_FILE, RequestStore
from tests.conftest import ROOT, alive_in_group, run_cli
from tests.test_pipeline import make_cfg

OVERRIDES = (
    "model=hf",
    "model.path={model}",
    "n=4",
    "samples=2",
    "sampling.max_tokens=40",
    "bootstrap_resamples=50",
    "store_chunk=4",
    "engine.enforce_eager=true",
    "engine.max_model_len=1024",
    "engine.kv_cache_gib=1",
    "filler.mode=run",
)
# CoTs: 8 requests in chunks of 4; forced answers: 64 rows, 28 requests (no CoT and filler are asked once per
# question, not per CoT); answer scores: 20
KILLS = ("chains of thought:1", "forced answers:3", "write:results.parquet")
# Prompt tokens read from vLLM's prefix cache depend on what the engine happened to have cached (a
# resumed run starts cold; the shared reference engine is warm).
VOLATILE = ["cached_tokens"]
# The README's guarantee: log-probabilities within 1e-4. A resumed run teacher-forces answers whose
# log-probs an uninterrupted run read off its own generation (vllm_engine.score): other kernels.
LOGPROBS, LOGPROB_TOLERANCE = ["logprob_original", "logprob_correct"], 1e-4


def _run(*overrides, env=None, timeout=900):
    """`python run.py ...` in its own process group; returns (CompletedProcess, process group id)."""
    done = run_cli(*overrides, env=env, timeout=timeout)
    return done, done.pgid


def _orphans_after_kill(pgid):
    deadline = time.monotonic() + 10  # SIGKILL is delivered at once; allow for a loaded machine
    while (alive := alive_in_group(pgid)) and time.monotonic() < deadline:
        time.sleep(0.2)
    if alive:  # clean up before failing, so the engine does not hold the cores for the other tests
        os.killpg(pgid, signal.SIGKILL)
    return alive


@pytest.fixture(scope="module")
def overrides(tiny_model_dir):
    return [o.replace("{model}", str(tiny_model_dir)) for o in OVERRIDES]


@pytest.fixture(scope="module")
def reference(overrides, tiny_engine, tmp_path_factory):
    root = tmp_path_factory.mktemp("uninterrupted")
    out = run(load(make_cfg(root, *overrides)), engine=tiny_engine)
    return out, out.out_dir.relative_to(root)


@pytest.fixture(scope="module")
def resumed(overrides, reference, tmp_path_factory):
    root = tmp_path_factory.mktemp("killed")
    folder = root / reference[1]
    attempts = []
    for point in KILLS:
        done, pid = _run(*overrides, f"results_dir={root}", env={KILL_ENV: point})
        with RequestStore(folder / STORE_FILE) as store:
            by_writer, by_stage = store.count("writer"), store.count("stage")
        attempts.append(
            {
                "point": point,
                "returncode": done.returncode,
                "stderr": done.stderr[-3000:],
                "writer": f"{socket.gethostname()}:{pid}",
                "orphans": _orphans_after_kill(pid),
                "by_writer": by_writer,
                "by_stage": by_stage,
                "results_written": (folder / "results.parquet").exists(),
                "partials": [p.name for p in folder.glob(".*.partial")],
            }
        )
    final, _ = _run(*overrides, f"results_dir={root}")
    return attempts, final, folder


def test_each_kill_ended_the_run_and_its_engine_processes(resumed):
    attempts, _, _ = resumed
    for attempt in attempts:
        assert attempt["returncode"] == -signal.SIGKILL, attempt["stderr"]
        assert attempt["orphans"] == [], attempt  # vLLM's EngineCore died with its run
    cots, answers, writing = attempts
    assert cots["by_stage"] == {"chains of thought": 4}  # killed right after the first chunk of 4 was stored
    assert answers["by_stage"] == {"chains of thought": 8, "forced answers": 12}
    assert writing["by_stage"] == {"chains of thought": 8, "forced answers": 28, "answer scores": 20}
    # killed between the temp file's fsync and its rename: no half-written results.parquet, only a temp file
    assert not writing["results_written"] and len(writing["partials"]) == 1


def test_the_resumed_table_equals_the_uninterrupted_one(resumed, reference):
    attempts, final, folder = resumed
    assert final.returncode == 0, final.stderr[-3000:]
    table, expected = read_results(folder / "results.parquet"), reference[0].table
    key = ["item_id", "sample", "perturbation", "level"]
    assert not table.duplicated(key).any() and len(table) == len(expected) == 64
    # fp32 makes results independent of batch composition (docs/vllm-cpu.md, Determinism): asserted here, not assumed.
    # Every answer, outcome and text is identical; log-probabilities agree within the README's 1e-4.
    pd.testing.assert_frame_equal(
        table.drop(columns=VOLATILE + LOGPROBS), expected.drop(columns=VOLATILE + LOGPROBS), check_exact=True
    )
    for column in LOGPROBS:
        assert table[column].isna().equals(expected[column].isna())
        assert (table[column] - expected[column]).abs().fillna(0).max() <= LOGPROB_TOLERANCE, column
    summary = json.loads((folder / "summary.json").read_text())
    _assert_close(summary["metrics"], reference[0].summary["metrics"])
    assert not list(folder.glob(".*.partial"))  # the killed writer's temp file was cleaned up


def _assert_close(a, b, where="metrics"):
    """Equal structures; floats within the log-prob tolerance (mean probabilities derive from log-probs)."""
    if isinstance(a, dict):
        assert sorted(a) == sorted(b), where
        for key in a:
            _assert_close(a[key], b[key], f"{where}.{key}")
    elif isinstance(a, list):
        assert len(a) == len(b), where
        for n, (x, y) in enumerate(zip(a, b)):
            _assert_close(x, y, f"{where}[{n}]")
    elif isinstance(a, float) and isinstance(b, float):
        assert a == pytest.approx(b, abs=LOGPROB_TOLERANCE, nan_ok=True), where
    else:
        assert a == b, where


def test_no_finished_engine_work_was_redone(resumed, reference):
    attempts, final, folder = resumed
    total = sum(stage["to_engine"] for stage in reference[0].summary["stages"].values())
    assert (
        total
        == 8
        + reference[0].summary["stages"]["forced answers"]["requests"]
        + reference[0].summary["stages"]["answer scores"]["to_engine"]
    )
    done_by = [a["by_writer"].get(a["writer"], 0) for a in attempts]
    for earlier, later in zip(attempts, attempts[1:]):
        # what an attempt computed is still attributed to it later: nothing was recomputed and replaced
        assert all(later["by_writer"][w] == n for w, n in earlier["by_writer"].items())
    summary = json.loads((folder / "summary.json").read_text())
    after = sum(stage["to_engine"] for stage in summary["stages"].values())
    from_store = sum(stage["from_store"] for stage in summary["stages"].values())
    print(
        f"\nengine requests per attempt: {dict(zip(KILLS, done_by))}, after the last kill: {after}, "
        f"total {sum(done_by) + after} vs uninterrupted {total}"
    )
    assert all(n > 0 for n in done_by)  # each attempt computed something before its kill, and kept it (above)
    assert sum(done_by) + after == total and after == 0 and from_store == total
    assert "engine_start_s" not in summary["timings"]  # everything was stored: no engine was started
    with RequestStore(folder / STORE_FILE) as store:
        assert sum(store.count().values()) == total


HOLDER = """
import sys, time
from faithfulness.store import lock_folder
with lock_folder(sys.argv[1]):
    print("locked", flush=True)
    time.sleep(300)
"""


def test_a_second_run_of_a_config_in_use_is_refused_naming_folder_and_holder(resumed, overrides):
    _, _, folder = resumed
    before = (folder / "results.parquet").read_bytes()
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(folder)], cwd=ROOT, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        done, _ = _run(*overrides, f"results_dir={folder.parents[2]}")
    finally:
        holder.kill()
        holder.wait()
    assert done.returncode == 3, done.stderr[-3000:]
    assert f"results folder {folder} is in use by another run (pid {holder.pid}" in done.stderr
    assert "Traceback" not in done.stderr
    assert (folder / "results.parquet").read_bytes() == before


def test_a_corrupt_store_stops_the_run_with_its_path_and_is_left_as_it_is(resumed, overrides, tmp_path):
    _, _, folder = resumed
    copy = tmp_path / folder.relative_to(folder.parents[2])
    shutil.copytree(folder, copy)
    store = copy / STORE_FILE
    data = bytearray(store.read_bytes())
    data[: len(data) // 2] = b"\x00" * (len(data) // 2)
    store.write_bytes(bytes(data))
    before = (copy / "results.parquet").read_bytes()
    done, _ = _run(*overrides, f"results_dir={tmp_path}")
    assert done.returncode == 3, done.stderr[-3000:]
    assert f"error: request store {store} is corrupt" in done.stderr and "Traceback" not in done.stderr
    assert store.read_bytes() == bytes(data) and (copy / "results.parquet").read_bytes() == before
