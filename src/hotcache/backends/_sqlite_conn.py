"""SQLite connections: one per thread, fork-safe, with errors translated in one place.

Three hazards live here so that the backend above can ignore them:

- a connection must not cross ``fork()``: SQLite keeps per-file state (lock
  counts, the WAL index mapping) per process, keyed by inode, and a connection a
  child opens would share that state with any inherited one, without holding the
  file locks it records (fcntl locks do not survive ``fork()``). So ``fork()``
  closes every connection first; each thread reopens its own on next use;
- a child forked while another thread is inside SQLite inherits SQLite's mutexes
  locked: ``fork()`` waits at a gate until no thread is inside;
- threads come and go (thread pools, ``asyncio.to_thread``): a thread's
  connection is closed when the thread ends, not kept until ``close()``.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import threading
import time
import weakref
from collections.abc import Callable, Iterator
from typing import Any

from .._errors import BackendError, BackendTimeout, BackendUnavailable

__all__ = ["FORK_GATE", "ThreadConnections", "map_exceptions", "translate"]

_FORK_WAIT = 30.0


class _ForkGate:
    """Hold ``fork()`` back while any thread of this process is inside SQLite.

    A child forked while another thread is inside SQLite inherits SQLite's
    internal mutexes locked and hangs on its first call. Every call here
    registers itself (``list.append``/``pop`` are atomic under the GIL); a fork
    first closes the gate to new calls, then waits for the running ones to return.
    """

    def __init__(self) -> None:
        self.inside: list[None] = []
        self.open = threading.Event()
        self.open.set()

    def enter(self) -> None:
        while True:
            if not self.open.is_set():
                self.open.wait(_FORK_WAIT)
            self.inside.append(None)
            if self.open.is_set():
                return
            # A fork closed the gate between the check and the append: back off.
            self.inside.pop()

    def try_enter(self) -> bool:
        """Enter only if no fork is under way; never wait."""
        self.inside.append(None)
        if self.open.is_set():
            return True
        self.inside.pop()
        return False

    def leave(self) -> None:
        self.inside.pop()

    def before_fork(self) -> bool:
        """Shut the gate; return True once no thread is inside (False: timed out)."""
        self.open.clear()
        deadline = time.monotonic() + _FORK_WAIT
        while self.inside and time.monotonic() < deadline:
            time.sleep(0.0005)
        return not self.inside

    def after_fork_in_parent(self) -> None:
        self.open.set()

    def after_fork_in_child(self) -> None:
        self.__init__()  # type: ignore[misc]


FORK_GATE = _ForkGate()


def translate(exc: sqlite3.Error) -> BackendError:
    """Return hotcache's error for a sqlite3 error (the one place that decides)."""
    text = str(exc)
    if isinstance(exc, sqlite3.OperationalError):
        if "locked" in text or "busy" in text:
            return BackendTimeout(f"sqlite: {text}")
        if "unable to open" in text or "disk I/O" in text:
            return BackendUnavailable(f"sqlite: {text}")
    return BackendError(f"sqlite: {text}")


@contextlib.contextmanager
def map_exceptions() -> Iterator[None]:
    """Run a block of SQLite calls: inside the fork gate, with errors translated."""
    FORK_GATE.enter()
    try:
        yield
    except sqlite3.Error as exc:
        raise translate(exc) from exc
    finally:
        FORK_GATE.leave()


class _Holder:
    """What a thread's local storage keeps: dropping it (thread end) closes the connection."""

    __slots__ = ("__weakref__", "conn")

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn


def _close(conn: sqlite3.Connection) -> None:
    # Finalizers can run anywhere, even inside fork() while the gate is shut by
    # the very thread running them: never wait there, close the connection later.
    if not FORK_GATE.try_enter():
        _deferred.append(conn)
        return
    try:
        conn.close()
    except sqlite3.Error:
        pass
    finally:
        _open_conns.discard(conn)
        FORK_GATE.leave()


def _close_deferred() -> None:
    # Bounded, and safe against another thread emptying the list first: a close
    # that is deferred again (a fork under way) waits for a later call.
    for _ in range(len(_deferred)):
        try:
            conn = _deferred.pop()
        except IndexError:
            return
        _close(conn)


_deferred: list[sqlite3.Connection] = []

# Every connection opened here and not yet closed, whichever thread, pool or
# deferred-close list holds it: added and removed inside the gate, so a fork (which
# waits until no thread is inside) sees exactly the connections still open.
_open_conns: set[sqlite3.Connection] = set()

# Connections a forked child inherited because the fork could not close them (a
# thread stayed inside SQLite past the gate's deadline): kept referenced and never
# closed there, since closing one could roll back or checkpoint through the shared
# WAL index behind the parent's back.
_inherited: list[sqlite3.Connection] = []
_pools: weakref.WeakSet[ThreadConnections] = weakref.WeakSet()


