# Generated from src/hotcache/_async by scripts/unasync.py. Do not edit.
"""The bytes-level protocol every shared tier implements."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Protocol

__all__ = ["SyncBackend"]


class SyncBackend(Protocol):
    """A store of ``bytes`` under finished ``str`` keys.

    Everything above it (serialization, prefixes, default lifetimes, fail-open)
    is the facade's job. ``ttl`` is seconds; ``None`` means no expiry. Failures
    are raised as ``hotcache.BackendError`` subclasses, never as driver errors.
    """

    remote: bool

    @property
    def evictions(self) -> int:
        """Entries this backend dropped to respect its size bounds."""
        ...

    def get(self, key: str) -> bytes | None: ...

    def get_many(self, keys: Sequence[str]) -> list[bytes | None]: ...

    def get_many_with_ttl(self, keys: Sequence[str]) -> list[tuple[bytes, float | None] | None]:
        """Like ``get_many``, with each value's seconds left (``None``: no expiry).

        What the in-process tier needs to keep a copy no longer than the entry lives.
        """
        ...

    def set(
        self, key: str, value: bytes, ttl: float | None = None, *, nx: bool = False
    ) -> bool: ...

    def set_many(self, items: Mapping[str, bytes], ttl: float | None = None) -> None: ...

    def delete(self, key: str) -> bool: ...

    def delete_many(self, keys: Sequence[str]) -> int: ...

    def exists(self, key: str) -> bool: ...

    def touch(self, key: str, ttl: float | None) -> bool: ...

    def set_leased(
        self, key: str, value: bytes, ttl: float | None, lease: str, token: bytes, seen: str
    ) -> bool:
        """Store ``value`` and delete the lease key ``lease``, atomically, only if
        ``lease`` holds exactly ``token`` and ``key`` still holds the payload whose
        ``payload_digest`` is ``seen`` (``""``: absent). True if stored.
        """
        ...

    def delete_if(self, key: str, value: bytes) -> bool:
        """Delete ``key`` only if it holds exactly ``value``, atomically; True if it did."""
        ...

    def touch_if(self, key: str, value: bytes, ttl: float) -> bool:
        """Give ``key`` ``ttl`` seconds from now only if it holds exactly ``value``."""
        ...

    def ttl(self, key: str) -> float | None:
        """Return seconds left, ``math.inf`` without expiry, ``None`` if absent."""
        ...

    def incr(self, key: str, delta: int, ttl: float | None = None) -> int:
        """Add ``delta`` atomically (absent counts as 0; ``ttl`` applies on creation).

        Raises ``ValueError`` if the stored value is not an integer.
        """
        ...

    def scan(self, pattern: str, count: int = 500) -> Iterator[list[str]]:
        """Yield batches of keys matching a glob (``*``, ``?``, ``[..]``)."""
        ...

    def delete_matching(self, pattern: str) -> int:
        """Delete every key matching a glob, in batches; return how many."""
        ...

    def hset(self, key: str, mapping: Mapping[str, bytes]) -> int: ...

    def hget(self, key: str, field: str) -> bytes | None: ...

    def hgetall(self, key: str) -> dict[str, bytes]: ...

    def hdel(self, key: str, fields: Sequence[str]) -> int: ...

    def close(self) -> None: ...
