"""Parse a cache URL into a backend kind and typed options.

Every option a URL may carry is listed once in ``OPTIONS``: its parser and the
schemes that accept it. Keyword arguments to ``Cache`` go through the same table,
so a URL and code configure a cache the same way and fail the same way.
"""

from __future__ import annotations

import math
import os
import urllib.parse
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from ._errors import ConfigError

__all__ = ["OPTIONS", "ParsedURL", "default_sqlite_path", "parse_url", "redact"]

ENV_VAR = "HOTCACHE_URL"

_REDIS = frozenset({"redis", "rediss", "unix"})
_ALL = frozenset({"memory", "sqlite", "null"}) | _REDIS


def _bool(text: str) -> bool:
    lowered = text.strip().lower()
    if lowered in {"1", "true", "yes", "on"}:
        return True
    if lowered in {"0", "false", "no", "off"}:
        return False
    raise ValueError("expected true or false")


def _seconds(text: str) -> float:
    value = float(text)
    if math.isnan(value) or value < 0 or math.isinf(value):
        raise ValueError("expected a finite number of seconds >= 0")
    return value


def _positive_seconds(text: str) -> float:
    value = _seconds(text)
    if value == 0:
        raise ValueError("expected a number of seconds > 0 (0 would make every call fail)")
    return value


def _fraction(text: str) -> float:
    value = float(text)
    if not 0 <= value < 1:
        raise ValueError("expected a fraction in [0, 1)")
    return value


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise ValueError("expected an integer >= 1")
    return value


def _count(text: str) -> int:
    value = int(text)
    if value < 0:
        raise ValueError("expected an integer >= 0")
    return value


def _size(text: str) -> int:
    """Parse a byte size: ``1048576``, ``512kb``, ``64mb``, ``1gb``."""
    raw = text.strip().lower()
    for suffix, factor in (("kb", 1 << 10), ("mb", 1 << 20), ("gb", 1 << 30), ("b", 1)):
        if raw.endswith(suffix):
            return _positive_int(str(int(float(raw[: -len(suffix)]) * factor)))
    return _positive_int(raw)


def _choice(*allowed: str) -> Callable[[str], str]:
    def parse(text: str) -> str:
        if text not in allowed:
            raise ValueError(f"expected one of {', '.join(allowed)}")
        return text

    return parse


def _text(text: str) -> str:
    if not text:
        raise ValueError("expected a non-empty value")
    return text


@dataclass(frozen=True)
class Option:
    parse: Callable[[str], Any]
    schemes: frozenset[str]
    secret: bool = False


OPTIONS: Mapping[str, Option] = {
    # the facade: every scheme
    "namespace": Option(_text, _ALL),
    "version": Option(_text, _ALL),
    "default_ttl": Option(_seconds, _ALL),
    "serializer": Option(_choice("pickle", "json", "msgpack"), _ALL),
    "compression": Option(_choice("auto", "zlib", "zstd", "none"), _ALL),
    "compress_threshold": Option(_count, _ALL),
    "secret": Option(_text, _ALL, secret=True),
    "on_error": Option(_choice("open", "raise"), _ALL),
    "jitter": Option(_fraction, _ALL),
    "lease_timeout": Option(_seconds, _ALL),
    "lease_wait": Option(_seconds, _ALL),
    "local": Option(_bool, _ALL),
    "serialize_local": Option(_bool, _ALL),
    "local_max_entries": Option(_positive_int, _ALL),
    "local_max_bytes": Option(_size, _ALL),
    "local_max_age": Option(_positive_seconds, _ALL),
    "local_policy": Option(_choice("lru", "lfu", "tinylfu"), _ALL),
    "breaker_threshold": Option(_positive_int, _ALL),
    "breaker_window": Option(_seconds, _ALL),
    # bounded local stores
    "max_entries": Option(_positive_int, frozenset({"memory", "sqlite"})),
    "max_bytes": Option(_size, frozenset({"memory", "sqlite"})),
    "policy": Option(_choice("lru", "lfu", "tinylfu"), frozenset({"memory"})),
    "busy_timeout": Option(_seconds, frozenset({"sqlite"})),
    # redis connection
    "db": Option(_count, _REDIS),
    "invalidation": Option(_choice("tracking", "pubsub"), _REDIS),
    "timeout": Option(_positive_seconds, _REDIS),
    "connect_timeout": Option(_positive_seconds, _REDIS),
    "retries": Option(_count, _REDIS),
    "max_connections": Option(_positive_int, _REDIS),
    "health_check_interval": Option(_count, _REDIS),
    "client_name": Option(_text, _REDIS),
    "protocol": Option(_choice("2", "3"), _REDIS),
    "ssl_cert_reqs": Option(_choice("required", "optional", "none"), _REDIS),
    "ssl_ca_certs": Option(_text, _REDIS),
    "ssl_certfile": Option(_text, _REDIS),
    "ssl_keyfile": Option(_text, _REDIS),
    "ssl_check_hostname": Option(_bool, _REDIS),
    "password": Option(_text, _REDIS, secret=True),
}


