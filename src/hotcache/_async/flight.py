"""Single-flight within a process: concurrent misses of one key run one producer.

The first caller to miss a key leads: it runs the producer (which stores the
result); callers that miss the same key while it runs wait for its outcome, the
result or the exception, instead of running the producer too. A leader that is
cancelled or interrupted abandons the flight: its followers look again, and one
of them leads. A caller whose lookup missed while a flight of its key was
landing looks again before it leads: that flight has just stored the value.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from .._concurrency import AsyncAwaitable, AsyncEvent, async_waiters

__all__ = ["RETRY", "AsyncFlights"]

RETRY: Any = object()  # look the key up again (a flight landed, or was abandoned)
_ABANDONED = object()
_MAX_LANDED = 10_000


class _Flight:
    __slots__ = ("done", "error", "result")

    def __init__(self) -> None:
        self.done = AsyncEvent()
        self.result: Any = None
        self.error: Any = None


class AsyncFlights:
    """The flights of one cache face, by backend key."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        # By waiters (an event loop's flights are its own) and key.
        self._running: dict[tuple[object, str], _Flight] = {}
        self.landings = 0
        """Flights landed so far: read before a lookup, passed to ``run``."""
        self._landed: dict[str, int] = {}  # key -> ``landings`` when its last flight landed
        self._forgotten = 0  # ``landings`` when ``_landed`` was last emptied (bounded)

    async def run(self, k: str, seen: int, produce: Callable[[], AsyncAwaitable[Any]]) -> Any:
        """Return ``produce()``'s result, or that of the flight of ``k`` under way.

        ``seen`` is ``landings`` from before the caller's lookup missed. Returns
        ``RETRY`` when the caller must look again first: a flight of ``k`` landed
        since (or was abandoned while the caller waited for it).
        """
        place = (async_waiters(), k)
        with self._lock:
            flight = self._running.get(place)
            if flight is None:
                if seen != self.landings and self._landed.get(k, self._forgotten) > seen:
                    return RETRY
                flight = self._running[place] = _Flight()
                leader = True
            else:
                leader = False
        if not leader:
            await flight.done.wait()
            if flight.error is _ABANDONED:
                return RETRY
            if flight.error is not None:
                raise flight.error
            return flight.result
        try:
            flight.result = await produce()
        except Exception as exc:
            flight.error = exc
            raise
        except BaseException:  # cancelled or interrupted: someone else leads
            flight.error = _ABANDONED
            raise
        finally:
            flight.done.set()
            with self._lock:
                del self._running[place]
                self.landings += 1
                if len(self._landed) >= _MAX_LANDED:
                    self._landed.clear()
                    self._forgotten = self.landings
                self._landed[k] = self.landings
        return flight.result
