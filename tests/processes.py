"""Run test code in other processes: spawned workers and forked children.

Nothing here ever hangs the suite: every wait has a deadline, and a child that
does not finish in time is killed and reported.
"""

from __future__ import annotations

import multiprocessing
import os
import time
import traceback
import warnings
from collections.abc import Callable
from typing import Any

SPAWN = multiprocessing.get_context("spawn")


def wait_for(condition: Callable[[], object], what: str, deadline_s: float = 10.0) -> None:
    """Poll ``condition`` until it is true; fail naming ``what`` past the deadline."""
    deadline = time.monotonic() + deadline_s
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting until {what}"
        time.sleep(0.002)


def serving(cache: Any) -> bool:
    """Return True if ``cache``'s local tier may serve (its feed is up)."""
    return cache._feed is not None and bool(cache._feed.sync())


def _entry(target: Callable[..., Any], wid: int, queue: Any, args: tuple[Any, ...]) -> None:
    try:
        result = target(wid, *args)
    except BaseException:
        queue.put((wid, False, traceback.format_exc()))
        raise
    queue.put((wid, True, result))


def run_workers(
    target: Callable[..., Any], n: int, *args: Any, timeout: float = 60.0
) -> dict[int, Any]:
    """Run ``target(wid, *args)`` in ``n`` spawned processes; return their results."""
    queue = SPAWN.Queue()
    procs = [SPAWN.Process(target=_entry, args=(target, wid, queue, args)) for wid in range(n)]
    for proc in procs:
        proc.start()
    results: dict[int, Any] = {}
    failures: list[str] = []
    deadline = time.monotonic() + timeout
    try:
        for _ in range(n):
            wid, ok, payload = queue.get(timeout=max(0.1, deadline - time.monotonic()))
            if ok:
                results[wid] = payload
            else:
                failures.append(f"worker {wid}:\n{payload}")
    finally:
        for proc in procs:
            proc.join(timeout=max(0.1, deadline - time.monotonic()))
            if proc.is_alive():
                proc.kill()
                proc.join()
    assert not failures, "\n".join(failures)
    assert all(proc.exitcode == 0 for proc in procs), [p.exitcode for p in procs]
    return results


def fork() -> int:
    # Python 3.12+ warns about fork() in a threaded process; the warning is the point
    # of the threaded test below, so it must not become an error there.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        return os.fork()


def in_child(body: Callable[[], object]) -> int:
    """Fork; run ``body`` in the child and exit with 0 if it passed. Return the pid."""
    pid = fork()
    if pid == 0:  # pragma: no cover - runs in the child
        code = 1
        try:
            body()
            code = 0
        except BaseException:
            traceback.print_exc()
        finally:
            os._exit(code)
    return pid


def exit_code(pid: int, timeout: float = 30.0) -> int:
    """Wait for a forked child (killing it after ``timeout`` so the suite cannot hang)."""
    deadline = time.monotonic() + timeout
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return os.waitstatus_to_exitcode(status)
        if time.monotonic() > deadline:
            os.kill(pid, 9)
            os.waitpid(pid, 0)
            raise AssertionError(f"forked child {pid} hung")
        time.sleep(0.01)


def fork_and_wait(body: Callable[[], object], timeout: float = 30.0) -> int:
    """Run ``body`` in a forked child; return its exit code."""
    return exit_code(in_child(body), timeout)


def run_threads(
    work: Callable[[int], object], n: int, timeout: float, on_failure: Callable[[], object]
) -> None:
    """Run ``work(i)`` for ``i`` in ``range(n)``, each in its own thread; re-raise the
    first failure. A failing thread calls ``on_failure`` (abort the barrier the others
    wait at), so no thread waits for it until the timeout."""
    import threading

    errors: list[BaseException] = []

    def run(i: int) -> None:
        try:
            work(i)
        except BaseException as exc:
            errors.append(exc)
            on_failure()

    threads = [threading.Thread(target=run, args=(i,)) for i in range(n)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout)
    assert not any(thread.is_alive() for thread in threads), "a thread did not finish"
    if errors:
        raise errors[0]
