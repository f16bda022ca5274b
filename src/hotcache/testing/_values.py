"""Conformance tests of values: round trips, compression, serializers, signing, healing."""

from __future__ import annotations

import datetime
import decimal
import enum
import fractions
import math
import random
import threading
import uuid
from collections.abc import Callable
from typing import Any

import pytest

from .._core.missing import MISSING
from .._errors import SerializationError
from ._harness import Face, Harness, needs_storage

__all__ = ["ValueTests"]

SECRET = "conformance-secret-0123456789"


class Color(enum.Enum):
    RED = 1


class Level(enum.IntEnum):
    HIGH = 3


ROUND_TRIPS: tuple[Any, ...] = (
    "text",
    "",
    "ünïcødé ☃ 𝄞 中文",
    "lone \ud800 surrogate",
    b"bytes",
    b"",
    bytes(range(256)),
    0,
    1,
    -1,
    2**63 - 1,
    -(2**63),
    2**63,
    2**64 + 1,
    2**200,
    -(2**200),
    1.5,
    -0.0,
    1e308,
    math.inf,
    -math.inf,
    True,
    False,
    None,
    [],
    {},
    (),
    [1, "a", None, 2.5],
    (1, "a", None),
    {"a": 1, 2: "b", (1, 2): [3], None: b"n"},
    {"nested": [{"deep": (1, b"x", None, {"ü": [True]})}], "set": {1, 2}},
    {1, 2, 3},
    frozenset({"a", "b"}),
    bytearray(b"mutable"),
    complex(1, -2),
    decimal.Decimal("1.10"),
    fractions.Fraction(1, 3),
    datetime.datetime(2024, 2, 29, 12, 30, 1, 5, tzinfo=datetime.timezone.utc),
    datetime.date(1999, 12, 31),
    datetime.timedelta(days=-1, microseconds=7),
    uuid.UUID(int=12345),
    Color.RED,
    Level.HIGH,
)

JSON_ROUND_TRIPS: tuple[Any, ...] = (
    "s",
    "",
    "☃ 𝄞",
    b"raw bytes",
    0,
    -5,
    2**63 - 1,
    2**70,
    1.5,
    True,
    False,
    None,
    [],
    {},
    [1, "a", None, [2, [3.5]]],
    {"a": {"b": [1, 2.5, None, True, "ü"]}, "": ""},
)
JSON_REJECTS: tuple[Any, ...] = ({1, 2}, object(), complex(1, 2), decimal.Decimal("1"), [b"x"])

MSGPACK_ROUND_TRIPS: tuple[Any, ...] = (
    "s",
    b"b",
    -7,
    2**63 - 1,
    1.5,
    True,
    None,
    [1, [2, [3]]],
    {"a": [1, 2.5, None, True, "☃", b"bytes"]},
    {1: "int key"},
)

tripped: list[str] = []


def _trip(name: str) -> str:
    tripped.append(name)
    return name


class Tripwire:
    """A value whose unpickling is recorded: proves a payload was never unpickled."""

    def __init__(self, name: str) -> None:
        self.name = name

    def __reduce__(self) -> tuple[Callable[[str], str], tuple[str]]:
        return _trip, (self.name,)


def _same(got: Any, want: Any) -> bool:
    if isinstance(want, float) and math.isnan(want):
        return isinstance(got, float) and math.isnan(got)
    if isinstance(want, float) and want == 0:
        return got == 0 and math.copysign(1, got) == math.copysign(1, want)
    return bool(got == want) and type(got) is type(want)


def _unpicklables() -> list[Any]:
    return [lambda: 1, threading.Lock(), (x for x in "ab"), {"inner": threading.Lock()}]


def _corrupt_payloads() -> list[bytes]:
    return [
        b"",
        b"junk that is no payload",
        b"\xc5",
        b"\xc5\x01",
        b"\xc5\x09\x00\x01abc",  # unknown format version
        b"\xc5\x01\x00\x01not a pickle",
        b"\xc5\x01\x00\x01",  # empty pickle
        b"\xc5\x01\x04\x01not zlib",
        b"\xc5\x01\x08\x01not zstd",
        b"\xc5\x01\x0c\x01x",  # unknown compression
        b"\xc5\x01\x00\xeex",  # unknown serializer id
        b"\xc5\x01\x02\x01\xff\xff",  # truncated metadata
        b"\xc5\x01\x01\x01short",  # signed flag, no room for a mac
        b"\xc5\x01\x00\x04\xff\xfe",  # text that is not UTF-8
        b"\xc5\x01\x00\x02{not json",
    ]


