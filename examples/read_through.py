"""Read-through with @cache.cached: callers call a loader and never see a key
(docs/decorator.md).

Shows argument keys, a method keyed by its instance, a cached None, a cached
error, the controls (invalidate, refresh, get_cached, clear_cache, uncached),
clear_cache racing a running call, and an async def on a sync Cache.
"""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import hotcache

cache = hotcache.Cache("memory://", namespace="example-read-through")
queries: list[str] = []
PRICES = {"tea": 3.0, "coffee": 4.5}


@cache.cached(ttl=300)
def price(sku: str, currency: str = "EUR") -> float:
    """Keyed by the function's name and its bound arguments."""
    queries.append(f"price {sku} {currency}")
    return PRICES[sku] if currency == "EUR" else PRICES[sku] * 1.1


@cache.cached(ttl=300)
def find_sku(name: str) -> str | None:
    """None ("no such product") is cached like any value."""
    queries.append(f"find {name}")
    return name if name in PRICES else None


class NotFound(LookupError):
    """Raised by the upstream for a product it does not know."""


@cache.cached(ttl=300, cache_errors=(NotFound,), error_ttl=30)
def description(sku: str) -> str:
    """A NotFound is cached for 30 s: the upstream is not asked again meanwhile."""
    queries.append(f"describe {sku}")
    if sku not in PRICES:
        raise NotFound(sku)
    return f"a cup of {sku}"


class Shop:
    """A method whose result depends on the instance: the key must name it."""

    def __init__(self, region: str, markup: float) -> None:
        self.region = region
        self.markup = markup

    @cache.cached(key="shop:{self.region}:price:{sku}", ttl=300)
    def local_price(self, sku: str) -> float:
        queries.append(f"local {self.region} {sku}")
        return PRICES[sku] * self.markup


@cache.cached(ttl=300)
async def stock(sku: str) -> int:
    """An async def on a sync Cache runs on its async twin."""
    queries.append(f"stock {sku}")
    await asyncio.sleep(0)  # an HTTP call, say
    return 12


def count(prefix: str) -> int:
    return sum(q.startswith(prefix) for q in queries)


def check_keys() -> None:
    assert price("tea") == 3.0
    assert price("tea", "EUR") == price(sku="tea") == price("tea", currency="EUR") == 3.0
    assert count("price") == 1  # four spellings of one call
    assert round(price("tea", "USD"), 2) == 3.3
    assert count("price") == 2  # another currency, another entry


def check_none_and_errors() -> None:
    assert find_sku("water") is None
    assert find_sku("water") is None
    assert count("find") == 1
    assert find_sku.get_cached("water") is None  # a cached None...
    assert find_sku.get_cached("juice") is hotcache.MISSING  # ...is not a miss

    for _ in range(3):
        try:
            description("water")
        except NotFound:
            pass
        else:
            raise AssertionError("description('water') should raise NotFound")
    assert count("describe") == 1  # raised three times, asked once


def check_methods() -> None:
    north, south = Shop("north", 1.0), Shop("south", 2.0)
    assert north.local_price("tea") == 3.0
    assert south.local_price("tea") == 6.0  # not north's entry: the key names the region
    assert north.local_price("tea") == 3.0
    assert count("local") == 2
    assert cache.get("shop:south:price:tea") == 6.0  # a template is the key itself
    assert south.local_price.invalidate("tea") is True
    assert south.local_price.get_cached("tea") is hotcache.MISSING
    assert north.local_price.get_cached("tea") == 3.0


def check_controls() -> None:
    PRICES["coffee"] = 4.5
    assert price("coffee") == 4.5
    PRICES["coffee"] = 5.0
    assert price("coffee") == 4.5  # still cached
    assert price.uncached("coffee") == 5.0  # the function itself
    assert price.refresh("coffee") == 5.0  # recomputed and stored
    assert price.get_cached("coffee") == 5.0
    assert price.invalidate("coffee") is True
    assert price.invalidate("coffee") is False  # already gone
    assert price.get_cached("coffee") is hotcache.MISSING

    before = count("price")
    price("tea")  # a hit: cached since check_keys
    price("coffee")  # a miss: loads
    assert count("price") == before + 1
    price.clear_cache()  # one write, however many entries
    assert price.get_cached("tea") is hotcache.MISSING
    assert price.get_cached("coffee") is hotcache.MISSING
    price("tea")
    assert count("price") == before + 2  # tea loads again


def check_clear_cache_during_a_call() -> None:
    """A call running while clear_cache() happens never stores a servable result."""
    started, cleared = threading.Event(), threading.Event()

    @cache.cached(ttl=300)
    def report(day: str) -> dict[str, Any]:
        snapshot = dict(PRICES)  # read the data...
        if day == "monday":
            started.set()
            assert cleared.wait(10)  # ...while someone else changes it and clears
        return snapshot

    report("sunday")  # the function has served before
    results: list[dict[str, Any]] = []
    worker = threading.Thread(target=lambda: results.append(report("monday")))
    worker.start()
    assert started.wait(10)
    PRICES["tea"] = 3.5
    report.clear_cache()
    cleared.set()
    worker.join(10)
    assert results[0]["tea"] == 3.0  # the running call returned what it read...
    assert report.get_cached("monday") is hotcache.MISSING  # ...but it is never served
    assert report("monday")["tea"] == 3.5


async def check_async() -> None:
    assert await stock("tea") == 12
    assert await stock("tea") == 12
    assert count("stock") == 1
    assert await stock.get_cached("tea") == 12
    await stock.clear_cache()
    assert await stock.get_cached("tea") is hotcache.MISSING


def main() -> None:
    with cache:
        cache.clear()
        check_keys()
        check_none_and_errors()
        check_methods()
        check_controls()
        check_clear_cache_during_a_call()
        asyncio.run(check_async())
        print("read-through ok:", len(queries), "loads,", cache.stats()["hits"], "hits")


if __name__ == "__main__":
    main()
