"""The ``@cache.cached`` scenarios: a warm decorated call against the decorators
and hand-written wrappers users would write instead.

Every side decorates the same body (``load_user(user_id)`` returning one of the
``PAYLOADS``), is warmed over every user id before timing, and is timed on the
same random draw of ids. Each body counts its runs; when the scenario ends, a
side whose body ran more than once per id (an eviction or expiry mid-run, so a
timed call was a miss) fails the run instead of printing a figure that is not a
warm call. Targets are the ratios issue 3 asks for; rivals without one are
context.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Awaitable, Callable
from typing import Any

import cachetools
from harness import async_unary, sync_unary
from scenarios import (
    NAMESPACE,
    PAYLOADS,
    RAW_PREFIX,
    Builder,
    Env,
    Rival,
    Scenario,
    _draw,
    _raw_bytes,
    _raw_client,
    _raw_loader,
    _redis_pair,
)

import hotcache
from hotcache.backends.redis import AsyncDriver

__all__ = ["DECORATOR_SCENARIOS"]

TTL = 300
MEMORY_TARGET = 1.3  # hotcache / cachetools.cached
REDIS_TARGET = 1.1  # hotcache / a hand-written redis-py cache-aside wrapper


class Bodies:
    """Count how often each side's undecorated body ran, and check it at the end."""

    def __init__(self, env: Env, ids: list[int]) -> None:
        self.ids = ids
        self.runs: dict[str, int] = {}
        env.cleanup.callback(self.check)

    def body(self, side: str, value: Any) -> Callable[[int], Any]:
        """Return ``load_user`` for ``side``: the same record for every id, counted."""
        runs = self.runs
        runs[side] = 0

        def load_user(user_id: int) -> Any:
            runs[side] += 1
            return value

        return load_user

    def async_body(self, side: str, value: Any) -> Callable[[int], Awaitable[Any]]:
        """Return an ``async def load_user`` for ``side``, counted like ``body``."""
        runs = self.runs
        runs[side] = 0

        async def load_user(user_id: int) -> Any:
            runs[side] += 1
            return value

        return load_user

    def warm(self, *calls: Callable[[int], Any]) -> None:
        for call in calls:
            for user_id in self.ids:
                call(user_id)

    def check(self) -> None:
        cold = {side: n for side, n in self.runs.items() if n != len(self.ids)}
        if cold:
            raise RuntimeError(
                f"not every timed call was warm: body runs {cold}, expected {len(self.ids)} each"
            )


def _ids(env: Env) -> list[int]:
    return list(range(env.sizes.keys))


# -- memory ------------------------------------------------------------------------


def cached_memory(env: Env, payload: str) -> Scenario:
    value = PAYLOADS[payload]
    ids = _ids(env)
    bodies = Bodies(env, ids)
    cache = hotcache.Cache("memory://")
    env.cleanup.callback(cache.close)

    mine = cache.cached(ttl=TTL)(bodies.body("hotcache", value))
    ttl_cache: cachetools.TTLCache[Any, Any] = cachetools.TTLCache(maxsize=10 * len(ids), ttl=TTL)
    theirs = cachetools.cached(ttl_cache)(bodies.body("cachetools", value))
    locked_cache: cachetools.TTLCache[Any, Any] = cachetools.TTLCache(
        maxsize=10 * len(ids), ttl=TTL
    )
    # What cachetools needs to be thread-safe, as hotcache's memory store is.
    locked = cachetools.cached(locked_cache, lock=threading.RLock())(
        bodies.body("cachetools+lock", value)
    )
    lru = functools.lru_cache(maxsize=10 * len(ids))(bodies.body("lru_cache", value))
    bodies.warm(mine, theirs, locked, lru)

    ops = _draw(ids, env.sizes.memory)
    return Scenario(
        sync_unary("hotcache @Cache('memory://').cached", mine, ops),
        [
            Rival(sync_unary("@cachetools.cached(TTLCache)", theirs, ops), MEMORY_TARGET),
            Rival(sync_unary("@cachetools.cached(TTLCache, lock=RLock())", locked, ops)),
            Rival(sync_unary("@functools.lru_cache", lru, ops)),
        ],
    )


# -- redis -------------------------------------------------------------------------


def cached_redis(env: Env, payload: str) -> Scenario:
    value = PAYLOADS[payload]
    ids = _ids(env)
    bodies = Bodies(env, ids)
    cache, client = _redis_pair(env)
    label, loads = _raw_loader(value)  # _raw_bytes's inverse

    mine = cache.cached(ttl=TTL)(bodies.body("hotcache", value))
    load_user = bodies.body("redis-py", value)
    get, put = client.get, client.set

    # Cache-aside the way a user writes it next to a plain redis.Redis client.
    def cached_load(user_id: int) -> Any:
        key = f"{RAW_PREFIX}user:{user_id}"
        raw = get(key)
        if raw is not None:
            return loads(raw)
        result = load_user(user_id)
        put(key, _raw_bytes(result), ex=TTL)
        return result

    bodies.warm(mine, cached_load)
    ops = _draw(ids, env.sizes.redis)
    return Scenario(
        sync_unary("hotcache @Cache(redis_url, local=False).cached", mine, ops),
        [
            Rival(
                sync_unary(f"redis-py cache-aside (GET + {label})", cached_load, ops), REDIS_TARGET
            )
        ],
    )


def async_cached_redis(env: Env, payload: str) -> Scenario:
    value = PAYLOADS[payload]
    loop = env.loop
    ids = _ids(env)
    bodies = Bodies(env, ids)
    cache = hotcache.AsyncCache(env.redis_url, namespace=NAMESPACE, local=False)
    client = _raw_client(env, AsyncDriver)
    label, loads = _raw_loader(value)  # _raw_bytes's inverse

    mine = cache.cached(ttl=TTL)(bodies.async_body("hotcache", value))
    load_user = bodies.async_body("redis.asyncio", value)
    get, put = client.get, client.set

    async def cached_load(user_id: int) -> Any:
        key = f"{RAW_PREFIX}user:{user_id}"
        raw = await get(key)
        if raw is not None:
            return loads(raw)
        result = await load_user(user_id)
        await put(key, _raw_bytes(result), ex=TTL)
        return result

    async def warm() -> None:
        for call in (mine, cached_load):
            for user_id in ids:
                await call(user_id)

    async def close() -> None:
        await cache.clear()
        leftovers = [k async for k in client.scan_iter(match=RAW_PREFIX + "*", count=1000)]
        if leftovers:
            await client.unlink(*leftovers)
        await client.aclose()
        await cache.close()

    env.cleanup.callback(lambda: loop.run_until_complete(close()))
    loop.run_until_complete(warm())
    ops = _draw(ids, env.sizes.redis)
    return Scenario(
        async_unary("hotcache @AsyncCache(redis_url, local=False).cached", loop, mine, ops),
        [Rival(async_unary(f"redis.asyncio cache-aside (GET + {label})", loop, cached_load, ops))],
    )


# name -> (builder, payload), in the order the table prints them (after SCENARIOS).
DECORATOR_SCENARIOS: dict[str, tuple[Builder, str]] = {
    "cached warm call, memory (dict)": (cached_memory, "dict"),
    "cached warm call, memory (str)": (cached_memory, "str"),
    "cached warm call, redis (dict)": (cached_redis, "dict"),
    "cached warm call, redis (str)": (cached_redis, "str"),
    "async cached warm call, redis (dict)": (async_cached_redis, "dict"),
}
