"""Run one scenario against ``Cache`` or ``AsyncCache`` through a single blocking interface."""

from __future__ import annotations

import asyncio
import inspect
import threading
import time
from collections.abc import Callable
from types import TracebackType
from typing import Any, Protocol, TypeVar

from .._async.cache import AsyncCache
from .._sync.backend import SyncBackend
from .._sync.cache import Cache

__all__ = [
    "FACES",
    "Builder",
    "Face",
    "Harness",
    "Session",
    "needs_storage",
    "without_storage",
]

F = TypeVar("F", bound=Callable[..., Any])

FACES = ("sync", "async")
POLL_TIMEOUT = 5.0
JOIN_TIMEOUT = 60.0


class Builder(Protocol):
    """Create a cache of one face over the backend under test."""

    def __call__(self, face: str, url: str, **options: Any) -> Cache | AsyncCache: ...


class Face:
    """A cache called as if it were sync: async methods run to completion on ``loop``."""

    def __init__(self, cache: Cache | AsyncCache, loop: asyncio.AbstractEventLoop | None) -> None:
        self.cache = cache
        self.loop = loop

    def __repr__(self) -> str:
        return f"Face({self.cache!r})"

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self.cache, name)
        loop = self.loop
        if loop is None or not inspect.iscoroutinefunction(attr):
            return attr

        def call(*args: Any, **kwargs: Any) -> Any:
            return loop.run_until_complete(attr(*args, **kwargs))

        return call

    def key(self, key: Any) -> str:
        """Return the backend key this cache stores ``key`` under."""
        return self.cache._key(key)

    def __enter__(self) -> Face:
        entered: Cache | AsyncCache
        if isinstance(self.cache, AsyncCache):
            assert self.loop is not None
            entered = self.loop.run_until_complete(self.cache.__aenter__())
        else:
            entered = self.cache.__enter__()
        return Face(entered, self.loop)

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if isinstance(self.cache, AsyncCache):
            assert self.loop is not None
            self.loop.run_until_complete(self.cache.__aexit__(exc_type, exc, tb))
        else:
            self.cache.__exit__(exc_type, exc, tb)


class _Settled:
    """A backend whose every call is followed by ``settle()``."""

    def __init__(self, backend: Any, settle: Callable[[], None]) -> None:
        self._backend = backend
        self._settle = settle

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._backend, name)
        if not callable(attr):
            return attr
        settle = self._settle

        def call(*args: Any, **kwargs: Any) -> Any:
            result = attr(*args, **kwargs)
            settle()
            return result

        return call


class Session:
    """The caches one thread opened, and the event loop the async ones run on."""

    def __init__(self, build: Builder, face: str, url: str) -> None:
        if face not in FACES:
            raise ValueError(f"face must be one of {FACES}, not {face!r}")
        self._build = build
        self.face = face
        self.url = url
        self.loop = asyncio.new_event_loop() if face == "async" else None
        self._opened: list[Face] = []

    def open(self, **options: Any) -> Face:
        """Open another cache (same backend, given options) that is closed with the session."""
        cache = self._build(self.face, self.url, **options)
        wanted = AsyncCache if self.face == "async" else Cache
        assert isinstance(cache, wanted), f"build() returned {type(cache).__name__}, not {wanted}"
        opened = Face(cache, self.loop)
        self._opened.append(opened)
        return opened

    def settle(self) -> None:
        """Wait until each opened cache's in-process tier has seen every change so far."""
        for opened in self._opened:
            feed = getattr(opened.cache, "_feed", None)
            if feed is not None:
                feed.barrier()

    def close(self) -> None:
        """Close every cache of the session (again: close must be idempotent), then the loop."""
        try:
            for opened in reversed(self._opened):
                opened.close()
        finally:
            self._opened.clear()
            loop, self.loop = self.loop, None
            if loop is not None:
                try:
                    loop.run_until_complete(loop.shutdown_asyncgens())
                    loop.run_until_complete(loop.shutdown_default_executor())
                finally:
                    loop.close()


class Harness:
    """What a conformance test works with: the cache under test and helpers around it."""

    def __init__(self, build: Builder, face: str, url: str, *, stores: bool = True) -> None:
        self._build = build
        self.face = face
        self.url = url
        self.stores = stores
        self.session = Session(build, face, url)
        self._raw: Cache | None = None
        self._cache: Face | None = None

    @property
    def is_async(self) -> bool:
        return self.face == "async"

    @property
    def cache(self) -> Face:
        """The cache under test, with default options (opened on first use)."""
        if self._cache is None:
            self._cache = self.session.open()
        return self._cache

    def open(self, **options: Any) -> Face:
        """Open another cache of the same face over the same backend."""
        return self.session.open(**options)

    @property
    def sync_cache(self) -> Cache:
        """A plain ``Cache`` with default options over the same store."""
        if self._raw is None:
            cache = self._build("sync", self.url)
            assert isinstance(cache, Cache)
            self._raw = cache
        return self._raw

    @property
    def raw(self) -> SyncBackend:
        """The bytes-level backend of a sync cache over the same store, to plant payloads.

        Each call returns once the caches under test have seen its change: an
        in-process tier in front of Redis learns of other clients' writes
        asynchronously, within the propagation delay.
        """
        return _Settled(self.sync_cache._backend, self.settle)

    def settle(self) -> None:
        """Wait until every cache of the session has seen every change made so far."""
        self.session.settle()

    def producer(self, fn: Callable[[], Any]) -> Callable[[], Any]:
        """Return ``fn`` as the face's natural producer: ``async def`` for ``AsyncCache``."""
        if not self.is_async:
            return fn

        async def produce() -> Any:
            await asyncio.sleep(0)
            return fn()

        return produce

    def concurrently(self, workers: int, body: Callable[[Face], None]) -> None:
        """Run ``body`` in ``workers`` threads at once, each with its own cache (and loop)."""
        barrier = threading.Barrier(workers)
        errors: list[BaseException] = []

        def run() -> None:
            session = Session(self._build, self.face, self.url)
            try:
                face = session.open()
                barrier.wait(JOIN_TIMEOUT)
                body(face)
            except BaseException as exc:  # re-raised in the test's thread below
                errors.append(exc)
                barrier.abort()
            finally:
                session.close()

        threads = [threading.Thread(target=run, daemon=True) for _ in range(workers)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(JOIN_TIMEOUT)
        assert not any(t.is_alive() for t in threads), "a worker thread hung"
        if errors:
            raise errors[0]

    @staticmethod
    def wait_until(predicate: Callable[[], bool], what: str, timeout: float = POLL_TIMEOUT) -> None:
        """Poll ``predicate`` until it holds; fail after ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        while not predicate():
            if time.monotonic() > deadline:
                raise AssertionError(f"{what}: still not true after {timeout}s")
            time.sleep(0.005)

    def close(self) -> None:
        try:
            self.session.close()
        finally:
            if self._raw is not None:
                self._raw.close()


def needs_storage(test: F) -> F:
    """Mark a test that only makes sense on a backend that keeps what it is given."""
    test._hotcache_needs = "storage"  # type: ignore[attr-defined]
    return test


def without_storage(test: F) -> F:
    """Mark a test of the expectations for a backend that stores nothing (``null://``)."""
    test._hotcache_needs = "no-storage"  # type: ignore[attr-defined]
    return test
