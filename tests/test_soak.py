"""Soak and fault runs: long mixed workloads, many processes, repeated Redis outages.

Deselected by default (marker ``soak``); ``make soak`` runs them. Their size scales
with ``HOTCACHE_SOAK_SCALE`` (a float: 0.2 in CI, 1 for the full size). Every wait
is a poll against a deadline for an observable event (a breaker trip, a failed
probe, a value read back), and every loop is bounded; assertions are on exact
invariants (checksums, counter histories, row bounds) and on bounds derived from
the breaker's window, never on how long something happened to take.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import math
import os
import random
import re
import sqlite3
import threading
import time
import traceback
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from hotcache import AsyncCache, Cache
from processes import SPAWN, run_workers
from redis_server import RedisServer

pytestmark = pytest.mark.soak


def _read_scale() -> float:
    text = os.environ.get("HOTCACHE_SOAK_SCALE", "0.2")
    try:
        scale = float(text)
    except ValueError:
        scale = math.nan
    return scale if math.isfinite(scale) and scale > 0 else math.nan


SCALE = _read_scale()
# The suite-wide timeout (120 s) is for unit tests; a full-size soak may run minutes.
SOAK_TIMEOUT = 120 + (600 * SCALE if math.isfinite(SCALE) else 0)


def scaled(full: float, minimum: int) -> int:
    """Return ``full`` scaled by HOTCACHE_SOAK_SCALE, never below ``minimum``."""
    if not math.isfinite(SCALE):
        raise pytest.UsageError("HOTCACHE_SOAK_SCALE must be a positive number")
    return max(minimum, round(full * SCALE))


def poll(condition: Callable[[], bool], what: str, deadline_s: float = 20.0) -> None:
    """Wait until ``condition()`` holds; fail naming ``what`` at the deadline."""
    deadline = time.monotonic() + deadline_s
    while not condition():
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out waiting until {what}")
        time.sleep(0.005)


async def apoll(condition: Callable[[], bool], what: str, deadline_s: float = 20.0) -> None:
    """Like ``poll`` without blocking the event loop."""
    deadline = time.monotonic() + deadline_s
    while not condition():
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out waiting until {what}")
        await asyncio.sleep(0.005)


def checksum(*parts: object) -> str:
    """Return a short digest of ``parts``, stored inside each value to detect tearing."""
    return hashlib.sha256(repr(parts).encode()).hexdigest()[:16]


# =============================================================================================
# 1. SQLite: several processes, one bounded file, a mixed random workload
# =============================================================================================

PROCS = 4
BOUND = 128  # max_entries: far below the live keyspace, so eviction runs on most writes
SHARED_KEYS = 400
PRIVATE_KEYS = 40
COUNTERS = ("c0", "c1")
INCR_EVERY = 4  # op i with i % 4 == 0 increments COUNTERS[(i // 4) % 2]
MAX_BATCH = 3  # set_many writes at most this many rows
TTLS = (0.05, 0.5, 2.0, 10.0, 60.0)

# Counters must never be evicted, or their sums could not be exact. Eviction takes the
# rows with the oldest stored_at, so a counter goes only if BOUND rows were written
# after its last increment. Between two increments of one counter each process commits
# at most 2 * INCR_EVERY - 1 other operations, each touching at most MAX_BATCH rows.
assert PROCS * (2 * INCR_EVERY - 1) * MAX_BATCH < BOUND * 3 // 4

SHARED_OPS = ("set", "get", "add", "delete", "get_many", "set_many", "touch")
SHARED_WEIGHTS = (20, 22, 6, 6, 10, 8, 4)
PRIVATE_OPS = ("pset", "pget", "padd", "pdelete", "ptouch", "pget_many", "pclear")
PRIVATE_WEIGHTS = (10, 10, 3, 3, 2, 3, 1)


def make_value(key: str, wid: int, seq: int, rng: random.Random) -> dict[str, Any]:
    size = rng.choice((16, 120, 1_500, 6_000))
    if rng.random() < 0.5:
        payload = rng.randbytes(size)  # incompressible
    else:
        payload = (b"%d.%d|" % (wid, seq)) * (size // 6 + 1)  # compressed on store
    return {"k": key, "w": wid, "s": seq, "p": payload, "c": checksum(key, wid, seq, payload)}


def intact(key: str, value: Any) -> bool:
    """Return True if ``value`` is a whole value written under ``key``."""
    return (
        isinstance(value, dict)
        and value.get("k") == key
        and value.get("w") in range(PROCS)
        and value.get("c") == checksum(key, value["w"], value["s"], value["p"])
    )


class Problems(list[str]):
    """Invariant violations a worker saw; it reports them all rather than the first."""

    def check(self, ok: bool, what: str) -> None:
        if not ok and len(self) < 50:
            self.append(what)


def sqlite_worker(wid: int, url: str, ops: int, seed: int, barrier: Any) -> dict[str, Any]:
    """Run ``ops`` random operations; return counters, incr history and problems."""
    rng = random.Random(seed * 7919 + wid)
    problems = Problems()
    shared = Cache(url, namespace="shared", max_entries=BOUND)
    private = Cache(url, namespace=f"private{wid}", max_entries=BOUND)
    counters = Cache(url, namespace="counters", max_entries=BOUND)
    # What this process last stored under each private key (only it writes them):
    # the seq of the value, or None once deleted or cleared.
    expect: dict[str, int | None] = {f"p{j}": None for j in range(PRIVATE_KEYS)}
    incr_history: list[tuple[str, int, int]] = []
    reads = 0
    seq = 0

    def check_private(key: str, value: Any) -> None:
        if value is None:
            return  # expired or evicted: allowed
        problems.check(intact(key, value), f"torn private value under {key}")
        problems.check(
            expect[key] is not None and value.get("s") == expect[key] and value["w"] == wid,
            f"{key}: read seq {value.get('s')}, last stored {expect[key]}",
        )

    barrier.wait()
    for i in range(ops):
        if i % INCR_EVERY == 0:
            name = COUNTERS[(i // INCR_EVERY) % len(COUNTERS)]
            delta = rng.randint(1, 9)
            incr_history.append((name, counters.incr(name, delta), delta))
            continue
        seq += 1
        op = rng.choices(SHARED_OPS + PRIVATE_OPS, SHARED_WEIGHTS + PRIVATE_WEIGHTS)[0]
        ttl = rng.choice(TTLS)
        key = f"s{rng.randrange(SHARED_KEYS)}"
        pkey = f"p{rng.randrange(PRIVATE_KEYS)}"
        if op == "set":
            shared.set(key, make_value(key, wid, seq, rng), ttl)
        elif op == "get":
            value = shared.get(key)
            reads += 1
            problems.check(value is None or intact(key, value), f"torn value under {key}")
        elif op == "add":
            shared.add(key, make_value(key, wid, seq, rng), ttl)
        elif op == "delete":
            shared.delete(key)
        elif op == "touch":
            shared.touch(key, ttl)
        elif op == "get_many":
            keys = [f"s{rng.randrange(SHARED_KEYS)}" for _ in range(rng.randint(2, 6))]
            found = shared.get_many(keys)
            reads += len(keys)
            problems.check(set(found) <= set(keys), f"get_many answered foreign keys {found}")
            for k, value in found.items():
                problems.check(intact(str(k), value), f"torn value under {k} (get_many)")
        elif op == "set_many":
            keys = [f"s{rng.randrange(SHARED_KEYS)}" for _ in range(rng.randint(2, MAX_BATCH))]
            shared.set_many({k: make_value(k, wid, seq, rng) for k in keys}, ttl)
        elif op == "pset":
            assert private.set(pkey, make_value(pkey, wid, seq, rng), ttl)
            expect[pkey] = seq
        elif op == "pget":
            check_private(pkey, private.get(pkey))
            reads += 1
        elif op == "padd":
            if private.add(pkey, make_value(pkey, wid, seq, rng), ttl):
                expect[pkey] = seq
            else:
                problems.check(expect[pkey] is not None, f"add refused on deleted {pkey}")
        elif op == "pdelete":
            if private.delete(pkey):
                problems.check(expect[pkey] is not None, f"delete found deleted {pkey}")
            expect[pkey] = None
        elif op == "ptouch":
            if private.touch(pkey, ttl):
                problems.check(expect[pkey] is not None, f"touch found deleted {pkey}")
        elif op == "pget_many":
            found = private.get_many(list(expect))
            reads += len(expect)
            for k, value in found.items():
                check_private(str(k), value)
        else:  # pclear: only this process's namespace, and all of it
            private.clear()
            expect = dict.fromkeys(expect)
            problems.check(private.get_many(list(expect)) == {}, "clear left private keys")
    out = {
        "stats": {
            name: cache.stats() for name, cache in (("shared", shared), ("private", private))
        },
        "counter_stats": counters.stats(),
        "incr": incr_history,
        "reads": reads,
        "problems": list(problems),
    }
    for cache in (shared, private, counters):
        cache.close()
    return out


@dataclass
class RowSampler:
    """Read the row count from outside, in one snapshot at a time, while workers run."""

    path: Path
    samples: int = 0
    over: list[tuple[int, int]] = field(default_factory=list)
    error: BaseException | None = None
    done: threading.Event = field(default_factory=threading.Event)

    def run(self) -> None:
        try:
            db = sqlite3.connect(self.path, timeout=30, isolation_level=None)
            try:
                while not self.done.is_set():
                    db.execute("BEGIN")
                    (rows,) = db.execute("SELECT COUNT(*) FROM hc_entries").fetchone()
                    (meta,) = db.execute(
                        "SELECT value FROM hc_meta WHERE name = 'count'"
                    ).fetchone()
                    db.execute("COMMIT")
                    self.samples += 1
                    if rows > BOUND or meta != rows:
                        self.over.append((rows, meta))
                    self.done.wait(0.005)
            finally:
                db.close()
        except BaseException as exc:
            self.error = exc


def check_counter_histories(results: dict[int, Any]) -> dict[str, int]:
    """Assert each counter's increments form one gapless history; return the totals."""
    totals = {}
    for name in COUNTERS:
        steps = sorted(
            (value, delta)
            for result in results.values()
            for counter, value, delta in result["incr"]
            if counter == name
        )
        # Atomic and never lost (evicted or reset): every answer is the previous
        # answer plus this call's delta, starting from zero.
        previous = 0
        for value, delta in steps:
            assert value == previous + delta, (name, previous, value, delta)
            previous = value
        totals[name] = previous
    return totals


