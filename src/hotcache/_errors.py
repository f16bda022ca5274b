"""The exception tree of hotcache.

```
CacheError
├── ConfigError (also ValueError)      bad URL, unknown scheme, bad option, missing extra
├── SerializationError                 a value cannot be encoded (reads heal instead)
├── BackendError                       a driver error, chained with ``from``
│   ├── BackendUnavailable             cannot connect, connection lost, breaker open
│   └── BackendTimeout (also TimeoutError)
└── LockTimeout                        a lock or lease could not be taken in time
```

Driver exceptions are translated in one place, ``map_exceptions`` in each backend
module, never method by method.
"""

from __future__ import annotations

__all__ = [
    "BackendError",
    "BackendTimeout",
    "BackendUnavailable",
    "CacheError",
    "ConfigError",
    "LockLost",
    "LockTimeout",
    "SerializationError",
]


class CacheError(Exception):
    """Base class of every error hotcache raises on purpose."""


class ConfigError(CacheError, ValueError):
    """A URL, option or installation problem found before any I/O."""


class SerializationError(CacheError):
    """A value could not be encoded; nothing was stored."""


class BackendError(CacheError):
    """The shared tier failed; the driver's exception is the ``__cause__``."""


class BackendUnavailable(BackendError):
    """The shared tier cannot be reached (or the circuit breaker is open)."""


class BackendTimeout(BackendError, TimeoutError):
    """The shared tier did not answer within the configured timeout."""


class LockTimeout(CacheError):
    """A lock or lease could not be acquired within the wait limit."""


class LockLost(CacheError):
    """A lock expired while held (another owner may have taken it since): the
    work done under it was not exclusive. Extend long-held locks in time."""
