"""ttl validation: the one rule every call shares."""

from __future__ import annotations

import math

import pytest

from hotcache._core.freshness import FOREVER, apply_jitter, resolve_ttl, validate_ttl


def test_valid_ttls() -> None:
    assert validate_ttl(None) is None
    assert validate_ttl(0) == 0.0
    assert validate_ttl(1.5) == 1.5
    assert validate_ttl(FOREVER) is None
    assert validate_ttl(10**400) is None  # past float's range: longer than any lifetime


@pytest.mark.parametrize(
    "bad", [-1, -0.001, math.nan, "5", True, [1], -(10**400)], ids=lambda v: repr(v)[:12]
)
def test_bad_ttls_raise_value_error(bad: object) -> None:
    with pytest.raises(ValueError):
        validate_ttl(bad)


def test_resolve_uses_the_default_only_for_none() -> None:
    assert resolve_ttl(None, 30.0) == 30.0
    assert resolve_ttl(0, 30.0) == 0.0
    assert resolve_ttl(FOREVER, 30.0) is None


def test_jitter_spreads_within_bounds_and_can_be_off() -> None:
    import random

    rng = random.Random(7)
    spread = [apply_jitter(100.0, 0.1, rng.random) for _ in range(1000)]
    assert all(s is not None and 90.0 <= s <= 110.0 for s in spread)
    assert max(s for s in spread if s) - min(s for s in spread if s) > 15  # really spread
    assert apply_jitter(100.0, 0, rng.random) == 100.0
    assert apply_jitter(None, 0.1, rng.random) is None
    assert apply_jitter(0, 0.1, rng.random) == 0
    with pytest.raises(ValueError):
        apply_jitter(1.0, 1.5, rng.random)
