"""The I/O-free half of ``Cache`` and ``AsyncCache``: settings, keys, values, counters
and the failure policy. Both faces inherit it; only their I/O differs."""

from __future__ import annotations

import logging
import os
import random
import sys
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, NoReturn, ParamSpec, TypeVar, overload

from ._context import Context, KeySpace, Scope, TenantResolver
from ._core.breaker import Breaker
from ._core.envelope import Codec, DecodeError, Kept, Meta
from ._core.freshness import DEFAULT_JITTER, apply_jitter
from ._core.keys import KeyLike, namespace_pattern, tag_key, tenant_pattern
from ._core.local import DEFAULT_MAX_AGE, LocalTier
from ._core.serializers import Serializer
from ._core.stats import Counters
from ._core.tags import LOCAL_ONLY_CARRIED
from ._errors import BackendError, BackendTimeout, BackendUnavailable
from ._url import ParsedURL, parse_option, parse_url

if TYPE_CHECKING:
    from ._decorator import Decorated

__all__ = [
    "UNKNOWN",
    "CacheBase",
    "Payload",
    "Settings",
    "in_process_reader",
    "resolve_settings",
]

P = ParamSpec("P")
R = TypeVar("R")

log = logging.getLogger("hotcache")

Payload = bytes | Kept  # what a read hands the codec: stored bytes, or a local object
_LOCAL_ONLY = Meta(tags=LOCAL_ONLY_CARRIED)

DEFAULT_NAMESPACE = "hc"
DEFAULT_LEASE_TIMEOUT = 10.0  # how long a producer may hold a key's lease across processes
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
        "jitter",
        "local",
        "serialize_local",
        "lease_timeout",
        "lease_wait",
        "local_max_entries",
        "local_max_bytes",
        "local_max_age",
        "local_policy",
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
    jitter: float
    lease_timeout: float
    lease_wait: float | None
    local: bool
    serialize_local: bool
    local_max_entries: int
    local_max_bytes: int
    local_max_age: float
    local_policy: str
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
        jitter=options.get("jitter", DEFAULT_JITTER),
        lease_timeout=options.get("lease_timeout", DEFAULT_LEASE_TIMEOUT),
        lease_wait=options.get("lease_wait"),
        local=options.get("local", True),
        serialize_local=options.get("serialize_local", True),
        local_max_entries=options.get("local_max_entries", 10_000),
        local_max_bytes=options.get("local_max_bytes", 64 << 20),
        local_max_age=options.get("local_max_age", DEFAULT_MAX_AGE),
        local_policy=options.get("local_policy", "lru"),
        breaker_threshold=options.get("breaker_threshold", 2),
        breaker_window=options.get("breaker_window", 1.0),
        backend_options=backend_options,
    )


UNKNOWN: Any = object()  # a lifetime kept from before the write (incr)


def in_process_reader(backend: Any) -> Callable[[Sequence[str]], list[bytes | None]] | None:
    """Return the plain ``get_many`` of an in-process memory store under ``backend``.

    Both faces call it without ``await`` or the breaker: the store answers in
    microseconds and cannot be unreachable.
    """
    from .backends.memory import MemoryBackend
    from .backends.offload import unwrap

    inner = unwrap(backend)
    return inner.get_many if type(inner) is MemoryBackend else None


