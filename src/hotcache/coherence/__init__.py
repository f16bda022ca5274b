"""The feeds that keep each process's in-process tier coherent with the shared one.

A process keeps one tier and one feed per shared store and namespace, whatever
the number of caches it opens on them: a write through one cache is then read
back at once through every other, and one connection (one thread) carries the
invalidations. The last cache to close stops the feed.
"""

from __future__ import annotations

import os
import threading
from collections import deque
from typing import TYPE_CHECKING, Any, Protocol

from .._core.keys import header
from .._core.local import LocalTier

if TYPE_CHECKING:
    from .._facade import Settings

__all__ = ["Feed", "attach", "detach"]


class Feed(Protocol):
    """What keeps a tier coherent: ``sync`` before it serves, ``close`` at the end."""

    def after_fork(self) -> None:
        """In a forked child: drop what belongs to the parent (threads, connections,
        locks another thread may have held); the next ``sync`` starts over."""
        ...

    def sync(self) -> bool:
        """Bring the tier up to date if needed; return True if it may serve."""
        ...

    def covers(self, key: str) -> bool:
        """Return True if changes of ``key`` reach this feed."""
        ...

    def barrier(self, timeout: float = 1.0) -> None:
        """Return once every change made before the call has reached the tier."""
        ...

    def ready(self) -> None:
        """Return once the feed's first attempt to come up is over (briefly bounded)."""
        ...

    def close(self) -> None: ...


_shared: dict[tuple[Any, ...], list[Any]] = {}  # place -> [tier, feed, users]
_lock = threading.Lock()
# Detaches not applied yet: a cache's finalizer may run (cyclic GC) on a thread
# that holds ``_lock`` already, so it only queues; whoever holds or next takes
# the lock applies the queue.
_pending: deque[LocalTier[Any]] = deque()


def _after_fork_in_child() -> None:
    # The child has none of the parent's threads, and any lock one of them held
    # at the fork stays held: every tier starts over, empty, until its feed is up.
    global _lock
    _lock = threading.Lock()
    for tier, feed, _ in _shared.values():
        tier.reset(threading.RLock())
        feed.after_fork()


os.register_at_fork(after_in_child=_after_fork_in_child)


def _place(settings: Settings, backend: Any) -> tuple[Any, ...] | None:
    """Return what identifies the shared store and namespace, or None: no feed for it."""
    from .._async.redis import AsyncRedisBackend
    from .._sync.redis import SyncRedisBackend
    from ..backends.offload import unwrap
    from ..backends.sqlite import SQLiteBackend

    url, namespace = settings.url, settings.namespace
    inner = unwrap(backend)
    place: tuple[Any, ...]
    if isinstance(inner, SQLiteBackend):
        place = ("sqlite", inner.path, namespace)
    elif isinstance(backend, (AsyncRedisBackend, SyncRedisBackend)):
        where = url.path if url.scheme == "unix" else (url.host, url.port)
        mode = settings.backend_options.get("invalidation", "tracking")
        db = settings.backend_options.get("db", 0)
        place = ("redis", where, db, url.username, namespace, mode)
    else:
        return None
    if settings.serialize_local:
        return place  # payloads: each cache decodes (and checks) them itself
    # Decoded objects were checked by the codec that decoded them: only caches
    # that would decode alike (serializer, secret) may share them.
    serializer = settings.serializer
    return (
        *place,
        "objects",
        serializer if isinstance(serializer, str) else id(serializer),
        settings.secret,
    )


def attach(settings: Settings, backend: Any) -> tuple[LocalTier[Any] | None, Feed | None]:
    """Return this process's tier and feed for the cache's store and namespace
    (made on first use; ``(None, None)`` when there is no feed for the backend)."""
    if not settings.local:
        return None, None
    place = _place(settings, backend)
    if place is None:
        return None, None
    with _lock:
        shared = _shared.get(place)
        if shared is None:
            tier: LocalTier[Any] = LocalTier(
                max_entries=settings.local_max_entries,
                max_bytes=settings.local_max_bytes,
                max_age=settings.local_max_age,
                policy=settings.local_policy,  # type: ignore[arg-type]
                lock=threading.RLock(),
            )
            shared = _shared[place] = [tier, _feed(place, settings, tier), 0]
        shared[2] += 1
        tier, feed = shared[0], shared[1]
    _apply_pending()
    feed.ready()  # outside the lock: other caches need not wait for this server
    return tier, feed


def detach(tier: LocalTier[Any]) -> None:
    """A cache using ``tier`` closed (or was dropped); stop its feed when no cache
    uses it any more. Safe to call from a finalizer, whatever the thread holds."""
    _pending.append(tier)
    _apply_pending()


def _apply_pending() -> None:
    closing = []
    while _pending:
        if not _lock.acquire(blocking=False):
            break  # the holder applies them once it is done
        try:
            while _pending:
                tier = _pending.popleft()
                for place, shared in list(_shared.items()):
                    if shared[0] is tier:
                        shared[2] -= 1
                        if shared[2] <= 0:
                            del _shared[place]
                            closing.append(shared[1])
                        break
        finally:
            _lock.release()
    for feed in closing:
        feed.close()  # outside the lock: it may join a thread


def _feed(place: tuple[Any, ...], settings: Settings, tier: LocalTier[Any]) -> Feed:
    options = settings.backend_options
    if place[0] == "sqlite":
        from ..backends.sqlite import SQLiteBackend
        from .sqlite import SQLiteFeed

        # Its own connections: the feed outlives whichever cache opened it first.
        return SQLiteFeed(
            SQLiteBackend(place[1], busy_timeout=options.get("busy_timeout", 10.0)), tier
        )
    from ..backends.redis import invalidation_channel
    from .redis import RedisTrackingFeed

    pubsub = options.get("invalidation") == "pubsub"
    return RedisTrackingFeed(
        settings.url,
        options,
        [header(settings.namespace)],  # every key of the namespace starts so
        tier,
        connect_timeout=options.get("connect_timeout", 0.25),
        channel=invalidation_channel(options) if pubsub else None,
    )
