"""Key text for a function call: the function's name and its bound arguments.

``f(1)``, ``f(x=1)`` and ``f(1, y=2)`` (when ``y`` defaults to 2) bind to the same
arguments and so give the same text; ``f("a b")`` and ``f("a", "b")`` bind to
different ones and never do. The text is the same in every process, after every
restart and under every hash seed: values are written in a canonical literal form
(Python's ``repr`` of plain values, containers recursed into, sets and dict keys
sorted), never through ``hash()``.

A value whose only text would carry a memory address (``<Foo object at 0x…>``,
a function, a bound method) differs in every process and has leaked one user's
entry to another in other libraries: it is refused with a ``TypeError`` naming
the argument, unless its type defines ``__cache_key__(self)``, which returns the
value (any supported value) that stands for it in keys.
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Callable, Mapping
from typing import Any

__all__ = ["CallKey", "function_name", "key_part"]

_ADDRESS = re.compile(r" at 0x[0-9a-fA-F]+>")
_PLAIN = (str, int, float, complex, bytes, type(None), range)
_OBJECT_REPR: Any = object.__repr__


def function_name(fn: Callable[..., Any]) -> str:
    """Return ``module.qualname`` of a function (what keys its entries)."""
    target = inspect.unwrap(fn)
    return f"{target.__module__}.{target.__qualname__}"


def key_part(value: Any, where: str) -> str:
    """Return the canonical text of one argument value.

    Raises:
        TypeError: the value has no stable text (see the module docstring).
    """
    hook = getattr(type(value), "__cache_key__", None)
    if hook is not None:
        return f"{type(value).__qualname__}<{key_part(hook(value), where)}>"
    if isinstance(value, bool) or type(value) in _PLAIN:
        return repr(value)
    if isinstance(value, (list, tuple)):
        inner = ", ".join(key_part(item, where) for item in value)
        if type(value) is list:
            return f"[{inner}]"
        if type(value) is tuple:
            return f"({inner},)" if len(value) == 1 else f"({inner})"
        return f"{type(value).__qualname__}({inner})"
    if isinstance(value, (set, frozenset)):
        items = sorted(key_part(item, where) for item in value)
        return f"{type(value).__name__}({{{', '.join(items)}}})"
    if isinstance(value, Mapping):
        pairs = sorted((key_part(k, where), key_part(v, where)) for k, v in value.items())
        inner = ", ".join(f"{k}: {v}" for k, v in pairs)
        return (
            "{" + inner + "}" if type(value) is dict else f"{type(value).__qualname__}({{{inner}}})"
        )
    text = repr(value)
    if _ADDRESS.search(text) or getattr(type(value), "__repr__", None) is _OBJECT_REPR:
        raise TypeError(
            f"cannot make a cache key from {where}: a {type(value).__qualname__} has no "
            "stable text (its repr differs per process); give its type a __cache_key__ "
            "method, or pass a key= to the decorator"
        )
    return text


class CallKey:
    """Bind a call's arguments to a function's signature and write them as text."""

    def __init__(self, fn: Callable[..., Any], *, skip_first: bool | None = None) -> None:
        self.signature = inspect.signature(fn)
        params = list(self.signature.parameters.values())
        if skip_first is None:
            # Methods: leave out self/cls, whose repr is an address (or a class).
            skip_first = bool(params) and params[0].name in {"self", "cls"}
        self._skip = params[0].name if skip_first and params else None
        self._kinds = {p.name: p.kind for p in params}

    def text(self, args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> str:
        """Return ``name=value, ...`` for one call (``TypeError`` if it does not bind)."""
        bound = self.signature.bind(*args, **kwargs)
        bound.apply_defaults()
        parts = []
        for name, value in bound.arguments.items():
            if name == self._skip:
                continue
            kind = self._kinds[name]
            where = f"argument {name!r}"
            if kind is inspect.Parameter.VAR_POSITIONAL:
                parts.append(f"*{name}={key_part(tuple(value), where)}")
            elif kind is inspect.Parameter.VAR_KEYWORD:
                parts.append(f"**{name}={key_part(dict(value), where)}")
            else:
                parts.append(f"{name}={key_part(value, where)}")
        return ", ".join(parts)
