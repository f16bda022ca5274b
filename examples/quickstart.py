"""The README quickstart, runnable: cache-aside over the embedded default."""

from __future__ import annotations

import os
import sys
import tempfile

import hotcache


def main(url: str) -> None:
    with hotcache.Cache(url, namespace="quickstart", default_ttl=300) as cache:
        cache.clear()
        calls = []

        def load_user() -> dict[str, object]:
            calls.append(1)
            return {"id": 42, "name": "Ada"}

        user = cache.get_or_set("user:42", load_user)  # miss: runs the producer
        again = cache.get_or_set("user:42", load_user)  # hit: no producer call
        assert user == again == {"id": 42, "name": "Ada"} and len(calls) == 1

        cache.set("maybe", None)  # a cached None is a value, not a miss
        assert cache.get("maybe", hotcache.MISSING) is None
        assert cache.get("absent", hotcache.MISSING) is hotcache.MISSING

        assert cache.incr("visits") == 1 and cache.incr("visits", 10) == 11
        assert cache.add("lock:job", "me", ttl=30) and not cache.add("lock:job", "you")
        cache.set_many({"a": 1, "b": [2]}, ttl=60)
        assert cache.get_many(["a", "b", "c"]) == {"a": 1, "b": [2]}
        print("quickstart ok:", cache.stats()["hits"], "hits")


if __name__ == "__main__":
    if len(sys.argv) > 1:
        main(sys.argv[1])
    else:
        with tempfile.TemporaryDirectory() as tmp:
            main(f"sqlite:///{os.path.join(tmp, 'quickstart.db')}")
