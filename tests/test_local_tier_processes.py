"""The in-process tier in front of SQLite, with several real processes on one file.

Each worker reads and writes a small key set through ``Cache(url, local=True)``
and records every operation with its start and end on the machine-wide
monotonic clock. The history is then checked: no read returned a value that a
write which had finished before the read began had already replaced.
"""

from __future__ import annotations

import random
import time
from pathlib import Path
from typing import Any

from hotcache import Cache
from processes import SPAWN, run_workers

PROCS = 3
OPS = 300
KEYS = ["k0", "k1", "k2", "k3"]

Op = tuple[str, str, str | None, float, float]  # kind, key, value, start, end


def history_worker(wid: int, url: str, barrier: Any, seed: int) -> list[Op]:
    rng = random.Random(seed + wid)
    ops: list[Op] = []
    with Cache(url, local=True) as cache:
        barrier.wait()
        for i in range(OPS):
            key = rng.choice(KEYS)
            start = time.monotonic()
            if rng.random() < 0.25:
                value = f"w{wid}-{i}"
                cache.set(key, value)
                ops.append(("w", key, value, start, time.monotonic()))
            elif rng.random() < 0.1:
                cache.delete(key)
                ops.append(("w", key, None, start, time.monotonic()))
            else:
                got = cache.get(key)
                ops.append(("r", key, got, start, time.monotonic()))
        assert cache._local is not None and cache._local.serving
    return ops


def stale_reads(ops: list[Op]) -> list[tuple[Op, Op]]:
    """Return (read, newer write) pairs where the read saw a replaced value.

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
        sources = [op for op in of_key if op[2] == value]
        if value is None:
            sources.append(start_state)
        for later in of_key:
            if later[4] < began and all(later[3] > source[4] for source in sources):
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
