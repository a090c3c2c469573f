"""The run's console: a progress bar per engine stage; vLLM's own output goes to ``engine.log``.

vLLM writes from this process and from the EngineCore and worker processes it starts, and those
write to file descriptors 1 and 2 directly (C++ warnings, Python warnings, progress bars of their
own), so redirecting Python's logging is not enough. While a run is open (:func:`engine_log`),
engine start and engine calls run inside :func:`quiet`, which points fds 1 and 2 at a pipe; the
processes vLLM starts meanwhile inherit that pipe for their whole life. A thread copies the pipe
into the current run's ``engine.log``: in a sweep, whose worker engine serves several runs, each
run's log gets the lines of its own stages and the first run's log gets the engine start. vLLM's
error lines are also echoed to the console, and a failing engine call prints the log's last lines
and its path. ``verbose`` (``run.py -v``) leaves everything on the console, as vLLM prints it.
"""

from __future__ import annotations

import ctypes
import fcntl
import os
import re
import select
import struct
import sys
import termios
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, TextIO

from tqdm import tqdm

BAR_FORMAT = "{desc} {n_fmt}/{total_fmt} |{bar}| {elapsed}, ETA {remaining}{postfix}"
TAIL_LINES = 10  # log lines shown when the engine fails without an error line of vLLM's own
# vLLM's error lines, "(EngineCore pid=7) ERROR 12-02 03:38:42 [file.py:12] message", whose message is not a
# traceback's body (vLLM logs a traceback line by line: the log has it whole, the console gets its gist)
_ERROR_LINE = re.compile(rb"\b(ERROR|CRITICAL) \d\d-\d\d \d\d:\d\d:\d\d \[[^]]*\] (?!Traceback \(most recent)[^\s^~]")


@dataclass
class _Run:
    log_path: Path
    terminal: TextIO | None  # the console's stderr, duplicated before any redirect; None when verbose


_run: _Run | None = None
_pump: _Pump | None = None
_redirected = False
_stage: StageBar | None = None


@contextmanager
def engine_log(log_path: Path, verbose: bool) -> Iterator[None]:
    """Sends vLLM's output during this block to ``log_path`` (or, if ``verbose``, to the console as it is)."""
    global _run
    sys.stderr.flush()
    console = None if verbose else os.fdopen(os.dup(2), "w", buffering=1, encoding="utf-8", errors="replace")
    previous, _run = _run, _Run(log_path, console)
    try:
        yield
    finally:
        _run = previous
        if console is not None:
            console.close()


def logging_to_file() -> bool:
    """True inside :func:`engine_log` unless verbose: vLLM may then log at INFO without burying the table."""
    return _run is not None and _run.terminal is not None


def terminal() -> TextIO:
    """Where bars and notes go: the console's stderr, also while fds 1 and 2 point at the log."""
    return _run.terminal if _run is not None and _run.terminal is not None else sys.stderr


@contextmanager
def quiet(note: str | None = None) -> Iterator[None]:
    """Runs vLLM work with fds 1 and 2 pointing at the run's ``engine.log``; a no-op outside a quiet run.

    Args:
        note: Printed on the console with the log's path before the work, and its duration after.
    """
    global _pump, _redirected
    run = _run
    if run is None or run.terminal is None or _redirected:
        yield
        return
    console = run.terminal
    _pump = _pump or _Pump()
    _pump.write_to(run.log_path)
    if note:
        tqdm.write(f"{note} (vLLM's output: {run.log_path})", file=console)
    _flush_all()
    saved = os.dup(1), os.dup(2)
    os.dup2(_pump.write_fd, 1)
    os.dup2(_pump.write_fd, 2)
    _redirected, clock, failed = True, time.perf_counter(), False
    try:
        yield
    except Exception:
        failed = True
        raise
    finally:
        _flush_all()
        for fd, copy in zip((1, 2), saved):
            os.dup2(copy, fd)
            os.close(copy)
        _redirected = False
        if failed:
            echoed = _pump.drain()
            shown = "" if echoed else f"; its last lines:\n{tail(run.log_path)}"  # the error lines above say it already
            tqdm.write(f"error: vLLM failed; its whole output is in {run.log_path}{shown}", file=console)
        elif note:
            tqdm.write(f"{note}: done in {time.perf_counter() - clock:.0f} s", file=console)


@contextmanager
def engine_start() -> Iterator[None]:
    """Starts the engine quietly, with a note; the open stage's ETA then counts engine work only."""
    with quiet(note="starting vLLM"):
        yield
    if _stage is not None:
        _stage.bar.unpause()  # restarts its clock from its last redraw: the start's minute is not the stage's


def tail(path: Path, lines: int = TAIL_LINES) -> str:
    r"""The last ``lines`` lines of a log, progress-bar redraws (``\\r``) reduced to their last state."""
    try:
        text = path.read_bytes()[-(1 << 16) :].decode("utf-8", errors="replace")
    except OSError:
        return "  (no log)"
    kept = [line.rsplit("\r", 1)[-1] for line in text.splitlines()]
    return "\n".join(["  " + line for line in kept if line.strip()][-lines:])


