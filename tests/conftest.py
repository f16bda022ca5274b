"""Fixtures: private redis-servers and temporary SQLite files; no mocks."""

from __future__ import annotations

import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from hotcache import AsyncCache, Cache
from hotcache.testing import FACES, Harness
from redis_server import RedisServer


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    """One private redis-server for the session (tests share it; flush per test)."""
    server = RedisServer().start()
    yield server
    server.stop()


@pytest.fixture
def redis_url(redis_server: RedisServer) -> Iterator[str]:
    """The shared server's URL, emptied before each test."""
    import redis

    if redis_server.proc is None or redis_server.proc.poll() is not None:
        redis_server.start()
    client = redis.Redis(port=redis_server.port)
    client.flushdb()
    client.close()
    yield redis_server.url


@pytest.fixture
def own_redis() -> Iterator[RedisServer]:
    """A redis-server of this test's own, which it may kill, pause or restart."""
    server = RedisServer().start()
    yield server
    server.stop()


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'cache.db'}"


BACKENDS = ("memory", "sqlite", "redis")


@pytest.fixture(params=BACKENDS)
def url(request: pytest.FixtureRequest) -> str:
    """A fresh cache URL on each storing backend: a private named memory store, a
    temporary SQLite file, the shared (emptied) redis-server."""
    if request.param == "memory":
        return f"memory://test-{uuid.uuid4().hex}"
    if request.param == "sqlite":
        return str(request.getfixturevalue("sqlite_url"))
    return str(request.getfixturevalue("redis_url"))


@pytest.fixture(params=FACES)
def face(request: pytest.FixtureRequest) -> str:
    """ "sync" or "async": which face a harness-driven test runs on."""
    return str(request.param)


def build(face: str, url: str, **options: Any) -> Cache | AsyncCache:
    """Make a cache of the given face (the harness's builder)."""
    if face == "async":
        return AsyncCache(url, **options)
    return Cache(url, **options)


@pytest.fixture
def hc(face: str, url: str) -> Iterator[Harness]:
    """A harness over a cache of ``face`` on ``url``, closed afterwards."""
    harness = Harness(build, face, url)
    try:
        yield harness
    finally:
        harness.close()
