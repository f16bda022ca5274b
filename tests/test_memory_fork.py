"""memory:// across fork(): a child never inherits a store lock held by another thread."""

from __future__ import annotations

import threading
import time

import hotcache
from processes import exit_code, in_child


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

        def child(i: int) -> None:
            cache.set("child", i)
            assert cache.get("child") == i
            assert cache.incr("ops") > 0

        pids = [in_child(lambda i=i: child(i)) for i in range(10)]
        assert [exit_code(pid) for pid in pids] == [0] * 10
    finally:
        stop.set()
        for thread in threads:
            thread.join()
    assert cache.get("child", hotcache.MISSING) is hotcache.MISSING  # children's copies
