"""Pure policy: no I/O, no asyncio, no threading, no drivers."""
