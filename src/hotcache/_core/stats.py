"""Counters every cache keeps; read with ``Cache.stats()``."""

from __future__ import annotations

__all__ = ["Counters"]


class Counters:
    """Plain integer counters (updated without a lock: a lost increment under
    heavy thread contention is acceptable for metrics, a lock on every hit is not)."""

    __slots__ = ("deletes", "errors", "healed", "hits", "misses", "sets", "short_circuited")

    def __init__(self) -> None:
        self.hits = 0
        self.misses = 0
        self.sets = 0
        self.deletes = 0
        self.errors = 0
        self.short_circuited = 0
        self.healed = 0

    def snapshot(self) -> dict[str, int]:
        return {name: getattr(self, name) for name in sorted(self.__slots__)}
