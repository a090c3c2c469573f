"""The engine's processes die with the run however it ends: SIGKILL of the run's main pid leaves nothing behind."""

import os
import signal
import subprocess
import sys
import time

from faithfulness import lifeline
from tests.conftest import ROOT, alive_in_group

# a "run" that starts a watchdog, then a child that starts a grandchild (as vLLM's EngineCore starts its Worker)
FAKE_RUN = """
import subprocess, sys, time
from faithfulness import lifeline
watchdog = lifeline.start()
grandchild = "import time; time.sleep(300)"
subprocess.Popen([sys.executable, "-c", f"import subprocess, sys, time; subprocess.Popen([sys.executable, '-c', {grandchild!r}]); time.sleep(300)"])
print("started", flush=True)
if sys.argv[1] == "stop":
    time.sleep(1)
    watchdog.stop()
    print("stopped", flush=True)
time.sleep(300)
"""


def _start(mode):
    run = subprocess.Popen(
        [sys.executable, "-c", FAKE_RUN, mode], cwd=ROOT, stdout=subprocess.PIPE, text=True, start_new_session=True
    )
    assert run.stdout.readline().strip() == "started"
    return run


def _left_after(pgid, seconds):
    deadline = time.monotonic() + seconds
    while (alive := alive_in_group(pgid)) and time.monotonic() < deadline:
        time.sleep(0.1)
    if alive:
        os.killpg(pgid, signal.SIGKILL)
    return alive


def test_descendants_of_a_run_killed_with_sigkill_are_killed_by_its_watchdog():
    run = _start("watch")
    time.sleep(lifeline.SCAN_S + lifeline.POLL_S + 0.5)  # the watchdog has seen the child and the grandchild
    assert len(alive_in_group(run.pid)) == 4  # run, watchdog, child, grandchild
    run.kill()
    run.wait()
    assert _left_after(run.pid, 5) == []


def test_a_stopped_watchdog_exits_and_kills_nothing():
    run = _start("stop")
    assert run.stdout.readline().strip() == "stopped"
    try:
        assert len(alive_in_group(run.pid)) == 3  # run, child, grandchild: the watchdog is gone
    finally:
        os.killpg(run.pid, signal.SIGKILL)
        run.wait()


def test_die_with_parent_kills_the_child_when_its_parent_dies():
    child = "from faithfulness import lifeline; import time; lifeline.die_with_parent(); print('ready', flush=True); time.sleep(300)"
    parent = f"import subprocess, sys, time; subprocess.Popen([sys.executable, '-c', {child!r}]); time.sleep(300)"
    run = subprocess.Popen(
        [sys.executable, "-c", parent], cwd=ROOT, stdout=subprocess.PIPE, text=True, start_new_session=True
    )
    assert run.stdout.readline().strip() == "ready"
    run.kill()
    run.wait()
    assert _left_after(run.pid, 5) == []


def _vllm_titles(pgid):
    """The process titles vLLM gives its processes (VLLM::EngineCore, VLLM::Worker...) in a process group."""
    titles = []
    for pid in alive_in_group(pgid):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as handle:
                cmdline = handle.read()
        except OSError:  # ended meanwhile
            continue
        if cmdline.startswith(b"VLLM::"):
            titles.append(cmdline.split(b"\0")[0].decode())
    return titles


def test_sigkill_of_run_py_leaves_no_vllm_process(tiny_model_dir, tmp_path):
    """kill -9 of the main pid only (not its group): EngineCore and Worker go with it within seconds."""
    overrides = [
        "model=hf",
        f"model.path={tiny_model_dir}",
        "n=4",
        "samples=2",
        "sampling.max_tokens=40",
        "engine.enforce_eager=true",
        "engine.max_model_len=1024",
        "engine.kv_cache_gib=1",
        f"results_dir={tmp_path}",
    ]
    run = subprocess.Popen(
        [sys.executable, str(ROOT / "run.py"), *overrides],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 600
        while not any(title.startswith("VLLM::Worker") for title in _vllm_titles(run.pid)):
            assert run.poll() is None and time.monotonic() < deadline, run.stderr.read().decode()[-3000:]
            time.sleep(0.5)
        time.sleep(1)
        run.kill()  # SIGKILL to run.py alone, as `kill -9 <pid>` does
        assert run.wait() == -signal.SIGKILL
        assert _left_after(run.pid, 10) == []  # EngineCore, Worker and the watchdog
    finally:
        if alive_in_group(run.pid):
            os.killpg(run.pid, signal.SIGKILL)
