"""``cache.lock(name)``: exclusive across threads, tasks and processes; only the
owner releases or extends; a lock that expired while held is reported."""

from __future__ import annotations

import asyncio
import itertools
import threading
import time
from typing import Any

import pytest

from hotcache import (
    AsyncCache,
    BackendError,
    Cache,
    ConfigError,
    LockLost,
    LockTimeout,
)
from processes import SPAWN, run_workers, wait_for
from redis_server import RedisServer


def test_threads_hold_the_lock_one_at_a_time(url: str) -> None:
    with Cache(url) as cache:
        inside: list[int] = []
        overlaps: list[int] = []
        done = []
        start = threading.Barrier(6)

        def worker(n: int) -> None:
            start.wait()
            for _ in range(10):
                with cache.lock("counter", timeout=30):
                    if inside:
                        overlaps.append(n)
                    inside.append(n)
                    time.sleep(0)  # let another thread try meanwhile
                    inside.remove(n)
                    done.append(n)

        threads = [threading.Thread(target=worker, args=(n,)) for n in range(6)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=60)
        assert not overlaps
        assert len(done) == 60
        assert not cache.lock("counter").owned
        assert cache.get("counter") is None  # a lock is no entry


def critical_sections(wid: int, url: str, barrier: Any, rounds: int) -> list[tuple[float, float]]:
    spans = []
    with Cache(url) as cache:
        barrier.wait()
        for _ in range(rounds):
            with cache.lock("nightly", timeout=30):
                began = time.monotonic()
                time.sleep(0.002)  # the work; the spans of two holders must not meet
                spans.append((began, time.monotonic()))
    return spans


@pytest.mark.parametrize("store", ["sqlite", "redis"])
def test_processes_hold_the_lock_one_at_a_time(store: str, request: pytest.FixtureRequest) -> None:
    url = str(request.getfixturevalue(f"{store}_url"))
    results = run_workers(critical_sections, 4, url, SPAWN.Barrier(4), 10)
    spans = sorted(span for wid in results for span in results[wid])
    assert len(spans) == 40
    for (_, end), (began, _) in itertools.pairwise(spans):
        assert end <= began, "two processes held the lock at once"


def test_only_the_owner_releases_and_a_lost_lock_is_reported(url: str) -> None:
    with Cache(url) as cache:
        first = cache.lock("job", timeout=0.05)
        assert first.acquire()
        wait_for(lambda: not cache.lock("job").locked(), "the lock expires")
        second = cache.lock("job", timeout=30)
        assert second.acquire(blocking=False)
        with pytest.raises(LockLost):
            first.release()  # its token is gone: the new owner's lock is untouched
        assert second.locked() and second.owned
        second.release()
        assert not cache.lock("job").locked()
        with pytest.raises(RuntimeError):
            second.release()  # not held any more


def test_extend_keeps_the_lock_and_fails_once_it_was_lost(url: str) -> None:
    with Cache(url) as cache:
        lock = cache.lock("long", timeout=5)
        assert lock.acquire()
        lock.extend(60)
        left = cache._backend.ttl(lock.key)
        assert left is not None and 30 < left <= 60
        lock.release()
        short = cache.lock("long", timeout=0.05)
        assert short.acquire()
        wait_for(lambda: not cache.lock("long").locked(), "expiry")
        with pytest.raises(LockLost):
            short.extend()
        assert not short.owned


def test_not_blocking_and_bounded_waits(url: str) -> None:
    with Cache(url) as cache:
        holder = cache.lock("busy", timeout=30)
        assert holder.acquire()
        assert cache.lock("busy").acquire(blocking=False) is False
        began = time.monotonic()
        assert cache.lock("busy").acquire(blocking_timeout=0.05) is False
        assert time.monotonic() - began >= 0.05
        with pytest.raises(LockTimeout), cache.lock("busy", blocking_timeout=0.02):
            pytest.fail("entered a lock someone else holds")
        with pytest.raises(RuntimeError):
            holder.acquire()  # not re-entrant
        holder.release()
        with cache.lock("busy", blocking=False) as again:
            assert again.owned


def test_tasks_hold_the_lock_one_at_a_time(url: str) -> None:
    async def main() -> None:
        async with AsyncCache(url) as cache:
            inside: list[int] = []
            overlaps: list[int] = []

            async def worker(n: int) -> None:
                for _ in range(5):
                    async with cache.lock("async-counter", timeout=30):
                        if inside:
                            overlaps.append(n)
                        inside.append(n)
                        await asyncio.sleep(0)
                        inside.remove(n)

            await asyncio.gather(*(worker(n) for n in range(5)))
            assert not overlaps
            lock = cache.lock("async-counter", blocking=False)
            assert await lock.acquire()
            assert await lock.locked()
            await lock.extend(30)
            await lock.release()

    asyncio.run(main())


def test_bad_lock_arguments_are_refused() -> None:
    with Cache("memory://") as cache:
        for name in ("", None, 3):
            with pytest.raises(ValueError):
                cache.lock(name)  # type: ignore[arg-type]
        for timeout in (0, -1, None, float("nan"), "10"):
            with pytest.raises(ValueError):
                cache.lock("x", timeout=timeout)  # type: ignore[arg-type]
        with pytest.raises(ValueError):
            cache.lock("x", blocking_timeout=-1)
    with Cache("null://") as null, pytest.raises(ConfigError):
        null.lock("x")


def test_a_lock_cannot_fail_open(own_redis: RedisServer) -> None:
    with Cache(own_redis.url, timeout=0.1, connect_timeout=0.1) as cache:
        lock = cache.lock("x")
        assert lock.acquire()
        own_redis.kill()
        with pytest.raises(BackendError):
            lock.release()
        with pytest.raises(BackendError):
            cache.lock("y").acquire()


def test_clearing_the_cache_never_takes_a_lock_from_its_owner(url: str) -> None:
    with Cache(url) as cache:
        lock = cache.lock("job", timeout=30)
        assert lock.acquire()
        cache.set("entry", 1)
        cache.clear()
        assert cache.get("entry") is None
        assert lock.locked() and not cache.lock("job").acquire(blocking=False)
        lock.release()
