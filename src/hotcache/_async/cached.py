"""The I/O of a decorated function's calls: look up, call on a miss, store."""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from typing import Any

from .._core.freshness import Stale, resolve_ttl
from .._core.keys import tag_key
from .._core.missing import MISSING
from .._decorator import PLAIN_TYPES, CachedError, CallSpec
from .._errors import SerializationError
from .cache import AsyncCache
from .flight import RETRY

__all__ = ["AsyncRunner"]


class AsyncRunner:
    """Run one decorated function's calls through one cache face."""

    def __init__(self, face: AsyncCache, spec: CallSpec) -> None:
        self.face = face
        self.spec = spec
        self._plans: dict[tuple[Any, ...], tuple[str, tuple[str, ...], list[str]]] = {}

    def function(self) -> Callable[..., Any]:
        """Return the wrapper that stands in for the function."""
        call = self.call

        async def wrapper(*args: Any, **kwargs: Any) -> Any:
            return await call(args, kwargs)

        return wrapper

    def _key(self, args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> str:
        return self.spec.space.encoder().encode(self.spec.text(args, kwargs))

    async def call(self, args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> Any:
        """Return the cached result of ``fn(*args, **kwargs)``, computing it on a miss."""
        # Warm calls with plain arguments and no tenant reuse the keys their
        # first call read (the entry's and its tags' versions): no binding, no
        # encoding, one dict lookup.
        plannable = (
            not kwargs
            and not self.face._context.active
            and PLAIN_TYPES.issuperset(map(type, args))
            and self.spec.static
        )
        plan = self._plans.get(args) if plannable else None
        if plan is None:
            k = self._key(args, kwargs)
            tags = self.spec.tags(args, kwargs)
            reads = self.face._tag_reads(k, tags)
            if plannable and len(self._plans) < 10_000:
                self._plans[args] = (k, tags, reads)
        else:
            k, tags, reads = plan
        face = self.face
        while True:
            seen = face._flights.landings
            value, versions = await face._lookup(k, tags, reads)
            if value is MISSING:
                value = await self._miss(k, tags, versions, args, kwargs, seen)
                if value is RETRY:
                    face._again(k)
                    continue
                return value
            if type(value) is Stale:
                value = self._revalidate(k, tags, value.value, args, kwargs)
            if type(value) is CachedError:
                raise value.error
            return value

    def _revalidate(
        self,
        k: str,
        tags: tuple[str, ...],
        value: Any,
        args: tuple[Any, ...],
        kwargs: Mapping[str, Any],
    ) -> Any:
        """Serve a stale result and refresh it in the background (``stale_ttl``)."""
        spec = self.spec
        lifetime = self.face._spread(resolve_ttl(spec.ttl, self.face._default_ttl), spec.jitter)
        call = functools.partial(spec.fn, *args, **kwargs)
        self.face._revalidate(k, call, lifetime, spec.stale, tags, keep=spec.stores)
        return value

    async def _miss(
        self,
        k: str,
        tags: tuple[str, ...],
        versions: dict[str, int | None] | None,
        args: tuple[Any, ...],
        kwargs: Mapping[str, Any],
        seen: int,
    ) -> Any:
        """Run the call once for every concurrent miss of it in this process (a
        method of its own: a closure in ``call`` would slow every warm call)."""

        async def produce() -> Any:
            return await self._produce(k, tags, versions, args, kwargs)

        return await self.face._flights.run(k, seen, produce)

    async def _produce(
        self,
        k: str,
        tags: tuple[str, ...],
        versions: dict[str, int | None] | None,
        args: tuple[Any, ...],
        kwargs: Mapping[str, Any],
        *,
        replace: bool = False,
    ) -> Any:
        # ``versions`` were read before the call: if a tag is invalidated while
        # the function runs, the entry is written with the old version and never
        # served. ``None``: the backend failed the read, so nothing is written.
        spec, face = self.spec, self.face
        lifetime = resolve_ttl(spec.ttl, face._default_ttl)
        versions = await face._claim(k, tags, versions, lifetime)
        fence = None
        if versions is not None and not replace:
            # Across processes: one call per key; the others wait for its result.
            fence, found = await face._lease(k, tags)
            if found is not MISSING:
                if type(found) is CachedError:
                    raise found.error
                return found
        stored = False
        try:
            try:
                result = await spec.fn(*args, **kwargs)
            except spec.cache_errors as exc:
                if versions is not None and spec.error_ttl:
                    try:
                        stored = await face._store(
                            k,
                            CachedError(exc),
                            spec.error_ttl,
                            tags,
                            versions,
                            local_only=spec.local_only,
                            fence=fence,
                        )
                    except SerializationError:
                        pass  # an error that cannot be stored is simply not cached
                raise
            if versions is not None and spec.stores(result):
                hard, soft = face._lifetimes(face._spread(lifetime, spec.jitter), spec.stale)
                stored = await face._store(
                    k,
                    result,
                    hard,
                    tags,
                    versions,
                    local_only=spec.local_only,
                    fence=fence,
                    soft=soft,
                )
            elif replace:
                await face._delete(k)  # the old entry must not outlive a refused refresh
        finally:
            if not stored:
                await face._unlease(fence)
        return result

    async def refresh(self, args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> Any:
        """Call the function, store its result (whatever is cached) and return it."""
        k = self._key(args, kwargs)
        tags = self.spec.tags(args, kwargs)
        versions: dict[str, int | None] = {}
        lifetime = resolve_ttl(self.spec.ttl, self.face._default_ttl)
        known = await self.face._versions(k, tags, versions, lifetime)
        return await self._produce(
            k, tags, None if known is None else versions, args, kwargs, replace=True
        )

    async def get_cached(self, args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> Any:
        """Return the cached result of a call, or ``MISSING``, without calling it."""
        k = self._key(args, kwargs)
        tags = self.spec.tags(args, kwargs)
        value, _ = await self.face._lookup(k, tags, self.face._tag_reads(k, tags))
        if type(value) is Stale:
            value = value.value
        if type(value) is CachedError:
            raise value.error
        return value

    async def invalidate(self, args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> bool:
        """Delete the entry of one call; return True if it existed."""
        return await self.face._delete(self._key(args, kwargs))

    async def clear_cache(self) -> None:
        """Make every entry of the function stale at once (one write, not a scan)."""
        home = self.spec.space.encoder().header + ":"
        await self.face._bump([tag_key(home, self.spec.fn_tag)])
