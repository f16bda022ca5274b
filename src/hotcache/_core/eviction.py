"""Choose which resident key leaves a full store: LRU, LFU and W-TinyLFU.

A policy only orders keys; the store owns the values, sizes and expiry. The store
tells the policy about every key that enters (`insert`), is read or overwritten
(`hit`) or leaves for any reason other than eviction (`remove`), and asks it for a
victim (`evict`) while a bound is exceeded. `evict` never picks `keep` (the key the
store is writing) and forgets the key it returns.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from typing import Literal, Protocol

__all__ = ["LFU", "LRU", "POLICIES", "EvictionPolicy", "Policy", "TinyLFU", "make_policy"]

Policy = Literal["lru", "lfu", "tinylfu"]
POLICIES: tuple[Policy, ...] = ("lru", "lfu", "tinylfu")


class EvictionPolicy(Protocol):
    """Order resident keys for eviction."""

    @property
    def hit(self) -> Callable[[str], object]:
        """Return the callable that records an access to a resident key (the read path)."""
        ...

    def insert(self, key: str) -> None:
        """Start tracking a new resident key."""
        ...

    def remove(self, key: str) -> None:
        """Stop tracking a key that left the store."""
        ...

    def evict(self, keep: str) -> str:
        """Pick, forget and return a victim other than `keep`; the store holds two keys or more."""
        ...

    def clear(self) -> None:
        """Forget every resident key."""
        ...

    def count_accesses(self, n: int) -> None:
        """Record `n` reads that the store counted in bulk (for policies that age)."""
        ...


def make_policy(policy: str, capacity: int | None) -> EvictionPolicy:
    """Build the named policy; `capacity` is the entry bound when one is known."""
    if policy == "lru":
        return LRU()
    if policy == "lfu":
        return LFU()
    if policy == "tinylfu":
        return TinyLFU(capacity)
    raise ValueError(f"unknown eviction policy {policy!r}; expected one of {', '.join(POLICIES)}")


def _first_other(order: OrderedDict[str, int] | OrderedDict[str, None], keep: str) -> str | None:
    """Return the oldest key of `order` that is not `keep`."""
    for key in order:
        if key != keep:
            return key
    return None


class LRU:
    """Evict the least recently used key."""

    __slots__ = ("_order", "hit")

    def __init__(self) -> None:
        self._order: OrderedDict[str, None] = OrderedDict()
        # The C method itself is the hit callable: the read path pays one builtin call.
        self.hit: Callable[[str], object] = self._order.move_to_end

    def insert(self, key: str) -> None:
        self._order[key] = None

    def remove(self, key: str) -> None:
        del self._order[key]

    def evict(self, keep: str) -> str:
        key = _first_other(self._order, keep)
        assert key is not None, "evict() needs a key other than keep"
        del self._order[key]
        return key

    def clear(self) -> None:
        self._order.clear()

    def count_accesses(self, n: int) -> None:
        pass


class _Bucket:
    """Hold the keys read exactly `count` times, oldest first, in a ring of buckets."""

    __slots__ = ("count", "keys", "next", "prev")

    def __init__(self, count: int) -> None:
        self.count = count
        self.keys: OrderedDict[str, None] = OrderedDict()
        self.prev: _Bucket = self
        self.next: _Bucket = self


class LFU:
    """Evict the least frequently used key, the least recent one among ties.

    Counts are exact and never age (use tinylfu for a shifting workload); every
    operation is O(1): buckets of equal counts form a ring sorted by count.
    """

    __slots__ = ("_head", "_where")

    def __init__(self) -> None:
        self._head = _Bucket(0)
        self._where: dict[str, _Bucket] = {}

    def _bucket_after(self, node: _Bucket, count: int) -> _Bucket:
        nxt = node.next
        if nxt.count == count:
            return nxt
        bucket = _Bucket(count)
        bucket.prev, bucket.next = node, nxt
        node.next = nxt.prev = bucket
        return bucket

    @staticmethod
    def _drop(bucket: _Bucket, key: str) -> None:
        del bucket.keys[key]
        if not bucket.keys:
            bucket.prev.next = bucket.next
            bucket.next.prev = bucket.prev

    def hit(self, key: str) -> None:
        bucket = self._where[key]
        if len(bucket.keys) == 1 and bucket.next.count != bucket.count + 1:
            # Alone in its bucket, with no neighbour to join: renumber in place.
            bucket.count += 1
            return
        higher = self._bucket_after(bucket, bucket.count + 1)
        higher.keys[key] = None
        self._where[key] = higher
        self._drop(bucket, key)

    def insert(self, key: str) -> None:
        bucket = self._bucket_after(self._head, 1)
        bucket.keys[key] = None
        self._where[key] = bucket

    def remove(self, key: str) -> None:
        self._drop(self._where.pop(key), key)

    def evict(self, keep: str) -> str:
        bucket = self._head.next
        while bucket is not self._head:
            key = _first_other(bucket.keys, keep)
            if key is not None:
                self.remove(key)
                return key
            bucket = bucket.next
        raise AssertionError("evict() needs a key other than keep")

    def clear(self) -> None:
        self._head.prev = self._head.next = self._head
        self._where.clear()

    def count_accesses(self, n: int) -> None:
        pass


_DEPTH = 4
_MAX_COUNT = 15  # 4-bit counters as in Caffeine: frequencies saturate fast and age fast
_HALVE = bytes(i >> 1 for i in range(256))


class TinyLFU:
    """Evict by W-TinyLFU (Caffeine's design).

    New keys enter a window LRU (~1% of the capacity). The main space is a
    segmented LRU: keys land in probation and move to protected (~80% of main)
    when read again. When a bound is hit, the window's oldest key (the candidate)
    is admitted into probation only if a count-min sketch says it is used more
    often than probation's oldest key (the victim); otherwise the candidate goes.
    A one-pass scan therefore cycles through the window and never displaces a
    frequently read working set.

    The sketch has 4 rows of 4-bit counters (bytes capped at 15), each row 4x the
    capacity wide: Caffeine's density of 16 counters per entry, so that a counter
    takes ~2.5 increments per period. All counters halve every 10 x capacity
    accesses, so old popularity fades. The capacity here is the number of keys
    held at most so far (rounded up to a power of two), so a huge bound costs
    nothing up front. Hashing uses `hash()`: the sketch lives and dies with the
    process.

    Reads of resident keys are not probed into the sketch one by one (four probes
    cost more than the rest of a read): each key's reads are counted in its
    segment and folded into the sketch when the key leaves, and a resident key's
    frequency is sketch + pending count. The estimate is the same; the read path
    pays one dict update.
    """

    __slots__ = (
        "_events",
        "_fixed",
        "_hwm",
        "_mask",
        "_pmax",
        "_prob",
        "_prot",
        "_sample",
        "_table",
        "_win",
        "_wmax",
    )

    def __init__(self, capacity: int | None = None) -> None:
        # Segments map key -> reads not yet folded into the sketch.
        self._win: OrderedDict[str, int] = OrderedDict()
        self._prob: OrderedDict[str, int] = OrderedDict()
        self._prot: OrderedDict[str, int] = OrderedDict()
        self._fixed = capacity
        self._hwm = 0
        self._wmax = self._pmax = 1
        self._mask = 0
        self._table = bytearray()
        self._sample = self._events = 0
        self._grow(1)

    def _grow(self, n: int) -> None:
        """Size segments and sketch for a new high-water mark of `n` resident keys."""
        self._hwm = n
        # Without a fixed entry bound (a byte bound only) the largest size seen is the capacity.
        cap = n if self._fixed is None else self._fixed
        self._wmax = max(1, cap // 100)
        self._pmax = max(1, (cap - self._wmax) * 4 // 5)
        width = 4 << max(4, (n - 1).bit_length())
        if width > self._mask + 1:
            # A wider sketch starts empty (old counters map to other cells); pending
            # counts of resident keys survive, so the working set keeps its standing.
            self._mask = width - 1
            self._table = bytearray(_DEPTH * width)
            self._sample = 10 * (width >> 2)
            self._events = 0

    # -- sketch ---------------------------------------------------------------

    def _cells(self, key: str) -> tuple[int, int, int, int]:
        h = hash(key)
        mask = self._mask
        step = (h >> 32) | 1  # double hashing: row r probes h + r * step
        width = mask + 1
        return (
            h & mask,
            ((h + step) & mask) + width,
            ((h + 2 * step) & mask) + 2 * width,
            ((h + 3 * step) & mask) + 3 * width,
        )

    def _add(self, key: str, count: int) -> None:
        table = self._table
        for cell in self._cells(key):
            table[cell] = min(_MAX_COUNT, table[cell] + count)

    def _estimate(self, key: str, pending: int) -> int:
        table = self._table
        return min(_MAX_COUNT, pending + min(table[cell] for cell in self._cells(key)))

    def count_accesses(self, n: int) -> None:
        """Record `n` accesses; age the sketch once per sample period."""
        self._events += n
        if self._events >= self._sample:
            self._events //= 2
            self._table = self._table.translate(_HALVE)
            for segment in (self._win, self._prob, self._prot):
                for key, pending in list(segment.items()):
                    if pending:
                        segment[key] = pending >> 1

    def frequency(self, key: str) -> int:
        """Return the estimated recent access count of `key` (0..15)."""
        for segment in (self._prot, self._prob, self._win):
            pending = segment.get(key)
            if pending is not None:
                return self._estimate(key, pending)
        return self._estimate(key, 0)

    # -- policy ---------------------------------------------------------------

    def hit(self, key: str) -> None:
        prot = self._prot
        if key in prot:
            prot[key] += 1
            prot.move_to_end(key)
            return
        win = self._win
        if key in win:
            win[key] += 1
            win.move_to_end(key)
            return
        # Read again while on probation: promote, demoting protected's oldest if full.
        prot[key] = self._prob.pop(key) + 1
        if len(prot) > self._pmax:
            old, pending = prot.popitem(last=False)
            self._prob[old] = pending

    def insert(self, key: str) -> None:
        win, prob = self._win, self._prob
        n = len(win) + len(prob) + len(self._prot) + 1
        if n > self._hwm:
            self._grow(n)
        # Only an insert that needed no eviction leaves the window over its share:
        # there was room, so its overflow enters probation without a contest.
        while len(win) > self._wmax:
            old, pending = win.popitem(last=False)
            prob[old] = pending
        self._add(key, 1)
        self.count_accesses(1)
        win[key] = 0

    def _leave(self, key: str, pending: int) -> str:
        if pending:
            self._add(key, pending)
        return key

    def remove(self, key: str) -> None:
        for segment in (self._win, self._prob, self._prot):
            pending = segment.pop(key, None)
            if pending is not None:
                self._leave(key, pending)
                return
        raise KeyError(key)

    def evict(self, keep: str) -> str:
        win, prob, prot = self._win, self._prob, self._prot
        if len(win) > self._wmax and (prob or prot):
            candidate = _first_other(win, keep)
            assert candidate is not None  # the window holds two keys or more
            main = prob if prob else prot
            victim = _first_other(main, keep)
            if victim is None:
                return self._leave(candidate, win.pop(candidate))
            # Ties go to the incumbent: that is what makes a scan harmless.
            if self._estimate(candidate, win[candidate]) > self._estimate(victim, main[victim]):
                prob[candidate] = win.pop(candidate)
                return self._leave(victim, main.pop(victim))
            return self._leave(candidate, win.pop(candidate))
        for segment in (prob, prot, win):
            victim = _first_other(segment, keep)
            if victim is not None:
                return self._leave(victim, segment.pop(victim))
        raise AssertionError("evict() needs a key other than keep")

    def clear(self) -> None:
        # The sketch stays: how often keys were wanted is still true after a flush.
        for segment in (self._win, self._prob, self._prot):
            for key, pending in segment.items():
                self._leave(key, pending)
            segment.clear()
