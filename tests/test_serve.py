"""scripts/serve.py: a real vLLM OpenAI server on SmolLM2, its URL published, stopped whole by SIGTERM."""

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from tests.conftest import ROOT, alive_in_group

SERVE = str(ROOT / "scripts" / "serve.py")
START_TIMEOUT_S = 240  # a server start takes about 60 s on a 2-core machine
DIRECT = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def get_json(url: str, timeout: float = 120) -> dict:
    with DIRECT.open(url, timeout=timeout) as response:
        assert response.status == 200
        return json.load(response)


def wait_for(path: Path, proc: subprocess.Popen, timeout: float) -> str:
    """The url file's content once it appears; fails if serve.py exits first."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.exists():
            return path.read_text().strip()
        assert proc.poll() is None, f"serve.py exited with {proc.returncode} before writing {path}"
        time.sleep(1)
    pytest.fail(f"no url file after {timeout} s")


def children(pid: int) -> list[int]:
    """Pids whose parent is ``pid``."""
    found = []
    for entry in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{entry}/stat") as handle:
                if int(handle.read().rsplit(")", 1)[1].split()[1]) == pid:
                    found.append(int(entry))
        except (FileNotFoundError, ProcessLookupError):
            continue
    return found


def test_an_unknown_model_config_is_one_line_and_exit_2():
    done = subprocess.run(
        [sys.executable, SERVE, "no-such-model"], cwd=ROOT, capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: model=no-such-model is not allowed: choose one of [")
    assert "'smollm2-135m'" in lines[0] and "_qwen3" not in lines[0]


@pytest.mark.slow
def test_serves_smollm2_publishes_its_url_and_stops_whole_on_sigterm(tmp_path):
    url_file = tmp_path / "u.url"
    cmd = [SERVE, "smollm2-135m", "--host", "127.0.0.1", "--port", "0", "--url-file", str(url_file)]
    env = {k: v for k, v in os.environ.items() if k != "VLLM_SERVER_DEV_MODE"}  # serve.py sets it
    with open(tmp_path / "serve.log", "w") as log:
        proc = subprocess.Popen(
            [sys.executable, *cmd, "--", "--enforce-eager"],
            cwd=ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    groups = [proc.pid]
    try:
        url = wait_for(url_file, proc, START_TIMEOUT_S)
        assert url.startswith("http://127.0.0.1:") and url.endswith("/v1")
        # the config's `name` first (what responses carry), then the config file's name
        ids = [m["id"] for m in get_json(f"{url}/models")["data"]]
        assert ids == ["smollm2-135m-instruct", "smollm2-135m"]
        info = get_json(f"{url.removesuffix('/v1')}/server_info?config_format=json")
        assert info["vllm_config"]["model_config"]["dtype"].removeprefix("torch.") == "float32"
        assert info["vllm_config"]["model_config"]["max_logprobs"] == 128
        log_text = (tmp_path / "serve.log").read_text()
        assert f"serving smollm2-135m-instruct at {url}" in log_text

        groups += children(proc.pid)  # the vLLM server leads its own process group
        assert len(groups) == 2
        os.kill(proc.pid, signal.SIGTERM)
        assert proc.wait(timeout=90) == 0
        left = [alive_in_group(g) for g in groups]
    finally:
        for group in groups:  # never leave a server behind, whatever failed
            if alive_in_group(group):
                os.killpg(group, signal.SIGKILL)
    assert not url_file.exists()
    assert left == [[], []], (tmp_path / "serve.log").read_text()[-3000:]
    assert "serve.py: SIGTERM: stopping the vLLM server" in (tmp_path / "serve.log").read_text()
