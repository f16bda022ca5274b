"""WSGI and ASGI middleware that opens a request scope per request.

```python
app = hotcache.middleware.WSGIRequestScope(app, cache)      # Flask, Django (WSGI)...
app = hotcache.middleware.ASGIRequestScope(app, cache)      # Starlette, Django (ASGI)...
```

Inside a request, each key is read from the backend once; see
``Cache.request_scope``. Give several caches to scope them all.
"""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from ._facade import CacheBase

__all__ = ["ASGIRequestScope", "WSGIRequestScope"]


def _check(caches: tuple[CacheBase, ...]) -> tuple[CacheBase, ...]:
    if not caches:
        raise TypeError("give the middleware at least one cache")
    for cache in caches:
        if not isinstance(cache, CacheBase):
            raise TypeError(f"expected a hotcache Cache or AsyncCache, not {type(cache).__name__}")
    return caches


def _open(caches: tuple[CacheBase, ...]) -> contextlib.ExitStack:
    """Enter a request scope of each cache (in the current context)."""
    stack = contextlib.ExitStack()
    for cache in caches:
        stack.enter_context(cache.request_scope())
    return stack


class WSGIRequestScope:
    """Run each WSGI request, and the iteration of its response, in one scope."""

    def __init__(self, app: Callable[..., Iterable[bytes]], *caches: CacheBase) -> None:
        self.app = app
        self.caches = _check(caches)

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        # The response body may be produced lazily, after ``__call__`` returned:
        # run the app and each step of its iteration in one private context.
        # The scopes are never exited: the context that holds them is dropped.
        context = contextvars.copy_context()
        context.run(_open, self.caches)
        result = context.run(self.app, environ, start_response)
        return _ScopedBody(context, result)


class _ScopedBody:
    def __init__(self, context: contextvars.Context, body: Iterable[bytes]) -> None:
        self._context = context
        self._body = body
        self._iter: Iterator[bytes] | None = None

    def __iter__(self) -> _ScopedBody:
        return self

    def __next__(self) -> bytes:
        if self._iter is None:
            self._iter = self._context.run(iter, self._body)
        return self._context.run(next, self._iter)

    def close(self) -> None:
        close = getattr(self._body, "close", None)
        if close is not None:
            self._context.run(close)


class ASGIRequestScope:
    """Run each ASGI HTTP request (and WebSocket connection) in one scope."""

    def __init__(self, app: Callable[..., Any], *caches: CacheBase) -> None:
        self.app = app
        self.caches = _check(caches)

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope.get("type") not in {"http", "websocket"}:
            await self.app(scope, receive, send)
            return
        with _open(self.caches):
            await self.app(scope, receive, send)