class StageBar:
    """The progress bar of one engine stage: requests answered so far, from the store or the engine."""

    def __init__(self, name: str, total: int, done: int = 0) -> None:
        stream = terminal()
        tty = stream.isatty()
        redraw = 0.1 if tty else 30  # a console redraws often; a log file (Slurm's) gets a line every 30 s
        fits = tty and _columns(stream) > 0  # a pseudo-terminal without a size says 0 columns: a fixed bar then
        # smoothing=0: the ETA from the stage's mean rate. Answers come in bursts (a chunk's requests finish
        # together), and tqdm's moving average then swung between minutes and 36 hours within one stage
        self.bar = tqdm(
            total=total,
            initial=done,
            desc=name,
            file=stream,
            bar_format=BAR_FORMAT,
            disable=total == 0,
            dynamic_ncols=fits,
            postfix=f"{done} stored" if done else None,
            mininterval=redraw,
            smoothing=0,
        )

    def advance_to(self, position: int) -> None:
        """Moves the bar to ``position`` requests (never back)."""
        if position > self.bar.n:
            self.bar.update(position - self.bar.n)

    def close(self) -> None:
        """Leaves the bar's last state on the console."""
        self.bar.close()


@contextmanager
def stage(name: str, total: int, done: int = 0) -> Iterator[StageBar]:
    """Shows ``name done/total`` while a stage runs; vLLM calls inside it move this bar (:func:`vllm_progress`)."""
    global _stage
    previous, _stage = _stage, StageBar(name, total, done)
    try:
        yield _stage
    except BaseException:
        _stage.bar.leave = False  # an unfinished bar would only repeat itself below the error
        raise
    finally:
        _stage.close()
        _stage = previous


def vllm_progress(desc: str, units: int) -> Callable[..., Any]:
    """The ``use_tqdm`` of one ``LLM.generate`` call that does ``units`` of the current stage's requests.

    vLLM calls it twice: over the prompts while rendering them ("Rendering prompts": passed through,
    no bar) and with ``total=`` and ``desc="Processed prompts"`` for its engine loop. That ``desc``
    overrides the one a ``functools.partial(tqdm, desc=...)`` carries, which is why a stage's name
    never showed. Here the loop's progress moves the open stage's bar (or a bar named ``desc``).
    """

    def make(iterable: Any = None, **kwargs: Any) -> Any:
        if iterable is not None:
            return iterable
        return _VLLMBar(_stage, units, kwargs.get("total") or units, desc)

    return make


class _VLLMBar:
    """What vLLM's engine loop updates: its finished requests, scaled to the stage's requests."""

    def __init__(self, stage_bar: StageBar | None, units: int, total: int, desc: str) -> None:
        self.own = stage_bar is None
        self.stage = stage_bar or StageBar(desc, units)
        self.base, self.units, self.total = self.stage.bar.n, units, max(total, 1)
        self.n, self.postfix, self.start = 0, "", time.perf_counter()

    @property
    def format_dict(self) -> dict[str, float]:
        return {"elapsed": max(time.perf_counter() - self.start, 1e-6)}  # vLLM divides by it

    def update(self, n: int = 1) -> None:
        self.n += n
        self.stage.advance_to(self.base + self.units * min(self.n, self.total) // self.total)

    def refresh(self) -> None:
        self.stage.bar.refresh()

    def close(self) -> None:
        if self.own:
            self.stage.close()


class _Pump:
    """The pipe vLLM writes into and the thread that copies it into the current log (and errors to the console)."""

    def __init__(self) -> None:
        self._read, self.write_fd = os.pipe()
        self.path: Path | None = None
        self._log: BinaryIO | None = None
        self._lock, self._line, self.echoed = threading.Lock(), b"", 0
        threading.Thread(target=self._copy, name="faithfulness-engine-log", daemon=True).start()

    def write_to(self, path: Path) -> None:
        """Sends what arrives from now on to ``path`` (appended)."""
        with self._lock:
            if path != self.path:
                if self._log is not None:
                    self._log.close()
                self._log, self.path = open(path, "ab"), path

    def drain(self, timeout: float = 2.0) -> int:
        """Waits (at most ``timeout`` s) until everything written so far is in the log.

        Returns:
            How many error lines were echoed to the console since the last drain.
        """
        deadline = time.monotonic() + timeout
        while _unread(self._read) and time.monotonic() < deadline:
            time.sleep(0.01)
        with self._lock:
            echoed, self.echoed = self.echoed, 0
        return echoed

    def _copy(self) -> None:
        while True:
            select.select([self._read], [], [])  # wait for output without the lock, then read it under the lock:
            with self._lock:  # a chunk out of the pipe is logged and echoed before drain() can take the lock
                chunk = os.read(self._read, 1 << 16)
                if not chunk:
                    return
                if self._log is not None:
                    self._log.write(chunk)
                    self._log.flush()
                *lines, self._line = (self._line + chunk).split(b"\n")
                self._line = self._line[-(1 << 16) :]  # a bar redrawn with \r alone must not grow without bound
                for line in lines:
                    line = line.rstrip(b"\r").rsplit(b"\r", 1)[-1]  # vLLM ends lines with \r\n; bars redraw with \r
                    if _ERROR_LINE.search(line):
                        self._echo(line.decode("utf-8", errors="replace"))

    def _echo(self, line: str) -> None:
        try:
            tqdm.write(line, file=terminal())
            self.echoed += 1
        except (ValueError, OSError):  # the run closed its console meanwhile: the line is in the log anyway
            pass


def _columns(stream: TextIO) -> int:
    """The terminal's width, 0 when it does not say."""
    try:
        return os.get_terminal_size(stream.fileno()).columns
    except (OSError, ValueError):
        return 0


def _unread(fd: int) -> int:
    """Bytes waiting in a pipe."""
    return int(struct.unpack("i", fcntl.ioctl(fd, termios.FIONREAD, b"\0" * 4))[0])


def _flush_all() -> None:
    """Flushes Python's and C's stdout/stderr buffers, so each line lands on the side it was written on."""
    for stream in (sys.stdout, sys.stderr):
        stream.flush()
    try:
        ctypes.CDLL(None).fflush(None)
    except (OSError, AttributeError):  # no C library to ask: nothing of C's is buffered then
        pass
