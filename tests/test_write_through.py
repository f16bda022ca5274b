"""Write-through: ``cache.write_through(key, save)`` and ``@cache.writes(key=...)``
store the saved record only after the save returned, and delete the entry when
the save raises. Memory, SQLite and Redis; ``Cache`` and ``AsyncCache``."""

from __future__ import annotations

import asyncio
import functools
import inspect
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest

from hotcache import MISSING, AsyncCache, Cache
from hotcache._core.keys import tag_key
from hotcache.testing import Harness

LONG = 1000.0


@dataclass
class User:
    id: int
    name: str


class SaveFailed(Exception):
    pass


class Interrupted(BaseException):
    """Not an ``Exception``: write-through must still drop the entry."""


class Save:
    """A save function that counts its calls and returns (or raises) what it is given."""

    def __init__(self, result: Any = None, error: BaseException | None = None) -> None:
        self.result = result
        self.error = error
        self.calls = 0

    def __call__(self) -> Any:
        self.calls += 1
        if self.error is not None:
            raise self.error
        return self.result


# -- write_through ------------------------------------------------------------------


def test_stores_what_save_returns_and_returns_it(hc: Harness) -> None:
    c = hc.cache
    record = {"id": 1, "name": "Ada"}
    save = Save(record)
    assert c.write_through("user:1", hc.producer(save)) == record
    assert save.calls == 1
    assert c.get("user:1") == record
    assert hc.open().get("user:1") == record  # in the backend, not only in this object
    c.set("user:1", "stale")
    save.result = None  # a saved None is stored as a value too
    assert c.write_through("user:1", hc.producer(save)) is None
    assert c.get("user:1", MISSING) is None
    assert save.calls == 2


def test_the_entry_is_written_only_after_save_returned(hc: Harness) -> None:
    c = hc.cache
    observer = hc.sync_cache  # another cache object over the same store
    c.set("user:1", "old")
    seen: list[Any] = []

    if hc.is_async:
        cache = c.cache
        assert isinstance(cache, AsyncCache)

        async def save_async() -> str:
            seen.append(await cache.get("user:1"))
            await asyncio.sleep(0)
            seen.append(observer.get("user:1"))
            seen.append(await cache.get("user:1"))
            return "new"

        assert c.write_through("user:1", save_async) == "new"
    else:

        def save() -> str:
            seen.append(c.get("user:1"))
            seen.append(observer.get("user:1"))
            return "new"

        assert c.write_through("user:1", save) == "new"
    assert all(value == "old" for value in seen) and seen, seen
    assert c.get("user:1") == "new"
    assert observer.get("user:1") == "new"


@pytest.mark.parametrize("error", [SaveFailed("db down"), KeyError("k"), Interrupted()])
def test_a_failed_save_deletes_the_entry_and_propagates(hc: Harness, error: BaseException) -> None:
    c = hc.cache
    c.set("user:1", "cached before the save")
    save = Save(error=error)
    with pytest.raises(type(error)) as raised:
        c.write_through("user:1", hc.producer(save), LONG, tags=["users"])
    assert raised.value is error  # the very exception, unchanged
    assert save.calls == 1
    assert c.get("user:1", MISSING) is MISSING
    assert c.exists("user:1") is False
    assert hc.open().get("user:1", MISSING) is MISSING
    with pytest.raises(type(error)):
        c.write_through("never-cached", hc.producer(save))
    assert c.get("never-cached", MISSING) is MISSING


def test_a_cancelled_async_save_deletes_the_entry(url: str) -> None:
    async def main() -> None:
        async with AsyncCache(url) as c:
            await c.set("user:1", "old")
            started = asyncio.Event()

            async def save() -> str:
                started.set()
                await asyncio.Event().wait()  # until cancelled
                return "never"

            task = asyncio.create_task(c.write_through("user:1", save))
            await started.wait()
            assert await c.get("user:1") == "old"
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            assert await c.get("user:1", MISSING) is MISSING

    asyncio.run(main())


def test_ttl_default_ttl_and_tags_are_honoured(hc: Harness) -> None:
    c = hc.cache
    c.write_through("short", hc.producer(Save("v")), 50)
    left = c.ttl("short")
    assert isinstance(left, float) and 40 < left <= 55, left
    c.write_through("forever", hc.producer(Save("v")))
    assert c.ttl("forever") is None
    defaulted = hc.open(default_ttl=30)
    defaulted.write_through("default", hc.producer(Save("v")))
    left = defaulted.ttl("default")
    assert isinstance(left, float) and 20 < left <= 33, left

    c.write_through("tagged", hc.producer(Save("t")), LONG, tags=["users", "team:1"])
    c.write_through("other-tag", hc.producer(Save("o")), LONG, tags=["teams"])
    assert c.get_many(["tagged", "other-tag"]) == {"tagged": "t", "other-tag": "o"}
    # What invalidating a tag does (a public call arrives with tag invalidation):
    # every entry carrying it is stale.
    c._bump([tag_key(c._key("tagged"), "team:1")])
    assert c.get("tagged", MISSING) is MISSING
    assert c.get("other-tag") == "o"

    assert c.write_through("zero", hc.producer(Save("z")), 0) == "z"  # ttl=0: not stored
    assert c.get("zero", MISSING) is MISSING


