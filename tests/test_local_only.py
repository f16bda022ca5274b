"""``local_only=True`` (a value in the local tier alone) and ``serialize_local=False``
(the local tier holds objects as they are), on Redis and SQLite.

Another writer is a second cache with ``local=False``: its own connection, so
its changes reach the first cache's tier the way another process's do.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator

import pytest
import redis

from hotcache import AsyncCache, Cache
from redis_server import RedisServer


@pytest.fixture(params=["redis", "sqlite"])
def store(request: pytest.FixtureRequest) -> str:
    return str(request.getfixturevalue(f"{request.param}_url"))


@pytest.fixture
def other(store: str) -> Iterator[Cache]:
    """Another writer on the same store, with no tier of its own."""
    with Cache(store, local=False) as cache:
        yield cache


def held(cache: Cache, key: str) -> bool:
    """Return True if ``cache``'s local tier holds ``key`` now."""
    assert cache._local is not None
    return cache._local.get(cache._key(key)) is not None


def settle(cache: Cache | AsyncCache) -> None:
    """Return once every change made so far has reached ``cache``'s tier."""
    assert cache._feed is not None
    cache._feed.barrier()


# -- serialize_local=False ---------------------------------------------------------------


def test_objects_are_handed_out_as_they_are(store: str, other: Cache) -> None:
    with Cache(store, serialize_local=False) as cache:
        other.set("read", {"id": 2})
        settle(cache)  # its change reached the tier: the read below stays there
        first = cache.get("read")
        assert first == {"id": 2} and cache.get("read") is first  # decoded once, no copy
        assert cache.get_many(["read"])["read"] is first
        cache.set("row", {"id": 1})  # the writer's own copy may be dropped by its own change
        settle(cache)
        row = cache.get("row")
        assert row == {"id": 1} and cache.get("row") is row
        assert cache.get_many(["row", "read"]) == {"row": row, "read": first}


def test_payloads_are_copies_by_default(store: str) -> None:
    with Cache(store) as cache:
        cache.set("row", {"id": 1})
        got = cache.get("row")
        got["id"] = 99
        assert cache.get("row") == {"id": 1}


def test_another_writer_replaces_a_held_object(store: str, other: Cache) -> None:
    with Cache(store, serialize_local=False) as cache:
        cache.set("k", {"v": 1})
        assert cache.get("k") == {"v": 1}
        other.set("k", {"v": 2})
        settle(cache)
        assert cache.get("k") == {"v": 2}
        other.delete("k")
        settle(cache)
        assert cache.get("k") is None


def test_a_held_tagged_object_goes_stale_with_its_tag(store: str, other: Cache) -> None:
    with Cache(store, serialize_local=False) as cache:
        calls = []

        @cache.cached(tags=["catalog"])
        def product(pid: int) -> dict[str, int]:
            calls.append(pid)
            return {"pid": pid, "n": len(calls)}

        held = product(1)
        assert product(1) is held or product(1) is product(1)  # read back, then held
        assert calls == [1]
        product.clear_cache()
        assert product(1) == {"pid": 1, "n": 2}


def test_only_caches_that_decode_alike_share_objects(store: str) -> None:
    a = Cache(store, serialize_local=False)
    b = Cache(store, serialize_local=False)
    signed = Cache(store, serialize_local=False, secret="s" * 32)
    payloads = Cache(store)
    try:
        assert a._local is b._local
        assert signed._local is not a._local  # an unsigned object must not pass as signed
        assert payloads._local is not a._local
        a.set("k", "v")
        assert b.get("k") == "v"
        assert signed.get("k") is None  # unsigned in the shared tier: refused
    finally:
        for cache in (a, b, signed, payloads):
            cache.close()


# -- local_only=True ---------------------------------------------------------------------


def test_a_local_only_value_never_reaches_the_shared_tier(redis_url: str) -> None:
    with Cache(redis_url) as cache, Cache(redis_url, local=False) as remote:
        assert cache.set("k", "local-secret-value", local_only=True)
        assert cache.get("k") == "local-secret-value"
        assert remote.get("k") is None  # the marker reads as a miss elsewhere
        raw = redis.Redis.from_url(redis_url).get(cache._key("k"))
        assert raw is not None and b"local-secret-value" not in raw


def test_a_local_only_value_follows_changes_from_anywhere(store: str, other: Cache) -> None:
    with Cache(store) as cache:
        cache.set("k", "mine", local_only=True)
        assert cache.get("k") == "mine" and held(cache, "k")
        other.delete("k")  # the marker was there to be deleted
        settle(cache)
        assert cache.get("k") is None
        cache.set("k", "mine again", local_only=True)
        assert cache.get("k") == "mine again" and held(cache, "k")
        other.set("k", "theirs")
        settle(cache)
        assert cache.get("k") == "theirs"
        cache.set("k", "mine", local_only=True)
        assert cache.get("k") == "mine" and held(cache, "k")
        other.clear()
        settle(cache)
        assert cache.get("k") is None


