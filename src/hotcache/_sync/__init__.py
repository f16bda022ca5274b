# Generated from src/hotcache/_async by scripts/unasync.py. Do not edit.
"""The faces' I/O: ``_async`` is written by hand; ``_sync`` is generated from it."""
