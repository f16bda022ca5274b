"""Several real processes on ONE SQLite file at once, and caches that survive fork.

Workers are started with the "spawn" context (fresh interpreters, as on macOS and
Windows) and released together by a barrier; every assertion is on exact counts
or on invariants every observed value must satisfy, never on timing.
"""

from __future__ import annotations

import hashlib
import multiprocessing
import os
import random
import sqlite3
import threading
import time
import warnings
from pathlib import Path
from typing import Any

import pytest

from hotcache import Cache
from processes import SPAWN, exit_code, in_child, run_workers

PROCS = 4


# -- running workers --------------------------------------------------------------------------


def url_of(path: Path) -> str:
    return f"sqlite:///{path}"


def check_file(path: Path) -> sqlite3.Connection:
    """Open the file directly; assert it is sound and its bookkeeping matches its rows."""
    db = sqlite3.connect(path)
    assert db.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    meta = dict(db.execute("SELECT name, value FROM hc_meta"))
    count, size = db.execute("SELECT COUNT(*), COALESCE(SUM(size), 0) FROM hc_entries").fetchone()
    assert (meta["count"], meta["bytes"]) == (count, size)
    return db


# -- atomic incr across processes -------------------------------------------------------------

INCR_ROUNDS = 150


def incr_worker(wid: int, url: str, barrier: Any) -> dict[str, int]:
    with Cache(url) as cache:
        barrier.wait()
        for i in range(INCR_ROUNDS):
            cache.incr("shared")
            cache.incr(f"c{i % 3}", 2)
            if i % 10 == 0:
                cache.decr("shared")
            cache.incr(f"mine:{wid}")
        return cache.stats()


def test_incr_is_atomic_across_processes(tmp_path: Path) -> None:
    url = url_of(tmp_path / "c.db")
    with Cache(url) as cache:
        cache.set("c0", 1000)  # an existing counter, stored by set()
    results = run_workers(incr_worker, PROCS, url, SPAWN.Barrier(PROCS))
    for stats in results.values():
        assert stats["errors"] == 0
    decrements = len(range(0, INCR_ROUNDS, 10))
    with Cache(url) as cache:
        assert cache.get("shared") == PROCS * (INCR_ROUNDS - decrements)
        per_counter = [len(range(j, INCR_ROUNDS, 3)) * 2 * PROCS for j in range(3)]
        assert cache.get("c0") == 1000 + per_counter[0]
        assert cache.get("c1") == per_counter[1]
        assert cache.get("c2") == per_counter[2]
        for wid in range(PROCS):
            assert cache.get(f"mine:{wid}") == INCR_ROUNDS
    check_file(tmp_path / "c.db").close()


# -- concurrent set/get: no errors, no torn values ---------------------------------------------

MIXED_ROUNDS = 120
SHARED_KEYS = 4


