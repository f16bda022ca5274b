"""Tenants: ``cache.tenant(name)`` blocks and ``Cache(tenant=...)`` put the tenant in
every key, so tenants never see each other's entries and ``clear()`` in a tenant
clears only that tenant. Every backend, both faces."""

from __future__ import annotations

import asyncio
import contextvars
import threading
from collections.abc import Iterator
from typing import Any

import pytest

from hotcache import MISSING, AsyncCache, Cache
from hotcache.testing import Face, Harness
from processes import run_threads

LONG = 1000.0
JOIN = 30.0

# Characters with a meaning in the key header or in a glob, alone and inside names.
SPECIAL_TENANTS = (
    ":",
    "!",
    "@",
    "#",
    "%",
    "*",
    "?",
    "[",
    "]",
    "\\",
    "a:b",
    "a!b",
    "a@1",
    "a#b",
    "a%3A",
    "a:",
    "a*",
    "ab",
    "a?",
    "a[b]",
    "[ab]",
    "a",
    "a\\",
    "^",
    "[^a]",
    "[!a]",
    "*:",
    "ü-tenant",
)


def all_backend_keys(hc: Harness) -> list[str]:
    return sorted(k for batch in hc.raw.scan("*") for k in batch)


class Decorated:
    """A function cached by one face (``async def`` on the async face), called to completion."""

    def __init__(self, hc: Harness, c: Face, **options: Any) -> None:
        self.calls: list[int] = []
        self._loop = hc.session.loop
        if hc.is_async:

            async def load_async(n: int) -> int:
                self.calls.append(n)
                return n * 10

            self.fn: Any = c.cache.cached(**options)(load_async)
        else:

            def load(n: int) -> int:
                self.calls.append(n)
                return n * 10

            self.fn = c.cache.cached(**options)(load)

    def _run(self, result: Any) -> Any:
        return result if self._loop is None else self._loop.run_until_complete(result)

    def __call__(self, n: int) -> Any:
        return self._run(self.fn(n))

    def invalidate(self, n: int) -> Any:
        return self._run(self.fn.invalidate(n))

    def clear_cache(self) -> Any:
        return self._run(self.fn.clear_cache())


# -- isolation of every operation -------------------------------------------------


def test_every_operation_is_isolated_between_tenants(hc: Harness) -> None:
    c = hc.cache
    scopes: dict[str | None, Any] = {"a": c.tenant("a"), "b": c.tenant("b"), None: c.tenant(None)}
    for name, block in scopes.items():
        with block:
            assert c.get("k", MISSING) is MISSING, name
            assert c.set("k", f"v-{name}", LONG) is True
            c.set_many({"m1": f"m1-{name}", "m2": f"m2-{name}"})
            assert c.incr("n", 1 if name == "a" else 10) == (1 if name == "a" else 10)
            assert c.hset("h", "f", f"h-{name}") == 1
    c.set("no-ttl", "none-only")

    for name, block in scopes.items():
        with block:
            assert c.get("k") == f"v-{name}"
            assert c.get_many(["k", "m1", "m2", "absent"]) == {
                "k": f"v-{name}",
                "m1": f"m1-{name}",
                "m2": f"m2-{name}",
            }
            assert c.exists("k") is True
            left = c.ttl("k")
            assert isinstance(left, float) and 0 < left <= LONG
            assert c.hget("h", "f") == f"h-{name}"
            assert c.hgetall("h") == {"f": f"h-{name}"}
            assert c.get("n") == (1 if name == "a" else 10)
            assert c.get_or_set("k", hc.producer(lambda: "produced")) == f"v-{name}"
            assert c.exists("no-ttl") is (name is None)
            assert c.ttl("no-ttl") is (None if name is None else MISSING)

    with c.tenant("a"):
        assert c.incr("n", 5) == 6
        assert c.delete("k") is True
        assert c.delete_many(["m1"]) == 1
        assert c.hdel("h", "f") == 1
        assert c.get_or_set("fresh", hc.producer(lambda: "made-in-a")) == "made-in-a"
    with c.tenant("b"):
        assert c.get("n") == 10
        assert c.get("k") == "v-b"
        assert c.get_many(["m1", "m2"]) == {"m1": "m1-b", "m2": "m2-b"}
        assert c.hget("h", "f") == "h-b"
        assert c.exists("fresh") is False
        assert c.get_or_set("fresh", hc.producer(lambda: "made-in-b")) == "made-in-b"
    assert c.get("k") == "v-None"
    assert c.get("n") == 10
    assert c.hget("h", "f") == "h-None"
    assert c.get("fresh", MISSING) is MISSING
    with c.tenant("a"):
        assert c.get("fresh") == "made-in-a"
        assert c.get_many(["k", "m1", "m2"]) == {"m2": "m2-a"}
        assert c.get("n") == 6