@dataclass(frozen=True)
class ParsedURL:
    """A parsed, validated cache URL. ``repr`` never shows a secret."""

    scheme: str
    host: str | None = None
    port: int | None = None
    path: str | None = None
    username: str | None = field(default=None, repr=False)
    password: str | None = field(default=None, repr=False)
    options: Mapping[str, Any] = field(default_factory=dict, repr=False)
    redacted: str = ""

    def __repr__(self) -> str:
        return f"ParsedURL({self.redacted!r})"


def default_sqlite_path() -> str:
    """Return the embedded default file under the user's XDG cache directory."""
    base = os.environ.get("XDG_CACHE_HOME", "")
    if not os.path.isabs(base):  # the XDG spec: relative paths are invalid, ignore them
        base = os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "hotcache", "cache.db")


def redact(url: str) -> str:
    """Return ``url`` with any password (userinfo or query) replaced by ``***``."""
    scheme, sep, rest = url.partition("://")
    try:
        split = urllib.parse.urlsplit(url)
        # A password with '@' and '/' both unencoded splits into netloc and path.
        plain = "@" in split.netloc and "@" not in split.path
    except ValueError:
        plain = False
    if sep and "@" in rest and not plain:
        # A password holding '/', '?' or '#' unencoded ends the netloc before its
        # '@': mask everything up to the last '@' (too much, never too little).
        userinfo, _, after = rest.rpartition("@")
        user = userinfo.split(":", 1)[0].split("/", 1)[0].split("?", 1)[0]
        url = f"{scheme}://{user}:***@{after}"
    try:
        parts = urllib.parse.urlsplit(url)
    except ValueError:
        return "<unparsable URL>"
    netloc = parts.netloc
    if "@" in netloc:
        userinfo, _, hostport = netloc.rpartition("@")
        user = userinfo.split(":", 1)[0]
        netloc = f"{user}:***@{hostport}" if ":" in userinfo else f"{user}@{hostport}"
    query = urllib.parse.parse_qsl(parts.query, keep_blank_values=True)
    # An unknown name may be a misspelt secret (?pasword=...): hide its value too.
    shown = [(k, "***" if k not in OPTIONS or OPTIONS[k].secret else v) for k, v in query]
    query_text = urllib.parse.urlencode(shown, safe="*/:")
    return f"{parts.scheme}://{netloc}{parts.path}" + (f"?{query_text}" if query_text else "")


