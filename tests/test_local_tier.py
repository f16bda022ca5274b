"""The in-process tier's rules, against a model of the shared tier.

The state machine interleaves reads of the shared tier (a token taken when the
read is sent, the value as the server had it then, the fill when the reply
arrives) with other processes' changes (delivered by the feed as
invalidations), this process's own writes, flushes and feed outages. Whatever
the interleaving, the tier never serves a value the shared tier no longer
holds.
"""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from hotcache._core.local import LocalTier

KEYS = st.sampled_from(["a", "b", "c"])
VALUES = st.binary(min_size=1, max_size=3)


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Coherence(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.tier: LocalTier[bytes] = LocalTier(max_entries=2, max_bytes=None)
        self.tier.resume()
        self.truth: dict[str, bytes] = {}
        self.pending: list[tuple[int, str, bytes | None]] = []

    @rule(key=KEYS)
    def send_read(self, key: str) -> None:
        self.pending.append((self.tier.token(), key, self.truth.get(key)))

    @precondition(lambda self: self.pending)
    @rule(data=st.data())
    def reply_arrives(self, data: Any) -> None:
        token, key, value = self.pending.pop(data.draw(st.integers(0, len(self.pending) - 1)))
        if value is not None:
            self.tier.fill(token, {key: (value, None)})

    @rule(key=KEYS, value=VALUES)
    def another_process_writes(self, key: str, value: bytes) -> None:
        self.truth[key] = value
        self.tier.invalidate([key])

    @rule(key=KEYS)
    def another_process_deletes(self, key: str) -> None:
        self.truth.pop(key, None)
        self.tier.invalidate([key])

    @rule(key=KEYS, value=VALUES)
    def this_process_writes(self, key: str, value: bytes) -> None:
        self.truth[key] = value
        self.tier.write(key, value, None)

    @rule()
    def flush(self) -> None:
        self.tier.flush()

    @rule()
    def feed_lost(self) -> None:
        self.tier.suspend()

    @rule()
    def feed_back(self) -> None:
        self.tier.resume()

    @invariant()
    def serves_only_current_values(self) -> None:
        for key in ("a", "b", "c"):
            local = self.tier.get(key)
            assert local is None or local == self.truth.get(key), (key, local, self.truth)


TestCoherence = Coherence.TestCase
TestCoherence.settings = settings(max_examples=300, stateful_step_count=40, deadline=None)


def test_a_fill_racing_an_invalidation_is_dropped() -> None:
    tier: LocalTier[bytes] = LocalTier()
    tier.resume()
    token = tier.token()  # the read is sent
    tier.invalidate(["k"])  # another process changes k; the feed says so first
    assert tier.fill(token, {"k": (b"old", None), "other": (b"x", None)}) == 1
    assert tier.get("k") is None
    assert tier.get("other") == b"x"  # a racing change of k says nothing of "other"


def test_nothing_is_served_or_kept_while_the_feed_is_down() -> None:
    tier: LocalTier[bytes] = LocalTier()
    assert tier.fill(tier.token(), {"k": (b"v", None)}) == 0  # not yet established
    tier.resume()
    tier.fill(tier.token(), {"k": (b"v", None)})
    assert tier.get("k") == b"v"
    token = tier.token()
    tier.suspend()
    assert tier.get("k") is None and len(tier) == 0
    assert tier.fill(token, {"k": (b"v", None)}) == 0
    tier.resume()
    assert tier.fill(token, {"k": (b"v", None)}) == 0  # sent before the outage
    assert tier.fill(tier.token(), {"k": (b"v", None)}) == 1


def test_values_never_outlive_their_expiry_nor_max_age() -> None:
    clock = FakeClock()
    tier: LocalTier[bytes] = LocalTier(max_age=10.0, clock=clock)
    tier.resume()
    tier.fill(tier.token(), {"short": (b"s", 2.0), "long": (b"l", None), "gone": (b"g", 0.0)})
    tier.write("mine", b"m", 3.0)
    assert tier.get("gone") is None
    clock.now += 2.5
    assert tier.get("short") is None
    assert tier.get("long") == b"l" and tier.get("mine") == b"m"
    clock.now += 1.0
    assert tier.get("mine") is None
    clock.now += 7.0
    assert tier.get("long") is None  # the safety net: max_age


def test_an_old_token_is_refused_once_its_invalidations_are_forgotten() -> None:
    tier: LocalTier[bytes] = LocalTier()
    tier.resume()
    token = tier.token()
    tier.invalidate(f"k{i}" for i in range(5000))  # more than the tier remembers
    assert tier.fill(token, {"unrelated": (b"v", None)}) == 0
    assert tier.fill(tier.token(), {"unrelated": (b"v", None)}) == 1


def test_own_writes_are_read_back_and_void_racing_fills() -> None:
    tier: LocalTier[bytes] = LocalTier()
    tier.resume()
    token = tier.token()
    tier.write("k", b"new", None)
    assert tier.get("k") == b"new"
    tier.fill(token, {"k": (b"old", None)})
    assert tier.get("k") == b"new"
    tier.write("k", b"gone", 0)  # ttl 0: written as deleted
    assert tier.get("k") is None


def test_bad_max_age_is_refused() -> None:
    with pytest.raises(ValueError, match="max_age"):
        LocalTier(max_age=0)
