"""The console: vLLM's output (this process's and its children's) goes to engine.log, stages get one bar each."""

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from faithfulness import console
from tests.conftest import run_cli

VLLM_ERROR = b"(EngineCore pid=7) ERROR 12-02 03:38:42 [core.py:1510] "
CHILD = "import sys\nprint('child at start', flush=True)\nsys.stdin.readline()\nprint('child later', flush=True)\n"


def test_quiet_sends_this_process_and_the_children_it_starts_to_the_log(tmp_path, capfd):
    log = tmp_path / "engine.log"
    with console.engine_log(log, verbose=False):
        with console.quiet():
            print("python print", file=sys.__stdout__, flush=True)  # pytest swaps sys.stdout; vLLM has the real one
            os.write(2, b"raw fd 2\n")
            child = subprocess.Popen([sys.executable, "-c", CHILD], stdin=subprocess.PIPE)
        print("the table", file=sys.__stdout__, flush=True)  # after the block: the console again
        child.communicate(b"go\n")  # the child still writes, outside any engine call: to the log
        console._pump.drain()
    out, err = capfd.readouterr()
    text = log.read_text()
    for line in ("python print", "raw fd 2", "child at start", "child later"):
        assert line in text and line not in out + err
    assert "the table" in out and "the table" not in text


def test_a_long_lived_child_writes_into_the_log_of_the_run_being_served(tmp_path, capfd):
    # a sweep's engine starts in the first run and serves the next: each log gets its own run's lines
    first, second = tmp_path / "a" / "engine.log", tmp_path / "b" / "engine.log"
    first.parent.mkdir(), second.parent.mkdir()
    with console.engine_log(first, verbose=False):
        with console.quiet():
            child = subprocess.Popen([sys.executable, "-c", CHILD], stdin=subprocess.PIPE)
        _wait_for(first, "child at start")  # as the engine's start is over before its first run goes on
    with console.engine_log(second, verbose=False):
        with console.quiet():
            child.communicate(b"go\n")
        console._pump.drain()
    assert "child at start" in first.read_text() and "child later" not in first.read_text()
    assert second.read_text().strip() == "child later"


def _wait_for(path, text, timeout=60):
    deadline = time.monotonic() + timeout
    while text not in path.read_text() and time.monotonic() < deadline:
        time.sleep(0.05)


def test_verbose_leaves_everything_on_the_console(tmp_path, capfd):
    with console.engine_log(tmp_path / "engine.log", verbose=True), console.quiet(note="starting vLLM"):
        os.write(2, b"vllm says\n")
    assert "vllm says" in capfd.readouterr().err
    assert not (tmp_path / "engine.log").exists() and not console.logging_to_file()


def test_a_failing_engine_call_shows_vllm_error_lines_and_the_log_path(tmp_path, capfd):
    log = tmp_path / "engine.log"
    with console.engine_log(log, verbose=False), pytest.raises(RuntimeError):
        with console.quiet(note="starting vLLM"):
            os.write(2, VLLM_ERROR + b"Traceback (most recent call last):\r\n")
            os.write(2, VLLM_ERROR + b'  File "core.py", line 1, in run\r\n')
            os.write(2, VLLM_ERROR + b"ValueError: the root cause\r\n")
            os.write(2, b"(EngineCore pid=7) WARNING 12-02 03:38:42 [core.py:9] only a warning\n")
            raise RuntimeError("Engine core initialization failed. See root cause above.")
    err = capfd.readouterr().err
    assert f"starting vLLM (vLLM's output: {log})" in err and f"its whole output is in {log}" in err
    assert "ValueError: the root cause" in err  # echoed: vLLM's own error line, not its traceback body
    assert "Traceback" not in err and "core.py, line 1" not in err and "only a warning" not in err
    assert "only a warning" in log.read_text() and "Traceback" in log.read_text()


def test_a_failure_without_error_lines_shows_the_end_of_the_log(tmp_path, capfd):
    log = tmp_path / "engine.log"
    with console.engine_log(log, verbose=False), pytest.raises(OSError):
        with console.quiet():
            os.write(1, b"".join(b"line %d\n" % n for n in range(30)))
            raise OSError("worker died")
    err = capfd.readouterr().err
    assert "line 29" in err and "line 20" in err and "line 19" not in err and str(log) in err


def test_vllm_progress_moves_the_stage_bar_and_drops_vllm_bar_names(capfd):
    with console.stage("forced answers", total=10, done=4) as bar:
        make = console.vllm_progress("forced answers (2/2)", units=3)
        assert make(["a", "b"], desc="Rendering prompts") == ["a", "b"]  # no bar while vLLM renders
        progress = make(total=6, desc="Processed prompts", dynamic_ncols=True, postfix="est. speed")
        progress.update(3)
        assert bar.bar.n == 4 + 3 * 3 // 6  # vLLM counts its 6 one-token prompts, the stage its 3 requests
        progress.update(3)
        progress.postfix = f"speed {1 / progress.format_dict['elapsed']:.0f}"  # what vLLM does to its bar
        progress.close()
        assert bar.bar.n == 7
    err = capfd.readouterr().err
    assert "forced answers 7/10" in err and "4 stored" in err
    assert "Processed prompts" not in err and "Rendering" not in err


