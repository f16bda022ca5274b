"""TTL and jitter: entries written together should not all expire together
(docs/patterns.md#ttl-and-jitter).

A warm-up writes 1,000 entries at once with a 60 s ttl. Without jitter every
one of them expires in the same second, and every reader misses at that
moment and goes to the database (the thundering herd). With the default
jitter (±10 %) their expiries spread over 54 to 66 s.
"""

from __future__ import annotations

from collections import Counter

import hotcache

N = 1000
TTL = 60.0


def warm(cache: hotcache.Cache, **options: float) -> Counter[int]:
    """Fill N entries at once; return how many expire in each second from now."""
    for n in range(N):
        cache.get_or_set(f"product:{n}", lambda: {"price": 3}, ttl=TTL, **options)
    expiries: Counter[int] = Counter()
    for n in range(N):
        left = cache.ttl(f"product:{n}")
        assert isinstance(left, float)
        expiries[int(left)] += 1
    return expiries


def main() -> None:
    # Jitter off: one second holds every expiry.
    exact = warm(hotcache.Cache("memory://", jitter=0))
    assert len(exact) <= 2 and max(exact.values()) >= N // 2, exact  # one second, or two

    # The default, ±10 %: about a thirteenth of the entries expire in any one second.
    spread = warm(hotcache.Cache("memory://"))
    assert min(spread) >= 53 and max(spread) <= 65, spread
    assert len(spread) >= 10, spread
    assert max(spread.values()) < N // 4, spread  # no second carries a herd

    # Per call and per function overrides.
    cache = hotcache.Cache("memory://", jitter=0.25)
    assert cache.settings.jitter == 0.25
    cache.get_or_set("token", lambda: "abc", ttl=TTL, jitter=0)
    left = cache.ttl("token")
    assert isinstance(left, float) and TTL - 1 < left <= TTL  # exact, on purpose

    @cache.cached(ttl=TTL, jitter=0)
    def exchange_rate(currency: str) -> float:
        return 1.1

    exchange_rate("USD")
    assert exchange_rate.get_cached("USD") == 1.1

    # Calls where you chose a lifetime on purpose keep it exact.
    cache.set("session", "s1", ttl=TTL)
    left = cache.ttl("session")
    assert isinstance(left, float) and TTL - 1 < left <= TTL

    # FOREVER and 0 are never jittered: forever stays forever, 0 stores nothing.
    cache.get_or_set("config", lambda: {"debug": False}, ttl=hotcache.FOREVER)
    assert cache.ttl("config") is None
    assert cache.get_or_set("now", lambda: 1, ttl=0) == 1
    assert cache.get("now", hotcache.MISSING) is hotcache.MISSING

    # A jitter of 1 or more would allow lifetimes of 0: refused.
    try:
        hotcache.Cache("memory://", jitter=1.0)
    except hotcache.ConfigError:
        pass
    else:
        raise AssertionError("jitter=1.0 should be refused")

    print(
        "ttl and jitter ok: without jitter",
        max(exact.values()),
        "entries expire in one second; with it at most",
        max(spread.values()),
    )


if __name__ == "__main__":
    main()
