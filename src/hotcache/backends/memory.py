"""``memory://``: a bounded, thread-safe in-process backend over ``_core.store.Store``.

``memory://`` gives each cache its own store; ``memory://name`` shares one store
between every cache of the process that names it (like Django's LocMemCache).
"""

from __future__ import annotations

import math
import os
import threading
import time
import weakref
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from .._core.envelope import add_to_counter, payload_digest
from .._core.store import Policy, Store
from ._common import compile_glob, wrong_type

__all__ = ["MemoryBackend", "shared_store"]

Value = bytes | dict[str, bytes]
DEFAULT_MAX_BYTES = 256 << 20
_ENTRY_OVERHEAD = 64
_named: dict[str, tuple[Store[Value], threading.RLock]] = {}
_named_lock = threading.Lock()

# fork() while another thread holds a store's lock would leave that lock held for
# good in the child (its owner does not exist there). Before a fork, take every
# store lock, so no thread is inside a store and no store is half-updated; release
# them on both sides afterwards.
_store_locks: weakref.WeakSet[Any] = weakref.WeakSet()
_held_for_fork: list[Any] = []


def _before_fork() -> None:
    _named_lock.acquire()
    _held_for_fork[:] = list(_store_locks)
    for lock in _held_for_fork:
        lock.acquire()


def _after_fork() -> None:
    for lock in reversed(_held_for_fork):
        lock.release()
    _held_for_fork.clear()
    _named_lock.release()


os.register_at_fork(before=_before_fork, after_in_parent=_after_fork, after_in_child=_after_fork)


def _left(expires: float | None, now: float) -> float | None:
    return None if expires is None else max(0.0, expires - now)


def _size(key: str, value: Value) -> int:
    if isinstance(value, bytes):
        return len(key) + len(value) + _ENTRY_OVERHEAD
    return len(key) + _ENTRY_OVERHEAD + sum(len(f) + len(v) + 16 for f, v in value.items())


def _new_store(
    max_entries: int | None, max_bytes: int | None, policy: Policy
) -> tuple[Store[Value], threading.RLock]:
    # One re-entrant lock guards the store and the backend's compound operations
    # (incr, hset), so a plain set can never land inside a read-modify-write.
    lock = threading.RLock()
    _store_locks.add(lock)
    store: Store[Value] = Store(
        max_entries=max_entries,
        max_bytes=max_bytes or DEFAULT_MAX_BYTES,
        policy=policy,
        clock=time.monotonic,
        lock=lock,
    )
    return store, lock


def shared_store(
    name: str, max_entries: int | None, max_bytes: int | None, policy: Policy
) -> tuple[Store[Value], threading.RLock]:
    """Return the process-wide store called ``name`` and its lock (created on first use)."""
    with _named_lock:
        found = _named.get(name)
        if found is None:
            found = _named[name] = _new_store(max_entries, max_bytes, policy)
        return found


