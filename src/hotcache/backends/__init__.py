"""Backends: bytes stores behind the facade (memory, sqlite, redis, null)."""
