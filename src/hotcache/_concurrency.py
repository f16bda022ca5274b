"""The few primitives where sync and async differ, paired by name.

``scripts/unasync.py`` rewrites each ``async_*``/``Async*`` name used in
``_async/`` into its ``sync_*``/``Sync*`` partner below; nothing else differs.
"""

from __future__ import annotations

import asyncio
import contextvars
import inspect
import threading
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar, Union

T = TypeVar("T")

# What an I/O callable returns: an awaitable of T on the async face, T itself on
# the sync one (``Union[T]`` is T), so one annotation types both generated trees.
AsyncAwaitable = Awaitable[T]
SyncAwaitable = Union[T]  # noqa: UP007 (a one-member Union is the point)

# What a waiter waits on: an event of the loop, or of the threads.
AsyncEvent = asyncio.Event
SyncEvent = threading.Event


def async_waiters() -> object:
    """Return what waiters on an ``AsyncEvent`` share: the running loop (an event
    belongs to the loop that first waits on it)."""
    return asyncio.get_running_loop()


def sync_waiters() -> object:
    """Threads share every ``SyncEvent``."""
    return None


_background: set[Any] = set()  # running background tasks (the loop keeps weak refs)


def async_background(work: Callable[[], Awaitable[Any]]) -> None:
    """Start ``work()`` on the running loop and return without waiting for it."""
    task = asyncio.ensure_future(work())
    _background.add(task)
    task.add_done_callback(_background.discard)


def sync_background(work: Callable[[], Any]) -> None:
    """Start ``work()`` in a daemon thread and return without waiting for it, in a
    copy of the caller's context (its tenant), as a task would run."""
    context = contextvars.copy_context()
    threading.Thread(target=context.run, args=(work,), name="hotcache-refresh", daemon=True).start()


# How a waiter pauses: yielding to the loop, or blocking the thread.
async_sleep = asyncio.sleep
sync_sleep = time.sleep

__all__ = [
    "AsyncAwaitable",
    "AsyncEvent",
    "SyncAwaitable",
    "SyncEvent",
    "async_background",
    "async_blocking",
    "async_produce",
    "async_sleep",
    "async_waiters",
    "sync_background",
    "sync_blocking",
    "sync_produce",
    "sync_sleep",
    "sync_waiters",
]


async def async_blocking(call: Callable[[], T]) -> T:
    """Run a call that blocks (waits on another thread) without stalling the loop."""
    return await asyncio.to_thread(call)


def sync_blocking(call: Callable[[], T]) -> T:
    """Run a call that blocks, here and now."""
    return call()


async def async_produce(producer: Callable[[], T | Awaitable[T]]) -> T:
    """Call a producer that may be a plain or an ``async`` function."""
    result = producer()
    if inspect.isawaitable(result):
        return await result
    return result


def sync_produce(producer: Callable[[], Any]) -> Any:
    """Call a plain producer; refuse a coroutine function with a clear error."""
    result = producer()
    if inspect.isawaitable(result):
        if inspect.iscoroutine(result):
            result.close()
        raise TypeError("the producer returned an awaitable: use AsyncCache for async producers")
    return result
