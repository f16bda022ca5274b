"""Run a blocking backend under ``AsyncCache``: inline when it never blocks
(memory, null), in a worker thread when it does (SQLite)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from typing import Any, Protocol, TypeVar

from .._sync.backend import SyncBackend

__all__ = ["AsyncOffload", "unwrap"]

T = TypeVar("T")


class _Runner(Protocol):
    async def __call__(self, fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> T: ...


async def _inline(fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> T:
    return fn(*args, **kwargs)


class AsyncOffload:
    """An ``AsyncBackend`` over a ``SyncBackend``."""

    def __init__(self, backend: SyncBackend, *, blocking: bool) -> None:
        self.sync = backend
        self.remote = backend.remote
        self._run: _Runner = asyncio.to_thread if blocking else _inline

    @property
    def evictions(self) -> int:
        return self.sync.evictions

    async def get(self, key: str) -> bytes | None:
        return await self._run(self.sync.get, key)

    async def get_many(self, keys: Sequence[str]) -> list[bytes | None]:
        return await self._run(self.sync.get_many, keys)

    async def get_many_with_ttl(
        self, keys: Sequence[str]
    ) -> list[tuple[bytes, float | None] | None]:
        return await self._run(self.sync.get_many_with_ttl, keys)

    async def set(
        self, key: str, value: bytes, ttl: float | None = None, *, nx: bool = False
    ) -> bool:
        return await self._run(self.sync.set, key, value, ttl, nx=nx)

    async def set_many(self, items: Mapping[str, bytes], ttl: float | None = None) -> None:
        await self._run(self.sync.set_many, items, ttl)

    async def delete(self, key: str) -> bool:
        return await self._run(self.sync.delete, key)

    async def delete_many(self, keys: Sequence[str]) -> int:
        return await self._run(self.sync.delete_many, keys)

    async def exists(self, key: str) -> bool:
        return await self._run(self.sync.exists, key)

    async def touch(self, key: str, ttl: float | None) -> bool:
        return await self._run(self.sync.touch, key, ttl)

    async def set_leased(
        self, key: str, value: bytes, ttl: float | None, lease: str, token: bytes, seen: str
    ) -> bool:
        return await self._run(self.sync.set_leased, key, value, ttl, lease, token, seen)

    async def delete_if(self, key: str, value: bytes) -> bool:
        return await self._run(self.sync.delete_if, key, value)

    async def touch_if(self, key: str, value: bytes, ttl: float) -> bool:
        return await self._run(self.sync.touch_if, key, value, ttl)

    async def ttl(self, key: str) -> float | None:
        return await self._run(self.sync.ttl, key)

    async def incr(self, key: str, delta: int, ttl: float | None = None) -> int:
        return await self._run(self.sync.incr, key, delta, ttl)

    async def scan(self, pattern: str, count: int = 500) -> AsyncIterator[list[str]]:
        batches = iter(self.sync.scan(pattern, count))
        while (batch := await self._run(next, batches, None)) is not None:
            yield batch

    async def delete_matching(self, pattern: str) -> int:
        return await self._run(self.sync.delete_matching, pattern)

    async def hset(self, key: str, mapping: Mapping[str, bytes]) -> int:
        return await self._run(self.sync.hset, key, mapping)

    async def hget(self, key: str, field: str) -> bytes | None:
        return await self._run(self.sync.hget, key, field)

    async def hgetall(self, key: str) -> dict[str, bytes]:
        return await self._run(self.sync.hgetall, key)

    async def hdel(self, key: str, fields: Sequence[str]) -> int:
        return await self._run(self.sync.hdel, key, fields)

    async def close(self) -> None:
        await self._run(self.sync.close)


def unwrap(backend: Any) -> Any:
    """Return the sync backend an ``AsyncOffload`` runs, or ``backend`` itself."""
    return backend.sync if isinstance(backend, AsyncOffload) else backend
