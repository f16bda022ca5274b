"""Hand-written async I/O; ``scripts/unasync.py`` generates ``_sync`` from it."""
