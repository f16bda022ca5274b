"""Cache-aside: the application asks the cache, loads from the source on a miss,
and deletes the entry when it changes the source (docs/patterns.md).

Runs on the embedded SQLite default, under its own namespace, which it clears.
"""

from __future__ import annotations

from typing import Any

import hotcache


class Database:
    """A stand-in for the real database: a dict that counts its queries."""

    def __init__(self) -> None:
        self.rows: dict[int, dict[str, Any]] = {n: {"id": n, "name": f"user {n}"} for n in range(5)}
        self.queries = 0

    def user(self, user_id: int) -> dict[str, Any] | None:
        self.queries += 1
        return self.rows.get(user_id)

    def users(self, user_ids: list[int]) -> dict[int, dict[str, Any]]:
        self.queries += 1  # one query for the batch: WHERE id IN (...)
        return {n: self.rows[n] for n in user_ids if n in self.rows}

    def rename(self, user_id: int, name: str) -> None:
        self.queries += 1
        self.rows[user_id] = {"id": user_id, "name": name}


def get_user_long_form(cache: hotcache.Cache, db: Database, user_id: int) -> Any:
    """Every step by hand: read, load on a miss, store."""
    key = f"user:{user_id}"
    user = cache.get(key, hotcache.MISSING)  # MISSING, not None: None is a value
    if user is hotcache.MISSING:
        user = db.user(user_id)
        cache.set(key, user, ttl=300)
    return user


def get_user(cache: hotcache.Cache, db: Database, user_id: int) -> Any:
    """The same three steps in one call."""
    return cache.get_or_set(f"user:{user_id}", lambda: db.user(user_id), ttl=300)


def get_users(cache: hotcache.Cache, db: Database, user_ids: list[int]) -> dict[int, Any]:
    """A batch: one round trip to read, one query for what was missing, one to store."""
    found = cache.get_many([f"user:{n}" for n in user_ids])
    out = {n: found[f"user:{n}"] for n in user_ids if f"user:{n}" in found}
    missing = [n for n in user_ids if n not in out]
    if missing:
        loaded = db.users(missing)
        cache.set_many({f"user:{n}": row for n, row in loaded.items()}, ttl=300)
        out.update(loaded)
    return out


def rename_user(cache: hotcache.Cache, db: Database, user_id: int, name: str) -> None:
    """Write the source first, then drop the entry: the next read reloads."""
    db.rename(user_id, name)
    cache.delete(f"user:{user_id}")


def main() -> None:
    with hotcache.Cache(namespace="example-cache-aside") as cache:
        cache.clear()
        try:
            db = Database()

            assert get_user_long_form(cache, db, 1) == {"id": 1, "name": "user 1"}
            assert get_user_long_form(cache, db, 1) == {"id": 1, "name": "user 1"}
            assert db.queries == 1  # the second read was a hit

            # get_or_set shares the entry: same key, same value, no query.
            assert get_user(cache, db, 1) == {"id": 1, "name": "user 1"}
            assert db.queries == 1

            # "No such user" is cached too: a cached None is a value, not a miss.
            assert get_user(cache, db, 99) is None
            assert get_user(cache, db, 99) is None
            assert db.queries == 2
            assert cache.get("user:99", hotcache.MISSING) is None
            assert cache.get("user:98", hotcache.MISSING) is hotcache.MISSING

            # A batch: user 1 is cached, 2 and 3 are loaded in one query.
            users = get_users(cache, db, [1, 2, 3])
            assert sorted(users) == [1, 2, 3]
            assert db.queries == 3
            assert get_users(cache, db, [1, 2, 3]) == users
            assert db.queries == 3  # all hits now

            # A write: the entry is dropped, the next read sees the new row.
            rename_user(cache, db, 1, "Ada")
            assert cache.get("user:1", hotcache.MISSING) is hotcache.MISSING
            assert get_user(cache, db, 1) == {"id": 1, "name": "Ada"}
            assert db.queries == 5  # the rename and the reload
            print("cache-aside ok:", db.queries, "queries,", cache.stats()["hits"], "hits")
        finally:
            cache.clear()


if __name__ == "__main__":
    main()
