"""Real Slurm: the sbatch template and the submitit launcher each run a small sweep on the tiny model.

CI starts a one-node cluster first (scripts/slurm/start_local_cluster.sh, called by .ci/run); there a
missing Slurm fails these tests. Locally they skip unless a cluster answers (start one with that script).
Slurm may call a job that raised COMPLETED: the tests check the results files, never job states.
"""

import json
import os
import shutil
import subprocess
import sys
import time
import urllib.request
import uuid
from pathlib import Path

import pytest

from faithfulness.results import read_results
from tests.conftest import ROOT, run_cli

TINY_RUN = [
    "n=2",
    "sampling.max_tokens=24",
    "bootstrap_resamples=50",
    "engine.enforce_eager=true",
    "engine.kv_cache_gib=1",
    "engine.max_model_len=1024",
]
TIMEOUT_S = 420  # two engine starts (15-30 s each) plus queueing, on a shared 2-core machine


def _launcher(name: str, sweep: Path) -> list[str]:
    """A multirun on the submitit launcher, one CPU per job (CPU-only jobs, small enough for the one node)."""
    return [
        "-m",
        "hydra/launcher=slurm",
        "hydra.launcher.gpus_per_node=0",
        "hydra.launcher.cpus_per_task=1",
        "hydra.launcher.mem_gb=4",
        "hydra.launcher.timeout_min=10",
        f"hydra.launcher.name={name}",
        f"hydra.sweep.dir={sweep}",
    ]


@pytest.fixture(scope="module")
def slurm() -> None:
    """A Slurm cluster with an idle node, or a skip (locally) / a failure (CI)."""
    state = ""
    if shutil.which("sbatch") and shutil.which("sinfo"):
        done = subprocess.run(["sinfo", "-h", "-o", "%t"], capture_output=True, text=True, timeout=30, check=False)
        state = done.stdout
    if not any(s in state for s in ("idle", "mix", "alloc")):
        message = "no Slurm cluster answers (start one: sudo bash scripts/slurm/start_local_cluster.sh)"
        if os.environ.get("CI"):
            pytest.fail(f"{message}; CI must test the Slurm paths, not skip them")
        pytest.skip(message)


@pytest.fixture
def job_env(tiny_model_dir) -> dict[str, str]:
    # the jobs must import this checkout and find a python: the venv running these tests
    return {**os.environ, "PYTHONPATH": str(ROOT), "FAITHFULNESS_VENV": sys.prefix}


def _cancel(name: str) -> None:
    subprocess.run(["scancel", f"--name={name}"], capture_output=True, timeout=30, check=False)


def _results(results_dir: Path) -> dict[int, Path]:
    """digits → the run folder holding a finished summary.json."""
    return {
        int(p.parent.parent.parent.name.split("-d")[1].split("-")[0]): p.parent
        for p in results_dir.glob("addition-d*-o2/*/*/summary.json")
    }


def _check_run(folder: Path, digits: int) -> None:
    df = read_results(folder / "results.parquet")
    summary = json.loads((folder / "summary.json").read_text())
    assert (df.digits == digits).all() and sorted(df.item_id.unique()) == [0, 1]
    assert summary["run"]["digits"] == digits and summary["run"]["n_problems"] == 2
    assert {"original", "early_answering", "filler_tokens"} <= set(df.perturbation)


def test_sbatch_template_runs_a_job_array_of_hydra_overrides(slurm, tiny_model_dir, job_env, tmp_path):
    (tmp_path / "sweep.txt").write_text("digits=1\ndigits=2 seed=0\n")
    name = f"faithfulness-test-{uuid.uuid4().hex[:8]}"
    cmd = [
        "sbatch",
        "--wait",
        "--parsable",
        "--array=1-2",
        f"--job-name={name}",
        "--gpus-per-node=0",
        "--cpus-per-task=1",
        "--mem=4G",
        "--time=10",
        f"--output={tmp_path}/slurm-%x-%j.out",
        "scripts/slurm/run.sbatch",
        "--lines",
        str(tmp_path / "sweep.txt"),
        "model=hf",
        f"model.path={tiny_model_dir}",
        *TINY_RUN,
        f"results_dir={tmp_path / 'results'}",
    ]
    try:
        done = subprocess.run(
            cmd, cwd=ROOT, env=job_env, capture_output=True, text=True, timeout=TIMEOUT_S, check=False
        )
    finally:
        _cancel(name)
    logs = {p.name: p.read_text() for p in tmp_path.glob("slurm-*.out")}
    assert done.returncode == 0, (done.stderr, logs)
    runs = _results(tmp_path / "results")
    assert sorted(runs) == [1, 2], logs
    for digits, folder in runs.items():
        _check_run(folder, digits)
    assert len(logs) == 2
    for log in logs.values():
        # the venv named by FAITHFULNESS_VENV ran it, and run.py printed its results folder
        assert f"{sys.prefix}/bin/python run.py digits=" in log
        assert any(f"results: {folder}" in log for folder in runs.values())


