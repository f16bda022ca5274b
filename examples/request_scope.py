"""Request scope: inside one request each key is read from the backend once
(docs/tenants-and-scopes.md#request-scope).

A tiny WSGI app reads the same settings from several helpers; wrapped in
WSGIRequestScope it costs one backend read per key per request. A counting
wrapper around the real memory backend shows the reads, and a second cache on
the same store plays another process changing values mid-request.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import hotcache
from hotcache.backends.memory import MemoryBackend
from hotcache.middleware import ASGIRequestScope, WSGIRequestScope


class CountingBackend:
    """Delegate everything to a real backend; count the read round trips."""

    def __init__(self, inner: MemoryBackend) -> None:
        self.inner = inner
        self.reads = 0

    def get(self, key: str) -> bytes | None:
        self.reads += 1
        return self.inner.get(key)

    def get_many(self, keys: Sequence[str]) -> list[bytes | None]:
        self.reads += 1
        return self.inner.get_many(keys)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


backend = CountingBackend(MemoryBackend("example-request-scope"))
cache = hotcache.Cache(backend=backend)
elsewhere = hotcache.Cache("memory://example-request-scope")  # another process, say


@cache.cached(ttl=60)
def menu(section: str) -> list[str]:
    return ["home", "shop", section]


def header() -> str:
    return f"{cache.get('settings')['site']} | {' '.join(menu('about'))}"


def footer() -> str:
    return f"(c) {cache.get('settings')['site']} | {len(menu('about'))} links"


def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
    """Reads the settings three times and the menu twice: two keys."""
    theme = cache.get("settings")["theme"]
    if environ.get("PATH_INFO") == "/slow":
        # Another process changes the settings while this request runs.
        elsewhere.set("settings", {"site": "Shop", "theme": "light"})
    start_response("200 OK", [("Content-Type", "text/plain")])

    def body() -> Iterable[bytes]:  # streamed after app() returned: still in the scope
        yield f"{header()} [{theme}]\n".encode()
        yield f"{footer()} [{cache.get('settings')['theme']}]\n".encode()

    return body()


def request(wsgi: Callable[..., Iterable[bytes]], path: str = "/") -> str:
    status: list[str] = []
    environ = {"REQUEST_METHOD": "GET", "PATH_INFO": path}
    body = b"".join(wsgi(environ, lambda s, headers: status.append(s)))
    assert status == ["200 OK"]
    return body.decode()


def check_wsgi() -> int:
    """Return how many backend reads the unscoped request made."""
    cache.set("settings", {"site": "Shop", "theme": "dark"})
    menu("about")  # warm: the menu is cached

    backend.reads = 0
    request(app)  # unscoped: every read goes to the backend
    unscoped = backend.reads
    assert unscoped >= 5, unscoped

    scoped_app = WSGIRequestScope(app, cache)
    backend.reads = 0
    page = request(scoped_app)
    assert backend.reads == 2, backend.reads  # the settings once, the menu once
    assert page.count("[dark]") == 2

    # A snapshot: a change made elsewhere mid-request is not seen by that request...
    page = request(scoped_app, "/slow")
    assert page.count("[dark]") == 2, page
    # ...and is seen by the next one.
    assert request(scoped_app).count("[light]") == 2
    return unscoped


def check_own_writes_and_isolation() -> None:
    elsewhere.set("n", 1)
    with cache.request_scope():
        assert cache.get("n") == 1
        elsewhere.set("n", 2)
        assert cache.get("n") == 1  # the snapshot
        cache.set("n", 3)
        assert cache.get("n") == 3  # this cache's own write updates the scope

        seen: list[Any] = []
        worker = threading.Thread(target=lambda: seen.append(cache.get("n")))
        worker.start()
        worker.join()
        assert seen == [3]  # another thread has no scope: it reads the backend
        elsewhere.set("n", 4)
        assert cache.get("n") == 3
    assert cache.get("n") == 4  # the scope ended


def check_asgi() -> None:
    acache = hotcache.AsyncCache("memory://example-request-scope")

    async def read_flag() -> Any:
        return await acache.get("flag")

    async def asgi_app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        first = await acache.get("flag")
        elsewhere.set("flag", "new")
        # Tasks started inside the request share its scope.
        inside = await asyncio.gather(read_flag(), read_flag())
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": repr([first, *inside]).encode()})

    async def run() -> None:
        await acache.set("flag", "old")
        sent: list[dict[str, Any]] = []

        async def receive() -> dict[str, Any]:
            return {"type": "http.request", "body": b""}

        async def send(message: dict[str, Any]) -> None:
            sent.append(message)

        await ASGIRequestScope(asgi_app, acache)({"type": "http"}, receive, send)
        assert sent[-1]["body"] == b"['old', 'old', 'old']", sent
        assert await read_flag() == "new"  # outside the request
        await acache.close()

    asyncio.run(run())


def main() -> None:
    with cache, elsewhere:
        cache.clear()
        unscoped = check_wsgi()
        check_own_writes_and_isolation()
        check_asgi()
        print("request scope ok: 2 backend reads per request instead of", unscoped)


if __name__ == "__main__":
    main()
