"""``@cache.cached``: what a decorated function's calls are keyed and stored by.

The I/O of a call (read, produce, write) lives in ``_async/cached.py`` and its
generated twin; this module decides everything else once, at decoration time:
which face runs the function (``async def`` runs on the async face whichever
cache decorated it), its key, lifetime, tags and store conditions, and how it
binds as a method, classmethod or staticmethod.
"""

from __future__ import annotations

import functools
import inspect
import string
import types
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any, ParamSpec, Protocol, TypeVar

from ._context import KeySpace
from ._core import tags as tagging
from ._core.callkeys import CallKey, function_identity, function_name, is_method
from ._core.freshness import validate_ttl
from ._core.keys import key_text

if TYPE_CHECKING:
    from ._facade import CacheBase

__all__ = ["PLAIN_TYPES", "CachedError", "CallSpec", "Decorated", "KeyMaker", "decorate", "writes"]

P = ParamSpec("P")
R = TypeVar("R", covariant=True)

KeyOption = str | Callable[..., Any] | None
TagsOption = Iterable[str] | Callable[..., Iterable[str]] | None
_ADDRESS = " at 0x"
_MEMO_LIMIT = 10_000


class CachedError:
    """An exception a decorated function raised, cached for ``error_ttl``."""

    __slots__ = ("error",)

    def __init__(self, error: BaseException) -> None:
        self.error = error

    def __reduce__(self) -> tuple[Any, ...]:
        return (CachedError, (self.error,))


