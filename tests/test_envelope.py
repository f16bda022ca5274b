"""The value envelope: serializers, compression, raw ints, metadata, signing, decoding."""

from __future__ import annotations

import datetime
import decimal
import enum
import pickle
import struct
import sys
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hotcache import MISSING, Cache, ConfigError, SerializationError
from hotcache._core.envelope import (
    COMP_MASK,
    COMP_SHIFT,
    COMP_ZLIB,
    COMP_ZSTD,
    HAS_META,
    MAC_SIZE,
    MAGIC,
    SIGNED,
    Codec,
    DecodeError,
    Meta,
)

SECRET = "a-secret-of-at-least-16-bytes"
KEY = "ns:key"
SIDE_EFFECTS: list[str] = []


def record(what: str) -> None:
    """Leave a trace (what unpickling an ``Evil`` runs)."""
    SIDE_EFFECTS.append(what)


class Evil:
    """Unpickling this runs code with a visible effect."""

    def __reduce__(self) -> tuple[Callable[..., Any], tuple[Any, ...]]:
        # A module function pickles by reference (a bound list.append would copy the list).
        return (record, ("unpickled!",))


class EvilFile:
    """Unpickling this creates a file."""

    def __init__(self, path: str) -> None:
        self.path = path

    def __reduce__(self) -> tuple[Callable[..., Any], tuple[Any, ...]]:
        return (open, (self.path, "w"))


@pytest.fixture(autouse=True)
def _no_side_effects() -> Any:
    SIDE_EFFECTS.clear()
    yield
    SIDE_EFFECTS.clear()


@pytest.fixture
def pickle_spy(monkeypatch: pytest.MonkeyPatch) -> list[bytes]:
    """Record every ``pickle.loads`` call (then run the real one)."""
    calls: list[bytes] = []
    real = pickle.loads

    def spy(data: bytes, /, **kwargs: Any) -> Any:
        calls.append(bytes(data))
        return real(data, **kwargs)

    monkeypatch.setattr(pickle, "loads", spy)
    return calls


def flags_of(raw: bytes) -> int:
    assert raw[0] == MAGIC
    return raw[2]


def compression_of(raw: bytes) -> int:
    return (flags_of(raw) & COMP_MASK) >> COMP_SHIFT


# -- round trips ----------------------------------------------------------------------

PICKLE_VALUES: list[Any] = [
    None, True, False, 0, -1, 1.5, float("inf"), "", "text", "ünï\u20ac\U0001f600", "\ud800",
    b"", b"\x00\xff", bytearray(b"ba"), [1, "a", None], (1, 2), {"a": {"b": [1]}}, {1: "int key"},
    {1, 2}, frozenset({3}), decimal.Decimal("1.10"), datetime.datetime(2024, 1, 2, 3, 4, 5),
    2**64, -(2**70), complex(1, 2), ["x" * 5000],
]  # fmt: skip
JSON_VALUES: list[Any] = [
    None, True, False, 0, -1, 2**63 - 1, 2**63, -(2**63) - 1, 2**100, 1.5, -0.0, "", "text",
    "ünï\U0001f600", [1, "a", None], {"a": {"b": [1, 2.5]}}, [], {}, ["x" * 5000],
]  # fmt: skip
MSGPACK_VALUES: list[Any] = [
    None, True, 0, -1, 2**64 - 1, -(2**63), 1.5, float("nan"), "", "ünï", b"\x00\xff",
    [1, "a", None], {"a": {"b": [1]}}, {1: 2}, ["x" * 5000],
]  # fmt: skip


def same(a: Any, b: Any) -> bool:
    """Equality that also holds for NaN."""
    if isinstance(a, float) and a != a:
        return isinstance(b, float) and b != b
    return bool(a == b) and type(a) is type(b)


