"""A conformance suite for hotcache, for pytest: run it against your backend.

Subclass ``CacheConformance`` in a test module and give it a ``cache_url``
fixture naming a fresh, empty store for each test; every cache opened on that
URL must share the store. Each test then runs twice, against ``Cache`` and
``AsyncCache``::

    from hotcache.testing import CacheConformance

    class TestMyBackend(CacheConformance):
        @pytest.fixture
        def cache_url(self, tmp_path):
            return f"sqlite:///{tmp_path / 'cache.db'}"

Override ``build`` to construct caches some other way (for instance over a
backend object of your own, with ``Cache(backend=...)``); set ``stores = False``
for a backend that keeps nothing, like ``null://``: it then runs the tests that
make sense there plus the "everything misses" expectations.

This module needs pytest; ``import hotcache`` never imports it.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, ClassVar

import pytest

from .._async.cache import AsyncCache
from .._sync.cache import Cache
from ._api import ApiTests, NullTests
from ._harness import FACES, Face, Harness, needs_storage, without_storage
from ._keys import KeyTests
from ._values import ValueTests

__all__ = ["FACES", "CacheConformance", "Face", "Harness", "needs_storage", "without_storage"]


class CacheConformance(ApiTests, KeyTests, ValueTests, NullTests):
    """Every contract of ``Cache``/``AsyncCache``, for both faces, as pytest tests."""

    stores: ClassVar[bool] = True
    """False for a backend that stores nothing: only input checks and miss-always tests run."""

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        # Collect only the tests that apply (no skips): hide the others as None, which
        # pytest ignores; a test the subclass defines itself is left alone.
        unwanted = "no-storage" if cls.stores else "storage"
        for name, test in _SUITE.items():
            if name not in cls.__dict__:
                applies = getattr(test, "_hotcache_needs", None) != unwanted
                setattr(cls, name, test if applies else None)

    @pytest.fixture(params=FACES)
    def face(self, request: pytest.FixtureRequest) -> str:
        """Return the face under test: ``"sync"`` (``Cache``) or ``"async"`` (``AsyncCache``)."""
        return str(request.param)

    @pytest.fixture
    def cache_url(self) -> str:
        """Return the URL of a fresh, empty store (override in the subclass)."""
        raise NotImplementedError("a CacheConformance subclass must define a cache_url fixture")

    def build(self, face: str, url: str, **options: Any) -> Cache | AsyncCache:
        """Create one cache of ``face`` over the store at ``url`` (override to customise)."""
        if face == "async":
            return AsyncCache(url, **options)
        return Cache(url, **options)

    @pytest.fixture
    def hc(self, face: str, cache_url: str) -> Iterator[Harness]:
        """Yield the harness a test drives its caches through; close all it opened."""
        harness = Harness(self.build, face, cache_url, stores=self.stores)
        try:
            yield harness
        finally:
            harness.close()


_SUITE = {name: getattr(CacheConformance, name) for name in dir(CacheConformance)}
_SUITE = {name: test for name, test in _SUITE.items() if name.startswith("test_")}
