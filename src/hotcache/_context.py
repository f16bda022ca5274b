"""Per-context state of a cache: the current tenant and the open request scope.

Both live in ``contextvars``, so each thread and each asyncio task sees its own
(a task starts with a copy of its creator's context, so the tasks of one
request share that request's scope). A cache, its other-face twin and its
decorated functions share one ``Context``.
"""

from __future__ import annotations

import contextvars
from collections.abc import Callable
from types import TracebackType
from typing import Any

from ._core.keys import KeyEncoder, header

__all__ = ["Context", "KeySpace", "Scope", "check_tenant"]

TenantResolver = Callable[[], "str | None"]
_MAX_TENANT_ENCODERS = 1024


def check_tenant(tenant: object) -> str | None:
    """Return a valid tenant name (or ``None``: no tenant), or raise."""
    if tenant is None:
        return None
    if type(tenant) is not str:
        raise TypeError(f"a tenant must be a str, not {type(tenant).__name__}")
    if not tenant:
        raise ValueError("a tenant must be a non-empty str")
    return tenant


class Context:
    """The tenant and request-scope state one cache reads on every call.

    Each variable holds a stack, ``(value, outer)``, so a block restores the
    outer value on exit without tokens: one block object may be entered by many
    threads and tasks at once, each in its own context.
    """

    def __init__(self, tenant: str | TenantResolver | None) -> None:
        self._resolver: TenantResolver | None = None
        self._fixed: str | None = None
        if callable(tenant):
            self._resolver = tenant
        else:
            self._fixed = check_tenant(tenant)
        self._tenant: contextvars.ContextVar[Any] = contextvars.ContextVar(
            "hotcache.tenant", default=None
        )
        self._scope: contextvars.ContextVar[Any] = contextvars.ContextVar(
            "hotcache.request_scope", default=None
        )
        # Set once and never cleared (so no thread can see it flip back): until a
        # tenant or a scope is first used, calls skip both context lookups.
        self.active = tenant is not None

    def tenant(self) -> str | None:
        """Return the tenant this call runs under (``None``: no tenant)."""
        chosen = self._tenant.get()
        if chosen is not None:
            return chosen[0]  # type: ignore[no-any-return]
        if self._resolver is not None:
            return check_tenant(self._resolver())
        return self._fixed

    def scope(self) -> dict[str, Any] | None:
        """Return the open request scope's payloads by backend key, if any."""
        stack = self._scope.get()
        return None if stack is None else stack[0]

    def tenant_block(self, tenant: str | None) -> Scope:
        """Return a block that runs under ``tenant`` (``None``: under no tenant)."""
        check_tenant(tenant)

        def enter() -> None:
            self.active = True
            self._tenant.set((tenant, self._tenant.get()))

        def leave() -> None:
            self._tenant.set(_without(self._tenant.get(), tenant))

        return Scope(enter, leave)

    def scope_block(self) -> Scope:
        """Return a block with a request scope (nested blocks share the outer one)."""

        def enter() -> None:
            self.active = True
            outer = self._scope.get()
            self._scope.set(({} if outer is None else outer[0], outer))

        return Scope(enter, lambda: self._scope.set(self._scope.get()[1]))


def _without(stack: Any, value: Any) -> Any:
    """Return ``stack`` without its topmost frame holding ``value``.

    Usually that is the top. Blocks of one context can be left out of order (two
    generators, each inside its own tenant block, taking turns): the frame is
    then taken out from under the others, which stay as they are.
    """
    if stack is None:
        raise RuntimeError("a tenant block was left twice")
    head, rest = stack
    if head == value:
        return rest
    return (head, _without(rest, value))


class KeySpace:
    """Key encoders for one namespace and version, one per tenant."""

    def __init__(self, namespace: str, version: str | None, context: Context) -> None:
        self.namespace = namespace
        self.version = version
        self.context = context
        self.plain = KeyEncoder(header(namespace, version=version))
        self._tenants: dict[str, KeyEncoder] = {}

    def encoder(self) -> KeyEncoder:
        """Return the encoder for the tenant this call runs under."""
        if not self.context.active:
            return self.plain
        tenant = self.context.tenant()
        if tenant is None:
            return self.plain
        try:
            return self._tenants[tenant]
        except KeyError:
            pass
        if len(self._tenants) >= _MAX_TENANT_ENCODERS:
            self._tenants.clear()
        enc = self._tenants[tenant] = KeyEncoder(
            header(self.namespace, tenant=tenant, version=self.version)
        )
        return enc


class Scope:
    """A block (``with`` or ``async with``) that sets one piece of context state.

    It keeps nothing itself: one object may be entered by several threads and
    tasks at once, and re-entered.
    """

    def __init__(self, enter: Callable[[], None], leave: Callable[[], object]) -> None:
        self._enter = enter
        self._leave = leave

    def __enter__(self) -> Scope:
        self._enter()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._leave()

    async def __aenter__(self) -> Scope:
        return self.__enter__()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.__exit__(exc_type, exc, tb)
