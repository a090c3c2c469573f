"""The child process the engine process and the sweep's worker share: replies, errors and a death, each told apart."""

import os
import signal

import pytest

from faithfulness.child import Child, serve


def _doubler(conn, offset):
    def handle(message):
        if message == "boom":
            raise ValueError("the child's own error")
        if message == "die":
            os.kill(os.getpid(), signal.SIGKILL)
        return 2 * message + offset

    serve(conn, handle)


def test_a_child_replies_in_order_re_raises_its_errors_and_stops_when_asked():
    child = Child(_doubler, (1,), "doubler")
    try:
        assert [child.call(n) for n in (1, 2, 3)] == [3, 5, 7]
        with pytest.raises(ValueError, match="the child's own error"):
            child.call("boom")
        assert child.call(10) == 21  # an error in one message does not end the child
    finally:
        child.close()
    assert not child._process.is_alive() and child._process.exitcode == 0


def test_a_dead_child_is_a_runtime_error_naming_it_and_its_exit_code():
    child = Child(_doubler, (0,), "doubler")
    with pytest.raises(RuntimeError, match=r"the doubler \(pid \d+\) died; exit code -9"):
        child.call("die")
    child.close()  # closing a dead child is safe
