"""Run hotcache and its rivals side by side and print medians and ratios as a table.

Usage: ``python bench/run.py [--quick] [--redis-url URL] [--json FILE] [--only TEXT] [--list]``

Without ``--redis-url`` a private redis-server is started on a free loopback port
(never 6379) and stopped at the end. ``--quick`` is the smoke size the test suite
runs: it checks that every scenario still works, its numbers mean little. The
multi-process scenarios of the local tier (``coherence_scenarios.SECTIONS``) print
their own tables after the main one.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import platform
import sys
import tempfile
import time
from contextlib import ExitStack
from dataclasses import asdict, dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# Measure this checkout's hotcache; reuse the tests' private redis-server helper.
sys.path[:0] = [str(ROOT / "src"), str(ROOT / "tests"), str(Path(__file__).resolve().parent)]

import cachetools  # noqa: E402
import diskcache  # noqa: E402
import redis  # noqa: E402
import redis.utils  # noqa: E402
import scenarios  # noqa: E402
from coherence_scenarios import (  # noqa: E402
    COHERENCE_FULL,
    COHERENCE_QUICK,
    COHERENCE_SCENARIOS,
    SECTIONS,
    STALE_BOUND,
    Propagation,
    WorkloadRow,
    run_sections,
)
from decorator_scenarios import DECORATOR_SCENARIOS  # noqa: E402
from harness import measure  # noqa: E402
from scenarios import FULL, QUICK, Env, Sizes  # noqa: E402
from stampede_scenarios import (  # noqa: E402
    STAMPEDE,
    STAMPEDE_FULL,
    STAMPEDE_QUICK,
    StampedeRow,
    run_stampede,
)

import hotcache  # noqa: E402
from redis_server import RedisServer  # noqa: E402

# Every scenario, in the order the table prints them; then the sections of the
# multi-process scenarios, printed after it.
SCENARIOS = {**scenarios.SCENARIOS, **DECORATOR_SCENARIOS, **COHERENCE_SCENARIOS}
if len({*SCENARIOS, *SECTIONS, *STAMPEDE}) != sum(
    map(len, [scenarios.SCENARIOS, DECORATOR_SCENARIOS, COHERENCE_SCENARIOS, SECTIONS, STAMPEDE])
):
    raise RuntimeError("two scenarios share a name")


@dataclass(frozen=True)
class Row:
    scenario: str
    hotcache: str
    hotcache_ns: float
    rival: str
    rival_ns: float
    ratio: float
    target: float | None

    @property
    def met(self) -> bool | None:
        return None if self.target is None else self.ratio <= self.target


def run_scenarios(env: Env, only: str | None) -> list[Row]:
    """Build, measure and tear down each scenario in turn; return the table rows."""
    rows: list[Row] = []
    for name, (builder, payload) in SCENARIOS.items():
        if only and only not in name:
            continue
        print(f"  {name} ...", end="", file=sys.stderr, flush=True)
        started = time.perf_counter()
        with ExitStack() as cleanup:
            own = Env(env.sizes, env.redis_url, env.tmpdir, env.loop, cleanup)
            scenario = builder(own, payload)
            measure(scenario.contenders, repeats=env.sizes.repeats, warmup=env.sizes.warmup)
        print(f" {time.perf_counter() - started:.1f}s", file=sys.stderr)
        mine = scenario.hotcache
        for rival in scenario.rivals:
            theirs = rival.contender
            rows.append(
                Row(
                    name,
                    mine.name,
                    mine.median,
                    theirs.name,
                    theirs.median,
                    mine.ratio_to(theirs),
                    rival.target,
                )
            )
    return rows


MET = {None: "-", True: "yes", False: "NO"}


def render(rows: list[Row]) -> str:
    """Return the rows as a Markdown table."""
    head = ["scenario", "hotcache ns/op", "rival", "rival ns/op", "ratio", "target", "met?"]
    body = [
        [
            row.scenario,
            f"{row.hotcache_ns:,.0f}",
            row.rival,
            f"{row.rival_ns:,.0f}",
            f"{row.ratio:.2f}x",
            "-" if row.target is None else f"<= {row.target:.2f}x",
            MET[row.met],
        ]
        for row in rows
    ]
    return markdown(head, body, numeric={1, 3, 4})


def render_propagation(rows: list[Propagation]) -> str:
    """Return the propagation rows as a Markdown table (microseconds)."""
    head = ["scenario", "changes", "p50 µs", "p99 µs", "max µs", "target", "met?"]
    body = [
        [
            row.scenario,
            f"{row.changes:,}",
            f"{row.p50_us:,.0f}",
            f"{row.p99_us:,.0f}",
            f"{row.max_us:,.0f}",
            "-" if row.target_us is None else f"p99 <= {row.target_us:,.0f} µs",
            MET[row.met],
        ]
        for row in rows
    ]
    return markdown(head, body, numeric={1, 2, 3, 4})


def render_stampede(rows: list[StampedeRow]) -> str:
    """Return the stampede rows as a Markdown table (milliseconds)."""
    head = ["scenario", "contender", "callers", "producer calls", "p50 ms", "p99 ms", "max ms"]
    body = [
        [
            row.scenario,
            row.contender,
            f"{row.callers:,}",
            f"{row.producer_calls:,}",
            f"{row.p50_ms:,.0f}",
            f"{row.p99_ms:,.0f}",
            f"{row.max_ms:,.0f}",
        ]
        for row in rows
    ]
    head += ["target", "met?"]
    for line, row in zip(body, rows, strict=True):
        line += ["-" if row.target is None else row.target, MET[row.met]]
    return markdown(head, body, numeric={2, 3, 4, 5, 6})


def render_workload(rows: list[WorkloadRow]) -> str:
    """Return the workload rows as a Markdown table."""
    late = f"stale > {STALE_BOUND * 1e3:g} ms"
    head = ["scenario", "contender", "ns/op", "ops/s", "ratio", "stale reads", late, "longest"]
    body = [
        [
            row.scenario,
            row.contender,
            f"{row.ns_per_op:,.0f}",
            f"{row.ops_per_s:,.0f}",
            f"{row.ratio:.2f}x",
            f"{row.stale:,} of {row.reads:,}",
            f"{row.stale_late:,}",
            f"{row.longest_ms:,.1f} ms",
            "-" if row.target is None else f"<= {row.target} late" if row.target else "none late",
            MET[row.met],
        ]
        for row in rows
    ]
    return markdown([*head, "target", "met?"], body, numeric={2, 3, 4, 5, 6, 7})


def markdown(head: list[str], body: list[list[str]], numeric: set[int]) -> str:
    """Return one Markdown table, the ``numeric`` columns right-aligned."""
    widths = [max(len(line[i]) for line in [head, *body]) for i in range(len(head))]

    def line(cells: list[str]) -> str:
        padded = [
            c.rjust(w) if i in numeric else c.ljust(w)
            for i, (c, w) in enumerate(zip(cells, widths, strict=True))
        ]
        return "| " + " | ".join(padded) + " |"

    rule = (
        "|"
        + "|".join(
            "-" * (w + 1) + ":" if i in numeric else "-" * (w + 2) for i, w in enumerate(widths)
        )
        + "|"
    )
    return "\n".join([line(head), rule, *(line(b) for b in body)])


def describe(redis_url: str, sizes: Sizes) -> str:
    """Return one line naming the versions and settings both sides ran with."""
    client = redis.Redis.from_url(redis_url)
    try:
        server = client.info("server")["redis_version"]
    finally:
        client.close()
    hiredis = "yes" if redis.utils.HIREDIS_AVAILABLE else "no"
    return (
        f"python {platform.python_version()}, hotcache {hotcache.__version__}, "
        f"redis-py {redis.__version__} (hiredis: {hiredis}, both sides), "
        f"redis-server {server}, cachetools {cachetools.__version__}, "
        f"diskcache {diskcache.__version__}; {sizes.repeats} interleaved batches per contender"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smoke size: a few seconds")
    parser.add_argument("--redis-url", help="use this Redis instead of a private server")
    parser.add_argument("--json", type=Path, help="also write the rows to this file")
    parser.add_argument("--only", help="run only the scenarios whose name contains this")
    parser.add_argument("--list", action="store_true", help="print the scenario names and exit")
    args = parser.parse_args(argv)
    if args.list:
        print("\n".join([*SCENARIOS, *SECTIONS, *STAMPEDE]))
        return 0
    sizes = QUICK if args.quick else FULL

    with ExitStack() as stack:
        redis_url = args.redis_url
        if redis_url is None:
            server = RedisServer().start()
            stack.callback(server.stop)
            redis_url = server.url
        tmpdir = stack.enter_context(tempfile.TemporaryDirectory(prefix="hotcache-bench-"))
        loop = asyncio.new_event_loop()
        stack.callback(loop.close)
        size = "quick" if args.quick else "full"
        print(f"hotcache bench ({size}) on {redis_url}", file=sys.stderr)
        env = Env(sizes, redis_url, tmpdir, loop, stack)
        rows = run_scenarios(env, args.only)
        coherence = COHERENCE_QUICK if args.quick else COHERENCE_FULL
        propagation, workload = run_sections(coherence, redis_url, tmpdir, args.only)
        stampede = run_stampede(
            redis_url, STAMPEDE_QUICK if args.quick else STAMPEDE_FULL, args.only
        )
        header = describe(redis_url, sizes)

    print(header)
    if rows or not (propagation or workload or stampede):
        print()
        print(render(rows))
        print()
        print(
            "ns/op: median over the batches; ratio: median of the per-round hotcache/rival"
            " ratios (each round runs every contender back to back)."
        )
    if propagation:
        print()
        print(render_propagation(propagation))
        print()
        print(
            "propagation: from `set` returning in this process to the start of the first read"
            " in another process that no longer returned the old value (0 if it already"
            " did); `monotonic()` clock; the reader polls `get`, with `time.sleep(0)`"
            " between reads when it releases the GIL."
        )
    if workload:
        print()
        print(render_workload(workload))
        print()
        print(
            "workload: each process runs the same operations (zipf keys, 95% reads, 5%"
            " writes of unique versions); ns/op: mean of the processes' elapsed time per"
            " operation; ratio: to the cache-aside row; stale: a read that returned a version"
            " another write had replaced before the read began (by more than the bound)."
        )
    if stampede:
        print()
        print(render_stampede(stampede))
        print()
        print(
            "stampede: every caller asks for one cold key at the same moment; the producer"
            " sleeps 200 ms; producer calls counted in Redis; latency of each caller's call."
            " Holder killed: a process takes the lease, is SIGKILLed while producing, and"
            " `max ms` is the time from it taking the lease to the last caller having the"
            " value."
        )
    print()
    checked: list[Row | Propagation | WorkloadRow | StampedeRow] = [
        *rows,
        *propagation,
        *workload,
        *stampede,
    ]
    met = sum(r.met is True for r in checked)
    print(f"targets met: {met} of {sum(r.met is not None for r in checked)}")
    for row in rows:
        if row.met is False:
            print(f"  missed: {row.scenario} vs {row.rival}: {row.ratio:.2f}x > {row.target:.2f}x")
    for prop in propagation:
        if prop.met is False:
            print(
                f"  missed: {prop.scenario}: p99 {prop.p99_us:,.0f} µs > {prop.target_us:,.0f} µs"
            )
    for crowd in stampede:
        if crowd.met is False:
            print(
                f"  missed: {crowd.scenario}: {crowd.producer_calls} producer calls,"
                f" p99 {crowd.p99_ms:,.0f} ms, max {crowd.max_ms:,.0f} ms ({crowd.target})"
            )
    for load in workload:
        if load.met is False:
            print(
                f"  missed: {load.scenario}, {load.contender}: {load.stale_late} stale reads"
                f" > {STALE_BOUND * 1e3:g} ms after the newer write"
            )
    if args.json:
        args.json.write_text(
            json.dumps(
                {
                    "header": header,
                    "rows": [asdict(r) | {"met": r.met} for r in rows],
                    "propagation": [asdict(r) | {"met": r.met} for r in propagation],
                    "workload": [asdict(r) | {"met": r.met} for r in workload],
                    "stampede": [asdict(r) | {"met": r.met} for r in stampede],
                },
                indent=2,
            )
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
