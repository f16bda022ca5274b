"""Request scopes: inside ``cache.request_scope()`` each key costs one backend read;
writes through the cache update the scope; scopes belong to a thread or asyncio
task; the WSGI/ASGI middleware opens one per request. Backend reads are counted
by a wrapper that delegates every call to a real backend."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

import pytest

from hotcache import MISSING, AsyncCache, BackendUnavailable, Cache
from hotcache._facade import resolve_settings
from hotcache.backends.factory import make_async_backend, make_sync_backend
from hotcache.middleware import ASGIRequestScope, WSGIRequestScope
from hotcache.testing import Face, Harness
from processes import run_threads

LONG = 1000.0
JOIN = 30.0


class Reads:
    """What a counting backend was asked to read, and which reads must fail."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, ...]] = []
        self.failures = 0  # fail this many of the next reads with BackendUnavailable
        self._lock = threading.Lock()

    def record(self, keys: Sequence[str]) -> None:
        with self._lock:
            self.calls.append(tuple(keys))
            if self.failures:
                self.failures -= 1
                raise BackendUnavailable("counting backend: this read fails")

    @property
    def count(self) -> int:
        return len(self.calls)

    def keys(self) -> list[str]:
        return [k for call in self.calls for k in call]


class CountingSync:
    """A sync backend that counts get/get_many and delegates everything to ``inner``."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.reads = Reads()

    def get(self, key: str) -> bytes | None:
        self.reads.record([key])
        return self.inner.get(key)  # type: ignore[no-any-return]

    def get_many(self, keys: Sequence[str]) -> list[bytes | None]:
        self.reads.record(keys)
        return self.inner.get_many(keys)  # type: ignore[no-any-return]

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


class CountingAsync:
    """The ``AsyncBackend`` twin of ``CountingSync``."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.reads = Reads()

    async def get(self, key: str) -> bytes | None:
        self.reads.record([key])
        return await self.inner.get(key)  # type: ignore[no-any-return]

    async def get_many(self, keys: Sequence[str]) -> list[bytes | None]:
        self.reads.record(keys)
        return await self.inner.get_many(keys)  # type: ignore[no-any-return]

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


def counting_cache(face: str, url: str, **options: Any) -> Cache | AsyncCache:
    settings = resolve_settings(url, {})
    if face == "async":
        return AsyncCache(backend=CountingAsync(make_async_backend(settings)), **options)
    return Cache(backend=CountingSync(make_sync_backend(settings)), **options)


def reads_of(c: Face | Cache | AsyncCache) -> Reads:
    cache = c.cache if isinstance(c, Face) else c
    backend = cache._backend
    assert isinstance(backend, (CountingSync, CountingAsync))
    return backend.reads


@pytest.fixture
def hc(face: str, url: str) -> Iterator[Harness]:
    harness = Harness(counting_cache, face, url)
    try:
        yield harness
    finally:
        harness.close()


# -- reads ----------------------------------------------------------------------------


def test_repeated_reads_of_a_key_cost_one_backend_read(hc: Harness) -> None:
    c = hc.cache
    reads = reads_of(c)
    hc.open().set("k", "v")  # another cache object: nothing known to c's scope
    for _ in range(3):
        assert c.get("k") == "v"
    assert reads.count == 3  # no scope: every read goes to the backend
    reads.calls.clear()
    with c.request_scope():
        for _ in range(5):
            assert c.get("k") == "v"
            assert c.get("absent", MISSING) is MISSING  # misses are remembered too
            assert c.get_many(["k", "absent"]) == {"k": "v"}
            assert c.get_or_set("k", hc.producer(lambda: "never")) == "v"
        assert reads.count == 2
        assert sorted(reads.keys()) == sorted([c.key("k"), c.key("absent")])
    reads.calls.clear()
    assert c.get("k") == "v"
    assert c.get("k") == "v"
    assert reads.count == 2  # the scope is gone with its block