def parse_option(scheme: str, name: str, value: Any, where: str) -> Any:
    """Validate one option for ``scheme``; ``value`` is URL text or a Python value."""
    spec = OPTIONS.get(name)
    if spec is None:
        raise ConfigError(f"unknown option {name!r} in {where}")
    if scheme not in spec.schemes:
        raise ConfigError(f"option {name!r} does not apply to {scheme}:// (in {where})")
    if isinstance(value, bool) and spec.parse is not _bool:
        raise ConfigError(f"option {name!r} takes a {spec.parse.__name__.strip('_')}, not a bool")
    if not isinstance(value, str):
        value = str(value) if not isinstance(value, bool) else ("1" if value else "0")
    try:
        return spec.parse(value)
    except (ValueError, OverflowError) as exc:  # OverflowError: int(float("inf"))
        shown = "***" if spec.secret else repr(value)
        raise ConfigError(f"bad value {shown} for option {name!r} in {where}: {exc}") from None


def parse_url(url: str | None) -> ParsedURL:
    """Parse ``url`` (or ``HOTCACHE_URL``, or the embedded default) into a ``ParsedURL``."""
    if url is None:
        url = os.environ.get(ENV_VAR) or ""
    if not isinstance(url, str):
        raise TypeError(f"cache URL must be a str, not {type(url).__name__}")
    if not url:
        return ParsedURL("sqlite", path=default_sqlite_path(), redacted="sqlite://")
    shown = redact(url)
    try:
        parts = urllib.parse.urlsplit(url)
        port = parts.port
    except ValueError as exc:
        # Not the parser's message: it quotes the port text, which may be a password.
        del exc
        raise ConfigError(f"bad host or port in cache URL {shown}") from None
    if port == 0:
        # Not "any port": 0 cannot be connected to, and must not silently mean 6379.
        raise ConfigError(f"bad port 0 in cache URL {shown}")
    scheme = parts.scheme.lower()
    if scheme not in _ALL:
        known = ", ".join(f"{s}://" for s in sorted(_ALL))
        raise ConfigError(f"unknown scheme {parts.scheme + '://'!r} in {shown}; use one of {known}")
    if parts.fragment:
        raise ConfigError(f"unexpected fragment '#...' in cache URL {shown}")
    options: dict[str, Any] = {}
    for name, value in urllib.parse.parse_qsl(parts.query, keep_blank_values=True):
        if name in options:
            raise ConfigError(f"option {name!r} given twice in {shown}")
        options[name] = parse_option(scheme, name, value, shown)
    username = urllib.parse.unquote(parts.username) if parts.username else None
    password = urllib.parse.unquote(parts.password) if parts.password else None
    if "password" in options:
        password = options.pop("password")
    path: str | None = None
    host: str | None = parts.hostname
    if scheme == "sqlite":
        if parts.netloc:
            raise ConfigError(
                f"sqlite URLs take a path, not a host: use sqlite:///relative.db or "
                f"sqlite:////absolute/path.db (got {shown})"
            )
        path = parts.path[1:] if parts.path.startswith("/") else parts.path
        path = urllib.parse.unquote(path) or default_sqlite_path()
    elif scheme == "memory":
        path = (parts.netloc + parts.path).strip("/") or None
    elif scheme == "unix":
        path = urllib.parse.unquote(parts.path)
        if not path:
            raise ConfigError(
                f"unix:// URL needs a socket path, e.g. unix:///run/redis.sock ({shown})"
            )
    elif scheme in {"redis", "rediss"}:
        db_text = parts.path.strip("/")
        if db_text:
            if "db" in options:
                raise ConfigError(f"database given both in the path and as ?db= in {shown}")
            try:
                options["db"] = parse_option(scheme, "db", db_text, shown)
            except ConfigError:
                # Not the value: with an unencoded '/' in a password it is a secret.
                raise ConfigError(
                    f"bad database number (option 'db') in the path of {shown}"
                ) from None
        host = host or "localhost"
        port = port or 6379
    return ParsedURL(
        scheme=scheme,
        host=host,
        port=port,
        path=path,
        username=username,
        password=password,
        options=options,
        redacted=shown,
    )
