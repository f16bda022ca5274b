# Generated from src/hotcache/_async by scripts/unasync.py. Do not edit.
"""Hand-written async I/O; ``scripts/unasync.py`` generates ``_sync`` from it."""
