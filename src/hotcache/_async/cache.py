"""``AsyncCache``: the asyncio face. ``Cache`` in ``_sync`` is generated from it."""

from __future__ import annotations

import logging
import os
import random
import time
import weakref
from collections.abc import Callable, Iterable, Mapping, Sequence
from types import TracebackType
from typing import Any, TypeVar

from .._concurrency import (
    AsyncAwaitable,
    async_background,
    async_blocking,
    async_produce,
    async_sleep,
)
from .._context import TenantResolver
from .._core import tags as tagging
from .._core.envelope import SLOW, DecodeError, Kept, Meta, payload_digest
from .._core.freshness import Stale, resolve_ttl, soft_expired, validate_ttl
from .._core.keys import KeyLike, key_text, lease_key, lock_key, tag_key
from .._core.missing import MISSING, Missing
from .._errors import BackendError, BackendUnavailable, ConfigError
from .._facade import CacheBase, Payload, in_process_reader, resolve_settings
from ..backends.factory import make_async_backend
from ..coherence import attach, detach
from .backend import AsyncBackend
from .flight import RETRY, AsyncFlights
from .lock import FIRST_POLL, AsyncLock

__all__ = ["AsyncCache"]

# A lease waiter looks for the value at most this long after it lands: one
# waiter per process (the others wait on its flight), so the store hardly notices.
LEASE_POLL = 0.01
log = logging.getLogger("hotcache")
Fence = tuple[str, bytes, str]  # lease key, token, digest of what the key held


def _new_fence(k: str) -> Fence:
    """Return a lease on ``k`` with a token of its own (the digest comes later)."""
    return lease_key(k), os.urandom(16).hex().encode("ascii"), ""


FAILED: Any = object()  # a backend read that failed open

T = TypeVar("T")
D = TypeVar("D")


