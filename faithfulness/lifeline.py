"""The engine's processes die with the run, however it ends: a watchdog process beside every engine.

vLLM runs its engine in processes of its own (EngineCore and, on CPU, a Worker). When the run is
killed with SIGKILL (``kill -9``, the OOM killer) they are re-parented and keep running, holding
the model's memory (~6.7 GB for a 1.5B model in fp32) and the cores. A killed process can run no
code, and vLLM's processes run vLLM's code, not ours, so the cleanup lives in a third process:
:func:`start` launches a small watchdog, before the engine starts, that notes the run's descendants
every ``SCAN_S`` seconds and, once the run is gone (checked every ``POLL_S``), SIGKILLs them and
whatever they started since. A normal end stops it first (:meth:`Watchdog.stop`). The watchdog
imports only the standard library (it runs this file as a script in isolated mode).

:func:`die_with_parent` is the same guarantee for processes that run our code (the sweep's engine
worker): the kernel kills them when their parent dies (Linux ``PR_SET_PDEATHSIG``).
"""

from __future__ import annotations

import ctypes
import os
import select
import signal
import subprocess
import sys
import time

POLL_S = 0.5  # the run's death is noticed within this
SCAN_S = 2.0  # descendants are noted this often: a /proc scan costs ~1 ms per 100 processes on the node
_PR_SET_PDEATHSIG = 1  # linux/prctl.h


class Watchdog:
    """A running watchdog of the current process (see :func:`start`)."""

    def __init__(self, process: subprocess.Popen) -> None:
        self.process = process

    def stop(self) -> None:
        """Tells the watchdog the engine was closed normally: it exits without killing anything."""
        if self.process.poll() is None:
            try:
                self.process.stdin.write(b"stop\n")  # type: ignore[union-attr]
                self.process.stdin.close()  # type: ignore[union-attr]
            except OSError:
                pass
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:  # a stuck watchdog must not hang the run's exit
                self.process.kill()


def start() -> Watchdog:
    """Starts a watchdog that kills this process's descendants when this process dies."""
    command = [sys.executable, "-I", os.path.abspath(__file__), str(os.getpid())]
    return Watchdog(subprocess.Popen(command, stdin=subprocess.PIPE, close_fds=True))


def die_with_parent(sig: int = signal.SIGKILL) -> None:
    """Asks the kernel to send ``sig`` to this process when its parent dies (Linux; elsewhere a no-op)."""
    if not sys.platform.startswith("linux"):
        return
    parent = os.getppid()
    ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, int(sig), 0, 0, 0)
    if os.getppid() != parent:  # the parent died before the request took effect
        os.kill(os.getpid(), sig)


def _stat(pid: int) -> tuple[int, str] | None:
    """(parent pid, start time) of a live process, None when it is gone or a zombie."""
    try:
        with open(f"/proc/{pid}/stat") as handle:
            fields = handle.read().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return None if fields[0] in "ZX" else (int(fields[1]), fields[19])


def descendants(roots: set[int]) -> dict[int, str]:
    """Every live process below ``roots`` (any depth), by pid, with its start time (guards pid reuse)."""
    stats = {int(e): s for e in os.listdir("/proc") if e.isdigit() and (s := _stat(int(e))) is not None}
    found: dict[int, str] = {}
    frontier = set(roots)
    while frontier:
        frontier = {pid for pid, (ppid, _) in stats.items() if ppid in frontier and pid not in found}
        found.update({pid: stats[pid][1] for pid in frontier})
    return found


def _watch(run: int) -> None:
    """The watchdog's loop: note the run's descendants until the run is gone, then kill them."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C goes to the run; the watchdog waits for its end
    me, known, stdin_open, scanned = os.getpid(), {}, True, 0.0
    while os.getppid() == run:
        if stdin_open and select.select([sys.stdin.buffer], [], [], POLL_S)[0]:
            line = sys.stdin.buffer.readline()
            if line.startswith(b"stop"):
                return
            stdin_open = bool(line)  # EOF: the run is exiting; its death shows in getppid next
        elif not stdin_open:
            time.sleep(POLL_S)
        if time.monotonic() - scanned >= SCAN_S:
            known.update(descendants({run}))
            scanned = time.monotonic()
    known.pop(me, None)
    for _ in range(3):  # processes the survivors started since the last scan, then theirs
        alive = {pid for pid, started in known.items() if (s := _stat(pid)) is not None and s[1] == started}
        known.update({pid: t for pid, t in descendants(alive).items() if pid != me})
    for pid, started in known.items():
        if (s := _stat(pid)) is not None and s[1] == started:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass


if __name__ == "__main__":
    _watch(int(sys.argv[1]))
