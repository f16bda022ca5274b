"""The in-process tier (``local=True``) scenarios: what a local hit costs, how fast
a change reaches another process's tier, and a read-heavy workload in two
processes, against the cachetools-in-front-of-redis-py pattern users write instead.

- ``local get hit, ...`` are ordinary table scenarios (one process, timed by the
  harness): ``Cache(url, local=True).get`` against ``cachetools.TTLCache``, with
  the same cache without its local tier as context. ``Resident`` fails the run
  if any timed call was not a local hit.
- **propagation** (``PROPAGATION``): this process writes a key that a spawned
  process holds in its local tier and polls; each change is timed from the
  moment ``set`` returned here to the start of the reader's first read that no
  longer returned the old value, on ``time.monotonic()`` (one clock for every
  process of the machine). A reader that saw the change before ``set`` returned
  counts 0.
- **workload** (``WORKLOAD``): two spawned processes run the same fixed number
  of Zipf-distributed operations (95 % reads, 5 % writes, each write a unique
  version) through each contender, then the merged history is checked for
  stale reads: a read that returned a version another write had replaced before
  the read began.

Each multi-process figure is its own section of the output (``run_sections``),
not a harness row: its unit is a latency or a throughput with a count of stale
reads, not a paired ratio.
"""

from __future__ import annotations

import bisect
import itertools
import math
import multiprocessing
import os
import random
import sys
import time
import traceback
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import cachetools
from harness import percentile, sync_unary
from scenarios import NAMESPACE, PAYLOADS, RAW_PREFIX, SEED, Builder, Env, Rival, Scenario, _draw

import hotcache
from hotcache._facade import resolve_settings
from hotcache.backends.redis import SyncDriver, make_client

__all__ = [
    "COHERENCE_FULL",
    "COHERENCE_QUICK",
    "COHERENCE_SCENARIOS",
    "PROPAGATION",
    "SECTIONS",
    "WORKLOAD",
    "CoherenceSizes",
    "Propagation",
    "WorkloadRow",
    "run_sections",
    "stale_lags",
]

LOCAL_TARGET = 2.0  # Cache(redis_url, local=True).get / cachetools TTLCache.get
PROPAGATION_TARGET_US = 5000.0  # p99, Redis, loopback
STALE_BOUND = 0.010  # a read this long after the newer write returned must not be stale
PROCESSES = 2
WRITE_SHARE = 0.05
ZIPF_S = 1.0
RIVAL_TTL = 5.0
TIMEOUT = 60.0  # the longest any wait on another process may take
KEY = "propagation"
SPAWN = multiprocessing.get_context("spawn")


@dataclass(frozen=True)
class CoherenceSizes:
    changes: int  # timed changes per propagation row
    ops: int  # workload operations per process, per contender
    keys: int  # the workload's key space


COHERENCE_FULL = CoherenceSizes(changes=200, ops=20_000, keys=1000)
COHERENCE_QUICK = CoherenceSizes(changes=20, ops=300, keys=100)


# -- the local hit (table scenarios) ------------------------------------------------


def _wait_serving(cache: hotcache.Cache, probe: str) -> None:
    """Wait until the cache's local tier serves (its feed is up)."""
    local = cache._local
    if local is None:
        raise RuntimeError("local=True gave this cache no local tier")
    deadline = time.monotonic() + TIMEOUT
    while not local.serving:
        if time.monotonic() > deadline:
            raise RuntimeError("the local tier never started serving (no coherence feed?)")
        cache.get(probe)  # SQLite's feed starts with the first read
        time.sleep(0.001)


def _fill_local(cache: hotcache.Cache, keys: list[str], value: Any) -> None:
    """Store ``keys`` and read each back until the local tier holds them all."""
    cache.set_many(dict.fromkeys(keys, value))
    _wait_serving(cache, keys[0])
    feed = cache._feed
    for _ in range(3):
        if feed is not None:
            feed.barrier()  # the invalidations of our own writes are in
        for key in keys:
            cache.get(key)
        if not Resident.absent(cache, keys):
            return
    raise RuntimeError(f"{len(Resident.absent(cache, keys))} keys never stayed in the local tier")


