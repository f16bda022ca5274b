"""What the sync and async Redis backends share: connection settings, error
mapping, scripts and glob translation. The I/O itself is in ``_async/redis.py``
(and its generated twin ``_sync/redis.py``)."""

from __future__ import annotations

import contextlib
import json
import ssl
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import redis
import redis.asyncio
import redis.asyncio.retry
import redis.retry
from redis.backoff import NoBackoff

from .._errors import BackendError, BackendTimeout, BackendUnavailable
from .._url import ParsedURL

__all__ = [
    "DRIVER_ERRORS",
    "GET_WITH_PTTL",
    "INCR_WITH_TTL",
    "PERSIST_IF_EXISTS",
    "AsyncDriver",
    "Driver",
    "SyncDriver",
    "make_client",
    "map_exceptions",
    "pairs_with_ttl",
    "redis_glob",
    "translate",
]

DEFAULT_TIMEOUT = 0.25
DEFAULT_MAX_CONNECTIONS = 50
DEFAULT_RETRIES = 1

# INCRBY creates missing keys; the ttl applies only to a counter this call created,
# and a ttl of 0 ms (ttl=0: "not stored") removes it at once.
INCR_WITH_TTL = """
local created = redis.call('EXISTS', KEYS[1]) == 0
local value = redis.call('INCRBY', KEYS[1], ARGV[1])
if created then
    if ARGV[2] == '0' then redis.call('DEL', KEYS[1])
    else redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
end
return value
"""

# Values and milliseconds left, in one round trip; a key holding a hash (GET
# fails) reads as absent, as MGET has it. PTTL: -1 no expiry, -2 absent.
GET_WITH_PTTL = """
local out = {}
for i, key in ipairs(KEYS) do
    local value = redis.pcall('GET', key)
    if type(value) == 'table' and value.err then value = false end
    out[2 * i - 1] = value
    out[2 * i] = value and redis.call('PTTL', key) or -2
end
return out
"""

# PERSIST answers 0 for a key that exists without a ttl; touch must answer 1.
# ARGV: value, token, px ('' for no expiry), digest of what KEYS[1] must hold ('': absent).
SET_LEASED = """
if redis.pcall('GET', KEYS[2]) ~= ARGV[2] then return 0 end
local now = redis.pcall('GET', KEYS[1])
if type(now) == 'table' then return 0 end
if (now and redis.sha1hex(now) or '') ~= ARGV[4] then return 0 end
if ARGV[3] == '' then redis.call('SET', KEYS[1], ARGV[1])
else redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[3]) end
redis.call('DEL', KEYS[2])
return 1
"""

