"""Serializers: objects to bytes and back, each with a stable one-byte id."""

from __future__ import annotations

import json
import math
import pickle
from collections.abc import Callable
from typing import Any, Protocol

from .._errors import ConfigError

__all__ = ["SERIALIZER_IDS", "Serializer", "get_serializer"]


class Serializer(Protocol):
    """Turn values into bytes and back; ``id`` is written into every envelope."""

    id: int
    name: str

    def dumps(self, value: Any) -> bytes: ...

    def loads(self, data: bytes) -> Any: ...


class PickleSerializer:
    id = 1
    name = "pickle"

    def dumps(self, value: Any) -> bytes:
        return pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)

    # The C function itself: every read of a pickled value calls it.
    loads = staticmethod(pickle.loads)


class JsonSerializer:
    """JSON; orjson when installed, the standard library otherwise (each reads the other's)."""

    id = 2
    name = "json"

    def __init__(self) -> None:
        try:
            import orjson
        except ImportError:
            self._orjson: Any = None
        else:
            self._orjson = orjson

    def dumps(self, value: Any) -> bytes:
        if self._orjson is not None:
            try:
                out: bytes = self._orjson.dumps(value)
            except TypeError as exc:
                # orjson refuses some values the stdlib accepts (ints over 64 bits).
                if "Integer exceeds" not in str(exc):
                    raise
            else:
                # orjson silently writes NaN and infinities as null; refuse them as
                # the stdlib does (allow_nan=False) rather than read back None.
                if b"null" in out and _has_non_finite(value):
                    raise ValueError("NaN and infinite floats are not JSON")
                return out
        text = json.dumps(value, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
        # The leading space (still JSON) routes this payload to the stdlib on read:
        # orjson would turn integers beyond 64 bits into floats.
        return _STDLIB_MARK + text.encode("utf-8")

    def loads(self, data: bytes) -> Any:
        if self._orjson is not None and data[:1] != _STDLIB_MARK:
            return self._orjson.loads(data)
        return json.loads(data)


_STDLIB_MARK = b" "


def _has_non_finite(value: Any) -> bool:
    if isinstance(value, float):
        return not math.isfinite(value)
    if isinstance(value, dict):
        return any(_has_non_finite(v) for v in value.values())
    if isinstance(value, (list, tuple)):
        return any(_has_non_finite(v) for v in value)
    return False


class MsgpackSerializer:
    id = 3
    name = "msgpack"

    def __init__(self) -> None:
        try:
            import msgpack
        except ImportError:
            raise ConfigError(
                "serializer 'msgpack' needs the msgpack package: pip install 'hotcache[msgpack]'"
            ) from None
        self._msgpack = msgpack

    def dumps(self, value: Any) -> bytes:
        return self._msgpack.packb(value, use_bin_type=True)  # type: ignore[no-any-return]

    def loads(self, data: bytes) -> Any:
        return self._msgpack.unpackb(data, raw=False, strict_map_key=False)


SERIALIZER_IDS = {"pickle": 1, "json": 2, "msgpack": 3}
_FACTORIES: dict[str, Callable[[], Serializer]] = {
    "pickle": PickleSerializer,
    "json": JsonSerializer,
    "msgpack": MsgpackSerializer,
}


def get_serializer(name: str | Serializer) -> Serializer:
    """Return the serializer called ``name``, or ``name`` itself if it is one."""
    if not isinstance(name, str):
        if not all(hasattr(name, attr) for attr in ("id", "name", "dumps", "loads")):
            raise ConfigError("a custom serializer needs id, name, dumps and loads")
        if name.id in SERIALIZER_IDS.values() or not 16 <= name.id <= 255:
            raise ConfigError("a custom serializer's id must be in 16..255 (0..15 are reserved)")
        return name
    factory = _FACTORIES.get(name)
    if factory is None:
        raise ConfigError(f"unknown serializer {name!r}; use one of {', '.join(_FACTORIES)}")
    return factory()
