"""Lifetimes: validate a ttl and turn it into what a backend needs."""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import Any

__all__ = [
    "DEFAULT_JITTER",
    "FOREVER",
    "Stale",
    "apply_jitter",
    "resolve_ttl",
    "soft_expired",
    "validate_ttl",
]

FOREVER = math.inf  # pass as ttl for "never expires", whatever default_ttl says


def validate_ttl(ttl: Any, *, name: str = "ttl") -> float | None:
    """Return ``ttl`` as seconds (``None`` = no expiry) or raise ``ValueError``.

    A ttl of 0 is valid and means "expire at once": the value is not stored.
    """
    if ttl is None:
        return None
    if isinstance(ttl, bool) or not isinstance(ttl, (int, float)):
        raise ValueError(f"{name} must be a number of seconds or None, not {type(ttl).__name__}")
    try:
        value = float(ttl)
    except OverflowError:  # an int past float's range
        if ttl < 0:
            raise ValueError(f"{name} must be >= 0") from None
        return None  # longer than any lifetime
    if math.isnan(value):
        raise ValueError(f"{name} must not be NaN")
    if value < 0:
        raise ValueError(f"{name} must be >= 0, got {ttl!r}")
    if math.isinf(value):
        return None
    return value


def resolve_ttl(ttl: Any, default: float | None) -> float | None:
    """Return the lifetime to use: an explicit ``ttl`` or the cache's default."""
    if ttl is None:
        return default
    return validate_ttl(ttl)


DEFAULT_JITTER = 0.1


def apply_jitter(ttl: float | None, jitter: float, draw: Callable[[], float]) -> float | None:
    """Spread a lifetime by up to ``±jitter`` of itself (``draw`` returns [0, 1)).

    Entries written together (a warm-up, a deploy, a burst of misses) would
    otherwise all expire in the same second and send every caller to the data
    source at once. ``jitter=0`` keeps the lifetime exact; ``None`` and 0 pass
    through unchanged.
    """
    if not 0 <= jitter < 1:
        raise ValueError(f"jitter must be in [0, 1), got {jitter!r}")
    if ttl is None or ttl == 0 or jitter == 0:
        return ttl
    return ttl * (1 + jitter * (2 * draw() - 1))


class Stale:
    """A value read past its soft expiry (``stale_ttl``): served while one caller
    refreshes it in the background."""

    __slots__ = ("value",)

    def __init__(self, value: Any) -> None:
        self.value = value


def soft_expired(soft_expiry: float | None) -> bool:
    """Return True if an entry with this soft expiry (wall clock) is stale now
    (the clock is read only for an entry that has one)."""
    return soft_expiry is not None and time.time() >= soft_expiry
