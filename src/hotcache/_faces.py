"""A cache's other face: the sync ``Cache`` an ``AsyncCache`` lends its plain
functions, and the ``AsyncCache`` a ``Cache`` lends its ``async def`` functions.

A twin shares everything of its cache but the I/O: settings, keys, codec,
tenant and request scope, counters and circuit breaker. The async twin runs
the sync cache's backend itself; the sync twin of an ``AsyncCache`` shares its
local backend and opens its own Redis client (closed with the cache).
"""

from __future__ import annotations

from typing import Any

from ._async.cache import AsyncCache
from ._async.flight import AsyncFlights
from ._facade import in_process_reader
from ._sync.cache import Cache
from ._sync.flight import SyncFlights
from .backends.factory import make_sync_backend
from .backends.offload import AsyncOffload

__all__ = ["async_face", "sync_face"]


def _twin(cache: Any, kind: Any, backend: Any) -> Any:
    twin = object.__new__(kind)
    twin.__dict__.update(cache.__dict__)
    twin._backend = backend
    twin._in_process = in_process_reader(backend)
    twin._twin = cache
    twin._flights = AsyncFlights() if kind is AsyncCache else SyncFlights()  # its own waiting
    return twin


def sync_face(cache: Any) -> Cache:
    """Return ``cache`` itself if it is sync, else its sync twin (made once)."""
    if isinstance(cache, Cache):
        return cache
    twin = cache.__dict__.get("_twin")
    if twin is None:
        backend = cache._backend
        if isinstance(backend, AsyncOffload):
            sync_backend: Any = backend.sync
        elif cache.settings.url.scheme in {"redis", "rediss", "unix"} and not cache._custom:
            sync_backend = make_sync_backend(cache.settings)
        else:
            raise TypeError(
                "this AsyncCache was given its own async backend, which a plain (non-async) "
                "function cannot use: decorate it with a Cache, or make it async"
            )
        twin = cache.__dict__["_twin"] = _twin(cache, Cache, sync_backend)
        twin._owns_backend = sync_backend is not getattr(backend, "sync", None)
    return twin  # type: ignore[no-any-return]


def async_face(cache: Any) -> AsyncCache:
    """Return ``cache`` itself if it is async, else its async twin (made once).

    The twin runs the cache's own backend: inline for memory and null, whose
    calls never wait, and in a worker thread for the others, so a blocking call
    never stalls the event loop (and the twin is bound to no one loop).
    """
    if isinstance(cache, AsyncCache):
        return cache
    twin = cache.__dict__.get("_twin")
    if twin is None:
        local = cache.settings.url.scheme in {"memory", "null"} and not cache._custom
        backend = AsyncOffload(cache._backend, blocking=not local)
        twin = cache.__dict__["_twin"] = _twin(cache, AsyncCache, backend)
    return twin  # type: ignore[no-any-return]
