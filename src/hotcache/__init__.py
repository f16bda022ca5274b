"""hotcache: a coherent two-tier cache for Python services.

``Cache`` (sync) and ``AsyncCache`` (asyncio) over ``memory://``, an embedded
SQLite file (the default), Redis, or ``null://``. See the README.
"""

from __future__ import annotations

from ._async.cache import AsyncCache
from ._async.lock import AsyncLock
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
    LockLost,
    LockTimeout,
    SerializationError,
)
from ._sync.cache import Cache
from ._sync.lock import SyncLock as Lock

__all__ = [
    "FOREVER",
    "MISSING",
    "AsyncCache",
    "AsyncLock",
    "BackendError",
    "BackendTimeout",
    "BackendUnavailable",
    "Cache",
    "CacheError",
    "ConfigError",
    "KeyLike",
    "Lock",
    "LockLost",
    "LockTimeout",
    "SerializationError",
    "Serializer",
]

__version__ = "0.1.0"