def test_cached_functions_are_isolated_between_tenants(hc: Harness) -> None:
    c = hc.cache
    load = Decorated(hc, c, key="load:{n}", ttl=LONG)
    for name in ("a", "b", None):
        with c.tenant(name):
            assert load(1) == 10
            assert load(1) == 10
    assert load.calls == [1, 1, 1]  # once per tenant, then hits
    with c.tenant("a"):
        assert c.get("load:1") == 10
        c.set("load:1", "planted-a")
        assert load(1) == "planted-a"
    with c.tenant("b"):
        assert load(1) == 10
    assert load(1) == 10
    assert load.calls == [1, 1, 1]


def test_cached_clear_cache_and_invalidate_stay_in_their_tenant(hc: Harness) -> None:
    c = hc.cache
    load = Decorated(hc, c, ttl=LONG)
    for name in ("a", "b", None):
        with c.tenant(name):
            load(1)
            load(2)
    assert len(load.calls) == 6
    load.calls.clear()
    with c.tenant("a"):
        load.clear_cache()
    with c.tenant("b"):
        assert load.invalidate(2) is True
        assert load.invalidate(2) is False
        load(1)
        load(2)
    assert load.calls == [2]
    load.calls.clear()
    load(1)
    load(2)
    assert load.calls == []
    with c.tenant("a"):
        load(1)
        load(2)
    assert load.calls == [1, 2]


# -- clear() ------------------------------------------------------------------------


def test_clear_inside_a_tenant_clears_only_that_tenant(hc: Harness) -> None:
    c = hc.cache
    versioned = hc.open(version="2")
    load = Decorated(hc, c, ttl=LONG, tags=["t"])
    tagged_calls = load.calls
    for name in ("a", "b", None):
        with c.tenant(name):
            c.set("k", name)
            c.set("tagged", name, tags=["t"])
            c.hset("h", "f", name)
            load(1)
        with versioned.tenant(name):
            versioned.set("k", f"v2-{name}")
    assert len(tagged_calls) == 3

    with c.tenant("a"):
        assert isinstance(c.clear(), int)
        assert c.get_many(["k", "tagged"]) == {}
        assert c.hgetall("h") == {}
    with versioned.tenant("a"):
        assert versioned.get("k", MISSING) is MISSING  # every version of the tenant
    for name in ("b", None):
        with c.tenant(name):
            assert c.get_many(["k", "tagged"]) == {"k": name, "tagged": name}
            assert c.hget("h", "f") == name
            load(1)
        with versioned.tenant(name):
            assert versioned.get("k") == f"v2-{name}"
    assert len(tagged_calls) == 3
    with c.tenant("a"):
        load(1)
        c.set("k", "again")
        assert c.get("k") == "again"
    assert len(tagged_calls) == 4


def test_clear_outside_any_tenant_clears_the_whole_namespace(hc: Harness) -> None:
    c = hc.cache
    other_ns = hc.open(namespace="other")
    for name in ("a", "b", None):
        with c.tenant(name):
            c.set("k", name)
            c.hset("h", "f", name)
        with other_ns.tenant(name):
            other_ns.set("k", f"other-{name}")
    assert isinstance(c.clear(), int)
    for name in ("a", "b", None):
        with c.tenant(name):
            assert c.get("k", MISSING) is MISSING
            assert c.hgetall("h") == {}
        with other_ns.tenant(name):
            assert other_ns.get("k") == f"other-{name}"


