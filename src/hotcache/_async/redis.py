"""The Redis backend's I/O (redis-py; hiredis parses replies when installed).

One command per operation; the atomic ones (incr with ttl, touch without ttl,
set_many with ttl) are one Lua script or one MULTI block.
"""

from __future__ import annotations

import math
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from typing import Any, cast

from .._url import ParsedURL
from ..backends.redis import (
    DELETE_IF,
    DRIVER_ERRORS,
    GET_WITH_PTTL,
    INCR_WITH_TTL,
    PERSIST_IF_EXISTS,
    SET_LEASED,
    TOUCH_IF,
    AsyncDriver,
    announcement,
    invalidation_channel,
    leased_args,
    make_client,
    map_exceptions,
    milliseconds,
    pairs_with_ttl,
    redis_glob,
    translate,
)

__all__ = ["AsyncAnnouncingRedisBackend", "AsyncRedisBackend"]


class AsyncRedisBackend:
    """Bytes in Redis (standalone, TLS or unix socket)."""

    remote = True
    evictions = 0  # Redis evicts server-side: see INFO stats evicted_keys

    def __init__(self, url: ParsedURL, options: Mapping[str, Any]) -> None:
        # Typed loosely: redis-py's stubs widen every reply to bytes | str.
        self.client: Any = make_client(url, options, AsyncDriver)
        self._incr_ttl = self.client.register_script(INCR_WITH_TTL)
        self._persist = self.client.register_script(PERSIST_IF_EXISTS)
        self._get_with_pttl = self.client.register_script(GET_WITH_PTTL)
        self._delete_if = self.client.register_script(DELETE_IF)
        self._touch_if = self.client.register_script(TOUCH_IF)
        self._set_leased = self.client.register_script(SET_LEASED)

    # The hot calls translate errors in ``except`` rather than under ``with
    # map_exceptions()``: entering a generator context manager costs about a
    # microsecond per call.

    async def get(self, key: str) -> bytes | None:
        try:
            # execute_command directly: redis-py's get()/mget() wrappers add a
            # tenth to the client's cost per call (mget imports on every call).
            return cast("bytes | None", await self.client.execute_command("GET", key))
        except DRIVER_ERRORS as exc:
            raise translate(exc) from exc

    async def get_many(self, keys: Sequence[str]) -> list[bytes | None]:
        try:
            return cast("list[bytes | None]", await self.client.execute_command("MGET", *keys))
        except DRIVER_ERRORS as exc:
            raise translate(exc) from exc

    async def get_many_with_ttl(
        self, keys: Sequence[str]
    ) -> list[tuple[bytes, float | None] | None]:
        if not keys:
            return []
        with map_exceptions():
            return pairs_with_ttl(await self._get_with_pttl(keys=list(keys)))

    async def set(
        self, key: str, value: bytes, ttl: float | None = None, *, nx: bool = False
    ) -> bool:
        px = None if ttl is None else milliseconds(ttl)
        try:
            return bool(await self.client.set(key, value, px=px, nx=nx))
        except DRIVER_ERRORS as exc:
            raise translate(exc) from exc

    async def set_many(self, items: Mapping[str, bytes], ttl: float | None = None) -> None:
        with map_exceptions():
            if ttl is None:
                await self.client.mset(dict(items))
                return
            px = milliseconds(ttl)
            async with self.client.pipeline(transaction=True) as pipe:
                for key, value in items.items():
                    pipe.set(key, value, px=px)
                await pipe.execute()

    async def delete(self, key: str) -> bool:
        with map_exceptions():
            return bool(await self.client.unlink(key))

    async def delete_many(self, keys: Sequence[str]) -> int:
        with map_exceptions():
            return int(await self.client.unlink(*keys))

    async def exists(self, key: str) -> bool:
        with map_exceptions():
            return bool(await self.client.exists(key))

    async def touch(self, key: str, ttl: float | None) -> bool:
        with map_exceptions():
            if ttl is None:
                return bool(await self._persist(keys=[key]))
            return bool(await self.client.pexpire(key, milliseconds(ttl)))

    async def delete_if(self, key: str, value: bytes) -> bool:
        with map_exceptions():
            return bool(await self._delete_if(keys=[key], args=[value]))

    async def set_leased(
        self, key: str, value: bytes, ttl: float | None, lease: str, token: bytes, seen: str
    ) -> bool:
        try:
            args = leased_args(value, ttl, token, seen)
            return bool(await self._set_leased(keys=[key, lease], args=args))
        except DRIVER_ERRORS as exc:
            raise translate(exc) from exc

    async def touch_if(self, key: str, value: bytes, ttl: float) -> bool:
        with map_exceptions():
            return bool(await self._touch_if(keys=[key], args=[value, milliseconds(ttl)]))

    async def ttl(self, key: str) -> float | None:
        with map_exceptions():
            left = await self.client.pttl(key)
        if left == -2:
            return None
        return math.inf if left == -1 else left / 1000

    async def incr(self, key: str, delta: int, ttl: float | None = None) -> int:
        with map_exceptions():
            if ttl is None:
                return int(await self.client.incrby(key, delta))
            px = 0 if ttl == 0 else milliseconds(ttl)
            return int(await self._incr_ttl(keys=[key], args=[delta, px]))

    async def scan(self, pattern: str, count: int = 500) -> AsyncIterator[list[str]]:
        match, cursor = redis_glob(pattern), 0
        while True:
            with map_exceptions():
                cursor, keys = await self.client.scan(cursor, match=match, count=count)
            if keys:
                yield [
                    k.decode("utf-8", "surrogateescape") if isinstance(k, bytes) else k
                    for k in keys
                ]
            if cursor == 0:
                return

    async def delete_matching(self, pattern: str) -> int:
        deleted = 0
        async for batch in self.scan(pattern, 1000):
            with map_exceptions():
                # Keys other clients wrote need not be UTF-8: scan decoded them with
                # surrogate escapes; send them back as the exact bytes.
                raw = [key.encode("utf-8", "surrogateescape") for key in batch]
                deleted += int(await self.client.unlink(*raw))
        return deleted

    async def hset(self, key: str, mapping: Mapping[str, bytes]) -> int:
        with map_exceptions():
            return int(await self.client.hset(key, mapping=dict(mapping)))

    async def hget(self, key: str, field: str) -> bytes | None:
        with map_exceptions():
            return cast("bytes | None", await self.client.hget(key, field))

    async def hgetall(self, key: str) -> dict[str, bytes]:
        with map_exceptions():
            raw = await self.client.hgetall(key)
        return {
            (k.decode("utf-8", "surrogateescape") if isinstance(k, bytes) else k): bytes(v)
            for k, v in raw.items()
        }

    async def hdel(self, key: str, fields: Sequence[str]) -> int:
        with map_exceptions():
            raw = [field.encode("utf-8", "surrogateescape") for field in fields]
            return int(await self.client.hdel(key, *raw))

    async def close(self) -> None:
        with map_exceptions():
            await self.client.aclose()


