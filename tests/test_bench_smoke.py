"""Run the benchmarks at smoke size so they cannot rot (their numbers are not checked)."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import redis

RUN = Path(__file__).resolve().parent.parent / "bench" / "run.py"

# The scenarios issue 2 sets targets for: they must stay in the table.
TARGETED = ("memory get hit", "redis get hit", "redis get_many", "sqlite get hit")


def _bench(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(RUN), *args], capture_output=True, text=True, timeout=60
    )


def test_bench_quick_prints_every_scenario(redis_url: str, tmp_path: Path) -> None:
    listed = _bench("--list")
    assert listed.returncode == 0, listed.stderr
    names = listed.stdout.splitlines()
    assert len(names) >= 12

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


def test_bench_leaves_no_keys_behind(redis_url: str) -> None:
    done = _bench("--quick", "--redis-url", redis_url, "--only", "redis")
    assert done.returncode == 0, done.stderr
    client = redis.Redis.from_url(redis_url)
    try:
        assert client.dbsize() == 0
    finally:
        client.close()