def test_special_tenant_names_stay_isolated_and_clear_only_themselves(hc: Harness) -> None:
    c = hc.cache
    c.set("k", "no-tenant")
    for name in SPECIAL_TENANTS:
        with c.tenant(name):
            c.set("k", name)
            c.hset("h", "f", name)
    for name in SPECIAL_TENANTS:
        with c.tenant(name):
            assert c.get("k") == name, name
            assert c.hget("h", "f") == name, name
    remaining = list(SPECIAL_TENANTS)
    while remaining:
        gone = remaining.pop(0)
        with c.tenant(gone):
            c.clear()
            assert c.get("k", MISSING) is MISSING, gone
        for name in remaining:
            with c.tenant(name):
                assert c.get("k") == name, f"clear() in tenant {gone!r} removed tenant {name!r}"
                assert c.hget("h", "f") == name, name
        assert c.get("k") == "no-tenant", f"clear() in tenant {gone!r} removed the plain entry"


@pytest.mark.parametrize(("cleared", "kept"), [("a*", "ab"), ("a?", "ab"), ("[ab]", "a")])
def test_glob_characters_in_a_tenant_do_not_widen_clear(
    hc: Harness, cleared: str, kept: str
) -> None:
    c = hc.cache
    for name in (cleared, kept):
        with c.tenant(name):
            c.set("k", name)
    with c.tenant(cleared):
        c.clear()
        assert c.get("k", MISSING) is MISSING
    with c.tenant(kept):
        assert c.get("k") == kept


# -- resolvers, fixed tenants and blocks -----------------------------------------------


current_tenant: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "current_tenant", default=None
)


def test_resolver_callable_picks_the_tenant_per_call(hc: Harness) -> None:
    seen: list[str | None] = []

    def resolve() -> str | None:
        seen.append(current_tenant.get())
        return current_tenant.get()

    c = hc.open(tenant=resolve)
    plain = hc.open()
    for name in ("x", "y", None):
        token = current_tenant.set(name)
        try:
            c.set("k", f"v-{name}")
        finally:
            current_tenant.reset(token)
    assert "x" in seen and "y" in seen
    for name in ("x", "y", None):
        token = current_tenant.set(name)
        try:
            assert c.get("k") == f"v-{name}"
        finally:
            current_tenant.reset(token)
        # The resolver's tenant is the same tenant a block names.
        with plain.tenant(name):
            assert plain.get("k") == f"v-{name}"
    token = current_tenant.set("x")
    try:
        c.clear()
        assert c.get("k", MISSING) is MISSING
        with c.tenant(None):  # None wins over the resolver
            assert c.get("k") == "v-None"
        with c.tenant("y"):  # a block wins over the resolver
            assert c.get("k") == "v-y"
    finally:
        current_tenant.reset(token)
    assert plain.get("k") == "v-None"


def test_fixed_tenant_string(hc: Harness) -> None:
    fixed = hc.open(tenant="fixed")
    plain = hc.open()
    fixed.set("k", "in-fixed")
    plain.set("k", "plain")
    assert fixed.get("k") == "in-fixed"
    assert plain.get("k") == "plain"
    with plain.tenant("fixed"):
        assert plain.get("k") == "in-fixed"
    with fixed.tenant(None):
        assert fixed.get("k") == "plain"
    with fixed.tenant("other"):
        assert fixed.get("k", MISSING) is MISSING
    fixed.clear()
    assert fixed.get("k", MISSING) is MISSING
    assert plain.get("k") == "plain"


def test_nested_blocks_restore_the_outer_tenant(hc: Harness) -> None:
    c = hc.cache
    for name in ("outer", "inner", None):
        with c.tenant(name):
            c.set("who", name)
    outer = c.tenant("outer")
    with outer:
        assert c.get("who") == "outer"
        with c.tenant("inner"):
            assert c.get("who") == "inner"
            with c.tenant(None):
                assert c.get("who") is None
            assert c.get("who") == "inner"
        assert c.get("who") == "outer"
        with outer:  # one block object, entered again while open
            assert c.get("who") == "outer"
            with c.tenant("inner"):
                assert c.get("who") == "inner"
            assert c.get("who") == "outer"
        assert c.get("who") == "outer"
        try:
            with c.tenant("inner"):
                raise KeyError("boom")
        except KeyError:
            pass
        assert c.get("who") == "outer"
    assert c.get("who") is None
    with outer:  # reusable once closed
        assert c.get("who") == "outer"
    assert c.get("who") is None


