"""``stale_ttl``: past its lifetime an entry is still served, for ``stale_ttl``
seconds, while exactly one caller refreshes it in the background.

Lifetimes here are short and the tests sleep past them: a soft expiry is a wall
clock time, so sleeping longer only makes the entry more stale.
"""

from __future__ import annotations

import asyncio
import threading
import time

import pytest

from hotcache import AsyncCache, Cache
from processes import wait_for

LIFETIME = 0.2


def test_a_stale_value_is_served_while_one_caller_refreshes_it(url: str) -> None:
    with Cache(url) as cache:
        assert cache.get_or_set("k", lambda: "v1", ttl=LIFETIME, stale_ttl=30, jitter=0) == "v1"
        time.sleep(LIFETIME + 0.05)
        release = threading.Event()
        calls: list[int] = []

        def slow_refresh() -> str:
            calls.append(1)
            assert release.wait(30)
            return "v2"

        for _ in range(5):  # served at once: the refresh is still blocked
            got = cache.get_or_set("k", slow_refresh, ttl=LIFETIME, stale_ttl=30, jitter=0)
            assert got == "v1"
        assert cache.get("k") == "v1"
        wait_for(lambda: calls == [1], "the background refresh started")
        release.set()
        wait_for(lambda: cache.get("k") == "v2", "the refreshed value is stored")
        assert calls == [1]  # one refresh for the five stale reads


def test_past_the_stale_window_it_is_a_plain_miss(url: str) -> None:
    with Cache(url) as cache:
        cache.get_or_set("k", lambda: "v1", ttl=0.1, stale_ttl=0.1, jitter=0)
        time.sleep(0.25)
        assert cache.get_or_set("k", lambda: "v2", ttl=0.1, stale_ttl=0.1, jitter=0) == "v2"


def test_a_decorated_function_serves_stale_results_while_refreshing(url: str) -> None:
    with Cache(url) as cache:
        calls: list[int] = []
        release = threading.Event()

        @cache.cached(ttl=LIFETIME, stale_ttl=30, jitter=0)
        def report(day: int) -> str:
            calls.append(day)
            if len(calls) > 1:
                assert release.wait(30)
            return f"report {day} #{len(calls)}"

        assert report(1) == "report 1 #1"
        time.sleep(LIFETIME + 0.05)
        assert report(1) == "report 1 #1"  # stale, served at once
        assert report.get_cached(1) == "report 1 #1"
        wait_for(lambda: len(calls) == 2, "the background refresh started")
        release.set()
        wait_for(lambda: report(1) == "report 1 #2", "the refreshed result is stored")
        assert len(calls) == 2


def test_a_failing_refresh_keeps_serving_the_stale_value(url: str) -> None:
    with Cache(url) as cache:
        cache.get_or_set("k", lambda: "v1", ttl=LIFETIME, stale_ttl=30, jitter=0)
        time.sleep(LIFETIME + 0.05)
        failed = threading.Event()

        def broken() -> str:
            failed.set()
            raise LookupError("the database said no")

        assert cache.get_or_set("k", broken, ttl=LIFETIME, stale_ttl=30) == "v1"
        assert failed.wait(10)
        wait_for(lambda: not cache._refreshing, "the refresh gave up")
        assert cache.get_or_set("k", lambda: "v2", ttl=LIFETIME, stale_ttl=30) == "v1"
        wait_for(lambda: cache.get("k") == "v2", "the next refresh stored")


def test_async_refreshes_in_a_task(url: str) -> None:
    async def main() -> None:
        async with AsyncCache(url) as cache:
            assert await cache.get_or_set("k", lambda: "v1", ttl=LIFETIME, stale_ttl=30) == "v1"
            await asyncio.sleep(LIFETIME * 1.2 + 0.05)
            release = asyncio.Event()

            async def slow() -> str:
                await release.wait()
                return "v2"

            assert await cache.get_or_set("k", slow, ttl=LIFETIME, stale_ttl=30) == "v1"
            release.set()
            for _ in range(500):
                if await cache.get("k") == "v2":
                    break
                await asyncio.sleep(0.01)
            assert await cache.get("k") == "v2"

    asyncio.run(main())


def test_a_background_refresh_runs_under_the_callers_tenant(url: str) -> None:
    with Cache(url) as cache:
        cache.set("secret", "GLOBAL")
        with cache.tenant("acme"):
            cache.set("secret", "ACME")

            def view() -> str:
                return f"view of {cache.get('secret')}"

            assert cache.get_or_set("view", view, ttl=LIFETIME, stale_ttl=30, jitter=0) == (
                "view of ACME"
            )
            cache.set("secret", "ACME 2")
            time.sleep(LIFETIME + 0.05)
            assert cache.get_or_set("view", view, ttl=LIFETIME, stale_ttl=30) == "view of ACME"
            wait_for(lambda: cache.get("view") == "view of ACME 2", "the refresh under acme")


def test_a_slow_producer_stores_a_fresh_entry_not_a_stale_one(url: str) -> None:
    with Cache(url) as cache:

        def slow() -> str:
            time.sleep(LIFETIME + 0.1)  # longer than the lifetime it is stored for
            return "v1"

        cache.get_or_set("k", slow, ttl=LIFETIME, stale_ttl=30, jitter=0)
        raw = cache._backend.get(cache._key("k"))
        assert raw is not None
        _, meta = cache._codec.decode(cache._key("k"), raw)
        assert meta is not None and meta.soft_expiry is not None
        assert meta.soft_expiry > time.time()  # its lifetime counts from the store


def test_stale_ttl_and_local_only_are_refused_together(url: str) -> None:
    with Cache(url) as cache:
        with pytest.raises(ValueError, match="local_only"):
            cache.get_or_set("k", lambda: 1, stale_ttl=5, local_only=True)
        with pytest.raises(ValueError, match="local_only"):
            cache.cached(stale_ttl=5, local_only=True)(lambda: 1)
        with pytest.raises(ValueError):
            cache.get_or_set("k", lambda: 1, stale_ttl=-1)