def test_get_many_in_a_scope_reads_only_unknown_keys(hc: Harness) -> None:
    c = hc.cache
    hc.open().set_many({"a": 1, "b": 2, "c": 3})
    reads = reads_of(c)
    with c.request_scope():
        assert c.get("a") == 1
        assert c.get_many(["a", "b", "x"]) == {"a": 1, "b": 2}
        assert reads.calls == [(c.key("a"),), (c.key("b"), c.key("x"))]
        assert c.get_many(["x", "c", "b", "a"]) == {"a": 1, "b": 2, "c": 3}
        assert reads.calls[-1] == (c.key("c"),)
        count = reads.count
        assert c.get_many(["a", "b", "c", "x"]) == {"a": 1, "b": 2, "c": 3}
        assert c.get("x", MISSING) is MISSING
        assert c.get("c") == 3
        assert c.get_many([]) == {}
        assert reads.count == count


def test_writes_in_the_scope_are_read_back_without_the_backend(hc: Harness) -> None:
    c = hc.cache
    reads = reads_of(c)
    other = hc.open()
    other.set_many(
        {"old": "old", "gone": "gone", "many1": 1, "many2": 2, "touched": "t", "unsaved": "u"}
    )
    with c.request_scope():
        assert c.get_many(
            ["old", "gone", "many1", "many2", "touched", "unsaved", "n", "new", "saved"]
        ) == {
            "old": "old",
            "gone": "gone",
            "many1": 1,
            "many2": 2,
            "touched": "t",
            "unsaved": "u",
        }
        count = reads.count
        assert c.set("new", "new-value", LONG) is True
        assert c.set("old", "replaced") is True
        assert c.delete("gone") is True
        assert c.incr("n", 3) == 3
        c.set_many({"many1": "m1", "fresh1": "f1"})
        assert c.delete_many(["many2"]) == 1
        assert c.touch("touched", 0) is True
        assert c.touch("old", LONG) is True
        assert c.write_through("saved", hc.producer(lambda: "record")) == "record"

        def failing_save() -> None:
            raise KeyError("save failed")

        with pytest.raises(KeyError):
            c.write_through("unsaved", hc.producer(failing_save))
        assert c.get("saved") == "record"
        assert c.get("unsaved", MISSING) is MISSING
        assert c.get("new") == "new-value"
        assert c.get("old") == "replaced"
        assert c.get("gone", MISSING) is MISSING
        assert c.get("n") == 3
        assert c.get_many(["many1", "fresh1", "many2"]) == {"many1": "m1", "fresh1": "f1"}
        # set_many's items are read back once: a backend may refuse some of them
        # (SQLite's size bound) without failing the call.
        assert reads.count == count + 1, reads.calls[count:]
        count += 1
        assert c.get("touched", MISSING) is MISSING
        assert c.get_or_set("fresh1", hc.producer(lambda: "never")) == "f1"
        assert reads.count == count, reads.calls[count:]
        assert c.incr("n", 2) == 5
        assert c.get("n") == 5
        assert c.set("zero", "z", 0) is False  # ttl=0 deletes
        assert c.get("zero", MISSING) is MISSING
        assert reads.count == count
        # The scope held what the backend holds: check from outside it.
        assert other.get_many(["new", "old", "gone", "n", "many1", "fresh1", "many2"]) == {
            "new": "new-value",
            "old": "replaced",
            "n": 5,
            "many1": "m1",
            "fresh1": "f1",
        }


def test_a_write_that_did_not_store_is_read_from_the_backend(hc: Harness) -> None:
    c = hc.cache
    reads = reads_of(c)
    hc.open().set("k", "theirs")
    with c.request_scope():
        assert c.add("k", "mine") is False  # not stored: its payload is not remembered
        count = reads.count
        assert c.get("k") == "theirs"
        assert reads.count == count + 1
        assert c.add("fresh", "mine") is True
        assert c.get("fresh") == "mine"
        assert reads.count == count + 1