class KeyMaker:
    """Turn one call of a function into its key text: a template, a callable, or
    (by default) the function's name and its bound arguments."""

    def __init__(
        self, fn: Callable[..., Any], key: KeyOption, *, skip_first: bool | None = None
    ) -> None:
        self.name = function_name(fn)  # for messages
        self.identity = function_identity(fn)  # for keys and the function's tag
        self.signature = inspect.signature(fn)
        self._call_key = CallKey(fn, skip_first=skip_first)
        self._template = key if isinstance(key, str) else None
        self._key_fn = key if callable(key) else None
        if key is not None and self._template is None and self._key_fn is None:
            raise TypeError("key must be a template str or a callable")
        if self._template is not None:
            self._check_template(self._template)
        # Calls whose arguments are all exact ints and strs (most calls) memoise
        # their key text: no binding, no repr.
        self._memo: dict[tuple[Any, ...], str] = {}

    def _check_template(self, template: str) -> None:
        names = set(self.signature.parameters)
        for _, field, _, _ in string.Formatter().parse(template):
            if field is None:
                continue
            root = field.split(".", 1)[0].split("[", 1)[0]
            if root not in names:
                raise ValueError(
                    f"key template {template!r} names {root!r}, which is not a parameter "
                    f"of {self.name}"
                )

    def text(self, args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> str:
        """Return the key text for one call.

        Raises:
            TypeError: the arguments do not bind, or one has no stable key text.
        """
        if kwargs or not _plain(args):
            return self._text(args, kwargs)
        try:
            return self._memo[args]
        except KeyError:
            pass
        text = self._text(args, kwargs)
        if len(self._memo) < _MEMO_LIMIT:
            self._memo[args] = text
        return text

    def _text(self, args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> str:
        if self._key_fn is not None:
            return _stable(key_text(self._key_fn(*args, **kwargs)), self.name)
        if self._template is not None:
            bound = self.signature.bind(*args, **kwargs)
            bound.apply_defaults()
            return _stable(self._template.format(**bound.arguments), self.name)
        return f"{self.identity}({self._call_key.text(args, kwargs)})"


class CallSpec:
    """How one decorated function's calls become entries: key, tags, lifetime."""

    def __init__(
        self,
        fn: Callable[..., Any],
        space: KeySpace,
        *,
        key: KeyOption,
        ttl: float | None,
        tags: TagsOption,
        condition: Callable[[Any], bool] | None,
        unless: Callable[[Any], bool] | None,
        jitter: float | None,
        cache_errors: tuple[type[BaseException], ...],
        error_ttl: float,
        skip_first: bool | None = None,
        local_only: bool = False,
        stale_ttl: float | None = None,
    ) -> None:
        self.fn = fn
        self.keys = KeyMaker(fn, key, skip_first=skip_first)
        self.text = self.keys.text
        self.name = self.keys.name
        self.space = space
        self.ttl = ttl
        self.jitter = jitter
        self.fn_tag = tagging.function_tag(self.keys.identity)
        self._tags_fn = tags if callable(tags) else None
        self.static = self._tags_fn is None  # every call carries the same tags
        static = () if tags is None or callable(tags) else tagging.validate_tags(tags)
        self.static_tags = tagging.validate_tags((self.fn_tag, *static))
        self.condition = condition
        self.unless = unless
        self.cache_errors = cache_errors
        self.error_ttl = error_ttl
        self.local_only = local_only
        self.stale = validate_ttl(stale_ttl, name="stale_ttl") or None
        if self.stale and local_only:
            raise ValueError("stale_ttl cannot be combined with local_only")

    def tags(self, args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> tuple[str, ...]:
        """Return the tags an entry of this call carries (the function's tag first)."""
        if self._tags_fn is None:
            return self.static_tags
        computed = tagging.validate_tags(self._tags_fn(*args, **kwargs))
        return tagging.validate_tags((*self.static_tags, *computed))

    def stores(self, result: Any) -> bool:
        """Return True if ``result`` should be stored (``condition`` and ``unless``)."""
        if self.condition is not None and not self.condition(result):
            return False
        return not (self.unless is not None and self.unless(result))


PLAIN_TYPES = frozenset({int, str})


def _plain(args: tuple[Any, ...]) -> bool:
    # 1, 1.0, True and an IntEnum member compare (and hash) alike but key apart:
    # only calls whose arguments are exact ints and strs may use a memo, for
    # lookups as for inserts. (Key callables see the same values then too.)
    return PLAIN_TYPES.issuperset(map(type, args))


def _stable(text: str, name: str) -> str:
    if _ADDRESS in text:
        raise TypeError(
            f"the key of {name} would contain a memory address ({text!r}), which differs "
            "per process; format an attribute (such as an id) instead, or give the "
            "type a __cache_key__ method"
        )
    return text


class Decorated(Protocol[P, R]):
    """The type of a decorated function: callable like it, plus cache controls.

    ``invalidate(*args, **kwargs)`` deletes one call's entry; ``refresh(...)``
    recomputes and stores it; ``get_cached(...)`` returns it or ``MISSING``
    without calling the function; ``clear_cache()`` drops every entry of the
    function at once; ``uncached`` is the original function.
    """

    @property
    def uncached(self) -> Callable[P, R]: ...

    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> R: ...

    def invalidate(self, *args: Any, **kwargs: Any) -> Any: ...

    def refresh(self, *args: Any, **kwargs: Any) -> Any: ...

    def get_cached(self, *args: Any, **kwargs: Any) -> Any: ...

    def clear_cache(self) -> Any: ...


class _Bound:
    # A decorated method bound to its instance or class; with no first argument,
    # the controls of a decorated function. (No docstring: ``__doc__`` is the
    # function's, like a bound method's.)

    __slots__ = ("_first", "_runner")

    def __init__(self, runner: Any, first: tuple[Any, ...] = ()) -> None:
        self._runner = runner
        self._first = first

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self._runner.call(self._first + args, kwargs)

    def invalidate(self, *args: Any, **kwargs: Any) -> Any:
        return self._runner.invalidate(self._first + args, kwargs)

    def refresh(self, *args: Any, **kwargs: Any) -> Any:
        return self._runner.refresh(self._first + args, kwargs)

    def get_cached(self, *args: Any, **kwargs: Any) -> Any:
        return self._runner.get_cached(self._first + args, kwargs)

    def clear_cache(self) -> Any:
        return self._runner.clear_cache()

    @property
    def uncached(self) -> Any:
        fn = self._runner.spec.fn
        # A real bound method: its signature drops self, its globals resolve hints.
        return types.MethodType(fn, self._first[0]) if self._first else fn

    __doc__ = property(lambda self: self._runner.spec.fn.__doc__)
    __module__ = property(lambda self: self._runner.spec.fn.__module__)

    def __getattr__(self, name: str) -> Any:
        # __name__, __qualname__, __annotations__, __globals__... of the function.
        if name == "__wrapped__":
            return self.uncached
        return getattr(self._runner.spec.fn, name)


class _Method(_Bound):
    # A decorated method: binds ``self`` (or ``cls``) the way a function does.

    __slots__ = ("_kind",)
    __doc__ = _Bound.__dict__["__doc__"]
    __module__ = _Bound.__dict__["__module__"]

    def __init__(self, runner: Any, kind: str) -> None:
        super().__init__(runner)
        self._kind = kind  # "method", "classmethod" or "staticmethod"

    def __get__(self, obj: Any, objtype: Any = None) -> Any:
        if self._kind == "classmethod":
            return _Bound(self._runner, (objtype if objtype is not None else type(obj),))
        if self._kind == "staticmethod" or obj is None:
            return self
        return _Bound(self._runner, (obj,))


def decorate(
    cache: CacheBase,
    fn: Any,
    *,
    key: KeyOption,
    ttl: float | None,
    namespace: str | None,
    version: str | int | None,
    tags: TagsOption,
    condition: Callable[[Any], bool] | None,
    unless: Callable[[Any], bool] | None,
    jitter: float | None,
    cache_errors: Iterable[type[BaseException]],
    error_ttl: float,
    local_only: bool = False,
    stale_ttl: float | None = None,
) -> Any:
    """Wrap ``fn`` for ``cache``; see ``CacheBase.cached``."""
    kind = "function"
    if isinstance(fn, (classmethod, staticmethod)):
        kind = type(fn).__name__
        fn = fn.__func__
    _check_callable(fn, "@cached")
    validate_ttl(ttl)
    validate_ttl(error_ttl, name="error_ttl")
    if jitter is not None and not 0 <= jitter < 1:
        raise ValueError(f"jitter must be in [0, 1), got {jitter!r}")
    errors = tuple(cache_errors)
    if not all(isinstance(e, type) and issubclass(e, BaseException) for e in errors):
        raise TypeError("cache_errors must be exception classes")
    space = cache._space
    if namespace is not None or version is not None:
        space = KeySpace(
            namespace or space.namespace,
            space.version if version is None else str(version),
            cache._context,
        )
    if kind == "function" and is_method(fn):
        kind = "method"
    spec = CallSpec(
        fn,
        space,
        key=key,
        ttl=ttl,
        tags=tags,
        condition=condition,
        unless=unless,
        jitter=jitter,
        cache_errors=errors,
        error_ttl=error_ttl,
        skip_first=kind in {"method", "classmethod"},
        local_only=local_only,
        stale_ttl=stale_ttl,
    )
    if inspect.iscoroutinefunction(fn):
        from ._async.cached import AsyncRunner
        from ._faces import async_face

        runner: Any = AsyncRunner(async_face(cache), spec)
    else:
        from ._faces import sync_face
        from ._sync.cached import SyncRunner

        runner = SyncRunner(sync_face(cache), spec)
    if kind != "function":
        return _Method(runner, kind)
    wrapper = runner.function()
    functools.update_wrapper(wrapper, fn)
    controls = _Bound(runner)
    wrapper.uncached = fn
    wrapper.invalidate = controls.invalidate
    wrapper.refresh = controls.refresh
    wrapper.get_cached = controls.get_cached
    wrapper.clear_cache = controls.clear_cache
    return wrapper


def _check_callable(fn: Any, what: str) -> None:
    if not callable(fn):
        raise TypeError(f"{what} needs a function, not {type(fn).__name__}")
    if inspect.isgeneratorfunction(fn) or inspect.isasyncgenfunction(fn):
        raise TypeError(
            f"{what} cannot wrap the generator function {function_name(fn)}: its result "
            "is consumed once; wrap a function that returns a list instead"
        )


def writes(
    cache: CacheBase,
    fn: Callable[..., Any],
    *,
    key: str | Callable[..., Any],
    ttl: float | None,
    tags: Iterable[str] | None,
) -> Any:
    """Wrap a save function for ``cache``; see ``CacheBase.writes``."""
    _check_callable(fn, "@writes")
    if key is None:
        raise TypeError("@writes needs a key: a template or a callable of the arguments")
    keys = KeyMaker(fn, key)
    validate_ttl(ttl)
    tag_list = None if tags is None else tagging.validate_tags(tags)

    if inspect.iscoroutinefunction(fn):
        from ._faces import async_face

        face: Any = async_face(cache)

        @functools.wraps(fn)
        async def save_async(*args: Any, **kwargs: Any) -> Any:
            return await face.write_through(
                keys.text(args, kwargs), lambda: fn(*args, **kwargs), ttl, tags=tag_list
            )

        return save_async

    from ._faces import sync_face

    sync = sync_face(cache)

    @functools.wraps(fn)
    def save(*args: Any, **kwargs: Any) -> Any:
        return sync.write_through(
            keys.text(args, kwargs), lambda: fn(*args, **kwargs), ttl, tags=tag_list
        )

    return save
