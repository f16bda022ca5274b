"""Run the benchmarks at smoke size so they cannot rot (their numbers are not checked)."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import redis

BENCH = Path(__file__).resolve().parent.parent / "bench"
RUN = BENCH / "run.py"

# The scenarios issues 2 and 3 set targets for: they must stay in the table.
TARGETED = ("memory get hit", "redis get hit", "redis get_many", "sqlite get hit")
# Issue 3's warm ``@cache.cached`` call: scenario prefix -> (rival prefix, target).
DECORATOR_TARGETS = {
    "cached warm call, memory": ("@cachetools.cached", 1.3),
    "cached warm call, redis": ("redis-py cache-aside", 1.1),
}
# Issue 4's local hit: ``Cache(redis_url, local=True).get`` within 2x of ``TTLCache.get``.
LOCAL_TARGETS = {"local get hit, redis": ("cachetools TTLCache.get", 2.0)}


@pytest.fixture
def coherence(monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    """bench/coherence_scenarios.py, imported as run.py imports it."""
    monkeypatch.syspath_prepend(str(BENCH))
    import coherence_scenarios

    return coherence_scenarios


def _bench(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(RUN), *args], capture_output=True, text=True, timeout=60
    )


def test_bench_quick_prints_every_scenario(
    redis_url: str, tmp_path: Path, coherence: ModuleType
) -> None:
    listed = _bench("--list")
    assert listed.returncode == 0, listed.stderr
    names = listed.stdout.splitlines()
    assert len(names) >= 18

    out = tmp_path / "bench.json"
    done = _bench("--quick", "--redis-url", redis_url, "--json", str(out))
    assert done.returncode == 0, done.stderr

    table = [line for line in done.stdout.splitlines() if line.startswith("| ")]
    for name in names:
        assert any(line.startswith(f"| {name} ") for line in table), name
    report = json.loads(out.read_text())
    rows = report["rows"]
    sections = {row["scenario"] for row in report["propagation"] + report["workload"]}
    crowds = {row["scenario"] for row in report["stampede"]}
    assert {row["scenario"] for row in rows} | sections | crowds == set(names)
    assert sections == set(coherence.SECTIONS)
    # Issue 5's stampede: hotcache, naive cache-aside and dogpile.cache on one cold
    # key, with hotcache's targets; the killed holder's lease, taken over.
    cold = [r for r in report["stampede"] if r["scenario"] == "stampede, cold key"]
    assert len(cold) == 3 and sum(r["target"] is not None for r in cold) == 1
    assert all(r["callers"] > 1 and r["producer_calls"] >= 1 for r in report["stampede"])
    for row in rows:
        assert row["hotcache_ns"] > 0 and row["rival_ns"] > 0
        assert math.isfinite(row["ratio"]) and row["ratio"] > 0
    for prefix in TARGETED:
        assert any(r["scenario"].startswith(prefix) and r["target"] for r in rows), prefix
    for prefix, (rival, target) in DECORATOR_TARGETS.items():
        for payload in ("dict", "str"):
            name = f"{prefix} ({payload})"
            targeted = [r for r in rows if r["scenario"] == name and r["target"] is not None]
            assert [(r["rival"].startswith(rival), r["target"]) for r in targeted] == [
                (True, target)
            ], name
            assert any(
                line.startswith(f"| {name} ") and f"<= {target:.2f}x" in line for line in table
            ), name
    for prefix, (rival, target) in LOCAL_TARGETS.items():
        for payload in ("dict", "str"):
            name = f"{prefix} ({payload})"
            targeted = [(r["rival"], r["target"]) for r in rows if r["scenario"] == name]
            assert (rival, target) in targeted, name
            assert [t for _, t in targeted].count(None) == len(targeted) - 1, name
    _check_coherence_sections(report, done.stdout, coherence)


def _check_coherence_sections(report: dict[str, Any], stdout: str, coherence: ModuleType) -> None:
    """The multi-process sections: every row printed, sized, consistent and targeted."""
    sizes = coherence.COHERENCE_QUICK
    printed = stdout.splitlines()
    for row in report["propagation"]:
        assert row["changes"] == sizes.changes
        assert 0 <= row["p50_us"] <= row["p99_us"] <= row["max_us"] < 60e6, row
        assert any(line.startswith(f"| {row['scenario']} ") for line in printed)
    targeted = {r["scenario"]: r["target_us"] for r in report["propagation"] if r["target_us"]}
    assert targeted == {
        "propagation, redis (reader releases the GIL)": 5000.0,
        "propagation, redis invalidation=pubsub": 5000.0,
    }
    assert any("p99 <= 5,000 µs" in line for line in printed)

    workload = report["workload"]
    assert [r["contender"] for r in workload] == [
        "hotcache Cache(redis_url, local=True)",
        "hotcache Cache(redis_url, local=False)",
        "cachetools TTLCache(ttl=5) + redis-py cache-aside",
    ]
    for row in workload:
        assert row["ops"] == sizes.ops and row["ns_per_op"] > 0 and row["ops_per_s"] > 0
        # Every process's reads are counted (95 % of its operations, give or take).
        assert 0.85 * 2 * sizes.ops < row["reads"] < 2 * sizes.ops, row
        assert 0 <= row["stale_late"] <= row["stale"] <= row["reads"], row
        assert (row["longest_ms"] > 0) == (row["stale"] > 0), row
    # hotcache must serve nothing stale past the propagation bound; the rival is context.
    assert [r["target"] for r in workload] == [0, 0, None]
    assert workload[1]["stale"] == 0, "Redis alone is linearizable: no stale read at all"


def test_bench_leaves_no_keys_behind(redis_url: str) -> None:
    done = _bench("--quick", "--redis-url", redis_url, "--only", "redis")
    assert done.returncode == 0, done.stderr
    client = redis.Redis.from_url(redis_url)
    try:
        assert client.dbsize() == 0
    finally:
        client.close()


def test_stale_reads_are_found_with_their_lag(coherence: ModuleType) -> None:
    """The workload's checker: a read is stale once a newer write has returned."""
    writes = [
        (1.0, 2.0, 7, 10),  # key 7: version 10 written over [1, 2]
        (3.0, 4.0, 7, 11),  # then version 11 over [3, 4]
        (3.5, 5.0, 8, 12),  # key 8: version 12 over [3.5, 5]
    ]
    reads = [
        (0.5, 7, 0),  # the seed, before any write: fine
        (2.5, 7, 0),  # the seed, 0.5 s after version 10 returned: stale
        (3.5, 7, 10),  # version 10 while 11 is being written: fine
        (4.25, 7, 10),  # version 10, 0.25 s after 11 returned: stale
        (4.5, 7, 11),  # fine
        (4.0, 8, 0),  # version 12 not returned yet: fine
        (6.0, 8, 0),  # one second after it returned: stale
    ]
    assert coherence.stale_lags(reads, writes) == [0.5, 0.25, 1.0]
    with pytest.raises(ValueError, match="nobody wrote"):
        coherence.stale_lags([(1.0, 7, 99)], writes)
