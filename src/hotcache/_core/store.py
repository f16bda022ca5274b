"""Keep values in process memory under entry and byte bounds, with per-entry expiry.

`Store` is the L1 data structure and the engine of the `memory://` backend. It is
pure synchronous code: the caller injects the lock (a `threading.Lock` when
threads share the store) and the clock (a fake one in tests).

Expired entries are reclaimed actively, not only when read: a min-heap of
(expires_at, seq, key) is popped a few items at a time by every write and every
`_READ_PERIOD` reads, and entirely by `purge_expired()`. Heap items are checked
against the entry's current expiry, so an overwrite or `touch` leaves a stale item
behind instead of searching the heap; the heap is rebuilt when stale items
outnumber the entries.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable, Sequence
from contextlib import AbstractContextManager, nullcontext
from heapq import heapify, heappop, heappush
from itertools import count
from typing import Any, Generic, TypeVar

from .eviction import Policy, make_policy

__all__ = ["Policy", "Store"]

V = TypeVar("V")

# Due expiries popped by each write: bounded work per call, and since a write adds
# at most one heap item, reclaiming outpaces expiring.
_PURGE_BATCH = 4
# Reads between two rounds of read-path upkeep (expiry, policy aging): a hit stays
# one counter decrement away from the fast path.
_READ_PERIOD = 64


class _Entry(Generic[V]):
    """Hold one value with its expiry (absolute clock time or None) and size."""

    __slots__ = ("expires", "size", "value")

    def __init__(self, value: V, expires: float | None, size: int) -> None:
        self.value = value
        self.expires = expires
        self.size = size


def _check_size(size: int) -> None:
    if not isinstance(size, int) or isinstance(size, bool):
        raise TypeError(f"size must be an int, got {type(size).__name__}")
    if size < 0:
        raise ValueError(f"size must be >= 0, got {size}")


def _check_ttl(ttl: float | None) -> None:
    if ttl is not None and math.isnan(ttl):
        raise ValueError("ttl must be a number of seconds or None, got nan")


class Store(Generic[V]):
    """Hold values in memory, bounded by entry count and bytes, evicting per a policy.

    Args:
        max_entries: most entries held at once (None: unbounded).
        max_bytes: most bytes held at once, as the callers' `size` arguments add up.
        policy: "lru", "lfu" or "tinylfu" (W-TinyLFU, scan-resistant; the default).
        clock: seconds, monotonic; every expiry is an absolute time on this clock.
        lock: held by every public method; the default (a null context) suits one thread.

    Raises:
        ValueError: a bound below 1 or an unknown policy.
    """

    def __init__(
        self,
        *,
        max_entries: int | None = None,
        max_bytes: int | None = None,
        policy: Policy = "tinylfu",
        clock: Callable[[], float] = time.monotonic,
        lock: AbstractContextManager[Any] | None = None,
    ) -> None:
        for name, bound in (("max_entries", max_entries), ("max_bytes", max_bytes)):
            if bound is not None and bound < 1:
                raise ValueError(f"{name} must be >= 1 or None, got {bound!r}")
        self._max_entries = max_entries
        self._max_bytes = max_bytes
        # A byte bound makes the number of entries that fit depend on their sizes,
        # so only a lone entry bound gives the policy a fixed capacity.
        self._policy = make_policy(policy, max_entries if max_bytes is None else None)
        self._clock = clock
        self._lock: AbstractContextManager[Any] = nullcontext() if lock is None else lock
        self._hit = self._policy.hit
        self._data: dict[str, _Entry[V]] = {}
        self._heap: list[tuple[float, int, str]] = []
        self._seq = count()
        self._nbytes = 0
        self._reads = _READ_PERIOD
        self.evictions = 0
        """Entries removed to respect the bounds (expired ones are counted apart)."""
        self.expirations = 0
        """Entries reclaimed because they expired."""

    # -- reads ------------------------------------------------------------------

    def get(self, key: str) -> V | None:
        """Return the live value of `key` and record the access, or None.

        An expired entry found here is removed.
        """
        with self._lock:
            return self._get(key)

    def get_many(self, keys: Sequence[str], *, with_expiry: bool = False) -> list[Any]:
        """Return ``get(key)`` for each key, in order, under one hold of the lock;
        with ``with_expiry``, ``(value, expiry)`` pairs (clock time; None: none)."""
        out: list[Any] = []
        with self._lock:
            # _get() unrolled, the clock read once: a decorated call's hit reads
            # its entry and its tag versions through here.
            self._reads -= len(keys)
            if self._reads <= 0:
                self._read_upkeep()
            data, hit, now = self._data, self._hit, self._clock()
            for key in keys:
                entry = data.get(key)
                if entry is None:
                    out.append(None)
                elif entry.expires is not None and now >= entry.expires:
                    self._expire(key, entry)
                    out.append(None)
                else:
                    hit(key)
                    out.append((entry.value, entry.expires) if with_expiry else entry.value)
        return out

    def _get(self, key: str) -> V | None:
        self._reads -= 1
        if not self._reads:
            self._read_upkeep()
        entry = self._data.get(key)
        if entry is None:
            return None
        expires = entry.expires
        if expires is not None and self._clock() >= expires:
            self._expire(key, entry)
            return None
        self._hit(key)
        return entry.value

    def peek(self, key: str) -> V | None:
        """Return the live value of `key` without recording an access, or None."""
        with self._lock:
            entry = self._live(key, self._clock())
            return None if entry is None else entry.value

    def expires_at(self, key: str) -> float | None:
        """Return when `key` expires (absolute clock time), or None if it never does.

        Raises:
            KeyError: `key` is absent or expired.
        """
        with self._lock:
            entry = self._live(key, self._clock())
            if entry is None:
                raise KeyError(key)
            return entry.expires

    def keys(self, prefix: str = "") -> list[str]:
        """Return a snapshot of the live keys that start with `prefix`."""
        with self._lock:
            now = self._clock()
            return [
                key
                for key, entry in self._data.items()
                if key.startswith(prefix) and (entry.expires is None or entry.expires > now)
            ]

    def __len__(self) -> int:
        """Return the number of entries held, counting expired ones not reclaimed yet."""
        with self._lock:
            return len(self._data)

    @property
    def nbytes(self) -> int:
        """Return the sum of the sizes of the entries held."""
        with self._lock:
            return self._nbytes

    # -- writes -----------------------------------------------------------------

    def set(self, key: str, value: V, *, size: int, ttl: float | None = None) -> bool:
        """Store `value` under `key`, replacing any entry, and evict down to the bounds.

        Args:
            size: the bytes this value counts for (>= 0).
            ttl: seconds to live; None never expires; <= 0 stores nothing and
                deletes the key.

        Returns:
            Whether the value is now held: False for ttl <= 0 or a `size` over
            `max_bytes` (the old entry is deleted then too).
        """
        _check_size(size)
        _check_ttl(ttl)
        with self._lock:
            return self._write(key, value, size, ttl, only_if_absent=False)

    def add(self, key: str, value: V, *, size: int, ttl: float | None = None) -> bool:
        """Store `value` only if `key` is absent or expired; like `set` otherwise.

        Returns:
            Whether the value was stored.
        """
        _check_size(size)
        _check_ttl(ttl)
        with self._lock:
            return self._write(key, value, size, ttl, only_if_absent=True)

    def touch(self, key: str, ttl: float | None) -> bool:
        """Give `key` a new lifetime from now (None: never expire; <= 0: delete it).

        Returns:
            Whether `key` was live.
        """
        _check_ttl(ttl)
        with self._lock:
            now = self._clock()
            self._purge(now, max_pops=_PURGE_BATCH)
            entry = self._live(key, now)
            if entry is None:
                return False
            expires = self._expiry(now, ttl)
            if expires is not None and expires <= now:
                self._discard(key, entry)
            else:
                entry.expires = expires
                if expires is not None:
                    self._push(expires, key)
            return True

    def delete(self, key: str) -> bool:
        """Delete `key`; return whether it was live."""
        with self._lock:
            now = self._clock()
            self._purge(now, max_pops=_PURGE_BATCH)
            return self._delete(key, now)

    def delete_many(self, keys: Iterable[str]) -> int:
        """Delete `keys`; return how many were live."""
        with self._lock:
            now = self._clock()
            self._purge(now, max_pops=_PURGE_BATCH)
            return sum(self._delete(key, now) for key in keys)

    def delete_prefix(self, prefix: str) -> int:
        """Delete every key that starts with `prefix`; return how many were live."""
        with self._lock:
            now = self._clock()
            doomed = [key for key in self._data if key.startswith(prefix)]
            return sum(self._delete(key, now) for key in doomed)

    def clear(self) -> None:
        """Delete every entry (the counters keep their values)."""
        with self._lock:
            self._data.clear()
            self._heap = []
            self._nbytes = 0
            self._policy.clear()

    def purge_expired(self, limit: int | None = None) -> int:
        """Reclaim expired entries, at most `limit` of them; return how many."""
        if limit is not None and limit < 0:
            raise ValueError(f"limit must be >= 0 or None, got {limit}")
        with self._lock:
            return self._purge(self._clock(), max_removals=math.inf if limit is None else limit)

    # -- internals (the lock is held) ----------------------------------------------

    @staticmethod
    def _expiry(now: float, ttl: float | None) -> float | None:
        return None if ttl is None or ttl == math.inf else now + ttl

    def _write(
        self, key: str, value: V, size: int, ttl: float | None, only_if_absent: bool
    ) -> bool:
        now = self._clock()
        # Reclaim the dead first: they are what should make room, not live entries.
        self._purge(now, max_pops=_PURGE_BATCH)
        entry = self._live(key, now)
        if entry is not None and only_if_absent:
            return False
        expires = self._expiry(now, ttl)
        # `expires <= now` also catches a ttl so small that adding it changes nothing:
        # such a value could never be read, so storing it would only evict others.
        too_big = self._max_bytes is not None and size > self._max_bytes
        if too_big or (expires is not None and expires <= now):
            if entry is not None:
                self._discard(key, entry)
            return False
        if entry is None:
            self._data[key] = _Entry(value, expires, size)
            self._policy.insert(key)
        else:
            self._nbytes -= entry.size
            entry.value, entry.expires, entry.size = value, expires, size
            self._hit(key)
        self._nbytes += size
        if expires is not None:
            self._push(expires, key)
        self._enforce_bounds(key, now)
        return True

    def _enforce_bounds(self, keep: str, now: float) -> None:
        max_entries, max_bytes = self._max_entries, self._max_bytes
        data = self._data
        while (max_entries is not None and len(data) > max_entries) or (
            max_bytes is not None and self._nbytes > max_bytes
        ):
            heap = self._heap
            if heap and heap[0][0] <= now:
                # Spend an expired entry before a live one.
                self._purge(now, max_pops=1)
                continue
            victim = self._policy.evict(keep)
            self._nbytes -= data.pop(victim).size
            self.evictions += 1

    def _live(self, key: str, now: float) -> _Entry[V] | None:
        """Return the entry of `key` if live; reclaim it if expired."""
        entry = self._data.get(key)
        if entry is None:
            return None
        if entry.expires is not None and entry.expires <= now:
            self._expire(key, entry)
            return None
        return entry

    def _delete(self, key: str, now: float) -> bool:
        entry = self._live(key, now)
        if entry is None:
            return False
        self._discard(key, entry)
        return True

    def _discard(self, key: str, entry: _Entry[V]) -> None:
        del self._data[key]
        self._nbytes -= entry.size
        self._policy.remove(key)

    def _expire(self, key: str, entry: _Entry[V]) -> None:
        self._discard(key, entry)
        self.expirations += 1

    def _push(self, expires: float, key: str) -> None:
        heap = self._heap
        heappush(heap, (expires, next(self._seq), key))
        if len(heap) > 2 * len(self._data) + 16:
            # Mostly stale items: rebuilding is O(n) once per O(n) pushes.
            seq = self._seq
            fresh = [
                (e.expires, next(seq), k) for k, e in self._data.items() if e.expires is not None
            ]
            heapify(fresh)
            self._heap = fresh

    def _purge(
        self, now: float, *, max_pops: float = math.inf, max_removals: float = math.inf
    ) -> int:
        """Pop due heap items and reclaim the entries they still describe."""
        heap, data = self._heap, self._data
        pops = removed = 0
        while heap and heap[0][0] <= now and pops < max_pops and removed < max_removals:
            expires, _, key = heappop(heap)
            pops += 1
            entry = data.get(key)
            if entry is not None and entry.expires == expires:
                self._expire(key, entry)
                removed += 1
        return removed

    def _read_upkeep(self) -> None:
        self._reads = _READ_PERIOD
        self._policy.count_accesses(_READ_PERIOD)
        heap = self._heap
        if heap:
            now = self._clock()
            if heap[0][0] <= now:
                self._purge(now, max_pops=_PURGE_BATCH)