# pcall: a key holding a hash (WRONGTYPE for GET) simply does not match.
DELETE_IF = """
if redis.pcall('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""

TOUCH_IF = """
if redis.pcall('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return 0
"""

PERSIST_IF_EXISTS = """
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
redis.call('PERSIST', KEYS[1])
return 1
"""


@dataclass(frozen=True)
class Driver:
    """The redis-py classes of one face: ``redis`` for sync, ``redis.asyncio`` for async."""

    client: Any
    pool: Any
    tcp: Any
    tls: Any
    unix: Any
    retry: Any


AsyncDriver = Driver(
    redis.asyncio.Redis,
    redis.asyncio.BlockingConnectionPool,
    redis.asyncio.Connection,
    redis.asyncio.SSLConnection,
    redis.asyncio.UnixDomainSocketConnection,
    redis.asyncio.retry.Retry,
)
SyncDriver = Driver(
    redis.Redis,
    redis.BlockingConnectionPool,
    redis.Connection,
    redis.SSLConnection,
    redis.UnixDomainSocketConnection,
    redis.retry.Retry,
)


def make_client(url: ParsedURL, options: Mapping[str, Any], driver: Driver) -> Any:
    """Return a redis-py client for a parsed URL and its options.

    Timeouts are short and retries few on purpose: the cache is an optimisation,
    and redis-py's defaults (seconds, with retries) would stall every request
    while Redis is away. The pool blocks (up to the timeout) for a free
    connection instead of refusing the call past ``max_connections``: more
    concurrent callers than connections is load, not an outage.
    """
    timeout = options.get("timeout", DEFAULT_TIMEOUT)
    kwargs: dict[str, Any] = {
        "socket_timeout": timeout,
        "socket_connect_timeout": options.get("connect_timeout", DEFAULT_TIMEOUT),
        "retry": driver.retry(
            NoBackoff(),
            options.get("retries", DEFAULT_RETRIES),
            # No TimeoutError here: a hung server must cost one timeout, not two.
            # (Not retry_on_timeout=False: redis-py >= 6 warns on any use of it.)
            supported_errors=(redis.exceptions.ConnectionError, ConnectionResetError),
        ),
        "db": options.get("db", 0),
        "username": url.username,
        "password": options.get("password", url.password),
        "health_check_interval": options.get("health_check_interval", 0),
    }
    if url.scheme == "unix":
        connection_class, kwargs["path"] = driver.unix, url.path
    else:
        connection_class = driver.tls if url.scheme == "rediss" else driver.tcp
        kwargs["host"], kwargs["port"] = url.host, url.port
    if url.scheme == "rediss":
        kwargs["ssl_cert_reqs"] = options.get("ssl_cert_reqs", "required")
        for name in ("ssl_ca_certs", "ssl_certfile", "ssl_keyfile", "ssl_check_hostname"):
            if name in options:
                kwargs[name] = options[name]
    if "client_name" in options:
        kwargs["client_name"] = options["client_name"]
    if "protocol" in options:
        kwargs["protocol"] = int(options["protocol"])
    pool = driver.pool(
        connection_class=connection_class,
        max_connections=options.get("max_connections", DEFAULT_MAX_CONNECTIONS),
        timeout=timeout,
        **kwargs,
    )
    return driver.client.from_pool(pool)


def leased_args(value: bytes, ttl: float | None, token: bytes, seen: str) -> list[Any]:
    """Return the ARGV of ``SET_LEASED``."""
    return [value, token, "" if ttl is None else milliseconds(ttl), seen]


def tls_context(options: Mapping[str, Any]) -> ssl.SSLContext:
    """Return the TLS context of a ``rediss://`` URL's options, with redis-py's
    defaults (certificates required, host names checked), for connections
    hotcache opens itself (the invalidation feed)."""
    context = ssl.create_default_context(cafile=options.get("ssl_ca_certs"))
    reqs = options.get("ssl_cert_reqs", "required")
    context.check_hostname = reqs != "none" and options.get("ssl_check_hostname", True)
    context.verify_mode = {
        "required": ssl.CERT_REQUIRED,
        "optional": ssl.CERT_OPTIONAL,
        "none": ssl.CERT_NONE,
    }[reqs]
    if "ssl_certfile" in options:
        context.load_cert_chain(options["ssl_certfile"], options.get("ssl_keyfile"))
    return context


DRIVER_ERRORS = (redis.exceptions.RedisError, OSError)


def translate(exc: BaseException) -> Exception:
    """Return hotcache's error for a redis-py or socket error (the one place that decides)."""
    text = str(exc)
    if isinstance(exc, (redis.exceptions.TimeoutError, TimeoutError)):
        return BackendTimeout(f"redis: {text or 'timed out'}")
    if isinstance(exc, redis.exceptions.MaxConnectionsError) or (
        isinstance(exc, redis.exceptions.ConnectionError) and "No connection available" in text
    ):
        # Every pooled connection stayed busy for the whole timeout: the caller fails
        # open, but Redis answered fine, so this is no reason to open the breaker.
        return BackendError(f"redis: every connection of the pool is busy ({text})")
    if isinstance(exc, (redis.exceptions.ConnectionError, OSError)):
        return BackendUnavailable(f"redis: {text}")
    if isinstance(exc, redis.exceptions.ResponseError) and (
        "not an integer" in text or "overflow" in text
    ):
        return ValueError(f"the stored value is not an integer or would overflow: {text}")
    return BackendError(f"redis: {text}")


@contextlib.contextmanager
def map_exceptions() -> Iterator[None]:
    """Run a block of Redis calls with driver errors translated."""
    try:
        yield
    except DRIVER_ERRORS as exc:
        raise translate(exc) from exc


def redis_glob(pattern: str) -> str:
    """Translate the portable glob dialect to Redis's (backslash escapes, ``[^``).

    Portable (fnmatch, SQLite): no backslash escapes, ``[!..]`` or ``[^..]`` negate,
    and a ``]`` first in a class is literal (``[]]``). Redis ends a class at the
    first ``]`` and escapes with a backslash, so ``[]]`` must become ``[\\]]``.
    """
    out: list[str] = []
    i, n = 0, len(pattern)
    while i < n:
        char = pattern[i]
        i += 1
        if char == "\\":
            out.append("\\\\")
            continue
        if char != "[":
            out.append(char)
            continue
        start = i + 1 if pattern[i : i + 1] in ("!", "^") else i
        end = pattern.find("]", start + 1 if pattern[start : start + 1] == "]" else start)
        if end < 0:  # no closing bracket: a literal "[", as fnmatch reads it
            out.append("\\[")
            continue
        body = pattern[start:end].replace("\\", "\\\\").replace("]", "\\]")
        out.append("[" + ("^" if start > i else "") + body + "]")
        i = end + 1
    return "".join(out)


# Redis refuses a PX/PEXPIRE past LLONG_MAX milliseconds from now; a ttl of
# sys.maxsize seconds must still store (as memory and SQLite do): cap it at ~285,000 years.
MAX_MILLISECONDS = 2**53


def milliseconds(ttl: float) -> int:
    """Return a positive whole number of milliseconds for a ttl in seconds."""
    return max(1, min(round(ttl * 1000), MAX_MILLISECONDS))


def pairs_with_ttl(reply: Sequence[Any]) -> list[tuple[bytes, float | None] | None]:
    """Turn ``GET_WITH_PTTL``'s flat reply into ``(value, seconds left)`` pairs."""
    out: list[tuple[bytes, float | None] | None] = []
    for i in range(0, len(reply), 2):
        value, pttl = reply[i], int(reply[i + 1])
        if value is None or pttl == -2:
            out.append(None)
        else:
            out.append((bytes(value), None if pttl == -1 else max(pttl, 0) / 1000))
    return out


# -- invalidation by pub/sub (``invalidation=pubsub``) ---------------------------------
#
# Where a server refuses client tracking (a proxy, a managed service that disables
# CLIENT), every hotcache write names the keys it changed on one channel per
# database, in the same round trip, and each process's feed subscribes to it.


def invalidation_channel(options: Mapping[str, Any]) -> str:
    """Return the channel changes are announced on (channels span databases)."""
    return f"__hotcache__:invalidations:{options.get('db', 0)}"


def announcement(keys: Sequence[str] | None) -> bytes:
    """Return the message naming changed keys (``None``: too many to name; flush)."""
    return json.dumps(None if keys is None else list(keys)).encode("ascii")


def announced_keys(data: bytes) -> list[str] | None:
    """Return the keys a message names, or ``None`` for a flush (also if unreadable:
    the safe reading of a message that cannot be understood).
    """
    try:
        keys = json.loads(data)
    except ValueError:
        return None
    if isinstance(keys, list) and all(isinstance(key, str) for key in keys):
        return keys
    return None
