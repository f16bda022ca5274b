"""Backends: bytes stores behind the facade (memory, sqlite, redis, null).

``payload_digest`` is what a backend's ``set_leased`` compares (a backend of
your own uses it too; see docs/architecture.md).
"""

from .._core.envelope import payload_digest

__all__ = ["payload_digest"]
