"""The circuit breaker: after failures, stop calling L2 for a short window."""

from __future__ import annotations

import time
from collections.abc import Callable

__all__ = ["Breaker"]


class Breaker:
    """Count consecutive failures and decide when calls may reach the backend.

    Closed: calls go through. After ``threshold`` consecutive failures it opens
    for ``window`` seconds: calls fail fast without I/O. When the window ends, one
    call goes through as a probe; success closes the breaker, failure reopens it.
    A dead backend so costs one timeout per window, not one per call.
    """

    __slots__ = ("_clock", "_probing", "failures", "open_until", "threshold", "trips", "window")

    def __init__(
        self, threshold: int = 2, window: float = 1.0, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.threshold = threshold
        self.window = window
        self.failures = 0
        self.open_until = 0.0
        self.trips = 0
        self._probing = False
        self._clock = clock

    @property
    def is_open(self) -> bool:
        return self.open_until > 0.0

    def allow(self) -> bool:
        """Return True if a call may go to the backend now."""
        if not self.open_until:
            return True
        now = self._clock()
        if now < self.open_until:
            return False
        # The probe holds the breaker shut for one more window: a probe whose outcome
        # is never recorded (a cancelled task, an error that says nothing about
        # reachability) must lead to another probe, not to a breaker shut for good.
        self.open_until = now + self.window
        self._probing = True
        return True

    def success(self) -> bool:
        """Record a success; return True if this closed an open breaker."""
        was_open = self.open_until > 0.0
        self.failures = 0
        self.open_until = 0.0
        self._probing = False
        return was_open

    def failure(self) -> bool:
        """Record a failure; return True if this opened a closed breaker.

        A failed probe reopens the breaker for another window but returns False:
        only changes of state are worth a log line.
        """
        self.failures += 1
        if self._probing or self.failures >= self.threshold:
            first = not self.open_until
            self.open_until = self._clock() + self.window
            self._probing = False
            if first:
                self.trips += 1
            return first
        return False
