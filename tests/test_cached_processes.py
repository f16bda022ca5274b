"""``@cache.cached`` across processes: the default key is the same under another hash
seed, entries stored in one process hit in another, and ``clear_cache()`` in one
process makes every process miss.

Workers are spawned (fresh interpreters) and decorate the same module-level
functions, so their entries share the function's ``module.qualname``.
"""

from __future__ import annotations

import asyncio
import os
from typing import Any

import pytest

from hotcache import MISSING, AsyncCache, Cache
from hotcache._decorator import KeyMaker
from processes import run_workers

RUNS: list[str] = []  # what ran in this process


class Point:
    """An argument type whose key is given by the documented hook."""

    def __init__(self, x: int, y: int) -> None:
        self.x, self.y = x, y

    def __cache_key__(self) -> tuple[int, int]:
        return (self.x, self.y)


def summary(labels: set[str], groups: dict[str, frozenset[str]], point: Point) -> str:
    RUNS.append("summary")
    return f"summary of {sorted(labels)} at {point.x},{point.y} by {os.getpid()}"


async def summary_async(labels: set[str], groups: dict[str, frozenset[str]], point: Point) -> str:
    RUNS.append("summary_async")
    return f"async summary of {sorted(labels)} at {point.x},{point.y} by {os.getpid()}"


def square(x: int) -> str:
    RUNS.append("square")
    return f"{x * x} by {os.getpid()}"


async def square_async(x: int) -> str:
    RUNS.append("square_async")
    return f"{x * x} by {os.getpid()}"


def arguments(reverse: bool) -> tuple[Any, ...]:
    """The same arguments, built in another order (sets iterate per hash seed anyway)."""
    names = ["alpha", "beta", "gamma", "delta", "epsilon"]
    groups = [("z", frozenset({"p", "q", "r", "s"})), ("a", frozenset({"x", "y"}))]
    if reverse:
        names.reverse()
        groups.reverse()
    return set(names), dict(groups), Point(3, 4)


# -- workers (run in spawned processes) ---------------------------------------------------------


def key_worker(wid: int, url: str) -> dict[str, Any]:
    args = arguments(reverse=True)

    async def run_async() -> Any:
        async with AsyncCache(url) as cache:
            return await cache.cached(summary_async)(*args)

    with Cache(url) as cache:
        result = cache.cached(summary)(*args)
    return {
        "hash": hash("hotcache"),
        "text": KeyMaker(summary, None).text(args, {}),
        "result": result,
        "result_async": asyncio.run(run_async()),
        "runs": list(RUNS),
    }


def clear_worker(wid: int, url: str) -> dict[str, Any]:
    async def run_async() -> Any:
        async with AsyncCache(url) as cache:
            g = cache.cached(square_async)
            hit = await g.get_cached(4)
            await g.clear_cache()
            return hit

    with Cache(url) as cache:
        f = cache.cached(square)
        hit = f.get_cached(4)
        f.clear_cache()
    return {"hit": hit, "hit_async": asyncio.run(run_async()), "runs": list(RUNS)}


# -- tests --------------------------------------------------------------------------------------


def test_default_keys_are_the_same_in_a_process_with_another_hash_seed(
    sqlite_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    RUNS.clear()
    args = arguments(reverse=False)
    with Cache(sqlite_url) as cache:
        stored = cache.cached(summary)(*args)

    async def run_async() -> Any:
        async with AsyncCache(sqlite_url) as cache:
            return await cache.cached(summary_async)(*args)

    stored_async = asyncio.run(run_async())
    assert RUNS == ["summary", "summary_async"]
    seed = "2" if os.environ.get("PYTHONHASHSEED") == "1" else "1"
    monkeypatch.setenv("PYTHONHASHSEED", seed)
    other = run_workers(key_worker, 1, sqlite_url)[0]
    assert other["hash"] != hash("hotcache"), "the worker did not run under another hash seed"
    assert other["text"] == KeyMaker(summary, None).text(args, {})
    # The worker's calls hit what this process stored: they never ran there.
    assert other["result"] == stored
    assert other["result_async"] == stored_async
    assert other["runs"] == []


@pytest.mark.parametrize("backend", ["sqlite", "redis"])
def test_clear_cache_in_one_process_makes_another_miss(
    backend: str, request: pytest.FixtureRequest
) -> None:
    url = str(request.getfixturevalue("sqlite_url" if backend == "sqlite" else "redis_url"))
    RUNS.clear()
    loop = asyncio.new_event_loop()
    cache, acache = Cache(url), AsyncCache(url)
    try:
        f = cache.cached(square)
        g = acache.cached(square_async)
        first = f(4)
        first_async = loop.run_until_complete(g(4))
        assert RUNS == ["square", "square_async"]
        other = run_workers(clear_worker, 1, url)[0]
        # The other process saw this one's entries, then cleared both functions.
        assert other["hit"] == first
        assert other["hit_async"] == first_async
        assert other["runs"] == []
        assert f.get_cached(4) is MISSING
        assert loop.run_until_complete(g.get_cached(4)) is MISSING
        assert f(4) == first  # recomputed here (same value, same pid)
        assert loop.run_until_complete(g(4)) == first_async
        assert RUNS == ["square", "square_async", "square", "square_async"]
    finally:
        cache.close()
        loop.run_until_complete(acache.close())
        loop.run_until_complete(loop.shutdown_default_executor())
        loop.close()