class MemoryBackend:
    """Bytes in a bounded in-process store (lru, lfu or W-TinyLFU eviction)."""

    remote = False

    def __init__(
        self,
        name: str | None = None,
        *,
        max_entries: int | None = None,
        max_bytes: int | None = None,
        policy: Policy = "lru",
    ) -> None:
        if name:
            self._store, self._lock = shared_store(name, max_entries, max_bytes, policy)
        else:
            self._store, self._lock = _new_store(max_entries, max_bytes, policy)
        self._clock = time.monotonic  # the clock every Store here runs on

    @property
    def evictions(self) -> int:
        return self._store.evictions

    def get(self, key: str) -> bytes | None:
        value = self._store.get(key)
        if value is None or type(value) is bytes:
            return value
        raise wrong_type(key)

    def get_many(self, keys: Sequence[str]) -> list[bytes | None]:
        values = self._store.get_many(keys)
        if dict in map(type, values):  # MGET semantics: a key holding a hash reads as absent
            return [v if type(v) is bytes else None for v in values]
        return values

    def get_many_with_ttl(self, keys: Sequence[str]) -> list[tuple[bytes, float | None] | None]:
        now = self._clock()
        return [
            None if pair is None or type(pair[0]) is not bytes else (pair[0], _left(pair[1], now))
            for pair in self._store.get_many(keys, with_expiry=True)
        ]

    def set(self, key: str, value: bytes, ttl: float | None = None, *, nx: bool = False) -> bool:
        size = _size(key, value)
        if nx:
            return self._store.add(key, value, size=size, ttl=ttl)
        return self._store.set(key, value, size=size, ttl=ttl)

    def set_many(self, items: Mapping[str, bytes], ttl: float | None = None) -> None:
        with self._lock:
            for key, value in items.items():
                self._store.set(key, value, size=_size(key, value), ttl=ttl)

    def delete(self, key: str) -> bool:
        return self._store.delete(key)

    def delete_many(self, keys: Sequence[str]) -> int:
        return self._store.delete_many(keys)

    def exists(self, key: str) -> bool:
        return self._store.peek(key) is not None

    def touch(self, key: str, ttl: float | None) -> bool:
        return self._store.touch(key, ttl)

    def set_leased(
        self, key: str, value: bytes, ttl: float | None, lease: str, token: bytes, seen: str
    ) -> bool:
        with self._lock:
            now = self._store.peek(key)
            if self._store.peek(lease) != token or isinstance(now, dict):
                return False
            if payload_digest(now) != seen:
                return False
            self._store.delete(lease)
            return self.set(key, value, ttl)

    def delete_if(self, key: str, value: bytes) -> bool:
        with self._lock:
            return self._store.peek(key) == value and self._store.delete(key)

    def touch_if(self, key: str, value: bytes, ttl: float) -> bool:
        with self._lock:
            return self._store.peek(key) == value and self._store.touch(key, ttl)

    def ttl(self, key: str) -> float | None:
        with self._lock:
            try:
                left = self._left(key)
            except KeyError:
                return None
            return math.inf if left is None else max(0.0, left)

    def _left(self, key: str) -> float | None:
        """Seconds a live entry has left (``None``: no expiry; ``KeyError``: absent)."""
        at = self._store.expires_at(key)
        return None if at is None else at - self._clock()

    def _rewrite(self, key: str, value: Value) -> None:
        """Replace a live entry's value, keeping its expiry (the caller holds the lock)."""
        left = self._left(key)
        ttl = None if left is None else max(left, 1e-9)
        self._store.set(key, value, size=_size(key, value), ttl=ttl)

    def incr(self, key: str, delta: int, ttl: float | None = None) -> int:
        with self._lock:
            raw = self._store.peek(key)
            if raw is not None and not isinstance(raw, bytes):
                raise wrong_type(key)
            lifetime = ttl
            if raw is not None:  # a running counter keeps its expiry
                try:
                    lifetime = self._left(key)
                except KeyError:
                    lifetime = 0.0
                if lifetime is not None and lifetime <= 0:  # expired just now: a new one
                    raw, lifetime = None, ttl
            value, encoded = add_to_counter(raw, delta)
            self._store.set(key, encoded, size=_size(key, encoded), ttl=lifetime)
            return value

    def scan(self, pattern: str, count: int = 500) -> Iterator[list[str]]:
        match = compile_glob(pattern).match
        keys = [k for k in self._store.keys("") if match(k)]
        for start in range(0, len(keys), count):
            yield keys[start : start + count]

    def delete_matching(self, pattern: str) -> int:
        return sum(self._store.delete_many(batch) for batch in self.scan(pattern))

    def hset(self, key: str, mapping: Mapping[str, bytes]) -> int:
        with self._lock:
            current = self._hash(key)
            fields = dict(current or {})
            added = sum(1 for f in mapping if f not in fields)
            fields.update(mapping)
            if current is None:
                self._store.set(key, fields, size=_size(key, fields))
            else:
                self._rewrite(key, fields)
            return added

    def hget(self, key: str, field: str) -> bytes | None:
        fields = self._hash(key)
        return None if fields is None else fields.get(field)

    def hgetall(self, key: str) -> dict[str, bytes]:
        return dict(self._hash(key) or {})

    def hdel(self, key: str, fields: Sequence[str]) -> int:
        with self._lock:
            current = self._hash(key)
            if current is None:
                return 0
            gone = set(fields)
            remaining = {f: v for f, v in current.items() if f not in gone}
            removed = len(current) - len(remaining)
            if not remaining:
                self._store.delete(key)
            elif removed:
                self._rewrite(key, remaining)
            return removed

    def _hash(self, key: str) -> dict[str, bytes] | None:
        value = self._store.peek(key)
        if value is None or isinstance(value, dict):
            return value
        raise wrong_type(key)

    def close(self) -> None:
        return None