def test_tagged_writes_and_produced_values_in_the_scope(hc: Harness) -> None:
    c = hc.cache
    reads = reads_of(c)
    with c.request_scope():
        c.set("tagged", "t", tags=["users"])
        count = reads.count
        assert c.get("tagged") == "t"
        assert c.get_or_set("produced", hc.producer(lambda: "p"), tags=["users"]) == "p"
        assert c.get("produced") == "p"
        assert c.get_many(["tagged", "produced"]) == {"tagged": "t", "produced": "p"}
        # The producer's miss, and its lease's look at the key itself (what its
        # write will require the key still to hold): nothing more.
        assert reads.count == count + 2


def test_clear_in_the_scope_empties_it(hc: Harness) -> None:
    c = hc.cache
    reads = reads_of(c)
    with c.request_scope():
        c.set("k", "v")
        assert c.get("k") == "v"
        c.clear()
        count = reads.count
        assert c.get("k", MISSING) is MISSING
        assert c.get("k", MISSING) is MISSING
        assert reads.count == count + 1
        c.set("k", "again")
        assert c.get("k") == "again"
        assert reads.count == count + 1


def test_another_caches_change_is_seen_only_after_the_scope(hc: Harness) -> None:
    c = hc.cache
    other = hc.open()
    other.set("k", "before")
    with c.request_scope():
        assert c.get("k") == "before"
        assert c.get("absent", MISSING) is MISSING
        other.set("k", "after")
        other.set("absent", "now present")
        # A snapshot: the scope answers what it read first.
        assert c.get("k") == "before"
        assert c.get("absent", MISSING) is MISSING
        assert c.get_many(["k", "absent"]) == {"k": "before"}
    assert c.get("k") == "after"
    assert c.get("absent") == "now present"
    with c.request_scope():
        assert c.get("k") == "after"


def test_tenants_in_one_scope_keep_apart(hc: Harness) -> None:
    c = hc.cache
    reads = reads_of(c)
    other = hc.open()
    for name in ("a", "b"):
        with other.tenant(name):
            other.set("k", name)
    with c.request_scope():
        for _ in range(3):
            for name in ("a", "b", None):
                with c.tenant(name):
                    assert c.get("k", None) == name
        assert reads.count == 3
        with c.tenant("a"):
            c.set("k", "a2")
        with c.tenant("b"):
            assert c.get("k") == "b"
        with c.tenant("a"):
            assert c.get("k") == "a2"
        assert reads.count == 3


def test_nested_scopes_share_the_outer_one(hc: Harness) -> None:
    c = hc.cache
    reads = reads_of(c)
    hc.open().set("k", "v")
    outer = c.request_scope()
    with outer:
        assert c.get("k") == "v"
        with c.request_scope():
            assert c.get("k") == "v"
            c.set("inner", "written inside")
        assert c.get("inner") == "written inside"
        with outer:  # the same block object entered again
            assert c.get("k") == "v"
        assert c.get("k") == "v"
        assert reads.count == 1
    assert c.get("k") == "v"
    assert reads.count == 2


def test_a_failed_read_is_not_remembered(hc: Harness) -> None:
    c = hc.cache
    reads = reads_of(c)
    hc.open().set_many({"k": "v", "m": "w"})
    with c.request_scope():
        reads.failures = 1
        assert c.get("k", MISSING) is MISSING  # failed open
        assert c.get("k") == "v"  # asks the backend again
        reads.failures = 1
        assert c.get_many(["m"]) == {}
        assert c.get_many(["m"]) == {"m": "w"}
        count = reads.count
        assert c.get_many(["k", "m"]) == {"k": "v", "m": "w"}
        assert reads.count == count
        reads.failures = 1
        assert c.get_or_set("p", hc.producer(lambda: "produced")) == "produced"
        assert c.get("p", MISSING) is MISSING  # nothing stored after a failed read
    assert reads.failures == 0