BAD_OPTIONS: tuple[tuple[dict[str, Any], type[Exception]], ...] = (
    ({"ttl": -1}, ValueError),
    ({"ttl": math.nan}, ValueError),
    ({"ttl": "10"}, ValueError),
    ({"tags": [""]}, ValueError),
    ({"tags": ["ok", ""]}, ValueError),
    ({"tags": [f"t{i}" for i in range(1000)]}, ValueError),
    ({"tags": "users"}, TypeError),
    ({"tags": [1]}, TypeError),
)


@pytest.mark.parametrize(("options", "error"), BAD_OPTIONS)
def test_bad_ttl_or_tags_raise_before_save_runs(
    hc: Harness, options: dict[str, Any], error: type[Exception]
) -> None:
    c = hc.cache
    c.set("user:1", "kept")
    save = Save("new")
    with pytest.raises(error):
        c.write_through("user:1", hc.producer(save), options.get("ttl"), tags=options.get("tags"))
    assert save.calls == 0
    assert c.get("user:1") == "kept"  # nothing deleted either


@pytest.mark.parametrize("key", [1.5, None, ("a",), "\ud800"])
def test_a_bad_key_raises_before_save_runs(hc: Harness, key: Any) -> None:
    save = Save("new")
    with pytest.raises((TypeError, ValueError)):
        hc.cache.write_through(key, hc.producer(save))
    assert save.calls == 0


def test_write_through_stays_in_its_tenant(hc: Harness) -> None:
    c = hc.cache
    c.set("user:1", "plain")
    with c.tenant("b"):
        c.set("user:1", "tenant b")
    with c.tenant("a"):
        assert c.write_through("user:1", hc.producer(Save("tenant a"))) == "tenant a"
        assert c.get("user:1") == "tenant a"
        with pytest.raises(SaveFailed):
            c.write_through("user:1", hc.producer(Save(error=SaveFailed())))
        assert c.get("user:1", MISSING) is MISSING
    with c.tenant("b"):
        assert c.get("user:1") == "tenant b"
    assert c.get("user:1") == "plain"


# -- @cache.writes ----------------------------------------------------------------------


def make_writer(cache: Cache | AsyncCache, kind: str, saved: list[User], **options: Any) -> Any:
    """Return a save function decorated by ``cache.writes``: plain or ``async def``."""
    options.setdefault("key", "user:{user.id}")
    if kind == "async":

        async def save_user_async(user: User, *, fail: bool = False) -> User:
            await asyncio.sleep(0)
            if fail:
                raise SaveFailed(user.id)
            saved.append(user)
            return user

        return cache.writes(**options)(save_user_async)

    def save_user(user: User, *, fail: bool = False) -> User:
        if fail:
            raise SaveFailed(user.id)
        saved.append(user)
        return user

    return cache.writes(**options)(save_user)


