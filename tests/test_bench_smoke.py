"""Run the benchmarks at smoke size so they cannot rot (their numbers are not checked)."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import redis

RUN = Path(__file__).resolve().parent.parent / "bench" / "run.py"

# The scenarios issues 2 and 3 set targets for: they must stay in the table.
TARGETED = ("memory get hit", "redis get hit", "redis get_many", "sqlite get hit")
# Issue 3's warm ``@cache.cached`` call: scenario prefix -> (rival prefix, target).
DECORATOR_TARGETS = {
    "cached warm call, memory": ("@cachetools.cached", 1.3),
    "cached warm call, redis": ("redis-py cache-aside", 1.1),
}


def _bench(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(RUN), *args], capture_output=True, text=True, timeout=60
    )


def test_bench_quick_prints_every_scenario(redis_url: str, tmp_path: Path) -> None:
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
    rows = json.loads(out.read_text())["rows"]
    assert {row["scenario"] for row in rows} == set(names)
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


def test_bench_leaves_no_keys_behind(redis_url: str) -> None:
    done = _bench("--quick", "--redis-url", redis_url, "--only", "redis")
    assert done.returncode == 0, done.stderr
    client = redis.Redis.from_url(redis_url)
    try:
        assert client.dbsize() == 0
    finally:
        client.close()
