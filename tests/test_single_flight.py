"""Single-flight in a process: concurrent misses of one key run one producer.

Each test makes every caller miss before the producer returns (the producer
waits until the cache has counted that many misses), so the outcome does not
depend on scheduling: exactly one producer call, whatever the interleaving.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from typing import Any

import pytest

from hotcache import MISSING, AsyncCache, Cache
from processes import run_threads, wait_for

CALLERS = 12


def run_callers(call: Callable[[], Any], count: int = CALLERS) -> list[Any]:
    """Call ``call`` from ``count`` threads at once; return results or exceptions."""
    start = threading.Barrier(count)
    results: list[Any] = [None] * count

    def body(i: int) -> None:
        start.wait()
        try:
            results[i] = call()
        except Exception as exc:  # an outcome the test checks, not a failure
            results[i] = exc

    run_threads(body, count, 30, start.abort)
    return results


def test_threads_missing_one_key_run_the_producer_once(url: str) -> None:
    with Cache(url) as cache:
        calls: list[int] = []

        def producer() -> dict[str, int]:
            calls.append(1)
            wait_for(lambda: cache.stats()["misses"] >= CALLERS, "every caller missed")
            return {"n": 42}

        results = run_callers(lambda: cache.get_or_set("cold", producer, ttl=60))
        assert calls == [1]
        assert results == [{"n": 42}] * CALLERS
        assert cache.get("cold") == {"n": 42}


def test_every_waiter_gets_the_producers_exception(url: str) -> None:
    with Cache(url) as cache:
        calls: list[int] = []

        def producer() -> str:
            calls.append(1)
            wait_for(lambda: cache.stats()["misses"] >= CALLERS, "every caller missed")
            raise LookupError("the database said no")

        results = run_callers(lambda: cache.get_or_set("cold", producer))
        assert calls == [1]
        assert all(isinstance(r, LookupError) for r in results), results
        assert cache.get("cold") is None  # nothing stored
        assert cache.get_or_set("cold", lambda: "later") == "later"  # the next miss leads anew


def test_a_decorated_function_called_at_once_runs_once(url: str) -> None:
    with Cache(url) as cache:
        calls: list[int] = []

        @cache.cached(ttl=60)
        def report(day: int) -> str:
            calls.append(day)
            wait_for(lambda: cache.stats()["misses"] >= CALLERS, "every caller missed")
            return f"report {day}"

        assert run_callers(lambda: report(7)) == ["report 7"] * CALLERS
        assert calls == [7]


def test_flights_of_different_keys_do_not_wait_for_each_other(url: str) -> None:
    with Cache(url) as cache:
        started = {"a": threading.Event(), "b": threading.Event()}

        def producer(mine: str, other: str) -> str:
            started[mine].set()
            assert started[other].wait(10), "the other key's producer never ran alongside"
            return mine

        results: dict[str, Any] = {}
        threads = [
            threading.Thread(
                target=lambda key=key, other=other: results.__setitem__(
                    key, cache.get_or_set(key, lambda: producer(key, other))
                )
            )
            for key, other in (("a", "b"), ("b", "a"))
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=30)
        assert results == {"a": "a", "b": "b"}


def test_tasks_missing_one_key_run_the_producer_once(url: str) -> None:
    async def main() -> None:
        async with AsyncCache(url) as cache:
            calls: list[int] = []

            async def producer() -> str:
                calls.append(1)
                while cache.stats()["misses"] < CALLERS:
                    await asyncio.sleep(0.001)
                return "value"

            results = await asyncio.gather(
                *(cache.get_or_set("cold", producer) for _ in range(CALLERS))
            )
            assert calls == [1]
            assert results == ["value"] * CALLERS

    asyncio.run(main())


def test_a_cancelled_leader_hands_the_flight_to_a_waiter() -> None:
    async def main() -> None:
        async with AsyncCache("memory://") as cache:
            leaders: list[asyncio.Task[Any] | None] = []
            hold = asyncio.Event()

            async def producer() -> str:
                leaders.append(asyncio.current_task())
                if len(leaders) == 1:
                    await hold.wait()  # the first leader never finishes: it is cancelled
                return f"from leader {len(leaders)}"

            tasks = [asyncio.ensure_future(cache.get_or_set("k", producer)) for _ in range(5)]
            while not leaders or cache.stats()["misses"] < 5:
                await asyncio.sleep(0.001)
            first = leaders[0]
            assert first is not None
            first.cancel()
            done = await asyncio.gather(*tasks, return_exceptions=True)
            assert len(leaders) == 2  # one waiter took over, once
            assert sum(isinstance(r, asyncio.CancelledError) for r in done) == 1
            assert [r for r in done if not isinstance(r, BaseException)] == ["from leader 2"] * 4

    asyncio.run(main())


def test_a_thread_that_missed_while_the_flight_landed_looks_again(url: str) -> None:
    """The gap single-flight leaves open elsewhere: a lookup that missed just
    before the leader stored its value must not run the producer a second time."""
    with Cache(url) as cache:
        calls: list[int] = []
        late_missed = threading.Event()
        landed = threading.Event()

        def producer() -> str:
            calls.append(1)
            assert late_missed.wait(10)
            return "value"

        def late() -> Any:
            # Miss first (the leader has not stored yet), then join after it landed.
            seen = cache._flights.landings
            assert cache._lookup(cache._key("k"), (), [cache._key("k")])[0] is MISSING
            late_missed.set()
            assert landed.wait(10)
            return cache._flights.run(cache._key("k"), seen, lambda: pytest.fail("ran twice"))

        leader = threading.Thread(target=lambda: (cache.get_or_set("k", producer), landed.set()))
        leader.start()
        wait_for(lambda: bool(calls), "the leader runs the producer")
        from hotcache._sync.flight import RETRY

        assert late() is RETRY  # look again: the value is there now
        leader.join()
        assert calls == [1] and cache.get("k") == "value"
