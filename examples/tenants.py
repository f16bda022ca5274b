"""Tenants: one namespace, partitioned per customer
(docs/tenants-and-scopes.md#tenants).

A resolver reads the current tenant from a ContextVar that the service's
authentication step sets per request; tenant() blocks choose one explicitly.
Tenants never see each other's entries, clear() and clear_cache() stay inside
one tenant, and clear() outside every tenant empties the whole namespace.
"""

from __future__ import annotations

import contextvars
from collections.abc import Callable
from typing import TypeVar

import hotcache

T = TypeVar("T")

current_tenant: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "current_tenant", default=None
)
cache = hotcache.Cache("memory://", namespace="example-tenants", tenant=current_tenant.get)
loads: list[tuple[str | None, int]] = []


@cache.cached(ttl=300)
def dashboard(user_id: int) -> dict[str, object]:
    """Each tenant gets its own entries of the same call."""
    loads.append((current_tenant.get(), user_id))
    return {"tenant": current_tenant.get(), "user": user_id}


def as_tenant(tenant: str, work: Callable[[], T]) -> T:
    """Run ``work`` as one request of ``tenant`` (what auth middleware would do)."""
    context = contextvars.copy_context()

    def request() -> T:
        current_tenant.set(tenant)
        return work()

    return context.run(request)


def main() -> None:
    with cache:
        with cache.tenant(None):
            cache.clear()

        # The same key under two tenants: two entries.
        as_tenant("acme", lambda: cache.set("plan", "gold"))
        as_tenant("globex", lambda: cache.set("plan", "free"))
        assert as_tenant("acme", lambda: cache.get("plan")) == "gold"
        assert as_tenant("globex", lambda: cache.get("plan")) == "free"
        assert cache.get("plan", "none") == "none"  # no tenant resolves here

        # A tenant() block wins over the resolver; tenant(None) means no tenant.
        with cache.tenant("acme"):
            assert cache.get("plan") == "gold"
        assert as_tenant("acme", lambda: cache.get("plan")) == "gold"
        cache.set("plan", "shared default")  # outside every tenant
        with cache.tenant(None):
            assert cache.get("plan") == "shared default"

        # Decorated functions: one entry per tenant, and clear_cache() per tenant.
        for tenant in ("acme", "globex"):
            assert as_tenant(tenant, lambda: dashboard(1)) == {"tenant": tenant, "user": 1}
            assert as_tenant(tenant, lambda: dashboard(1)) == {"tenant": tenant, "user": 1}
        assert loads == [("acme", 1), ("globex", 1)]
        with cache.tenant("acme"):
            dashboard.clear_cache()  # acme's tag version only
            assert dashboard.get_cached(1) is hotcache.MISSING
        with cache.tenant("globex"):
            assert dashboard.get_cached(1) == {"tenant": "globex", "user": 1}

        # clear() inside a tenant: that tenant only.
        with cache.tenant("globex"):
            assert cache.clear() >= 2  # its plan, its dashboard entry, its tag version
            assert cache.get("plan", "gone") == "gone"
        assert as_tenant("acme", lambda: cache.get("plan")) == "gold"

        # clear() outside every tenant: the whole namespace, every tenant included.
        with cache.tenant(None):
            assert cache.clear() >= 2
            assert cache.get("plan", "gone") == "gone"
        assert as_tenant("acme", lambda: cache.get("plan", "gone")) == "gone"

        # Bad tenants are refused, not turned into a key.
        for bad in ("", 42):
            try:
                cache.tenant(bad)  # type: ignore[arg-type]
            except (TypeError, ValueError):
                pass
            else:
                raise AssertionError(f"tenant {bad!r} should be refused")
        print("tenants ok:", len(loads), "dashboard loads")


if __name__ == "__main__":
    main()
