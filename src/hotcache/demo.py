"""``hotcache demo``: a slow SQLite table read through the cache, cold versus warm.

The data source is a ``products`` table in a temporary SQLite database of its own
(never the cache file) whose every query pays an artificial delay. A seeded,
Zipf-distributed request stream reads rows through ``Cache.get_or_set`` and now
and then updates a row: the write goes to the source first, then either writes
the fresh row through to the cache or invalidates its entry. Every value read
through the cache is compared with the source's current row, so the demo proves
correctness as well as speed.
"""

from __future__ import annotations

import itertools
import math
import os
import random
import sqlite3
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TextIO

from ._sync.cache import Cache

__all__ = ["DemoConfig", "DemoResult", "PhaseResult", "format_report", "run_demo"]

DEMO_NAMESPACE = "hotcache-demo"
Row = dict[str, Any]


@dataclass(frozen=True)
class DemoConfig:
    """What the demo runs against and how much traffic it sends."""

    url: str | None = None
    namespace: str = DEMO_NAMESPACE
    requests: int = 1000
    latency_ms: float = 20.0
    rows: int = 400
    write_ratio: float = 0.03
    zipf_s: float = 1.1
    seed: int = 42

    def __post_init__(self) -> None:
        if self.requests < 1:
            raise ValueError("requests must be >= 1")
        if self.rows < 1:
            raise ValueError("rows must be >= 1")
        if not (self.latency_ms >= 0 and math.isfinite(self.latency_ms)):
            raise ValueError("latency_ms must be a finite number >= 0")
        if not 0 <= self.write_ratio < 1:
            raise ValueError("write_ratio must be in [0, 1)")


class SlowSource:
    """A SQLite ``products`` table whose every query sleeps ``latency`` seconds first."""

    def __init__(self, path: str, rows: int, latency: float, rng: random.Random) -> None:
        self.latency = latency
        self.queries = 0
        self._rng = rng
        self._db = sqlite3.connect(path)
        self._db.execute(
            "CREATE TABLE products (id INTEGER PRIMARY KEY, name TEXT NOT NULL,"
            " price_cents INTEGER NOT NULL, stock INTEGER NOT NULL, version INTEGER NOT NULL)"
        )
        self._db.executemany(
            "INSERT INTO products VALUES (?, ?, ?, ?, 1)",
            [
                (i, f"product-{i:04d}", rng.randrange(100, 100_000), rng.randrange(0, 500))
                for i in range(1, rows + 1)
            ],
        )
        self._db.commit()

    def _select(self, product_id: int) -> Row | None:
        found = self._db.execute(
            "SELECT id, name, price_cents, stock, version FROM products WHERE id = ?",
            (product_id,),
        ).fetchone()
        if found is None:
            return None
        keys = ("id", "name", "price_cents", "stock", "version")
        return dict(zip(keys, found, strict=True))

    def fetch(self, product_id: int) -> Row | None:
        """Read one row the slow way, as the application would."""
        self.queries += 1
        time.sleep(self.latency)
        return self._select(product_id)

    def truth(self, product_id: int) -> Row | None:
        """Read the current row without the delay: the reference for the stale check."""
        return self._select(product_id)

    def update(self, product_id: int) -> Row | None:
        """Change a row's price and stock the slow way; return the new row."""
        self.queries += 1
        time.sleep(self.latency)
        self._db.execute(
            "UPDATE products SET price_cents = ?, stock = ?, version = version + 1 WHERE id = ?",
            (self._rng.randrange(100, 100_000), self._rng.randrange(0, 500), product_id),
        )
        self._db.commit()
        return self._select(product_id)

    def close(self) -> None:
        self._db.close()


class Progress:
    """A plain-text progress bar on a TTY (redrawn with ``\\r``), else a few plain lines."""

    WIDTH = 30

    def __init__(self, stream: TextIO, label: str, total: int) -> None:
        self.stream = stream
        self.label = label
        self.total = max(total, 1)
        self.done = 0
        self.tty = _isatty(stream)
        self._start = time.perf_counter()
        self._drawn = -1.0
        self._next_quarter = 1

    def advance(self) -> None:
        self.done += 1
        if self.tty:
            now = time.perf_counter()
            # Redrawing on every request would cost more than a cache hit.
            if now - self._drawn >= 0.05 or self.done == self.total:
                self._drawn = now
                self._draw()
        elif self.done * 4 >= self._next_quarter * self.total and self._next_quarter < 4:
            pct = 25 * self._next_quarter
            self._next_quarter += 1
            self.stream.write(f"hotcache demo: {self.label} {pct}% ({self.done}/{self.total})\n")
            self.stream.flush()

    def _draw(self) -> None:
        filled = self.WIDTH * self.done // self.total
        bar = "#" * filled + "." * (self.WIDTH - filled)
        elapsed = time.perf_counter() - self._start
        self.stream.write(
            f"\r{self.label:<5} [{bar}] {self.done:>5}/{self.total:<5} {elapsed:5.1f}s"
        )
        self.stream.flush()

    def finish(self) -> None:
        elapsed = time.perf_counter() - self._start
        if self.tty:
            if self.done < self.total:
                self._draw()
            self.stream.write("\n")
        else:
            self.stream.write(
                f"hotcache demo: {self.label} done ({self.done}/{self.total}, {elapsed:.1f}s)\n"
            )
        self.stream.flush()


