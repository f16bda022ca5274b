"""ttl validation: the one rule every call shares."""

from __future__ import annotations

import math

import pytest

from hotcache._core.freshness import FOREVER, resolve_ttl, validate_ttl


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
