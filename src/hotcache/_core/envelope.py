"""The self-describing value envelope: what every stored payload looks like.

```
0      0xC5 magic (never an ASCII digit or '-', so raw integers stay apart)
1      format version (1)
2      flags: bit 0 signed, bit 1 has metadata, bits 2-3 compression
       (0 none, 1 zlib, 2 zstd)
3      serializer id (0 bytes, 1 pickle, 2 json, 3 msgpack, 4 UTF-8 text,
       16..255 custom)
[meta] u16 length, then TLV fields: u8 type, u16 length, value; readers skip
       types they do not know, so later versions can add fields
[mac]  32 bytes HMAC-SHA256(secret, backend key + NUL + header, meta, body)
body
```

Plain ``int`` values inside the signed 64-bit range are stored as their ASCII
digits without an envelope, so the backend's atomic INCR works on them.
A payload that fails any check raises ``DecodeError``; the facade heals by
deleting it and reading a miss.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import struct
import zlib
from collections.abc import Callable, Sequence
from hashlib import sha256
from typing import Any, NamedTuple, TypeVar

from .._errors import ConfigError, SerializationError
from .serializers import Serializer, get_serializer
from .tags import parse_version

__all__ = [
    "SLOW",
    "Codec",
    "DecodeError",
    "Kept",
    "Meta",
    "add_to_counter",
    "is_int_payload",
    "payload_digest",
]

MAGIC = 0xC5
_MAGIC_BYTE = bytes((MAGIC,))
FORMAT = 1
SIGNED = 0x01
HAS_META = 0x02
COMP_SHIFT = 2
COMP_MASK = 0x0C
COMP_NONE, COMP_ZLIB, COMP_ZSTD = 0, 1, 2
SID_BYTES, SID_TEXT = 0, 4
MAC_SIZE = 32
MAX_DECOMPRESSED = 512 << 20
INT64_MIN, INT64_MAX = -(1 << 63), (1 << 63) - 1

_T_CREATED, _T_SOFT_EXPIRY, _T_COMPUTE_TIME, _T_TAGS = 1, 2, 3, 4
_FLOAT_FIELDS = frozenset({_T_CREATED, _T_SOFT_EXPIRY, _T_COMPUTE_TIME})
SLOW: Any = object()  # decode_tagged's "take the general path"
_F64 = struct.Struct("!d")
_U16 = struct.Struct("!H")
_U32 = struct.Struct("!I")
_U64 = struct.Struct("!Q")
_TLV = struct.Struct("!BH")

K = TypeVar("K")
Tags = tuple[tuple[str, int], ...]


class DecodeError(Exception):
    """A payload is corrupt, tampered, unsigned or not readable here."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class Meta(NamedTuple):
    """Entry metadata that policy needs: timestamps, compute time, tag versions."""

    created: float | None = None
    soft_expiry: float | None = None
    compute_time: float | None = None
    tags: tuple[tuple[str, int], ...] = ()

    def encode(self) -> bytes:
        out = bytearray()
        for kind, number in (
            (_T_CREATED, self.created),
            (_T_SOFT_EXPIRY, self.soft_expiry),
            (_T_COMPUTE_TIME, self.compute_time),
        ):
            if number is not None:
                out += _TLV.pack(kind, 8) + _F64.pack(number)
        if self.tags:
            blob = bytearray(_U16.pack(len(self.tags)))
            for tag, version in self.tags:
                raw = tag.encode("utf-8")
                blob += _U16.pack(len(raw)) + raw + _U64.pack(version)
            out += _TLV.pack(_T_TAGS, len(blob)) + blob
        return bytes(out)

    @classmethod
    def decode(cls, data: bytes) -> Meta:
        created = soft_expiry = compute_time = None
        tags: tuple[tuple[str, int], ...] = ()
        pos, end = 0, len(data)
        while pos < end:
            kind, size = _TLV.unpack_from(data, pos)
            pos += 3
            if pos + size > end:
                raise DecodeError("truncated metadata")
            if kind == _T_TAGS:
                tags = _decode_tags(data[pos : pos + size])
            elif kind in _FLOAT_FIELDS and size != 8:
                raise DecodeError("corrupt metadata")
            elif kind == _T_CREATED:
                created = _F64.unpack_from(data, pos)[0]
            elif kind == _T_SOFT_EXPIRY:
                soft_expiry = _F64.unpack_from(data, pos)[0]
            elif kind == _T_COMPUTE_TIME:
                compute_time = _F64.unpack_from(data, pos)[0]
            pos += size
        return cls(created, soft_expiry, compute_time, tags)


def payload_digest(raw: bytes | None) -> str:
    """Return what identifies a stored payload (``""``: absent), as Redis's Lua
    ``redis.sha1hex`` computes it, for a write that must find it unchanged."""
    return "" if raw is None else hashlib.sha1(raw, usedforsecurity=False).hexdigest()