def test_vllm_progress_outside_a_stage_is_a_bar_of_its_own(capfd):
    progress = console.vllm_progress("direct", units=2)(total=2, desc="Processed prompts")
    progress.update(2)
    progress.close()
    assert "direct 2/2" in capfd.readouterr().err


def test_the_eta_follows_the_stage_mean_rate_when_answers_come_in_bursts(monkeypatch):
    now = [0.0]
    monkeypatch.setattr("tqdm.std.time", lambda: now[0])  # the bar's clock
    with console.stage("forced answers", total=2402) as bar:
        for now[0], done in ((54.0, 1), (63.0, 256)):  # as a default run's first chunk finished
            bar.advance_to(done)
        # 2,146 to go at 256 per 63 s: 528 s; a moving average of the two bursts said 32 hours
        assert "ETA 08:48" in str(bar.bar)


def test_a_terminal_that_reports_no_width_still_gets_its_bars(monkeypatch):
    master, slave = os.openpty()  # a pseudo-terminal nobody gave a size: it reports 0 columns
    stream = os.fdopen(slave, "w", buffering=1, encoding="utf-8")
    monkeypatch.setattr(console, "terminal", lambda: stream)
    with console.stage("chains of thought", 3) as bar:
        bar.advance_to(3)
    stream.close()
    assert "chains of thought 3/3" in os.read(master, 1 << 16).decode()
    os.close(master)


VLLM_LINES = ("WARNING", "INFO", "Processed prompts", "Rendering prompts", "Triton", "Loading safetensors", "NUMA")
STAGES = ("chains of thought 2/2", "forced answers", "answer scores")
TINY = (
    "n=2",
    "sampling.max_tokens=16",
    "bootstrap_resamples=20",
    "perturbations=[no_cot,early_answering]",
    "engine.enforce_eager=true",
    "engine.max_model_len=1024",
    "engine.kv_cache_gib=1",
    "wandb.mode=disabled",
)


def _results(done) -> Path:
    return Path(done.stdout.strip().splitlines()[-1].removeprefix("results: "))


def test_a_run_shows_stages_and_the_table_and_logs_vllm_to_engine_log(tiny_model_dir, tmp_path):
    done = run_cli("model=hf", f"model.path={tiny_model_dir}", *TINY, f"results_dir={tmp_path}")
    assert done.returncode == 0, done.stderr[-3000:]
    shown = done.stdout + done.stderr
    assert not [word for word in VLLM_LINES if word in shown], shown[-3000:]
    assert all(stage in done.stderr for stage in STAGES) and "starting vLLM" in done.stderr
    assert "early answering: AOC" in done.stdout
    log = (_results(done) / "engine.log").read_text()
    # (INFO lines too, unless VLLM_LOGGING_LEVEL is set: an engine started by an earlier test sets it for later ones)
    assert all(word in log for word in ("WARNING", "Triton", "Loading safetensors", "NUMA", "EngineCore")), log[-3000:]


def test_verbose_shows_vllm_on_the_console_and_writes_no_engine_log(tiny_model_dir, tmp_path):
    done = run_cli("-v", "model=hf", f"model.path={tiny_model_dir}", *TINY, f"results_dir={tmp_path}")
    assert done.returncode == 0, done.stderr[-3000:]
    assert "WARNING" in done.stdout + done.stderr and "Loading safetensors" in done.stderr
    assert all(stage in done.stderr for stage in STAGES)
    assert not (_results(done) / "engine.log").exists()


def test_a_sweep_worker_logs_each_run_into_its_own_folder(tiny_model_dir, tmp_path):
    done = run_cli(
        "-m",
        "model=hf",
        f"model.path={tiny_model_dir}",
        "digits=1,2",
        *TINY,
        f"results_dir={tmp_path / 'r'}",
        f"hydra.sweep.dir={tmp_path / 'sweep'}",
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert not [word for word in VLLM_LINES[1:] if word in done.stdout + done.stderr], done.stderr[-3000:]
    first, second = (tmp_path / "sweep" / str(job) / "results" / "engine.log" for job in (0, 1))
    assert "Initializing a V1 LLM engine" in first.read_text()  # the engine starts in the first run ...
    assert not second.exists() or "Initializing a V1 LLM engine" not in second.read_text()  # ... and serves the second
    assert "[shutdown]" in second.read_text()  # the worker closes its engine after the last run: that run's log
