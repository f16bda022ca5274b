"""Turn (namespace, tenant, version, key) into one backend key, unambiguously.

A backend key is ``<header>:<key text>`` where the header is the escaped
namespace, then ``!tenant`` and ``@version`` when given, then ``#`` when the key
was hashed. A tag's version lives under ``<header>#t:<tag>`` (``#T:`` and a
digest when the tag is long), apart from every entry key. Header parts escape
``% : ! @ #`` as ``%XX``, so the header ends at the first raw ``:`` and two
different tuples can never produce one backend key.
The key text is the last part and needs no escaping.

Key texts: a ``str`` is itself, an ``int`` its decimal digits, ``bytes`` its
UTF-8 text (so ``1``, ``"1"`` and ``b"1"`` name one entry, as in Django).
Backend keys longer than ``MAX_KEY_BYTES`` keep a readable prefix of the key
text and end with a SHA-256 of the whole text; the ``#`` marker keeps them
apart from any literal key.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

__all__ = [
    "MAX_KEY_BYTES",
    "KeyEncoder",
    "KeyLike",
    "glob_escape",
    "header",
    "key_text",
    "lease_key",
    "lock_key",
    "namespace_pattern",
    "tag_key",
    "tenant_pattern",
]

KeyLike = str | bytes | int

MAX_KEY_BYTES = 200
_READABLE_PREFIX_CHARS = 80
_HEADER_ESCAPES = {c: f"%{ord(c):02X}" for c in "%:!@#"}
# "]" is literal outside a bracket everywhere, and Redis reads "[]]" as an empty class.
_GLOB_SPECIAL = frozenset("*?[\\")


def _escape(part: str) -> str:
    if not any(c in part for c in _HEADER_ESCAPES):
        return part
    return "".join(_HEADER_ESCAPES.get(c, c) for c in part)


def header(namespace: str, *, tenant: str | None = None, version: str | None = None) -> str:
    """Return the escaped header for one namespace/tenant/version."""
    if not isinstance(namespace, str) or not namespace:
        raise ValueError("namespace must be a non-empty str")
    out = _escape(namespace)
    if tenant is not None:
        out += "!" + _escape(str(tenant))
    if version is not None:
        out += "@" + _escape(str(version))
    return out


def key_text(key: object) -> str:
    """Return the text form of a user key, or raise ``TypeError``/``ValueError``."""
    if type(key) is str:
        return key if key.isascii() else _unicode(key)
    if isinstance(key, bool):
        raise TypeError("cache keys must be str, bytes or int, not bool")
    if isinstance(key, int):
        return str(int(key))
    if isinstance(key, (bytes, bytearray, memoryview)):
        try:
            return bytes(key).decode("utf-8")
        except UnicodeDecodeError:
            raise ValueError("bytes cache keys must be valid UTF-8") from None
    if isinstance(key, str):
        return _unicode(str.__str__(key))
    raise TypeError(f"cache keys must be str, bytes or int, not {type(key).__name__}")


def _unicode(text: str) -> str:
    # A lone surrogate has no UTF-8 form: Redis and SQLite could not store the key.
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError("str cache keys must not contain lone surrogates") from None
    return text


def glob_escape(text: str) -> str:
    """Escape glob metacharacters portably (``[*]`` form, understood by every backend)."""
    if not any(c in _GLOB_SPECIAL for c in text):
        return text
    return "".join(f"[{c}]" if c in _GLOB_SPECIAL else c for c in text)


class KeyEncoder:
    """Encode user keys under one fixed header; hot path of every call."""

    __slots__ = ("_cache", "_hashed_head", "_head", "header")

    def __init__(self, head: str) -> None:
        self.header = head
        self._head = head + ":"
        self._hashed_head = head + "#:"
        # Most services use a small set of hot keys: memoise their encoding.
        self._cache: dict[object, str] = {}

    def encode(self, key: KeyLike) -> str:
        """Return the backend key for ``key``."""
        try:
            return self._cache[key]
        except (KeyError, TypeError):
            pass
        out = self._encode(key)
        if type(key) is str and len(key) <= 128 and len(self._cache) < 4096:
            self._cache[key] = out
        return out

    def encode_many(self, keys: Sequence[KeyLike]) -> list[str]:
        """Return the backend keys for ``keys``, in order (one call for a batch)."""
        memo, encode = self._cache, self.encode
        try:
            return [memo[key] if key in memo else encode(key) for key in keys]
        except TypeError:
            # An unhashable key: encode one by one so its own error is the one raised.
            return [encode(key) for key in keys]

    def _encode(self, key: object) -> str:
        text = key_text(key)
        full = self._head + text
        if len(full) * 4 <= MAX_KEY_BYTES or len(full.encode("utf-8")) <= MAX_KEY_BYTES:
            return full
        digest = hashlib.sha256(text.encode("utf-8")).hexdigest()[:40]
        prefix = text[:_READABLE_PREFIX_CHARS]
        if not prefix.isascii():
            # Bound the prefix in bytes, not characters: 80 emoji are 320 bytes.
            raw = prefix.encode("utf-8")[:_READABLE_PREFIX_CHARS]
            prefix = raw.decode("utf-8", "ignore")
        return f"{self._hashed_head}{prefix}~{digest}"


_tag_keys: dict[tuple[str, str], str] = {}


def lease_key(key: str) -> str:
    """Return the backend key of the lease on the entry under ``key``: ``#l``
    before the header's end, apart from every entry, tag and lock key."""
    at = key.index(":")
    return f"{key[:at]}#l{key[at:]}"


def lock_key(header: str, name: str) -> str:
    """Return the backend key of the lock ``name`` under ``header``.

    It starts with ``#lock:``, which no escaped namespace can (``#`` is escaped
    there): apart from every entry, tag and lease key, and outside every
    namespace's ``clear()`` pattern, which must never take a lock from its owner.
    A long name is replaced by its digest (``#LOCK:``).
    """
    if not isinstance(name, str) or not name:
        raise ValueError("a lock name must be a non-empty str")
    raw = name.encode("utf-8", "surrogatepass")
    if len(raw) + len(header) + 7 <= MAX_KEY_BYTES:
        return f"#lock:{header}:{name}"
    return f"#LOCK:{header}:{hashlib.sha256(raw).hexdigest()[:40]}"


def tag_key(key: str, tag: str) -> str:
    """Return the backend key holding ``tag``'s version for the entry under ``key``.

    Tags belong to the entry's namespace and tenant, whatever its version: the
    header of ``key`` without ``@version`` and the hash marker.
    """
    try:
        return _tag_keys[key, tag]
    except KeyError:
        pass
    home = key[: key.index(":")].rstrip("#")
    at = home.find("@")
    if at >= 0:
        home = home[:at]
    raw = tag.encode("utf-8")
    if len(raw) + len(home) + 3 <= MAX_KEY_BYTES:
        out = f"{home}#t:{tag}"
    else:
        out = f"{home}#T:{hashlib.sha256(raw).hexdigest()[:40]}"
    if len(_tag_keys) >= 8192:
        _tag_keys.clear()
    _tag_keys[key, tag] = out
    return out


def namespace_pattern(namespace: str) -> str:
    """Return a glob matching every key of a namespace, whatever tenant or version."""
    return glob_escape(_escape(namespace)) + "[:!@#]*"


def tenant_pattern(namespace: str, tenant: str) -> str:
    """Return a glob matching every key of one tenant of a namespace, whatever version."""
    return glob_escape(header(namespace, tenant=tenant)) + "[:@#]*"