@pytest.mark.timeout(SOAK_TIMEOUT)
def test_sqlite_many_processes_mixed_workload_under_eviction(tmp_path: Path) -> None:
    ops = scaled(100_000, 1_000) // (2 * INCR_EVERY) * (2 * INCR_EVERY)
    path = tmp_path / "soak.db"
    url = f"sqlite:///{path}"
    with Cache(url, max_entries=BOUND) as cache:  # create the file and schema up front
        assert cache.get("nothing") is None
    sampler = RowSampler(path)
    watcher = threading.Thread(target=sampler.run, daemon=True)
    watcher.start()
    seed = random.randrange(1 << 30)  # in the failure messages, to replay a run
    try:
        results = run_workers(
            sqlite_worker, PROCS, url, ops, seed, SPAWN.Barrier(PROCS), timeout=SOAK_TIMEOUT - 10
        )
    finally:
        sampler.done.set()
        watcher.join(timeout=30)
    assert sampler.error is None, repr(sampler.error)

    for wid, result in sorted(results.items()):
        assert result["problems"] == [], (seed, wid, result["problems"])
        for name, stats in (*result["stats"].items(), ("counters", result["counter_stats"])):
            assert stats["errors"] == 0, (wid, name, stats)
            assert stats["healed"] == 0, (wid, name, stats)
        assert len(result["incr"]) == ops // INCR_EVERY
    # Every increment is accounted for, and the stored counters agree.
    totals = check_counter_histories(results)
    with Cache(url, namespace="counters") as counters:
        for name, total in totals.items():
            expected = sum(d for r in results.values() for c, _, d in r["incr"] if c == name)
            assert total == expected
            assert counters.get(name) == expected

    # The bound held in every snapshot the sampler saw and holds now; the file is sound.
    assert sampler.samples > 0 and sampler.over == [], sampler.over
    db = sqlite3.connect(path)
    try:
        assert db.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        meta = dict(db.execute("SELECT name, value FROM hc_meta"))
        rows, size = db.execute(
            "SELECT COUNT(*), COALESCE(SUM(size), 0) FROM hc_entries"
        ).fetchone()
    finally:
        db.close()
    assert rows <= BOUND
    assert (meta["count"], meta["bytes"]) == (rows, size)
    # Eviction really ran all along (each process wrote far more live keys than fit).
    assert meta["evictions"] > ops // 2
    assert sum(r["reads"] for r in results.values()) > ops


