"""``sqlite:///path.db``: the embedded backend, one file shared by every process.

WAL mode lets readers run beside one writer; each write is one ``BEGIN
IMMEDIATE`` transaction (so lock upgrades never deadlock), each multi-key
operation is one transaction, and ``busy_timeout`` makes contending processes
wait instead of failing. Connections are per thread and are closed before a
``fork()`` (each thread reopens its own). Lifetimes are wall-clock times
(``time.time()``) because several processes compare them. Size is bounded by
``max_bytes``/``max_entries``: expired entries go first, then the least recently
stored.
"""

from __future__ import annotations

import contextlib
import math
import os
import sqlite3
import struct
import time
from collections.abc import Iterator, Mapping, Sequence

from .._core.envelope import add_to_counter, payload_digest
from .._errors import ConfigError
from ._common import compile_glob, wrong_type
from ._sqlite_conn import FORK_GATE, ThreadConnections, map_exceptions, translate

__all__ = ["SQLiteBackend"]

DEFAULT_MAX_BYTES = 1 << 30
PLAIN, HASH = 0, 1
_PURGE_EVERY = 64
_PURGE_BATCH = 256
_DELETE_BATCH = 1000
# The change log keeps this many changes; a reader further behind starts over.
CHANGES_KEPT = 50_000
# A reader this many changes behind is told to start over rather than be sent them.
CHANGES_SENT = 10_000
_NEWEST_CHANGE = "SELECT COALESCE((SELECT seq FROM sqlite_sequence WHERE name = 'hc_changes'), 0)"
_LEN = struct.Struct("!I")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS hc_entries (
    key TEXT PRIMARY KEY NOT NULL,
    value BLOB NOT NULL,
    kind INTEGER NOT NULL DEFAULT 0,
    expires_at REAL,
    stored_at REAL NOT NULL,
    size INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS hc_entries_expiry ON hc_entries(expires_at)
    WHERE expires_at IS NOT NULL;
CREATE INDEX IF NOT EXISTS hc_entries_stored ON hc_entries(stored_at);
CREATE TABLE IF NOT EXISTS hc_meta (name TEXT PRIMARY KEY NOT NULL, value INTEGER NOT NULL);
INSERT OR IGNORE INTO hc_meta VALUES ('count', 0), ('bytes', 0), ('evictions', 0);
CREATE TRIGGER IF NOT EXISTS hc_entries_insert AFTER INSERT ON hc_entries BEGIN
    UPDATE hc_meta SET value = value + 1 WHERE name = 'count';
    UPDATE hc_meta SET value = value + NEW.size WHERE name = 'bytes';
END;
CREATE TRIGGER IF NOT EXISTS hc_entries_delete AFTER DELETE ON hc_entries BEGIN
    UPDATE hc_meta SET value = value - 1 WHERE name = 'count';
    UPDATE hc_meta SET value = value - OLD.size WHERE name = 'bytes';
END;
CREATE TRIGGER IF NOT EXISTS hc_entries_update AFTER UPDATE OF size ON hc_entries BEGIN
    UPDATE hc_meta SET value = value + NEW.size - OLD.size WHERE name = 'bytes';
END;
CREATE TABLE IF NOT EXISTS hc_changes (seq INTEGER PRIMARY KEY AUTOINCREMENT, key TEXT NOT NULL);
CREATE TRIGGER IF NOT EXISTS hc_changes_insert AFTER INSERT ON hc_entries BEGIN
    INSERT INTO hc_changes (key) VALUES (NEW.key);
END;
CREATE TRIGGER IF NOT EXISTS hc_changes_update AFTER UPDATE ON hc_entries BEGIN
    INSERT INTO hc_changes (key) VALUES (NEW.key);
END;
CREATE TRIGGER IF NOT EXISTS hc_changes_delete AFTER DELETE ON hc_entries BEGIN
    INSERT INTO hc_changes (key) VALUES (OLD.key);
END;
"""

_LIVE = "(expires_at IS NULL OR expires_at > ?)"
_GET = f"SELECT value, kind FROM hc_entries WHERE key = ? AND {_LIVE}"
# A live plain value equal to the one given (delete_if, touch_if).
_HOLDING = f"key = ? AND value = ? AND kind = {PLAIN} AND {_LIVE}"
_UPSERT = (
    "INSERT INTO hc_entries (key, value, kind, expires_at, stored_at, size) "
    "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value, "
    "kind = excluded.kind, expires_at = excluded.expires_at, "
    "stored_at = excluded.stored_at, size = excluded.size"
)
_UPSERT_IF_DEAD = (
    _UPSERT + " WHERE hc_entries.expires_at IS NOT NULL AND hc_entries.expires_at <= ?"
)


# key, value, kind, expires_at, stored_at, size: the columns _UPSERT writes.
_Row = tuple[str, bytes, int, float | None, float, int]


def _row(
    key: str, value: bytes, kind: int, ttl: float | None = None, *, expires: float | None = None
) -> _Row:
    """Return the row storing ``value``: expiring ``ttl`` seconds from now, or at ``expires``."""
    now = time.time()
    if ttl is not None:
        expires = now + ttl
    return (key, value, kind, expires, now, len(key) + len(value))


def _create_schema(conn: sqlite3.Connection) -> None:
    try:
        conn.executescript("BEGIN IMMEDIATE;" + _SCHEMA + "COMMIT;")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise


def pack_hash(fields: Mapping[str, bytes]) -> bytes:
    out = bytearray()
    for name, value in fields.items():
        raw = name.encode("utf-8")
        out += _LEN.pack(len(raw)) + raw + _LEN.pack(len(value)) + value
    return bytes(out)


def unpack_hash(blob: bytes) -> dict[str, bytes]:
    fields, pos = {}, 0
    while pos < len(blob):
        (size,) = _LEN.unpack_from(blob, pos)
        name = blob[pos + 4 : pos + 4 + size].decode("utf-8")
        pos += 4 + size
        (size,) = _LEN.unpack_from(blob, pos)
        fields[name] = blob[pos + 4 : pos + 4 + size]
        pos += 4 + size
    return fields


class SQLiteBackend:
    """Bytes in one SQLite file, safe for many threads and processes at once."""

    remote = True

    def __init__(
        self,
        path: str,
        *,
        max_entries: int | None = None,
        max_bytes: int | None = None,
        busy_timeout: float = 10.0,
    ) -> None:
        if path in {":memory:", ""} or path.startswith("file::memory:"):
            raise ConfigError(
                "an in-memory SQLite database is private to one connection: use memory://"
            )
        self.path = os.path.abspath(os.path.expanduser(path))
        self.max_entries = max_entries
        self.max_bytes = max_bytes or DEFAULT_MAX_BYTES
        self._writes = 0
        self._prepare_file()
        self._pool = ThreadConnections(self.path, int(busy_timeout * 1000), _create_schema)
        self._conn = self._pool.get

    def _prepare_file(self) -> None:
        folder = os.path.dirname(self.path)
        try:
            os.makedirs(folder, mode=0o700, exist_ok=True)
            # Payloads may be pickles: only this user may read or write them.
            os.close(os.open(self.path, os.O_CREAT | os.O_RDWR, 0o600))
        except OSError as exc:
            raise ConfigError(f"cannot create the SQLite cache file {self.path}: {exc}") from None

    @contextlib.contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        """Run a block in one IMMEDIATE transaction, then enforce the bounds."""
        with map_exceptions():
            conn = self._conn()
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield conn
                self._writes += 1
                if self._writes % _PURGE_EVERY == 0:
                    self._purge_expired(conn, _PURGE_BATCH)
                    conn.execute(
                        f"DELETE FROM hc_changes WHERE seq <= ({_NEWEST_CHANGE}) - ?",
                        (CHANGES_KEPT,),
                    )
                self._enforce_bounds(conn)
                conn.execute("COMMIT")
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise

    def _purge_expired(self, conn: sqlite3.Connection, limit: int) -> int:
        return conn.execute(
            "DELETE FROM hc_entries WHERE key IN (SELECT key FROM hc_entries "
            "WHERE expires_at <= ? LIMIT ?)",
            (time.time(), limit),
        ).rowcount

    def _enforce_bounds(self, conn: sqlite3.Connection) -> None:
        count, size = self._totals(conn)
        if size <= self.max_bytes and (self.max_entries is None or count <= self.max_entries):
            return
        self._purge_expired(conn, 1 << 30)
        evicted = 0
        while True:
            count, size = self._totals(conn)
            over_entries = 0 if self.max_entries is None else count - self.max_entries
            if over_entries <= 0 and size <= self.max_bytes:
                break
            batch = max(over_entries, 1 if size <= self.max_bytes else 16)
            evicted += conn.execute(
                "DELETE FROM hc_entries WHERE key IN "
                "(SELECT key FROM hc_entries ORDER BY stored_at LIMIT ?)",
                (batch,),
            ).rowcount
        conn.execute("UPDATE hc_meta SET value = value + ? WHERE name = 'evictions'", (evicted,))

    @staticmethod
    def _totals(conn: sqlite3.Connection) -> tuple[int, int]:
        rows = dict(
            conn.execute("SELECT name, value FROM hc_meta WHERE name IN ('count', 'bytes')")
        )
        return rows["count"], rows["bytes"]

    @property
    def evictions(self) -> int:
        with map_exceptions():
            row = self._conn().execute("SELECT value FROM hc_meta WHERE name = 'evictions'")
            return int(row.fetchone()[0])

    # -- the change log (what keeps other processes' in-process tiers coherent) ------

    def data_version(self) -> int:
        """Return this thread's connection's ``PRAGMA data_version``: it changes when
        another connection (any process) commits to the file."""
        # map_exceptions() inlined: this runs before every read the local tier serves.
        FORK_GATE.enter()
        try:
            return self._conn().execute("PRAGMA data_version").fetchone()[0]  # type: ignore[no-any-return]
        except sqlite3.Error as exc:
            raise translate(exc) from exc
        finally:
            FORK_GATE.leave()

    def changes_since(self, seq: int | None) -> tuple[int, list[str] | None]:
        """Return the newest change's number and the keys changed after ``seq``.

        Every insert, update and delete of an entry (writes, deletes, touches,
        evictions, purges) is logged by a trigger in its own transaction. The
        keys are ``None`` when they cannot be given: ``seq`` is ``None`` (the
        reader starts now), the log was pruned past ``seq``, or too much changed.
        """
        with map_exceptions():
            conn = self._conn()
            conn.execute("BEGIN")
            try:
                newest = int(conn.execute(_NEWEST_CHANGE).fetchone()[0])
                if seq is None or newest <= seq:
                    return newest, None if seq is None else []
                rows = conn.execute(
                    "SELECT seq, key FROM hc_changes WHERE seq > ? ORDER BY seq LIMIT ?",
                    (seq, CHANGES_SENT + 1),
                ).fetchall()
            finally:
                conn.execute("COMMIT")
        if not rows or rows[0][0] != seq + 1 or len(rows) > CHANGES_SENT:
            return newest, None
        # One key per change, repeats kept: the local tier counts them (a write
        # tells its own change of a key from another writer's that way).
        return newest, [key for _, key in rows]

    # -- plain values ---------------------------------------------------------------

    def get(self, key: str) -> bytes | None:
        # map_exceptions() inlined: this is the hot path.
        FORK_GATE.enter()
        try:
            row = self._conn().execute(_GET, (key, time.time())).fetchone()
        except sqlite3.Error as exc:
            raise translate(exc) from exc
        finally:
            FORK_GATE.leave()
        if row is None:
            return None
        if row[1] != PLAIN:
            raise wrong_type(key)
        return row[0]  # type: ignore[no-any-return]

    def get_many(self, keys: Sequence[str]) -> list[bytes | None]:
        found = self._rows(keys)
        return [None if (row := found.get(key)) is None else row[0] for key in keys]

    def get_many_with_ttl(self, keys: Sequence[str]) -> list[tuple[bytes, float | None] | None]:
        now = time.time()
        found = self._rows(keys)
        return [
            None
            if (row := found.get(key)) is None
            else (row[0], None if row[1] is None else max(0.0, row[1] - now))
            for key in keys
        ]

    def _rows(self, keys: Sequence[str]) -> dict[str, tuple[bytes, float | None]]:
        """Return ``{key: (value, expires_at)}`` of the live plain entries among ``keys``."""
        found: dict[str, tuple[bytes, float | None]] = {}
        now = time.time()
        with map_exceptions():
            conn = self._conn()
            unique = list(dict.fromkeys(keys))
            # One read transaction: every chunk sees the same snapshot.
            conn.execute("BEGIN")
            try:
                for start in range(0, len(unique), 500):
                    chunk = unique[start : start + 500]
                    marks = ",".join("?" * len(chunk))
                    rows = conn.execute(
                        f"SELECT key, value, expires_at FROM hc_entries WHERE key IN ({marks}) "
                        f"AND kind = {PLAIN} AND {_LIVE}",
                        (*chunk, now),
                    )
                    found.update((key, (value, expires)) for key, value, expires in rows)
            finally:
                conn.execute("COMMIT")
        return found

    def set(self, key: str, value: bytes, ttl: float | None = None, *, nx: bool = False) -> bool:
        row = _row(key, value, PLAIN, ttl)
        with self._write() as conn:
            if not nx:
                return self._upsert(conn, [row])
            if row[-1] > self.max_bytes:
                return False
            return conn.execute(_UPSERT_IF_DEAD, (*row, row[-2])).rowcount > 0

    def set_leased(
        self, key: str, value: bytes, ttl: float | None, lease: str, token: bytes, seen: str
    ) -> bool:
        row = _row(key, value, PLAIN, ttl)
        with self._write() as conn:
            now = conn.execute(_GET, (key, time.time())).fetchone()
            if now is not None and now[1] != PLAIN:
                return False
            if payload_digest(None if now is None else bytes(now[0])) != seen:
                return False
            sql = f"DELETE FROM hc_entries WHERE {_HOLDING}"  # spend the lease
            if conn.execute(sql, (lease, token, time.time())).rowcount == 0:
                return False
            return self._upsert(conn, [row])

    def set_many(self, items: Mapping[str, bytes], ttl: float | None = None) -> None:
        rows = [_row(key, value, PLAIN, ttl) for key, value in items.items()]
        with self._write() as conn:
            self._upsert(conn, rows)

    def _upsert(self, conn: sqlite3.Connection, rows: list[_Row]) -> bool:
        """Store the rows that fit ``max_bytes``; return True if every one did.

        A row too big on its own is refused (as memory does) and its key removed:
        storing it would evict every other entry, then itself.
        """
        fits = [row for row in rows if row[-1] <= self.max_bytes]
        conn.executemany(_UPSERT, fits)
        if len(fits) == len(rows):
            return True
        too_big = [(row[0],) for row in rows if row[-1] > self.max_bytes]
        conn.executemany("DELETE FROM hc_entries WHERE key = ?", too_big)
        return False

    def delete(self, key: str) -> bool:
        with self._write() as conn:
            return self._delete_live(conn, [key]) > 0

    def delete_many(self, keys: Sequence[str]) -> int:
        with self._write() as conn:
            return self._delete_live(conn, list(dict.fromkeys(keys)))

    @staticmethod
    def _delete_live(conn: sqlite3.Connection, keys: list[str]) -> int:
        now, live = time.time(), 0
        for start in range(0, len(keys), 500):
            chunk = keys[start : start + 500]
            marks = ",".join("?" * len(chunk))
            live += conn.execute(
                f"SELECT COUNT(*) FROM hc_entries WHERE key IN ({marks}) AND {_LIVE}",
                (*chunk, now),
            ).fetchone()[0]
            conn.execute(f"DELETE FROM hc_entries WHERE key IN ({marks})", chunk)
        return int(live)

    def exists(self, key: str) -> bool:
        with map_exceptions():
            sql = f"SELECT 1 FROM hc_entries WHERE key = ? AND {_LIVE}"
            return self._conn().execute(sql, (key, time.time())).fetchone() is not None

    def touch(self, key: str, ttl: float | None) -> bool:
        now = time.time()
        expires = None if ttl is None else now + ttl
        with self._write() as conn:
            sql = f"UPDATE hc_entries SET expires_at = ? WHERE key = ? AND {_LIVE}"
            return conn.execute(sql, (expires, key, now)).rowcount > 0

    def delete_if(self, key: str, value: bytes) -> bool:
        with self._write() as conn:
            sql = f"DELETE FROM hc_entries WHERE {_HOLDING}"
            return conn.execute(sql, (key, value, time.time())).rowcount > 0

    def touch_if(self, key: str, value: bytes, ttl: float) -> bool:
        now = time.time()
        with self._write() as conn:
            sql = f"UPDATE hc_entries SET expires_at = ? WHERE {_HOLDING}"
            return conn.execute(sql, (now + ttl, key, value, now)).rowcount > 0

    def ttl(self, key: str) -> float | None:
        now = time.time()
        with map_exceptions():
            sql = f"SELECT expires_at FROM hc_entries WHERE key = ? AND {_LIVE}"
            row = self._conn().execute(sql, (key, now)).fetchone()
        if row is None:
            return None
        return math.inf if row[0] is None else max(0.0, row[0] - now)

    def incr(self, key: str, delta: int, ttl: float | None = None) -> int:
        with self._write() as conn:
            now = time.time()
            row = conn.execute(
                f"SELECT value, kind, expires_at FROM hc_entries WHERE key = ? AND {_LIVE}",
                (key, now),
            ).fetchone()
            if row is not None and row[1] != PLAIN:
                raise wrong_type(key)
            value, encoded = add_to_counter(None if row is None else row[0], delta)
            if row is None:
                conn.execute(_UPSERT, _row(key, encoded, PLAIN, ttl))
            else:  # a running counter keeps its expiry
                conn.execute(_UPSERT, _row(key, encoded, PLAIN, expires=row[2]))
            return value

    # -- patterns -------------------------------------------------------------------

    @staticmethod
    def _matching(
        conn: sqlite3.Connection, pattern: str, after: str, limit: int, *, live: bool
    ) -> tuple[list[str], str | None]:
        """Return the next keys after ``after`` that match, and the last key read."""
        sql = "SELECT key FROM hc_entries WHERE key GLOB ? AND key > ?"
        args: tuple[object, ...] = (pattern, after)
        if live:
            sql, args = f"{sql} AND {_LIVE}", (*args, time.time())
        keys = [row[0] for row in conn.execute(f"{sql} ORDER BY key LIMIT ?", (*args, limit))]
        # SQLite's GLOB stops comparing at a NUL character; the regex is exact.
        match = compile_glob(pattern).match
        return [key for key in keys if match(key)], (keys[-1] if keys else None)

    def scan(self, pattern: str, count: int = 500) -> Iterator[list[str]]:
        after: str | None = ""
        while after is not None:
            with map_exceptions():
                batch, after = self._matching(self._conn(), pattern, after, count, live=True)
            if batch:
                yield batch

    def delete_matching(self, pattern: str) -> int:
        deleted = 0
        after: str | None = ""
        while after is not None:
            # Short transactions: other processes write between the batches.
            with self._write() as conn:
                batch, after = self._matching(conn, pattern, after, _DELETE_BATCH, live=False)
                deleted += self._delete_live(conn, batch)
        return deleted

    # -- hashes ---------------------------------------------------------------------

    def _read_hash(
        self, conn: sqlite3.Connection, key: str
    ) -> tuple[dict[str, bytes], float | None] | None:
        row = conn.execute(
            f"SELECT value, kind, expires_at FROM hc_entries WHERE key = ? AND {_LIVE}",
            (key, time.time()),
        ).fetchone()
        if row is None:
            return None
        if row[1] != HASH:
            raise wrong_type(key)
        try:
            return unpack_hash(row[0]), row[2]
        except (struct.error, UnicodeDecodeError):
            return None  # a corrupt hash reads as absent; the next hset replaces it

    def _write_hash(
        self, conn: sqlite3.Connection, key: str, fields: dict[str, bytes], expires: float | None
    ) -> None:
        if not fields:
            conn.execute("DELETE FROM hc_entries WHERE key = ?", (key,))
            return
        self._upsert(conn, [_row(key, pack_hash(fields), HASH, expires=expires)])

    def hset(self, key: str, mapping: Mapping[str, bytes]) -> int:
        with self._write() as conn:
            found = self._read_hash(conn, key)
            fields, expires = found if found is not None else ({}, None)
            added = sum(1 for name in mapping if name not in fields)
            fields.update(mapping)
            self._write_hash(conn, key, fields, expires)
            return added

    def hget(self, key: str, field: str) -> bytes | None:
        with map_exceptions():
            found = self._read_hash(self._conn(), key)
        return None if found is None else found[0].get(field)

    def hgetall(self, key: str) -> dict[str, bytes]:
        with map_exceptions():
            found = self._read_hash(self._conn(), key)
        return {} if found is None else found[0]

    def hdel(self, key: str, fields: Sequence[str]) -> int:
        with self._write() as conn:
            found = self._read_hash(conn, key)
            if found is None:
                return 0
            current, expires = found
            removed = sum(1 for name in set(fields) if current.pop(name, None) is not None)
            if removed:
                self._write_hash(conn, key, current, expires)
            return removed

    def close(self) -> None:
        """Close every connection this backend opened (in any thread)."""
        self._pool.close()
