"""The in-process tier (L1): what a process keeps of the shared tier, and the
rules that keep it from serving what another process has changed.

``LocalTier`` is pure synchronous code over a ``Store``; both faces call it
without ``await``. The coherence feed (Redis invalidations, SQLite's change
log) calls ``invalidate``/``flush``; the face calls the rest. The rules:

- **Serve only while the feed is up.** A tier starts suspended; ``resume()``
  (the feed is established) lets it serve, ``suspend()`` (the feed is lost)
  empties it and stops it serving until the next ``resume()``.
- **No fill after a racing invalidation.** A read of the shared tier takes a
  ``token()`` before it is sent; its answer is kept only if no invalidation of
  that key (nor a flush) arrived since the token. Otherwise a reply that left
  the server before a change could be kept after the change was processed,
  and stay stale until the next write.
- **Never past the entry's expiry**, and never longer than ``max_age``: the
  safety net that bounds the damage of an invalidation that was lost anyway.
- **Own writes are read-your-writes**: ``write`` replaces the local copy and,
  like an invalidation, voids every fill racing it.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from contextlib import AbstractContextManager, nullcontext
from typing import Any, Generic, TypeVar

from .eviction import Policy
from .store import Store

__all__ = ["DEFAULT_MAX_AGE", "LocalTier"]

V = TypeVar("V")

DEFAULT_MAX_AGE = 300.0
# Invalidations remembered for fills in flight: a read whose token is older
# than the oldest of these may have missed one, and is not kept.
_LOG_SIZE = 4096


class LocalTier(Generic[V]):
    """Values by backend key, each with a hard expiry, kept coherent by a feed.

    Args:
        max_entries, max_bytes, policy: the bounds and eviction policy of the
            underlying ``Store``.
        max_age: the longest any value is kept, whatever its own lifetime.
        size_of: the size in bytes a value counts for.
        clock: seconds, monotonic (a fake one in tests).
        lock: guards the tier and its store (a ``threading.RLock`` when threads
            share it).
    """

    def __init__(
        self,
        *,
        max_entries: int | None = 10_000,
        max_bytes: int | None = 64 << 20,
        policy: Policy = "lru",
        max_age: float = DEFAULT_MAX_AGE,
        size_of: Callable[[V], int] = len,  # type: ignore[assignment]
        clock: Callable[[], float] = time.monotonic,
        lock: AbstractContextManager[Any] | None = None,
    ) -> None:
        if not max_age > 0:
            raise ValueError(f"max_age must be > 0, got {max_age!r}")
        self._bounds = (max_entries, max_bytes, policy, clock)
        self.max_age = max_age
        self._size_of = size_of
        self.flushes = 0
        """Times the tier was emptied (suspended, or told to flush)."""
        self.reset(lock)

    def reset(self, lock: AbstractContextManager[Any] | None = None) -> None:
        """Start over: empty, suspended, guarded by ``lock``. Only for a process
        that owns the tier alone: the forked child, whose inherited lock another
        thread of the parent may have held at the fork."""
        max_entries, max_bytes, policy, clock = self._bounds
        self._lock: AbstractContextManager[Any] = nullcontext() if lock is None else lock
        self._store: Store[V] = Store(
            max_entries=max_entries,
            max_bytes=max_bytes,
            policy=policy,
            clock=clock,
            lock=self._lock,
        )
        # Bumped by every invalidation, write and flush; never back (a token taken
        # before a reset must not pass the checks after it).
        self._seq = getattr(self, "_seq", 0) + 1
        self._floor = self._seq  # tokens below this may have missed an invalidation
        self._log: deque[tuple[int, str]] = deque()
        self.serving = False

    # -- reads --------------------------------------------------------------------

    def get(self, key: str) -> V | None:
        """Return the local value of ``key``, or None (also while suspended)."""
        if not self.serving:
            return None
        return self._store.get(key)

    def get_many(self, keys: Sequence[str]) -> list[V | None]:
        """Return the local value of each key, in order (None where absent)."""
        if not self.serving:
            return [None] * len(keys)
        return self._store.get_many(keys)

    def token(self) -> int:
        """Return the token a read of the shared tier takes before it is sent."""
        return self._seq

    def fill(self, token: int, items: Mapping[str, tuple[V, float | None]]) -> int:
        """Keep values read from the shared tier, each with its seconds left (None:
        no expiry), unless an invalidation of its key arrived since ``token``.

        Returns how many were kept.
        """
        kept = 0
        with self._lock:
            if not self.serving or token < self._floor:
                return 0
            racing = self._invalidated_since(token)
            for key, (value, left) in items.items():
                if key in racing or (left is not None and left <= 0):
                    continue
                ttl = self.max_age if left is None else min(left, self.max_age)
                # An entry there already is current too (nothing invalidated it),
                # and may be newer: a local-only value written since the read.
                kept += self._store.add(key, value, size=self._size_of(value), ttl=ttl)
        return kept

    def _invalidated_since(self, token: int) -> set[str] | frozenset[str]:
        if token == self._seq:
            return frozenset()
        racing = set()
        for seq, key in reversed(self._log):  # newest first: only those after token
            if seq <= token:
                break
            racing.add(key)
        return racing

    # -- changes --------------------------------------------------------------------

    def write(self, key: str, value: V, ttl: float | None, token: int | None = None) -> None:
        """Replace the local copy after this process wrote ``key`` to the shared tier.

        ``token`` was taken before the write was sent: if the feed has since
        reported a change of ``key`` (maybe the write's own, maybe another
        writer's after it: the feed cannot tell), the copy is dropped instead
        (``None``: unconditionally, for a tier with no feed).
        """
        with self._lock:
            keep = self.serving and (ttl is None or ttl > 0)
            if token is not None and keep:
                keep = token >= self._floor and key not in self._invalidated_since(token)
            self._note(key)
            if keep:
                limit = self.max_age if ttl is None else min(ttl, self.max_age)
                self._store.set(key, value, size=self._size_of(value), ttl=limit)
            else:
                self._store.delete(key)

    def invalidate(self, keys: Iterable[str]) -> None:
        """Drop keys another process (or anyone) changed; void fills racing them."""
        with self._lock:
            for key in keys:
                self._note(key)
                self._store.delete(key)

    def flush(self) -> None:
        """Drop everything (a change the feed cannot name key by key)."""
        with self._lock:
            self._seq += 1
            self._floor = self._seq
            self._log.clear()
            self._store.clear()
            self.flushes += 1

    def suspend(self) -> None:
        """The feed is lost: empty the tier and stop serving until ``resume``."""
        with self._lock:
            self.serving = False
            self.flush()

    def resume(self) -> None:
        """The feed is (re-)established: serve again, starting empty."""
        with self._lock:
            if not self.serving:
                self.flush()
                self.serving = True

    def _note(self, key: str) -> None:
        self._seq += 1
        self._log.append((self._seq, key))
        if len(self._log) > _LOG_SIZE:
            oldest, _ = self._log.popleft()
            self._floor = oldest  # a token from before it can no longer be checked

    def __len__(self) -> int:
        return len(self._store)
