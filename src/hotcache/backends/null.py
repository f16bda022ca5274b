"""``null://``: a backend that stores nothing (for tests and for switching caching off)."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence

__all__ = ["NullBackend"]


class NullBackend:
    """Every write is dropped and every read misses."""

    remote = False
    evictions = 0

    def get(self, key: str) -> bytes | None:
        return None

    def get_many(self, keys: Sequence[str]) -> list[bytes | None]:
        return [None] * len(keys)

    def get_many_with_ttl(self, keys: Sequence[str]) -> list[tuple[bytes, float | None] | None]:
        return [None] * len(keys)

    def set(self, key: str, value: bytes, ttl: float | None = None, *, nx: bool = False) -> bool:
        return False

    def set_many(self, items: Mapping[str, bytes], ttl: float | None = None) -> None:
        return None

    def delete(self, key: str) -> bool:
        return False

    def delete_many(self, keys: Sequence[str]) -> int:
        return 0

    def exists(self, key: str) -> bool:
        return False

    def touch(self, key: str, ttl: float | None) -> bool:
        return False

    def set_leased(
        self, key: str, value: bytes, ttl: float | None, lease: str, token: bytes, seen: str
    ) -> bool:
        return False

    def delete_if(self, key: str, value: bytes) -> bool:
        return False

    def touch_if(self, key: str, value: bytes, ttl: float) -> bool:
        return False

    def ttl(self, key: str) -> float | None:
        return None

    def incr(self, key: str, delta: int, ttl: float | None = None) -> int:
        return delta

    def scan(self, pattern: str, count: int = 500) -> Iterator[list[str]]:
        return iter(())

    def delete_matching(self, pattern: str) -> int:
        return 0

    def hset(self, key: str, mapping: Mapping[str, bytes]) -> int:
        return 0

    def hget(self, key: str, field: str) -> bytes | None:
        return None

    def hgetall(self, key: str) -> dict[str, bytes]:
        return {}

    def hdel(self, key: str, fields: Sequence[str]) -> int:
        return 0

    def close(self) -> None:
        return None