class AsyncCache(CacheBase):
    """A cache over one backend, configured by URL (see the README's URL table).

    Args:
        url: ``memory://``, ``sqlite:///path.db``, ``redis://...``, ``null://``...;
            ``None`` reads ``HOTCACHE_URL`` or uses the embedded SQLite default.
        backend: use this backend object instead of building one from the URL.
        tenant: a tenant name, or a callable returning the current one (or
            ``None``), put into every key; see ``tenant()``.
        **options: any URL option (``namespace``, ``default_ttl``, ``serializer``,
            ``secret``, ``on_error``, ...); keywords override the URL.

    Raises:
        ConfigError: the URL or an option is invalid, or an extra is missing.
    """

    def __init__(
        self,
        url: str | None = None,
        *,
        backend: AsyncBackend | None = None,
        tenant: str | TenantResolver | None = None,
        **options: Any,
    ) -> None:
        super().__init__(resolve_settings(url, options), tenant)
        self._custom = backend is not None
        self._backend = backend or make_async_backend(self.settings)
        self._in_process = in_process_reader(self._backend)
        self._flights = AsyncFlights()
        self._refreshing: set[str] = set()  # keys refreshed in the background now
        # Leases: one producer per key across processes, and no result stored
        # after a write or delete of its key that came while it ran (which needs
        # them in one process too). ``null://`` keeps nothing to lease.
        # A backend given as an object that predates ``set_leased`` gets none.
        self._leases = (
            self.settings.lease_timeout > 0
            and self.settings.url.scheme != "null"
            and hasattr(self._backend, "set_leased")
        )
        # A backend given as an object may be anything: no tier without a known feed.
        self._local, self._feed = (
            (None, None) if self._custom else attach(self.settings, self._backend)
        )
        # A cache dropped without close() must not keep its feed (a thread and a
        # connection) alive for good.
        self._detach = None if self._local is None else weakref.finalize(self, detach, self._local)

    def _backend_evictions(self) -> int:
        return self._backend.evictions

    async def __aenter__(self) -> AsyncCache:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def close(self) -> None:
        """Release connections and files."""
        self._local = self._feed = None
        if self._detach is not None:
            self._detach()  # once: a finalizer runs at most once
        await self._backend.close()
        self._close_twin()

    # -- the guarded call -------------------------------------------------------

    async def _call(
        self, fallback: T, op: Callable[..., AsyncAwaitable[T]], *args: Any, **kwargs: Any
    ) -> T:
        """Run one backend operation under the breaker; fail open to ``fallback``."""
        if self._breaker.open_until and self._blocked():
            return fallback
        try:
            result = await op(*args, **kwargs)
        except BackendError as exc:
            self._failed(exc)
            return fallback
        if self._breaker.failures or self._breaker.open_until:
            self._succeeded()
        return result

    async def _strict(self, op: Callable[..., AsyncAwaitable[T]], *args: Any, **kwargs: Any) -> T:
        """Run one backend operation that has no honest fallback (counters, locks):
        raise rather than fail open."""
        if self._breaker.open_until and self._blocked():
            raise BackendUnavailable(f"{self._redacted} is unavailable (circuit breaker open)")
        try:
            result = await op(*args, **kwargs)
        except BackendError as exc:
            self._must_raise(exc)
        self._succeeded()
        return result

    async def _heal(self, key: str, exc: DecodeError) -> None:
        self._count_healed(key, exc)
        self._forget((key,))
        await self._call(False, self._backend.delete, key)

    async def _read(self, keys: Sequence[str]) -> Sequence[Payload | None] | None:
        """Read payloads in one round trip (through the request scope, if open).

        Returns ``None`` when the read failed open: absent and unknown differ,
        and only what the backend answered may be remembered.
        """
        scope = self._scope()
        todo = keys if scope is None else [k for k in keys if k not in scope]
        if todo:
            feed = self._feed
            raws: Sequence[Payload | None] | None
            if feed is not None and feed.sync() and all(map(feed.covers, todo)):
                raws = await self._read_through_local(todo)
            else:
                raws = await self._guarded(self._backend.get_many, todo)  # type: ignore[arg-type]
            if raws is None or scope is None:
                return raws
            scope.update(zip(todo, raws, strict=True))
        assert scope is not None
        return [scope[k] for k in keys]

    async def _guarded(
        self, op: Callable[[Sequence[str]], AsyncAwaitable[list[T]]], keys: Sequence[str]
    ) -> list[T] | None:
        """Run one multi-key read under the breaker; ``None`` when it failed open."""
        # ``_call`` inlined, as in ``get``: this is every decorated call's read.
        breaker = self._breaker
        if breaker.open_until and self._blocked():
            return None
        try:
            raws = await op(keys)
        except BackendError as exc:
            self._failed(exc)
            return None
        if breaker.failures or breaker.open_until:
            self._succeeded()
        return raws

    async def _read_through_local(self, keys: Sequence[str]) -> list[Payload | None] | None:
        """Read from the in-process tier, then what it lacks from the backend (kept
        there unless an invalidation raced the read)."""
        assert self._local is not None
        local = self._local.get_many(keys)
        missing = [k for k, raw in zip(keys, local, strict=True) if raw is None]
        if not missing:
            return local
        token = self._local.token()
        pairs = await self._guarded(self._backend.get_many_with_ttl, missing)
        if pairs is None:
            return None
        fetched: dict[str, tuple[Payload, float | None] | None]
        if self._objects:  # decoded once, here, for the tier and this caller alike
            keep = self._codec.keep
            fetched = {
                k: None if pair is None else (keep(k, pair[0]), pair[1])
                for k, pair in zip(missing, pairs, strict=True)
            }
        else:
            fetched = dict(zip(missing, pairs, strict=True))
        self._local.fill(token, {k: pair for k, pair in fetched.items() if pair is not None})
        return [
            raw if raw is not None else (None if (pair := fetched[k]) is None else pair[0])
            for k, raw in zip(keys, local, strict=True)
        ]

    async def _current(
        self, k: str, carried: Sequence[tuple[str, int]], versions: dict[str, int | None]
    ) -> bool:
        """Return True if the entry under ``k``, carrying these tag versions, is current."""
        verdict = tagging.current(carried, versions)
        if verdict is None:
            unread = [tag for tag, _ in carried if tag not in versions]
            raws = await self._read([tag_key(k, tag) for tag in unread])
            if raws is None:
                return False  # cannot vouch for it: a miss, never a stale hit
            versions.update(zip(unread, map(tagging.parse_version, raws), strict=True))
            verdict = tagging.current(carried, versions)
        return bool(verdict)

    # -- reads --------------------------------------------------------------------

    async def get(self, key: KeyLike, default: D | None = None) -> Any | D | None:
        """Return the value stored under ``key``, or ``default`` on a miss."""
        # ``_call`` inlined: the extra frame and tuple cost a tenth of a memory hit.
        if self._context.active:
            k = self._space.encoder().encode(key)
            raws = await self._read([k])
            raw = None if raws is None else raws[0]
        elif self._local is not None:
            # The cache's own namespace: always covered by its feed.
            k = self._keys.encode(key)
            raw = self._local.get(k) if self._feed.sync() else None
            if raw is None:
                raws = await self._read([k])
                raw = None if raws is None else raws[0]
        else:
            k = self._keys.encode(key)
            breaker = self._breaker
            if breaker.open_until and self._blocked():
                raw = None
            else:
                try:
                    raw = await self._backend.get(k)
                except BackendError as exc:
                    self._failed(exc)
                    raw = None
                else:
                    if breaker.failures or breaker.open_until:
                        self._succeeded()
        if raw is not None:
            if type(raw) is Kept:  # serialize_local=False: the object itself
                if raw.meta is None:
                    self._stats.hits += 1
                    return raw.value
            else:
                try:
                    value, meta = self._codec.decode(k, raw)
                except DecodeError:
                    pass  # _decoded() heals it
                else:
                    if meta is None:  # most entries: no tags to check, no extra frame
                        self._stats.hits += 1
                        return value
        value = await self._decoded(k, raw, {})
        if type(value) is Stale:
            return value.value
        return default if value is MISSING else value

    async def _decoded(self, k: str, raw: Payload | None, versions: dict[str, int | None]) -> Any:
        """Return the value of a payload read under ``k``, or ``MISSING`` (counted)."""
        if raw is None:
            self._stats.misses += 1
            return MISSING
        try:
            value, meta = self._codec.decode(k, raw)
        except DecodeError as exc:
            self._stats.misses += 1
            await self._heal(k, exc)
            return MISSING
        if meta is not None and meta.tags and not await self._current(k, meta.tags, versions):
            self._stats.misses += 1
            return MISSING
        self._stats.hits += 1
        if meta is not None and soft_expired(meta.soft_expiry):
            return Stale(value)  # served; the caller may refresh it (stale_ttl)
        return value

    async def _lookup(
        self, k: str, tags: tuple[str, ...], reads: list[str]
    ) -> tuple[Any, dict[str, int | None] | None]:
        """Read an entry and the versions of ``tags`` in one round trip.

        ``reads`` is ``_tag_reads(k, tags)``. Returns the value (``MISSING`` on
        a miss) and, on a miss, the versions read, which the producer's result
        is then written with (``None`` when the read failed open: a write would
        fail too).
        """
        if self._in_process is not None and not self._context.active:
            # An in-process store answers at once and cannot be unreachable.
            raws: Sequence[Payload | None] | None = self._in_process(reads)
        else:
            raws = await self._read(reads)
        if raws is None:
            self._stats.misses += 1
            return MISSING, None
        raw = raws[-1]
        if raw is not None and tags:
            value = self._codec.decode_tagged(raw, tags, tuple(raws[:-1]))
            if value is not SLOW:
                self._stats.hits += 1
                return value, None
        versions = dict(zip(tags, map(tagging.parse_version, raws[:-1]), strict=True))
        return await self._decoded(k, raw, versions), versions

    async def get_many(self, keys: Iterable[KeyLike]) -> dict[KeyLike, Any]:
        """Return ``{key: value}`` for the keys that hit, in one round trip."""
        wanted = list(keys)
        encoded = self._space.encoder().encode_many(wanted)
        if not encoded:
            return {}
        raws = await self._read(encoded) or [None] * len(encoded)
        found, hits, broken, tagged = self._codec.decode_many(encoded, raws, wanted)
        versions: dict[str, int | None] = {}
        for name, k, carried in tagged:
            if not await self._current(k, carried, versions):
                found.pop(name, None)
                hits -= 1
        self._stats.hits += hits
        self._stats.misses += len(encoded) - hits
        for k, exc in broken:
            await self._heal(k, exc)
        return found

    async def exists(self, key: KeyLike) -> bool:
        """Return True if ``key`` holds a live entry."""
        return await self._call(False, self._backend.exists, self._key(key))

    async def ttl(self, key: KeyLike) -> float | Missing | None:
        """Return seconds left, ``None`` if the entry never expires, ``MISSING`` if absent."""
        left = await self._call(None, self._backend.ttl, self._key(key))
        if left is None:
            return MISSING
        return None if left == float("inf") else left

    # -- writes -------------------------------------------------------------------

    async def set(
        self,
        key: KeyLike,
        value: Any,
        ttl: float | None = None,
        *,
        nx: bool = False,
        tags: Iterable[str] | None = None,
        local_only: bool = False,
    ) -> bool:
        """Store ``value``; return True if it is now stored.

        ``ttl=None`` uses the cache's ``default_ttl``; ``ttl=0`` expires the entry
        at once; ``hotcache.FOREVER`` never expires. ``nx=True`` stores only if
        the key is absent. ``tags`` are recorded with the entry (see
        ``docs/patterns.md``). ``local_only=True`` keeps the value in this
        process's local tier alone, never serialized to the shared one (see
        ``docs/coherence.md``).

        Raises:
            ValueError: a negative, NaN or non-numeric ``ttl``; a bad tag.
            SerializationError: the value cannot be encoded; nothing is stored.
        """
        k = self._key(key)
        lifetime = resolve_ttl(ttl, self._default_ttl)
        tag_names = tagging.validate_tags(tags) if tags else ()
        return await self._store(k, value, lifetime, tag_names, nx=nx, local_only=local_only)

    async def _store(
        self,
        k: str,
        value: Any,
        lifetime: float | None,
        tags: Sequence[str] = (),
        versions: dict[str, int | None] | None = None,
        *,
        nx: bool = False,
        local_only: bool = False,
        fence: Fence | None = None,
        soft: float | None = None,
    ) -> bool:
        """Encode and write one entry, carrying ``tags`` at ``versions`` (read if absent),
        and ``soft``, its soft expiry (wall clock; ``stale_ttl``) when given.

        ``local_only``: the shared tier gets a marker, the local tier the entry.
        ``fence``: (lease key, token, digest): written only while that lease is
        ours and the key still holds what it held when the lease was taken.
        """
        local_only = local_only and self._in_process is None  # memory:// is local already
        # Encoded first, so a value that cannot be is refused before anything is
        # written; a decoded local-only value is never encoded at all.
        encode = not (local_only and self._objects)
        meta = None
        if tags and lifetime != 0:
            carried = await self._versions(k, tags, {} if versions is None else versions, lifetime)
            if carried is None:  # the backend failed: nothing can be stored
                if encode:
                    self._codec.encode(k, value)  # but a bad value is still refused
                return False
            meta = Meta(tags=carried)
        if soft is not None and lifetime != 0:
            meta = Meta(soft_expiry=soft, tags=() if meta is None else meta.tags)
        payload = self._codec.encode(k, value, meta) if encode else None
        if lifetime == 0:
            if not nx:
                await self._delete(k)
            return False
        if local_only and self._local is None:
            return False  # no tier kept coherent to hold it: not cached at all
        self._stats.sets += 1
        sent = self._marker(k) if local_only else payload
        if local_only:
            self._feed.sync()  # caught up first: a later catch-up would void the token
        token = self._token()
        if fence is None:
            stored = await self._call(False, self._backend.set, k, sent, lifetime, nx=nx)
        else:  # a producer's result: only under its lease, over what it saw
            stored = await self._call(False, self._backend.set_leased, k, sent, lifetime, *fence)
        if not stored:
            self._forget((k,))
            return False
        if local_only:
            # The feed names changed keys, it does not count changes (Redis sends
            # a key once per pass of its event loop, however often it changed):
            # once the marker's own change is in, read the marker back, and keep
            # the value only if it is still there and nothing changed it since.
            await async_blocking(self._feed.barrier)  # a round trip on the feed's thread
            token = self._token()
            if await self._call(None, self._backend.get, k) != sent:
                self._forget((k,))  # another writer came after the marker
                return True
        self._remember({k: self._held(value, meta, payload)}, lifetime, token)
        return True

    async def _versions(
        self,
        k: str,
        tags: Sequence[str],
        versions: dict[str, int | None],
        lifetime: float | None,
    ) -> tuple[tuple[str, int], ...] | None:
        """Return ``(tag, version)`` for each tag of the entry under ``k`` (which lives
        ``lifetime``), reading or creating the versions not in ``versions`` (updated)."""
        unread = [tag for tag in tags if tag not in versions]
        if unread:
            raws = await self._read([tag_key(k, tag) for tag in unread])
            if raws is None:
                return None
            versions.update(zip(unread, map(tagging.parse_version, raws), strict=True))
        carried = []
        for tag in tags:
            version = versions[tag]
            if version is None:
                version = versions[tag] = await self._new_version(
                    tag_key(k, tag), tagging.version_ttl(tag, lifetime)
                )
                if version is None:
                    return None
            carried.append((tag, version))
        return tuple(carried)

    async def _claim(
        self,
        k: str,
        tags: Sequence[str],
        versions: dict[str, int | None] | None,
        lifetime: float | None,
    ) -> dict[str, int | None] | None:
        """Give every tag a version before a producer runs, so that an invalidation
        during the run makes its result stale; ``None`` if that could not be done."""
        if versions is None or all(versions.get(tag) is not None for tag in tags):
            return versions
        known = await self._versions(k, tags, versions, lifetime)
        return None if known is None else versions

    async def _new_version(self, key: str, ttl: float | None) -> int | None:
        """Create a tag's first version; if another writer won, return its version."""
        version = tagging.new_version()
        payload = b"%d" % version
        token = self._token()
        created = await self._call(None, self._backend.set, key, payload, ttl, nx=True)
        if created:
            self._remember({key: payload}, ttl, token)
            return version
        if created is None:
            return None
        self._forget((key,))
        raws = await self._read([key])
        return None if raws is None else tagging.parse_version(raws[0])

    async def _bump(self, tag_keys: Sequence[str]) -> None:
        """Give tags (by ``tag_key``) new versions: entries carrying them are stale now."""
        fresh = {key: b"%d" % tagging.new_version() for key in tag_keys}
        self._forget(fresh)
        token = self._token()
        await self._strict(self._backend.set_many, fresh, None)
        self._remember(fresh, None, token)

    async def add(self, key: KeyLike, value: Any, ttl: float | None = None) -> bool:
        """Store ``value`` only if ``key`` is absent; return True if stored."""
        return await self.set(key, value, ttl, nx=True)

    async def set_many(self, items: Mapping[KeyLike, Any], ttl: float | None = None) -> None:
        """Store several values in one round trip (all encoded before any is sent)."""
        lifetime = resolve_ttl(ttl, self._default_ttl)
        keys = self._space.encoder()
        payloads = {}
        for key, value in items.items():
            k = keys.encode(key)
            payloads[k] = self._codec.encode(k, value)
        if not payloads:
            return
        if lifetime == 0:
            await self._call(0, self._backend.delete_many, list(payloads))
            self._remember(dict.fromkeys(payloads))
            return
        self._stats.sets += len(payloads)
        # Forgotten, not remembered: a backend may refuse some items (SQLite's size
        # bound) without failing the call, so what is stored is read back.
        await self._call(None, self._backend.set_many, payloads, lifetime)
        self._forget(payloads)

    async def delete(self, key: KeyLike) -> bool:
        """Delete ``key``; return True if it existed."""
        return await self._delete(self._key(key))

    async def _delete(self, k: str) -> bool:
        self._stats.deletes += 1
        if self._leases:
            # A producer running for the key loses its lease: its result, computed
            # from before the delete, must not be stored after it. (Its lease
            # counts as existing, the one place a delete's answer is loose.)
            existed = await self._call(0, self._backend.delete_many, [k, lease_key(k)]) > 0
        else:
            existed = await self._call(False, self._backend.delete, k)
        self._remember({k: None})
        return existed

    async def delete_many(self, keys: Iterable[KeyLike]) -> int:
        """Delete several keys in one round trip; return how many existed."""
        encoded = self._space.encoder().encode_many(list(keys))
        if not encoded:
            return 0
        self._stats.deletes += len(encoded)
        voided = [lease_key(k) for k in encoded] if self._leases else []  # as in ``_delete``
        existed = await self._call(0, self._backend.delete_many, [*encoded, *voided])
        self._remember(dict.fromkeys(encoded))
        return existed

    async def touch(self, key: KeyLike, ttl: float | None = None) -> bool:
        """Give ``key`` a new lifetime from now; return False if it is absent."""
        k = self._key(key)
        lifetime = resolve_ttl(ttl, self._default_ttl)
        if lifetime == 0:
            return await self._delete(k)
        if self._local is not None:  # its copy must not outlive a shortened lifetime
            self._local.invalidate((k,))
        return await self._call(False, self._backend.touch, k, lifetime)

    async def incr(self, key: KeyLike, delta: int = 1, *, ttl: float | None = None) -> int:
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
        k = self._key(key)
        lifetime = resolve_ttl(ttl, self._default_ttl)
        self._forget((k,))  # a timeout leaves the count unknown
        result: int = await self._strict(self._backend.incr, k, delta, lifetime)
        self._remember({k: b"%d" % result})
        return result

    async def decr(self, key: KeyLike, delta: int = 1, *, ttl: float | None = None) -> int:
        """Subtract ``delta`` atomically and return the new value."""
        if isinstance(delta, bool) or not isinstance(delta, int):
            raise TypeError(f"delta must be an int, not {type(delta).__name__}")
        return await self.incr(key, -delta, ttl=ttl)

    async def get_or_set(
        self,
        key: KeyLike,
        producer: Callable[[], Any],
        ttl: float | None = None,
        *,
        tags: Iterable[str] | None = None,
        jitter: float | None = None,
        local_only: bool = False,
        stale_ttl: float | None = None,
    ) -> Any:
        """Return the cached value, or call ``producer``, store and return its result.

        ``producer`` may be a plain function or (for ``AsyncCache``) an ``async``
        one. Its exceptions propagate and nothing is stored. The lifetime is
        spread by ``jitter`` (default: the cache's, 0.1 = ±10 %; 0 keeps it exact).
        ``local_only=True`` keeps the result in this process's local tier alone.
        ``stale_ttl``: for that long after the lifetime, the old value is still
        served while one caller refreshes it in the background (a thread for
        ``Cache``, a task for ``AsyncCache``); see ``docs/stampede.md``.
        """
        lifetime = self._spread(resolve_ttl(ttl, self._default_ttl), jitter)
        stale = validate_ttl(stale_ttl, name="stale_ttl") or None
        if stale and local_only:
            raise ValueError("stale_ttl cannot be combined with local_only")
        tag_names = tagging.validate_tags(tags) if tags else ()
        k = self._key(key)
        reads = self._tag_reads(k, tag_names)
        while True:
            seen = self._flights.landings
            value, versions = await self._lookup(k, tag_names, reads)
            if type(value) is Stale:
                self._revalidate(k, producer, lifetime, stale, tag_names, local_only)
                return value.value
            if value is not MISSING:
                return value
            value = await self._fill(
                k,
                seen,
                producer,
                versions,
                lifetime,
                tag_names,
                local_only=local_only,
                stale=stale,
            )
            if value is not RETRY:
                return value
            self._again(k)

    async def _fill(
        self,
        k: str,
        seen: int,
        producer: Callable[[], Any],
        versions: dict[str, int | None] | None,
        lifetime: float | None,
        tags: tuple[str, ...],
        *,
        local_only: bool = False,
        stale: float | None = None,
    ) -> Any:
        """After a miss: run ``producer`` and store its result, once for every
        concurrent miss of ``k`` in this process (``RETRY``: look again)."""

        async def produce() -> Any:
            claimed = await self._claim(k, tags, versions, lifetime)
            # A read that failed says the write would fail too: one call pays at
            # most one timeout.
            if claimed is None:
                return await async_produce(producer)
            fence, found = await self._lease(k, tags)
            if found is not MISSING:
                return found  # another process produced it meanwhile
            stored = False
            try:
                value = await async_produce(producer)
                hard, soft = self._lifetimes(lifetime, stale)  # from now, not from the miss
                stored = await self._store(
                    k, value, hard, tags, claimed, local_only=local_only, fence=fence, soft=soft
                )
            finally:
                if not stored:
                    await self._unlease(fence)
            return value

        return await self._flights.run(k, seen, produce)

    def _revalidate(
        self,
        k: str,
        produce: Callable[[], Any],
        lifetime: float | None,
        stale: float | None,
        tags: tuple[str, ...],
        local_only: bool = False,
        keep: Callable[[Any], bool] | None = None,
    ) -> None:
        """A stale value was served: refresh ``k`` in the background, unless this
        process is refreshing it already (across processes, its lease decides)."""
        if k in self._refreshing:
            return
        self._refreshing.add(k)

        async def refresh() -> None:
            try:
                await self._refresh(k, produce, lifetime, stale, tags, local_only, keep)
            except Exception as exc:  # nobody waits for it: say so, and serve on
                log.debug("hotcache: background refresh of %r failed: %r", k, exc)
            finally:
                self._refreshing.discard(k)

        try:
            async_background(refresh)
        except BaseException:
            self._refreshing.discard(k)
            raise

    async def _refresh(
        self,
        k: str,
        produce: Callable[[], Any],
        lifetime: float | None,
        stale: float | None,
        tags: tuple[str, ...],
        local_only: bool,
        keep: Callable[[Any], bool] | None,
    ) -> None:
        fence: Fence | None = None
        if self._leases:
            fence = _new_fence(k)
            if not await self._take(fence):
                return  # another process refreshes it (or the store is away)
        stored = False
        try:
            raw = await self._call(FAILED, self._backend.get, k)
            if raw is FAILED or raw is None:
                return  # gone meanwhile: the next miss fills it
            try:
                _, meta = self._codec.decode(k, raw)
            except DecodeError:
                return
            if meta is None or not soft_expired(meta.soft_expiry):
                return  # refreshed by someone else before our lease
            if fence is not None:
                fence = (fence[0], fence[1], payload_digest(raw))
            claimed = await self._claim(k, tags, {}, lifetime)
            if claimed is None:
                return
            value = await async_produce(produce)
            if keep is not None and not keep(value):
                return
            hard, soft = self._lifetimes(lifetime, stale)
            stored = await self._store(
                k, value, hard, tags, claimed, local_only=local_only, fence=fence, soft=soft
            )
        finally:
            if not stored:
                await self._unlease(fence)

    async def _lease(self, k: str, tags: tuple[str, ...]) -> tuple[Fence | None, Any]:
        """Take the lease on ``k`` before producing it, or wait for the value from
        the process that holds it. Returns ``(fence, MISSING)`` when this caller
        is to produce (``fence``: the lease to write under, and what the key held
        when it was taken; ``None``: leases off, the store failed, or the wait
        ran out), or ``(None, value)``.
        """
        if not self._leases:
            return None, MISSING
        fence = _new_fence(k)
        wait = self.settings.lease_wait
        # By default (twice the lease) a waiter outwaits a dead holder's lease,
        # and the producer of whoever takes it over.
        deadline = time.monotonic() + (2 * self.settings.lease_timeout if wait is None else wait)
        reads = self._tag_reads(k, tags)
        pause = FIRST_POLL
        while True:
            taken = await self._take(fence)
            if taken:
                return await self._leased(k, fence)
            left = deadline - time.monotonic()
            if taken is None or left <= 0:
                return None, MISSING  # failing open, or waited long enough: produce
            nap = min(pause * (0.5 + random.random()), left)
            held = await self._call(None, self._backend.ttl, fence[0])
            if held is not None and held < nap:
                nap = held + 0.001  # try again the moment a dead holder's lease lapses
            await async_sleep(nap)
            pause = min(pause * 2, LEASE_POLL)
            value = await self._look_again(k, tags, reads)
            if value is not MISSING:
                return None, value

    async def _look_again(self, k: str, tags: tuple[str, ...], reads: list[str]) -> Any:
        """Look ``k`` up again for a call whose miss was counted already (it counts
        once, as what its last look found)."""
        self._again(k)
        value, _ = await self._lookup(k, tags, reads)
        return value.value if type(value) is Stale else value

    async def _leased(self, k: str, fence: Fence) -> tuple[Fence | None, Any]:
        """With the lease on ``k`` taken: read the key itself once more. The last
        holder may have stored the value and let go between our miss and now; and
        what it holds now is what our write will require it still to hold (a
        write since means our result is stale: no stale sets)."""
        try:
            raw = await self._call(FAILED, self._backend.get, k)
            if raw is not FAILED:
                self._again(k)
                value = await self._decoded(k, raw, {})
                if type(value) is Stale:  # a stale entry: this call produces, a miss
                    self._stats.hits -= 1
                    self._stats.misses += 1
                    value = MISSING
                if value is MISSING:
                    return (fence[0], fence[1], payload_digest(raw)), MISSING
            else:
                value = MISSING  # failing open: produce, and the write fails open too
        except BaseException:
            await self._unlease(fence)  # cancelled holding it
            raise
        await self._unlease(fence)
        return None, value

    async def _take(self, fence: Fence) -> bool | None:
        """Try once to take the lease of ``fence`` (``None``: the store failed). A
        try cancelled midway gives it back: the token is this call's own, so that
        never frees another's."""
        try:
            taken: bool | None = await self._call(
                None, self._backend.set, fence[0], fence[1], self.settings.lease_timeout, nx=True
            )
        except BaseException:
            await self._unlease(fence)
            raise
        return taken

    async def _unlease(self, fence: Fence | None) -> None:
        """Give back a lease a producer did not spend (it raised, or was cancelled),
        so a waiter takes over at once rather than at its expiry."""
        if fence is not None:
            await self._call(False, self._backend.delete_if, fence[0], fence[1])

    async def write_through(
        self,
        key: KeyLike,
        save: Callable[[], Any],
        ttl: float | None = None,
        *,
        tags: Iterable[str] | None = None,
    ) -> Any:
        """Call ``save`` and store what it returns under ``key``; return that.

        The entry is written only after ``save`` returned. If ``save`` raises,
        ``key`` is deleted (the write may have half happened, so the old entry
        can no longer be trusted) and the exception propagates.

        Raises:
            ValueError: a bad ``ttl`` or tag (checked before ``save`` runs).
        """
        k = self._key(key)
        lifetime = resolve_ttl(ttl, self._default_ttl)
        tag_names = tagging.validate_tags(tags) if tags else ()
        try:
            value = await async_produce(save)
        except BaseException:
            await self._delete(k)
            raise
        await self._store(k, value, lifetime, tag_names)
        return value

    def lock(
        self,
        name: str,
        *,
        timeout: float = 10.0,
        blocking: bool = True,
        blocking_timeout: float | None = None,
    ) -> AsyncLock:
        """Return a lock named ``name`` (in this cache's namespace and tenant),
        shared by every thread, task and process using the same store.

        ``async with cache.lock("nightly-report"):`` waits for the lock, holds it
        for the block and releases it. The lock expires ``timeout`` seconds after
        it was taken (or last extended), so a holder that dies cannot keep it;
        a holder that needs longer calls ``extend()``. ``blocking=False`` tries
        once; ``blocking_timeout`` bounds the wait (``LockTimeout`` when the
        block could not take it). See ``docs/stampede.md``.

        Raises:
            ValueError: a bad name or timeout.
            ConfigError: ``null://``, which keeps nothing, cannot hold a lock.
        """
        if self.settings.url.scheme == "null" and not self._custom:
            raise ConfigError("null:// keeps nothing and cannot hold a lock; use a real store")
        key = lock_key(self._space.encoder().header, name)
        return AsyncLock(
            self,
            key,
            name,
            timeout=timeout,
            blocking=blocking,
            blocking_timeout=blocking_timeout,
        )

    async def clear(self) -> int:
        """Delete every entry of this cache's namespace (batched SCAN, never FLUSHDB).

        Inside ``tenant()`` (or with a tenant resolver), only that tenant's entries.
        """
        pattern = self._clear_pattern()
        try:
            return await self._call(0, self._backend.delete_matching, pattern)
        finally:
            self._forget_all()

    # -- hashes -------------------------------------------------------------------

    async def hset(
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
        k = self._key(key)
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
        self._forget((k,))
        return await self._call(0, self._backend.hset, k, encoded)

    async def hget(self, key: KeyLike, field: KeyLike, default: D | None = None) -> Any | D | None:
        """Return one field of a hash, or ``default``."""
        k = self._key(key)
        text = key_text(field)
        raw = await self._call(None, self._backend.hget, k, text)
        if raw is None:
            self._stats.misses += 1
            return default
        try:
            value = self._codec.decode(k, raw, field=text)[0]
        except DecodeError as exc:
            self._stats.misses += 1
            self._count_healed(k, exc)
            await self._call(0, self._backend.hdel, k, [text])
            return default
        self._stats.hits += 1
        return value

    async def hgetall(self, key: KeyLike) -> dict[str, Any]:
        """Return every field of a hash (``{}`` if absent)."""
        k = self._key(key)
        empty: dict[str, bytes] = {}
        raws = await self._call(empty, self._backend.hgetall, k)
        out: dict[str, Any] = {}
        broken = []
        for text, raw in raws.items():
            try:
                out[text] = self._codec.decode(k, raw, field=text)[0]
            except DecodeError as exc:
                self._count_healed(k, exc)
                broken.append(text)
        if broken:
            await self._call(0, self._backend.hdel, k, broken)
        self._stats.hits += 1 if out else 0
        self._stats.misses += 0 if out else 1
        return out

    async def hdel(self, key: KeyLike, *fields: KeyLike) -> int:
        """Delete fields of a hash; return how many existed."""
        k = self._key(key)
        texts = [key_text(name) for name in fields]
        if not texts:
            return 0
        self._forget((k,))
        return await self._call(0, self._backend.hdel, k, texts)