@pytest.mark.parametrize("secret", [None, SECRET])
@pytest.mark.parametrize("threshold", [0, 1024])
@pytest.mark.parametrize("value", PICKLE_VALUES, ids=repr)
def test_pickle_round_trip(value: Any, secret: str | None, threshold: int) -> None:
    codec = Codec("pickle", secret=secret, compress_threshold=threshold)
    back, meta = codec.decode(KEY, codec.encode(KEY, value))
    assert meta is None
    if isinstance(value, bytearray):
        assert back == value
    elif isinstance(value, float) and value != value:
        assert back != back
    else:
        assert same(back, value)


@pytest.mark.parametrize("secret", [None, SECRET])
@pytest.mark.parametrize("threshold", [0, 1024])
@pytest.mark.parametrize("value", JSON_VALUES, ids=repr)
def test_json_round_trip(value: Any, secret: str | None, threshold: int) -> None:
    codec = Codec("json", secret=secret, compress_threshold=threshold)
    assert same(codec.decode(KEY, codec.encode(KEY, value))[0], value)


def test_json_turns_tuples_into_lists() -> None:
    codec = Codec("json")
    assert codec.decode(KEY, codec.encode(KEY, (1, (2, 3))))[0] == [1, [2, 3]]


def test_json_without_orjson_has_the_same_wire_form(monkeypatch: pytest.MonkeyPatch) -> None:
    with_orjson = Codec("json")
    monkeypatch.setitem(sys.modules, "orjson", None)
    stdlib = Codec("json")
    for value in JSON_VALUES:
        assert same(stdlib.decode(KEY, with_orjson.encode(KEY, value))[0], value)
        assert same(with_orjson.decode(KEY, stdlib.encode(KEY, value))[0], value)