class Resident:
    """Fail the run unless every timed read was a local hit: every key is in the
    local tier before timing and still there after, with no flush in between."""

    def __init__(self, env: Env, cache: hotcache.Cache, keys: list[str]) -> None:
        assert cache._local is not None
        self.cache, self.keys, self.flushes = cache, keys, cache._local.flushes
        env.cleanup.callback(self.check)

    @staticmethod
    def absent(cache: hotcache.Cache, keys: list[str]) -> list[str]:
        local = cache._local
        assert local is not None
        return [k for k in keys if local.get(cache._key(k)) is None]

    def check(self) -> None:
        assert self.cache._local is not None
        flushes = self.cache._local.flushes - self.flushes
        absent = self.absent(self.cache, self.keys)
        if flushes or absent:
            raise RuntimeError(
                f"not every timed read was a local hit: {flushes} flushes, "
                f"{len(absent)} keys left the local tier"
            )


def _ttl_cache(keys: list[str], value: Any) -> cachetools.TTLCache[str, Any]:
    ttl_cache: cachetools.TTLCache[str, Any] = cachetools.TTLCache(maxsize=10 * len(keys), ttl=3600)
    for key in keys:
        ttl_cache[key] = value
    return ttl_cache


def _local_get(
    env: Env,
    payload: str,
    url: str,
    label: str,
    plain_ops: int,
    target: float | None,
    **options: Any,
) -> Scenario:
    value = PAYLOADS[payload]
    keys = [f"user:{i}" for i in range(env.sizes.keys)]
    cache = hotcache.Cache(url, namespace=NAMESPACE, local=True, **options)
    plain = hotcache.Cache(url, namespace=NAMESPACE, local=False)

    def close() -> None:
        cache.clear()
        plain.close()
        cache.close()

    env.cleanup.callback(close)
    _fill_local(cache, keys, value)
    Resident(env, cache, keys)  # registered after close: checked before it
    ttl_cache = _ttl_cache(keys, value)
    ops = _draw(keys, env.sizes.memory)
    shown = "".join(f", {name}={value!r}" for name, value in options.items())
    return Scenario(
        sync_unary(f"hotcache Cache({label}, local=True{shown}).get", cache.get, ops),
        [
            Rival(sync_unary("cachetools TTLCache.get", ttl_cache.get, ops), target),
            Rival(sync_unary("cachetools TTLCache[k]", ttl_cache.__getitem__, ops)),
            Rival(
                sync_unary(
                    f"hotcache Cache({label}, local=False).get", plain.get, _draw(keys, plain_ops)
                )
            ),
        ],
    )


def local_get_redis(env: Env, payload: str) -> Scenario:
    return _local_get(env, payload, env.redis_url, "redis_url", env.sizes.redis, LOCAL_TARGET)


def local_objects_get_redis(env: Env, payload: str) -> Scenario:
    return _local_get(
        env,
        payload,
        env.redis_url,
        "redis_url",
        env.sizes.redis,
        LOCAL_TARGET,
        serialize_local=False,
    )


def local_get_sqlite(env: Env, payload: str) -> Scenario:
    url = f"sqlite:///{os.path.join(env.tmpdir, f'local-{payload}.db')}"
    return _local_get(env, payload, url, "'sqlite:///…'", env.sizes.sqlite, None)


# name -> (builder, payload), in the order the table prints them (after the others).
COHERENCE_SCENARIOS: dict[str, tuple[Builder, str]] = {
    "local get hit, redis (dict)": (local_get_redis, "dict"),
    "local get hit, redis (str)": (local_get_redis, "str"),
    "local get hit, redis, objects (dict)": (local_objects_get_redis, "dict"),
    "local get hit, redis, objects (str)": (local_objects_get_redis, "str"),
    "local get hit, sqlite (dict)": (local_get_sqlite, "dict"),
    "local get hit, sqlite (str)": (local_get_sqlite, "str"),
}


# -- the multi-process sections: results ---------------------------------------------


@dataclass(frozen=True)
class Propagation:
    scenario: str
    changes: int
    p50_us: float
    p99_us: float
    max_us: float
    target_us: float | None  # p99

    @property
    def met(self) -> bool | None:
        return None if self.target_us is None else self.p99_us <= self.target_us


@dataclass(frozen=True)
class WorkloadRow:
    scenario: str
    contender: str
    ops: int  # per process
    ns_per_op: float  # the mean of the processes' elapsed time per operation
    ops_per_s: float  # every process's operations over the longest elapsed time
    ratio: float  # ns_per_op / the cache-aside contender's
    reads: int
    stale: int  # reads that returned a replaced version
    stale_late: int  # ...replaced more than STALE_BOUND before the read began
    longest_ms: float  # the longest a stale read's version had been replaced (0: none)
    target: int | None  # the most stale_late allowed

    @property
    def met(self) -> bool | None:
        return None if self.target is None else self.stale_late <= self.target


