"""``@cache.cached`` as issue 3 promises it, on the sync and the async face.

Tests that store entries run over memory (a named store, so a second cache can
inspect it), a temporary SQLite file and a private Redis, each with ``Cache``
and plain functions ("sync") and with ``AsyncCache`` and ``async def``
functions ("async"). Functions count their own runs: every assertion about
caching is an exact count. Cross-process behaviour is in
``test_cached_processes.py``.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import threading
import time
import typing
import uuid
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from hotcache import MISSING, AsyncCache, Cache
from hotcache._core.keys import tag_key

BACKENDS = ("memory", "sqlite", "redis")
FACES = ("sync", "async")
POLL_TIMEOUT = 5.0
JOIN_TIMEOUT = 10.0


class User:
    """A module-level type, so string annotations that name it resolve."""

    def __init__(self, user_id: int) -> None:
        self.id = user_id

    def __eq__(self, other: object) -> bool:
        return isinstance(other, User) and other.id == self.id

    def __hash__(self) -> int:
        return hash(self.id)


# -- the environment a test runs in --------------------------------------------------------


class Env:
    """A cache of one face over one store, and the loop its coroutines run on."""

    def __init__(self, face: str, url: str) -> None:
        self.face = face
        self.url = url
        self.loop = asyncio.new_event_loop() if face == "async" else None
        self._opened: list[Cache | AsyncCache] = []
        self.cache = self.open()
        self._view: Cache | None = None

    @property
    def is_async(self) -> bool:
        return self.face == "async"

    def open(self, **options: Any) -> Any:
        """Open another cache of this face over the same store (closed with the env)."""
        cache: Cache | AsyncCache = (AsyncCache if self.is_async else Cache)(self.url, **options)
        self._opened.append(cache)
        return cache

    @property
    def view(self) -> Cache:
        """A plain ``Cache`` over the same store, to look at what was stored."""
        if self._view is None:
            self._view = Cache(self.url)
        return self._view

    def run(self, value: Any) -> Any:
        """Return ``value``, awaited to completion first if it is awaitable."""
        if inspect.isawaitable(value):
            assert self.loop is not None, "an awaitable on the sync face"
            return self.loop.run_until_complete(_awaited(value))
        return value

    def face_of(self, fn: Callable[..., Any]) -> Callable[..., Any]:
        """Return ``fn`` as this face's function: itself, or an ``async def`` around it."""
        if not self.is_async:
            return fn

        @functools.wraps(fn)
        async def coroutine(*args: Any, **kwargs: Any) -> Any:
            await asyncio.sleep(0)  # a real suspension point, as a real coroutine has
            return fn(*args, **kwargs)

        return coroutine

    def cached(self, **options: Any) -> Callable[[Any], Any]:
        """``@cache.cached(**options)`` for a function written once as a plain ``def``.

        Also takes a ``classmethod`` or ``staticmethod`` (decorator above them).
        """

        def decorate(fn: Any) -> Any:
            if isinstance(fn, (classmethod, staticmethod)):
                target = type(fn)(self.face_of(fn.__func__))
            else:
                target = self.face_of(fn)
            return self.cache.cached(**options)(target)

        return decorate

    def under(self, tenant: str | None, call: Callable[[], Any]) -> Any:
        """Run ``call()`` inside ``cache.tenant(tenant)`` (``async with`` on the async face)."""
        if not self.is_async:
            with self.cache.tenant(tenant):
                return call()

        async def go() -> Any:
            async with self.cache.tenant(tenant):
                return await call()

        return self.run(go())

    def close(self) -> None:
        try:
            for cache in reversed(self._opened):
                self.run(cache.close())
            if self._view is not None:
                self._view.close()
        finally:
            loop, self.loop = self.loop, None
            if loop is not None:
                try:
                    loop.run_until_complete(loop.shutdown_asyncgens())
                    loop.run_until_complete(loop.shutdown_default_executor())
                finally:
                    loop.close()


async def _awaited(value: Awaitable[Any]) -> Any:
    return await value