def test_tenant_none_ignores_a_resolver(hc: Harness) -> None:
    c = hc.open(tenant=lambda: "resolved")
    plain = hc.open()
    plain.set("k", "plain")
    assert c.get("k", MISSING) is MISSING
    with c.tenant(None):
        assert c.get("k") == "plain"
        c.set("k2", "written-under-none")
        with c.tenant("explicit"):
            assert c.get("k", MISSING) is MISSING
        assert c.get("k") == "plain"
    assert plain.get("k2") == "written-under-none"
    assert c.get("k2", MISSING) is MISSING


BAD_TENANTS: tuple[tuple[Any, type[Exception]], ...] = (
    ("", ValueError),
    (1, TypeError),
    (b"a", TypeError),
    (["a"], TypeError),
    (object(), TypeError),
    (1.5, TypeError),
    (True, TypeError),
)


@pytest.mark.parametrize(("bad", "error"), BAD_TENANTS)
def test_bad_tenants_raise_and_change_nothing(
    hc: Harness, bad: Any, error: type[Exception]
) -> None:
    c = hc.cache
    with c.tenant("good"):
        c.set("k", "good")
        with pytest.raises(error):
            c.tenant(bad)
        assert c.get("k") == "good"  # the outer block is still in effect
    assert c.get("k", MISSING) is MISSING
    with pytest.raises(error):
        hc.open(tenant=bad)

    resolved = hc.open(tenant=lambda: bad)
    with pytest.raises(error):
        resolved.set("k", "never stored")
    with pytest.raises(error):
        resolved.get("k")
    with pytest.raises(error):
        resolved.clear()
    with c.tenant("good"):
        assert c.get("k") == "good"
    assert all(k.startswith("hc!good") for k in all_backend_keys(hc)), all_backend_keys(hc)


# -- async with, tasks and threads -----------------------------------------------------


def test_async_with_and_tasks(url: str) -> None:
    async def main() -> None:
        async with AsyncCache(url) as c:
            async with c.tenant("a"):
                await c.set("k", "a")

                async def child() -> Any:
                    return await c.get("k")

                # A task started inside the block inherits the tenant.
                assert await asyncio.create_task(child()) == "a"
            async with c.tenant("b"):
                await c.set("k", "b")
                assert await c.get("k") == "b"
            assert await c.get("k", MISSING) is MISSING
            async with c.tenant("a"):
                assert await c.get("k") == "a"
                async with c.tenant(None):
                    assert await c.get("k", MISSING) is MISSING
                assert await c.get("k") == "a"

    asyncio.run(main())


def test_tenants_are_isolated_between_concurrent_tasks(url: str) -> None:
    workers = 8

    async def main() -> None:
        async with AsyncCache(url) as c:
            barrier = asyncio.Barrier(workers)

            async def work(i: int) -> None:
                async with c.tenant(f"t{i}"):
                    await c.set("k", i)
                    await c.incr("n", i + 1)
                    await barrier.wait()  # every task has written, each in its tenant
                    assert await c.get("k") == i
                    assert await c.get("n") == i + 1
                    await barrier.wait()
                    if i == 0:
                        await c.clear()
                    await barrier.wait()
                    if i == 0:
                        assert await c.get("k", MISSING) is MISSING
                    else:
                        assert await c.get("k") == i
                        assert await c.get_many(["k", "n"]) == {"k": i, "n": i + 1}

            await asyncio.wait_for(asyncio.gather(*(work(i) for i in range(workers))), JOIN)
            assert await c.get("k", MISSING) is MISSING

    asyncio.run(main())


def test_tenants_are_isolated_between_threads_sharing_a_cache(url: str) -> None:
    workers = 8
    barrier = threading.Barrier(workers)
    with Cache(url) as c:

        def work(i: int) -> None:
            with c.tenant(f"t{i}"):
                c.set("k", i)
                c.incr("n", i + 1)
                barrier.wait(JOIN)
                assert c.get("k") == i
                assert c.get("n") == i + 1
                barrier.wait(JOIN)
                if i == 0:
                    c.clear()
                barrier.wait(JOIN)
                if i == 0:
                    assert c.get("k", MISSING) is MISSING
                else:
                    assert c.get_many(["k", "n"]) == {"k": i, "n": i + 1}
            assert c.get("k", MISSING) is MISSING

        run_threads(work, workers, JOIN, barrier.abort)