@pytest.mark.parametrize(
    "value", [float("nan"), float("inf"), [1, float("-inf")], {"a": float("nan")}]
)
@pytest.mark.parametrize("orjson", [True, False])
def test_json_refuses_non_finite_floats(
    value: Any, orjson: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    if not orjson:
        monkeypatch.setitem(sys.modules, "orjson", None)
    with pytest.raises(SerializationError, match=r"json: (NaN|Out of range)"):
        Codec("json").encode(KEY, value)


@pytest.mark.parametrize("secret", [None, SECRET])
@pytest.mark.parametrize("value", MSGPACK_VALUES, ids=repr)
def test_msgpack_round_trip(value: Any, secret: str | None) -> None:
    pytest.importorskip("msgpack")
    codec = Codec("msgpack", secret=secret, compress_threshold=0)
    assert same(codec.decode(KEY, codec.encode(KEY, value))[0], value)


@pytest.mark.parametrize("serializer", ["pickle", "json", "msgpack"])
def test_str_and_bytes_skip_the_serializer(serializer: str) -> None:
    pytest.importorskip("msgpack")
    codec = Codec(serializer)
    text = codec.encode(KEY, "héllo")
    assert text[3] == 4 and text[4:] == "héllo".encode()
    raw = codec.encode(KEY, b"\x00bin")
    assert raw[3] == 0 and raw[4:] == b"\x00bin"
    # Every configuration reads both, whatever its serializer.
    for other in ("pickle", "json", "msgpack"):
        assert Codec(other).decode(KEY, text)[0] == "héllo"
        assert Codec(other).decode(KEY, raw)[0] == b"\x00bin"


@pytest.mark.parametrize(
    ("serializer", "value"),
    [("json", object()), ("json", {1: 2}), ("json", ["\ud800"]), ("msgpack", 2**64),
     ("msgpack", object()), ("pickle", lambda: 1)],
)  # fmt: skip
def test_unserializable_values_name_their_type(serializer: str, value: Any) -> None:
    pytest.importorskip("msgpack")
    with pytest.raises(SerializationError) as info:
        Codec(serializer).encode(KEY, value)
    assert type(value).__name__ in str(info.value)
    assert info.value.__cause__ is not None


# -- raw integers -----------------------------------------------------------------------


@pytest.mark.parametrize("secret", [None, SECRET])
@pytest.mark.parametrize("value", [0, 1, -1, 42, 2**63 - 1, -(2**63)])
def test_int64_values_are_bare_ascii_digits(value: int, secret: str | None) -> None:
    codec = Codec(secret=secret, compress_threshold=0)
    raw = codec.encode(KEY, value)
    assert raw == str(value).encode("ascii")
    assert codec.decode(KEY, raw) == (value, None)


@pytest.mark.parametrize("value", [2**63, -(2**63) - 1, 10**30])
def test_ints_outside_int64_are_enveloped(value: int) -> None:
    codec = Codec()
    raw = codec.encode(KEY, value)
    assert raw[0] == MAGIC
    assert codec.decode(KEY, raw)[0] == value


@pytest.mark.parametrize("value", [True, False, 1.0])
def test_bools_and_floats_are_not_raw_ints(value: Any) -> None:
    codec = Codec()
    raw = codec.encode(KEY, value)
    assert raw[0] == MAGIC
    assert same(codec.decode(KEY, raw)[0], value)


class Color(enum.IntEnum):
    RED = 1


def test_int_subclass_is_enveloped() -> None:
    codec = Codec()
    raw = codec.encode(KEY, Color.RED)
    assert raw[0] == MAGIC
    assert codec.decode(KEY, raw)[0] is Color.RED


def test_int_with_meta_is_enveloped() -> None:
    codec = Codec()
    raw = codec.encode(KEY, 7, Meta(created=1.0))
    assert raw[0] == MAGIC
    assert codec.decode(KEY, raw) == (7, Meta(created=1.0))


def test_raw_ints_work_with_backend_incr(tmp_path: Path) -> None:
    with Cache(f"sqlite:///{tmp_path / 'c.db'}") as cache:
        cache.set("n", 41)
        assert cache.incr("n") == 42
        assert cache.get("n") == 42
        cache.set("big", 2**63)
        with pytest.raises(ValueError):
            cache.incr("big")
        assert cache.get("big") == 2**63


@pytest.mark.parametrize("raw", [b"12", b"-5", b"0", b"9223372036854775807"])
def test_bare_digits_decode_as_int(raw: bytes) -> None:
    assert Codec().decode(KEY, raw)[0] == int(raw)


# -- compression ----------------------------------------------------------------------------

COMPRESSIBLE = "abc" * 1000  # 3000 bytes, squeezes well


@pytest.mark.parametrize(("compression", "code"), [("zlib", COMP_ZLIB), ("zstd", COMP_ZSTD)])
def test_compresses_above_the_threshold(compression: str, code: int) -> None:
    if compression == "zstd":
        pytest.importorskip("zstandard")
    codec = Codec(compression=compression, compress_threshold=1024)
    raw = codec.encode(KEY, COMPRESSIBLE)
    assert compression_of(raw) == code
    assert len(raw) < len(COMPRESSIBLE) // 4
    assert codec.decode(KEY, raw)[0] == COMPRESSIBLE
    assert codec.decode(KEY, codec.encode(KEY, [COMPRESSIBLE]))[0] == [COMPRESSIBLE]


@pytest.mark.parametrize("compression", ["zlib", "zstd", "none"])
def test_no_compression_below_the_threshold(compression: str) -> None:
    codec = Codec(compression=compression, compress_threshold=1024)
    small = "abc" * 100
    raw = codec.encode(KEY, small)
    assert compression_of(raw) == 0
    assert raw[4:] == small.encode()


def test_threshold_is_inclusive_and_none_never_compresses() -> None:
    body = "a" * 1024
    assert compression_of(Codec(compression="zlib", compress_threshold=1024).encode(KEY, body))
    assert not compression_of(Codec(compression="zlib", compress_threshold=1025).encode(KEY, body))
    assert not compression_of(Codec(compression="none", compress_threshold=0).encode(KEY, body))


def test_incompressible_body_is_stored_as_is() -> None:
    import os

    noise = os.urandom(4096)
    raw = Codec(compression="zlib", compress_threshold=0).encode(KEY, noise)
    assert compression_of(raw) == 0
    assert raw[4:] == noise


def test_auto_prefers_zstd_when_installed() -> None:
    pytest.importorskip("zstandard")
    assert Codec(compression="auto").compression == "zstd"


def test_any_codec_reads_either_compression() -> None:
    pytest.importorskip("zstandard")
    zlib_raw = Codec(compression="zlib", compress_threshold=0).encode(KEY, COMPRESSIBLE)
    zstd_raw = Codec(compression="zstd", compress_threshold=0).encode(KEY, COMPRESSIBLE)
    for reader in (Codec(compression="none"), Codec(compression="zlib"), Codec(compression="zstd")):
        assert reader.decode(KEY, zlib_raw)[0] == COMPRESSIBLE
        assert reader.decode(KEY, zstd_raw)[0] == COMPRESSIBLE


def test_zstd_payload_without_zstandard_is_a_decode_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    pytest.importorskip("zstandard")
    raw = Codec(compression="zstd", compress_threshold=0).encode(KEY, COMPRESSIBLE)
    monkeypatch.setitem(sys.modules, "zstandard", None)
    reader = Codec(compression="auto")
    assert reader.compression == "zlib"
    with pytest.raises(DecodeError, match="zstandard"):
        reader.decode(KEY, raw)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [({"compression": "lz4"}, "lz4"), ({"compress_threshold": -1}, "compress_threshold"),
     ({"secret": "short"}, "16 bytes"), ({"serializer": "yaml"}, "yaml")],
)  # fmt: skip
def test_bad_codec_configuration(kwargs: dict[str, Any], match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        Codec(**kwargs)


# -- metadata ---------------------------------------------------------------------------------

METAS = [
    Meta(),
    Meta(created=1700000000.25),
    Meta(created=1.0, soft_expiry=2.5, compute_time=0.125),
    Meta(tags=(("user:1", 3),)),
    Meta(created=-1.0, tags=(("ü:x!@#%", 2**64 - 1), ("", 0), ("t" * 300, 7))),
]


@pytest.mark.parametrize("meta", METAS, ids=repr)
def test_meta_round_trip(meta: Meta) -> None:
    assert Meta.decode(meta.encode()) == meta


@pytest.mark.parametrize("secret", [None, SECRET])
@pytest.mark.parametrize("meta", METAS, ids=repr)
def test_meta_round_trip_in_the_envelope(meta: Meta, secret: str | None) -> None:
    codec = Codec(secret=secret, compress_threshold=0)
    value, back = codec.decode(KEY, codec.encode(KEY, {"v": COMPRESSIBLE}, meta))
    assert value == {"v": COMPRESSIBLE}
    assert back == (meta if meta != Meta() else None)


def test_unknown_meta_fields_are_skipped() -> None:
    meta = Meta(created=5.0, tags=(("t", 1),))
    unknown = struct.pack("!BH", 200, 3) + b"new" + struct.pack("!BH", 99, 0)
    blob = unknown + meta.encode() + struct.pack("!BH", 250, 8) + b"\x00" * 8
    assert Meta.decode(blob) == meta
    # ...also inside an envelope written by a later version.
    body = b"later"
    raw = bytes((MAGIC, 1, HAS_META, 0)) + struct.pack("!H", len(blob)) + blob + body
    assert Codec().decode(KEY, raw) == (b"later", meta)


@pytest.mark.parametrize(
    "blob",
    [struct.pack("!BH", 1, 8) + b"\x00" * 4, b"\x01", struct.pack("!BH", 4, 2) + b"\x00\x05",
     struct.pack("!BH", 4, 5) + b"\x00\x01\x00\x02\xff"],
)  # fmt: skip
def test_corrupt_meta_is_a_decode_error(blob: bytes) -> None:
    raw = bytes((MAGIC, 1, HAS_META, 0)) + struct.pack("!H", len(blob)) + blob + b"body"
    with pytest.raises(DecodeError):
        Codec().decode(KEY, raw)


# -- signing: nothing unsigned or tampered is ever unpickled -------------------------------------


def evil_pickle_body() -> bytes:
    return pickle.dumps(Evil())


def assert_never_unpickled(spy: list[bytes]) -> None:
    assert SIDE_EFFECTS == []
    assert spy == []


def test_evil_payload_really_has_a_side_effect() -> None:
    raw = Codec().encode(KEY, Evil())
    Codec().decode(KEY, raw)
    assert SIDE_EFFECTS == ["unpickled!"]


def test_signed_payload_round_trips_and_carries_a_mac() -> None:
    codec = Codec(secret=SECRET)
    raw = codec.encode(KEY, {"a": 1})
    assert flags_of(raw) & SIGNED
    assert len(raw) == len(Codec().encode(KEY, {"a": 1})) + MAC_SIZE
    assert codec.decode(KEY, raw)[0] == {"a": 1}


def test_bytes_secret_equals_text_secret() -> None:
    raw = Codec(secret=SECRET).encode(KEY, [1])
    assert Codec(secret=SECRET.encode()).decode(KEY, raw)[0] == [1]


def test_tampered_body_is_rejected(pickle_spy: list[bytes]) -> None:
    codec = Codec(secret=SECRET, compress_threshold=1 << 20)
    raw = codec.encode(KEY, {"amount": 10})
    evil = raw[: 4 + MAC_SIZE] + evil_pickle_body()
    flipped = raw[:-2] + bytes([raw[-2] ^ 1]) + raw[-1:]
    for bad in (evil, flipped, raw + b"\x00", raw[:-1]):
        with pytest.raises(DecodeError, match="signature"):
            codec.decode(KEY, bad)
    assert_never_unpickled(pickle_spy)


def test_tampered_header_is_rejected(pickle_spy: list[bytes]) -> None:
    codec = Codec(secret=SECRET, compress_threshold=0)
    raw = codec.encode(KEY, "x" * 2000)  # a compressed str: sid 4, zstd or zlib flag
    for position, value in ((2, raw[2] ^ (COMP_MASK & (3 << COMP_SHIFT))), (3, 1), (3, 2)):
        bad = raw[:position] + bytes([value]) + raw[position + 1 :]
        with pytest.raises(DecodeError, match="signature"):
            codec.decode(KEY, bad)
    # Metadata is under the mac too.
    with_meta = codec.encode(KEY, [1], Meta(soft_expiry=100.0))
    moved = with_meta.replace(struct.pack("!d", 100.0), struct.pack("!d", 1e12))
    assert moved != with_meta
    with pytest.raises(DecodeError, match="signature"):
        codec.decode(KEY, moved)
    assert_never_unpickled(pickle_spy)


def test_tampered_mac_is_rejected(pickle_spy: list[bytes]) -> None:
    codec = Codec(secret=SECRET)
    raw = codec.encode(KEY, [1, 2, 3])
    for i in (4, 4 + MAC_SIZE // 2, 4 + MAC_SIZE - 1):
        bad = raw[:i] + bytes([raw[i] ^ 0x80]) + raw[i + 1 :]
        with pytest.raises(DecodeError, match="signature"):
            codec.decode(KEY, bad)
    zeroed = raw[:4] + b"\x00" * MAC_SIZE + raw[4 + MAC_SIZE :]
    with pytest.raises(DecodeError, match="signature"):
        codec.decode(KEY, zeroed)
    assert_never_unpickled(pickle_spy)


def test_forged_signature_over_evil_body_is_rejected(
    pickle_spy: list[bytes], tmp_path: Path
) -> None:
    codec = Codec(secret=SECRET)
    target = tmp_path / "pwned"
    for body in (evil_pickle_body(), pickle.dumps(EvilFile(str(target)))):
        forged = bytes((MAGIC, 1, SIGNED, 1)) + b"\x00" * MAC_SIZE + body
        wrong_secret = Codec(secret="another-secret-16-bytes").encode(KEY, EvilFile(str(target)))
        for raw in (forged, wrong_secret):
            with pytest.raises(DecodeError, match="signature"):
                codec.decode(KEY, raw)
    assert not target.exists()
    assert_never_unpickled(pickle_spy)


def test_payload_replayed_under_another_key_is_rejected(pickle_spy: list[bytes]) -> None:
    codec = Codec(secret=SECRET)
    raw = codec.encode("ns:user:1:role", "user")
    with pytest.raises(DecodeError, match="signature"):
        codec.decode("ns:user:2:role", raw)
    # The key and header are separated: shifting a byte between them changes the mac.
    with pytest.raises(DecodeError, match="signature"):
        codec.decode("ns:user:1:rol", raw)
    assert codec.decode("ns:user:1:role", raw)[0] == "user"
    pickled = codec.encode("a", {"x": 1})
    pickle_spy.clear()
    with pytest.raises(DecodeError):
        codec.decode("b", pickled)
    assert_never_unpickled(pickle_spy)


def test_plain_values_and_hash_fields_never_share_a_signature() -> None:
    """A plain key ``a\\0b`` must not sign what hash ``a`` field ``b`` accepts."""
    codec = Codec(secret=SECRET)
    plain = codec.encode("a\0b", "planted")
    with pytest.raises(DecodeError, match="signature"):
        codec.decode("a", plain, field="b")
    field = codec.encode("a", "kept", field="b")
    with pytest.raises(DecodeError, match="signature"):
        codec.decode("a\0b", field)
    with pytest.raises(DecodeError, match="signature"):
        codec.decode("a", field, field="c")
    assert codec.decode("a", field, field="b")[0] == "kept"


def test_a_copied_plain_payload_planted_in_a_hash_heals(tmp_path: Path) -> None:
    cache = Cache(f"sqlite:///{tmp_path / 'h.db'}", secret=SECRET)
    try:
        cache.set("a\0b", "planted")
        backend_key = cache._keys.encode("a\0b")
        planted = cache._backend.get(backend_key)
        assert planted is not None
        cache.hset("a", "b", "real")
        cache._backend.hset(cache._keys.encode("a"), {"b": planted})
        assert cache.hget("a", "b", MISSING) is MISSING
        assert cache.stats()["healed"] == 1
    finally:
        cache.close()


def test_unsigned_payload_with_a_secret_is_rejected(pickle_spy: list[bytes]) -> None:
    unsigned = Codec().encode(KEY, Evil())
    unsigned_meta = Codec().encode(KEY, Evil(), Meta(created=1.0))
    unsigned_zlib = Codec(compression="zlib", compress_threshold=0).encode(KEY, [Evil()] * 300)
    signed_reader = Codec(secret=SECRET)
    for raw in (unsigned, unsigned_meta, unsigned_zlib):
        with pytest.raises(DecodeError, match="unsigned"):
            signed_reader.decode(KEY, raw)
    assert_never_unpickled(pickle_spy)


def test_signed_bit_cleared_is_rejected(pickle_spy: list[bytes]) -> None:
    codec = Codec(secret=SECRET)
    raw = codec.encode(KEY, [1])
    cleared = raw[:2] + bytes([raw[2] & ~SIGNED]) + raw[3:]
    with pytest.raises(DecodeError):
        codec.decode(KEY, cleared)
    assert_never_unpickled(pickle_spy)


@pytest.mark.parametrize("reader", ["json", "msgpack"])
@pytest.mark.parametrize("secret", [None, SECRET])
def test_pickle_payload_is_not_read_by_another_serializer(
    reader: str, secret: str | None, pickle_spy: list[bytes]
) -> None:
    pytest.importorskip("msgpack")
    raw = Codec("pickle", secret=secret).encode(KEY, Evil())
    with pytest.raises(DecodeError, match="serializer id 1"):
        Codec(reader, secret=secret).decode(KEY, raw)
    assert_never_unpickled(pickle_spy)


def test_custom_serializer_codec_does_not_read_pickle(pickle_spy: list[bytes]) -> None:
    class Text:
        id = 20
        name = "text"

        def dumps(self, value: Any) -> bytes:
            return str(value).encode()

        def loads(self, data: bytes) -> Any:
            return data.decode()

    codec = Codec(Text())
    assert codec.decode(KEY, codec.encode(KEY, 12.5))[0] == "12.5"
    with pytest.raises(DecodeError):
        codec.decode(KEY, Codec().encode(KEY, Evil()))
    assert_never_unpickled(pickle_spy)


def test_signed_cache_heals_an_unsigned_evil_entry(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'c.db'}"
    with Cache(url) as plain:
        plain.set("k", Evil())  # what an attacker who can write the file could plant
    SIDE_EFFECTS.clear()
    with Cache(url, secret=SECRET) as cache:
        assert cache.get("k", "miss") == "miss"
        assert cache.stats()["healed"] == 1
        assert not cache.exists("k")
    assert SIDE_EFFECTS == []


def test_json_cache_heals_a_pickle_entry(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'c.db'}"
    with Cache(url) as writer:
        writer.set("k", Evil())
    SIDE_EFFECTS.clear()
    with Cache(url, serializer="json") as cache:
        assert cache.get("k", "miss") == "miss"
        assert cache.stats()["healed"] == 1
    assert SIDE_EFFECTS == []


# -- truncated and garbage payloads -------------------------------------------------------------


@pytest.mark.parametrize(
    "raw",
    [b"", b"\xc5", b"\xc5\x01", b"\xc5\x01\x00", b"\xc5\x02\x00\x01", b"\xc5\x00\x00\x01",
     b"hello", b"12abc", b"-", b"--1", b"1" * 21, b" 1", b"\xc5\x01\x00\x09payload",
     b"\xc5\x01\x00\x01", b"\xc5\x01\x00\x01\x80\x05", b"\xc5\x01\x00\x02{not json",
     b"\xc5\x01\x00\x04\xff\xfe", bytes((MAGIC, 1, COMP_ZLIB << COMP_SHIFT, 0)) + b"notzlib",
     bytes((MAGIC, 1, COMP_ZSTD << COMP_SHIFT, 0)) + b"notzstd",
     bytes((MAGIC, 1, 3 << COMP_SHIFT, 0)) + b"unknown compression",
     bytes((MAGIC, 1, HAS_META, 0)), bytes((MAGIC, 1, HAS_META, 0)) + b"\x00",
     bytes((MAGIC, 1, HAS_META, 0)) + b"\x00\x05\x01"],
)  # fmt: skip
def test_garbage_is_a_decode_error(raw: bytes) -> None:
    for codec in (Codec(), Codec("json"), Codec(secret=SECRET)):
        with pytest.raises(DecodeError):
            codec.decode(KEY, raw)


@pytest.mark.parametrize("secret", [None, SECRET])
@pytest.mark.parametrize("serializer", ["pickle", "json", "msgpack"])
def test_every_truncation_is_a_decode_error(serializer: str, secret: str | None) -> None:
    pytest.importorskip("msgpack")
    codec = Codec(serializer, secret=secret, compress_threshold=0)
    value = {"k": ["x" * 2000, 1, 2.5, None]}
    raw = codec.encode(KEY, value, Meta(created=1.0, tags=(("t", 1),)))
    for cut in range(len(raw)):
        try:
            back, _ = codec.decode(KEY, raw[:cut])
        except DecodeError:
            continue
        # A prefix that still decodes must not pass for the original.
        assert back != value, cut


def test_zlib_bomb_free_path_is_plain_decompress() -> None:
    # Sanity: the zlib flag really means zlib.
    body = zlib.compress(b"plain", 1)
    raw = bytes((MAGIC, 1, COMP_ZLIB << COMP_SHIFT, 0)) + body
    assert Codec().decode(KEY, raw)[0] == b"plain"


# -- properties ----------------------------------------------------------------------

json_scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(st.characters(blacklist_categories=("Cs",)))
)
json_values = st.recursive(
    json_scalars,
    lambda inner: (
        st.lists(inner, max_size=5)
        | st.dictionaries(
            st.text(st.characters(blacklist_categories=("Cs",)), max_size=8), inner, max_size=5
        )
    ),
    max_leaves=20,
)
pickle_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False)
    | st.text()
    | st.binary()
    | st.decimals(allow_nan=False)
    | st.datetimes(),
    lambda inner: (
        st.lists(inner, max_size=5)
        | st.tuples(inner, inner)
        | st.frozensets(st.integers() | st.text(), max_size=4)
        | st.dictionaries(st.integers() | st.text() | st.binary(), inner, max_size=5)
    ),
    max_leaves=20,
)
codec_options = st.fixed_dictionaries(
    {
        "secret": st.none() | st.just(SECRET) | st.binary(min_size=16, max_size=64),
        "compress_threshold": st.sampled_from([0, 64, 1024]),
        "compression": st.sampled_from(["zlib", "zstd", "none"]),
    }
)
metas = st.none() | st.builds(
    Meta,
    created=st.none() | st.floats(allow_nan=False),
    soft_expiry=st.none() | st.floats(allow_nan=False),
    compute_time=st.none() | st.floats(allow_nan=False),
    tags=st.lists(
        st.tuples(st.text(st.characters(blacklist_categories=("Cs",))), st.integers(0, 2**64 - 1)),
        max_size=3,
    ).map(tuple),
)
prop_settings = settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)