class ThreadConnections:
    """One connection per thread to one file; ``setup`` runs once, on the first one."""

    def __init__(
        self, path: str, busy_ms: int, setup: Callable[[sqlite3.Connection], None]
    ) -> None:
        self.path = path
        self._busy_ms = busy_ms
        self._setup = setup
        self._ready = False
        self._closed = False
        self._local = threading.local()
        self._live: dict[int, tuple[sqlite3.Connection, weakref.finalize[Any, Any]]] = {}
        self._lock = threading.Lock()
        _pools.add(self)

    def get(self) -> sqlite3.Connection:
        """Return this thread's connection, opening it on first use."""
        try:
            return self._local.holder.conn  # type: ignore[no-any-return]
        except AttributeError:
            return self._open()

    def _open(self) -> sqlite3.Connection:
        _close_deferred()
        if self._closed:
            raise BackendUnavailable("sqlite: the cache is closed")
        # check_same_thread=False only so close() and thread-end finalizers may
        # close a connection; each one is otherwise used by the thread that opened it.
        conn = sqlite3.connect(
            self.path, timeout=self._busy_ms / 1000, isolation_level=None, check_same_thread=False
        )
        try:
            conn.execute(f"PRAGMA busy_timeout = {self._busy_ms}")
            self._enable_wal(conn)
            conn.execute("PRAGMA synchronous = NORMAL")
            if not self._ready:
                # Lazily, so a locked or broken file fails calls (open or raise, as
                # configured) instead of the constructor.
                self._setup(conn)
                self._ready = True
        except BaseException:
            conn.close()
            raise
        _open_conns.add(conn)
        holder = _Holder(conn)
        # The finalizer holds the pool weakly: a cache dropped without close() frees
        # its pool, the pool's thread-locals, the holders, and so the connections.
        finalizer = weakref.finalize(holder, _drop, weakref.ref(self), id(conn), conn)
        with self._lock:
            self._live[id(conn)] = (conn, finalizer)
        self._local.holder = holder
        return conn

    def _enable_wal(self, conn: sqlite3.Connection) -> None:
        """Switch the file to WAL, waiting while another opener switches it.

        On a fresh file several processes race to change the journal mode, and
        SQLite answers the losers "database is locked" at once, without busy_timeout.
        """
        deadline = time.monotonic() + self._busy_ms / 1000
        while True:
            try:
                conn.execute("PRAGMA journal_mode = WAL")
                return
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) or time.monotonic() >= deadline:
                    raise
            time.sleep(0.005)

    @property
    def open_count(self) -> int:
        """How many connections are open (one per live thread that used the file)."""
        return len(self._live)

    def close(self) -> None:
        """Close every thread's connection; later calls raise ``BackendUnavailable``."""
        self._closed = True
        with self._lock:
            live, self._live = list(self._live.values()), {}
        for conn, finalizer in live:
            finalizer.detach()
            _close(conn)
        self._local = threading.local()

    def _drop_all_before_fork(self) -> None:
        # No thread is inside the gate, so none is using or opening a connection;
        # the connections themselves are closed by _close_all_before_fork(). Every
        # thread's holder goes with the old thread-local, so each opens a new one.
        # No lock: _drop() (the only writer outside the gate) just pops from _live.
        for _conn, finalizer in list(self._live.values()):
            finalizer.detach()
        self._live = {}
        self._local = threading.local()

    def _forget_after_fork(self) -> None:
        for conn, finalizer in self._live.values():
            finalizer.detach()
            _inherited.append(conn)
        self._live = {}
        # Another thread may have held the lock at fork time; the child needs its own.
        self._lock = threading.Lock()
        self._local = threading.local()


def _drop(pool_ref: weakref.ref[ThreadConnections], ident: int, conn: sqlite3.Connection) -> None:
    """Close a connection whose thread ended (or whose pool was dropped)."""
    pool = pool_ref()
    if pool is not None:
        with pool._lock:
            pool._live.pop(ident, None)
    _close(conn)


def _close_all_before_fork() -> None:
    """Close every connection of this process, so that none crosses the fork.

    A child's own connection to a file would otherwise reuse the per-inode state of
    the inherited ones: their WAL-index mapping and lock counts, but not the fcntl
    locks behind them. Holding no lock on the ``-shm`` file, the child looks absent
    to the parent, whose next first connection re-initialises the WAL index
    (truncating ``-shm`` under the child's mapping: SIGBUS) while the child uses it.
    """
    if not FORK_GATE.before_fork():
        return  # a thread is still inside SQLite: closing under it is worse
    for pool in list(_pools):
        pool._drop_all_before_fork()
    for conn in list(_open_conns):
        try:
            conn.close()
        except sqlite3.Error:
            pass
    _open_conns.clear()
    _deferred.clear()  # all closed now


def _forget_connections_after_fork() -> None:
    FORK_GATE.after_fork_in_child()
    # Only if the gate timed out before the fork (see _close_all_before_fork).
    _inherited.extend(_open_conns)
    _open_conns.clear()
    _deferred.clear()
    for pool in list(_pools):
        pool._forget_after_fork()


os.register_at_fork(
    before=_close_all_before_fork,
    after_in_parent=FORK_GATE.after_fork_in_parent,
    after_in_child=_forget_connections_after_fork,
)