def poll(predicate: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + POLL_TIMEOUT
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: still not true after {POLL_TIMEOUT}s")
        time.sleep(0.005)


def url_for(backend: str, request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if backend == "memory":
        return f"memory://cached-{uuid.uuid4().hex}"
    if backend == "sqlite":
        return f"sqlite:///{tmp_path / 'cache.db'}"
    return str(request.getfixturevalue("redis_url"))


@pytest.fixture(params=BACKENDS)
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    return url_for(request.param, request, tmp_path)


@pytest.fixture
def env(face: str, store_url: str) -> Iterator[Env]:
    """One face over one of the storing backends."""
    e = Env(face, store_url)
    yield e
    e.close()


@pytest.fixture
def mem_env(face: str) -> Iterator[Env]:
    """One face over a memory store: for what does not depend on the backend."""
    e = Env(face, f"memory://cached-{uuid.uuid4().hex}")
    yield e
    e.close()


# -- plain functions, async def, bare and with options ----------------------------------------


def test_a_function_runs_once_per_argument_set(env: Env) -> None:
    ran: list[int] = []

    def square(x: int) -> int:
        ran.append(x)
        return x * x

    f = env.cached()(square)
    assert env.run(f(3)) == 9
    assert env.run(f(3)) == 9
    assert ran == [3]
    assert env.run(f(4)) == 16
    assert env.run(f(3)) == 9
    assert ran == [3, 4]


def test_bare_and_parenthesised_decorator(env: Env) -> None:
    cache = env.cache
    ran: list[str] = []
    if env.is_async:

        @cache.cached
        async def bare(x: int) -> int:
            ran.append("bare")
            return x + 1

        @cache.cached()
        async def empty(x: int) -> int:
            ran.append("empty")
            return x + 2

        @cache.cached(ttl=60, jitter=0)
        async def options(x: int) -> int:
            ran.append("options")
            return x + 3

    else:

        @cache.cached
        def bare(x: int) -> int:
            ran.append("bare")
            return x + 1

        @cache.cached()
        def empty(x: int) -> int:
            ran.append("empty")
            return x + 2

        @cache.cached(ttl=60, jitter=0)
        def options(x: int) -> int:
            ran.append("options")
            return x + 3

    for _ in range(2):
        assert env.run(bare(1)) == 2
        assert env.run(empty(1)) == 3
        assert env.run(options(1)) == 4
    assert ran == ["bare", "empty", "options"]  # each once: three functions, three entries
    assert inspect.iscoroutinefunction(bare) is env.is_async


def test_an_async_def_decorated_by_a_sync_cache_runs_on_the_async_face(
    store_url: str,
) -> None:
    ran: list[int] = []

    with Cache(store_url) as cache:

        @cache.cached(key="a:{x}")
        async def fetch(x: int) -> dict[str, int]:
            await asyncio.sleep(0)
            ran.append(x)
            return {"x": x}

        assert inspect.iscoroutinefunction(fetch)
        # Two event loops in turn: the function is bound to none of them.
        assert asyncio.run(fetch(2)) == {"x": 2}
        assert asyncio.run(fetch(2)) == {"x": 2}
        assert ran == [2]
        assert cache.get("a:2") == {"x": 2}  # the sync face sees the same entry
        assert asyncio.run(fetch.get_cached(2)) == {"x": 2}
        assert asyncio.run(fetch.invalidate(2)) is True
        assert cache.get("a:2") is None
        assert asyncio.run(fetch(2)) == {"x": 2}
        assert ran == [2, 2]
        asyncio.run(fetch.clear_cache())
        assert asyncio.run(fetch.get_cached(2)) is MISSING


def test_a_plain_function_decorated_by_an_async_cache_runs_on_a_sync_twin(
    store_url: str,
) -> None:
    ran: list[int] = []
    loop = asyncio.new_event_loop()
    cache = AsyncCache(store_url)
    try:

        @cache.cached(key="p:{x}")
        def compute(x: int) -> list[int]:
            ran.append(x)
            return [x, x]

        assert not inspect.iscoroutinefunction(compute)
        assert compute(5) == [5, 5]
        assert compute(5) == [5, 5]
        assert ran == [5]
        assert loop.run_until_complete(cache.get("p:5")) == [5, 5]  # one store, both faces
        loop.run_until_complete(cache.set("p:6", ["planted"]))
        assert compute(6) == ["planted"]
        assert ran == [5]
        assert compute.get_cached(5) == [5, 5]
        assert compute.invalidate(5) is True
        assert compute.invalidate(5) is False
        assert loop.run_until_complete(cache.get("p:5")) is None
        assert compute(5) == [5, 5]
        compute.clear_cache()
        assert compute.get_cached(5) is MISSING
        assert ran == [5, 5]
    finally:
        loop.run_until_complete(cache.close())
        loop.run_until_complete(loop.shutdown_default_executor())
        loop.close()


# -- methods, classmethods, staticmethods ------------------------------------------------------


def test_methods_leave_self_out_of_the_key(env: Env) -> None:
    ran: list[tuple[int, int]] = []

    class Repo:
        def __init__(self, repo_id: int) -> None:
            self.id = repo_id

        @env.cached()
        def get(self, ident: int) -> str:
            ran.append((self.id, ident))
            return f"{self.id}:{ident}"

    one, two = Repo(1), Repo(2)
    assert env.run(one.get(5)) == "1:5"
    # Equal arguments on another instance: the same entry (self is not in the key).
    assert env.run(two.get(5)) == "1:5"
    assert env.run(two.get(ident=5)) == "1:5"
    assert ran == [(1, 5)]
    assert env.run(two.get(6)) == "2:6"
    assert ran == [(1, 5), (2, 6)]
    # The controls bind like the method does.
    assert env.run(one.get.get_cached(6)) == "2:6"
    assert env.run(one.get.invalidate(6)) is True
    assert env.run(two.get.get_cached(6)) is MISSING
    assert env.run(one.get.refresh(5)) == "1:5"
    assert ran == [(1, 5), (2, 6), (1, 5)]
    env.run(Repo.get.clear_cache())
    assert env.run(one.get.get_cached(5)) is MISSING


@pytest.mark.parametrize("how", ["template", "callable"])
def test_a_key_can_include_the_instance_identity(env: Env, how: str) -> None:
    ran: list[tuple[int, int]] = []
    key: Any = (
        "repo:{self.id}:{ident}"
        if how == "template"
        else (lambda self, ident: f"repo:{self.id}:{ident}")
    )

    class Repo:
        def __init__(self, repo_id: int) -> None:
            self.id = repo_id

        @env.cached(key=key)
        def get(self, ident: int) -> str:
            ran.append((self.id, ident))
            return f"{self.id}:{ident}"

    one, two = Repo(1), Repo(2)
    assert env.run(one.get(5)) == "1:5"
    assert env.run(two.get(5)) == "2:5"
    assert env.run(Repo(1).get(5)) == "1:5"  # another object with the same id: same entry
    assert ran == [(1, 5), (2, 5)]
    assert env.run(env.cache.get("repo:2:5")) == "2:5"


def test_classmethods_and_staticmethods(env: Env) -> None:
    ran: list[str] = []

    class Repo:
        @env.cached()
        @classmethod
        def load(cls, ident: int) -> str:
            ran.append(f"load {cls.__name__} {ident}")
            return f"loaded {ident}"

        @env.cached()
        @staticmethod
        def parse(text: str) -> list[str]:
            ran.append(f"parse {text}")
            return text.split()

    assert env.run(Repo.load(1)) == "loaded 1"
    assert env.run(Repo().load(1)) == "loaded 1"  # through an instance: cls is bound
    assert env.run(Repo.load(ident=1)) == "loaded 1"
    assert env.run(Repo.parse("a b")) == ["a", "b"]
    assert env.run(Repo().parse("a b")) == ["a", "b"]
    assert ran == ["load Repo 1", "parse a b"]
    assert env.run(Repo.load.get_cached(1)) == "loaded 1"
    assert env.run(Repo.parse.invalidate("a b")) is True
    assert env.run(Repo.parse.get_cached("a b")) is MISSING
    env.run(Repo().load.clear_cache())
    assert env.run(Repo.load.get_cached(1)) is MISSING
    assert env.run(Repo.load(1)) == "loaded 1"
    assert ran == ["load Repo 1", "parse a b", "load Repo 1"]


# -- options ---------------------------------------------------------------------------------


def test_ttl_expires_the_entry(env: Env) -> None:
    ran: list[int] = []

    def square(x: int) -> int:
        ran.append(x)
        return x * x

    f = env.cached(ttl=0.2, jitter=0, key="sq:{x}")(square)
    assert env.run(f(3)) == 9
    left = env.run(env.cache.ttl("sq:3"))
    assert isinstance(left, float) and 0 < left <= 0.2
    poll(lambda: env.run(f.get_cached(3)) is MISSING, "the entry expired")
    assert ran == [3]  # get_cached never calls the function
    assert env.run(f(3)) == 9
    assert ran == [3, 3]


def test_ttl_defaults_to_the_cache_default_ttl(env: Env) -> None:
    cache = env.open(default_ttl=50, jitter=0, namespace="dflt")

    def ident(x: int) -> int:
        return x

    f = cache.cached(key="d:{x}")(env.face_of(ident))
    env.run(f(1))
    left = env.run(cache.ttl("d:1"))
    assert isinstance(left, float) and 49 < left <= 50


def test_key_template_names_the_entry(env: Env) -> None:
    ran: list[int] = []

    def load_user(user_id: int, *, verbose: bool = False) -> dict[str, Any]:
        ran.append(user_id)
        return {"id": user_id, "verbose": verbose}

    f = env.cached(key="user:{user_id}")(load_user)
    assert env.run(f(1)) == {"id": 1, "verbose": False}
    assert env.run(env.cache.get("user:1")) == {"id": 1, "verbose": False}
    # The template is the whole key: arguments it leaves out share the entry.
    assert env.run(f(1, verbose=True)) == {"id": 1, "verbose": False}
    assert env.run(f(user_id=1)) == {"id": 1, "verbose": False}
    assert ran == [1]
    env.run(env.cache.set("user:2", {"id": 2, "planted": True}))
    assert env.run(f(2)) == {"id": 2, "planted": True}
    assert ran == [1]
    env.run(env.cache.delete("user:1"))
    assert env.run(f(1)) == {"id": 1, "verbose": False}
    assert ran == [1, 1]


def test_key_template_formats_attributes_of_arguments(env: Env) -> None:
    ran: list[int] = []

    def profile(user: User) -> str:
        ran.append(user.id)
        return f"profile {user.id}"

    f = env.cached(key="profile:{user.id}")(profile)
    assert env.run(f(User(7))) == "profile 7"
    assert env.run(f(User(7))) == "profile 7"
    assert ran == [7]
    assert env.run(env.cache.get("profile:7")) == "profile 7"


def test_a_template_naming_no_parameter_is_refused(mem_env: Env) -> None:
    def load(user_id: int) -> int:
        return user_id

    with pytest.raises(ValueError, match="uid"):
        mem_env.cached(key="user:{uid}")(load)


def test_key_callable(env: Env) -> None:
    ran: list[tuple[str, int]] = []

    def search(query: str, page: int = 1) -> list[str]:
        ran.append((query, page))
        return [f"{query}#{page}"]

    f = env.cached(key=lambda query, page=1: f"search:{query.lower()}:{page}")(search)
    assert env.run(f("Cats")) == ["Cats#1"]
    assert env.run(f("CATS", page=1)) == ["Cats#1"]  # the callable decided they are one
    assert env.run(f("cats", 2)) == ["cats#2"]
    assert ran == [("Cats", 1), ("cats", 2)]
    assert env.run(env.cache.get("search:cats:1")) == ["Cats#1"]


@pytest.mark.parametrize("option", ["namespace", "version"])
def test_namespace_and_version_keep_separate_entries(env: Env, option: str) -> None:
    ran: list[str] = []

    def first() -> str:
        ran.append("first")
        return "first"

    def second() -> str:
        ran.append("second")
        return "second"

    values = {"namespace": ("ns-one", "ns-two"), "version": (1, 2)}[option]
    f = env.cached(key="shared", **{option: values[0]})(first)
    g = env.cached(key="shared", **{option: values[1]})(second)
    assert env.run(f()) == "first"
    assert env.run(g()) == "second"
    assert env.run(f()) == "first"
    assert env.run(g()) == "second"
    assert ran == ["first", "second"]
    assert env.run(env.cache.get("shared")) is None  # neither is the cache's own space
    env.run(f.clear_cache())
    assert env.run(g()) == "second"
    assert env.run(f()) == "first"
    assert ran == ["first", "second", "first"]


@pytest.mark.parametrize("option", ["namespace", "version"])
def test_an_entry_is_readable_by_a_cache_of_its_namespace_or_version(env: Env, option: str) -> None:
    """``@cached(namespace="x", key="k")`` stores what ``Cache(namespace="x").get("k")`` reads."""

    def first() -> str:
        return "first"

    value = {"namespace": "ns-one", "version": "7"}[option]
    f = env.cached(key="shared", **{option: value})(first)
    assert env.run(f()) == "first"
    other = env.open(**{option: value})
    assert env.run(other.get("shared")) == "first"


def test_tags_are_stored_in_the_entry_metadata(env: Env) -> None:
    def team(team_id: int) -> str:
        return f"team {team_id}"

    def member(user_id: int) -> str:
        return f"user {user_id}"

    f = env.cached(key="team:{team_id}", tags=["teams", "directory"])(team)
    g = env.cached(key="member:{user_id}", tags=lambda user_id: [f"user:{user_id}", "teams"])(
        member
    )
    env.run(f(3))
    env.run(g(4))

    def carried(key: str, expected: str) -> list[str]:
        view = env.view
        k = view._key(key)
        raw = view._backend.get(k)
        assert raw is not None, key
        value, meta = view._codec.decode(k, raw)
        assert value == expected
        assert meta is not None, f"{key} carries no metadata"
        return [tag for tag, _ in meta.tags]

    team_tags = carried("team:3", "team 3")
    assert [t for t in team_tags if t in {"teams", "directory"}] == ["teams", "directory"]
    member_tags = carried("member:4", "user 4")
    assert {"user:4", "teams"} <= set(member_tags)
    assert "directory" not in member_tags


def test_bad_tags_are_refused(mem_env: Env) -> None:
    def one(x: int) -> int:
        return x

    with pytest.raises(TypeError):
        mem_env.cached(tags="users")(one)  # a str, not a list of them
    with pytest.raises(ValueError):
        mem_env.cached(tags=[""])(one)


def test_condition_decides_from_the_result(env: Env) -> None:
    ran: list[int] = []

    def find(x: int) -> int | None:
        ran.append(x)
        return x if x > 0 else None

    f = env.cached(condition=lambda result: result is not None)(find)
    assert env.run(f(-1)) is None
    assert env.run(f(-1)) is None
    assert env.run(f.get_cached(-1)) is MISSING
    assert ran == [-1, -1]  # refused: not stored, so it runs each time
    assert env.run(f(2)) == 2
    assert env.run(f(2)) == 2
    assert ran == [-1, -1, 2]


def test_unless_decides_from_the_result(env: Env) -> None:
    ran: list[int] = []

    def items(x: int) -> list[int]:
        ran.append(x)
        return list(range(x))

    f = env.cached(unless=lambda result: result == [])(items)
    assert env.run(f(0)) == []
    assert env.run(f(0)) == []
    assert env.run(f.get_cached(0)) is MISSING
    assert env.run(f(2)) == [0, 1]
    assert env.run(f(2)) == [0, 1]
    assert ran == [0, 0, 2]
    both = env.cached(condition=lambda r: len(r) < 3, unless=lambda r: r == [])(items)
    env.run(both(0))
    env.run(both(1))
    env.run(both(3))
    assert env.run(both.get_cached(0)) is MISSING
    assert env.run(both.get_cached(1)) == [0]
    assert env.run(both.get_cached(3)) is MISSING


def test_jitter_spreads_lifetimes_within_bounds(env: Env) -> None:
    def ident(x: int) -> int:
        return x

    spread = env.cached(ttl=100, jitter=0.5, key="j:{x}")(ident)
    exact = env.cached(ttl=100, jitter=0, key="e:{x}")(ident)
    default = env.cached(ttl=100, key="d:{x}")(ident)  # the cache's jitter: 0.1
    n = 20
    for x in range(n):
        env.run(spread(x))
        env.run(exact(x))
        env.run(default(x))
    spreads = [env.run(env.cache.ttl(f"j:{x}")) for x in range(n)]
    exacts = [env.run(env.cache.ttl(f"e:{x}")) for x in range(n)]
    defaults = [env.run(env.cache.ttl(f"d:{x}")) for x in range(n)]
    assert all(49 < left <= 150 for left in spreads), spreads
    assert max(spreads) - min(spreads) > 5, spreads  # 20 draws over ±50 s are not all alike
    assert all(99 < left <= 100 for left in exacts), exacts
    assert all(89 < left <= 110 for left in defaults), defaults


def test_bad_options_are_refused_at_decoration(mem_env: Env) -> None:
    def one(x: int) -> int:
        return x

    with pytest.raises(ValueError):
        mem_env.cached(jitter=1.5)(one)
    with pytest.raises(ValueError):
        mem_env.cached(ttl=-1)(one)
    with pytest.raises(TypeError):
        mem_env.cached(key=42)(one)
    with pytest.raises(TypeError):
        mem_env.cached(cache_errors=[ValueError, "oops"])(one)


def test_listed_errors_are_cached_for_error_ttl(env: Env) -> None:
    ran: list[int] = []

    def lookup(x: int) -> int:
        ran.append(x)
        if x < 0:
            raise KeyError(x)
        if x == 0:
            raise ValueError("zero")
        return x

    f = env.cached(cache_errors=[KeyError], error_ttl=60)(lookup)
    for _ in range(3):
        with pytest.raises(KeyError) as info:
            env.run(f(-1))
        assert info.value.args == (-1,)
    assert ran == [-1]  # cached: re-raised without calling the function again
    with pytest.raises(KeyError):
        env.run(f.get_cached(-1))
    for _ in range(2):
        with pytest.raises(ValueError, match="zero"):
            env.run(f(0))
    assert ran == [-1, 0, 0]  # not listed: never cached
    assert env.run(f.get_cached(0)) is MISSING
    assert env.run(f(1)) == 1
    assert env.run(f(1)) == 1
    assert ran == [-1, 0, 0, 1]


def test_a_cached_error_expires_after_error_ttl(env: Env) -> None:
    ran: list[int] = []

    def lookup(x: int) -> int:
        ran.append(x)
        raise LookupError(x)

    f = env.cached(cache_errors=(LookupError,), error_ttl=0.15, ttl=100)(lookup)
    with pytest.raises(LookupError):
        env.run(f(1))

    def expired() -> bool:
        try:
            return env.run(f.get_cached(1)) is MISSING
        except LookupError:
            return False

    poll(expired, "the cached error expired")
    assert ran == [1]
    with pytest.raises(LookupError):
        env.run(f(1))
    assert ran == [1, 1]


def test_exceptions_are_not_cached_by_default(env: Env) -> None:
    ran: list[int] = []

    def flaky(x: int) -> int:
        ran.append(x)
        if len(ran) < 3:
            raise RuntimeError("not yet")
        return x

    f = env.cached()(flaky)
    for _ in range(2):
        with pytest.raises(RuntimeError):
            env.run(f(1))
    assert env.run(f.get_cached(1)) is MISSING
    assert env.run(f(1)) == 1
    assert env.run(f(1)) == 1
    assert ran == [1, 1, 1]


# -- what cannot be decorated ------------------------------------------------------------------


@pytest.mark.parametrize("cls", [Cache, AsyncCache])
def test_generators_and_non_callables_are_refused_at_decoration(cls: type[Any]) -> None:
    cache = cls("memory://")

    def numbers(n: int) -> Iterator[int]:
        yield from range(n)

    async def async_numbers(n: int) -> Any:
        for i in range(n):
            yield i

    class Holder:
        def rows(self) -> Iterator[int]:
            yield 1

    targets: list[Any] = [
        numbers,
        async_numbers,
        Holder.rows,
        classmethod(numbers),
        staticmethod(async_numbers),
    ]
    for target in targets:
        with pytest.raises(TypeError, match="generator"):
            cache.cached(target)
        with pytest.raises(TypeError, match="generator"):
            cache.cached(ttl=5)(target)
    for bad in (42, "numbers", b"x", [numbers]):
        with pytest.raises(TypeError):
            cache.cached(bad)
        with pytest.raises(TypeError):
            cache.cached(ttl=5)(bad)


# -- the default key ---------------------------------------------------------------------------


def test_calls_that_bind_alike_share_one_entry(env: Env) -> None:
    ran: list[tuple[int, int]] = []

    def pair(x: int, y: int = 2) -> tuple[int, int]:
        ran.append((x, y))
        return (x, y)

    f = env.cached()(pair)
    assert env.run(f(1)) == (1, 2)
    assert env.run(f(x=1)) == (1, 2)
    assert env.run(f(1, y=2)) == (1, 2)
    assert env.run(f(1, 2)) == (1, 2)
    assert env.run(f(y=2, x=1)) == (1, 2)
    assert ran == [(1, 2)]
    assert env.run(f(1, 3)) == (1, 3)
    assert env.run(f.get_cached(x=1, y=3)) == (1, 3)
    assert ran == [(1, 2), (1, 3)]


def test_an_async_def_binds_its_own_signature(store_url: str) -> None:
    """As above, with an ``async def`` written out (not a wrapper around a plain def)."""
    ran: list[tuple[int, int]] = []

    async def scenario() -> None:
        async with AsyncCache(store_url) as cache:

            @cache.cached
            async def pair(x: int, y: int = 2) -> tuple[int, int]:
                ran.append((x, y))
                return (x, y)

            assert await pair(1) == (1, 2)
            assert await pair(x=1) == (1, 2)
            assert await pair(1, y=2) == (1, 2)
            assert ran == [(1, 2)]
            assert await pair(2) == (2, 2)
            assert ran == [(1, 2), (2, 2)]

    asyncio.run(scenario())


def test_space_joined_arguments_never_share(env: Env) -> None:
    ran: list[tuple[str, ...]] = []

    def join(*parts: str) -> str:
        ran.append(parts)
        return "|".join(parts)

    f = env.cached()(join)
    assert env.run(f("a b")) == "a b"
    assert env.run(f("a", "b")) == "a|b"
    assert env.run(f("a", " b")) == "a| b"
    assert env.run(f("a b")) == "a b"
    assert env.run(f("a", "b")) == "a|b"
    assert ran == [("a b",), ("a", "b"), ("a", " b")]


def test_values_equal_in_python_but_of_other_types_never_share(env: Env) -> None:
    """1, True and 1.0 compare and hash equal, yet they are different arguments."""
    ran: list[Any] = []

    def describe(x: Any) -> str:
        ran.append(x)
        return f"{type(x).__name__} {x!r}"

    f = env.cached()(describe)
    assert env.run(f(1)) == "int 1"
    assert env.run(f(True)) == "bool True"
    assert env.run(f(1.0)) == "float 1.0"
    assert env.run(f(1)) == "int 1"
    assert len(ran) == 3


def test_an_argument_without_stable_text_is_refused_by_name(env: Env) -> None:
    ran: list[Any] = []

    class Opaque:
        pass

    def handle(request_id: int, obj: Any = None) -> str:
        ran.append(obj)
        return "handled"

    f = env.cached()(handle)
    for bad in (Opaque(), [1, Opaque()], {"k": Opaque()}, lambda: 1):
        with pytest.raises(TypeError, match="'obj'"):
            env.run(f(1, bad))
        with pytest.raises(TypeError, match="'obj'"):
            env.run(f(1, obj=bad))
    assert ran == []  # refused before the function ran

    def show(user: Any) -> str:
        return "shown"

    g = env.cached(key="show:{user}")(show)  # a template that formats an address
    with pytest.raises(TypeError, match="address"):
        env.run(g(Opaque()))


def test_a_type_with_cache_key_hook_is_keyed_by_it(env: Env) -> None:
    ran: list[int] = []

    class Account:
        def __init__(self, account_id: int, session: object) -> None:
            self.id = account_id
            self.session = session  # not part of the key

        def __cache_key__(self) -> tuple[str, int]:
            return ("account", self.id)

    def balance(account: Account) -> int:
        ran.append(account.id)
        return account.id * 100

    f = env.cached()(balance)
    assert env.run(f(Account(1, object()))) == 100
    assert env.run(f(Account(1, object()))) == 100
    assert env.run(f(account=Account(1, object()))) == 100
    assert env.run(f(Account(2, object()))) == 200
    assert ran == [1, 2]


def test_none_results_are_cached_and_told_from_a_miss(env: Env) -> None:
    ran: list[int] = []

    def find(x: int) -> None:
        ran.append(x)
        return None

    f = env.cached()(find)
    assert env.run(f.get_cached(1)) is MISSING
    assert env.run(f(1)) is None
    assert env.run(f(1)) is None
    assert ran == [1]
    assert env.run(f.get_cached(1)) is None
    assert env.run(f.get_cached(2)) is MISSING


# -- the property: binding decides sharing ---------------------------------------------------

VALUES = st.sampled_from(
    [0, 1, 2, True, False, 1.0, 0.0, -0.0, None, "", "1", "a", "a b", (1,), [1], (), []]
)
# Values Python calls equal (and hashes alike) that are different arguments all the same.
TWINS = ([0, False, 0.0, -0.0], [1, True, 1.0])
TWIN_VALUES = st.sampled_from([v for group in TWINS for v in group])


def twin_of(draw: st.DrawFn, value: Any) -> Any:
    """Return a value equal to ``value`` in Python but of another type, if there is one."""
    for group in TWINS:
        if any(value is v or (type(value) is type(v) and repr(value) == repr(v)) for v in group):
            return draw(st.sampled_from([v for v in group if repr(v) != repr(value)]))
    return value


DEFAULT: Any = object()  # "the parameter's default": omitted or passed as that default


def target(a: Any, b: Any = 0, *rest: Any, c: Any = None, **extra: Any) -> str:
    return ""


TARGET_SIGNATURE = inspect.signature(target)
Call = tuple[tuple[Any, ...], dict[str, Any]]


@st.composite
def arguments(draw: st.DrawFn) -> tuple[Any, Any, tuple[Any, ...], Any, dict[str, Any]]:
    """One set of arguments of ``target``: a, b, rest, c, extra."""
    a = draw(TWIN_VALUES | VALUES)
    b = draw(st.just(DEFAULT) | VALUES)
    rest = () if b is DEFAULT else tuple(draw(st.lists(VALUES, max_size=2)))
    c = draw(st.just(DEFAULT) | st.just(DEFAULT) | VALUES)
    extra = draw(st.just({}) | st.dictionaries(st.sampled_from(["d", "e"]), VALUES, max_size=2))
    return a, b, rest, c, extra


@st.composite
def call_of(draw: st.DrawFn, args: tuple[Any, Any, tuple[Any, ...], Any, dict[str, Any]]) -> Call:
    """One way of passing ``args``: positional or keyword, defaults omitted or explicit."""
    a, b, rest, c, extra = args
    style = draw(st.sampled_from(["positional", "keywords", "defaults spelled out", "mixed"]))
    if style == "positional":
        flags = {"a_kw": False, "b_kw": False, "b_out": True, "c_out": True}
    elif style == "keywords":
        flags = {"a_kw": True, "b_kw": True, "b_out": True, "c_out": True}
    elif style == "defaults spelled out":
        flags = {"a_kw": False, "b_kw": False, "b_out": False, "c_out": False}
    else:
        flags = {name: draw(st.booleans()) for name in ("a_kw", "b_kw", "b_out", "c_out")}
    positional: list[Any] = []
    kwargs: dict[str, Any] = {}
    omit_b = b is DEFAULT and flags["b_out"]
    b_value = 0 if b is DEFAULT else b
    if rest:  # a and b can only be positional
        positional += [a, b_value, *rest]
    elif flags["a_kw"]:
        kwargs["a"] = a
        if not omit_b:
            kwargs["b"] = b_value
    else:
        positional.append(a)
        if not omit_b:
            if flags["b_kw"]:
                kwargs["b"] = b_value
            else:
                positional.append(b_value)
    if c is not DEFAULT or not flags["c_out"]:
        kwargs["c"] = None if c is DEFAULT else c
    items = list(extra.items())
    if draw(st.booleans()):
        items.reverse()
    kwargs.update(items)
    return tuple(positional), kwargs


@st.composite
def histories(draw: st.DrawFn) -> list[Call]:
    """Calls over a few argument sets, each set passed in several ways.

    The sets after the first are its siblings: some values replaced by their
    twins (1 by True or 1.0...), so near-misses of sharing come up often.
    """
    base = draw(arguments())
    pool = [base]
    for _ in range(draw(st.integers(1, 2))):
        a, b, rest, c, extra = base
        a = twin_of(draw, a)
        if b is not DEFAULT and draw(st.booleans()):
            b = twin_of(draw, b)
        if c is not DEFAULT and draw(st.booleans()):
            c = twin_of(draw, c)
        pool.append((a, b, rest, c, extra))
    pool += draw(st.lists(arguments(), max_size=1))
    picks = draw(st.lists(st.sampled_from(pool), min_size=1, max_size=6))
    return [draw(call_of(args)) for args in picks]


def bound_form(args: tuple[Any, ...], kwargs: dict[str, Any]) -> str:
    """The call's arguments as bound, written so that equal text means equal arguments."""
    bound = TARGET_SIGNATURE.bind(*args, **kwargs)
    bound.apply_defaults()
    arguments = dict(bound.arguments)
    arguments["extra"] = sorted(arguments["extra"].items())
    return repr(sorted(arguments.items()))  # repr tells 1, True, 1.0 and -0.0 apart


@pytest.mark.parametrize("face_name", FACES)
@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(calls=histories())
@example(calls=[((1,), {}), ((True,), {})])  # the first bug this test found: see the report
def test_calls_share_an_entry_exactly_when_they_bind_alike(
    face_name: str, calls: list[Call]
) -> None:
    forms = [bound_form(args, kwargs) for args, kwargs in calls]
    runs: list[str] = []

    def body(*args: Any, **kwargs: Any) -> str:
        form = bound_form(args, kwargs)
        runs.append(form)
        return form

    fn: Any = functools.update_wrapper(body, target)  # target's name and signature
    if face_name == "async":
        plain = fn

        @functools.wraps(plain)
        async def fn(*args: Any, **kwargs: Any) -> str:
            return str(plain(*args, **kwargs))

        async def run_all() -> list[str]:
            async with AsyncCache("memory://") as cache:
                f = cache.cached(fn)
                return [await f(*args, **kwargs) for args, kwargs in calls]

        results = asyncio.run(run_all())
    else:
        with Cache("memory://") as cache:
            f = cache.cached(fn)
            results = [f(*args, **kwargs) for args, kwargs in calls]
    # Each call got the result of its own arguments (never another binding's)...
    assert results == forms
    # ...and the function ran once per distinct binding.
    assert sorted(runs) == sorted(set(forms))


# -- the controls ----------------------------------------------------------------------------


def test_invalidate_refresh_get_cached_uncached(env: Env) -> None:
    ran: list[int] = []

    def stamp(x: int) -> tuple[int, int]:
        ran.append(x)
        return (x, len(ran))

    f = env.cached()(stamp)
    assert env.run(f.get_cached(2)) is MISSING
    assert ran == []  # get_cached never calls
    assert env.run(f(2)) == (2, 1)
    assert env.run(f.get_cached(2)) == (2, 1)
    assert env.run(f.get_cached(x=2)) == (2, 1)
    # refresh recomputes and stores even though the entry is cached
    assert env.run(f.refresh(2)) == (2, 2)
    assert env.run(f(2)) == (2, 2)
    assert ran == [2, 2]
    # invalidate deletes exactly one entry and says whether it was there
    assert env.run(f(3)) == (3, 3)
    assert env.run(f.invalidate(x=2)) is True
    assert env.run(f.invalidate(2)) is False
    assert env.run(f.get_cached(2)) is MISSING
    assert env.run(f.get_cached(3)) == (3, 3)
    assert env.run(f(2)) == (2, 4)
    # uncached is the original: it runs every time and stores nothing
    assert f.uncached is f.__wrapped__
    assert inspect.unwrap(f.uncached) is stamp
    assert env.run(f.uncached(2)) == (2, 5)
    assert env.run(f.get_cached(2)) == (2, 4)
    assert ran == [2, 2, 3, 2, 2]


def test_refresh_of_a_missing_entry_stores_it(env: Env) -> None:
    ran: list[int] = []

    def square(x: int) -> int:
        ran.append(x)
        return x * x

    f = env.cached()(square)
    assert env.run(f.refresh(4)) == 16
    assert env.run(f(4)) == 16
    assert ran == [4]


def test_clear_cache_drops_this_functions_entries_only(env: Env) -> None:
    ran: list[str] = []

    def square(x: int) -> int:
        ran.append(f"square {x}")
        return x * x

    def cube(x: int) -> int:
        ran.append(f"cube {x}")
        return x**3

    f = env.cached()(square)
    g = env.cached()(cube)
    for x in range(3):
        env.run(f(x))
        env.run(g(x))
    env.run(env.cache.set("plain", "kept"))
    assert env.run(f.clear_cache()) is None
    for x in range(3):
        assert env.run(f.get_cached(x)) is MISSING
        assert env.run(g.get_cached(x)) == x**3
    assert env.run(env.cache.get("plain")) == "kept"
    ran.clear()
    assert env.run(f(1)) == 1
    assert env.run(f(1)) == 1
    assert env.run(g(1)) == 1
    assert ran == ["square 1"]


def test_clear_cache_reaches_a_twin_decoration_on_another_cache(env: Env) -> None:
    """The same function decorated by another cache over the same store shares its entries."""
    ran: list[int] = []

    def square(x: int) -> int:
        ran.append(x)
        return x * x

    f = env.cached()(square)
    g = env.open().cached(env.face_of(square))
    env.run(f(2))
    assert env.run(g(2)) == 4
    assert ran == [2]
    env.run(g.clear_cache())
    assert env.run(f.get_cached(2)) is MISSING
    env.run(f(2))
    assert ran == [2, 2]


class Counting:
    """A backend that forwards every call to a real one and records its name and arguments."""

    WRITES = frozenset(
        {"set", "set_many", "delete", "delete_many", "delete_matching", "incr", "touch"}
        | {"hset", "hdel"}
    )

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.calls: list[tuple[str, tuple[Any, ...]]] = []

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self.inner, name)
        if not callable(attr):
            return attr

        def counted(*args: Any, **kwargs: Any) -> Any:
            self.calls.append((name, args))
            return attr(*args, **kwargs)

        return counted


def test_clear_cache_is_one_write_whatever_the_number_of_entries(env: Env) -> None:
    entries = 5_000
    source = env.open()
    counting = Counting(source._backend)
    cache = env.open(backend=counting)

    def item(x: int) -> str:
        return "value"

    f = cache.cached(key="item:{x}")(env.face_of(item))
    assert env.run(f(0)) == "value"
    # Make 5,000 entries of the function: copies of its real entry (which carries its
    # tag version) under the keys of other arguments, written in one round trip.
    raw = env.run(counting.inner.get(cache._key("item:0")))
    assert raw is not None
    env.run(counting.inner.set_many({cache._key(f"item:{x}"): raw for x in range(entries)}, None))
    for x in (1, entries // 2, entries - 1):
        assert env.run(f.get_cached(x)) == "value"  # they are the function's entries
    counting.calls.clear()
    env.run(f.clear_cache())
    names = [name for name, _ in counting.calls]
    writes = [(name, args) for name, args in counting.calls if name in Counting.WRITES]
    assert len(writes) == 1, names
    name, args = writes[0]
    if name == "set_many":
        assert len(args[0]) == 1, args  # one key written
    assert not {"scan", "delete_matching", "delete_many", "delete"} & set(names), names
    assert len(names) <= 2, names
    for x in (0, 1, entries // 2, entries - 1):
        assert env.run(f.get_cached(x)) is MISSING


# -- no stale set ------------------------------------------------------------------------------


@pytest.mark.parametrize("first_call", [True, False], ids=["first-call", "warm"])
@pytest.mark.parametrize("clearer", ["same", "other-cache"])
def test_a_call_running_across_clear_cache_leaves_nothing_stale(
    env: Env, clearer: str, first_call: bool
) -> None:
    """``first-call``: the function's first call ever is the one in flight;
    ``warm``: another argument was cached before (the function's tag exists)."""
    ran: list[int] = []
    other = env.open()
    if env.is_async:

        async def scenario() -> None:
            started, release = asyncio.Event(), asyncio.Event()

            async def slow(x: int) -> int:
                ran.append(x)
                if ran.count(1) == 1 and x == 1:
                    started.set()
                    await asyncio.wait_for(release.wait(), JOIN_TIMEOUT)
                return ran.count(1)

            f = env.cache.cached(slow)
            g = other.cached(slow) if clearer == "other-cache" else f
            if not first_call:
                await f(0)
                ran.clear()
            task = asyncio.ensure_future(f(1))
            await asyncio.wait_for(started.wait(), JOIN_TIMEOUT)
            await g.clear_cache()
            release.set()
            assert await task == 1
            assert await f(1) == 2  # the result computed before the clear was not served
            assert await f(1) == 2

        env.run(scenario())
    else:
        started, release = threading.Event(), threading.Event()

        def slow(x: int) -> int:
            ran.append(x)
            if ran.count(1) == 1 and x == 1:
                started.set()
                assert release.wait(JOIN_TIMEOUT)
            return ran.count(1)

        f = env.cache.cached(slow)
        g = other.cached(slow) if clearer == "other-cache" else f
        if not first_call:
            f(0)
            ran.clear()
        results: list[int] = []
        worker = threading.Thread(target=lambda: results.append(f(1)), daemon=True)
        worker.start()
        assert started.wait(JOIN_TIMEOUT)
        g.clear_cache()
        release.set()
        worker.join(JOIN_TIMEOUT)
        assert not worker.is_alive()
        assert results == [1]
        assert f(1) == 2
        assert f(1) == 2
    assert ran == [1, 1]


# -- metadata --------------------------------------------------------------------------------


def test_wraps_metadata_signature_and_type_hints_survive(face: str) -> None:
    cache: Any = AsyncCache("memory://") if face == "async" else Cache("memory://")

    if face == "async":

        async def load_user(user_id: int, *, fresh: bool = False) -> User:
            """Load one user."""
            return User(user_id)

    else:

        def load_user(user_id: int, *, fresh: bool = False) -> User:
            """Load one user."""
            return User(user_id)

    f = cache.cached(ttl=5)(load_user)
    assert f.__name__ == "load_user"
    assert f.__qualname__ == load_user.__qualname__
    assert f.__module__ == __name__
    assert f.__doc__ == "Load one user."
    assert f.__wrapped__ is load_user
    assert f.uncached is load_user
    assert inspect.signature(f) == inspect.signature(load_user)
    hints = typing.get_type_hints(f)
    assert hints == typing.get_type_hints(load_user)
    assert hints == {"user_id": int, "fresh": bool, "return": User}
    assert inspect.iscoroutinefunction(f) is (face == "async")
    bare = cache.cached(load_user)
    assert inspect.signature(bare) == inspect.signature(load_user)
    assert inspect.iscoroutinefunction(bare) is (face == "async")


def method_classes(env: Env) -> tuple[type[Any], type[Any]]:
    """A plain class and the same class with its methods decorated."""
    as_face = env.face_of

    class Plain:
        @as_face
        def get(self, ident: int) -> User:
            """Get one."""
            return User(ident)

        @classmethod
        @as_face
        def load(cls, ident: int) -> User:
            """Load one."""
            return User(ident)

    class Repo:
        @env.cached()
        def get(self, ident: int) -> User:
            """Get one."""
            return User(ident)

        @env.cached(ttl=5)
        @classmethod
        def load(cls, ident: int) -> User:
            """Load one."""
            return User(ident)

    return Plain, Repo


def test_method_names_and_signatures_survive(mem_env: Env) -> None:
    plain_cls, repo_cls = method_classes(mem_env)
    plain, repo = plain_cls(), repo_cls()
    assert repo_cls.get.__name__ == "get"
    assert repo_cls.get.__qualname__.endswith("Repo.get")
    assert repo_cls.get.__doc__ == "Get one."
    assert repo_cls.get.__module__ == __name__
    assert repo.get.__name__ == "get"
    assert repo.get.__qualname__.endswith("Repo.get")
    assert repo_cls.load.__name__ == "load"
    assert inspect.signature(repo_cls.get) == inspect.signature(plain_cls.get)
    assert inspect.signature(repo.get) == inspect.signature(plain.get)
    assert inspect.signature(repo_cls.load) == inspect.signature(plain_cls.load)
    assert typing.get_type_hints(repo_cls.get) == typing.get_type_hints(plain_cls.get)
    assert inspect.iscoroutinefunction(repo_cls.get) is mem_env.is_async


def test_bound_method_doc_and_module_survive(mem_env: Env) -> None:
    """A method read from an instance (or a classmethod from its class) keeps its
    ``__doc__`` and ``__module__``, as a plain bound method does."""
    plain_cls, repo_cls = method_classes(mem_env)
    plain, repo = plain_cls(), repo_cls()
    assert plain.get.__doc__ == "Get one."  # what users get without the decorator
    assert repo.get.__doc__ == "Get one."
    assert repo.get.__module__ == __name__
    assert repo_cls.load.__doc__ == "Load one."
    assert repo_cls.load.__module__ == __name__


def test_bound_method_type_hints_resolve(mem_env: Env) -> None:
    plain_cls, repo_cls = method_classes(mem_env)
    plain, repo = plain_cls(), repo_cls()
    assert typing.get_type_hints(plain.get) == {"ident": int, "return": User}
    assert typing.get_type_hints(repo.get) == {"ident": int, "return": User}
    assert typing.get_type_hints(repo_cls.load) == {"ident": int, "return": User}


# -- tenants ---------------------------------------------------------------------------------


def test_tenants_keep_separate_entries_and_clear_separately(env: Env) -> None:
    """Observed: each tenant, and no tenant, has its own entries and its own clear_cache."""
    ran: list[int] = []

    def whoami(x: int) -> int:
        ran.append(x)
        return len(ran)

    f = env.cached()(whoami)
    assert env.under("a", lambda: f(1)) == 1
    assert env.under("a", lambda: f(1)) == 1
    assert env.under("b", lambda: f(1)) == 2  # tenant b does not see tenant a's entry
    assert env.under("b", lambda: f(1)) == 2
    assert env.run(f(1)) == 3  # neither does a call under no tenant
    assert env.under("a", lambda: f.get_cached(1)) == 1
    env.under("a", f.clear_cache)
    assert env.under("a", lambda: f.get_cached(1)) is MISSING
    assert env.under("b", lambda: f.get_cached(1)) == 2  # tenant b's entries are untouched
    assert env.run(f.get_cached(1)) == 3  # and so are the no-tenant ones
    assert env.under("a", lambda: f(1)) == 4
    env.run(f.clear_cache())  # under no tenant: clears the no-tenant entries only
    assert env.run(f.get_cached(1)) is MISSING
    assert env.under("b", lambda: f.get_cached(1)) == 2
    assert env.under("a", lambda: f.get_cached(1)) == 4
    assert ran == [1, 1, 1, 1]


def test_a_cache_with_a_fixed_tenant_keeps_its_own_entries(face: str, store_url: str) -> None:
    env = Env(face, store_url)
    try:
        a = env.open(tenant="a")
        b = env.open(tenant="b")
        ran: list[str] = []

        def load(x: int) -> int:
            ran.append("load")
            return x

        fa = a.cached(env.face_of(load))
        fb = b.cached(env.face_of(load))
        env.run(fa(1))
        env.run(fb(1))
        env.run(fa(1))
        assert ran == ["load", "load"]
        env.run(fa.clear_cache())
        assert env.run(fb.get_cached(1)) == 1
        assert env.run(fa.get_cached(1)) is MISSING
    finally:
        env.close()


# -- functions that share a name, and other traps ----------------------------------------------


def make_loader(cache: Cache, table: str) -> Callable[[int], str]:
    @cache.cached
    def load(row: int) -> str:
        return f"{table}:{row}"

    return load


def test_closures_made_by_one_factory_never_share_entries(mem_env: Env) -> None:
    view = mem_env.view
    users, orders = make_loader(view, "users"), make_loader(view, "orders")
    assert users(1) == "users:1"
    assert orders(1) == "orders:1"  # same qualname, other captured table: another entry
    again = make_loader(view, "users")
    assert again.get_cached(1) == "users:1"  # the same code and captures: the same entry


def test_lambdas_of_one_module_never_share_entries(mem_env: Env) -> None:
    view = mem_env.view
    double = view.cached(lambda x: x * 2)
    square = view.cached(lambda x: x * x)
    assert (double(3), square(3)) == (6, 9)


class Connection:
    """An object with no stable key text (its repr is an address)."""


def test_a_closure_over_an_object_without_stable_text_is_private_to_the_process(
    mem_env: Env,
) -> None:
    view = mem_env.view

    def make(conn: Connection) -> Any:
        @view.cached
        def fetch(row: int) -> int:
            return id(conn) + row

        return fetch

    a, b = Connection(), Connection()
    assert make(a)(1) == id(a) + 1
    assert make(b)(1) == id(b) + 1  # never a's entry


def test_a_nested_recursive_function_is_cached(mem_env: Env) -> None:
    view = mem_env.view
    ran: list[int] = []

    @view.cached
    def fib(n: int) -> int:
        ran.append(n)
        return n if n < 2 else fib(n - 1) + fib(n - 2)

    assert fib(20) == 6765
    assert sorted(ran) == list(range(21))  # each value computed once


def schema_for(cls: type) -> list[str]:
    return sorted(cls.__annotations__)


class Point:
    x: int
    y: int


class Row:
    id: int


def test_a_plain_function_whose_first_parameter_is_cls_keys_by_it(mem_env: Env) -> None:
    cached_schema = mem_env.view.cached(schema_for)
    assert cached_schema(Point) == ["x", "y"]
    assert cached_schema(Row) == ["id"]


def test_refresh_that_is_not_stored_drops_the_old_entry(env: Env) -> None:
    rows = {1: "Grace"}

    @env.cached(unless=lambda row: row is None)
    def name(user_id: int) -> str | None:
        return rows.get(user_id)

    assert env.run(name(1)) == "Grace"
    del rows[1]
    assert env.run(name.refresh(1)) is None
    assert env.run(name.get_cached(1)) is MISSING  # not the old "Grace"
    assert env.run(name(1)) is None


def test_a_signed_cache_never_loads_an_unsigned_payload_planted_under_a_key(
    tmp_path: Path,
) -> None:
    marker = tmp_path / "ran"
    cache = Cache(f"memory://cached-{uuid.uuid4().hex}", secret="s" * 32)

    @cache.cached(key="user:{uid}")
    def load(uid: int) -> str:
        return "real"

    # An unsigned payload that starts like no envelope, then a pickle (id 1) that
    # would write the marker when loaded.
    planted = (
        b"-NK\x01" + b'cbuiltins\nexec\n(S\'open(%r, "w").write("x")\'\ntR.' % str(marker).encode()
    )
    cache._backend.set(cache._key("user:1"), planted, None)
    assert load(1) == "real"
    assert not marker.exists()
    cache.close()


def test_tag_versions_of_computed_tags_expire_the_functions_own_does_not(env: Env) -> None:
    @env.cached(ttl=60, tags=lambda item: [f"item:{item}"])
    def price(item: int) -> int:
        return item * 100

    assert env.run(price(7)) == 700
    k = env.view._key("x")
    item_left = env.view._backend.ttl(tag_key(k, "item:7"))
    function_tags = [key for batch in env.view._backend.scan("*#t:fn:*") for key in batch]
    assert item_left is not None and 86000 < item_left <= 86400
    assert function_tags and all(
        env.view._backend.ttl(key) == float("inf") for key in function_tags
    )