@prop_settings
@given(value=json_values, options=codec_options, meta=metas, key=st.text())
def test_property_json_round_trip(
    value: Any, options: dict[str, Any], meta: Meta | None, key: str
) -> None:
    codec = Codec("json", **options)
    raw = codec.encode(key, value, meta)
    back, back_meta = codec.decode(key, raw)
    assert back == value
    assert back_meta == (None if meta == Meta() else meta)


@prop_settings
@given(value=pickle_values, options=codec_options, meta=metas, key=st.text())
def test_property_pickle_round_trip(
    value: Any, options: dict[str, Any], meta: Meta | None, key: str
) -> None:
    codec = Codec("pickle", **options)
    back, back_meta = codec.decode(key, codec.encode(key, value, meta))
    assert back == value
    assert type(back) is type(value)
    if meta is not None and meta != Meta():
        assert back_meta == meta


@prop_settings
@given(value=json_values.filter(lambda v: not isinstance(v, int) or -(2**63) <= v < 2**64))
def test_property_msgpack_round_trip(value: Any) -> None:
    pytest.importorskip("msgpack")
    codec = Codec("msgpack", secret=SECRET, compress_threshold=0)
    try:
        raw = codec.encode(KEY, value)
    except SerializationError:
        return  # ints beyond 64 bits nested inside containers
    assert codec.decode(KEY, raw)[0] == value