class CacheBase:
    """State and pure decisions shared by both faces."""

    def __init__(self, settings: Settings, tenant: str | TenantResolver | None = None) -> None:
        self.settings = settings
        self.namespace = settings.namespace
        self._context = Context(tenant)
        # The in-process tier and its coherence feed: set by the face (local=True).
        self._local: LocalTier[Payload] | None = None
        self._feed: Any = None
        self._space = KeySpace(settings.namespace, settings.version, self._context)
        self._keys = self._space.plain  # the encoder while no tenant is in play
        self._codec = Codec(
            settings.serializer,
            compression=settings.compression,
            compress_threshold=settings.compress_threshold,
            secret=settings.secret,
        )
        self._objects = not settings.serialize_local  # the local tier keeps objects
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

    def _close_twin(self) -> None:
        """Close the Redis client a sync twin opened for this cache's plain functions."""
        twin = self.__dict__.get("_twin")
        if twin is not None and twin.__dict__.get("_owns_backend"):
            twin._backend.close()

    # -- tenants and request scopes --------------------------------------------

    def tenant(self, tenant: str | None) -> Scope:
        """Return a block (``with`` / ``async with``) whose calls run under ``tenant``.

        Every key in the block carries the tenant, so tenants never see each
        other's entries and ``clear()`` in the block clears only this tenant.
        ``None`` runs the block under no tenant, whatever the resolver says.

        Raises:
            TypeError, ValueError: ``tenant`` is not a non-empty ``str`` or ``None``.
        """
        return self._context.tenant_block(tenant)

    def request_scope(self) -> Scope:
        """Return a block (``with`` / ``async with``) that reads each key once.

        Inside it, a key's first read goes to the backend and later reads of it
        are answered from the scope; writes and deletes through this cache update
        the scope. The scope belongs to the current thread or asyncio task (and
        the tasks it starts). Nested blocks share the outer scope.
        """
        return self._context.scope_block()

    # -- decorators -------------------------------------------------------------

    @overload
    def cached(self, fn: Callable[P, R], /) -> Decorated[P, R]: ...

    @overload
    def cached(
        self,
        fn: None = None,
        /,
        *,
        ttl: float | None = None,
        key: str | Callable[..., Any] | None = None,
        namespace: str | None = None,
        version: str | int | None = None,
        tags: Iterable[str] | Callable[..., Iterable[str]] | None = None,
        condition: Callable[[Any], bool] | None = None,
        unless: Callable[[Any], bool] | None = None,
        jitter: float | None = None,
        cache_errors: Iterable[type[BaseException]] = (),
        error_ttl: float = 5.0,
        local_only: bool = False,
        stale_ttl: float | None = None,
    ) -> Callable[[Callable[P, R]], Decorated[P, R]]: ...

    def cached(
        self,
        fn: Callable[..., Any] | None = None,
        /,
        *,
        ttl: float | None = None,
        key: str | Callable[..., Any] | None = None,
        namespace: str | None = None,
        version: str | int | None = None,
        tags: Iterable[str] | Callable[..., Iterable[str]] | None = None,
        condition: Callable[[Any], bool] | None = None,
        unless: Callable[[Any], bool] | None = None,
        jitter: float | None = None,
        cache_errors: Iterable[type[BaseException]] = (),
        error_ttl: float = 5.0,
        local_only: bool = False,
        stale_ttl: float | None = None,
    ) -> Any:
        """Cache a function's results by its arguments (``@cached`` or ``@cached(...)``).

        Works on plain and ``async def`` functions (an ``async def`` runs on the
        async face whichever cache decorates it), methods, classmethods and
        staticmethods. See ``docs/decorator.md``.

        Args:
            ttl: lifetime in seconds (default: the cache's ``default_ttl``).
            key: a template such as ``"user:{user_id}"`` (formatted with the bound
                arguments) or a callable taking the function's arguments; default:
                the function's ``module.qualname`` and its bound arguments.
            namespace, version: put this function's entries under their own.
            tags: tags every entry carries, or a callable of the arguments
                returning them.
            condition: store a result only if ``condition(result)`` is true.
            unless: do not store a result if ``unless(result)`` is true.
            jitter: spread each lifetime by up to ±jitter (default: the cache's,
                0.1); 0 keeps lifetimes exact.
            cache_errors: exception classes to cache for ``error_ttl`` seconds
                (re-raised on each hit); others are never cached.
            local_only: keep results in each process's local tier alone, never
                serialized to the shared tier (see ``docs/coherence.md``).
            stale_ttl: serve a result for this long past its lifetime while one
                caller refreshes it in the background (``docs/stampede.md``).

        Raises:
            TypeError: ``fn`` is a generator function or not callable; bad options.
            ValueError: a bad ``ttl``, ``jitter`` or template.
        """
        from ._decorator import decorate

        def wrap(target: Callable[..., Any]) -> Any:
            return decorate(
                self,
                target,
                key=key,
                ttl=ttl,
                namespace=namespace,
                version=version,
                tags=tags,
                condition=condition,
                unless=unless,
                jitter=jitter,
                cache_errors=cache_errors,
                error_ttl=error_ttl,
                local_only=local_only,
                stale_ttl=stale_ttl,
            )

        return wrap if fn is None else wrap(fn)

    def writes(
        self,
        key: str | Callable[..., Any],
        *,
        ttl: float | None = None,
        tags: Iterable[str] | None = None,
    ) -> Callable[[Callable[..., Any]], Any]:
        """Decorate a save function so the cache follows it (write-through).

        The function's return value is stored under ``key`` (a template of its
        arguments, such as ``"user:{user.id}"``, or a callable of them) once it
        returned; if it raises, the entry is deleted and the exception propagates.
        See ``write_through``.
        """
        from ._decorator import writes

        def wrap(fn: Callable[..., Any]) -> Any:
            return writes(self, fn, key=key, ttl=ttl, tags=tags)

        return wrap

    # -- keys and values ------------------------------------------------------

    def _key(self, key: KeyLike) -> str:
        return self._space.encoder().encode(key)

    def _clear_pattern(self) -> str:
        tenant = self._context.tenant() if self._context.active else None
        if tenant is None:
            return namespace_pattern(self.namespace)
        return tenant_pattern(self.namespace, tenant)

    def _spread(self, lifetime: float | None, jitter: float | None) -> float | None:
        """Return ``lifetime`` spread by ``jitter`` (``None``: the cache's default)."""
        chosen = self.settings.jitter if jitter is None else jitter
        return apply_jitter(lifetime, chosen, random.random)

    def _held(self, value: Any, meta: Meta | None, payload: bytes | None) -> Payload:
        """Return what the local tier and the request scope keep of an entry just
        written: its payload, or with ``serialize_local=False`` the value itself
        (sized by its payload, or shallowly when it was never encoded)."""
        if not self._objects:
            assert payload is not None
            return payload
        size = sys.getsizeof(value) if payload is None else len(payload)
        return Kept(value, meta, size)

    def _marker(self, k: str) -> bytes:
        """Return what the shared tier holds under ``k`` for a local-only entry:
        unique, so that reading it back tells this write from any other."""
        return self._codec.encode(k, os.urandom(8), _LOCAL_ONLY)

    def _tag_reads(self, k: str, tags: tuple[str, ...]) -> list[str]:
        """Return the keys one lookup reads: each tag's version key, then ``k``."""
        return [*(tag_key(k, tag) for tag in tags), k]

    def _scope(self) -> dict[str, Payload | None] | None:
        return self._context.scope() if self._context.active else None

    @staticmethod
    def _lifetimes(
        lifetime: float | None, stale: float | None
    ) -> tuple[float | None, float | None]:
        """Return an entry's hard lifetime and soft expiry (wall clock; ``None``:
        none) for ``lifetime`` and ``stale_ttl``: stale entries outlive their
        lifetime by ``stale``, served while refreshed."""
        if not stale or lifetime is None or lifetime == 0:
            return lifetime, None
        return lifetime + stale, time.time() + lifetime

    def _again(self, k: str) -> None:
        """Before one call looks ``k`` up once more: its request scope must not
        answer with the miss it saw, and that miss is not counted twice."""
        scope = self._scope()
        if scope is not None:
            scope.pop(k, None)
        self._stats.misses -= 1

    def _token(self) -> int:
        """Return the local tier's token, taken before a write is sent (``_remember``)."""
        return 0 if self._local is None else self._local.token()

    def _remember(
        self,
        items: Mapping[str, Payload | None],
        lifetime: float | object | None = UNKNOWN,
        token: int = 0,
    ) -> None:
        """Record what this call wrote (``None``: deleted), living ``lifetime``
        (``UNKNOWN``: kept from before), in the request scope and the local tier.

        ``token`` is ``_token()`` from before the write was sent: the local tier
        keeps a value only if no change of its key reached it since
        (``LocalTier.write``).
        """
        scope = self._scope()
        if scope is not None:
            scope.update(items)
        local = self._local
        if local is not None:
            for k, payload in items.items():
                if payload is None or lifetime is UNKNOWN:
                    local.invalidate((k,))
                else:
                    local.write(k, payload, lifetime, token)  # type: ignore[arg-type]

    def _forget(self, keys: Iterable[str]) -> None:
        """Drop keys whose stored state this call cannot tell (request scope, local tier)."""
        keys = list(keys)
        scope = self._scope()
        if scope is not None:
            for k in keys:
                scope.pop(k, None)
        if self._local is not None:
            self._local.invalidate(keys)

    def _forget_all(self) -> None:
        """Drop everything this process keeps of the backend (after a clear)."""
        scope = self._scope()
        if scope is not None:
            scope.clear()
        if self._local is not None:
            self._local.flush()

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
