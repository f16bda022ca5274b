"""The circuit breaker's state machine, driven by a fake clock."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hotcache._core.breaker import Breaker


class Clock:
    """A clock that moves only when told to."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock() -> Clock:
    return Clock()


def tripped(clock: Clock, threshold: int = 2, window: float = 1.0) -> Breaker:
    breaker = Breaker(threshold, window, clock)
    for _ in range(threshold):
        breaker.failure()
    assert breaker.is_open
    return breaker


def test_starts_closed(clock: Clock) -> None:
    breaker = Breaker(2, 1.0, clock)
    assert not breaker.is_open
    assert breaker.allow()
    assert (breaker.failures, breaker.trips) == (0, 0)
    assert not breaker.success()  # closing a closed breaker is no state change


@pytest.mark.parametrize("threshold", [1, 2, 5])
def test_opens_after_threshold_consecutive_failures(clock: Clock, threshold: int) -> None:
    breaker = Breaker(threshold, 1.0, clock)
    for _ in range(threshold - 1):
        assert not breaker.failure()
        assert not breaker.is_open
        assert breaker.allow()
    assert breaker.failure()  # True: this one opened it
    assert breaker.is_open
    assert breaker.trips == 1
    assert not breaker.allow()


def test_a_success_resets_the_consecutive_count(clock: Clock) -> None:
    breaker = Breaker(3, 1.0, clock)
    for _ in range(10):
        breaker.failure()
        breaker.failure()
        assert not breaker.success()
    assert not breaker.is_open
    assert breaker.trips == 0


def test_open_for_the_whole_window(clock: Clock) -> None:
    breaker = tripped(clock, window=2.0)
    for _ in range(100):
        assert not breaker.allow()
    clock.advance(1.999)
    assert not breaker.allow()
    clock.advance(0.001)
    assert breaker.allow()


def test_one_probe_in_half_open(clock: Clock) -> None:
    breaker = tripped(clock)
    clock.advance(1.0)
    allowed = [breaker.allow() for _ in range(50)]
    assert allowed == [True] + [False] * 49


def test_probe_success_closes(clock: Clock) -> None:
    breaker = tripped(clock)
    clock.advance(1.0)
    assert breaker.allow()
    assert breaker.success()  # True: this one closed it
    assert not breaker.is_open
    assert breaker.failures == 0
    assert all(breaker.allow() for _ in range(10))
    # Closed again: it takes a full threshold of failures to reopen.
    assert not breaker.failure()
    assert breaker.allow()
    assert breaker.failure()
    assert breaker.trips == 2


def test_probe_failure_reopens_for_a_window_quietly(clock: Clock) -> None:
    breaker = tripped(clock, threshold=3)
    clock.advance(1.0)
    assert breaker.allow()
    assert not breaker.failure()  # a reopen is not a new state change: no log
    assert breaker.is_open
    assert breaker.trips == 1
    assert not breaker.allow()
    clock.advance(0.999)
    assert not breaker.allow()
    clock.advance(0.001)
    assert breaker.allow()  # the next window's probe


def test_one_probe_per_window_costs_one_failure_per_window(clock: Clock) -> None:
    """A dead backend reached by a steady stream of calls: one attempt per window."""
    breaker = Breaker(2, 1.0, clock)
    attempts = 0
    for _ in range(10_000):  # 10 s of calls, one per millisecond
        if breaker.allow():
            attempts += 1
            breaker.failure()
        clock.advance(0.001)
    # threshold failures to open, then one probe per elapsed window.
    assert attempts <= 2 + 10
    assert attempts >= 2 + 9
    assert breaker.trips == 1


def test_a_probe_that_never_reports_does_not_wedge_the_breaker(clock: Clock) -> None:
    breaker = tripped(clock)
    clock.advance(1.0)
    assert breaker.allow()  # the probe's task is cancelled: neither success nor failure
    clock.advance(0.5)
    assert not breaker.allow()
    clock.advance(0.5)
    assert breaker.allow()  # another probe one window later
    assert breaker.success()
    assert not breaker.is_open


def test_late_failure_while_open_extends_the_window(clock: Clock) -> None:
    breaker = tripped(clock)
    clock.advance(0.5)
    # A call sent before the breaker opened fails late.
    assert not breaker.failure()
    clock.advance(0.6)
    assert not breaker.allow()
    clock.advance(0.4)
    assert breaker.allow()


def test_late_success_while_open_closes(clock: Clock) -> None:
    breaker = tripped(clock)
    assert breaker.success()
    assert breaker.allow()


def test_trips_count_each_closed_to_open_transition(clock: Clock) -> None:
    breaker = Breaker(1, 1.0, clock)
    for expected in range(1, 6):
        assert breaker.failure()
        for _ in range(3):
            clock.advance(1.0)
            assert breaker.allow()
            assert not breaker.failure()
        assert breaker.trips == expected
        clock.advance(1.0)
        assert breaker.allow()
        assert breaker.success()
        assert breaker.trips == expected


def test_uses_the_monotonic_clock_by_default() -> None:
    breaker = Breaker(1, 60.0)
    breaker.failure()
    assert not breaker.allow()


OPS = st.lists(
    st.sampled_from(["allow", "success", "failure"]) | st.floats(0.0, 2.5),
    max_size=200,
)


@settings(max_examples=300, deadline=None)
@given(ops=OPS, threshold=st.integers(1, 4), window=st.sampled_from([0.5, 1.0]))
def test_property_matches_a_model(ops: list[object], threshold: int, window: float) -> None:
    """Compare against a plain model of the contract, step by step."""
    clock = Clock()
    breaker = Breaker(threshold, window, clock)
    state, failures, reopen_at, trips = "closed", 0, 0.0, 0
    for op in ops:
        if isinstance(op, float):
            clock.advance(op)
        elif op == "allow":
            if state == "closed":
                expected = True
            elif clock.now >= reopen_at:
                expected, reopen_at = True, clock.now + window  # the probe
            else:
                expected = False
            assert breaker.allow() == expected
        elif op == "success":
            assert breaker.success() == (state == "open")
            state, failures = "closed", 0
        else:
            failures += 1
            opened = False
            if state == "open":
                reopen_at = clock.now + window
            elif failures >= threshold:
                state, reopen_at, opened = "open", clock.now + window, True
                trips += 1
            assert breaker.failure() == opened
        assert breaker.is_open == (state == "open")
        assert breaker.trips == trips
