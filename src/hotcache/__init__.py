"""hotcache: a coherent two-tier cache for Python services.

``Cache`` (sync) and ``AsyncCache`` (asyncio) over ``memory://``, an embedded
SQLite file (the default), Redis, or ``null://``. See the README.
"""

from __future__ import annotations

from ._async.cache import AsyncCache
from ._core.freshness import FOREVER
from ._core.keys import KeyLike
from ._core.missing import MISSING
from ._core.serializers import Serializer
from ._errors import (
    BackendError,
    BackendTimeout,
    BackendUnavailable,
    CacheError,
    ConfigError,
    LockTimeout,
    SerializationError,
)
from ._sync.cache import Cache

__all__ = [
    "FOREVER",
    "MISSING",
    "AsyncCache",
    "BackendError",
    "BackendTimeout",
    "BackendUnavailable",
    "Cache",
    "CacheError",
    "ConfigError",
    "KeyLike",
    "LockTimeout",
    "SerializationError",
    "Serializer",
]

__version__ = "0.1.0"
