"""Paths and files: safe folder names, folders checked before a run, files as readable as the umask allows.

Every filesystem problem a user can fix (a file where a folder should be, no write permission, a
full disk) becomes a :class:`~faithfulness.errors.StateError` naming the path and the cause, which
run.py prints as one line with exit code 3.
"""

from __future__ import annotations

import errno
import os
import re
from pathlib import Path

from faithfulness.errors import StateError

CACHE_ENV, DEFAULT_CACHE = "FAITHFULNESS_CACHE", "~/.cache/faithfulness"


def default_cache_dir() -> str:
    """The cache folder when none is given: ``$FAITHFULNESS_CACHE``, else ``~/.cache/faithfulness``.

    conf/config.yaml's ``cache_dir`` (through the ``${default_cache_dir:}`` resolver) and the scripts read it here.
    """
    return os.environ.get(CACHE_ENV) or DEFAULT_CACHE


def slug(name: str) -> str:
    """A name as one safe path part.

    Runs of other characters than letters, digits, ``.``, ``_``, ``-`` become ``--``; leading and trailing dots and
    dashes go, so ``..`` or ``/abs/name`` cannot leave the folder they are joined to (``"../x"`` → ``"x"``, ``"/tmp/m"``
    → ``"tmp--m"``).
    """
    part = re.sub(r"[^\w.-]+", "--", str(name)).strip(".-")
    return part or "unnamed"


def inside(root: Path, *parts: str) -> Path:
    """``root / parts``, refusing a result that resolves outside ``root`` (a guard behind :func:`slug`)."""
    path = Path(root).joinpath(*parts)
    if not path.resolve().is_relative_to(Path(root).resolve()):
        raise StateError(f"{path} is outside {root}: refusing to write there")
    return path


def check_folder(key: str, value: str) -> Path:
    """Checks that folder ``value`` (config key ``key``) exists or can be made, and can be written.

    Nothing is created: the nearest existing ancestor must be a writable folder.

    Raises:
        StateError: naming the key, the path and what is wrong with it.
    """
    folder = Path(value).expanduser()
    existing = folder
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        raise StateError(f"{key}={value!r} cannot be used: {existing} is a file, not a folder")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise StateError(f"{key}={value!r} cannot be used: {existing} is not writable (permission denied)")
    return folder


def describe(error: OSError) -> str:
    """One line naming the path (or host) and the cause of an ``OSError``."""
    cause = error.strerror or (str(error).strip().splitlines() or [type(error).__name__])[0]
    if error.errno == errno.ENOSPC:
        cause += " (free some space or point results_dir elsewhere)"
    return f"{error.filename}: {cause}" if error.filename is not None else cause


def umask() -> int:
    """The process's umask (read from /proc where possible: setting it to read it races other threads)."""
    try:
        with open("/proc/self/status") as handle:
            for line in handle:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except OSError:
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def shared_mode(fd: int) -> None:
    """Gives a file made private by ``mkstemp`` (0600) the mode a plain ``open`` would: 0666 minus the umask."""
    os.fchmod(fd, 0o666 & ~umask())
