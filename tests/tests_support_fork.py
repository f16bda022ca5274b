"""Fork a child that runs a function, and wait for it without ever hanging the suite."""

from __future__ import annotations

import os
import time
import traceback
import warnings
from collections.abc import Callable


def fork_and_wait(body: Callable[[], object], timeout: float = 30.0) -> int:
    """Run ``body`` in a forked child; return its exit code (killed after ``timeout``)."""
    with warnings.catch_warnings():  # Python 3.12+ warns on fork() with threads running
        warnings.simplefilter("ignore", DeprecationWarning)
        pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        code = 1
        try:
            body()
            code = 0
        except BaseException:
            traceback.print_exc()
        finally:
            os._exit(code)
    deadline = time.monotonic() + timeout
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return os.waitstatus_to_exitcode(status)
        if time.monotonic() > deadline:
            os.kill(pid, 9)
            os.waitpid(pid, 0)
            raise AssertionError(f"forked child {pid} hung")
        time.sleep(0.005)
