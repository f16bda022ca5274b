"""Coherence with a SQLite file: one cheap check before the in-process tier serves.

``PRAGMA data_version`` changes on a connection when any other connection (any
process, or another thread of this one) has committed since that connection
last asked. Only then is the file's change log read, from the last change this
process applied: the keys it names are dropped from the tier, or the whole
tier when the log cannot name them (pruned past, or too much changed). A file
that cannot be read suspends the tier until it can.
"""

from __future__ import annotations

import threading
from typing import Any

from .._core.local import LocalTier
from .._errors import BackendError
from ..backends.sqlite import SQLiteBackend

__all__ = ["SQLiteFeed"]


class SQLiteFeed:
    """Keep one ``LocalTier`` coherent with one SQLite backend."""

    def __init__(self, backend: SQLiteBackend, tier: LocalTier[Any]) -> None:
        self._backend = backend
        self._tier = tier
        self._applied: int | None = None  # the last change the tier reflects
        self._lock = threading.Lock()
        self._seen = threading.local()  # each thread's connection's data_version

    def after_fork(self) -> None:
        """In a forked child: fresh lock, and no connection's data_version taken as
        this process's (SQLite closed the connections at the fork)."""
        self._lock = threading.Lock()
        self._seen = threading.local()
        self._applied = None

    def covers(self, key: str) -> bool:
        """Every change of the file is logged: every key is covered."""
        return True

    def close(self) -> None:
        """Close the feed's own connections to the file."""
        self._backend.close()
        self._tier.suspend()

    def ready(self) -> None:
        """Nothing to wait for: the first read checks the file."""

    def barrier(self, timeout: float = 1.0) -> None:
        """Apply every change committed before this call (what a read does first)."""
        self.sync()

    def sync(self) -> bool:
        """Bring the tier up to date with the file; return True if it may serve."""
        try:
            version = self._backend.data_version()
            if getattr(self._seen, "version", None) == version and self._tier.serving:
                return True
            with self._lock:
                newest, keys = self._backend.changes_since(self._applied)
                if keys is None:
                    self._tier.flush()
                else:
                    self._tier.invalidate(keys)
                self._applied = newest
                self._tier.resume()
        except BackendError:
            self._tier.suspend()
            self._seen.version = None
            return False
        self._seen.version = version
        return True