def test_objects_that_cannot_be_pickled_can_be_held_locally(store: str, other: Cache) -> None:
    lock = threading.Lock()  # stands for an ORM object or a compiled thing
    with Cache(store, serialize_local=False) as cache:
        assert cache.get_or_set("lock", lambda: lock, local_only=True) is lock
        assert cache.get_or_set("lock", threading.Lock, local_only=True) is lock
        assert other.get("lock") is None
    with Cache(store) as payloads, pytest.raises(Exception, match="serialize"):
        payloads.set("lock", lock, local_only=True)  # payloads must still be encoded


def test_decorated_local_only_results_follow_invalidation(store: str, other: Cache) -> None:
    with Cache(store) as cache:
        calls: list[int] = []

        @cache.cached(local_only=True, tags=lambda pid: [f"product:{pid}"])
        def product(pid: int) -> str:
            calls.append(pid)
            return f"p{pid}v{len(calls)}"

        assert product(1) == product(1) == "p1v1"
        assert other.get(cache._key("unused")) is None
        product.invalidate(1)
        assert product(1) == "p1v2"
        product.clear_cache()
        assert product(1) == "p1v3"
        assert calls == [1, 1, 1]


def test_without_a_coherent_tier_local_only_values_are_not_kept(redis_url: str) -> None:
    with Cache(redis_url, local=False) as cache:
        assert cache.set("k", "v", local_only=True) is False
        assert cache.get("k") is None
        calls: list[int] = []
        for _ in range(2):
            cache.get_or_set("g", lambda: calls.append(1) or "v", local_only=True)
        assert len(calls) == 2
    with Cache("memory://") as memory:  # the store is in-process: it holds the value
        assert memory.set("k", "v", local_only=True) and memory.get("k") == "v"


def test_async_local_only_and_objects(store: str) -> None:
    async def main() -> None:
        async with AsyncCache(store, serialize_local=False) as cache:
            row = {"id": 7}
            assert await cache.get_or_set("row", lambda: row, local_only=True) is row
            assert await cache.get("row") is row
            await cache.delete("row")
            assert await cache.get("row") is None

    asyncio.run(main())


def test_reserved_tag_names_are_refused(store: str) -> None:
    with Cache(store) as cache, pytest.raises(ValueError, match="reserved"):
        cache.set("k", "v", tags=["\x00local-only"])


def test_a_shortened_lifetime_is_not_outlived_by_a_local_copy(sqlite_url: str) -> None:
    # SQLite: the touch's own change reaches the tier only at the next read, so
    # what the tier holds right after the touch is the face's doing.
    with Cache(sqlite_url) as cache:
        cache.set("k", "v", ttl=60)
        assert cache.get("k") == "v" and held(cache, "k")
        assert cache.touch("k", 0.05)
        assert not held(cache, "k")
        time.sleep(0.1)  # past the new expiry, however long the sleep really was
        assert cache.get("k") is None


def test_a_local_only_value_is_kept_by_a_cache_that_never_read_before(store: str) -> None:
    with Cache(store) as writer:
        writer.set("other", 1)  # the file or server has history this cache never read
    with Cache(store) as cache:
        assert cache.set("k", "v", local_only=True)
        assert cache.get("k") == "v"


def test_a_write_landing_with_the_marker_is_not_masked(own_redis: RedisServer) -> None:
    """Redis names a changed key once per pass of its event loop, however many
    changes it had: a write that lands in the same pass as the marker must not
    pass for the marker's own change. Paused writes make both land together."""
    with Cache(own_redis.url) as cache, Cache(own_redis.url, local=False) as other:
        admin = redis.Redis(port=own_redis.port)
        admin.execute_command("CLIENT", "PAUSE", 120, "WRITE")  # < the 0.25 s timeout
        mine = threading.Thread(target=lambda: cache.set("k", "mine", local_only=True))
        mine.start()
        deadline = time.monotonic() + 5
        while not any(  # a plain SET, or the script that also voids the key's lease
            f"cmd={cmd}".encode() in admin.execute_command("CLIENT", "LIST")
            for cmd in ("set", "evalsha")
        ):
            assert time.monotonic() < deadline, "the marker's SET never waited"
            time.sleep(0.001)
        theirs = threading.Thread(target=lambda: other.set("k", "theirs"))
        theirs.start()
        mine.join()
        theirs.join()
        settle(cache)
        raw = admin.get(cache._key("k"))
        assert raw is not None
        if b"local-only" in raw:  # the marker landed last: the local value is current
            assert cache.get("k") == "mine" and other.get("k") is None
        else:  # theirs landed last: never the local-only value it replaced
            assert cache.get("k") == other.get("k") == "theirs"