# name -> (backend, reader releases the GIL between reads, p99 target in µs)
PROPAGATION: dict[str, tuple[str, bool, float | None]] = {
    "propagation, redis (reader releases the GIL)": ("redis", True, PROPAGATION_TARGET_US),
    "propagation, redis (reader holds the GIL)": ("redis", False, None),
    "propagation, redis invalidation=pubsub": ("redis-pubsub", True, PROPAGATION_TARGET_US),
    "propagation, sqlite": ("sqlite", False, None),
}
WORKLOAD = f"read-heavy workload, redis, {PROCESSES} processes"
# contender -> (label, target: the most reads allowed to be stale past STALE_BOUND)
CONTENDERS: dict[str, tuple[str, int | None]] = {
    "two_tiers": ("hotcache Cache(redis_url, local=True)", 0),
    "redis": ("hotcache Cache(redis_url, local=False)", 0),
    "aside": (f"cachetools TTLCache(ttl={RIVAL_TTL:g}) + redis-py cache-aside", None),
}
SECTIONS = [*PROPAGATION, WORKLOAD]


# -- the worker processes ------------------------------------------------------------


class Worker:
    """One spawned process that runs commands sent over a pipe."""

    def __init__(self, barrier: Any) -> None:
        self.conn, theirs = SPAWN.Pipe()
        self.proc = SPAWN.Process(target=_serve, args=(theirs, barrier), daemon=True)
        self.proc.start()
        theirs.close()

    def send(self, message: Any) -> None:
        self.conn.send(message)

    def expect(self, tag: str, timeout: float = TIMEOUT) -> Any:
        """Return the payload of the next message, which must be tagged ``tag``."""
        if not self.conn.poll(timeout):
            raise RuntimeError(f"a worker sent nothing for {timeout:g}s (waiting for {tag!r})")
        message = self.conn.recv()
        if message[0] == "error":
            raise RuntimeError(f"a worker failed:\n{message[1]}")
        if message[0] != tag:
            raise RuntimeError(f"a worker sent {message[0]!r}, expected {tag!r}")
        return message[1]

    def close(self) -> None:
        try:
            self.conn.send(None)
        except OSError:
            pass
        self.proc.join(timeout=5)
        if self.proc.is_alive():
            self.proc.kill()
            self.proc.join()
        self.conn.close()


@contextmanager
def _workers(count: int) -> Iterator[list[Worker]]:
    barrier = SPAWN.Barrier(count)
    workers: list[Worker] = []
    try:
        for _ in range(count):
            workers.append(Worker(barrier))
        yield workers
    finally:
        for worker in workers:
            worker.close()


def _serve(conn: Any, barrier: Any) -> None:
    """A worker's loop: run each command it is sent until told to stop."""
    commands: dict[str, Callable[..., Any]] = {
        "propagation": _read_until_changed,
        "workload": _run_workload,
    }
    while True:
        try:
            message = conn.recv()
        except EOFError:
            return
        if message is None:
            return
        command, args = message
        try:
            result = commands[command](conn, barrier, *args)
        except BaseException:
            conn.send(("error", traceback.format_exc()))
        else:
            conn.send(("done", result))


# -- propagation ---------------------------------------------------------------------


def _read_until_changed(conn: Any, barrier: Any, url: str, release_gil: bool) -> None:
    """The reader: for each value it is told is stored, hold it in the local tier,
    then poll until a read no longer returns it; report when that read began."""
    monotonic, sleep = time.monotonic, time.sleep
    with hotcache.Cache(url, namespace=NAMESPACE, local=True) as cache:
        _wait_serving(cache, KEY)
        local, k = cache._local, cache._key(KEY)
        assert local is not None
        get = cache.get
        conn.send(("up", None))
        while (old := conn.recv()) is not None:
            deadline = monotonic() + TIMEOUT
            while get(KEY) != old or local.get(k) is None:
                if monotonic() > deadline:
                    raise RuntimeError(f"{old!r} never stayed in the local tier")
            conn.send(("primed", None))
            deadline = monotonic() + TIMEOUT
            while True:
                start = monotonic()
                if get(KEY) != old:
                    break
                if start > deadline:
                    raise RuntimeError(f"the change of {old!r} never arrived")
                if release_gil:
                    sleep(0)
            conn.send(("seen", start))


