"""The server backend against the in-process engine: the same run both ways, on one machine, in one go.

    python scripts/bench_server.py                                   # smollm2-135m, addition digits=3, n=20
    python scripts/bench_server.py --model qwen2.5-coder-0.5b n=50   # any run.py overrides after the options

Runs ``run.py`` once with the in-process engine, then starts a local vLLM server for the same model
(``scripts/serve.py``: same dtype, block size, KV cache and compile settings) and runs the same
config against it (``engine=server``). One engine is alive at a time. Prints, per stage, the
in-process seconds, the server's and their ratio. It also prints the engine start each side paid
and what a sweep of k jobs that each start their own engine would pay against one server. It writes
the numbers, the CPU and its flags to ``results/bench_server-<time>.json``. The two tables must be
identical but for where the work ran (``tests/test_engine_server.py`` asserts that); the script
checks the answers agree.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))

from engine_floor import cpu_description  # noqa: E402

from faithfulness.results import read_results  # noqa: E402

DEFAULT_RUN = ("task=addition", "digits=3", "n=20")  # ~5 min a side with SmolLM2 on 2 cores
SWEEP_JOBS = (8, 48)  # a sweep of 8 tasks; 8 tasks × 6 sizes (the example)


def run(results: Path, overrides: list[str]) -> tuple[float, dict[str, Any]]:
    """``run.py`` with ``overrides`` into ``results``: its wall seconds and its summary.json."""
    clock = time.perf_counter()
    done = subprocess.run([sys.executable, str(ROOT / "run.py"), f"results_dir={results}", *overrides], cwd=ROOT)
    if done.returncode != 0:
        sys.exit(f"run.py {' '.join(overrides)} failed with exit code {done.returncode}")
    (summary,) = results.glob("*/*/*/summary.json")
    return time.perf_counter() - clock, json.loads(summary.read_text())


def serve(model: str, url_file: Path) -> tuple[subprocess.Popen, float]:
    """A local server for ``model`` (scripts/serve.py), and the seconds it took to answer."""
    clock = time.perf_counter()
    cmd = [sys.executable, str(ROOT / "scripts" / "serve.py"), model, "--host", "127.0.0.1", "--port", "0"]
    proc = subprocess.Popen([*cmd, "--url-file", str(url_file)], cwd=ROOT, start_new_session=True)
    while not url_file.exists():
        if proc.poll() is not None:
            sys.exit(f"scripts/serve.py {model} exited with {proc.returncode} before it answered")
        time.sleep(1)
    return proc, time.perf_counter() - clock


def compare(local: dict[str, Any], served: dict[str, Any]) -> list[dict[str, Any]]:
    """Per stage both sides ran: requests, seconds each side and server ÷ in-process."""
    rows = []
    for name, stage in local["stages"].items():
        other = served["stages"].get(name)
        if other is None or not stage.get("seconds"):
            continue
        rows.append(
            {
                "stage": name,
                "requests": stage.get("requests", 0),
                "in_process_s": round(stage["seconds"], 1),
                "server_s": round(other["seconds"], 1),
                "ratio": round(other["seconds"] / stage["seconds"], 3),
                "cached_tokens": [stage.get("cached_tokens", 0), other.get("cached_tokens", 0)],
            }
        )
    return rows


def main() -> None:
    """Both runs, the comparison printed and written to results/."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="smollm2-135m", help="a model config (conf/model/*.yaml)")
    args, overrides = parser.parse_known_args()
    overrides = [f"model={args.model}", *(overrides or DEFAULT_RUN)]
    load = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="bench-server-") as tmp:
        local_s, local = run(Path(tmp) / "in-process", overrides)
        proc, start_s = serve(args.model, Path(tmp) / "url")
        try:
            url = (Path(tmp) / "url").read_text().strip()
            served_s, served = run(Path(tmp) / "server", [*overrides, "engine=server", f"engine.url={url}"])
            tables = [
                read_results(next((Path(tmp) / side).glob("*/*/*/results.parquet")))
                for side in ("in-process", "server")
            ]
        finally:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(timeout=120)
    same = tables[0].answer.fillna("").tolist() == tables[1].answer.fillna("").tolist()
    stages = compare(local, served)
    work = [sum(r[k] for r in stages) for k in ("in_process_s", "server_s")]
    engine_start = local["timings"].get("engine_start_s", 0.0)
    report = {
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "overrides": overrides,
        "cpu": cpu_description(),
        "load_1min_before": round(load, 2),
        "stages": stages,
        "stages_ratio": round(work[1] / work[0], 3),
        "wall_s": {"in_process": round(local_s, 1), "server": round(served_s, 1)},
        "engine_start_s": {"in_process": round(engine_start, 1), "server_start": round(start_s, 1)},
        "sweep_starts_saved_s": {str(k): round((k - 1) * engine_start, 1) for k in SWEEP_JOBS},
        "answers_identical": same,
    }
    out = ROOT / "results" / f"bench_server-{int(time.time())}.json"
    out.write_text(json.dumps(report, indent=2) + "\n")
    print("\n| stage | requests | in-process s | server s | server ÷ in-process |\n|---|---:|---:|---:|---:|")
    for r in stages:
        print(f"| {r['stage']} | {r['requests']} | {r['in_process_s']} | {r['server_s']} | {r['ratio']:.2f} |")
    print(f"| all stages | | {work[0]:.1f} | {work[1]:.1f} | {report['stages_ratio']:.2f} |")
    print(f"\nanswers identical: {same}; engine start in-process {engine_start:.1f} s, server start {start_s:.1f} s")
    print(f"CPU: {report['cpu']['model']}, AVX-512 {report['cpu']['avx512']}, AMX {report['cpu']['amx']}; {out}")


if __name__ == "__main__":
    main()