def test_an_async_function_on_a_sync_cache_runs_in_the_callers_tenant(url: str) -> None:
    calls: list[str] = []
    with Cache(url) as c:

        @c.cached(key="f:{n}", ttl=LONG)
        async def f(n: int) -> str:
            calls.append(f"{n}")
            return f"r{n}"

        with c.tenant("a"):
            assert asyncio.run(f(1)) == "r1"
            assert c.get("f:1") == "r1"
        with c.tenant("b"):
            assert c.get("f:1", MISSING) is MISSING
            assert asyncio.run(f(1)) == "r1"
        assert calls == ["1", "1"]


def test_a_plain_function_on_an_async_cache_runs_in_the_callers_tenant(url: str) -> None:
    calls: list[int] = []

    async def main() -> None:
        async with AsyncCache(url) as c:

            @c.cached(key="f:{n}", ttl=LONG)
            def f(n: int) -> int:
                calls.append(n)
                return n

            async with c.tenant("a"):
                assert await asyncio.to_thread(f, 1) == 1
                assert await c.get("f:1") == 1
            async with c.tenant("b"):
                assert await c.get("f:1", MISSING) is MISSING
            assert await c.get("f:1", MISSING) is MISSING

    asyncio.run(main())
    assert calls == [1]


def test_one_block_object_shared_by_concurrent_tasks(url: str) -> None:
    async def main() -> None:
        async with AsyncCache(url) as c:
            shared = c.tenant("shared")  # made once, as a module-level constant would be
            inside = asyncio.Barrier(2)
            first_left = asyncio.Event()

            async def work(i: int) -> None:
                async with shared:
                    await inside.wait()  # both tasks are in the block at once
                    await c.set(f"k{i}", i)
                    if i == 1:
                        await first_left.wait()  # task 0 leaves while task 1 is inside
                    assert await c.get(f"k{i}") == i
                if i == 0:
                    first_left.set()
                assert await c.get(f"k{i}", MISSING) is MISSING  # back to no tenant

            await asyncio.wait_for(asyncio.gather(work(0), work(1)), JOIN)
            async with c.tenant("shared"):
                assert await c.get_many(["k0", "k1"]) == {"k0": 0, "k1": 1}

    asyncio.run(main())


def test_one_block_object_shared_by_concurrent_threads(url: str) -> None:
    inside = threading.Barrier(2)
    first_left = threading.Event()
    with Cache(url) as c:
        shared = c.tenant("shared")

        def work(i: int) -> None:
            with shared:
                inside.wait(JOIN)
                c.set(f"k{i}", i)
                if i == 1:
                    assert first_left.wait(JOIN)
                assert c.get(f"k{i}") == i
            if i == 0:
                first_left.set()
            assert c.get(f"k{i}", MISSING) is MISSING

        run_threads(work, 2, JOIN, lambda: (inside.abort(), first_left.set()))
        with c.tenant("shared"):
            assert c.get_many(["k0", "k1"]) == {"k0": 0, "k1": 1}


def test_generators_taking_turns_in_their_own_tenant_blocks_stay_apart() -> None:
    """Generators run in their caller's context, so the innermost open block wins
    while they take turns; leaving blocks out of order takes out the frame of
    the block left, never another's, and leaves the caller as it was."""
    cache = Cache("memory://")
    with cache.tenant("a"):
        cache.set("secret", "A")
    with cache.tenant("b"):
        cache.set("secret", "B")

    def rows(tenant: str) -> Iterator[Any]:
        with cache.tenant(tenant):
            yield cache.get("secret")
            yield cache.get("secret")

    ga, gb = rows("a"), rows("b")
    assert (next(ga), next(gb)) == ("A", "B")
    assert list(ga) == ["B"]  # b's block, entered last, is innermost; then a's is left
    assert cache._context.tenant() == "b"  # b's block is still open in this context
    assert list(gb) == ["B"]
    assert cache._context.tenant() is None
    assert cache.get("secret") is None
    cache.close()