def test_cached_calls_in_a_scope_read_each_key_once(hc: Harness) -> None:
    c = hc.cache
    reads = reads_of(c)
    calls: list[int] = []
    if hc.is_async:

        async def load_async(n: int) -> int:
            calls.append(n)
            return n * 10

        fn: Any = c.cache.cached(ttl=LONG)(load_async)
        loop = hc.session.loop
        assert loop is not None

        def load(n: int) -> Any:
            return loop.run_until_complete(fn(n))
    else:

        def load_sync(n: int) -> int:
            calls.append(n)
            return n * 10

        load = c.cache.cached(ttl=LONG)(load_sync)

    assert load(1) == 10  # stored before the scope
    reads.calls.clear()
    with c.request_scope():
        for _ in range(4):
            assert load(1) == 10
            assert load(2) == 20
        assert reads.count == 3  # 1's hit; 2's miss and its lease's look at the key
        assert calls == [1, 2]
    assert load(1) == 10
    assert reads.count == 4


def test_a_killed_server_read_is_retried_in_the_scope(face: str, own_redis: Any) -> None:
    import redis

    harness = Harness(counting_cache, face, own_redis.url)
    try:
        c = harness.cache
        with c.request_scope():
            own_redis.kill()
            assert c.get("k", "fallback") == "fallback"
            own_redis.start()
            client = redis.Redis(port=own_redis.port)
            try:
                assert client.set(c.key("k"), b"1")  # an integer payload, as incr writes
            finally:
                client.close()
            assert c.get("k") == 1
            assert reads_of(c).count == 2
    finally:
        harness.close()


# -- threads and tasks ------------------------------------------------------------------


def test_scopes_are_isolated_between_threads(url: str) -> None:
    workers = 6
    barrier = threading.Barrier(workers)
    with Cache(url) as other, counting_cache("sync", url) as c:
        assert isinstance(c, Cache)
        other.set("k", "start")

        def work(i: int) -> None:
            with c.request_scope():
                assert c.get("k") == "start"
                barrier.wait(JOIN)
                if i == 0:
                    c.set("k", "from-0")
                barrier.wait(JOIN)
                assert c.get("k") == ("from-0" if i == 0 else "start")
                barrier.wait(JOIN)
            assert c.get("k") == "from-0"

        run_threads(work, workers, JOIN, barrier.abort)
        # One read per thread in the scope, one after it.
        assert reads_of(c).count == 2 * workers


def test_scopes_are_isolated_between_tasks(url: str) -> None:
    workers = 6

    async def main() -> None:
        async with AsyncCache(url) as other, counting_cache("async", url) as c:
            assert isinstance(c, AsyncCache)
            await other.set("k", "start")
            barrier = asyncio.Barrier(workers)

            async def work(i: int) -> None:
                async with c.request_scope():
                    assert await c.get("k") == "start"
                    await barrier.wait()
                    if i == 0:
                        await c.set("k", "from-0")
                    await barrier.wait()
                    assert await c.get("k") == ("from-0" if i == 0 else "start")
                    await barrier.wait()
                assert await c.get("k") == "from-0"

            await asyncio.wait_for(asyncio.gather(*(work(i) for i in range(workers))), JOIN)
            assert reads_of(c).count == 2 * workers

    asyncio.run(main())


def test_tasks_started_in_a_scope_share_it(url: str) -> None:
    async def main() -> None:
        async with AsyncCache(url) as other, counting_cache("async", url) as c:
            assert isinstance(c, AsyncCache)
            await other.set("k", "v")
            reads = reads_of(c)
            async with c.request_scope():
                assert await c.get("k") == "v"

                async def child(i: int) -> Any:
                    await c.set(f"child{i}", i)
                    return await c.get("k")

                assert await asyncio.gather(*(child(i) for i in range(5))) == ["v"] * 5
                assert await asyncio.create_task(child(9)) == "v"
                for i in (*range(5), 9):
                    assert await c.get(f"child{i}") == i
                assert reads.count == 1

    asyncio.run(main())


# -- WSGI middleware ----------------------------------------------------------------------


def wsgi_environ() -> dict[str, Any]:
    return {"REQUEST_METHOD": "GET", "PATH_INFO": "/", "SERVER_NAME": "t", "SERVER_PORT": "80"}