def _isatty(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


@dataclass
class PhaseResult:
    """Latencies (seconds) of the reads of one phase and how many went to the source."""

    name: str
    latencies: list[float] = field(default_factory=list)
    source_reads: int = 0

    @property
    def reads(self) -> int:
        return len(self.latencies)

    @property
    def hit_ratio(self) -> float:
        return 1 - self.source_reads / self.reads if self.reads else 0.0

    def percentile(self, p: float) -> float:
        """Return the nearest-rank ``p``-th percentile latency in seconds."""
        if not self.latencies:
            return 0.0
        ordered = sorted(self.latencies)
        rank = max(1, math.ceil(p / 100 * len(ordered)))
        return ordered[rank - 1]

    @property
    def mean(self) -> float:
        return sum(self.latencies) / len(self.latencies) if self.latencies else 0.0


@dataclass
class DemoResult:
    """Everything the report prints."""

    config: DemoConfig
    where: str
    cold: PhaseResult
    warm: PhaseResult
    write_through: int = 0
    invalidations: int = 0
    stale_reads: int = 0
    swept: int = 0
    seconds: float = 0.0
    cache_stats: dict[str, int] = field(default_factory=dict)


def request_stream(config: DemoConfig, rng: random.Random) -> list[tuple[str, int]]:
    """Return ``(op, product_id)`` pairs: Zipf-popular ids, a share of them writes."""
    ids = list(range(1, config.rows + 1))
    # Popularity rank is shuffled so the hot products are not simply ids 1, 2, 3...
    rng.shuffle(ids)
    weights = itertools.accumulate(1 / (rank**config.zipf_s) for rank in range(1, len(ids) + 1))
    chosen = rng.choices(ids, cum_weights=list(weights), k=config.requests)
    return [("write" if rng.random() < config.write_ratio else "read", pid) for pid in chosen]


def describe(cache: Cache) -> str:
    """Return where ``cache`` lives, for humans, without any secret."""
    url = cache.settings.url
    if url.scheme == "sqlite" and url.redacted == "sqlite://":
        return f"embedded default (SQLite file {url.path})"
    return url.redacted


def _key(product_id: int) -> str:
    return f"product:{product_id}"


def run_demo(config: DemoConfig, progress: TextIO | None = None) -> DemoResult:
    """Run the cold and the warm phase and return what was measured.

    Raises:
        CacheError: the cache URL is invalid or its backend is unreachable.
    """
    progress = progress if progress is not None else sys.stderr
    rng = random.Random(config.seed)
    stream = request_stream(config, rng)
    started = time.perf_counter()
    # on_error="raise": a demo against an unreachable server should say so at once,
    # not fail open and time a run of misses.
    with (
        tempfile.TemporaryDirectory(prefix="hotcache-demo-") as tmp,
        Cache(config.url, namespace=config.namespace, on_error="raise") as cache,
    ):
        source = SlowSource(
            os.path.join(tmp, "source.db"), config.rows, config.latency_ms / 1000, rng
        )
        try:
            result = DemoResult(config, describe(cache), PhaseResult("cold"), PhaseResult("warm"))
            cache.clear()  # reruns start cold
            read = _reader(cache, source, result)

            first_seen = list(dict.fromkeys(pid for _, pid in stream))
            bar = Progress(progress, "cold", len(first_seen))
            for pid in first_seen:
                read(result.cold, pid)
                bar.advance()
            bar.finish()

            bar = Progress(progress, "warm", len(stream))
            for op, pid in stream:
                if op == "read":
                    read(result.warm, pid)
                else:
                    _write(cache, source, result, pid)
                bar.advance()
            bar.finish()

            result.cache_stats = cache.stats()  # before the sweep's own reads
            result.swept, stale = _sweep(cache, source, config.rows)
            result.stale_reads += stale
        finally:
            source.close()
    result.seconds = time.perf_counter() - started
    return result


def _reader(
    cache: Cache, source: SlowSource, result: DemoResult
) -> Callable[[PhaseResult, int], None]:
    def read(phase: PhaseResult, pid: int) -> None:
        before = source.queries
        t0 = time.perf_counter()
        value = cache.get_or_set(_key(pid), lambda: source.fetch(pid))
        phase.latencies.append(time.perf_counter() - t0)
        phase.source_reads += source.queries - before
        if value != source.truth(pid):
            result.stale_reads += 1

    return read


def _write(cache: Cache, source: SlowSource, result: DemoResult, pid: int) -> None:
    """Update the source first, then refresh (write-through) or drop the cache entry."""
    row = source.update(pid)
    # Every fourth write invalidates instead, so both ways of keeping the cache
    # correct after a write are exercised (and the next read of that id misses).
    if (result.write_through + result.invalidations) % 4 == 3:
        cache.delete(_key(pid))
        result.invalidations += 1
    else:
        cache.set(_key(pid), row)
        result.write_through += 1


def _sweep(cache: Cache, source: SlowSource, rows: int) -> tuple[int, int]:
    """Compare every cached entry with the source; return (entries checked, stale)."""
    ids = list(range(1, rows + 1))
    cached = cache.get_many([_key(pid) for pid in ids])
    stale = sum(1 for pid in ids if _key(pid) in cached and cached[_key(pid)] != source.truth(pid))
    return len(cached), stale


def _ms(seconds: float) -> str:
    ms = seconds * 1000
    return f"{ms:.3f}" if ms < 10 else f"{ms:.2f}" if ms < 100 else f"{ms:.1f}"


def _ratio(slow: float, fast: float) -> str:
    if fast <= 0:
        return "-"
    ratio = slow / fast
    return f"{ratio:.0f}x" if ratio >= 10 else f"{ratio:.1f}x"


def format_report(result: DemoResult) -> str:
    """Return the report as text: the setup, the latency table, the correctness check."""
    c = result.config
    cold, warm = result.cold, result.warm
    header = ("phase", "reads", "source reads", "hit ratio", "p50 ms", "p99 ms", "mean ms")
    rows = [
        header,
        *(
            (
                phase.name,
                str(phase.reads),
                str(phase.source_reads),
                f"{phase.hit_ratio:.1%}",
                _ms(phase.percentile(50)),
                _ms(phase.percentile(99)),
                _ms(phase.mean),
            )
            for phase in (cold, warm)
        ),
        (
            "speed-up",
            "",
            "",
            "",
            _ratio(cold.percentile(50), warm.percentile(50)),
            _ratio(cold.percentile(99), warm.percentile(99)),
            _ratio(cold.mean, warm.mean),
        ),
    ]
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    table = [
        "  ".join(
            cell.ljust(widths[i]) if i == 0 else cell.rjust(widths[i]) for i, cell in enumerate(row)
        ).rstrip()
        for row in rows
    ]
    table.insert(1, "  ".join("-" * w for w in widths))
    writes = result.write_through + result.invalidations
    lines = [
        f"hotcache demo on {result.where}, namespace {c.namespace!r}",
        f"source: SQLite table of {c.rows} products, {c.latency_ms:g} ms per query",
        f"stream: {c.requests} requests, Zipf s={c.zipf_s:g}, seed {c.seed}, "
        f"{c.write_ratio:.0%} writes",
        "cold: the first read of each id the stream asks for, cache empty",
        "warm: the whole stream replayed through the filled cache",
        "",
        *table,
        "",
        f"writes: {writes} ({result.write_through} written through, "
        f"{result.invalidations} invalidated)",
        f"final sweep: {result.swept} cached entries compared with the source",
        "cache counters: "
        + ", ".join(
            f"{name}={result.cache_stats.get(name, 0)}"
            for name in ("hits", "misses", "sets", "deletes", "errors")
        ),
        f"stale reads: {result.stale_reads}",
        f"total time: {result.seconds:.1f}s",
    ]
    return "\n".join(lines)


def main(config: DemoConfig, out: TextIO | None = None, err: TextIO | None = None) -> int:
    """Run the demo and print its report; return 0, or 1 if any read was stale."""
    out = out if out is not None else sys.stdout
    err = err if err is not None else sys.stderr
    result = run_demo(config, progress=err)
    out.write(format_report(result) + "\n")
    out.flush()
    return 1 if result.stale_reads else 0
