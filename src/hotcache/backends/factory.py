"""Build the backend a URL names, for the sync or the async face."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .null import NullBackend

if TYPE_CHECKING:
    from .._async.backend import AsyncBackend
    from .._facade import Settings
    from .._sync.backend import SyncBackend

__all__ = ["make_async_backend", "make_sync_backend"]


def _local_backend(settings: Settings) -> Any:
    url, options = settings.url, settings.backend_options
    if url.scheme == "memory":
        from .memory import MemoryBackend

        return MemoryBackend(url.path, **options)
    if url.scheme == "sqlite":
        from .sqlite import SQLiteBackend

        assert url.path is not None
        return SQLiteBackend(url.path, **options)
    if url.scheme == "null":
        return NullBackend()
    return None


def make_sync_backend(settings: Settings) -> SyncBackend:
    """Return a ``SyncBackend`` for ``settings.url``."""
    backend = _local_backend(settings)
    if backend is not None:
        return backend  # type: ignore[no-any-return]
    from .._sync.redis import SyncAnnouncingRedisBackend, SyncRedisBackend

    if settings.backend_options.get("invalidation") == "pubsub":
        return SyncAnnouncingRedisBackend(settings.url, settings.backend_options)
    return SyncRedisBackend(settings.url, settings.backend_options)


def make_async_backend(settings: Settings) -> AsyncBackend:
    """Return an ``AsyncBackend`` for ``settings.url`` (local ones via ``AsyncOffload``)."""
    backend = _local_backend(settings)
    if backend is not None:
        from .offload import AsyncOffload

        return AsyncOffload(backend, blocking=settings.url.scheme == "sqlite")
    from .._async.redis import AsyncAnnouncingRedisBackend, AsyncRedisBackend

    if settings.backend_options.get("invalidation") == "pubsub":
        return AsyncAnnouncingRedisBackend(settings.url, settings.backend_options)
    return AsyncRedisBackend(settings.url, settings.backend_options)
