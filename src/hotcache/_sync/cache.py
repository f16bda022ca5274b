# Generated from src/hotcache/_async by scripts/unasync.py. Do not edit.
"""``AsyncCache``: the asyncio face. ``Cache`` in ``_sync`` is generated from it."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from types import TracebackType
from typing import Any, TypeVar

from .._concurrency import SyncAwaitable, sync_produce
from .._core.envelope import DecodeError
from .._core.freshness import resolve_ttl
from .._core.keys import KeyLike, key_text
from .._core.missing import MISSING, Missing
from .._errors import BackendError, BackendUnavailable
from .._facade import CacheBase, resolve_settings
from ..backends.factory import make_sync_backend
from .backend import SyncBackend

__all__ = ["Cache"]

T = TypeVar("T")
D = TypeVar("D")


class Cache(CacheBase):
    """A cache over one backend, configured by URL (see the README's URL table).

    Args:
        url: ``memory://``, ``sqlite:///path.db``, ``redis://...``, ``null://``...;
            ``None`` reads ``HOTCACHE_URL`` or uses the embedded SQLite default.
        backend: use this backend object instead of building one from the URL.
        **options: any URL option (``namespace``, ``default_ttl``, ``serializer``,
            ``secret``, ``on_error``, ...); keywords override the URL.

    Raises:
        ConfigError: the URL or an option is invalid, or an extra is missing.
    """

    def __init__(
        self, url: str | None = None, *, backend: SyncBackend | None = None, **options: Any
    ) -> None:
        super().__init__(resolve_settings(url, options))
        self._backend = backend or make_sync_backend(self.settings)

    def _backend_evictions(self) -> int:
        return self._backend.evictions

    def __enter__(self) -> Cache:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        """Release connections and files."""
        self._backend.close()

    # -- the guarded call -------------------------------------------------------

    def _call(
        self, fallback: T, op: Callable[..., SyncAwaitable[T]], *args: Any, **kwargs: Any
    ) -> T:
        """Run one backend operation under the breaker; fail open to ``fallback``."""
        if self._breaker.open_until and self._blocked():
            return fallback
        try:
            result = op(*args, **kwargs)
        except BackendError as exc:
            self._failed(exc)
            return fallback
        if self._breaker.failures or self._breaker.open_until:
            self._succeeded()
        return result

    def _heal(self, key: str, exc: DecodeError) -> None:
        self._count_healed(key, exc)
        self._call(False, self._backend.delete, key)

    # -- reads --------------------------------------------------------------------

    def get(self, key: KeyLike, default: D | None = None) -> Any | D | None:
        """Return the value stored under ``key``, or ``default`` on a miss."""
        # ``_call`` inlined: the extra frame and tuple cost a tenth of a memory hit.
        k = self._keys.encode(key)
        breaker = self._breaker
        if breaker.open_until and self._blocked():
            raw = None
        else:
            try:
                raw = self._backend.get(k)
            except BackendError as exc:
                self._failed(exc)
                raw = None
            else:
                if breaker.failures or breaker.open_until:
                    self._succeeded()
        if raw is None:
            self._stats.misses += 1
            return default
        try:
            value = self._codec.decode(k, raw)[0]
        except DecodeError as exc:
            self._stats.misses += 1
            self._heal(k, exc)
            return default
        self._stats.hits += 1
        return value

    def get_many(self, keys: Iterable[KeyLike]) -> dict[KeyLike, Any]:
        """Return ``{key: value}`` for the keys that hit, in one round trip."""
        wanted = list(keys)
        encoded = self._keys.encode_many(wanted)
        if not encoded:
            return {}
        absent: list[bytes | None] = [None] * len(encoded)
        raws = self._call(absent, self._backend.get_many, encoded)
        found, hits, broken = self._codec.decode_many(encoded, raws, wanted)
        self._stats.hits += hits
        self._stats.misses += len(encoded) - hits
        for k, exc in broken:
            self._heal(k, exc)
        return found

    def exists(self, key: KeyLike) -> bool:
        """Return True if ``key`` holds a live entry."""
        return self._call(False, self._backend.exists, self._keys.encode(key))

    def ttl(self, key: KeyLike) -> float | Missing | None:
        """Return seconds left, ``None`` if the entry never expires, ``MISSING`` if absent."""
        left = self._call(None, self._backend.ttl, self._keys.encode(key))
        if left is None:
            return MISSING
        return None if left == float("inf") else left

    # -- writes -------------------------------------------------------------------

    def set(self, key: KeyLike, value: Any, ttl: float | None = None, *, nx: bool = False) -> bool:
        """Store ``value``; return True if it is now stored.

        ``ttl=None`` uses the cache's ``default_ttl``; ``ttl=0`` expires the entry
        at once; ``hotcache.FOREVER`` never expires. ``nx=True`` stores only if
        the key is absent.

        Raises:
            ValueError: a negative, NaN or non-numeric ``ttl``.
            SerializationError: the value cannot be encoded; nothing is stored.
        """
        k = self._keys.encode(key)
        lifetime = resolve_ttl(ttl, self._default_ttl)
        payload = self._codec.encode(k, value)
        if lifetime == 0:
            if not nx:
                self._call(False, self._backend.delete, k)
            return False
        self._stats.sets += 1
        return self._call(False, self._backend.set, k, payload, lifetime, nx=nx)

    def add(self, key: KeyLike, value: Any, ttl: float | None = None) -> bool:
        """Store ``value`` only if ``key`` is absent; return True if stored."""
        return self.set(key, value, ttl, nx=True)

    def set_many(self, items: Mapping[KeyLike, Any], ttl: float | None = None) -> None:
        """Store several values in one round trip (all encoded before any is sent)."""
        lifetime = resolve_ttl(ttl, self._default_ttl)
        payloads = {}
        for key, value in items.items():
            k = self._keys.encode(key)
            payloads[k] = self._codec.encode(k, value)
        if not payloads:
            return
        if lifetime == 0:
            self._call(0, self._backend.delete_many, list(payloads))
            return
        self._stats.sets += len(payloads)
        self._call(None, self._backend.set_many, payloads, lifetime)

    def delete(self, key: KeyLike) -> bool:
        """Delete ``key``; return True if it existed."""
        self._stats.deletes += 1
        return self._call(False, self._backend.delete, self._keys.encode(key))

    def delete_many(self, keys: Iterable[KeyLike]) -> int:
        """Delete several keys in one round trip; return how many existed."""
        encoded = [self._keys.encode(key) for key in keys]
        if not encoded:
            return 0
        self._stats.deletes += len(encoded)
        return self._call(0, self._backend.delete_many, encoded)

    def touch(self, key: KeyLike, ttl: float | None = None) -> bool:
        """Give ``key`` a new lifetime from now; return False if it is absent."""
        k = self._keys.encode(key)
        lifetime = resolve_ttl(ttl, self._default_ttl)
        if lifetime == 0:
            return self._call(False, self._backend.delete, k)
        return self._call(False, self._backend.touch, k, lifetime)

    def incr(self, key: KeyLike, delta: int = 1, *, ttl: float | None = None) -> int:
        """Add ``delta`` atomically and return the new value (absent counts as 0).

        ``ttl`` (``None``: the cache's ``default_ttl``) applies only when the
        counter is created; later increments keep its expiry. Counters cannot fail
        open: when the backend is unreachable this raises ``BackendUnavailable``,
        ``BackendTimeout`` when it does not answer in time (the increment may then
        still have happened), and ``BackendError`` for other failures (such as
        every pooled connection staying busy).

        Raises:
            ValueError: the stored value is not an integer.
        """
        if isinstance(delta, bool) or not isinstance(delta, int):
            raise TypeError(f"delta must be an int, not {type(delta).__name__}")
        k = self._keys.encode(key)
        lifetime = resolve_ttl(ttl, self._default_ttl)
        if self._breaker.open_until and not self._breaker.allow():
            raise BackendUnavailable(f"{self._redacted} is unavailable (circuit breaker open)")
        try:
            result = self._backend.incr(k, delta, lifetime)
        except BackendError as exc:
            self._must_raise(exc)
        self._succeeded()
        return result

    def decr(self, key: KeyLike, delta: int = 1, *, ttl: float | None = None) -> int:
        """Subtract ``delta`` atomically and return the new value."""
        if isinstance(delta, bool) or not isinstance(delta, int):
            raise TypeError(f"delta must be an int, not {type(delta).__name__}")
        return self.incr(key, -delta, ttl=ttl)

    def get_or_set(
        self, key: KeyLike, producer: Callable[[], Any], ttl: float | None = None
    ) -> Any:
        """Return the cached value, or call ``producer``, store and return its result.

        ``producer`` may be a plain function or (for ``AsyncCache``) an ``async``
        one. Its exceptions propagate and nothing is stored.
        """
        resolve_ttl(ttl, self._default_ttl)
        errors = self._stats.errors
        value = self.get(key, MISSING)
        if value is not MISSING:
            return value
        value = sync_produce(producer)
        # A read that just failed says the write would fail too: one call pays at
        # most one timeout. (Another thread's error can skip a write: harmless.)
        if self._stats.errors == errors:
            self.set(key, value, ttl)
        return value

    def clear(self) -> int:
        """Delete every entry of this cache's namespace (batched SCAN, never FLUSHDB)."""
        return self._call(0, self._backend.delete_matching, self._clear_pattern())

    # -- hashes -------------------------------------------------------------------

    def hset(
        self,
        key: KeyLike,
        field: KeyLike | None = None,
        value: Any = None,
        *,
        mapping: Mapping[KeyLike, Any] | None = None,
    ) -> int:
        """Set one field (``field``, ``value``) and/or many (``mapping``) of a hash.

        Returns the number of fields that were new.
        """
        k = self._keys.encode(key)
        items = dict(mapping or {})
        if field is not None:
            items[field] = value
        if not items:
            raise ValueError("hset needs a field and value, or a mapping")
        encoded = {}
        for name, item in items.items():
            text = key_text(name)
            encoded[text] = self._codec.encode(k, item, field=text)
        self._stats.sets += 1
        return self._call(0, self._backend.hset, k, encoded)

    def hget(self, key: KeyLike, field: KeyLike, default: D | None = None) -> Any | D | None:
        """Return one field of a hash, or ``default``."""
        k = self._keys.encode(key)
        text = key_text(field)
        raw = self._call(None, self._backend.hget, k, text)
        if raw is None:
            self._stats.misses += 1
            return default
        try:
            value = self._codec.decode(k, raw, field=text)[0]
        except DecodeError as exc:
            self._stats.misses += 1
            self._count_healed(k, exc)
            self._call(0, self._backend.hdel, k, [text])
            return default
        self._stats.hits += 1
        return value

    def hgetall(self, key: KeyLike) -> dict[str, Any]:
        """Return every field of a hash (``{}`` if absent)."""
        k = self._keys.encode(key)
        empty: dict[str, bytes] = {}
        raws = self._call(empty, self._backend.hgetall, k)
        out: dict[str, Any] = {}
        broken = []
        for text, raw in raws.items():
            try:
                out[text] = self._codec.decode(k, raw, field=text)[0]
            except DecodeError as exc:
                self._count_healed(k, exc)
                broken.append(text)
        if broken:
            self._call(0, self._backend.hdel, k, broken)
        self._stats.hits += 1 if out else 0
        self._stats.misses += 0 if out else 1
        return out

    def hdel(self, key: KeyLike, *fields: KeyLike) -> int:
        """Delete fields of a hash; return how many existed."""
        k = self._keys.encode(key)
        texts = [key_text(name) for name in fields]
        if not texts:
            return 0
        return self._call(0, self._backend.hdel, k, texts)
