"""SQLite specifics the conformance suite cannot see: connections, bounds, broken files."""

from __future__ import annotations

import gc
import os
import threading
from pathlib import Path

import pytest

import hotcache
from hotcache.backends.sqlite import SQLiteBackend


def test_a_thread_s_connection_closes_when_the_thread_ends(tmp_path: Path) -> None:
    backend = SQLiteBackend(str(tmp_path / "c.db"))
    try:
        backend.set("k", b"v")
        baseline = backend._pool.open_count

        def use() -> None:
            assert backend.get("k") == b"v"

        for _ in range(50):
            thread = threading.Thread(target=use)
            thread.start()
            thread.join()
        gc.collect()
        assert backend._pool.open_count == baseline  # no connection per dead thread
        assert backend.get("k") == b"v"
    finally:
        backend.close()
    assert backend._pool.open_count == 0


@pytest.mark.parametrize("local", [False, True], ids=["plain", "local-tier"])
def test_an_oversized_value_is_refused_and_evicts_nothing(tmp_path: Path, local: bool) -> None:
    url = f"sqlite:///{tmp_path / 'c.db'}"
    with hotcache.Cache(url, max_bytes=10_000, local=local) as cache:
        cache.set_many({f"k{i}": "x" * 50 for i in range(50)})
        cache.set("big", "old")
        noise = os.urandom(20_000)  # incompressible
        assert cache.set("big", noise) is False
        assert cache.get("big") is None  # the old value is gone, not left stale
        assert cache.add("big", noise) is False
        assert len(cache.get_many([f"k{i}" for i in range(50)])) == 50
        cache.set_many({"big2": noise, "small": 1})
        assert cache.get("big2") is None and cache.get("small") == 1
        assert cache.stats()["evictions"] == 0


def test_a_corrupt_file_fails_open_instead_of_failing_construction(tmp_path: Path) -> None:
    path = tmp_path / "broken.db"
    path.write_bytes(b"this is not a database" * 100)
    with hotcache.Cache(f"sqlite:///{path}") as cache:  # constructing does not raise
        assert cache.get("k") is None
        assert cache.set("k", 1) is False
        assert cache.get_or_set("k", lambda: 42) == 42
        assert cache.stats()["errors"] >= 1


def test_a_cache_dropped_without_close_releases_its_connections(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'c.db'}"
    fds = len(os.listdir("/proc/self/fd"))
    for _ in range(30):
        cache = hotcache.Cache(url)
        cache.set("k", 1)
        del cache
    gc.collect()
    assert len(os.listdir("/proc/self/fd")) <= fds + 3  # not 30 caches' files left open


def test_forks_while_threads_come_and_go(tmp_path: Path) -> None:
    """Threads ending during a fork defer their connection's close; no fork stalls."""
    import time

    from processes import fork_and_wait

    backend = SQLiteBackend(str(tmp_path / "c.db"))
    stop = threading.Event()

    def churn() -> None:
        while not stop.is_set():
            worker = threading.Thread(target=backend.get, args=("k",))
            worker.start()
            worker.join()

    churners = [threading.Thread(target=churn) for _ in range(2)]
    for thread in churners:
        thread.start()
    try:
        started = time.monotonic()
        for _ in range(20):
            assert fork_and_wait(lambda: backend.set("child", b"1")) == 0
        assert time.monotonic() - started < 20  # a stalled fork would wait 30 s
    finally:
        stop.set()
        for thread in churners:
            thread.join()
        backend.close()
