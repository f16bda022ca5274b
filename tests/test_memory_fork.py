"""memory:// across fork(): a child never inherits a store lock held by another thread."""

from __future__ import annotations

import os
import threading
import time
import warnings

import hotcache


def _fork() -> int:
    with warnings.catch_warnings():  # Python 3.12+ warns on fork() with threads running
        warnings.simplefilter("ignore", DeprecationWarning)
        return os.fork()


def _wait(pid: int, timeout: float = 30.0) -> int:
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


def test_fork_while_threads_use_a_memory_store() -> None:
    cache = hotcache.Cache("memory://fork-test", max_entries=100)
    stop = threading.Event()
    ops = [0]

    def busy() -> None:
        n = 0
        while not stop.is_set():
            n += 1
            cache.set(f"k{n % 300}", n)  # 300 keys over 100 slots: constant eviction
            cache.get(f"k{(n + 1) % 300}")
            cache.incr("ops")
            ops[0] = n

    threads = [threading.Thread(target=busy) for _ in range(2)]
    for thread in threads:
        thread.start()
    try:
        while ops[0] < 100:
            time.sleep(0.001)
        pids = []
        for i in range(10):
            pid = _fork()
            if pid == 0:  # pragma: no cover - the child
                code = 1
                try:
                    cache.set("child", i)
                    assert cache.get("child") == i
                    assert cache.incr("ops") > 0
                    code = 0
                finally:
                    os._exit(code)
            pids.append(pid)
        assert [_wait(pid) for pid in pids] == [0] * 10
    finally:
        stop.set()
        for thread in threads:
            thread.join()
    assert cache.get("child", hotcache.MISSING) is hotcache.MISSING  # children's copies