def _propagation(
    worker: Worker, name: str, redis_url: str, tmpdir: str, changes: int
) -> Propagation:
    backend, release_gil, target = PROPAGATION[name]
    url = {
        "redis": redis_url,
        "redis-pubsub": f"{redis_url}?invalidation=pubsub",
        "sqlite": f"sqlite:///{os.path.join(tmpdir, 'propagation.db')}",
    }[backend]
    delays: list[float] = []
    with hotcache.Cache(url, namespace=NAMESPACE, local=False) as writer:
        writer.set(KEY, 0)
        worker.send(("propagation", (url, release_gil)))
        worker.expect("up")
        for version in range(changes):
            worker.send(version)
            worker.expect("primed")
            writer.set(KEY, version + 1)
            returned = time.monotonic()
            seen = worker.expect("seen")
            delays.append(max(0.0, seen - returned))
        worker.send(None)
        worker.expect("done")
        writer.delete(KEY)
    delays.sort()
    return Propagation(
        name,
        changes,
        percentile(delays, 0.5) * 1e6,
        percentile(delays, 0.99) * 1e6,
        delays[-1] * 1e6,
        target,
    )


# -- the workload --------------------------------------------------------------------

Read = tuple[float, int, int]  # start, key, version read
Write = tuple[float, float, int, int]  # start, end (set returned), key, version


def _names(contender: str, keys: int) -> list[str]:
    prefix = RAW_PREFIX if contender == "aside" else ""
    return [f"{prefix}item:{i}" for i in range(keys)]


def _zipf_weights(keys: int) -> list[float]:
    return list(itertools.accumulate(1.0 / (rank + 1) ** ZIPF_S for rank in range(keys)))


def _raw_redis(url: str) -> Any:
    """A redis-py client built as hotcache builds its own (same settings and parser)."""
    settings = resolve_settings(url, {})
    return make_client(settings.url, settings.backend_options, SyncDriver)


def _contender(
    contender: str, url: str, keys: int
) -> tuple[Callable[[int], Any], Callable[[int, int], Any], Callable[[], None]]:
    """Return read(key), write(key, version) and close() for one contender."""
    names = _names(contender, keys)
    if contender == "aside":
        client = _raw_redis(url)
        near: cachetools.TTLCache[str, int] = cachetools.TTLCache(maxsize=10 * keys, ttl=RIVAL_TTL)
        get, put, remember = client.get, client.set, near.__setitem__

        def read(i: int) -> Any:
            name = names[i]
            version = near.get(name)
            if version is None:
                version = int(get(name))
                remember(name, version)
            return version

        def write(i: int, version: int) -> Any:
            name = names[i]
            put(name, b"%d" % version)
            remember(name, version)

        return read, write, client.close

    cache = hotcache.Cache(url, namespace=NAMESPACE, local=contender == "two_tiers")
    if contender == "two_tiers":
        _wait_serving(cache, names[0])
    cache_get, cache_set = cache.get, cache.set

    def cache_read(i: int) -> Any:
        return cache_get(names[i])

    def cache_write(i: int, version: int) -> Any:
        return cache_set(names[i], version)

    def close() -> None:
        errors = cache.stats()["errors"]
        cache.close()
        if errors:
            raise RuntimeError(f"{errors} operations failed: the history is not trustworthy")

    return cache_read, cache_write, close


def _run_workload(
    conn: Any, barrier: Any, wid: int, contender: str, url: str, keys: int, ops: int
) -> tuple[float, list[Read], list[Write]]:
    """One process's share: warm every key, wait for the other, run ``ops`` operations."""
    rng = random.Random(SEED + wid)
    draws = rng.choices(range(keys), cum_weights=_zipf_weights(keys), k=ops)
    writing = [rng.random() < WRITE_SHARE for _ in range(ops)]
    read, write, close = _contender(contender, url, keys)
    reads: list[Read] = []
    writes: list[Write] = []
    try:
        for key in range(keys):
            read(key)
        monotonic = time.monotonic
        barrier.wait(TIMEOUT)
        began = monotonic()
        for i, key in enumerate(draws):
            start = monotonic()
            if writing[i]:
                version = (i + 1) * PROCESSES + wid  # unique; 0 is the seed
                write(key, version)
                writes.append((start, monotonic(), key, version))
            else:
                reads.append((start, key, read(key)))
        elapsed = monotonic() - began
    finally:
        close()
    return elapsed, reads, writes


