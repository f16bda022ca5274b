"""Failure on a real Redis: killed, paused (hung) and back again.

The contract: calls fail open (get misses, set does nothing, get_or_set runs the
producer) behind a circuit breaker, so an outage costs at most one network
attempt per breaker window after the first ``threshold`` ones; the breaker logs
its state changes, not every call; ``on_error="raise"`` gives exceptions instead.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import redis

from hotcache import (
    AsyncCache,
    BackendError,
    BackendTimeout,
    BackendUnavailable,
    Cache,
)
from redis_server import RedisServer

THRESHOLD = 2
WINDOW = 0.1  # breaker window: short so that several windows pass in one test
TIMEOUT = 0.1  # socket timeout against a paused server
CALLS = 200


def sync_cache(server: RedisServer, **options: Any) -> Cache:
    options.setdefault("local", False)  # the local tier's failure contract: test_local_tier_failure
    options.setdefault("timeout", TIMEOUT)
    options.setdefault("connect_timeout", TIMEOUT)
    options.setdefault("breaker_threshold", THRESHOLD)
    options.setdefault("breaker_window", WINDOW)
    return Cache(server.url, **options)


def async_cache(server: RedisServer, **options: Any) -> AsyncCache:
    options.setdefault("local", False)
    options.setdefault("timeout", TIMEOUT)
    options.setdefault("connect_timeout", TIMEOUT)
    options.setdefault("breaker_threshold", THRESHOLD)
    options.setdefault("breaker_window", WINDOW)
    return AsyncCache(server.url, **options)


@pytest.fixture
def hotcache_log(caplog: pytest.LogCaptureFixture) -> Iterator[pytest.LogCaptureFixture]:
    caplog.set_level(logging.DEBUG, logger="hotcache")
    yield caplog


def warnings_of(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == "hotcache" and r.levelno >= logging.WARNING]


def wait_until_it_works(cache: Cache, deadline_s: float = 15.0) -> int:
    """Poll (set then get) until a value round-trips; return the attempts it took."""
    deadline = time.monotonic() + deadline_s
    attempt = 0
    while time.monotonic() < deadline:
        attempt += 1
        if cache.set("probe", attempt) and cache.get("probe") == attempt:
            return attempt
        time.sleep(0.01)
    raise AssertionError("the cache did not recover before the deadline")


class Outage:
    """Drive CALLS fail-open calls and check each answer; count backend calls."""

    def __init__(self) -> None:
        self.guarded = 0  # backend calls the facade attempted or short-circuited
        self.produced = 0

    def producer(self) -> str:
        self.produced += 1
        return f"fresh-{self.produced}"

    def run(self, cache: Cache) -> float:
        start = time.monotonic()
        for i in range(CALLS):
            kind = i % 5
            if kind == 0:
                assert cache.get("k", "dflt") == "dflt"
                self.guarded += 1
            elif kind == 1:
                assert cache.set("k", i) is False
                self.guarded += 1
            elif kind == 2:
                before = self.produced
                assert cache.get_or_set("g", self.producer) == f"fresh-{before + 1}"
                self.guarded += 1  # a read; no write follows a failed read
            elif kind == 3:
                assert cache.delete("k") is False
                self.guarded += 1
            else:
                assert cache.get_many(["k", "g", 1]) == {}
                self.guarded += 1
        assert self.produced == CALLS // 5
        return time.monotonic() - start


def assert_bounded(cache: Cache, outage: Outage, elapsed: float, base_errors: int = 0) -> None:
    stats = cache.stats()
    errors = stats["errors"] - base_errors
    # THRESHOLD failures open the breaker, then at most one probe per window.
    windows = math.floor(elapsed / WINDOW) + 1
    assert THRESHOLD <= errors <= THRESHOLD + windows, (errors, elapsed, stats)
    # Every other call was answered by the breaker, without I/O.
    assert stats["short_circuited"] == outage.guarded - errors, stats
    assert stats["breaker_trips"] == 1


# -- (a) killed server --------------------------------------------------------------------


def test_killed_server_fails_open_behind_the_breaker(
    own_redis: RedisServer, hotcache_log: pytest.LogCaptureFixture
) -> None:
    with sync_cache(own_redis) as cache:
        assert cache.set("k", "v") and cache.get("k") == "v"
        own_redis.kill()
        outage = Outage()
        elapsed = outage.run(cache)
        assert_bounded(cache, outage, elapsed)
        # Refusals are fast, and the breaker keeps the total far below a timeout per call.
        assert elapsed < CALLS * TIMEOUT / 10
        assert cache.stats()["hits"] == 1
        assert len(warnings_of(hotcache_log)) == 1  # "failing": one line for the outage


def test_killed_server_every_operation_fails_open(own_redis: RedisServer) -> None:
    with sync_cache(own_redis, breaker_window=60) as cache:
        cache.set("k", 1)
        own_redis.kill()
        assert cache.get("k") is None
        assert cache.get("k", 7) == 7
        assert cache.set("k", 2) is False
        assert cache.add("new", 2) is False
        assert cache.delete("k") is False
        assert cache.delete_many(["k", "j"]) == 0
        assert cache.exists("k") is False
        assert cache.touch("k", 10) is False
        assert cache.get_many(["k", "j"]) == {}
        assert cache.set_many({"a": 1, "b": 2}) is None
        assert cache.get_or_set("g", lambda: "made") == "made"
        assert cache.clear() == 0
        assert cache.hset("h", "f", 1) == 0
        assert cache.hget("h", "f", "d") == "d"
        assert cache.hgetall("h") == {}
        assert cache.hdel("h", "f") == 0
        stats = cache.stats()
        assert stats["errors"] == THRESHOLD
        assert stats["short_circuited"] > 10


def test_a_timeout_swallowed_is_not_a_stored_miss(own_redis: RedisServer) -> None:
    with sync_cache(own_redis) as cache:
        cache.set("k", "kept")
        own_redis.pause()
        try:
            assert cache.get("k") is None
        finally:
            own_redis.resume()
        wait_until_it_works(cache)
        assert cache.get("k") == "kept"


# -- (b) paused server: timeouts, not refusals ----------------------------------------------


def test_paused_server_fails_open_behind_the_breaker(
    own_redis: RedisServer, hotcache_log: pytest.LogCaptureFixture
) -> None:
    with sync_cache(own_redis) as cache:
        assert cache.set("k", "v")
        own_redis.pause()
        try:
            start = time.monotonic()
            assert cache.get("k", "dflt") == "dflt"  # one full timeout, not a refusal
            first = time.monotonic() - start
            assert first >= TIMEOUT * 0.9
            errors_before = cache.stats()["errors"]
            assert errors_before == 1
            outage = Outage()
            elapsed = outage.run(cache)
            outage.guarded += 1
            assert_bounded(cache, outage, elapsed + first)
            # At most one timeout per window (plus the threshold), never one per call.
            assert elapsed < CALLS * TIMEOUT / 4
        finally:
            own_redis.resume()
        assert len(warnings_of(hotcache_log)) <= 3


def test_paused_server_get_or_set_pays_at_most_threshold_timeouts(
    own_redis: RedisServer,
) -> None:
    with sync_cache(own_redis, breaker_window=60) as cache:
        cache.set("warm", 1)
        own_redis.pause()
        try:
            start = time.monotonic()
            assert cache.get_or_set("g", lambda: "made") == "made"
            for _ in range(25):
                assert cache.get_or_set("g", lambda: "again") == "again"
            elapsed = time.monotonic() - start
        finally:
            own_redis.resume()
        assert cache.stats()["errors"] == THRESHOLD
        assert elapsed < 2.0  # THRESHOLD timeouts; one per call would be > 5 s


# -- (c) recovery, and the log ----------------------------------------------------------------


def run_outage_and_recover(
    server: RedisServer,
    caplog: pytest.LogCaptureFixture,
    break_it: Callable[[], None],
    mend_it: Callable[[], None],
) -> None:
    with sync_cache(server) as cache:
        assert cache.set("k", "before")
        break_it()
        try:
            outage = Outage()
            elapsed = outage.run(cache)
            assert_bounded(cache, outage, elapsed)
            during = warnings_of(caplog)
            assert 1 <= len(during) <= 3, [r.getMessage() for r in during]
            assert not any(r.exc_info for r in caplog.records if r.name == "hotcache")
        finally:
            mend_it()
        wait_until_it_works(cache)
        after = warnings_of(caplog)[len(during) :]
        again = [r for r in after if "answers again" in r.getMessage()]
        assert len(again) == 1, [r.getMessage() for r in after]
        assert len(after) == 1
        assert cache.set("k", "after") and cache.get("k") == "after"
        assert cache.stats()["breaker_trips"] == 1
        assert not cache._breaker.is_open
        # Closed again: calls reach Redis, none is short-circuited any more.
        skipped = cache.stats()["short_circuited"]
        for i in range(20):
            assert cache.set(i, i) and cache.get(i) == i
        assert cache.stats()["short_circuited"] == skipped


def test_recovers_after_restart(
    own_redis: RedisServer, hotcache_log: pytest.LogCaptureFixture
) -> None:
    run_outage_and_recover(own_redis, hotcache_log, own_redis.kill, own_redis.start)


def test_recovers_after_resume(
    own_redis: RedisServer, hotcache_log: pytest.LogCaptureFixture
) -> None:
    run_outage_and_recover(own_redis, hotcache_log, own_redis.pause, own_redis.resume)


def test_values_written_after_recovery_are_visible_to_other_clients(
    own_redis: RedisServer,
) -> None:
    with sync_cache(own_redis) as cache, sync_cache(own_redis) as other:
        own_redis.restart()
        wait_until_it_works(cache)
        cache.set("shared", {"v": 1})
        assert wait_until_value(other, "shared") == {"v": 1}


def wait_until_value(cache: Cache, key: str, deadline_s: float = 15.0) -> Any:
    deadline = time.monotonic() + deadline_s
    while time.monotonic() < deadline:
        value = cache.get(key)
        if value is not None:
            return value
        time.sleep(0.01)
    raise AssertionError(f"{key!r} never became readable")


# -- (d) on_error="raise" -----------------------------------------------------------------------


def test_raise_mode_killed_server(own_redis: RedisServer) -> None:
    with sync_cache(own_redis, on_error="raise", breaker_window=60) as cache:
        cache.set("k", 1)
        own_redis.kill()
        for call in (lambda: cache.get("k"), lambda: cache.set("k", 2)):
            with pytest.raises(BackendUnavailable) as info:
                call()
            assert isinstance(info.value, BackendError)
            assert isinstance(info.value.__cause__, redis.exceptions.ConnectionError)
        assert cache.stats()["errors"] == THRESHOLD
        assert cache._breaker.is_open
        # Open: fail fast, no I/O, no driver error behind it.
        for call in (
            lambda: cache.get("k"),
            lambda: cache.delete("k"),
            lambda: cache.get_many(["k"]),
            lambda: cache.get_or_set("g", lambda: 1),
        ):
            with pytest.raises(BackendUnavailable, match="circuit breaker") as info:
                call()
            assert info.value.__cause__ is None
        stats = cache.stats()
        assert stats["errors"] == THRESHOLD
        assert stats["short_circuited"] == 4


def test_raise_mode_paused_server_times_out(own_redis: RedisServer) -> None:
    with sync_cache(own_redis, on_error="raise", breaker_window=60) as cache:
        cache.set("k", 1)
        own_redis.pause()
        try:
            with pytest.raises(BackendTimeout) as info:
                cache.get("k")
            assert isinstance(info.value, TimeoutError)
            assert isinstance(info.value, BackendError)
            assert isinstance(info.value.__cause__, redis.exceptions.TimeoutError)
            with pytest.raises(BackendError):
                cache.set("k", 2)
            # Open now: the next call must not wait for a timeout (proof of no I/O).
            start = time.monotonic()
            with pytest.raises(BackendUnavailable, match="circuit breaker"):
                cache.get("k")
            assert time.monotonic() - start < TIMEOUT / 2
        finally:
            own_redis.resume()
        stats = cache.stats()
        assert (stats["errors"], stats["short_circuited"]) == (THRESHOLD, 1)


def test_raise_mode_producer_is_not_called_when_the_read_fails(own_redis: RedisServer) -> None:
    with sync_cache(own_redis, on_error="raise") as cache:
        own_redis.kill()
        calls: list[int] = []
        with pytest.raises(BackendUnavailable):
            cache.get_or_set("g", lambda: calls.append(1))
        assert calls == []


# -- (e) counters cannot fail open ----------------------------------------------------------------


def test_incr_raises_even_when_failing_open(own_redis: RedisServer) -> None:
    with sync_cache(own_redis, breaker_window=60) as cache:
        assert cache.incr("n") == 1
        own_redis.kill()
        with pytest.raises(BackendUnavailable) as info:
            cache.incr("n")
        assert isinstance(info.value.__cause__, redis.exceptions.ConnectionError)
        with pytest.raises(BackendUnavailable):
            cache.decr("n")
        assert cache._breaker.is_open
        errors = cache.stats()["errors"]
        with pytest.raises(BackendUnavailable, match="circuit breaker"):
            cache.incr("n")
        assert cache.stats()["errors"] == errors
        # Everything else still fails open next to it.
        assert cache.get("n") is None


def test_incr_times_out_on_a_paused_server(own_redis: RedisServer) -> None:
    with sync_cache(own_redis, breaker_window=60) as cache:
        cache.incr("n")
        own_redis.pause()
        try:
            with pytest.raises(BackendTimeout):
                cache.incr("n")
        finally:
            own_redis.resume()
        wait_until_it_works(cache)
        # A timeout is an unknown outcome: the INCR sat in the paused server's socket
        # buffer and may have run on resume. Either way it ran at most once.
        assert cache.incr("n") in {2, 3}


# -- (f) the async face -------------------------------------------------------------------------


def test_async_killed_server_fails_open(
    own_redis: RedisServer, hotcache_log: pytest.LogCaptureFixture
) -> None:
    async def main() -> None:
        async with async_cache(own_redis) as cache:
            assert await cache.set("k", "v")
            assert await cache.get("k") == "v"
            own_redis.kill()
            produced = 0

            async def producer() -> int:
                nonlocal produced
                produced += 1
                return produced

            start = time.monotonic()
            guarded = 0
            for i in range(CALLS // 4):
                assert await cache.get("k", "d") == "d"
                assert await cache.set("k", i) is False
                assert await cache.get_or_set("g", producer) == produced
                assert await cache.get_or_set("s", lambda: "sync") == "sync"
                assert await cache.delete("k") is False
                assert await cache.get_many(["k", "g"]) == {}
                guarded += 6  # get_or_set writes nothing after a failed read
            elapsed = time.monotonic() - start
            assert produced == CALLS // 4
            stats = cache.stats()
            windows = math.floor(elapsed / WINDOW) + 1
            assert THRESHOLD <= stats["errors"] <= THRESHOLD + windows
            assert stats["short_circuited"] == guarded - stats["errors"]
            assert stats["breaker_trips"] == 1
            with pytest.raises(BackendUnavailable):
                await cache.incr("n")

            own_redis.start()
            deadline = time.monotonic() + 15
            while not (await cache.set("p", 1) and await cache.get("p") == 1):
                assert time.monotonic() < deadline, "no recovery"
                await asyncio.sleep(0.01)

    asyncio.run(main())
    messages = [r.getMessage() for r in warnings_of(hotcache_log)]
    assert len(messages) == 2, messages
    assert "answers again" in messages[-1]


def test_async_paused_server_fails_open(own_redis: RedisServer) -> None:
    async def main() -> None:
        async with async_cache(own_redis, breaker_window=60) as cache:
            await cache.set("k", 1)
            own_redis.pause()
            try:
                start = time.monotonic()
                assert await cache.get("k") is None
                assert await cache.set("k", 2) is False
                for _ in range(50):
                    assert await cache.get_or_set("g", lambda: "made") == "made"
                elapsed = time.monotonic() - start
            finally:
                own_redis.resume()
            assert cache.stats()["errors"] == THRESHOLD
            assert elapsed < 2.0  # THRESHOLD timeouts; one per call would be > 5 s

    asyncio.run(main())


def test_async_raise_mode(own_redis: RedisServer) -> None:
    async def main() -> None:
        async with async_cache(own_redis, on_error="raise", breaker_window=60) as cache:
            await cache.set("k", 1)
            own_redis.kill()
            with pytest.raises(BackendUnavailable) as info:
                await cache.get("k")
            assert isinstance(info.value.__cause__, redis.exceptions.ConnectionError)
            with pytest.raises(BackendUnavailable):
                await cache.set("k", 1)
            with pytest.raises(BackendUnavailable, match="circuit breaker"):
                await cache.get("k")
            assert cache.stats()["short_circuited"] == 1

    asyncio.run(main())


def test_async_cancelled_probe_does_not_wedge_the_breaker(own_redis: RedisServer) -> None:
    """A request cancelled mid-probe must not leave the breaker open for good."""

    async def main() -> None:
        async with async_cache(own_redis, timeout=0.3) as cache:
            await cache.set("k", 1)
            own_redis.pause()
            try:
                for _ in range(THRESHOLD):
                    await cache.get("k")  # time out: the breaker opens
                assert cache._breaker.is_open
                await asyncio.sleep(WINDOW * 1.5)
                # The probe hangs on the paused server; its caller gives up first.
                with pytest.raises(asyncio.TimeoutError):
                    await asyncio.wait_for(cache.get("k"), 0.05)
            finally:
                own_redis.resume()
            deadline = time.monotonic() + 15
            while await cache.get("k") != 1:
                assert time.monotonic() < deadline, "the breaker never let a probe through"
                await asyncio.sleep(0.02)
            assert not cache._breaker.is_open

    asyncio.run(main())


# -- more callers than connections is load, not an outage ------------------------------------


def test_more_concurrent_tasks_than_pool_connections_is_not_an_outage(
    redis_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    """Callers past ``max_connections`` wait for a connection; nothing trips or logs."""
    caplog.set_level(logging.WARNING, logger="hotcache")

    async def main() -> tuple[list[Any], dict[str, int]]:
        async with AsyncCache(redis_url, max_connections=8, timeout=2.0) as cache:
            assert await cache.set("k", "v")
            values = await asyncio.gather(*(cache.get("k") for _ in range(150)))
            return values, cache.stats()

    values, stats = asyncio.run(main())
    assert values == ["v"] * 150
    assert (stats["errors"], stats["breaker_trips"]) == (0, 0), stats
    assert [r for r in caplog.records if r.name == "hotcache"] == []


def test_more_threads_than_pool_connections_is_not_an_outage(redis_url: str) -> None:
    import threading

    with Cache(redis_url, max_connections=2, timeout=2.0) as cache:
        cache.set("k", "v")
        barrier = threading.Barrier(24)
        got: list[Any] = []

        def read() -> None:
            barrier.wait()
            got.extend(cache.get("k") for _ in range(20))

        threads = [threading.Thread(target=read) for _ in range(24)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert got == ["v"] * 24 * 20
        assert cache.stats()["errors"] == 0


def test_foreign_non_utf8_keys_and_fields_do_not_break_calls(redis_url: str) -> None:
    """Other clients may write any bytes into our namespace; clear and hgetall cope."""
    raw = redis.Redis.from_url(redis_url)
    with Cache(redis_url) as cache:
        cache.set("mine", 1)
        raw.set(b"hc:\xff\xfe", b"foreign")
        raw.hset(b"hc:h", b"\xff", b"x")
        raw.hset(b"hc:h", b"ok", cache._codec.encode("hc:h", "fine", field="ok"))
        assert cache.hgetall("h")["ok"] == "fine"
        assert cache.clear() == 3
        assert raw.exists(b"hc:\xff\xfe") == 0
    raw.close()
