"""Time contenders side by side: interleaved batches, gc off, medians of per-op ns."""

from __future__ import annotations

import asyncio
import gc
import math
import statistics
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from time import perf_counter_ns
from typing import Any

__all__ = [
    "Contender",
    "async_unary",
    "measure",
    "sync_binary",
    "sync_unary",
]


@dataclass
class Contender:
    """One way of doing the operation: ``run()`` does ``ops`` of them, returns elapsed ns."""

    name: str
    run: Callable[[], int]
    ops: int
    samples: list[float] = field(default_factory=list)

    @property
    def median(self) -> float:
        """Return the median of the per-op nanoseconds measured so far."""
        return statistics.median(self.samples)

    def ratio_to(self, other: Contender) -> float:
        """Return the median of the per-round ratios ``self / other``.

        Each round ran both back to back, so a burst of load from elsewhere
        inflates both sides of a ratio: pairing cancels it where a ratio of
        two medians would not.
        """
        return statistics.median(a / b for a, b in zip(self.samples, other.samples, strict=True))


# The loops below are written out per call shape (no ``*args``, no lambda) so that
# every contender pays the same, smallest possible loop overhead.


def sync_unary(name: str, op: Callable[[Any], object], args: Sequence[Any]) -> Contender:
    """Time ``op(a)`` for each ``a`` in ``args``."""
    items = list(args)

    def run() -> int:
        start = perf_counter_ns()
        for a in items:
            op(a)
        return perf_counter_ns() - start

    return Contender(name, run, len(items))


def sync_binary(
    name: str, op: Callable[[Any, Any], object], args: Sequence[Any], value: Any
) -> Contender:
    """Time ``op(a, value)`` for each ``a`` in ``args``."""
    items = list(args)

    def run() -> int:
        start = perf_counter_ns()
        for a in items:
            op(a, value)
        return perf_counter_ns() - start

    return Contender(name, run, len(items))


def async_unary(
    name: str,
    loop: asyncio.AbstractEventLoop,
    op: Callable[[Any], Awaitable[object]],
    args: Sequence[Any],
) -> Contender:
    """Time ``await op(a)`` for each ``a`` in ``args``, inside one running loop."""
    items = list(args)

    async def body() -> int:
        start = perf_counter_ns()
        for a in items:
            await op(a)
        return perf_counter_ns() - start

    def run() -> int:
        return loop.run_until_complete(body())

    return Contender(name, run, len(items))


def measure(contenders: Sequence[Contender], *, repeats: int, warmup: int) -> None:
    """Run every contender ``repeats`` times, interleaved, and record per-op ns.

    Rounds rotate and alternate the order (A B C, C B A, B C A, A C B, ...) so
    every contender runs in every position and after every other one equally
    often: drift, "first after a collection" and "who ran just before" effects
    fall on all alike. The garbage collector is off during a batch (a collection
    would land on whoever is unlucky) and runs between rounds instead.
    """
    for _ in range(warmup):
        for contender in contenders:
            contender.run()
    count = len(contenders)
    for round_no in range(repeats):
        start = (round_no // 2) % count
        order = [*contenders[start:], *contenders[:start]]
        if round_no % 2:
            order.reverse()
        gc.collect()
        for contender in order:
            gc.disable()
            try:
                elapsed = contender.run()
            finally:
                gc.enable()
            contender.samples.append(elapsed / contender.ops)


def percentile(ordered: Sequence[float], q: float) -> float:
    """Nearest rank: the smallest value at least ``q`` of the values do not exceed."""
    return ordered[max(0, math.ceil(q * len(ordered)) - 1)]
