"""Leases across processes (SQLite and Redis): one producer call per cold key.

Separate processes, or separate ``Cache`` objects in one process (each has its
own single-flight), contend for a key's lease: the holder produces and writes
under it; the others wait for its value. A holder that dies lets the lease
expire, and one waiter takes over; a holder whose lease expired cannot
overwrite what the next holder wrote.
"""

from __future__ import annotations

import asyncio
import os
import signal
import threading
import time
from typing import Any

import pytest

from hotcache import MISSING, AsyncCache, Cache
from hotcache._core.keys import lease_key
from hotcache._sync.flight import RETRY
from processes import SPAWN, run_threads, run_workers, wait_for

PROCS, THREADS = 4, 5


@pytest.fixture(params=["sqlite", "redis"])
def store(request: pytest.FixtureRequest) -> str:
    return str(request.getfixturevalue(f"{request.param}_url"))


def contender(wid: int, url: str, barrier: Any) -> list[Any]:
    """THREADS threads of one process ask for one cold key at once."""
    with Cache(url) as cache:
        barrier.wait()

        def producer() -> str:
            cache.incr("calls")
            # Long enough for every caller of every process to have missed.
            wait_for(lambda: cache.get("arrived", 0) >= PROCS * THREADS, "everyone arrived")
            return f"made by {wid}"

        results: list[Any] = []

        def call(_: int) -> None:
            cache.incr("arrived")
            results.append(cache.get_or_set("cold", producer, ttl=60))

        run_threads(call, THREADS, 60, lambda: None)
        return results


def test_processes_missing_one_key_run_the_producer_once(store: str) -> None:
    results = run_workers(contender, PROCS, store, SPAWN.Barrier(PROCS))
    values = [value for wid in results for value in results[wid]]
    assert len(values) == PROCS * THREADS
    assert len(set(values)) == 1, values  # everyone got the one value produced
    with Cache(store) as cache:
        assert cache.get("calls") == 1
        assert cache.get("cold") == values[0]
        assert not cache._backend.exists(lease_key(cache._key("cold")))  # spent


def hold_forever(wid: int, url: str, started: Any) -> None:
    with Cache(url, lease_timeout=0.5) as cache:

        def producer() -> str:
            started.set()
            time.sleep(3600)  # killed before it returns
            return "never"

        cache.get_or_set("k", producer)


def test_a_dead_holders_lease_expires_and_a_waiter_takes_over(store: str) -> None:
    started = SPAWN.Event()
    holder = SPAWN.Process(target=hold_forever, args=(0, store, started))
    holder.start()
    try:
        assert started.wait(30), "the holder never started producing"
        assert holder.pid is not None
        os.kill(holder.pid, signal.SIGKILL)
        holder.join(10)
        with Cache(store, lease_timeout=0.5) as cache:
            assert cache.get_or_set("k", lambda: "taken over") == "taken over"
            assert cache.get("k") == "taken over"
    finally:
        if holder.is_alive():
            holder.kill()


def test_a_holder_whose_lease_expired_cannot_overwrite_the_next_holders_value(
    store: str,
) -> None:
    with Cache(store, lease_timeout=0.2) as first, Cache(store, lease_timeout=0.2) as second:
        release = threading.Event()
        returned: list[str] = []

        def slow() -> str:
            assert release.wait(30)
            return "stale"

        thread = threading.Thread(target=lambda: returned.append(first.get_or_set("k", slow)))
        thread.start()
        lease = lease_key(first._key("k"))
        wait_for(lambda: first._backend.exists(lease), "the first holder has the lease")
        wait_for(lambda: not first._backend.exists(lease), "its lease expires")
        assert second.get_or_set("k", lambda: "fresh") == "fresh"
        release.set()
        thread.join(30)
        assert returned == ["stale"]  # its caller still gets what it computed...
        assert second.get("k") == "fresh" and first.get("k") == "fresh"  # ...but never stored


def test_a_producer_that_fails_hands_the_lease_on_at_once(store: str) -> None:
    with Cache(store, lease_timeout=60) as first, Cache(store, lease_timeout=60) as second:
        failing = threading.Event()
        go = threading.Event()

        def broken() -> str:
            failing.set()
            assert go.wait(30)
            raise LookupError("the database said no")

        errors: list[BaseException] = []

        def call() -> None:
            try:
                first.get_or_set("k", broken)
            except LookupError as exc:
                errors.append(exc)

        thread = threading.Thread(target=call)
        thread.start()
        assert failing.wait(30)
        waiter: list[str] = []
        other = threading.Thread(target=lambda: waiter.append(second.get_or_set("k", lambda: "ok")))
        other.start()
        go.set()
        thread.join(30)
        other.join(30)  # well before the 60 s lease would have expired
        assert len(errors) == 1 and waiter == ["ok"]


def test_a_bounded_wait_computes_rather_than_waiting_for_ever(store: str) -> None:
    with (
        Cache(store, lease_timeout=60) as first,
        Cache(store, lease_timeout=60, lease_wait=0.05) as impatient,
    ):
        release = threading.Event()
        thread = threading.Thread(
            target=lambda: first.get_or_set("k", lambda: release.wait(30) and "slow")
        )
        thread.start()
        lease = lease_key(first._key("k"))
        wait_for(lambda: first._backend.exists(lease), "the first holder has the lease")
        got: list[str] = []
        caller = threading.Thread(
            target=lambda: got.append(impatient.get_or_set("k", lambda: "own"))
        )
        caller.start()
        caller.join(10)  # the holder holds on for good (until released below)
        assert got == ["own"], "the bounded wait did not end"
        assert first._backend.exists(lease)  # it computed without waiting for the holder
        release.set()
        thread.join(30)


