"""The in-process tier in front of SQLite and Redis, with several real processes.

Each worker reads and writes a small key set through ``Cache(url, local=True)``
and records every operation with its start and end on the machine-wide
monotonic clock. The history is then checked: no read returned a value that a
write which had finished before the read began had already replaced.
"""

from __future__ import annotations

import random
import threading
import time
from pathlib import Path
from typing import Any

from hotcache import Cache
from processes import SPAWN, run_workers

PROCS = 3
OPS = 300
KEYS = ["k0", "k1", "k2", "k3"]

Op = tuple[str, str, str | None, float, float]  # kind, key, value, start, end


def failures(cache: Cache) -> int:
    """Calls that did not reach the backend: failed, or kept from it by the breaker."""
    stats = cache.stats()
    return stats["errors"] + stats["short_circuited"]


def history_worker(
    wid: int,
    url: str,
    barrier: Any,
    seed: int,
    ops_count: int = OPS,
    pace: float = 0.0,
    keys: int = len(KEYS),
    writes: float = 0.25,
) -> list[Op]:
    """Random reads and writes; an operation the backend failed is not recorded
    (a write that failed open may or may not have happened; a read that failed
    open returned no value at all)."""
    rng = random.Random(seed + wid)
    names = [f"k{i}" for i in range(keys)]
    ops: list[Op] = []
    with Cache(url, local=True) as cache:
        barrier.wait()
        for i in range(ops_count):
            key = rng.choice(names)
            errors = failures(cache)
            start = time.monotonic()
            if rng.random() < writes:
                value = f"w{wid}-{i}"
                done = cache.set(key, value)
                op: Op = ("w", key, value, start, time.monotonic())
            elif rng.random() < 0.1:
                cache.delete(key)
                op = ("w", key, None, start, time.monotonic())
                done = True
            else:
                op = ("r", key, cache.get(key), start, time.monotonic())
                done = True
            if done and failures(cache) == errors:
                ops.append(op)
            elif op[0] == "w":
                ops.append(("u", key, op[2], start, float("inf")))  # may have happened
            if pace:
                time.sleep(pace)
        assert cache._local is not None
    return ops


def stale_reads(ops: list[Op], bound: float = 0.0) -> list[tuple[Op, Op]]:
    """Return (read, newer write) pairs where the read saw a value replaced more
    than ``bound`` seconds before it began (the propagation a feed may take).

    The writes a read's value may come from are the set of that value (values
    are unique), or for an absent key every delete and the empty start. The
    read is stale if some write of the key began after every one of those
    ended, and itself ended before the read began.
    """
    start_state: Op = ("w", "", None, float("-inf"), float("-inf"))
    found = []
    for read in (op for op in ops if op[0] == "r"):
        _, key, value, began, _ = read
        of_key = [op for op in ops if op[0] == "w" and op[1] == key]
        # A write that failed open ("u") may have happened: its value is a source.
        sources = [op for op in ops if op[0] in "wu" and op[1] == key and op[2] == value]
        if value is None:
            sources.append(start_state)
        for later in of_key:
            if later[4] + bound < began and all(later[3] > source[4] for source in sources):
                found.append((read, later))
                break
    return found


def test_no_process_reads_a_value_another_replaced_before_the_read(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'c.db'}"
    with Cache(url) as cache:
        cache.clear()
    results = run_workers(history_worker, PROCS, url, SPAWN.Barrier(PROCS), 20261122)
    ops = [op for wid in sorted(results) for op in results[wid]]
    reads = [op for op in ops if op[0] == "r"]
    assert len(reads) > PROCS * OPS // 2
    stale = stale_reads(ops)
    assert not stale, f"{len(stale)} stale reads, e.g. {stale[:3]}"


def test_stale_reads_are_detected_by_the_checker() -> None:
    """The checker itself: a read after a completed overwrite is reported."""
    ops: list[Op] = [
        ("w", "k", "old", 0.0, 1.0),
        ("w", "k", "new", 2.0, 3.0),
        ("r", "k", "old", 4.0, 5.0),  # stale: "new" finished before the read began
        ("r", "k", "old", 2.5, 5.0),  # concurrent with the overwrite: allowed
        ("r", "k", None, 0.5, 0.6),  # the empty start, before "old" finished: allowed
        ("w", "k", None, 6.0, 7.0),
        ("r", "k", None, 8.0, 9.0),  # after the delete: allowed
        ("r", "k", "new", 8.0, 9.0),  # the delete finished before: stale
    ]
    assert stale_reads(ops) == [(ops[2], ops[1]), (ops[7], ops[5])]


def writer(wid: int, url: str, key: str, value: str) -> None:
    with Cache(url) as cache:
        cache.set(key, value)


def test_a_change_by_another_process_drops_the_local_copy(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'c.db'}"
    with Cache(url, local=True) as cache:
        cache.set("k", "mine")
        assert cache.get("k") == "mine"
        local = cache._local
        assert local is not None and local.get(cache._key("k")) is not None  # served here
        run_workers(writer, 1, url, "k", "theirs")
        assert cache.get("k") == "theirs"
        run_workers(writer, 1, url, "other", "x")
        assert cache.get("k") == "theirs" and cache.get("other") == "x"


# Redis pushes invalidations asynchronously: a read may miss a change made a
# moment before it (docs/coherence.md measures how long). A lost invalidation
# would leave a value stale for the rest of the run, which lasts several bounds.
REDIS_BOUND = 0.1


def test_redis_no_process_reads_a_value_another_replaced(redis_url: str) -> None:
    results = run_workers(history_worker, PROCS, redis_url, SPAWN.Barrier(PROCS), 7, 400, 0.002)
    ops = [op for wid in sorted(results) for op in results[wid]]
    assert max(op[4] for op in ops) - min(op[3] for op in ops) > 5 * REDIS_BOUND
    stale = stale_reads(ops, REDIS_BOUND)
    assert not stale, f"{len(stale)} stale reads, e.g. {stale[:3]}"


def test_redis_killed_and_restarted_mid_run_serves_nothing_stale(own_redis: Any) -> None:
    """The server dies (and comes back empty) while the workers run: their local
    tiers are bypassed while the feed is down and start empty when it is back.
    Many keys, few writes: a key keeps a stale local copy long enough to be seen."""
    barrier = SPAWN.Barrier(PROCS + 1)
    outcome: dict[str, Any] = {}

    def workers() -> None:
        outcome["results"] = run_workers(
            history_worker, PROCS, own_redis.url, barrier, 11, 1500, 0.001, 64, 0.05, timeout=120
        )

    runner = threading.Thread(target=workers)
    runner.start()
    barrier.wait()
    time.sleep(0.2)  # let the workers fill their tiers (timing here only shapes the run)
    began = time.monotonic()
    own_redis.restart()
    ended = time.monotonic()
    runner.join(timeout=120)
    results = outcome["results"]
    ops = [op for wid in sorted(results) for op in results[wid]]
    # The restart deleted every key somewhere within [began, ended].
    ops += [("w", f"k{i}", None, began, ended) for i in range(64)]
    assert any(op[0] == "r" and op[3] > ended + 5 * REDIS_BOUND for op in ops), "too short"
    stale = stale_reads(ops, REDIS_BOUND)
    assert not stale, f"{len(stale)} stale reads, e.g. {stale[:3]}"
