"""Redis servers that refuse client tracking, and ``invalidation=pubsub``.

The server here is a real redis-server with the CLIENT command disabled, as
some proxies and managed services have it: tracking cannot be turned on.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator

import pytest

from hotcache import Cache
from processes import SPAWN, run_workers, serving, wait_for
from redis_server import RedisServer
from test_local_tier_processes import REDIS_BOUND, history_worker, stale_reads

PROCS = 3


@pytest.fixture(scope="module")
def untracked() -> Iterator[RedisServer]:
    server = RedisServer(None, "--rename-command", "CLIENT", "").start()
    yield server
    server.stop()


@pytest.fixture
def url(untracked: RedisServer) -> str:
    import redis

    redis.Redis(port=untracked.port).flushall()
    return untracked.url


def test_without_tracking_the_tier_stays_off_and_the_log_says_what_to_do(
    url: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="hotcache")
    with Cache(url) as cache, Cache(url, local=False) as other:
        assert not serving(cache)
        cache.set("k", "v")
        assert cache.get("k") == "v"
        other.set("k", "theirs")
        assert cache.get("k") == "theirs"  # every read goes to Redis
        assert not serving(cache)
    lines = [r.getMessage() for r in caplog.records if r.name == "hotcache"]
    assert len(lines) == 1 and "invalidation=pubsub" in lines[0], lines


def test_pubsub_keeps_the_tier_coherent_with_other_writers(url: str) -> None:
    with (
        Cache(url, invalidation="pubsub") as cache,
        Cache(url, invalidation="pubsub", local=False) as other,
    ):
        wait_for(lambda: serving(cache), "the feed is up")
        assert cache._feed is not None
        settle = cache._feed.barrier

        def held(key: str) -> bool:
            assert cache._local is not None
            return cache._local.get(cache._key(key)) is not None

        changes: list[tuple[str, Callable[[], object], object]] = [
            ("set", lambda: other.set("k", "theirs"), "theirs"),
            ("delete", lambda: other.delete("k"), None),
            ("set_many", lambda: other.set_many({"k": 1, "j": 2}), 1),
            ("delete_many", lambda: other.delete_many(["k", "j"]), None),
            ("incr", lambda: other.delete("k") + other.incr("k", 5), 5),
            ("clear", other.clear, None),
        ]
        for name, change, expected in changes:
            cache.set("k", "mine")
            wait_for(lambda: cache.get("k") == "mine" and held("k"), f"k is held before {name}")
            change()
            settle()
            assert not held("k"), name
            assert cache.get("k") == expected, name

        calls: list[int] = []

        def square(x: int) -> int:
            calls.append(x)
            return x * x

        mine, theirs = cache.cached(square), other.cached(square)  # one function, two caches
        assert mine(3) == mine(3) == 9 and calls == [3]
        theirs.clear_cache()  # a new version of the function's tag, announced
        settle()
        assert mine(3) == 9 and calls == [3, 3]


def test_pubsub_no_process_reads_a_value_another_replaced(url: str) -> None:
    pubsub = f"{url}?invalidation=pubsub"
    results = run_workers(history_worker, PROCS, pubsub, SPAWN.Barrier(PROCS), 13, 400, 0.002)
    ops = [op for wid in sorted(results) for op in results[wid]]
    assert max(op[4] for op in ops) - min(op[3] for op in ops) > 5 * REDIS_BOUND
    stale = stale_reads(ops, REDIS_BOUND)
    assert not stale, f"{len(stale)} stale reads, e.g. {stale[:3]}"
