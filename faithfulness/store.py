"""What makes a killed run resumable: the request store, the results-folder lock, a test-only kill hook.

Every engine result is saved in ``<results folder>/requests.sqlite`` as soon as its chunk returns,
keyed by everything that determines it (see :func:`request_key`); a rerun of the same config (after
a kill, a crash or a Slurm requeue) takes finished work from there and sends only the rest to the
engine. The store lives in the results folder, not in the shared ``cache_dir``: the folder's lock
then admits one writer (Slurm arrays write different folders and never contend for one file), and
deleting a results folder deletes its cache too. The full key still guards every record, so a
record made by another model, engine version or setting is never returned.

SQLite gives atomic commits: a kill mid-write loses at most the chunk in flight. The rollback
journal (not WAL) is used because WAL needs shared memory, which network filesystems (where
clusters keep results) do not share, and the lock already rules out concurrent runs. A corrupt
store is refused, never repaired or silently recomputed: it points at a disk or copy problem the
user should see, and moving it aside is one command (the message names it).
"""

from __future__ import annotations

import fcntl
import hashlib
import importlib.metadata
import json
import os
import signal
import socket
import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from faithfulness.errors import StateError
from faithfulness.models import ResolvedModel
from faithfulness.paths import describe

# engine info() keys that say where the work ran, not what computed it: recorded in the rows, no part of a
# request key (a run resumed against another server of the same model and vLLM version takes every stored response)
INFO_NOT_IDENTITY = ("engine_served_model", "engine_served_max_model_len")

NOT_IN_KEY = ("score",)  # request fields that change no result (GenerationRequest.score): left out of keys

STORE_FILE = "requests.sqlite"
# Bump when the engine module changes how a request maps to numbers (tokenisation, score merging):
# old records then miss instead of being reused. The package version is not in the key on purpose:
# releases that change nothing numeric must not throw finished work away.
REQUEST_FORMAT = 1
_SCHEMA = 1  # the table layout below (PRAGMA user_version)
_KEY_LIBRARIES = ("torch", "transformers", "tokenizers")  # their versions change kernels or token ids


class RequestStore:
    """Engine results by request key, in one SQLite file (opened, checked, closed as a context manager).

    Args:
        path: The SQLite file; created if missing.

    Raises:
        StateError: when the file is not a readable store of this version or fails its integrity check.
    """

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self.db = sqlite3.connect(self.path, timeout=60)  # concurrent writers wait up to a minute
            self.db.execute("PRAGMA synchronous=FULL")  # a committed chunk survives a power cut too
            version = self.db.execute("PRAGMA user_version").fetchone()[0]
            check = self.db.execute("PRAGMA quick_check").fetchall()
            if check != [("ok",)]:
                raise StateError(self._corrupt(f"integrity check failed: {'; '.join(r[0] for r in check[:3])}"))
            if version not in (0, _SCHEMA):
                raise StateError(
                    self._corrupt(f"store layout {version} is not {_SCHEMA} (another faithfulness version)")
                )
            with self.db:
                # writer: "host:pid" of the run that computed the record (which attempt did what work)
                self.db.execute(
                    "CREATE TABLE IF NOT EXISTS requests (key TEXT PRIMARY KEY, value TEXT NOT NULL, "
                    "checksum TEXT NOT NULL, stage TEXT NOT NULL, writer TEXT NOT NULL, created REAL NOT NULL)"
                )
                self.db.execute(f"PRAGMA user_version={_SCHEMA}")
        except sqlite3.DatabaseError as error:
            raise StateError(self._corrupt(str(error))) from None

    def _corrupt(self, what: str) -> str:
        return (
            f"request store {self.path} is corrupt ({what}); it was not used. Move it aside "
            f"(mv '{self.path}' '{self.path}.corrupt') and rerun: missing results are recomputed"
        )

    def __enter__(self) -> RequestStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.db.close()

    def get_many(self, keys: list[str]) -> dict[str, Any]:
        """The stored values of those keys that are present (each checked against its checksum)."""
        found: dict[str, Any] = {}
        for start in range(0, len(keys), 500):  # SQLite caps the number of bound parameters
            part = keys[start : start + 500]
            rows = self.db.execute(
                f"SELECT key, value, checksum, stage FROM requests WHERE key IN ({','.join('?' * len(part))})", part
            )
            for key, value, checksum, stage in rows:
                if checksum != _checksum(key, value):
                    raise StateError(self._corrupt(f"record {key[:16]} of stage {stage!r} fails its checksum"))
                found[key] = json.loads(value)
        return found

    def put_many(self, items: list[tuple[str, Any]], stage: str) -> None:
        """Stores (key, JSON-able value) pairs in one transaction: all of them or, after a kill, none."""
        now, writer = time.time(), f"{socket.gethostname()}:{os.getpid()}"
        encoded = ((key, json.dumps(value, sort_keys=True)) for key, value in items)
        rows = [(key, value, _checksum(key, value), stage, writer, now) for key, value in encoded]
        with self.db:
            self.db.executemany("INSERT OR REPLACE INTO requests VALUES (?, ?, ?, ?, ?, ?)", rows)

    def count(self, by: str = "stage") -> dict[str, int]:
        """Stored records per ``stage`` or per ``writer``."""
        if by not in ("stage", "writer"):
            raise ValueError(f"by={by!r}: choose 'stage' or 'writer'")
        return dict(self.db.execute(f"SELECT {by}, COUNT(*) FROM requests GROUP BY {by}").fetchall())