def stale_lags(reads: Sequence[Read], writes: Sequence[Write]) -> list[float]:
    """Return, for each stale read, how long (seconds) before it began its version
    had been replaced.

    A read of version v (0: the seed, written before anything) is stale if some
    write of the key began after v's write returned and itself returned before
    the read began; its lag runs from the earliest such return.

    Raises:
        ValueError: a read returned a version nobody wrote.
    """
    returned = {version: end for _, end, _, version in writes}
    returned[0] = -math.inf
    per_key: dict[int, list[tuple[float, float]]] = {}
    for start, end, key, _ in writes:
        per_key.setdefault(key, []).append((start, end))
    # Per key: write starts in order, and the earliest return among the writes
    # from each position on.
    index: dict[int, tuple[list[float], list[float]]] = {}
    for key, spans in per_key.items():
        spans.sort()
        earliest = list(itertools.accumulate(reversed([end for _, end in spans]), min))
        index[key] = ([start for start, _ in spans], earliest[::-1])
    lags = []
    for began, key, version in reads:
        if version not in returned:
            raise ValueError(f"a read of key {key} returned {version!r}, which nobody wrote")
        starts, earliest = index.get(key, ([], []))
        i = bisect.bisect_right(starts, returned[version])
        if i < len(starts) and earliest[i] < began:
            lags.append(began - earliest[i])
    return lags


def _seed(contender: str, url: str, keys: int) -> Callable[[], None]:
    """Store version 0 under every key; return what removes them."""
    names = _names(contender, keys)
    if contender == "aside":
        client = _raw_redis(url)
        client.mset(dict.fromkeys(names, b"0"))

        def unseed() -> None:
            client.unlink(*names)
            client.close()

        return unseed
    cache = hotcache.Cache(url, namespace=NAMESPACE, local=False)
    cache.set_many(dict.fromkeys(names, 0))

    def clear() -> None:
        cache.clear()
        cache.close()

    return clear


def _workload(workers: list[Worker], redis_url: str, sizes: CoherenceSizes) -> list[WorkloadRow]:
    measured: dict[str, tuple[float, float, int, list[float]]] = {}
    for contender in CONTENDERS:
        unseed = _seed(contender, redis_url, sizes.keys)
        try:
            for wid, worker in enumerate(workers):
                worker.send(("workload", (wid, contender, redis_url, sizes.keys, sizes.ops)))
            outcomes = [worker.expect("done") for worker in workers]
        finally:
            unseed()
        reads = [r for _, rs, _ in outcomes for r in rs]
        writes = [w for _, _, ws in outcomes for w in ws]
        elapsed = [e for e, _, _ in outcomes]
        measured[contender] = (
            sum(elapsed) / len(elapsed) / sizes.ops * 1e9,
            sizes.ops * len(elapsed) / max(elapsed),
            len(reads),
            stale_lags(reads, writes),
        )
    baseline = measured["aside"][0]
    rows = []
    for contender, (label, target) in CONTENDERS.items():
        ns, rate, count, lags = measured[contender]
        late = sum(lag > STALE_BOUND for lag in lags)
        longest = max(lags, default=0.0) * 1e3
        rows.append(
            WorkloadRow(
                WORKLOAD, label, sizes.ops, ns, rate, ns / baseline, count, len(lags), late,
                longest, target,
            )
        )  # fmt: skip
    return rows


# -- the sections --------------------------------------------------------------------


@contextmanager
def _progress(name: str) -> Iterator[None]:
    print(f"  {name} ...", end="", file=sys.stderr, flush=True)
    started = time.perf_counter()
    yield
    print(f" {time.perf_counter() - started:.1f}s", file=sys.stderr)


def run_sections(
    sizes: CoherenceSizes, redis_url: str, tmpdir: str, only: str | None = None
) -> tuple[list[Propagation], list[WorkloadRow]]:
    """Run the multi-process sections whose names contain ``only`` (all: None)."""
    chosen = [name for name in PROPAGATION if not only or only in name]
    workload = not only or only in WORKLOAD
    if not chosen and not workload:
        return [], []
    propagation: list[Propagation] = []
    rows: list[WorkloadRow] = []
    with _workers(PROCESSES) as workers:
        for name in chosen:
            with _progress(name):
                propagation.append(_propagation(workers[0], name, redis_url, tmpdir, sizes.changes))
        if workload:
            with _progress(WORKLOAD):
                rows = _workload(workers, redis_url, sizes)
    return propagation, rows