class ValueTests:
    """Values survive the round trip; bad ones are refused or healed, never trusted."""

    @needs_storage
    def test_value_round_trips(self, hc: Harness) -> None:
        c = hc.cache
        for i, value in enumerate(ROUND_TRIPS):
            c.set(f"v{i}", value)
            assert _same(c.get(f"v{i}", MISSING), value), value
        nan = c.get_or_set("nan", lambda: math.nan)
        assert math.isnan(c.get("nan")) and math.isnan(nan)
        keys = {f"m{i}": value for i, value in enumerate(ROUND_TRIPS)}
        c.set_many(keys)
        found = c.get_many(list(keys))
        assert len(found) == len(keys)
        for key, value in keys.items():
            assert _same(found[key], value), value
        c.hset("h", mapping=keys)
        fields = c.hgetall("h")
        for key, value in keys.items():
            assert _same(fields[key], value), value
            assert _same(c.hget("h", key), value), value

    @needs_storage
    def test_large_values_are_compressed(self, hc: Harness) -> None:
        c = hc.cache
        noise = random.Random(7).randbytes(50_000)
        large: dict[str, Any] = {
            "text": "x" * 200_000,
            "bytes": b"y" * 200_000,
            "list": list(range(20_000)),
            "noise": noise,
            "mixed": {"noise": noise, "text": "ü" * 50_000},
        }
        c.set_many(large)
        for key, value in large.items():
            assert _same(c.get(key), value), key
            c.set(key + "!", value)
            assert _same(c.get(key + "!"), value), key
            assert _same(c.get_or_set(key + "?", lambda v=value: v), value)
        assert len(hc.raw.get(c.key("text")) or b"") < 20_000
        assert len(hc.raw.get(c.key("bytes!")) or b"") < 20_000
        assert len(hc.raw.get(c.key("noise")) or b"") < 50_100
        signed = hc.open(secret=SECRET, compress_threshold=10)
        signed.set("big", large["mixed"])
        assert _same(signed.get("big"), large["mixed"])

    def test_unserializable_value_changes_nothing(self, hc: Harness) -> None:
        c = hc.cache
        c.set("k", "before")
        for value in _unpicklables():
            kind = type(value).__name__
            with pytest.raises(SerializationError, match=kind):
                c.set("k", value)
            with pytest.raises(SerializationError):
                c.set("new", value, ttl=100)
            with pytest.raises(SerializationError):
                c.add("new", value)
            with pytest.raises(SerializationError):
                c.set_many({"k": "after", "new": value, "new2": 1})
            with pytest.raises(SerializationError):
                c.get_or_set("new", hc.producer(lambda v=value: v))  # type: ignore[misc]
            with pytest.raises(SerializationError):
                c.hset("h", "f", value)
            with pytest.raises(SerializationError):
                c.hset("h", mapping={"ok": 1, "bad": value})
        assert c.get("k") == ("before" if hc.stores else None)
        assert c.get_many(["new", "new2"]) == {}
        assert c.hgetall("h") == {}
        assert c.stats()["healed"] == 0

    @needs_storage
    def test_json_serializer(self, hc: Harness) -> None:
        c = hc.open(serializer="json")
        for i, value in enumerate(JSON_ROUND_TRIPS):
            c.set(i, value)
            assert _same(c.get(i), value), value
        assert c.get_or_set("tuple", lambda: (1, [2])) == (1, [2])
        assert c.get("tuple") == [1, [2]]
        c.set("k", "before")
        for value in JSON_REJECTS:
            with pytest.raises(SerializationError, match=type(value).__name__):
                c.set("k", value)
            with pytest.raises(SerializationError):
                c.set_many({"k": "after", "other": value})
        assert c.get("k") == "before"
        assert c.exists("other") is False

    @needs_storage
    def test_msgpack_serializer(self, hc: Harness) -> None:
        pytest.importorskip("msgpack")
        c = hc.open(serializer="msgpack")
        for i, value in enumerate(MSGPACK_ROUND_TRIPS):
            c.set(i, value)
            assert _same(c.get(i), value), value
        c.set("k", "before")
        for value in (object(), {1, 2}, 2**70):
            with pytest.raises(SerializationError):
                c.set("k", value)
        assert c.get("k") == "before"

    @needs_storage
    def test_pickle_serializer_named_explicitly(self, hc: Harness) -> None:
        c = hc.open(serializer="pickle")
        c.set("k", {"a": (1, {2})})
        assert hc.cache.get("k") == {"a": (1, {2})}

    @needs_storage
    def test_non_pickle_cache_never_unpickles(self, hc: Harness) -> None:
        tripped.clear()
        hc.cache.set("t", Tripwire("json"))
        for serializer in ("json", "msgpack"):
            if serializer == "msgpack":
                pytest.importorskip("msgpack")
            reader = hc.open(serializer=serializer)
            hc.cache.set("t", Tripwire(serializer))
            assert reader.get("t", MISSING) is MISSING
            assert reader.stats()["healed"] == 1
            assert hc.raw.get(reader.key("t")) is None
        assert tripped == []

    @needs_storage
    def test_signed_values(self, hc: Harness) -> None:
        tripped.clear()
        signed = hc.open(secret=SECRET)
        signed.set("k", {"a": [1, 2]})
        assert signed.get("k") == {"a": [1, 2]}
        signed.set("n", 5)
        assert signed.incr("n") == 6
        signed.hset("h", "f", ("v", 1))
        assert signed.hget("h", "f") == ("v", 1)
        assert signed.get_or_set("p", lambda: [None]) == [None]
        assert signed.get("p") == [None]
        assert signed.stats()["healed"] == 0

    @needs_storage
    def test_signing_rejects_forged_payloads(self, hc: Harness) -> None:
        tripped.clear()
        signed = hc.open(secret=SECRET)
        plain = hc.open()
        other_secret = hc.open(secret=SECRET[::-1])
        raw = hc.raw
        healed = 0

        def expect_healed(key: str, face: Face = signed) -> None:
            nonlocal healed
            assert face.get(key, MISSING) is MISSING, key
            healed += 1
            assert signed.stats()["healed"] == healed
            assert raw.get(signed.key(key)) is None, key

        plain.set("unsigned", Tripwire("unsigned"))
        expect_healed("unsigned")
        other_secret.set("foreign", Tripwire("foreign"))
        expect_healed("foreign")
        # Flip one byte of the mac, then one of the body: both must fail the check.
        signed.set("mac", Tripwire("mac"))
        payload = bytearray(raw.get(signed.key("mac")) or b"")
        payload[4] ^= 0x01
        raw.set(signed.key("mac"), bytes(payload))
        expect_healed("mac")
        signed.set("body", ["x" * 10, Tripwire("body")])
        payload = bytearray(raw.get(signed.key("body")) or b"")
        payload[-3] ^= 0x20
        raw.set(signed.key("body"), bytes(payload))
        expect_healed("body")
        # A payload signed for one key is not valid under another.
        signed.set("here", Tripwire("moved"))
        raw.set(signed.key("there"), raw.get(signed.key("here")) or b"")
        expect_healed("there")
        plain.set("many", Tripwire("many"))
        assert signed.get_many(["many", "absent"]) == {}
        healed += 1
        assert raw.get(signed.key("many")) is None
        plain.set("produce", Tripwire("produce"))
        assert signed.get_or_set("produce", lambda: "fresh") == "fresh"
        healed += 1
        assert signed.get("produce") == "fresh"
        plain.hset("h", mapping={"bad": Tripwire("field"), "bad2": Tripwire("field2")})
        assert signed.hget("h", "bad", "dflt") == "dflt"
        healed += 1
        assert signed.hgetall("h") == {}
        healed += 1
        assert signed.stats()["healed"] == healed
        assert raw.hgetall(signed.key("h")) == {}
        assert tripped == []

    @needs_storage
    def test_corrupt_payloads_heal(self, hc: Harness) -> None:
        c = hc.cache
        raw = hc.raw
        payloads = _corrupt_payloads()
        for i, payload in enumerate(payloads):
            raw.set(c.key(f"get{i}"), payload)
            assert c.get(f"get{i}", "dflt") == "dflt", payload
            assert raw.get(c.key(f"get{i}")) is None, payload
            raw.set(c.key(f"many{i}"), payload)
            c.set(f"good{i}", i)
            assert c.get_many([f"many{i}", f"good{i}"]) == {f"good{i}": i}, payload
            assert raw.get(c.key(f"many{i}")) is None, payload
            raw.set(c.key(f"gos{i}"), payload)
            assert c.get_or_set(f"gos{i}", hc.producer(lambda: "fresh")) == "fresh"
            assert c.get(f"gos{i}") == "fresh"
            raw.hset(c.key("h"), {f"f{i}": payload})
            assert c.hget("h", f"f{i}", "dflt") == "dflt"
            assert raw.hget(c.key("h"), f"f{i}") is None
        raw.hset(c.key("h"), {"bad": payloads[1]})
        c.hset("h", "good", 1)
        assert c.hgetall("h") == {"good": 1}
        assert raw.hgetall(c.key("h")).keys() == {"good"}
        stats = c.stats()
        assert stats["healed"] == 4 * len(payloads) + 1
        assert stats["errors"] == 0