def run_writer(face: str, url: str, body: Callable[[Any, Callable[..., Any]], None]) -> None:
    """Run plain ``body(cache, call)``; ``call(fn, ...)`` runs ``fn`` to completion.

    On the async face ``body`` runs in a worker thread and each coroutine goes back
    to the loop that owns the cache's connections.
    """
    if face == "sync":

        def call_sync(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
            result = fn(*args, **kwargs)
            return asyncio.run(result) if inspect.iscoroutine(result) else result

        with Cache(url) as cache:
            body(cache, call_sync)
        return

    async def main() -> None:
        async with AsyncCache(url) as cache:
            loop = asyncio.get_running_loop()

            def call(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
                result = fn(*args, **kwargs)
                if inspect.iscoroutine(result):
                    return asyncio.run_coroutine_threadsafe(result, loop).result(30)
                return result

            await asyncio.to_thread(body, cache, call)

    asyncio.run(main())


@pytest.mark.parametrize("kind", ["plain", "async"])
def test_writes_decorator_stores_after_the_save(face: str, url: str, kind: str) -> None:
    saved: list[User] = []

    def body(cache: Any, call: Callable[..., Any]) -> None:
        writer = make_writer(cache, kind, saved)
        get = getter(cache, call)
        assert writer.__name__ in {"save_user", "save_user_async"}
        ada = User(1, "Ada")
        assert call(writer, ada) == ada
        assert saved == [ada]
        assert get("user:1") == ada
        ada2 = User(1, "Ada L.")
        assert call(writer, user=ada2) == ada2
        assert get("user:1") == ada2
        with pytest.raises(SaveFailed):
            call(writer, User(1, "never"), fail=True)
        assert get("user:1", MISSING) is MISSING
        assert saved == [ada, ada2]
        assert call(writer, User(2, "Bob")) == User(2, "Bob")
        assert get("user:2") == User(2, "Bob")
        assert get("user:1", MISSING) is MISSING

    run_writer(face, url, body)


def getter(cache: Any, call: Callable[..., Any]) -> Callable[..., Any]:
    return lambda key, default=None: call(cache.get, key, default)


@pytest.mark.parametrize("kind", ["plain", "async"])
def test_writes_decorator_key_callable_ttl_and_tags(face: str, url: str, kind: str) -> None:
    saved: list[User] = []

    def body(cache: Any, call: Callable[..., Any]) -> None:
        writer = make_writer(
            cache, kind, saved, key=lambda user, fail=False: f"u-{user.id}", ttl=50, tags=["users"]
        )
        get = getter(cache, call)
        assert call(writer, User(7, "G")) == User(7, "G")
        assert get("u-7") == User(7, "G")
        left = call(cache.ttl, "u-7")
        assert isinstance(left, float) and 40 < left <= 55, left
        call(cache._bump, [tag_key(cache._key("u-7"), "users")])
        assert get("u-7", MISSING) is MISSING

    run_writer(face, url, body)


def test_writes_decorator_rejects_bad_options_before_any_save(hc: Harness) -> None:
    cache = hc.cache.cache
    saved: list[User] = []
    for options, error in BAD_OPTIONS:
        ttl = options.get("ttl")
        tags = options.get("tags")
        with pytest.raises(error):
            make_writer(cache, "plain", saved, ttl=ttl, tags=tags)
    with pytest.raises(ValueError):
        make_writer(cache, "plain", saved, key="user:{account.id}")  # not a parameter
    with pytest.raises(TypeError):
        make_writer(cache, "plain", saved, key=None)
    with pytest.raises(TypeError):
        make_writer(cache, "plain", saved, key=42)
    with pytest.raises(TypeError):
        cache.writes(key="k")(42)
    assert saved == []


def test_a_cached_reader_sees_what_writes_stored(face: str, url: str) -> None:
    loads: list[int] = []
    saved: list[User] = []
    if face == "sync":
        with Cache(url) as cache:

            @cache.cached(key="user:{user_id}", ttl=LONG)
            def load_user(user_id: int) -> User:
                loads.append(user_id)
                return User(user_id, "from the database")

            @cache.writes(key="user:{user.id}")
            def save_user(user: User) -> User:
                saved.append(user)
                return user

            assert load_user(1) == User(1, "from the database")
            assert save_user(User(1, "renamed")) == User(1, "renamed")
            assert load_user(1) == User(1, "renamed")
            assert save_user(User(2, "new")) == User(2, "new")
            assert load_user(2) == User(2, "new")
        assert loads == [1]
        return

    async def main() -> None:
        async with AsyncCache(url) as cache:

            @cache.cached(key="user:{user_id}", ttl=LONG)
            async def load_user(user_id: int) -> User:
                loads.append(user_id)
                return User(user_id, "from the database")

            @cache.writes(key="user:{user.id}")
            async def save_user(user: User) -> User:
                saved.append(user)
                return user

            assert await load_user(1) == User(1, "from the database")
            assert await save_user(User(1, "renamed")) == User(1, "renamed")
            assert await load_user(1) == User(1, "renamed")
            assert await save_user(User(2, "new")) == User(2, "new")
            assert await load_user(2) == User(2, "new")

    asyncio.run(main())
    assert loads == [1]


def test_a_failed_writes_call_makes_the_cached_reader_reload(face: str, url: str) -> None:
    loads: list[int] = []

    def load(user_id: int) -> User:
        loads.append(user_id)
        return User(user_id, f"load {len(loads)}")

    def save(user: User) -> User:
        raise SaveFailed(user.id)

    if face == "sync":
        with Cache(url) as cache:
            load_user = cache.cached(key="user:{user_id}", ttl=LONG)(load)
            save_user = cache.writes(key="user:{user.id}")(save)
            assert load_user(1) == User(1, "load 1")
            with pytest.raises(SaveFailed):
                save_user(User(1, "x"))
            assert load_user(1) == User(1, "load 2")
        assert loads == [1, 1]
        return

    async def main() -> None:
        async with AsyncCache(url) as cache:

            @cache.cached(key="user:{user_id}", ttl=LONG)
            @functools.wraps(load)
            async def load_user(user_id: int) -> User:
                return load(user_id)

            @cache.writes(key="user:{user.id}")
            async def save_user(user: User) -> User:
                return save(user)

            assert await load_user(1) == User(1, "load 1")
            with pytest.raises(SaveFailed):
                await save_user(User(1, "x"))
            assert await load_user(1) == User(1, "load 2")

    asyncio.run(main())
    assert loads == [1, 1]
