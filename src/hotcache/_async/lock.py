"""``cache.lock(name)``: a lock across threads, tasks and processes, held in the store.

The lock is a key holding a random token, written only if absent, with a
lifetime (``timeout``) so that a holder that dies cannot keep it forever.
Only the owner's token releases or extends it (an atomic compare in the
store), so a holder whose lock expired and was taken by another cannot
release the new owner's lock: it learns instead (``LockLost``) that its work
was not exclusive. Waiters poll with a backoff from 1 ms to 50 ms (with jitter),
so a freed lock is taken within a few milliseconds without loading the store.
"""

from __future__ import annotations

import os
import random
import time
from types import TracebackType
from typing import TYPE_CHECKING, Any

from .._concurrency import async_sleep
from .._core.freshness import validate_ttl
from .._errors import LockLost, LockTimeout

if TYPE_CHECKING:
    from .cache import AsyncCache

__all__ = ["AsyncLock"]

FIRST_POLL = 0.001
LAST_POLL = 0.05


def _positive(timeout: float) -> float:
    seconds = validate_ttl(timeout, name="timeout")
    if seconds is None or not seconds > 0:
        raise ValueError(f"timeout must be a number of seconds > 0, got {timeout!r}")
    return seconds


class AsyncLock:
    """A named lock (see ``AsyncCache.lock``); ``async with`` acquires and releases it."""

    def __init__(
        self,
        cache: AsyncCache,
        key: str,
        name: str,
        *,
        timeout: float,
        blocking: bool,
        blocking_timeout: float | None,
    ) -> None:
        _positive(timeout)
        if blocking_timeout is not None:
            validate_ttl(blocking_timeout, name="blocking_timeout")
        self._cache = cache
        self.key = key
        self.name = name
        self.timeout = timeout
        self.blocking = blocking
        self.blocking_timeout = blocking_timeout
        self._token: bytes | None = None

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name!r} {'held' if self.owned else 'not held'}>"

    @property
    def owned(self) -> bool:
        """True while this object holds the lock (as far as it knows: see ``extend``)."""
        return self._token is not None

    async def acquire(
        self, blocking: bool | None = None, blocking_timeout: float | None = None
    ) -> bool:
        """Take the lock; return False if it could not be taken (not blocking, or
        not within ``blocking_timeout`` seconds; ``None``: wait as configured).

        Raises:
            RuntimeError: this object holds the lock already (it is not re-entrant).
            BackendUnavailable, BackendTimeout, BackendError: the store failed; a
                lock cannot fail open.
        """
        if self._token is not None:
            raise RuntimeError(f"lock {self.name!r} is held by this object already")
        blocking = self.blocking if blocking is None else blocking
        if blocking_timeout is not None:
            validate_ttl(blocking_timeout, name="blocking_timeout")
        wait = self.blocking_timeout if blocking_timeout is None else blocking_timeout
        deadline = None if wait is None else time.monotonic() + wait
        token = os.urandom(16).hex().encode("ascii")
        pause = FIRST_POLL
        while True:
            if await self._call(self._cache._backend.set, self.key, token, self.timeout, nx=True):
                self._token = token
                return True
            if not blocking:
                return False
            left = None if deadline is None else deadline - time.monotonic()
            if left is not None and left <= 0:
                return False
            nap = pause * (0.5 + random.random())
            await async_sleep(nap if left is None else min(nap, left))
            pause = min(pause * 2, LAST_POLL)

    async def release(self) -> None:
        """Give the lock back.

        Raises:
            RuntimeError: this object does not hold it.
            LockLost: it expired while held (and may belong to another now,
                whose lock stays untouched).
        """
        token = self._token
        if token is None:
            raise RuntimeError(f"lock {self.name!r} is not held by this object")
        released = await self._call(self._cache._backend.delete_if, self.key, token)
        self._token = None  # only now: a store that failed leaves it to retry
        if not released:
            raise LockLost(f"lock {self.name!r} expired while held")

    async def extend(self, timeout: float | None = None) -> None:
        """Give the held lock ``timeout`` seconds (default: its own) from now.

        Raises:
            RuntimeError: this object does not hold it.
            LockLost: it had expired already (the work so far was not exclusive).
        """
        token = self._token
        if token is None:
            raise RuntimeError(f"lock {self.name!r} is not held by this object")
        ttl = self.timeout if timeout is None else _positive(timeout)
        if not await self._call(self._cache._backend.touch_if, self.key, token, ttl):
            self._token = None
            raise LockLost(f"lock {self.name!r} expired while held")

    async def locked(self) -> bool:
        """Return True if anyone holds the lock now."""
        return bool(await self._call(self._cache._backend.exists, self.key))

    async def _call(self, op: Any, *args: Any, **kwargs: Any) -> Any:
        return await self._cache._strict(op, *args, **kwargs)  # a lock cannot fail open

    async def __aenter__(self) -> AsyncLock:
        if not await self.acquire():
            raise LockTimeout(f"lock {self.name!r} was not acquired in time")
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.release()
