"""The bytes-level protocol every shared tier implements."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping, Sequence
from typing import Protocol

__all__ = ["AsyncBackend"]


class AsyncBackend(Protocol):
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

    async def get(self, key: str) -> bytes | None: ...

    async def get_many(self, keys: Sequence[str]) -> list[bytes | None]: ...

    async def get_many_with_ttl(
        self, keys: Sequence[str]
    ) -> list[tuple[bytes, float | None] | None]:
        """Like ``get_many``, with each value's seconds left (``None``: no expiry).

        What the in-process tier needs to keep a copy no longer than the entry lives.
        """
        ...

    async def set(
        self, key: str, value: bytes, ttl: float | None = None, *, nx: bool = False
    ) -> bool: ...

    async def set_many(self, items: Mapping[str, bytes], ttl: float | None = None) -> None: ...

    async def delete(self, key: str) -> bool: ...

    async def delete_many(self, keys: Sequence[str]) -> int: ...

    async def exists(self, key: str) -> bool: ...

    async def touch(self, key: str, ttl: float | None) -> bool: ...

    async def set_leased(
        self, key: str, value: bytes, ttl: float | None, lease: str, token: bytes, seen: str
    ) -> bool:
        """Store ``value`` and delete the lease key ``lease``, atomically, only if
        ``lease`` holds exactly ``token`` and ``key`` still holds the payload whose
        ``payload_digest`` is ``seen`` (``""``: absent). True if stored.
        """
        ...

    async def delete_if(self, key: str, value: bytes) -> bool:
        """Delete ``key`` only if it holds exactly ``value``, atomically; True if it did."""
        ...

    async def touch_if(self, key: str, value: bytes, ttl: float) -> bool:
        """Give ``key`` ``ttl`` seconds from now only if it holds exactly ``value``."""
        ...

    async def ttl(self, key: str) -> float | None:
        """Return seconds left, ``math.inf`` without expiry, ``None`` if absent."""
        ...

    async def incr(self, key: str, delta: int, ttl: float | None = None) -> int:
        """Add ``delta`` atomically (absent counts as 0; ``ttl`` applies on creation).

        Raises ``ValueError`` if the stored value is not an integer.
        """
        ...

    def scan(self, pattern: str, count: int = 500) -> AsyncIterator[list[str]]:
        """Yield batches of keys matching a glob (``*``, ``?``, ``[..]``)."""
        ...

    async def delete_matching(self, pattern: str) -> int:
        """Delete every key matching a glob, in batches; return how many."""
        ...

    async def hset(self, key: str, mapping: Mapping[str, bytes]) -> int: ...

    async def hget(self, key: str, field: str) -> bytes | None: ...

    async def hgetall(self, key: str) -> dict[str, bytes]: ...

    async def hdel(self, key: str, fields: Sequence[str]) -> int: ...

    async def close(self) -> None: ...
