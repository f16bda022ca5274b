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

import hashlib
import inspect
import os
import re
from collections.abc import Callable, Mapping
from types import BuiltinFunctionType, CodeType, FunctionType, ModuleType
from typing import Any

__all__ = ["CallKey", "function_identity", "function_name", "is_method", "key_part"]

_ADDRESS = re.compile(r" at 0x[0-9a-fA-F]+>")
_PLAIN = (str, int, float, complex, bytes, type(None), range)
_OBJECT_REPR: Any = object.__repr__
# Tells this process's objects from another's at the same address (new per fork).
_PROCESS = [os.urandom(6).hex()]
os.register_at_fork(after_in_child=lambda: _PROCESS.__setitem__(0, os.urandom(6).hex()))


def is_method(fn: Callable[..., Any]) -> bool:
    """Return True for a function defined in a class body whose first parameter is
    ``self`` or ``cls``."""
    target = inspect.unwrap(fn)
    outer = target.__qualname__.rpartition(".")[0]
    if not outer or outer.endswith("<locals>"):
        return False
    params = list(inspect.signature(target).parameters)
    return bool(params) and params[0] in {"self", "cls"}


def _code_digest(code: CodeType) -> bytes:
    parts = [code.co_code, repr(code.co_names).encode()]
    for const in code.co_consts:
        # A nested code object's repr carries its address: use its own digest.
        parts.append(_code_digest(const) if isinstance(const, CodeType) else repr(const).encode())
    return hashlib.sha256(b"\0".join(parts)).digest()


def _captured(name: str, value: Any) -> str:
    if isinstance(value, (type, FunctionType, BuiltinFunctionType, ModuleType)):
        return getattr(value, "__qualname__", None) or value.__name__
    try:
        return key_part(value, f"captured variable {name!r}")
    except TypeError:
        # No stable text: key by this object in this process only, so the entries
        # of two closures over different objects never mix (and no other process,
        # whose objects may sit at the same addresses, ever reads them).
        return f"{_PROCESS[0]}:{id(value):x}"


def function_identity(fn: Callable[..., Any]) -> str:
    """Return what tells ``fn``'s entries from every other function's.

    ``module.qualname`` for a module-level function or a method. A lambda, or a
    function defined inside another function, shares that name with its
    siblings, so its identity adds a digest of its code and the values it
    captured (an object without stable text makes it private to this process).
    """
    target = inspect.unwrap(fn)
    name = f"{target.__module__}.{target.__qualname__}"
    if "<locals>" not in name and "<lambda>" not in name:
        return name
    code = target.__code__
    captured = []
    for var, cell in zip(code.co_freevars, target.__closure__ or (), strict=True):
        try:
            value = cell.cell_contents
        except ValueError:  # not bound yet: the function itself, when it recurses
            continue
        captured.append(f"{var}={_captured(var, value)}")
    digest = _code_digest(code).hex()[:16]
    values = ", ".join(captured)
    if len(values) > 80:  # every call's key carries this: keep it short
        values = "#" + hashlib.sha256(values.encode("utf-8", "surrogatepass")).hexdigest()[:24]
    return f"{name}~{digest}[{values}]"


def function_name(fn: Callable[..., Any]) -> str:
    """Return ``module.qualname`` of a function (its name in messages)."""
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
            # Methods (defined in a class body, first parameter self or cls): leave
            # out the instance or class. A plain function's ``cls`` stays in.
            skip_first = is_method(fn)
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
