"""Small helpers every local backend shares: glob matching, type errors."""

from __future__ import annotations

import fnmatch
import re
from functools import lru_cache

from .._errors import BackendError

__all__ = ["compile_glob", "wrong_type"]


@lru_cache(maxsize=256)
def compile_glob(pattern: str) -> re.Pattern[str]:
    """Compile a glob (``*``, ``?``, ``[...]``, ``[!...]``/``[^...]``) to a regex."""
    # fnmatch spells negation [!...]; Redis and SQLite spell it [^...].
    return re.compile(fnmatch.translate(pattern.replace("[^", "[!")), re.DOTALL)


def wrong_type(key: str) -> BackendError:
    """Return the error every backend raises for a hash/plain-value mix-up (Redis WRONGTYPE)."""
    return BackendError(f"WRONGTYPE: {key!r} holds a different kind of value")