def test_sbatch_template_without_an_array_rejects_lines(slurm, job_env, tmp_path):
    cmd = [
        "sbatch",
        "--wait",
        "--gpus-per-node=0",
        "--cpus-per-task=1",
        "--mem=1G",
        "--time=2",
        f"--output={tmp_path}/out-%j.out",
        "scripts/slurm/run.sbatch",
        "--lines",
        "sweep.txt",
    ]
    done = subprocess.run(cmd, cwd=ROOT, env=job_env, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode != 0
    assert "--lines needs an array job" in "".join(p.read_text() for p in tmp_path.glob("out-*.out"))


def test_submitit_launcher_runs_a_sweep_as_a_job_array_with_one_wandb_group(slurm, tiny_model_dir, job_env, tmp_path):
    name = f"faithfulness-test-{uuid.uuid4().hex[:8]}"
    sweep = tmp_path / "sweep"
    try:
        done = run_cli(
            *_launcher(name, sweep),
            "model=hf",
            f"model.path={tiny_model_dir}",
            "digits=1,2",
            *TINY_RUN,
            f"results_dir={tmp_path / 'results'}",
            "wandb.mode=offline",
            f"wandb.dir={tmp_path / 'wb'}",
            env=job_env,
            timeout=TIMEOUT_S,
        )
    finally:
        _cancel(name)
    logs = {p.parent.name: p.read_text() for p in sweep.glob("slurm/*_*/*_log.out")}
    assert done.returncode == 0, (done.stderr[-3000:], logs)
    runs = _results(tmp_path / "results")
    assert sorted(runs) == [1, 2], (done.stderr[-3000:], logs)
    for digits, folder in runs.items():
        _check_run(folder, digits)
    # job logs land in <sweep dir>/slurm/<array job>_<task>/, one per run, each naming its results folder
    assert len(logs) == 2 and all(any(f"results: {f}" in log for f in runs.values()) for log in logs.values())

    # each job mirrored its run to W&B (offline); the runs of the sweep share a group, named by model and difficulty
    seen = []
    for run_dir in sorted((tmp_path / "wb" / "wandb").glob("offline-run-*")):
        out = subprocess.run(
            [sys.executable, "-m", "wandb", "leet", "inspect", "--json", str(run_dir)],
            capture_output=True,
            text=True,
            timeout=120,
            check=True,
        ).stdout
        seen.append(next(json.loads(line)["run"] for line in out.splitlines() if '"type":"run"' in line))
    model = runs[1].parent.name
    assert sorted(r["display_name"] for r in seen) == [f"{model} addition-d1-o2", f"{model} addition-d2-o2"]
    assert {r["run_group"] for r in seen} == {str(sweep).strip("/").replace("/", "-")}


def test_one_server_job_serves_a_two_job_multirun_and_stops_when_cancelled(slurm, job_env, tmp_path):
    """serve.sbatch publishes a URL; a Slurm multirun with engine=server runs against it, starting no engine."""
    url_file = tmp_path / "s.url"
    name = f"faithfulness-test-{uuid.uuid4().hex[:8]}"
    cmd = [
        "sbatch",
        "--parsable",
        f"--job-name={name}",
        "--gpus-per-node=0",
        "--cpus-per-task=1",  # the other core for the sweep's jobs, one at a time
        "--mem=8G",
        "--time=15",
        f"--output={tmp_path}/slurm-%x-%j.out",
        "scripts/slurm/serve.sbatch",
        "smollm2-135m",
        "--port",
        "0",
        "--",
        "--enforce-eager",
    ]
    env = {**job_env, "FAITHFULNESS_SERVER_FILE": str(url_file), "VLLM_CPU_KVCACHE_SPACE": "1"}
    logs = lambda: "".join(p.read_text() for p in tmp_path.glob("slurm-*.out"))  # noqa: E731
    try:
        subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=60, check=True)
        url = _wait_for_url(url_file, name, logs)
        direct = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        with direct.open(f"{url}/models", timeout=60) as response:
            assert "smollm2-135m" in [m["id"] for m in json.load(response)["data"]]
        done = _server_sweep(url, name, job_env, tmp_path)
        _cancel(name)  # scancel: SIGTERM to serve.py, which stops the server and removes its url file
        deadline = time.monotonic() + 60
        while url_file.exists() and time.monotonic() < deadline:
            time.sleep(1)
        assert not url_file.exists(), logs()[-3000:]
    finally:
        _cancel(name)
        _cancel(f"{name}-runs")
    assert f"serving smollm2-135m-instruct at {url}" in logs() and "serve.py: SIGTERM: stopping" in logs()
    runs = _results(tmp_path / "results")
    assert sorted(runs) == [1, 2], done.stderr[-3000:]
    for digits, folder in runs.items():
        _check_run(folder, digits)
        summary = json.loads((folder / "summary.json").read_text())
        assert summary["run"]["engine_settings"]["engine"] == "vllm-server"  # the server did the engine work
        assert set(read_results(folder / "results.parquet").engine) == {"vllm-server"}
        assert summary["timings"].get("engine_start_s", 0) < 30  # a client and a tokenizer, no engine of its own


def _wait_for_url(url_file: Path, name: str, logs) -> str:
    deadline = time.monotonic() + 300  # queueing plus a server start (about 60 s here)
    while not url_file.exists():
        queued = subprocess.run(["squeue", "-h", "-n", name], capture_output=True, text=True, timeout=30).stdout
        assert queued.strip() or url_file.exists(), f"the job ended without a url file: {logs()[-3000:]}"
        assert time.monotonic() < deadline, f"no url file after 300 s: {logs()[-3000:]}"
        time.sleep(2)
    return url_file.read_text().strip()


def _server_sweep(url: str, name: str, job_env: dict[str, str], tmp_path: Path) -> subprocess.CompletedProcess:
    """``-m hydra/launcher=slurm engine=server``: two jobs (digits=1,2) against the server at ``url``."""
    done = run_cli(
        *_launcher(f"{name}-runs", tmp_path / "sweep"),
        "model=smollm2-135m",
        "digits=1,2",
        "engine=server",
        f"engine.url={url}",
        *TINY_RUN,
        f"results_dir={tmp_path / 'results'}",
        "wandb.mode=disabled",
        env=job_env,
        timeout=TIMEOUT_S,
    )
    logs = {p.parent.name: p.read_text() for p in (tmp_path / "sweep").glob("slurm/*_*/*_log.out")}
    assert done.returncode == 0, (done.stderr[-3000:], logs)
    return done
