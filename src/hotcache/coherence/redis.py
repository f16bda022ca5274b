"""Coherence with Redis: server-assisted client tracking, read by one thread.

A dedicated connection speaks RESP3 and turns on ``CLIENT TRACKING ON BCAST
PREFIX <namespace>``: Redis then pushes the name of every key under the prefix
that anyone changes (a write from any client, a delete, an expiry, an
eviction; ``None`` for a flush) on that connection. A daemon thread reads the
pushes and drops the named keys from the in-process tier.

Where the server refuses tracking, ``invalidation=pubsub`` makes the
connection subscribe to the database's invalidation channel instead, on which
every hotcache write announces its keys (``AnnouncingRedisBackend``). That
covers writes made through hotcache with the same setting, not other clients'
writes nor evictions (an entry's own expiry is kept locally anyway).

The tier serves only while this connection is up: it is suspended (emptied)
the moment the connection fails, is closed by the server, or stops answering
the thread's PINGs, and it resumes, empty, once tracking is on again on a new
connection. Nothing served locally can be older than a change whose
invalidation was lost.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections import deque
from typing import Any

from .._core.local import LocalTier
from .._url import ParsedURL
from ..backends.redis import announced_keys, tls_context
from .resp3 import Push, RespConnection, RespError

__all__ = ["RedisTrackingFeed"]

log = logging.getLogger("hotcache")

PING_EVERY = 0.5  # an idle connection is probed this often...
PING_WITHIN = 1.0  # ...and counts as lost when the answer is this late
RETRY_EVERY = 0.1  # between reconnection attempts (the tier is bypassed meanwhile)
RETRY_REFUSED = 5.0  # between attempts the server refused (no tracking there)


class RedisTrackingFeed:
    """Keep one ``LocalTier`` coherent with one Redis server."""

    def __init__(
        self,
        url: ParsedURL,
        options: Any,
        prefixes: list[str],
        tier: LocalTier[Any],
        *,
        connect_timeout: float = 0.25,
        channel: str | None = None,
    ) -> None:
        self._url = url
        self._channel = channel  # None: client tracking; else the channel to subscribe
        self._tls = tls_context(options) if url.scheme == "rediss" else None
        self._password = options.get("password", url.password)
        self._prefixes = prefixes
        self._tier = tier
        self._timeout = connect_timeout
        self._conn: RespConnection | None = None
        # One waiter per PING in flight, in order: None for the thread's own
        # probe, an Event for a barrier(). Replies come back in the same order.
        self._pings: deque[threading.Event | None] = deque()
        self._queued: deque[threading.Event] = deque()  # barriers the thread is to send
        self._send_lock = threading.Lock()
        self._fork_lock = threading.Lock()
        self.connections = 0
        """Times tracking was (re-)established."""
        self._tried = threading.Event()  # the thread's first attempt is over
        self._start()

    def ready(self) -> None:
        """Wait (at most twice the connect timeout) for the first connection: a
        cache made at start-up then serves locally from its first call."""
        self._tried.wait(self._timeout * 2)

    def _start(self) -> None:
        self._pid = os.getpid()
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=self._run, name="hotcache-invalidations", daemon=True
        )
        self._thread.start()

    def sync(self) -> bool:
        """Return True if the tier may serve (the feed keeps it current by itself)."""
        if self._pid != os.getpid():
            with self._fork_lock:
                if self._pid != os.getpid():
                    self._start()
        return self._tier.serving

    def after_fork(self) -> None:
        """In a forked child: the thread is not there; the next ``sync`` starts one
        on a connection of its own (the parent's is left to the parent)."""
        self._conn = None
        self._pings = deque()
        self._queued = deque()
        self._send_lock = threading.Lock()
        self._fork_lock = threading.Lock()

    def barrier(self, timeout: float = 1.0) -> None:
        """Return once every change made before this call has reached the tier.

        Redis sends a change's invalidation before the reply to any later
        command, so the reply to a PING sent now comes after them. Returns at
        once while the connection is down (the tier is bypassed then).
        """
        conn = self._conn
        if conn is None or not self._tier.serving:
            return
        done = threading.Event()
        if conn.tls:
            # One TLS session must not be used by two threads at once: the
            # thread sends this PING itself, woken to do so.
            self._queued.append(done)
            conn.wake()
        else:
            try:
                self._ping(conn, done)
            except OSError:
                return
        done.wait(timeout)

    def _ping(self, conn: RespConnection, waiter: threading.Event | None) -> None:
        with self._send_lock:
            self._pings.append(waiter)
            try:
                conn.send("PING")
            except BaseException:
                self._pings.pop()  # no reply will come for it
                raise

    def covers(self, key: str) -> bool:
        """Return True if changes of ``key`` reach this feed."""
        return key.startswith(tuple(self._prefixes))

    def close(self) -> None:
        """Stop the thread and drop the connection."""
        self._stop.set()
        conn = self._conn
        if conn is not None:
            if conn.tls:
                conn.wake()  # the thread closes its own TLS session
            else:
                conn.close()  # wakes the thread's blocking read
        if self._thread is not threading.current_thread():
            self._thread.join(timeout=5)
        self._tier.suspend()

    # -- the thread ---------------------------------------------------------------

    def _run(self) -> None:
        try:
            self._loop()
        finally:
            self._tier.suspend()  # whatever ended the thread, nothing is served unheard

    def _loop(self) -> None:
        down_logged = False
        while not self._stop.is_set():
            try:
                conn = self._connect()
            except Exception as exc:  # refused, or unexpected: both back off
                self._tier.suspend()
                self._tried.set()
                refused = not isinstance(exc, OSError)
                if not down_logged:
                    log.warning(
                        "hotcache: invalidations from %s unavailable (%s); the local tier "
                        "is bypassed until they are back%s",
                        self._url.redacted,
                        exc,
                        "; where the server cannot track clients, set invalidation=pubsub "
                        "on every cache that writes to it"
                        if refused and self._channel is None
                        else "",
                    )
                    down_logged = True
                self._stop.wait(RETRY_REFUSED if refused else RETRY_EVERY)
                continue
            if down_logged:
                log.warning("hotcache: invalidations from %s back", self._url.redacted)
                down_logged = False
            self._conn = conn
            self.connections += 1
            try:
                self._tier.resume()
                self._tried.set()
                self._listen(conn)
            except (OSError, RespError, ConnectionError) as exc:
                if not self._stop.is_set():
                    log.warning(
                        "hotcache: invalidations from %s lost (%s); the local tier is "
                        "bypassed until they are back",
                        self._url.redacted,
                        exc,
                    )
                    down_logged = True
            except Exception:
                # A bug here must not leave the tier serving with nobody listening:
                # it is handled as a lost connection (suspend, start over).
                log.exception(
                    "hotcache: the invalidation feed from %s failed; the local tier is "
                    "bypassed until it is back",
                    self._url.redacted,
                )
                down_logged = True
            finally:
                self._tier.suspend()
                conn.close()
                self._conn = None
                with self._send_lock:
                    for waiter in (*self._pings, *self._queued):
                        if waiter is not None:
                            waiter.set()  # the tier is bypassed now: nothing to wait for
                    self._pings.clear()
                    self._queued.clear()

    def _connect(self) -> RespConnection:
        url = self._url
        conn = RespConnection.open(
            host=url.host,
            port=url.port,
            path=url.path if url.scheme == "unix" else None,
            timeout=self._timeout,
            tls=self._tls,
        )
        try:
            hello: list[str] = ["HELLO", "3"]
            if self._password is not None:
                hello += ["AUTH", url.username or "default", self._password]
            conn.call(*hello)
            if self._channel is not None:
                conn.send("SUBSCRIBE", self._channel)
                reply = conn.read()
                if not isinstance(reply, Push) or reply[:1] != [b"subscribe"]:
                    raise RespError(f"SUBSCRIBE answered {reply!r}")
                return conn
            conn.call("CLIENT", "SETNAME", "hotcache-invalidations")
            tracking = ["CLIENT", "TRACKING", "ON", "BCAST"]
            for prefix in self._prefixes:
                tracking += ["PREFIX", prefix]
            conn.call(*tracking)
        except BaseException:
            conn.close()
            raise
        return conn

    def _listen(self, conn: RespConnection) -> None:
        conn.listen(PING_EVERY)
        pinged_at: float | None = None
        while not self._stop.is_set():
            while self._queued:  # barriers on a TLS connection: sent from here
                self._ping(conn, self._queued.popleft())
            if conn.wait():
                message = conn.read()
                if isinstance(message, Push):
                    self._apply(message)
                elif message == "PONG":
                    pinged_at = None
                    waiter = self._pings.popleft() if self._pings else None
                    if waiter is not None:
                        waiter.set()
                elif isinstance(message, RespError):
                    raise message
                continue
            now = time.monotonic()
            if pinged_at is None:
                self._ping(conn, None)
                pinged_at = now
            elif now - pinged_at > PING_WITHIN:
                raise ConnectionError("the server stopped answering PING")

    def _apply(self, message: Push) -> None:
        if len(message) == 3 and message[0] == b"message":  # invalidation=pubsub
            named = announced_keys(message[2])
            if named is None:
                self._tier.flush()
            else:
                self._tier.invalidate(key for key in named if self.covers(key))
            return
        if len(message) < 2 or message[0] != b"invalidate":
            return
        keys = message[1]
        if keys is None:  # FLUSHDB / FLUSHALL
            self._tier.flush()
        else:
            self._tier.invalidate(key.decode("utf-8", "surrogateescape") for key in keys)
