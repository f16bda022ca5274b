"""The local tier when its feed fails: a killed or paused Redis, and fork().

The contract (docs/coherence.md): while the invalidation feed is down the tier
is emptied and bypassed, so calls go to the shared tier and fail open there
behind the breaker; the tier serves again, starting empty, once the feed is
back. The feed logs its state changes once each, like the breaker.
"""

from __future__ import annotations

import logging
import os
import re
import threading

import pytest

from hotcache import Cache
from processes import exit_code, in_child, serving, wait_for
from redis_server import RedisServer

FAST = {"timeout": 0.1, "connect_timeout": 0.1, "breaker_threshold": 2, "breaker_window": 0.1}


def read_locally(cache: Cache, key: str) -> tuple[object, bool]:
    """Read ``key`` once the changes made so far (our own writes' too) reached
    the tier; return the value and whether the tier now holds it."""
    assert cache._local is not None and cache._feed is not None
    cache._feed.barrier()
    value = cache.get(key)
    return value, cache._local.get(cache._key(key)) is not None


def warnings_of(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [
        r.getMessage()
        for r in caplog.records
        if r.name == "hotcache" and r.levelno >= logging.WARNING
    ]


def test_the_local_tier_is_on_by_default_for_redis_and_sqlite(
    redis_url: str, sqlite_url: str
) -> None:
    for url in (redis_url, sqlite_url):
        with Cache(url) as cache:
            assert cache._local is not None
        with Cache(url, local=False) as cache:
            assert cache._local is None
    with Cache("memory://") as cache:
        assert cache._local is None  # the store is in-process already


def test_a_killed_server_empties_and_bypasses_the_tier_until_it_is_back(
    own_redis: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="hotcache")
    with Cache(own_redis.url, **FAST) as cache:
        wait_for(lambda: serving(cache), "the feed is up")
        cache.set("k", "v")
        assert read_locally(cache, "k") == ("v", True)
        own_redis.kill()
        wait_for(lambda: not serving(cache), "the feed noticed")
        assert cache._local is not None and len(cache._local) == 0
        for _ in range(20):
            assert cache.get("k", "dflt") == "dflt"  # fails open; nothing local
        assert cache.stats()["breaker_trips"] == 1
        own_redis.restart()
        wait_for(lambda: serving(cache), "the feed is back")
        assert cache.get("k") is None  # the restarted server lost the entry
        wait_for(lambda: cache.set("k", "again"), "the breaker lets writes through")
        assert read_locally(cache, "k") == ("again", True)
    lines = warnings_of(caplog)
    # One line per state change: feed lost, breaker open, feed back, breaker closed.
    assert sum(bool(re.search(r"invalidations from \S+ lost", line)) for line in lines) == 1
    assert sum(bool(re.search(r"invalidations from \S+ back$", line)) for line in lines) == 1
    assert sum("failing" in line for line in lines) == 1
    assert len(lines) <= 5, lines  # at most one "unavailable" between lost and back


def test_a_paused_server_is_noticed_by_the_feed_and_the_tier_resumes_after(
    own_redis: RedisServer,
) -> None:
    with Cache(own_redis.url, **FAST) as cache:
        wait_for(lambda: serving(cache), "the feed is up")
        cache.set("k", "v")
        own_redis.pause()
        try:
            # Until the feed's PING goes unanswered the tier may serve: a paused
            # server cannot change either. Then it is emptied and bypassed.
            wait_for(lambda: not serving(cache), "the feed noticed the pause")
            assert cache.get("k", "dflt") == "dflt"
        finally:
            own_redis.resume()
        wait_for(lambda: serving(cache), "the feed is back")
        wait_for(lambda: cache.get("k") == "v", "the breaker lets reads through")
        assert read_locally(cache, "k") == ("v", True)


def test_a_child_forked_while_threads_use_the_tier_gets_its_own_feed(redis_url: str) -> None:
    """A child forked while another thread held the tier's lock (or the feed's)
    used to hang on its first read; it must start over with a feed of its own."""
    stop = threading.Event()
    with Cache(redis_url) as cache:
        wait_for(lambda: serving(cache), "the feed is up")
        cache.set("parent", "from-parent")  # no child writes this one
        cache.set("shared", "from-parent")

        def busy() -> None:
            n = 0
            while not stop.is_set():
                n += 1
                cache.set(f"busy{n % 20}", n)
                cache.get(f"busy{(n + 7) % 20}")
                cache.get("parent")

        threads = [threading.Thread(target=busy) for _ in range(2)]
        for thread in threads:
            thread.start()
        try:

            def child() -> None:
                assert cache.get("parent") == "from-parent"
                wait_for(lambda: serving(cache), "the child's feed is up")
                mine = f"child{os.getpid()}"
                cache.set(mine, os.getpid())
                assert read_locally(cache, mine) == (os.getpid(), True)
                cache.set("shared", f"from-{os.getpid()}")  # children overlap: no read-back
                assert cache.stats()["errors"] == 0

            pids = [in_child(child) for _ in range(6)]
            assert [exit_code(pid) for pid in pids] == [0] * 6
        finally:
            stop.set()
            for thread in threads:
                thread.join()
        # The children's writes reached the parent's tier through its feed.
        assert cache._feed is not None
        cache._feed.barrier()
        assert str(cache.get("shared")).startswith("from-")
        assert cache.get("shared") != "from-parent"


def test_a_feed_that_fails_unexpectedly_suspends_the_tier_and_starts_over(
    redis_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    """A bug in applying an invalidation (simulated: our own method raises once)
    must not leave the tier serving with nobody listening."""
    caplog.set_level(logging.ERROR, logger="hotcache")
    with Cache(redis_url) as cache, Cache(redis_url, local=False) as other:
        wait_for(lambda: serving(cache), "the feed is up")
        feed = cache._feed
        assert feed is not None
        cache.set("k", "old")
        assert read_locally(cache, "k") == ("old", True)
        connections = feed.connections
        apply = feed._apply
        failed = threading.Event()

        def broken(message: object) -> None:
            feed._apply = apply  # type: ignore[method-assign]
            failed.set()
            raise RuntimeError("a bug while applying an invalidation")

        feed._apply = broken  # type: ignore[method-assign]
        other.set("k", "new")  # its invalidation hits the bug
        wait_for(failed.is_set, "the feed received the change")
        # The failure counts as a lost connection: the tier was emptied, and
        # serves again only from a new one.
        wait_for(lambda: feed.connections > connections and serving(cache), "a new connection")
        assert read_locally(cache, "k") == ("new", True)
    assert any("invalidation feed" in r.getMessage() for r in caplog.records)
