"""The I/O-free half of ``Cache`` and ``AsyncCache``: settings, keys, values, counters
and the failure policy. Both faces inherit it; only their I/O differs."""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, NoReturn

from ._core.breaker import Breaker
from ._core.envelope import Codec, DecodeError
from ._core.keys import KeyEncoder, KeyLike, header, namespace_pattern
from ._core.serializers import Serializer
from ._core.stats import Counters
from ._errors import BackendError, BackendTimeout, BackendUnavailable
from ._url import ParsedURL, parse_option, parse_url

__all__ = ["CacheBase", "Settings", "resolve_settings"]

log = logging.getLogger("hotcache")

DEFAULT_NAMESPACE = "hc"
_FACADE_OPTIONS = frozenset(
    {
        "namespace",
        "version",
        "default_ttl",
        "serializer",
        "compression",
        "compress_threshold",
        "secret",
        "on_error",
        "breaker_threshold",
        "breaker_window",
    }
)


@dataclass(frozen=True)
class Settings:
    """Everything a cache was configured with, from its URL and keyword arguments."""

    url: ParsedURL
    namespace: str
    version: str | None
    default_ttl: float | None
    serializer: str | Serializer
    compression: str
    compress_threshold: int
    secret: str | bytes | None
    on_error: str
    breaker_threshold: int
    breaker_window: float
    backend_options: Mapping[str, Any]

    def __repr__(self) -> str:
        return f"Settings(url={self.url.redacted!r}, namespace={self.namespace!r})"


def resolve_settings(url: str | None, overrides: Mapping[str, Any]) -> Settings:
    """Merge a URL (or ``HOTCACHE_URL``) with keyword overrides; validate all of it."""
    parsed = parse_url(url)
    options = dict(parsed.options)
    for name, value in overrides.items():
        if value is None:
            continue
        if name == "serializer" and not isinstance(value, str):
            options[name] = value
        elif name == "secret" and isinstance(value, (bytes, bytearray)):
            options[name] = bytes(value)
        else:
            options[name] = parse_option(parsed.scheme, name, value, "keyword arguments")
    if "secret" not in options and os.environ.get("HOTCACHE_SECRET"):
        options["secret"] = os.environ["HOTCACHE_SECRET"]
    backend_options = {k: v for k, v in options.items() if k not in _FACADE_OPTIONS}
    return Settings(
        url=parsed,
        namespace=options.get("namespace", DEFAULT_NAMESPACE),
        version=options.get("version"),
        default_ttl=options.get("default_ttl"),
        serializer=options.get("serializer", "pickle"),
        compression=options.get("compression", "auto"),
        compress_threshold=options.get("compress_threshold", 1024),
        secret=options.get("secret"),
        on_error=options.get("on_error", "open"),
        breaker_threshold=options.get("breaker_threshold", 2),
        breaker_window=options.get("breaker_window", 1.0),
        backend_options=backend_options,
    )


class CacheBase:
    """State and pure decisions shared by both faces."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.namespace = settings.namespace
        self._keys = KeyEncoder(header(settings.namespace, version=settings.version))
        self._codec = Codec(
            settings.serializer,
            compression=settings.compression,
            compress_threshold=settings.compress_threshold,
            secret=settings.secret,
        )
        self._default_ttl = settings.default_ttl
        self._raise = settings.on_error == "raise"
        self._breaker = Breaker(settings.breaker_threshold, settings.breaker_window)
        self._stats = Counters()
        self._redacted = settings.url.redacted

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self._redacted!r}, namespace={self.namespace!r})"

    def stats(self) -> dict[str, int]:
        """Return a snapshot of this cache's counters."""
        out = self._stats.snapshot()
        try:
            out["evictions"] = self._backend_evictions()
        except BackendError:
            out["evictions"] = -1  # unknown while the backend is unreachable
        out["breaker_trips"] = self._breaker.trips
        return out

    def _backend_evictions(self) -> int:
        return 0

    # -- keys and values ------------------------------------------------------

    def _key(self, key: KeyLike) -> str:
        return self._keys.encode(key)

    def _clear_pattern(self) -> str:
        return namespace_pattern(self.namespace)

    def _count_healed(self, key: str, exc: DecodeError) -> None:
        self._stats.healed += 1
        log.debug("hotcache: dropped unreadable entry %r (%s)", key, exc.reason)

    # -- failure policy -------------------------------------------------------

    def _blocked(self) -> bool:
        """Return True (or raise) when the breaker keeps this call from the backend."""
        if not self._breaker.open_until or self._breaker.allow():
            return False
        self._stats.short_circuited += 1
        if self._raise:
            raise BackendUnavailable(
                f"{self._redacted} is unavailable (circuit breaker open); failing fast"
            )
        return True

    def _failed(self, exc: BackendError) -> None:
        """Record a backend failure; re-raise it unless failing open."""
        self._stats.errors += 1
        if isinstance(exc, (BackendUnavailable, BackendTimeout)) and self._breaker.failure():
            log.warning(
                "hotcache: %s failing (%s: %s); calls skip it for %.2fs windows until it answers",
                self._redacted,
                type(exc).__name__,
                exc,
                self._breaker.window,
            )
        if self._raise:
            raise exc

    def _succeeded(self) -> None:
        if self._breaker.success():
            log.warning("hotcache: %s answers again; circuit breaker closed", self._redacted)

    def _must_raise(self, exc: BackendError) -> NoReturn:
        """For calls with no sensible fallback (counters): record, then raise."""
        self._failed(exc)
        raise exc
