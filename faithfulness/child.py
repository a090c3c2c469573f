"""A child process that answers messages over a pipe: the engine process and the sweep's worker are both one.

vLLM does not reliably free an engine inside a process (docs/vllm-cpu.md), so an engine that must be
closed mid-run (a separate mistake writer's turn) or kept between a sweep's jobs lives in a child.
The child is spawned (a fresh interpreter: no inherited engine or threads), replies to each message
with ``("ok", value)`` or ``("error", exception)``, and stops at ``None`` or when its parent is gone.
"""

from __future__ import annotations

import multiprocessing
from multiprocessing.connection import Connection
from typing import Any, Callable


class Child:
    """A spawned child running ``target(conn, *args)``, and the parent's end of its pipe.

    Args:
        target: The child's loop; its first argument is its end of the pipe.
        args: The rest of the target's arguments (picklable).
        name: The process name, and what a message calls it when it dies ("engine process").
    """

    def __init__(self, target: Callable[..., None], args: tuple[Any, ...], name: str) -> None:
        context = multiprocessing.get_context("spawn")
        self._conn, child = context.Pipe()
        self.name = name
        self._process = context.Process(target=target, args=(child, *args), name=f"faithfulness-{name}")
        self._process.start()
        child.close()

    def receive(self) -> Any:
        """The child's next reply; its exception is raised here, its death is a RuntimeError naming it."""
        try:
            status, value = self._conn.recv()
        except EOFError:
            self._process.join()
            raise RuntimeError(
                f"the {self.name} (pid {self._process.pid}) died; exit code {self._process.exitcode}"
            ) from None
        if status == "error":
            raise value
        return value

    def call(self, message: Any) -> Any:
        """Sends ``message`` and returns the child's reply to it."""
        self._conn.send(message)
        return self.receive()

    def close(self) -> None:
        """Asks the child to stop (``None``) and waits for it to exit."""
        if self._process.is_alive():
            try:
                self._conn.send(None)
            except (BrokenPipeError, OSError):
                pass
            self._process.join()
        self._conn.close()


def serve(conn: Connection, handle: Callable[[Any], Any]) -> None:
    """The child's side: replies ``handle(message)`` to each message until ``None`` or the parent is gone."""
    while True:
        try:
            message = conn.recv()
        except EOFError:  # the parent died: do not leave an engine's processes behind
            break
        if message is None:
            break
        try:
            conn.send(("ok", handle(message)))
        except BaseException as error:  # noqa: BLE001 - the parent re-raises it
            conn.send(("error", error))
