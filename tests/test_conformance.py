"""Run the shipped conformance suite (``hotcache.testing``) over every built-in backend."""

from __future__ import annotations

import uuid

import pytest

from hotcache.testing import CacheConformance


class TestMemory(CacheConformance):
    @pytest.fixture
    def cache_url(self) -> str:
        # A named store, so every cache the test opens shares it; a new name per test.
        return f"memory://conformance-{uuid.uuid4().hex}"


class TestSQLite(CacheConformance):
    @pytest.fixture
    def cache_url(self, sqlite_url: str) -> str:
        return sqlite_url


class TestSQLiteWithLocalTier(CacheConformance):
    """The same file, read through an in-process tier kept coherent by the change log."""

    @pytest.fixture
    def cache_url(self, sqlite_url: str) -> str:
        return sqlite_url + "?local=true"


class TestRedis(CacheConformance):
    @pytest.fixture
    def cache_url(self, redis_url: str) -> str:
        return redis_url


class TestRedisWithLocalTier(CacheConformance):
    """The same server, read through an in-process tier kept coherent by tracking."""

    @pytest.fixture
    def cache_url(self, redis_url: str) -> str:
        return redis_url + "?local=true"


class TestNull(CacheConformance):
    stores = False

    @pytest.fixture
    def cache_url(self) -> str:
        return "null://"