class Kept:
    """A value the local tier holds decoded (``serialize_local=False``).

    It stands where a payload would (in the local tier, a request scope) and
    ``Codec.decode`` hands out ``value`` itself: no copy, so callers must not
    mutate it. ``len()`` is the size it counts for in the tier's byte bound.
    """

    __slots__ = ("meta", "size", "value")

    def __init__(self, value: Any, meta: Meta | None, size: int) -> None:
        self.value = value
        self.meta = meta
        self.size = size

    def __len__(self) -> int:
        return self.size


def _decode_tags(blob: bytes) -> tuple[tuple[str, int], ...]:
    (count,) = _U16.unpack_from(blob, 0)
    pos, tags = _U16.size, []
    for _ in range(count):
        (size,) = _U16.unpack_from(blob, pos)
        pos += _U16.size
        tag = blob[pos : pos + size].decode("utf-8")
        pos += size
        (version,) = _U64.unpack_from(blob, pos)
        pos += _U64.size
        tags.append((tag, version))
    return tuple(tags)


def _zstd() -> Any:
    try:
        import zstandard
    except ImportError:
        return None
    return zstandard


def is_int_payload(raw: bytes) -> bool:
    """Return True if ``raw`` is a bare integer (what INCR reads and writes)."""
    digits = raw[1:] if raw[:1] == b"-" else raw
    return 0 < len(digits) <= 20 and digits.isdigit()


def add_to_counter(raw: bytes | None, delta: int) -> tuple[int, bytes]:
    """Return a counter's new value and payload after adding ``delta`` (absent is 0).

    The one rule every local backend's ``incr`` follows, as Redis's INCRBY does.

    Raises:
        ValueError: ``raw`` is not a bare integer, or the sum leaves 64 bits.
    """
    if raw is None:
        value = delta
    elif is_int_payload(raw):
        value = int(raw) + delta
    else:
        raise ValueError("the stored value is not an integer")
    if not INT64_MIN <= value <= INT64_MAX:
        raise ValueError("increment would overflow a 64-bit integer")
    return value, b"%d" % value