def test_decorated_calls_across_caches_run_once(store: str) -> None:
    caches = [Cache(store) for _ in range(3)]
    try:
        calls: list[int] = []

        def report(day: int) -> str:
            calls.append(day)
            wait_for(lambda: len(started) == 3, "every caller started")
            return f"report {day}"

        started: list[int] = []
        decorated = [cache.cached(report) for cache in caches]
        results: list[str] = []

        def call(n: int) -> None:
            started.append(n)
            results.append(decorated[n](7))

        threads = [threading.Thread(target=call, args=(n,)) for n in range(3)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(30)
        assert results == ["report 7"] * 3
        assert calls == [7]
    finally:
        for cache in caches:
            cache.close()


def test_async_caches_share_one_producer_call(store: str) -> None:
    async def main() -> None:
        caches = [AsyncCache(store) for _ in range(3)]
        try:
            calls: list[int] = []

            async def producer() -> str:
                calls.append(1)
                await asyncio.sleep(0.05)  # the others (if they missed) find the lease taken
                return "value"

            results = await asyncio.gather(*(c.get_or_set("k", producer) for c in caches))
            assert results == ["value"] * 3
            assert calls == [1]
        finally:
            for cache in caches:
                await cache.close()

    asyncio.run(main())


@pytest.mark.parametrize("change", ["delete", "set", "write_through", "delete_many"])
def test_a_result_computed_before_a_write_is_not_stored_after_it(url: str, change: str) -> None:
    """The stale set: a producer starts, the key is written or deleted, then the
    producer returns. Its result predates the change and must stay out."""
    with Cache(url) as cache:
        started, release = threading.Event(), threading.Event()
        returned: list[str] = []

        def slow() -> str:
            started.set()
            assert release.wait(30)
            return "computed before the change"

        thread = threading.Thread(target=lambda: returned.append(cache.get_or_set("k", slow)))
        thread.start()
        assert started.wait(30)
        expected: str | None = None
        if change == "delete":
            cache.delete("k")
        elif change == "delete_many":
            cache.delete_many(["k", "other"])
        elif change == "set":
            cache.set("k", expected := "written meanwhile")
        else:
            cache.write_through("k", lambda: "saved meanwhile")
            expected = "saved meanwhile"
        release.set()
        thread.join(30)
        assert returned == ["computed before the change"]  # its caller still gets it
        assert cache.get("k") == expected


def test_an_invalidated_call_does_not_store_its_running_result(url: str) -> None:
    with Cache(url) as cache:
        started, release = threading.Event(), threading.Event()

        @cache.cached
        def report(day: int) -> str:
            started.set()
            assert release.wait(30)
            return f"report {day} from before"

        thread = threading.Thread(target=report, args=(7,))
        thread.start()
        assert started.wait(30)
        report.invalidate(7)
        release.set()
        thread.join(30)
        assert report.get_cached(7) is MISSING


def test_a_request_scope_does_not_hide_the_value_a_flight_stored(url: str) -> None:
    """A late caller missed, then found the flight landed: its next look must go
    past its request scope (which remembers the miss) to the value just stored."""
    with Cache(url) as cache, cache.request_scope():
        calls: list[str] = []
        k = cache._key("k")
        seen = cache._flights.landings
        assert cache._lookup(k, (), [k])[0] is MISSING  # the scope now holds the miss
        cache.get_or_set("k", lambda: calls.append("leader") or "value")  # lands
        assert cache._flights.run(k, seen, lambda: calls.append("late")) is RETRY
        cache._again(k)
        assert cache._lookup(k, (), [k])[0] == "value"
        assert calls == ["leader"]


def test_a_cancelled_lease_taker_gives_the_lease_back(store: str) -> None:
    async def main() -> None:
        async with AsyncCache(store) as cache:
            started = asyncio.Event()

            async def forever() -> str:
                started.set()
                await asyncio.Event().wait()
                return "never"

            task = asyncio.ensure_future(cache.get_or_set("k", forever))
            await started.wait()
            lease = lease_key(cache._key("k"))
            assert await cache._backend.exists(lease)
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            assert not await cache._backend.exists(lease)  # no one waits for its expiry

    asyncio.run(main())


def test_flights_of_one_cache_on_two_event_loops_stay_apart() -> None:
    """An event of one loop cannot wake a task of another: each loop's callers
    share flights among themselves only."""
    cache = Cache("memory://")
    calls: list[int] = []

    @cache.cached
    async def slow(x: int) -> int:
        calls.append(x)
        await asyncio.sleep(0.05)
        return x

    done: list[list[int]] = []

    def in_a_loop_of_its_own() -> None:
        async def main() -> list[int]:
            return list(await asyncio.gather(slow(1), slow(1)))

        done.append(asyncio.run(main()))  # a cross-loop wake-up would raise or hang

    threads = [threading.Thread(target=in_a_loop_of_its_own) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert done == [[1, 1], [1, 1]]
    assert 1 <= len(calls) <= 2  # at most one call per loop (the lease may make it one)
    cache.close()


def test_a_backend_object_without_leases_still_serves_get_or_set() -> None:
    """A backend written before ``set_leased`` existed (given as an object) keeps
    working: no leases, single-flight only."""
    from hotcache.backends.memory import MemoryBackend

    class OlderBackend:
        def __init__(self) -> None:
            self.inner = MemoryBackend()

        def __getattr__(self, name: str) -> Any:
            if name in {"set_leased", "delete_if", "touch_if"}:
                raise AttributeError(name)
            return getattr(self.inner, name)

    with Cache(backend=OlderBackend()) as cache:  # type: ignore[arg-type]
        assert not cache._leases
        assert cache.get_or_set("k", lambda: "v") == "v"
        assert cache.get_or_set("k", lambda: "other") == "v"
        cache.delete("k")
        assert cache.get("k") is None
