"""The ``hotcache`` command: the demo and a few commands to look into a cache.

Exit status: 0 on success, 1 when a key is not found (``get``, ``delete``) or the
demo saw a stale read, 2 on a usage, configuration or backend error (one line on
stderr, no traceback, never a password).
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence
from typing import Any

from . import __version__
from ._errors import CacheError
from ._sync.cache import Cache
from ._url import ENV_VAR

__all__ = ["main"]

_PROG = "hotcache"


def _build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=_PROG,
        description="hotcache: a coherent two-tier cache for Python services.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    def target(namespace_default: str | None, namespace_help: str) -> argparse.ArgumentParser:
        common = argparse.ArgumentParser(add_help=False)
        common.add_argument(
            "--url",
            default=None,
            help=f"cache URL (default: ${ENV_VAR}, else the embedded SQLite file)",
        )
        common.add_argument("--namespace", default=namespace_default, help=namespace_help)
        return common

    plain = target(None, "namespace of the keys (default: the URL's, else 'hc')")

    demo = sub.add_parser(
        "demo",
        parents=[target("hotcache-demo", "namespace the demo uses and clears")],
        help="read a slow SQLite table through the cache; print cold vs warm latency",
        description="Read a slow SQLite table through the cache with a Zipf request "
        "stream and print cold versus warm latency, hit ratio and speed-up.",
    )
    demo.add_argument("--requests", type=int, default=1000, help="requests in the stream")
    demo.add_argument(
        "--latency-ms", type=float, default=20.0, help="artificial delay of each source query"
    )
    demo.add_argument("--rows", type=int, default=400, help="rows in the source table")
    demo.add_argument("--seed", type=int, default=42, help="seed of the request stream")

    sub.add_parser("stats", parents=[plain], help="show the backend a URL selects")
    get = sub.add_parser("get", parents=[plain], help="print the value stored under KEY")
    get.add_argument("key", metavar="KEY")
    put = sub.add_parser("set", parents=[plain], help="store the string VALUE under KEY")
    put.add_argument("key", metavar="KEY")
    put.add_argument("value", metavar="VALUE")
    put.add_argument("--ttl", type=float, default=None, help="lifetime in seconds")
    delete = sub.add_parser("delete", parents=[plain], help="delete KEY")
    delete.add_argument("key", metavar="KEY")
    sub.add_parser("clear", parents=[plain], help="delete every entry of the namespace")
    sub.add_parser("version", help="print the version")
    return parser


def _open(args: argparse.Namespace) -> Cache:
    # on_error="raise": a command line tool must report an unreachable server,
    # not fail open and answer "not found".
    return Cache(args.url, namespace=args.namespace, on_error="raise")


def _show(value: Any) -> str:
    return value if isinstance(value, str) else repr(value)


def _stats(args: argparse.Namespace) -> int:
    with _open(args) as cache:
        url = cache.settings.url
        t0 = time.perf_counter()
        cache.exists("hotcache-cli-probe")
        round_trip = (time.perf_counter() - t0) * 1000
        backend = type(cache._backend).__name__
        where = url.path if url.scheme in {"sqlite", "unix"} else None
        if url.scheme in {"redis", "rediss"}:
            where = f"{url.host}:{url.port} db {url.options.get('db', 0)}"
        serializer = cache.settings.serializer
        default_ttl = cache.settings.default_ttl
        rows = [
            ("url", url.redacted),
            ("namespace", cache.namespace),
            ("backend", backend + (f" ({where})" if where else "")),
            ("serializer", serializer if isinstance(serializer, str) else repr(serializer)),
            ("default ttl", "none" if default_ttl is None else f"{default_ttl:g}s"),
            ("reachable", f"yes, round trip {round_trip:.2f} ms"),
        ]
    width = max(len(name) for name, _ in rows)
    for name, value in rows:
        print(f"{name.ljust(width)}  {value}")
    return 0


def _get(args: argparse.Namespace) -> int:
    with _open(args) as cache:
        value = cache.get(args.key, _Absent)
    if value is _Absent:
        print(f"{_PROG}: key {args.key!r} not found", file=sys.stderr)
        return 1
    print(_show(value))
    return 0


class _Absent:
    """Marks a miss apart from a stored ``None``."""


def _set(args: argparse.Namespace) -> int:
    with _open(args) as cache:
        cache.set(args.key, args.value, args.ttl)
    return 0


def _delete(args: argparse.Namespace) -> int:
    with _open(args) as cache:
        existed = cache.delete(args.key)
    if not existed:
        print(f"{_PROG}: key {args.key!r} not found", file=sys.stderr)
        return 1
    return 0


def _clear(args: argparse.Namespace) -> int:
    with _open(args) as cache:
        removed = cache.clear()
        print(f"cleared {removed} entries from namespace {cache.namespace!r}")
    return 0


def _demo(args: argparse.Namespace) -> int:
    from .demo import DemoConfig
    from .demo import main as demo_main

    try:
        config = DemoConfig(
            url=args.url,
            namespace=args.namespace,
            requests=args.requests,
            latency_ms=args.latency_ms,
            rows=args.rows,
            seed=args.seed,
        )
    except ValueError as exc:
        raise _UsageError(str(exc)) from None
    return demo_main(config)


class _UsageError(Exception):
    """A bad command-line value, reported like an argparse error."""


_COMMANDS = {
    "demo": _demo,
    "stats": _stats,
    "get": _get,
    "set": _set,
    "delete": _delete,
    "clear": _clear,
}


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``hotcache`` command line; return its exit status."""
    parser = _build_parser()
    args = parser.parse_args(argv)
    if args.command == "version":
        print(f"{_PROG} {__version__}")
        return 0
    try:
        return _COMMANDS[args.command](args)
    except (CacheError, ValueError, TypeError, _UsageError) as exc:
        # The library keeps passwords out of its messages (see hotcache._url.redact).
        text = " ".join((str(exc) or type(exc).__name__).split())
        print(f"{_PROG}: error: {text}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"{_PROG}: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # `hotcache get k | head -c1`: the reader left; nothing more to say.
        sys.stderr.close()
        return 1


if __name__ == "__main__":
    sys.exit(main())