class AsyncAnnouncingRedisBackend(AsyncRedisBackend):
    """``invalidation=pubsub``: every change also names its keys on the database's
    invalidation channel, in the same round trip and after the change (see
    ``coherence.redis``)."""

    def __init__(self, url: ParsedURL, options: Mapping[str, Any]) -> None:
        super().__init__(url, options)
        self._channel = invalidation_channel(options)

    async def _announced(
        self, queue: Callable[[Any], object], keys: Sequence[str] | None, *, atomic: bool = False
    ) -> Any:
        """Run the commands ``queue`` adds to a pipeline, then announce ``keys``;
        return the first command's reply."""
        try:
            async with self.client.pipeline(transaction=atomic) as pipe:
                queue(pipe)
                pipe.publish(self._channel, announcement(keys))
                return (await pipe.execute())[0]
        except DRIVER_ERRORS as exc:
            raise translate(exc) from exc

    async def set(
        self, key: str, value: bytes, ttl: float | None = None, *, nx: bool = False
    ) -> bool:
        px = None if ttl is None else milliseconds(ttl)
        return bool(await self._announced(lambda p: p.set(key, value, px=px, nx=nx), [key]))

    async def set_many(self, items: Mapping[str, bytes], ttl: float | None = None) -> None:
        px = None if ttl is None else milliseconds(ttl)

        def queue(pipe: Any) -> None:
            for key, value in items.items():
                pipe.set(key, value, px=px)

        await self._announced(queue, list(items), atomic=True)

    async def delete(self, key: str) -> bool:
        return bool(await self._announced(lambda p: p.unlink(key), [key]))

    async def set_leased(
        self, key: str, value: bytes, ttl: float | None, lease: str, token: bytes, seen: str
    ) -> bool:
        args = leased_args(value, ttl, token, seen)
        return bool(
            await self._announced(
                lambda p: self._set_leased(keys=[key, lease], args=args, client=p), [key]
            )
        )

    async def delete_many(self, keys: Sequence[str]) -> int:
        return int(await self._announced(lambda p: p.unlink(*keys), keys))

    async def touch(self, key: str, ttl: float | None) -> bool:
        if ttl is None:
            return bool(await self._announced(lambda p: self._persist(keys=[key], client=p), [key]))
        return bool(await self._announced(lambda p: p.pexpire(key, milliseconds(ttl)), [key]))

    async def incr(self, key: str, delta: int, ttl: float | None = None) -> int:
        if ttl is None:
            return int(await self._announced(lambda p: p.incrby(key, delta), [key]))
        px = 0 if ttl == 0 else milliseconds(ttl)
        return int(
            await self._announced(
                lambda p: self._incr_ttl(keys=[key], args=[delta, px], client=p), [key]
            )
        )

    async def delete_matching(self, pattern: str) -> int:
        deleted = await super().delete_matching(pattern)
        with map_exceptions():
            await self.client.publish(self._channel, announcement(None))
        return deleted
