"""Write-through: the save path stores what it saved, so the next read hits and
is current (docs/patterns.md).

A @cached reader and a @cache.writes saver share one key template; a failed
save deletes the entry rather than leave a value the database may not hold.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, replace

import hotcache

cache = hotcache.Cache("memory://", namespace="example-write-through")


@dataclass(frozen=True)
class Profile:
    id: int
    name: str
    email: str


class Database:
    """A stand-in for the real database: it counts reads and refuses bad rows."""

    def __init__(self) -> None:
        self.rows = {7: Profile(7, "Grace", "grace@example.com")}
        self.reads = 0

    def load(self, profile_id: int) -> Profile:
        self.reads += 1
        return self.rows[profile_id]

    def save(self, profile: Profile) -> Profile:
        if "@" not in profile.email:
            raise ValueError(f"bad email {profile.email!r}")
        self.rows[profile.id] = profile
        return profile


db = Database()


@cache.cached(key="profile:{profile_id}", ttl=600)
def get_profile(profile_id: int) -> Profile:
    """Read-through: loads on a miss."""
    return db.load(profile_id)


@cache.writes(key="profile:{profile.id}", ttl=600)
def save_profile(profile: Profile) -> Profile:
    """Write-through: saves, then stores the saved row under the reader's key."""
    return db.save(profile)


@cache.writes(key=lambda profile: f"profile:{profile.id}", ttl=600)
async def save_profile_async(profile: Profile) -> Profile:
    """The same for async code (a key callable instead of a template)."""
    await asyncio.sleep(0)  # an async database driver, say
    return db.save(profile)


def main() -> None:
    with cache:
        cache.clear()
        grace = get_profile(7)
        assert grace.name == "Grace" and db.reads == 1

        # The save writes the database, then the entry: the next read hits, and is new.
        saved = save_profile(replace(grace, name="Grace Hopper"))
        assert saved.name == "Grace Hopper"
        assert get_profile(7) == saved
        assert db.reads == 1  # no reload after the write
        assert cache.get("profile:7") == saved  # the template is the key itself

        # A failed save deletes the entry: a stale copy is worse than a miss.
        try:
            save_profile(replace(saved, email="not an email"))
        except ValueError:
            pass
        else:
            raise AssertionError("the save should have failed")
        assert cache.get("profile:7", hotcache.MISSING) is hotcache.MISSING
        assert get_profile(7) == saved  # reloaded from the database
        assert db.reads == 2

        # The same through the async saver, and through write_through directly.
        renamed = asyncio.run(save_profile_async(replace(saved, name="Rear Admiral Hopper")))
        assert get_profile(7) == renamed and db.reads == 2
        ada = Profile(8, "Ada", "ada@example.com")
        assert cache.write_through("profile:8", lambda: db.save(ada), ttl=600) == ada
        assert get_profile(8) == ada and db.reads == 2

        # Compare cache-aside's write: delete, and let the next read reload.
        db.save(replace(ada, name="Ada Lovelace"))
        assert get_profile.invalidate(8) is True
        assert get_profile(8).name == "Ada Lovelace" and db.reads == 3
        print("write-through ok:", db.reads, "database reads")


if __name__ == "__main__":
    main()