# =============================================================================================
# 2. Redis outage cycles: four threads on one Cache while the server dies and hangs
# =============================================================================================

THREADS = 4
TIMEOUT = 0.1
# The event loop of the async test runs ~90 busy tasks: it lags tens of milliseconds
# (measured up to 80 ms with a full garbage collection), so a 0.1 s timeout would
# fire on a healthy server. 0.25 s is hotcache's default.
ASYNC_TIMEOUT = 0.25
WINDOW = 0.2
THRESHOLD = 2
REDIS_KEYS = 24
REDIS_TTLS = (0.1, 0.3, 1.0)
UP_HITS = 25  # hits each worker makes between one recovery and the next outage
FAILING = "failing"
FEED_LOST = re.compile(r"invalidations from \S+ (lost|unavailable)")
FEED_BACK = re.compile(r"invalidations from \S+ back$")
RECOVERED = "answers again"


def settle(timeout: float) -> float:
    """Return how long after a trip until only a probe can still reach the server."""
    # The longest a call in flight may still run (a timeout, plus a retried connect),
    # then one breaker window.
    return WINDOW + 2 * timeout + 0.05


@pytest.fixture
def hotcache_warnings(caplog: pytest.LogCaptureFixture) -> Iterator[pytest.LogCaptureFixture]:
    caplog.set_level(logging.WARNING, logger="hotcache")
    yield caplog


