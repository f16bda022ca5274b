"""Caches of one process on one store and namespace share one tier and one feed."""

from __future__ import annotations

import threading
import time

import pytest

from hotcache import AsyncCache, Cache


def wait_serving(cache: Cache | AsyncCache) -> None:
    deadline = time.monotonic() + 5
    while not (cache._feed is not None and cache._feed.sync()):
        assert time.monotonic() < deadline, "the feed never came up"
        time.sleep(0.005)


def feed_threads() -> int:
    return sum(1 for t in threading.enumerate() if t.name == "hotcache-invalidations")


@pytest.mark.parametrize("store", ["sqlite", "redis"])
def test_a_write_through_one_cache_is_read_at_once_through_another(
    store: str, request: pytest.FixtureRequest
) -> None:
    base = request.getfixturevalue("sqlite_url" if store == "sqlite" else "redis_url")
    url = f"{base}{'&' if '?' in base else '?'}local=true"
    threads = feed_threads()
    a, b = Cache(url), Cache(url)
    assert a._local is b._local and a._feed is b._feed
    wait_serving(b)
    for i in range(50):
        assert b.get("k") == (i - 1 if i else None)  # b keeps a copy...
        a.set("k", i)  # ...which a's write replaces at once, no propagation delay
    assert b.get("k") == 49
    other = Cache(url, namespace="other")
    assert other._local is not a._local  # another namespace, another tier
    other.close()
    a.close()
    assert b._local is not None
    a2 = Cache(url)
    a2.set("k", "after")
    assert b.get("k") == "after"
    a2.close()
    b.close()
    if store == "redis":
        deadline = time.monotonic() + 5
        while feed_threads() > threads:  # the last cache stopped the thread
            assert time.monotonic() < deadline
            time.sleep(0.01)


def test_a_cache_dropped_without_close_stops_its_feed(redis_url: str) -> None:
    import gc

    threads = feed_threads()
    for i in range(3):
        cache = Cache(f"{redis_url}?local=true", namespace=f"dropped-{i}")
        wait_serving(cache)
        del cache
    gc.collect()
    deadline = time.monotonic() + 5
    while feed_threads() > threads:
        assert time.monotonic() < deadline, "a dropped cache kept its feed thread"
        time.sleep(0.01)


def test_the_tier_evicts_by_its_own_bounds_and_policy(sqlite_url: str) -> None:
    for policy, frequent_kept in (("lru", False), ("lfu", True)):
        with Cache(sqlite_url, namespace=policy, local_max_entries=2, local_policy=policy) as c:
            assert c._local is not None

            def held(key: str, cache: Cache = c) -> bool:
                assert cache._local is not None
                return cache._local.get(cache._key(key)) is not None

            for key in ("frequent", "b", "c"):
                c.set(key, key)
            for _ in range(5):
                assert c.get("frequent") == "frequent"  # read often, long ago
            assert c.get("b") == "b"
            assert c.get("c") == "c"  # a third entry: one of the other two must go
            assert len(c._local) == 2
            assert held("frequent") is frequent_kept, policy


def test_a_bad_local_policy_is_refused(sqlite_url: str) -> None:
    from hotcache import ConfigError

    with pytest.raises(ConfigError, match="local_policy"):
        Cache(sqlite_url, local_policy="random")


@pytest.mark.timeout(60, method="thread")  # a deadlock ignores signals: end the run
def test_caches_dropped_in_cycles_never_deadlock_their_registry(sqlite_url: str) -> None:
    """A cache and its async twin form a cycle: dropped without close(), the
    cyclic GC runs its finalizer on whatever thread allocates next, possibly
    inside the registry's own lock. That used to hang this loop."""
    import gc

    for i in range(300):
        cache = Cache(sqlite_url, namespace=f"a{i}")

        @cache.cached
        async def f(x: int) -> int:
            return x

        del cache, f
        Cache(sqlite_url, namespace=f"b{i}").close()
    gc.collect()
    from hotcache import coherence

    path = sqlite_url.removeprefix("sqlite:///")
    assert not coherence._pending
    assert not [place for place in coherence._shared if str(place[1]) == path]  # all detached