class Response:
    def __init__(self) -> None:
        self.status: str | None = None

    def __call__(self, status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
        self.status = status
        return lambda data: None


def lazy_app(c: Cache, closed: list[Any]) -> Callable[..., Iterator[bytes]]:
    """A WSGI app that reads ``k`` eagerly, then lazily in its body and its close."""

    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterator[bytes]:
        first = c.get("k")
        assert c.get("k") == first
        start_response("200 OK", [("Content-Type", "text/plain")])

        def body() -> Iterator[bytes]:
            try:
                yield str(c.get("k")).encode()
                yield str(c.get_many(["k"]).get("k")).encode()
            finally:
                closed.append(c.get("k"))  # runs in the request's scope too

        return body()

    return app


def test_wsgi_middleware_reads_each_key_once_per_request(url: str) -> None:
    with Cache(url) as other, counting_cache("sync", url) as c:
        assert isinstance(c, Cache)
        reads = reads_of(c)
        closed: list[Any] = []
        wrapped = WSGIRequestScope(lazy_app(c, closed), c)
        other.set("k", "v")
        for n in range(1, 4):
            response = Response()
            result = wrapped(wsgi_environ(), response)
            assert response.status == "200 OK"
            assert b"".join(result) == b"vv"
            result.close()
            assert closed[-1] == "v"
            assert reads.count == n, f"request {n}: {reads.calls}"


def test_wsgi_middleware_gives_each_request_a_fresh_scope(url: str) -> None:
    with Cache(url) as other, counting_cache("sync", url) as c:
        assert isinstance(c, Cache)
        closed: list[Any] = []
        wrapped = WSGIRequestScope(lazy_app(c, closed), c)
        for value in ("one", "two", "three"):
            other.set("k", value)  # between requests: the next request sees it
            result = wrapped(wsgi_environ(), Response())
            body = b"".join(result)
            result.close()
            assert body == f"{value}{value}".encode(), f"expected {value!r}, served {body!r}"
            assert closed[-1] == value


def test_wsgi_middleware_leaves_no_scope_in_the_callers_context(url: str) -> None:
    with Cache(url) as other, counting_cache("sync", url) as c:
        assert isinstance(c, Cache)
        wrapped = WSGIRequestScope(lazy_app(c, []), c)
        result = wrapped(wsgi_environ(), Response())
        list(result)
        result.close()
        other.set("k", "after the request")
        reads = reads_of(c)
        reads.calls.clear()
        # The server thread's own context: no scope, so every read is fresh.
        assert c.get("k") == "after the request"
        assert c.get("k") == "after the request"
        assert reads.count == 2


def test_wsgi_middleware_forwards_close_and_handles_plain_bodies(url: str) -> None:
    with counting_cache("sync", url) as c:
        assert isinstance(c, Cache)
        events: list[str] = []

        class Body:
            def __iter__(self) -> Iterator[bytes]:
                c.get("k")
                yield b"a"
                c.get("k")
                yield b"b"

            def close(self) -> None:
                c.get("k")
                events.append("closed")

        def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
            start_response("200 OK", [])
            return Body() if environ["PATH_INFO"] == "/body" else [b"plain"]

        wrapped = WSGIRequestScope(app, c)
        result = wrapped({**wsgi_environ(), "PATH_INFO": "/body"}, Response())
        assert list(result) == [b"a", b"b"]
        assert events == []
        result.close()
        assert events == ["closed"]
        assert reads_of(c).count == 1
        plain = wrapped(wsgi_environ(), Response())
        assert list(plain) == [b"plain"]
        plain.close()  # a body without close() is fine


def test_wsgi_middleware_scopes_several_caches(url: str) -> None:
    with counting_cache("sync", url) as c1, counting_cache("sync", url, namespace="two") as c2:

        def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
            for _ in range(3):
                c1.get("k")
                c2.get("k")
            start_response("200 OK", [])
            return [b""]

        list(WSGIRequestScope(app, c1, c2)(wsgi_environ(), Response()))
        assert reads_of(c1).count == 1
        assert reads_of(c2).count == 1


# -- ASGI middleware -------------------------------------------------------------------------


def test_asgi_middleware_opens_one_scope_per_request(url: str) -> None:
    async def main() -> None:
        async with AsyncCache(url) as other, counting_cache("async", url) as c:
            assert isinstance(c, AsyncCache)
            reads = reads_of(c)
            barrier = asyncio.Barrier(2)
            seen: dict[str, Any] = {}

            async def app(scope: Mapping[str, Any], receive: Any, send: Any) -> None:
                first = await c.get("k")
                assert await c.get("k") == first
                if scope["type"] == "lifespan":
                    return
                if scope.get("path") == "/concurrent":
                    await barrier.wait()
                    if scope["name"] == "writer":
                        await c.set("k", "written")
                    await barrier.wait()
                seen[scope.get("name", scope["type"])] = await c.get("k")
                await send({"type": "http.response.start", "status": 200, "headers": []})
                await send({"type": "http.response.body", "body": b"ok"})

            sent: list[Mapping[str, Any]] = []

            async def receive() -> Mapping[str, Any]:
                return {"type": "http.request", "body": b"", "more_body": False}

            async def send(message: Mapping[str, Any]) -> None:
                sent.append(message)

            wrapped = ASGIRequestScope(app, c)
            await other.set("k", "v1")
            await wrapped({"type": "http", "path": "/", "name": "r1"}, receive, send)
            assert reads.count == 1
            assert seen["r1"] == "v1"
            assert [m["type"] for m in sent] == ["http.response.start", "http.response.body"]
            await other.set("k", "v2")
            await wrapped({"type": "http", "path": "/", "name": "r2"}, receive, send)
            assert reads.count == 2
            assert seen["r2"] == "v2"
            await wrapped({"type": "websocket", "path": "/", "name": "ws"}, receive, send)
            assert reads.count == 3

            # Lifespan passes through without a scope: each read is a backend read.
            await wrapped({"type": "lifespan"}, receive, send)
            assert reads.count == 5

            # Two requests at once: each has its own scope.
            reads.calls.clear()
            await asyncio.wait_for(
                asyncio.gather(
                    wrapped(
                        {"type": "http", "path": "/concurrent", "name": "writer"}, receive, send
                    ),
                    wrapped(
                        {"type": "http", "path": "/concurrent", "name": "reader"}, receive, send
                    ),
                ),
                JOIN,
            )
            assert seen["writer"] == "written"
            assert seen["reader"] == "v2"
            assert reads.count == 2

    asyncio.run(main())


@pytest.mark.parametrize("middleware", [WSGIRequestScope, ASGIRequestScope])
def test_middleware_needs_caches(middleware: Any) -> None:
    def app(*args: Any) -> Any:
        return None

    with pytest.raises(TypeError):
        middleware(app)
    with pytest.raises(TypeError):
        middleware(app, object())
    with pytest.raises(TypeError):
        middleware(app, "memory://")
    with Cache("memory://") as c, pytest.raises(TypeError):
        middleware(app, c, None)


def test_one_scope_block_object_shared_by_concurrent_tasks(url: str) -> None:
    async def main() -> None:
        async with AsyncCache(url) as other, counting_cache("async", url) as c:
            assert isinstance(c, AsyncCache)
            await other.set("k", "v")
            scope = c.request_scope()  # made once and entered by each task
            inside = asyncio.Barrier(2)
            first_left = asyncio.Event()

            async def work(i: int) -> None:
                async with scope:
                    await inside.wait()
                    assert await c.get("k") == "v"
                    assert await c.get("k") == "v"
                    if i == 1:
                        await first_left.wait()  # task 0 leaves while task 1 is inside
                if i == 0:
                    first_left.set()

            await asyncio.wait_for(asyncio.gather(work(0), work(1)), JOIN)
            assert reads_of(c).count == 2  # one read per task's own scope

    asyncio.run(main())