def warnings_of(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [
        r.getMessage()
        for r in caplog.records
        if r.name == "hotcache" and r.levelno >= logging.WARNING
    ]


class Written:
    """Every value any writer produced: a read must return one of these, for its key."""

    def __init__(self) -> None:
        # Seqs alone (ints, which the garbage collector does not track): a registry of
        # tuples grows by hundreds of thousands and makes full collections pause the
        # event loop for as long as a timeout, which then fires on a healthy server.
        self.seqs: set[int] = set()
        self._next = iter(range(1, 1 << 62))

    def new(self, key: str, writer: int) -> tuple[str, int, int, str]:
        seq = next(self._next)  # next() on a range iterator is atomic under the GIL
        self.seqs.add(seq)  # registered before anyone can read it
        return (key, writer, seq, checksum(key, writer, seq))

    def valid(self, key: str, value: Any) -> bool:
        """Return True if ``value`` was produced for ``key`` (the checksum binds the key)."""
        return (
            isinstance(value, tuple)
            and len(value) == 4
            and value[0] == key
            and value[3] == checksum(*value[:3])
            and value[2] in self.seqs
        )


@dataclass
class Worker:
    """One application thread's or task's tally."""

    calls: int = 0
    produced: int = 0
    hits: int = 0
    problems: list[str] = field(default_factory=list)
    crashed: str | None = None

    def got(self, op: str, key: str, value: Any, made: list[Any], written: Written) -> None:
        """Check one answer: the producer's own value, a written one, or a miss."""
        if made:
            self.produced += 1
            if value is not made[0]:
                self.problems.append(f"{op}({key}) produced {made} but returned {value!r}")
        elif value is None and op == "get":
            pass
        elif written.valid(key, value):
            self.hits += 1
        else:
            self.problems.append(f"{op}({key}) returned a wrong value {value!r}")


@dataclass
class Outage:
    """One break of the server, from the break until a value round-trips again."""

    kind: str
    started: float
    errors_before: int
    recovered: float = 0.0
    errors_after: int = 0

    @property
    def errors(self) -> int:
        return self.errors_after - self.errors_before

    def max_errors(self, callers: int) -> int:
        """Bound the calls that may reach the broken server during this outage.

        Every caller's call in flight at the break, then at most one probe per breaker
        window (doubled: threads may race for the probe slot).
        """
        windows = math.ceil((self.recovered - self.started) / WINDOW) + 1
        return callers + 2 * windows


def check_breaker(outages: list[Outage], stats: dict[str, int], callers: int) -> None:
    """Assert each outage reached the server a bounded number of times, and only they."""
    for outage in outages:
        assert THRESHOLD <= outage.errors <= outage.max_errors(callers), (outage, callers)
    # No errors while the server was up: a healthy server is never reported failing.
    assert stats["errors"] == sum(o.errors for o in outages), (stats, outages)
    # Most calls during the outages were answered by the breaker, without I/O.
    assert stats["short_circuited"] > stats["errors"], stats


def check_log(caplog: pytest.LogCaptureFixture, outages: int, races: int) -> None:
    """Assert the log holds breaker state changes only, about two lines per outage."""
    # One "failing" and one "answers again" per outage; ``races`` times that at most
    # where threads may race through one transition of the lock-free breaker.
    logged = warnings_of(caplog)
    failing = [m for m in logged if FAILING in m]
    recovered = [m for m in logged if RECOVERED in m]
    # The local tier's feed (one thread) logs its own: lost once per outage it
    # noticed (a short pause may pass unnoticed), back once after each.
    feed_down = [m for m in logged if FEED_LOST.search(m)]
    feed_back = [m for m in logged if FEED_BACK.search(m)]
    assert len(feed_down) <= outages, logged
    assert len(feed_down) - 1 <= len(feed_back) <= len(feed_down), logged
    assert len(failing) + len(recovered) + len(feed_down) + len(feed_back) == len(logged), logged
    assert outages <= len(failing) <= races * outages, logged
    assert outages <= len(recovered) <= races * outages, logged


def redis_thread(
    tid: int, cache: Cache, written: Written, stop: threading.Event, me: Worker
) -> None:
    """Loop get_or_set / set / get on shared keys until told to stop; check every answer."""
    rng = random.Random(tid)
    try:
        while not stop.is_set() and me.calls < 10**7:
            me.calls += 1
            key = f"k{rng.randrange(REDIS_KEYS)}"
            ttl = rng.choice(REDIS_TTLS)
            roll = rng.random()
            made: list[Any] = []
            if roll < 0.5:

                def producer(key: str = key, made: list[Any] = made) -> Any:
                    made.append(written.new(key, tid))
                    return made[-1]

                me.got("get_or_set", key, cache.get_or_set(key, producer, ttl), made, written)
            elif roll < 0.75:
                cache.set(key, written.new(key, tid), ttl)
            else:
                me.got("get", key, cache.get(key), made, written)
            # An application does other work between cache calls; without this pause
            # four threads spinning on short-circuited calls would starve the main one.
            time.sleep(0.0005)
    except BaseException:
        me.crashed = traceback.format_exc()


def break_server(server: RedisServer, kind: str) -> None:
    if kind == "kill":
        server.kill()
    else:
        server.pause()


def mend_server(server: RedisServer, kind: str) -> None:
    if kind == "kill":
        server.start()
    else:
        server.resume()


@pytest.mark.timeout(SOAK_TIMEOUT)
def test_redis_outage_cycles_with_threads(
    own_redis: RedisServer, hotcache_warnings: pytest.LogCaptureFixture
) -> None:
    cycles = scaled(40, 2)
    written = Written()
    stop = threading.Event()
    workers = [Worker() for _ in range(THREADS)]
    cache = Cache(
        own_redis.url,
        timeout=TIMEOUT,
        connect_timeout=TIMEOUT,
        breaker_threshold=THRESHOLD,
        breaker_window=WINDOW,
    )
    threads = [
        threading.Thread(target=redis_thread, args=(tid, cache, written, stop, me), daemon=True)
        for tid, me in enumerate(workers)
    ]

    def errors() -> int:
        return cache.stats()["errors"]

    def short_circuited() -> int:
        return cache.stats()["short_circuited"]

    def trips() -> int:
        return cache.stats()["breaker_trips"]

    def hits() -> list[int]:
        return [w.hits for w in workers]

    outages: list[Outage] = []
    try:
        for thread in threads:
            thread.start()
        poll(lambda: min(hits()) >= UP_HITS, "every thread hits the cache")
        for cycle in range(cycles):
            for kind in ("kill", "pause"):
                tripped, calls = trips(), sum(w.calls for w in workers)
                outage = Outage(kind, time.monotonic(), errors())
                outages.append(outage)
                break_server(own_redis, kind)
                try:
                    poll(lambda t=tripped: trips() > t, f"the breaker trips ({kind})")
                    # Stay down until a probe has failed: once a window has passed and
                    # the calls in flight at the trip have ended, only a probe errs.
                    time.sleep(settle(TIMEOUT))
                    quiet_errors, quiet_skips = errors(), short_circuited()
                    poll(
                        lambda e=quiet_errors, s=quiet_skips, c=calls: (
                            errors() > e
                            and short_circuited() > s + THREADS
                            and sum(w.calls for w in workers) > c + 4 * THREADS
                        ),
                        f"a probe fails while calls are short-circuited ({kind})",
                    )
                finally:
                    mend_server(own_redis, kind)
                # After each recovery a value set now is read back.
                token = f"{kind}-{cycle}"
                poll(
                    lambda t=token: cache.set("probe", t) and cache.get("probe") == t,
                    f"the cache recovers from {token}",
                )
                outage.recovered, outage.errors_after = time.monotonic(), errors()
                # Back to normal work for a while: every thread hits the cache again.
                before = hits()
                poll(
                    lambda b=before: all(
                        h >= b0 + UP_HITS for h, b0 in zip(hits(), b, strict=True)
                    ),
                    "every thread hits the cache again",
                )
    finally:
        stop.set()
        for thread in threads:
            thread.join(timeout=30)
        cache.close()
    assert not any(t.is_alive() for t in threads)

    crashes = [w.crashed for w in workers if w.crashed]
    assert crashes == [], crashes[0]  # no exception escaped a fail-open call
    problems = [p for w in workers for p in w.problems]
    assert problems == [], problems[:10]
    assert all(w.produced > 0 and w.hits > 0 for w in workers)
    assert len(outages) == 2 * cycles
    stats = cache.stats()
    check_breaker(outages, stats, THREADS + 1)
    # Threads may race through one transition of the (lock-free) breaker: allow twice.
    assert len(outages) <= stats["breaker_trips"] <= 2 * len(outages), stats
    check_log(hotcache_warnings, len(outages), races=2)


# =============================================================================================
# 3. AsyncCache: many tasks on one cache while the server is killed and hung
# =============================================================================================

# hotcache's pool holds 50 connections and makes callers past that wait for one (up to
# the timeout). Each task holds at most one connection: stay below the pool's size, so
# a slow event loop cannot turn a pool wait into an error this test counts as wrong.
MAX_TASKS = 45


@pytest.mark.timeout(SOAK_TIMEOUT)
def test_async_tasks_under_load_with_outages(
    own_redis: RedisServer, hotcache_warnings: pytest.LogCaptureFixture
) -> None:
    tasks_n = min(scaled(MAX_TASKS, 24), MAX_TASKS)
    rounds = scaled(10, 1)
    written = Written()
    workers = [Worker() for _ in range(tasks_n)]
    unhandled: list[dict[str, Any]] = []
    outages: list[Outage] = []

    async def task(tid: int, cache: AsyncCache, stop: asyncio.Event, me: Worker) -> None:
        rng = random.Random(tid)
        while not stop.is_set() and me.calls < 10**7:
            me.calls += 1
            key = f"k{rng.randrange(REDIS_KEYS)}"
            made: list[Any] = []

            async def producer(key: str = key, made: list[Any] = made) -> Any:
                await asyncio.sleep(0)  # a real producer awaits something
                made.append(written.new(key, tid))
                return made[-1]

            if rng.random() < 0.8:
                value = await cache.get_or_set(key, producer, rng.choice(REDIS_TTLS))
                me.got("get_or_set", key, value, made, written)
            else:
                me.got("get", key, await cache.get(key), made, written)
            # Short-circuited calls never await: without this the task would never
            # yield to the loop while the breaker is open.
            await asyncio.sleep(0.002)

    async def main() -> dict[str, int]:
        asyncio.get_running_loop().set_exception_handler(lambda _, ctx: unhandled.append(ctx))
        stop = asyncio.Event()
        cache = AsyncCache(
            own_redis.url,
            timeout=ASYNC_TIMEOUT,
            connect_timeout=ASYNC_TIMEOUT,
            breaker_threshold=THRESHOLD,
            breaker_window=WINDOW,
        )

        def stat(name: str) -> int:
            return cache.stats()[name]

        def hits() -> int:
            return sum(w.hits for w in workers)

        running = [
            asyncio.create_task(task(tid, cache, stop, me)) for tid, me in enumerate(workers)
        ]
        try:
            await apoll(lambda: hits() >= UP_HITS * tasks_n // 4, "the tasks hit the cache")
            for kind in ("kill", "pause") * rounds:
                tripped = stat("breaker_trips")
                outage = Outage(kind, time.monotonic(), stat("errors"))
                outages.append(outage)
                break_server(own_redis, kind)
                try:
                    await apoll(lambda t=tripped: stat("breaker_trips") > t, f"a trip ({kind})")
                    await asyncio.sleep(settle(ASYNC_TIMEOUT))  # as in the threaded test
                    quiet_errors, quiet_skips = stat("errors"), stat("short_circuited")
                    await apoll(
                        lambda e=quiet_errors, s=quiet_skips: (
                            stat("errors") > e and stat("short_circuited") > s + tasks_n
                        ),
                        f"a probe fails while calls are short-circuited ({kind})",
                    )
                finally:
                    # start() blocks while it waits for PING: run it beside the loop.
                    await asyncio.to_thread(mend_server, own_redis, kind)
                token = f"{kind}-{len(outages)}"
                deadline = time.monotonic() + 20
                while not (await cache.set("probe", token) and await cache.get("probe") == token):
                    assert time.monotonic() < deadline, f"the cache did not recover ({token})"
                    await asyncio.sleep(0.005)
                outage.recovered, outage.errors_after = time.monotonic(), stat("errors")
                before = hits()
                await apoll(
                    lambda b=before: hits() >= b + UP_HITS * tasks_n // 4, "tasks hit again"
                )
        finally:
            stop.set()
            results = await asyncio.gather(*running, return_exceptions=True)
            stats = cache.stats()
            await cache.close()
        failures = [r for r in results if isinstance(r, BaseException)]
        assert failures == [], "".join(traceback.format_exception(failures[0]))
        return stats

    stats = asyncio.run(main())
    assert unhandled == [], unhandled
    problems = [p for w in workers for p in w.problems]
    assert problems == [], problems[:10]
    assert sum(w.produced for w in workers) > 0
    assert len(outages) == 2 * rounds
    check_breaker(outages, stats, tasks_n + 1)
    # One task runs at a time: no races, so exactly one trip and two lines per outage.
    assert stats["breaker_trips"] == len(outages), stats
    check_log(hotcache_warnings, len(outages), races=1)
    breaker_lines = [m for m in warnings_of(hotcache_warnings) if "invalidations" not in m]
    assert len(breaker_lines) == 2 * len(outages)