def make_value(wid: int, seq: int, rng: random.Random) -> dict[str, Any]:
    size = rng.choice([8, 300, 5_000, 40_000, 120_000])
    if rng.random() < 0.5:
        payload = rng.randbytes(size)  # incompressible
    else:
        payload = (b"%d-%d|" % (wid, seq)) * (size // 8 + 1)  # compressed on store
    return {"w": wid, "seq": seq, "payload": payload, "sum": digest(wid, seq, payload)}


def digest(wid: int, seq: int, payload: bytes) -> str:
    return hashlib.sha256(b"%d:%d:" % (wid, seq) + payload).hexdigest()


def intact(value: Any) -> bool:
    """True if ``value`` is exactly what some writer wrote (writer id, checksum)."""
    return (
        isinstance(value, dict)
        and value.keys() == {"w", "seq", "payload", "sum"}
        and 0 <= value["w"] < PROCS
        and value["sum"] == digest(value["w"], value["seq"], value["payload"])
    )


def mixed_worker(wid: int, url: str, barrier: Any) -> dict[str, int]:
    rng = random.Random(wid)
    seen = torn = own_mismatch = 0
    with Cache(url, compress_threshold=1024) as cache:
        barrier.wait()
        for seq in range(MIXED_ROUNDS):
            mine = make_value(wid, seq, rng)
            cache.set(f"own:{wid}:{seq % 3}", mine)
            if cache.get(f"own:{wid}:{seq % 3}") != mine:
                own_mismatch += 1  # nobody else writes it: read-your-writes must hold
            cache.set(f"shared:{seq % SHARED_KEYS}", make_value(wid, seq, rng))
            for value in (cache.get(f"shared:{(seq + 1) % SHARED_KEYS}"),):
                if value is not None:
                    seen += 1
                    torn += not intact(value)
            if seq % 5 == 0:
                found = cache.get_many([f"shared:{j}" for j in range(SHARED_KEYS)])
                seen += len(found)
                torn += sum(not intact(v) for v in found.values())
                cache.delete(f"shared:{seq % SHARED_KEYS}")
        stats = cache.stats()
    return {"seen": seen, "torn": torn, "own_mismatch": own_mismatch, **stats}


def test_concurrent_set_get_has_no_errors_and_no_torn_values(tmp_path: Path) -> None:
    url = url_of(tmp_path / "c.db")
    results = run_workers(mixed_worker, PROCS, url, SPAWN.Barrier(PROCS))
    for wid, result in results.items():
        assert result["errors"] == 0, (wid, result)  # no "database is locked" leaked
        assert result["healed"] == 0, (wid, result)  # nothing unreadable was ever read
        assert result["short_circuited"] == 0, (wid, result)
        assert result["torn"] == 0, (wid, result)
        assert result["own_mismatch"] == 0, (wid, result)
    assert sum(r["seen"] for r in results.values()) > 0
    with Cache(url) as cache:
        for wid in range(PROCS):
            for slot in range(3):
                assert intact(cache.get(f"own:{wid}:{slot}"))
    check_file(tmp_path / "c.db").close()


# -- set_many is all-or-nothing for a concurrent reader --------------------------------------

BATCH = 25
GENERATIONS = 80


def batch_worker(wid: int, url: str, barrier: Any, writers_done: Any) -> dict[str, int]:
    keys = [f"batch:{j}" for j in range(BATCH)]
    snapshots = mixed = partial = 0
    with Cache(url) as cache:
        barrier.wait()
        if wid < 2:  # writers
            for gen in range(GENERATIONS):
                cache.set_many({key: (wid, gen, j) for j, key in enumerate(keys)})
                if gen % 10 == 9:
                    cache.delete_many(keys)  # also all at once
            with writers_done.get_lock():
                writers_done.value += 1
        else:  # readers, until both writers are done
            while True:
                finished = writers_done.value == 2
                found = cache.get_many(keys)
                if found:
                    snapshots += 1
                    partial += len(found) != BATCH
                    mixed += len({(w, g) for w, g, _ in found.values()}) != 1
                    assert all(found[key][2] == j for j, key in enumerate(keys) if key in found)
                if finished:
                    break
        stats = cache.stats()
    return {"snapshots": snapshots, "mixed": mixed, "partial": partial, **stats}


def test_set_many_is_all_or_nothing_for_concurrent_readers(tmp_path: Path) -> None:
    url = url_of(tmp_path / "c.db")
    results = run_workers(batch_worker, PROCS, url, SPAWN.Barrier(PROCS), SPAWN.Value("i", 0))
    for wid, result in results.items():
        assert result["errors"] == 0, (wid, result)
        assert result["mixed"] == 0, (wid, result)
        assert result["partial"] == 0, (wid, result)
    assert results[2]["snapshots"] + results[3]["snapshots"] > 0
    with Cache(url) as cache:
        final = cache.get_many([f"batch:{j}" for j in range(BATCH)])
    assert len({(w, g) for w, g, _ in final.values()}) <= 1


# -- eviction bound under concurrent writers ----------------------------------------------------

MAX_ENTRIES = 40
KEYS_PER_WRITER = 250


def evict_worker(wid: int, url: str, path: str, barrier: Any, writers_done: Any) -> dict[str, int]:
    barrier.wait()
    if wid == 0:  # a raw reader that samples the bound while the others write
        db = sqlite3.connect(path, timeout=30)
        samples = worst = 0
        while True:
            finished = writers_done.value == PROCS - 1
            (count,) = db.execute("SELECT COUNT(*) FROM hc_entries").fetchone()
            samples += 1
            worst = max(worst, count)
            if finished:
                break
        db.close()
        return {"samples": samples, "worst": worst}
    with Cache(url, max_entries=MAX_ENTRIES) as cache:
        for i in range(KEYS_PER_WRITER):
            cache.set(f"w{wid}:{i}", b"v" * (i % 50))
            if i % 25 == 0:
                cache.get(f"w{wid}:{i}")
        stats = cache.stats()
    with writers_done.get_lock():
        writers_done.value += 1
    return stats


def test_eviction_bound_holds_under_concurrent_writers(tmp_path: Path) -> None:
    path = tmp_path / "c.db"
    url = url_of(path)
    with Cache(url, max_entries=MAX_ENTRIES) as cache:
        cache.set("seed", 1)
    results = run_workers(
        evict_worker, PROCS, url, str(path), SPAWN.Barrier(PROCS), SPAWN.Value("i", 0)
    )
    assert results[0]["worst"] <= MAX_ENTRIES
    assert results[0]["samples"] > 0
    for wid in range(1, PROCS):
        assert results[wid]["errors"] == 0
    db = check_file(path)
    try:
        (count,) = db.execute("SELECT COUNT(*) FROM hc_entries").fetchone()
        (evicted,) = db.execute("SELECT value FROM hc_meta WHERE name = 'evictions'").fetchone()
    finally:
        db.close()
    assert count == MAX_ENTRIES  # full, and not one entry over
    assert evicted == 1 + (PROCS - 1) * KEYS_PER_WRITER - MAX_ENTRIES
    with Cache(url, max_entries=MAX_ENTRIES) as cache:
        assert cache.stats()["evictions"] == evicted


# -- fork ------------------------------------------------------------------------------------------


def test_forked_child_uses_the_parents_cache(tmp_path: Path) -> None:
    path = tmp_path / "c.db"
    with Cache(url_of(path)) as cache:
        cache.set("parent", "p")
        assert cache.incr("n") == 1

        def child() -> None:
            assert cache.get("parent") == "p"
            assert cache.incr("n") == 2
            cache.set("child", os.getpid())
            cache.set_many({"a": 1, "b": 2})
            assert cache.get_many(["a", "b"]) == {"a": 1, "b": 2}
            assert cache.stats()["errors"] == 0
            cache.close()  # must not disturb the parent's connection

        pid = in_child(child)
        assert exit_code(pid) == 0
        # The parent's own connection still works, and sees the child's writes.
        assert cache.get("child") == pid
        assert cache.incr("n") == 3
        assert cache.get_many(["a", "b"]) == {"a": 1, "b": 2}
        assert cache.stats()["errors"] == 0
    check_file(path).close()


def fork_incr_worker(cache: Cache, rounds: int, queue: Any) -> None:
    for _ in range(rounds):
        cache.incr("n")
    queue.put(cache.stats()["errors"])


def test_multiprocessing_fork_children_share_the_file(tmp_path: Path) -> None:
    ctx = multiprocessing.get_context("fork")
    path = tmp_path / "c.db"
    with Cache(url_of(path)) as cache:
        cache.incr("n")
        queue = ctx.Queue()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            procs = [
                ctx.Process(target=fork_incr_worker, args=(cache, 100, queue)) for _ in range(3)
            ]
            for proc in procs:
                proc.start()
        for _ in range(100):
            cache.incr("n")  # the parent writes at the same time
        errors = [queue.get(timeout=60) for _ in procs]
        for proc in procs:
            proc.join(timeout=60)
        assert [p.exitcode for p in procs] == [0, 0, 0]
        assert errors == [0, 0, 0]
        assert cache.get("n") == 1 + 100 + 3 * 100
    check_file(path).close()


def test_fork_in_a_threaded_parent(tmp_path: Path) -> None:
    """Threads that used the cache own connections; a child inherits none of them.

    The thread is idle (parked on an event) when the process forks; the test below
    forks while threads are inside SQLite.
    """
    path = tmp_path / "c.db"
    parked, release = threading.Event(), threading.Event()
    with Cache(url_of(path)) as cache:

        def worker() -> None:
            for i in range(50):
                cache.set(f"t{i}", i)
            parked.set()
            release.wait()
            for _ in range(50):
                cache.incr("after-fork")

        thread = threading.Thread(target=worker)
        thread.start()
        try:
            assert parked.wait(30)
            cache.set("main", 1)  # the main thread's own connection too

            def child() -> None:
                for _ in range(30):
                    cache.incr("forked")
                assert cache.get("t49") == 49
                assert cache.stats()["errors"] == 0

            pids = [in_child(child) for _ in range(3)]
            release.set()  # the parent's thread writes while the children run
            assert [exit_code(pid) for pid in pids] == [0, 0, 0]
        finally:
            release.set()
            thread.join()
        assert cache.get("forked") == 90
        assert cache.get("after-fork") == 50
        assert cache.stats()["errors"] == 0
    check_file(path).close()


def test_fork_while_other_threads_are_inside_sqlite(tmp_path: Path) -> None:
    """Forks land while other threads write and read: no child inherits SQLite's locks.

    Without the fork gate in backends/sqlite.py a child forked while a thread was
    inside SQLite hung on its first call (a mutex copied locked) or saw the file
    locked for good.
    """
    path = tmp_path / "c.db"
    stop = threading.Event()
    with Cache(url_of(path)) as cache:

        def busy() -> None:
            n = 0
            while not stop.is_set():
                n += 1
                cache.set(f"busy{n % 50}", n)
                cache.get(f"busy{(n + 7) % 50}")
                cache.incr("busy-ops")

        threads = [threading.Thread(target=busy) for _ in range(2)]
        for thread in threads:
            thread.start()
        try:
            while cache.get("busy-ops", 0) < 20:  # the threads are in full swing
                time.sleep(0.001)

            def child() -> None:
                for _ in range(20):
                    cache.incr("forked")
                mine = f"child{os.getpid()}"  # the children share the file
                cache.set(mine, os.getpid())
                assert cache.get(mine) == os.getpid()
                assert cache.stats()["errors"] == 0

            pids = [in_child(child) for _ in range(8)]
            assert [exit_code(pid) for pid in pids] == [0] * 8
        finally:
            stop.set()
            for thread in threads:
                thread.join()
        assert cache.get("forked") == 8 * 20
        assert cache.stats()["errors"] == 0
    check_file(path).close()


@pytest.mark.parametrize("closed_first", [False, True])
def test_child_after_parent_closed(tmp_path: Path, closed_first: bool) -> None:
    path = tmp_path / "c.db"
    cache = Cache(url_of(path))
    cache.set("k", 1)
    if closed_first:
        cache.close()
        with Cache(url_of(path)) as fresh:
            fresh.set("k", 2)

    def child() -> None:
        with Cache(url_of(path)) as mine:
            assert mine.get("k") == (2 if closed_first else 1)
            mine.set("from-child", True)

    assert exit_code(in_child(child)) == 0
    with Cache(url_of(path)) as reader:
        assert reader.get("from-child") is True
    cache.close()