class Codec:
    """Encode values into envelopes and decode them back, per one configuration."""

    def __init__(
        self,
        serializer: str | Serializer = "pickle",
        *,
        compression: str = "auto",
        compress_threshold: int = 1024,
        secret: str | bytes | None = None,
    ) -> None:
        self.serializer = get_serializer(serializer)
        self._zstd = _zstd()
        if compression == "auto":
            compression = "zstd" if self._zstd is not None else "zlib"
        if compression == "zstd" and self._zstd is None:
            raise ConfigError(
                "compression 'zstd' needs the zstandard package: pip install 'hotcache[zstd]'"
            )
        if compression not in {"zlib", "zstd", "none"}:
            raise ConfigError(f"unknown compression {compression!r}; use auto, zlib, zstd or none")
        if compress_threshold < 0:
            raise ConfigError("compress_threshold must be >= 0")
        self.compression = compression
        self._threshold = compress_threshold
        self._secret = secret.encode("utf-8") if isinstance(secret, str) else secret
        if self._secret is not None and len(self._secret) < 16:
            raise ConfigError("secret must be at least 16 bytes long")
        loaders: dict[int, Callable[[bytes], Any]] = {
            SID_BYTES: bytes,
            SID_TEXT: lambda b: b.decode("utf-8", "surrogatepass"),
            2: json.loads,
        }
        # Only the configured serializer may unpickle: choosing json must keep
        # pickle payloads written by anyone else from running code here.
        loaders[self.serializer.id] = self.serializer.loads
        self._loaders = loaders
        # Unsigned payloads without metadata or compression (most of them) start
        # with one of these four-byte heads: one dict lookup finds their loader.
        self._plain: dict[bytes, Callable[[bytes], Any]] = (
            {}
            if self._secret is not None
            else {bytes((MAGIC, FORMAT, 0, sid)): load for sid, load in loaders.items()}
        )
        self._dumps = self.serializer.dumps
        self._tagged_prefixes: dict[tuple[Any, ...], bytes] = {}
        self._zstd_c = self._zstd.ZstdCompressor(level=3) if self._zstd else None
        self._zstd_d = self._zstd.ZstdDecompressor() if self._zstd else None

    def encode(
        self, key: str, value: Any, meta: Meta | None = None, *, field: str | None = None
    ) -> bytes:
        """Return the stored form of ``value`` under backend key ``key`` (hash ``field``)."""
        kind = type(value)
        body: bytes
        if kind is int and meta is None and INT64_MIN <= value <= INT64_MAX:
            return b"%d" % value
        if kind is bytes:
            sid, body = SID_BYTES, value
        elif kind is str:
            sid, body = SID_TEXT, value.encode("utf-8", "surrogatepass")
        else:
            sid = self.serializer.id
            try:
                body = self._dumps(value)
            except Exception as exc:
                raise SerializationError(
                    f"cannot serialize a value of type {kind.__name__} "
                    f"with {self.serializer.name}: {exc}"
                ) from exc
        flags = 0
        if len(body) >= self._threshold and self.compression != "none":
            packed, code = self._compress(body)
            if len(packed) < len(body):
                body, flags = packed, code << COMP_SHIFT
        meta_blob = b""
        if meta is not None:
            encoded = meta.encode()
            if encoded:
                flags |= HAS_META
                meta_blob = _U16.pack(len(encoded)) + encoded
        if self._secret is None:
            return bytes((MAGIC, FORMAT, flags, sid)) + meta_blob + body
        head = bytes((MAGIC, FORMAT, flags | SIGNED, sid)) + meta_blob
        mac = self._mac(key, field, head, body)
        return head + mac + body

    def _compress(self, body: bytes) -> tuple[bytes, int]:
        if self.compression == "zstd" and self._zstd_c is not None:
            return bytes(self._zstd_c.compress(body)), COMP_ZSTD
        return zlib.compress(body, 1), COMP_ZLIB

    def _mac(self, key: str, field: str | None, head: bytes, body: bytes) -> bytes:
        """Sign a payload bound to where it lives: a key, or a key's hash field.

        The key is length-prefixed and a tag byte tells a plain value (0) from a
        hash field (1), so no plain key can be made to share a hash field's context.
        """
        assert self._secret is not None
        raw = key.encode("utf-8", "surrogatepass")
        where = _U32.pack(len(raw)) + raw
        where += b"\0" if field is None else b"\1" + field.encode("utf-8", "surrogatepass")
        mac = hmac.new(self._secret, where, sha256)
        mac.update(head)
        mac.update(body)
        return mac.digest()

    def decode_tagged(
        self, raw: bytes | Kept, tags: tuple[str, ...], versions: tuple[object, ...]
    ) -> Any:
        """Return the value of ``raw`` if its metadata is exactly ``tags`` at ``versions``.

        ``versions`` are the tag keys' payloads, as read. The common case of a
        decorated function's hit: one prefix comparison instead of parsing the
        metadata. Returns ``SLOW`` for anything else (signed, compressed, other
        metadata, other versions): ``decode`` then decides. With a secret set
        there is no fast path: every payload's signature is checked.
        """
        if self._secret is not None:
            return SLOW
        prefix: bytes | None
        try:
            sid = raw[3]  # type: ignore[index]
            prefix = self._tagged_prefixes[tags, versions, sid]
        except KeyError:
            prefix = self._tagged_prefix(tags, versions, sid)
        except (IndexError, TypeError):  # short, or ``Kept``: decode() decides
            return SLOW
        if prefix is None or not raw.startswith(prefix):  # type: ignore[union-attr]
            return SLOW
        try:
            return self._loaders[sid](raw[len(prefix) :])  # type: ignore[index]
        except Exception:
            return SLOW

    def _tagged_prefix(
        self, tags: tuple[str, ...], versions: tuple[object, ...], sid: int
    ) -> bytes | None:
        """Return the head and metadata an unsigned, uncompressed payload of ``tags``
        at ``versions`` starts with (``None``: no such payload can be read here)."""
        numbers = [parse_version(v) for v in versions]
        if None in numbers or sid not in self._loaders:
            return None
        encoded = Meta(tags=tuple(zip(tags, numbers, strict=True))).encode()  # type: ignore[arg-type]
        prefix = bytes((MAGIC, FORMAT, HAS_META, sid)) + _U16.pack(len(encoded)) + encoded
        if len(self._tagged_prefixes) >= 4096:
            self._tagged_prefixes.clear()
        self._tagged_prefixes[tags, versions, sid] = prefix
        return prefix

    def decode(
        self, key: str, raw: bytes | Kept, *, field: str | None = None
    ) -> tuple[Any, Meta | None]:
        """Return ``(value, meta)`` from a stored payload, or raise ``DecodeError``."""
        data: bytes = raw  # type: ignore[assignment]  # a Kept fails the slice below
        try:
            load = self._plain.get(data[:4])
        except TypeError:
            if type(raw) is Kept:  # checked here: free for the payloads
                return raw.value, raw.meta
            load = None  # an unhashable bytes-like (bytearray) takes the general path
        if load is not None:
            try:
                return load(data[4:]), None
            except Exception:
                raise DecodeError("payload does not deserialize") from None
        if not data or data[0] != MAGIC:
            if is_int_payload(data):
                return int(data), None
            raise DecodeError("not a hotcache payload")
        if len(data) < 4 or data[1] != FORMAT:
            raise DecodeError("unknown envelope format")
        return self._decode_slow(key, field, data, data[2], data[3])

    def keep(self, key: str, raw: bytes) -> bytes | Kept:
        """Return what a local tier of decoded objects holds for a payload read
        under ``key``: a ``Kept``, or ``raw`` itself when it is no envelope (a
        counter, a tag version) or does not decode (the reader heals it)."""
        if raw[:1] != _MAGIC_BYTE:
            return raw
        try:
            value, meta = self.decode(key, raw)
        except DecodeError:
            return raw
        return Kept(value, meta, len(raw))

    def decode_many(
        self, keys: Sequence[str], raws: Sequence[bytes | Kept | None], names: Sequence[K]
    ) -> tuple[dict[K, Any], int, list[tuple[str, DecodeError]], list[tuple[K, str, Tags]]]:
        """Decode payloads read together (``None`` for absent ones) for ``get_many``.

        Returns ``{name: value}`` for the payloads that decode, how many did
        (duplicates count each time), ``[(key, error)]`` for those to heal, and
        ``[(name, key, tags)]`` for entries that carry tag versions to check.
        One loop instead of a ``decode`` call per payload: those calls were most
        of a ``get_many``'s own cost.

        Raises:
            ValueError: ``keys``, ``raws`` and ``names`` differ in length.
        """
        plain = self._plain
        found: dict[K, Any] = {}
        hits = 0
        broken: list[tuple[str, DecodeError]] = []
        tagged: list[tuple[K, str, Tags]] = []
        for key, name, raw in zip(keys, names, raws, strict=True):
            if raw is None:
                continue
            try:
                load = plain.get(raw[:4])  # type: ignore[index]
            except TypeError:
                load = None
            if load is None:
                try:
                    found[name], meta = self.decode(key, raw)
                except DecodeError as exc:
                    broken.append((key, exc))
                    continue
                if meta is not None and meta.tags:
                    tagged.append((name, key, meta.tags))
            else:
                try:
                    found[name] = load(raw[4:])  # type: ignore[index]
                except Exception:
                    broken.append((key, DecodeError("payload does not deserialize")))
                    continue
            hits += 1
        return found, hits, broken, tagged

    def _decode_slow(
        self, key: str, field: str | None, raw: bytes, flags: int, sid: int
    ) -> tuple[Any, Meta | None]:
        pos = 4
        meta_blob = b""
        if flags & HAS_META:
            if len(raw) < pos + 2:
                raise DecodeError("truncated metadata")
            (size,) = _U16.unpack_from(raw, pos)
            meta_blob = raw[pos + 2 : pos + 2 + size]
            pos += 2 + size
        if self._secret is not None:
            if not flags & SIGNED:
                raise DecodeError("unsigned payload")
            mac, body = raw[pos : pos + MAC_SIZE], raw[pos + MAC_SIZE :]
            # Verified before anything else of the payload is parsed.
            if not hmac.compare_digest(mac, self._mac(key, field, raw[:pos], body)):
                raise DecodeError("bad signature")
        else:
            body = raw[pos + MAC_SIZE :] if flags & SIGNED else raw[pos:]
        meta = None
        if flags & HAS_META:
            try:
                meta = Meta.decode(meta_blob)
            except (struct.error, UnicodeDecodeError):
                raise DecodeError("corrupt metadata") from None
        compression = (flags & COMP_MASK) >> COMP_SHIFT
        # Bounded: a small payload planted in a shared backend must not be able to
        # expand into gigabytes here (no real value exceeds Redis's 512 MB string).
        if compression == COMP_ZLIB:
            try:
                inflater = zlib.decompressobj()
                body = inflater.decompress(body, MAX_DECOMPRESSED + 1)
            except zlib.error:
                raise DecodeError("corrupt zlib body") from None
            if len(body) > MAX_DECOMPRESSED or inflater.unconsumed_tail:
                raise DecodeError("body decompresses past the size limit")
        elif compression == COMP_ZSTD:
            if self._zstd_d is None:
                raise DecodeError("zstd payload but zstandard is not installed")
            try:
                with self._zstd_d.stream_reader(body) as reader:
                    body = bytes(reader.read(MAX_DECOMPRESSED + 1))
            except self._zstd.ZstdError:
                raise DecodeError("corrupt zstd body") from None
            if len(body) > MAX_DECOMPRESSED:
                raise DecodeError("body decompresses past the size limit")
        elif compression != COMP_NONE:
            raise DecodeError("unknown compression")
        return self._load(sid, body), meta

    def _load(self, sid: int, body: bytes) -> Any:
        loader = self._loaders.get(sid)
        if loader is None:
            raise DecodeError(f"serializer id {sid} is not readable with this configuration")
        try:
            return loader(body)
        except Exception:
            raise DecodeError("payload does not deserialize") from None
