"""Call keys: calls that bind alike share a key, calls that do not never do."""

from __future__ import annotations

import datetime
import decimal
import enum
import os
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hotcache._core.callkeys import CallKey, function_name, key_part


def f(x: Any, y: Any = 2, *rest: Any, z: Any = None, **extra: Any) -> None:
    """A function with every kind of parameter."""


KEY = CallKey(f)


def text(*args: Any, **kwargs: Any) -> str:
    return KEY.text(args, kwargs)


def test_calls_that_bind_alike_share_a_key() -> None:
    assert text(1) == text(x=1) == text(1, 2) == text(1, y=2) == text(y=2, x=1)
    assert text(1, 2, 3) != text(1, 2)
    assert text(1, z=None) == text(1)
    assert text(1, w=5) == text(1, **{"w": 5})


def test_space_joined_arguments_never_collide() -> None:
    assert text("a b") != text("a", "b")
    assert text("a, y='b'") != text("a", "b")
    assert text(("a", "b")) != text("a", "b")


def test_types_stay_apart() -> None:
    values: list[Any] = [1, 1.0, True, "1", b"1", (1,), [1], {1}, frozenset({1}), None, "None"]
    assert len({key_part(v, "x") for v in values}) == len(values)


def test_sets_and_dicts_are_order_free() -> None:
    assert key_part({"b": 1, "a": 2}, "x") == key_part({"a": 2, "b": 1}, "x")
    assert key_part({3, 1, 2}, "x") == key_part({2, 3, 1}, "x")


def test_plain_library_values_have_stable_keys() -> None:
    class Color(enum.Enum):
        RED = 1

    for value in (
        datetime.date(2024, 1, 2),
        datetime.datetime(2024, 1, 2, 3, 4),
        decimal.Decimal("1.10"),
        uuid.UUID(int=5),
        Color.RED,
        Path("/tmp/x"),
    ):
        assert " at 0x" not in key_part(value, "x")


class Opaque:
    pass


class WithHook:
    def __init__(self, ident: int) -> None:
        self.ident = ident

    def __cache_key__(self) -> Any:
        return ("user", self.ident)


def test_default_reprs_are_refused_naming_the_argument() -> None:
    with pytest.raises(TypeError, match=r"argument 'x'.*Opaque"):
        text(Opaque())
    with pytest.raises(TypeError, match="argument 'rest'"):
        text(1, 2, [Opaque()])
    with pytest.raises(TypeError, match="argument 'z'"):
        text(1, z=lambda: None)
    with pytest.raises(TypeError, match="argument 'extra'"):
        text(1, w={"k": Opaque()})


def test_the_cache_key_hook_stands_for_the_object() -> None:
    assert text(WithHook(1)) == text(WithHook(1))
    assert text(WithHook(1)) != text(WithHook(2))
    assert text(WithHook(1)) != text(("user", 1))


def test_methods_leave_out_self_and_cls() -> None:
    class Repo:
        def get(self, ident: int) -> None: ...

        @classmethod
        def load(cls, ident: int) -> None: ...

    assert CallKey(Repo.get).text((Repo(), 5), {}) == "ident=5"
    assert CallKey(Repo.load.__func__).text((Repo, 5), {}) == "ident=5"
    assert CallKey(Repo.get, skip_first=False).signature.parameters["self"]


def test_a_call_that_does_not_bind_is_a_type_error() -> None:
    with pytest.raises(TypeError):
        text()
    with pytest.raises(TypeError):
        text(1, x=1)


def test_function_name_is_module_and_qualname() -> None:
    assert function_name(f) == f"{__name__}.f"


def test_keys_are_the_same_in_another_process_and_hash_seed() -> None:
    code = (
        "from hotcache._core.callkeys import key_part;"
        "print(key_part({'b': {3, 1, 2}, 'a': (1.5, b'x', None)}, 'x'))"
    )
    env = {**os.environ, "PYTHONHASHSEED": "12345"}
    other = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
    ).stdout.strip()
    assert other == key_part({"a": (1.5, b"x", None), "b": {2, 3, 1}}, "x")


scalars = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False)
plain = st.recursive(
    scalars | st.text() | st.binary(),
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.tuples(inner, inner)
        | st.dictionaries(st.text(max_size=3), inner, max_size=3)
    ),
    max_leaves=8,
)


def same_value(a: Any, b: Any) -> bool:
    """Equal, with equal types all the way down (1 and 1.0 and True differ; so do 0.0, -0.0)."""
    if type(a) is not type(b):
        return False
    if isinstance(a, (list, tuple)):
        return len(a) == len(b) and all(same_value(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(same_value(a[k], b[k]) for k in a)
    if isinstance(a, float):
        return repr(a) == repr(b)
    return bool(a == b)


@settings(max_examples=400, deadline=None)
@given(a=st.tuples(plain, plain), b=st.tuples(plain, plain))
def test_keys_are_equal_exactly_when_the_arguments_are(
    a: tuple[Any, Any], b: tuple[Any, Any]
) -> None:
    assert (text(*a) == text(*b)) == same_value(a, b)
