"""The public miss sentinel, distinct from a cached ``None``."""

from __future__ import annotations

import enum
from typing import Final, Literal


class _Missing(enum.Enum):
    MISSING = "MISSING"

    def __bool__(self) -> Literal[False]:
        return False

    def __repr__(self) -> str:
        return "hotcache.MISSING"

    __str__ = __repr__


MISSING: Final = _Missing.MISSING
Missing = Literal[_Missing.MISSING]
