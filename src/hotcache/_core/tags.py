"""Tag versions: invalidate every entry that carries a tag in O(1).

Each tag has a version, a random 63-bit number stored under its own key. An
entry records the version of each of its tags when its value was read or
computed (in the envelope's metadata); it is current only while every one of
those versions is still the tag's version. Invalidating a tag writes a fresh
random version: one write, however many entries carry the tag.

Versions are random, not counters, so a version key lost to eviction or
``clear()`` cannot come back at an old number and revive the entries written
under it: a missing version makes every entry that carries the tag stale, and
the next writer creates a new one.

A decorated function's entries carry the tag ``fn:<module.qualname>``, which is
how ``clear_cache()`` drops all of them at once.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping, Sequence

__all__ = [
    "LOCAL_ONLY_CARRIED",
    "LOCAL_ONLY_TAG",
    "current",
    "function_tag",
    "new_version",
    "parse_version",
    "validate_tags",
    "version_ttl",
]

MAX_TAGS = 64
MIN_VERSION_TTL = 86400.0
_FUNCTION = "fn:"


# What the shared tier holds in place of an entry kept in the local tiers alone
# (``local_only=True``): an envelope carrying this tag at version 0, which no
# tag ever has (versions are odd), so it reads as a stale entry everywhere. Its
# only job is to be there: a change of the key anywhere (a delete, an expiry,
# another write) then reaches every process's tier like any other change.
LOCAL_ONLY_TAG = "\x00local-only"
LOCAL_ONLY_CARRIED = ((LOCAL_ONLY_TAG, 0),)


def new_version() -> int:
    """Return a fresh version: random (per process, fork-safe), non-zero, 63 bits."""
    return (int.from_bytes(os.urandom(8), "big") >> 1) | 1


def parse_version(raw: object) -> int | None:
    """Return the version stored in a tag key's payload (``None``: absent or unreadable)."""
    if not isinstance(raw, bytes) or not raw.isdigit() or len(raw) > 19:
        return None
    return int(raw)


def function_tag(name: str) -> str:
    """Return the tag every entry of the decorated function ``name`` carries."""
    return _FUNCTION + name


def version_ttl(tag: str, lifetime: float | None) -> float | None:
    """Return how long a tag's version key lives, made for an entry of ``lifetime``.

    Tags computed from arguments would otherwise leave one key per value behind
    forever. A version key that expires makes the entries carrying it stale
    (extra misses, never a stale hit), so its lifetime need only be generous:
    twice the entry's, and at least a day. A function's own tag (one per
    function) and tags of entries that never expire keep theirs for good.
    """
    if lifetime is None or tag.startswith(_FUNCTION):
        return None
    return max(2 * lifetime, MIN_VERSION_TTL)


def validate_tags(tags: Iterable[str]) -> tuple[str, ...]:
    """Return tags as a tuple of unique non-empty strings, in their first order.

    Raises:
        TypeError: a tag is not a ``str``.
        ValueError: a tag is empty, or there are more than ``MAX_TAGS``.
    """
    if isinstance(tags, (str, bytes)):
        raise TypeError("tags must be a list of str, not a single string")
    out: dict[str, None] = {}
    for tag in tags:
        if type(tag) is not str:
            raise TypeError(f"tags must be str, not {type(tag).__name__}")
        if not tag:
            raise ValueError("tags must not be empty strings")
        if tag[0] == "\x00":
            raise ValueError("tags starting with NUL are reserved for hotcache")
        try:
            tag.encode("utf-8")
        except UnicodeEncodeError:
            raise ValueError("tags must not contain lone surrogates") from None
        out[tag] = None
    if len(out) > MAX_TAGS:
        raise ValueError(f"an entry may carry at most {MAX_TAGS} tags, got {len(out)}")
    return tuple(out)


def current(carried: Sequence[tuple[str, int]], versions: Mapping[str, int | None]) -> bool | None:
    """Decide whether an entry that carries ``carried`` is still current.

    ``versions`` maps the tags read so far to their version (``None``: the tag
    has none, so every entry that carries it is stale). Returns ``None`` when
    a carried tag was not read: the caller reads it and asks again.
    """
    unknown = False
    for tag, version in carried:
        if tag not in versions:
            unknown = True
        elif versions[tag] != version:
            return False
    return None if unknown else True