@prop_settings
@given(raw=st.binary(max_size=200), key=st.text(max_size=20))
def test_property_garbage_never_escapes_as_another_error(raw: bytes, key: str) -> None:
    for codec in (Codec("json"), Codec(secret=SECRET)):
        try:
            codec.decode(key, raw)
        except DecodeError:
            pass


@prop_settings
@given(value=pickle_values, position=st.integers(0, 10_000), bit=st.integers(0, 7))
def test_property_any_bit_flip_in_a_signed_payload_is_caught(
    value: Any, position: int, bit: int
) -> None:
    codec = Codec(secret=SECRET, compress_threshold=0)
    raw = codec.encode(KEY, value)
    if raw[0] != MAGIC:
        return  # a bare int: unsigned by design, so INCR can work on it
    i = position % len(raw)
    flipped = raw[:i] + bytes([raw[i] ^ (1 << bit)]) + raw[i + 1 :]
    with pytest.raises(DecodeError):
        codec.decode(KEY, flipped)


@pytest.mark.parametrize("compression", ["zlib", "zstd"])
def test_decompression_is_bounded(compression: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """A small planted payload cannot inflate past the limit (a decompression bomb)."""
    from hotcache._core import envelope

    codec = Codec(compression=compression, compress_threshold=0)
    raw = codec.encode(KEY, b"\0" * 5000)
    assert len(raw) < 200
    assert codec.decode(KEY, raw)[0] == b"\0" * 5000
    monkeypatch.setattr(envelope, "MAX_DECOMPRESSED", 4999)
    with pytest.raises(DecodeError, match="size limit"):
        codec.decode(KEY, raw)