def _checksum(key: str, value: str) -> str:
    return hashlib.sha256(f"{key}\0{value}".encode()).hexdigest()[:16]


def request_context(model: ResolvedModel, engine_info: dict[str, Any]) -> dict[str, Any]:
    """What every request key of a run shares: model identity, engine and settings, library versions."""
    versions = {}
    for name in _KEY_LIBRARIES:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = None
    engine = {k: v for k, v in engine_info.items() if k not in INFO_NOT_IDENTITY}  # where it ran: not part of a key
    return {"format": REQUEST_FORMAT, "model": model_identity(model), "engine": engine, "versions": versions}


def model_identity(model: ResolvedModel) -> dict[str, str]:
    """Packaged models are their GGUF sha256, hub models id + revision, local folders path + file stamps."""
    if len(model.revision) == 64:
        return {"sha256": model.revision}  # where the converted copy lives does not matter
    if model.revision != "local":
        return {"hub_id": model.path, "revision": model.revision}
    folder = Path(model.path)
    # name, size and mtime of every file: rewritten weights miss instead of returning stale results
    stamps = sorted((p.name, p.stat().st_size, p.stat().st_mtime_ns) for p in folder.iterdir() if p.is_file())
    return {"path": str(folder.resolve()), "files": hashlib.sha256(json.dumps(stamps).encode()).hexdigest()}


def request_key(context_hash: str, kind: str, request: dict[str, Any], occurrence: int) -> str:
    """sha256 of the canonical JSON of everything that determines one result.

    ``occurrence`` numbers identical requests within one engine call: a repeated request (the
    early-answering re-ask of the full CoT) is asked again on purpose, so it is stored on its own.
    Fields that change no result (``NOT_IN_KEY``) are left out.
    """
    request = {k: v for k, v in request.items() if k not in NOT_IN_KEY}
    return hash_json({"context": context_hash, "kind": kind, "request": request, "occurrence": occurrence})


def hash_json(obj: Any) -> str:
    """sha256 of an object's canonical JSON."""
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()


@contextmanager
def lock_folder(folder: Path) -> Iterator[Path]:
    """Holds an exclusive lock on a results folder for a whole run (released when the process dies).

    A second run of the same config fails at once, naming the folder and the holder. Once locked,
    temp files a killed writer left (``.*.partial``, see ``results.write_json``) are removed.

    ``flock`` works across hosts on NFSv4 (Linux emulates it with byte-range locks); Lustre needs
    its ``flock`` mount option.

    Raises:
        StateError: when another process holds the lock, or the filesystem has no file locks.
    """
    folder = Path(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        handle = open(folder / ".lock", "a+")  # closing it releases the lock
    except OSError as error:  # a file where a folder should be, no permission, a full disk
        raise StateError(f"results folder {folder} cannot be made: {describe(error)}") from None
    with handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "unknown process"
            raise StateError(
                f"results folder {folder} is in use by another run ({holder}): wait for it to finish "
                "or stop it; two runs of one config would write the same files"
            ) from None
        except OSError as error:  # e.g. a network filesystem mounted without lock support
            raise StateError(
                f"results folder {folder} cannot be locked ({error}): put results_dir on a filesystem "
                "with file locks, so that two runs of one config cannot write the same files"
            ) from None
        handle.seek(0)
        handle.truncate()
        handle.write(f"pid {os.getpid()} on {socket.gethostname()} since {time.strftime('%Y-%m-%d %H:%M:%S')}\n")
        handle.flush()
        for leftover in folder.glob(".*.partial"):
            leftover.unlink()
        yield folder


KILL_ENV = "FAITHFULNESS_KILL_AT"


def kill_point(name: str) -> None:
    """Test-only fault injection: SIGKILL this run when ``$FAITHFULNESS_KILL_AT`` equals ``name``.

    Points: ``<stage>:<chunk>`` right after that chunk's results are stored (e.g. ``forced
    answers:2``), and ``write:<file>`` after a results file's temp copy is written, before its
    rename. The whole process group is killed when the run leads it, as Slurm kills a job's
    processes (vLLM's engine process included). Unset, this does nothing.
    """
    if os.environ.get(KILL_ENV) != name:
        return
    if os.getpgrp() == os.getpid():
        os.killpg(os.getpid(), signal.SIGKILL)
    os.kill(os.getpid(), signal.SIGKILL)
