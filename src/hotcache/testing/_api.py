"""Conformance tests of the operations: reads, writes, lifetimes, counters, hashes, lifecycle."""

from __future__ import annotations

import math
import sys
from typing import Any

import pytest

from .._core.freshness import FOREVER
from .._core.missing import MISSING
from ..backends import payload_digest
from ._harness import Face, Harness, needs_storage, without_storage

__all__ = ["ApiTests", "NullTests"]

LONG = 1000.0  # a lifetime no test outlives: "not yet expired" never depends on timing
SHORT = 0.05
BAD_TTLS: tuple[Any, ...] = (-1, -0.001, math.nan, "10", True, False, b"1", [1], -math.inf)


def _is_seconds(left: Any, most: float) -> bool:
    return isinstance(left, (int, float)) and not isinstance(left, bool) and 0 < left <= most


class Calls:
    """A producer that counts its calls."""

    def __init__(self, value: Any = "produced", error: BaseException | None = None) -> None:
        self.value = value
        self.error = error
        self.count = 0

    def __call__(self) -> Any:
        self.count += 1
        if self.error is not None:
            raise self.error
        return self.value


class ApiTests:
    """The operations of ``Cache``/``AsyncCache`` on a backend that stores values."""

    def test_get_miss_returns_default(self, hc: Harness) -> None:
        c = hc.cache
        assert c.get("absent") is None
        assert c.get("absent", "fallback") == "fallback"
        assert c.get("absent", MISSING) is MISSING
        assert c.get("absent", default=0) == 0

    @needs_storage
    def test_set_get_overwrite(self, hc: Harness) -> None:
        c = hc.cache
        assert c.set("k", "v1") is True
        assert c.get("k") == "v1"
        assert c.set("k", {"v": 2}) is True
        assert c.get("k") == {"v": 2}
        falsy: Any
        for falsy in (0, "", b"", False, [], 0.0):
            c.set("falsy", falsy)
            got = c.get("falsy", "default")
            assert got == falsy and type(got) is type(falsy)

    @needs_storage
    def test_stored_none_is_a_value(self, hc: Harness) -> None:
        c = hc.cache
        assert c.set("none", None) is True
        assert c.get("none", "default") is None
        assert c.get("none", MISSING) is None
        assert c.exists("none") is True
        assert c.get_many(["none", "absent"]) == {"none": None}
        producer = Calls()
        assert c.get_or_set("none", hc.producer(producer)) is None
        assert producer.count == 0
        assert c.add("none", "other") is False
        assert c.get("none", "default") is None

    @needs_storage
    def test_add_and_set_nx(self, hc: Harness) -> None:
        c = hc.cache
        assert c.add("k", 1) is True
        assert c.add("k", 2) is False
        assert c.get("k") == 1
        assert c.set("k", 3, nx=True) is False
        assert c.get("k") == 1
        assert c.set("other", 4, nx=True) is True
        assert c.get("other") == 4
        c.delete("k")
        assert c.add("k", 5, ttl=LONG) is True
        assert c.get("k") == 5
        assert _is_seconds(c.ttl("k"), LONG)

    @needs_storage
    def test_add_after_expiry(self, hc: Harness) -> None:
        c = hc.cache
        c.set("k", "old", ttl=SHORT)
        hc.wait_until(lambda: not c.exists("k"), "an entry with a 50 ms ttl expires")
        assert c.add("k", "new") is True
        assert c.get("k") == "new"

    @needs_storage
    def test_delete_and_exists(self, hc: Harness) -> None:
        c = hc.cache
        assert c.exists("k") is False
        assert c.delete("k") is False
        c.set("k", "v")
        assert c.exists("k") is True
        assert c.delete("k") is True
        assert c.exists("k") is False
        assert c.get("k", MISSING) is MISSING
        assert c.delete("k") is False

    @needs_storage
    def test_ttl_reports_seconds_none_or_missing(self, hc: Harness) -> None:
        c = hc.cache
        assert c.ttl("absent") is MISSING
        c.set("forever", 1)
        assert c.ttl("forever") is None
        c.set("short", 1, ttl=LONG)
        assert _is_seconds(c.ttl("short"), LONG)
        assert c.ttl("short") > LONG - 60
        c.set("forever", 2, ttl=FOREVER)
        assert c.ttl("forever") is None
        c.delete("short")
        assert c.ttl("short") is MISSING

    @needs_storage
    def test_default_ttl_and_forever(self, hc: Harness) -> None:
        c = hc.open(default_ttl=LONG)
        c.set("default", 1)
        assert _is_seconds(c.ttl("default"), LONG)
        c.set("explicit", 1, ttl=10)
        assert _is_seconds(c.ttl("explicit"), 10)
        c.set("forever", 1, ttl=FOREVER)
        assert c.ttl("forever") is None
        c.set_many({"m1": 1, "m2": 2})
        assert _is_seconds(c.ttl("m1"), LONG)
        assert c.get_or_set("produced", Calls()) == "produced"
        assert _is_seconds(c.ttl("produced"), LONG * 1.1)

    @needs_storage
    def test_entries_expire(self, hc: Harness) -> None:
        c = hc.cache
        c.set("k", "v", ttl=SHORT)
        c.set_many({"m1": 1, "m2": 2}, ttl=SHORT)
        c.set("kept", "v", ttl=LONG)
        hc.wait_until(lambda: c.get("k", MISSING) is MISSING, "a 50 ms entry expires")
        hc.wait_until(lambda: c.get_many(["m1", "m2"]) == {}, "50 ms set_many entries expire")
        assert c.exists("k") is False
        assert c.ttl("k") is MISSING
        assert c.get("kept") == "v"

    @needs_storage
    def test_ttl_zero_stores_nothing(self, hc: Harness) -> None:
        c = hc.cache
        assert c.set("k", "v", ttl=0) is False
        assert c.exists("k") is False
        c.set("old", "v")
        c.set("old", "new", ttl=0)
        assert c.get("old", MISSING) is MISSING
        c.set_many({"a": 1, "b": 2})
        c.set_many({"a": 3, "b": 4}, ttl=0)
        assert c.get_many(["a", "b"]) == {}
        c.set("kept", "v")
        assert c.add("kept", "other", ttl=0) is False
        assert c.get("kept") == "v"
        assert c.get_or_set("produced", Calls("x"), ttl=0) == "x"
        assert c.exists("produced") is False
        assert c.incr("counter", ttl=0) == 1
        assert c.exists("counter") is False
        assert c.incr("counter", ttl=0) == 1
        c.set("existing", 5)
        assert c.incr("existing", ttl=0) == 6  # ttl applies only on creation
        assert c.get("existing") == 6

    def test_bad_ttl_changes_nothing(self, hc: Harness) -> None:
        c = hc.cache
        c.set("k", "before")
        for bad in BAD_TTLS:
            with pytest.raises(ValueError):
                c.set("k", "after", ttl=bad)
            with pytest.raises(ValueError):
                c.set("new", "after", ttl=bad)
            with pytest.raises(ValueError):
                c.add("new", "after", ttl=bad)
            with pytest.raises(ValueError):
                c.set_many({"k": "after", "new": "after"}, ttl=bad)
            with pytest.raises(ValueError):
                c.touch("k", bad)
            with pytest.raises(ValueError):
                c.incr("counter", ttl=bad)
            producer = Calls()
            with pytest.raises(ValueError):
                c.get_or_set("new", hc.producer(producer), ttl=bad)
            assert producer.count == 0
        assert c.exists("new") is False
        assert c.exists("counter") is False
        if hc.stores:
            assert c.get("k") == "before"
            assert c.ttl("k") is None
        with pytest.raises(ValueError):
            hc.open(default_ttl=-1)

    @needs_storage
    def test_very_long_ttl_is_stored(self, hc: Harness) -> None:
        c = hc.cache
        for ttl in (1e9, float(sys.maxsize), 2**80, 1e300):
            assert c.set("k", ttl, ttl=ttl) is True, ttl
            assert c.get("k") == ttl
            left = c.ttl("k")
            assert left is None or left > 1e8, (ttl, left)
            c.set_many({"m": ttl}, ttl=ttl)
            assert c.get("m") == ttl
            assert c.touch("k", ttl) is True
            assert c.incr(f"n{ttl}", ttl=ttl) == 1
            assert c.get_or_set(f"p{ttl}", Calls(ttl), ttl=ttl) == ttl
            assert c.get(f"p{ttl}") == ttl

    @needs_storage
    def test_touch(self, hc: Harness) -> None:
        c = hc.cache
        assert c.touch("absent", LONG) is False
        assert c.exists("absent") is False
        c.set("k", "v")
        assert c.touch("k", LONG) is True
        assert _is_seconds(c.ttl("k"), LONG)
        assert c.touch("k", None) is True
        assert c.ttl("k") is None
        assert c.touch("k", FOREVER) is True
        assert c.ttl("k") is None
        assert c.get("k") == "v"
        assert c.touch("k", SHORT) is True
        hc.wait_until(lambda: not c.exists("k"), "a touched 50 ms entry expires")
        c.set("zero", "v")
        c.touch("zero", 0)
        assert c.exists("zero") is False

    @needs_storage
    def test_incr_decr(self, hc: Harness) -> None:
        c = hc.cache
        assert c.incr("n") == 1
        assert c.incr("n") == 2
        assert c.incr("n", 10) == 12
        assert c.incr("n", -20) == -8
        assert c.decr("n") == -9
        assert c.decr("n", -4) == -5
        assert c.get("n") == -5
        assert c.decr("fresh", 3) == -3
        c.set("set", 41)
        assert c.incr("set") == 42
        assert c.get("set") == 42
        assert c.incr(7) == 1
        assert c.get("7") == 1
        assert c.incr("big", 2**62) == 2**62

    @needs_storage
    def test_incr_ttl_applies_only_on_creation(self, hc: Harness) -> None:
        c = hc.cache
        assert c.incr("n", ttl=100) == 1
        assert _is_seconds(c.ttl("n"), 100)
        assert c.incr("n", ttl=LONG * 10) == 2
        assert _is_seconds(c.ttl("n"), 100)
        assert c.incr("n") == 3
        assert _is_seconds(c.ttl("n"), 100)
        c.set("plain", 5)
        assert c.incr("plain", ttl=100) == 6
        assert c.ttl("plain") is None
        assert c.incr("short", ttl=SHORT) == 1
        hc.wait_until(lambda: not c.exists("short"), "a counter with a 50 ms ttl expires")
        assert c.incr("short") == 1
        assert c.ttl("short") is None

    @needs_storage
    def test_incr_creates_counters_with_the_default_ttl(self, hc: Harness) -> None:
        c = hc.open(default_ttl=100)
        assert c.incr("n") == 1
        assert _is_seconds(c.ttl("n"), 100)
        assert c.incr("forever", ttl=FOREVER) == 1
        assert c.ttl("forever") is None

    @needs_storage
    def test_incr_refuses_a_non_integer_value(self, hc: Harness) -> None:
        c = hc.cache
        values: list[Any] = ["abc", "5", b"5", 1.5, None, [1], {"a": 1}, True, 2**70, -(2**70)]
        for value in values:
            c.set("v", value)
            with pytest.raises(ValueError):
                c.incr("v")
            with pytest.raises(ValueError):
                c.decr("v")
            got = c.get("v", MISSING)
            assert got == value and type(got) is type(value), value
        c.set("max", 2**63 - 1)
        with pytest.raises(ValueError):
            c.incr("max")
        assert c.get("max") == 2**63 - 1

    def test_incr_refuses_a_non_int_delta(self, hc: Harness) -> None:
        c = hc.cache
        for delta in (1.5, 1.0, "1", b"1", True, None, [1]):
            with pytest.raises(TypeError):
                c.incr("n", delta)
            with pytest.raises(TypeError):
                c.decr("n", delta)
        assert c.exists("n") is False

    @needs_storage
    def test_incr_is_atomic(self, hc: Harness) -> None:
        workers, rounds = 4, 50

        def bump(face: Any) -> None:
            for _ in range(rounds):
                face.incr("n")
                face.decr("d")

        hc.concurrently(workers, bump)
        assert hc.cache.get("n") == workers * rounds
        assert hc.cache.get("d") == -workers * rounds

    @needs_storage
    def test_backend_deletes_and_touches_only_the_value_it_is_told(self, hc: Harness) -> None:
        c = hc.cache
        key, other = c.key("lock"), c.key("other")
        backend = Face(c.cache._backend, hc.session.loop)  # type: ignore[arg-type]
        assert backend.set(key, b"mine", 60)
        assert not backend.delete_if(key, b"theirs")
        assert not backend.touch_if(key, b"theirs", LONG)
        left = backend.ttl(key)
        assert left is not None and left <= 60
        assert backend.touch_if(key, b"mine", LONG)
        left = backend.ttl(key)
        assert left is not None and 60 < left <= LONG
        assert backend.delete_if(key, b"mine")
        assert backend.get(key) is None
        assert not backend.delete_if(key, b"mine")  # absent: nothing to delete
        assert not backend.touch_if(key, b"mine", LONG)
        c.hset("hash", "f", 1)  # a hash never equals a value
        assert not backend.delete_if(c.key("hash"), b"")
        assert backend.set(other, b"x", 60) and not backend.delete_if(other, b"x2")
        assert backend.get(other) == b"x"

    @needs_storage
    def test_backend_writes_under_a_lease_over_what_it_saw(self, hc: Harness) -> None:
        c = hc.cache
        key, lease = c.key("fenced"), c.key("fenced-lease")
        backend = Face(c.cache._backend, hc.session.loop)  # type: ignore[arg-type]
        absent = payload_digest(None)
        assert not backend.set_leased(key, b"v0", LONG, lease, b"t1", absent)  # no lease
        assert backend.get(key) is None
        assert backend.set(lease, b"t1", LONG, nx=True)
        assert not backend.set_leased(key, b"v1", LONG, lease, b"t2", absent)  # not its token
        assert backend.get(key) is None and backend.get(lease) == b"t1"
        assert backend.set_leased(key, b"v1", LONG, lease, b"t1", absent)
        assert backend.get(key) == b"v1" and backend.get(lease) is None  # lease spent
        left = backend.ttl(key)
        assert left is not None and 0 < left <= LONG
        assert not backend.set_leased(key, b"v2", LONG, lease, b"t1", payload_digest(b"v1"))
        assert backend.get(key) == b"v1"  # spent: once only
        assert backend.set(lease, b"t3", LONG, nx=True)
        assert not backend.set_leased(key, b"v3", None, lease, b"t3", absent)  # it holds v1
        assert backend.get(lease) == b"t3"  # refused: nothing changed, lease kept
        assert backend.set_leased(key, b"v3", None, lease, b"t3", payload_digest(b"v1"))
        assert backend.get(key) == b"v3" and backend.ttl(key) == math.inf
        c.hset("hash", "f", 1)  # a hash is never what a producer saw
        assert backend.set(lease, b"t4", LONG, nx=True)
        assert not backend.set_leased(c.key("hash"), b"x", 60, lease, b"t4", absent)

    @needs_storage
    def test_backend_reads_values_with_their_ttl(self, hc: Harness) -> None:
        c = hc.cache
        c.set("short", "s", ttl=LONG)
        c.set("forever", "f", ttl=FOREVER)
        c.hset("hash", "field", 1)
        keys = [c.key(name) for name in ("short", "forever", "absent", "hash", "short")]
        backend = Face(c.cache._backend, hc.session.loop)  # type: ignore[arg-type]
        got = backend.get_many_with_ttl(keys)
        assert backend.get_many_with_ttl([]) == []
        assert [None if pair is None else pair[0] for pair in got] == [
            *hc.raw.get_many(keys[:2]),
            None,
            None,  # a hash reads as absent, as in get_many
            hc.raw.get(keys[0]),
        ]
        short, forever = got[0], got[1]
        assert short is not None and _is_seconds(short[1], LONG)
        assert forever is not None and forever[1] is None

    @needs_storage
    def test_many(self, hc: Harness) -> None:
        c = hc.cache
        assert c.get_many([]) == {}
        c.set_many({})
        assert c.delete_many([]) == 0
        c.set_many({"a": 1, 2: None, b"c": [3], "d": "four"})
        assert c.get_many(["a", 2, b"c", "d", "absent"]) == {
            "a": 1,
            2: None,
            b"c": [3],
            "d": "four",
        }
        # Results are keyed by the keys asked for, whichever spelling that was.
        assert c.get_many([b"a", "2", 2]) == {b"a": 1, "2": None, 2: None}
        assert c.get_many(iter(["a", "d"])) == {"a": 1, "d": "four"}
        assert c.delete_many(["a", "2", "absent"]) == 2
        assert c.get_many(["a", 2, b"c", "d"]) == {b"c": [3], "d": "four"}
        assert c.delete_many(iter(["c", "d"])) == 2
        assert c.get_many(["c", "d"]) == {}
        c.set_many({"x": 1, "y": 2}, ttl=LONG)
        assert _is_seconds(c.ttl("x"), LONG) and _is_seconds(c.ttl("y"), LONG)
        # The later spelling of one key wins; a key named twice is deleted once.
        c.set_many({1: "int", "1": "str", b"1": "bytes"})
        assert c.get(1) == "bytes"
        assert c.delete_many([1, "1", b"1", "1"]) == 1
        batch = {f"key{i}": i for i in range(1200)}
        c.set_many(batch)
        assert c.get_many([*batch, "absent"]) == batch
        assert c.delete_many([*batch, "absent"]) == len(batch)
        assert c.get_many(list(batch)) == {}

    @needs_storage
    def test_get_or_set(self, hc: Harness) -> None:
        c = hc.cache
        producer = Calls({"made": 1})
        assert c.get_or_set("k", hc.producer(producer)) == {"made": 1}
        assert producer.count == 1
        assert c.get("k") == {"made": 1}
        again = Calls("other")
        assert c.get_or_set("k", hc.producer(again)) == {"made": 1}
        assert again.count == 0
        assert c.get_or_set("t", Calls("v"), ttl=LONG, jitter=0) == "v"
        assert _is_seconds(c.ttl("t"), LONG)
        assert c.get_or_set("j", Calls("v"), ttl=LONG) == "v"  # default jitter: ±10 %
        assert _is_seconds(c.ttl("j"), LONG * 1.1)
        nothing = Calls(None)
        assert c.get_or_set("n", hc.producer(nothing)) is None
        assert c.get_or_set("n", hc.producer(nothing)) is None
        assert nothing.count == 1

    def test_get_or_set_producer_error_propagates(self, hc: Harness) -> None:
        c = hc.cache

        class Boom(Exception):
            pass

        failing = Calls(error=Boom("no"))
        with pytest.raises(Boom):
            c.get_or_set("k", hc.producer(failing))
        assert failing.count == 1
        assert c.exists("k") is False
        assert c.get("k", MISSING) is MISSING

    @needs_storage
    def test_hashes(self, hc: Harness) -> None:
        c = hc.cache
        assert c.hgetall("h") == {}
        assert c.hget("h", "f") is None
        assert c.hget("h", "f", "dflt") == "dflt"
        assert c.hdel("h", "f") == 0
        assert c.hset("h", "a", 1) == 1
        assert c.hset("h", "a", 2) == 0
        assert c.hset("h", mapping={"b": None, 3: [3], b"d": {"d": 4}}) == 3
        assert c.hset("h", "e", "five", mapping={"a": "one"}) == 1
        assert c.hget("h", "a") == "one"
        assert c.hget("h", "b", "dflt") is None
        assert c.hget("h", "3") == [3]
        assert c.hget("h", b"3") == [3]
        assert c.hget("h", "d") == {"d": 4}
        assert c.hgetall("h") == {"a": "one", "b": None, "3": [3], "d": {"d": 4}, "e": "five"}
        assert c.exists("h") is True
        assert c.hdel("h", "a", 3, "absent") == 2
        assert c.hdel("h") == 0
        assert c.hgetall("h") == {"b": None, "d": {"d": 4}, "e": "five"}
        assert c.hdel("h", "b", "d", "e") == 3
        assert c.hgetall("h") == {}
        assert c.exists("h") is False
        c.hset("h2", "f", "v")
        assert c.delete("h2") is True
        assert c.hgetall("h2") == {}

    def test_hset_needs_a_field(self, hc: Harness) -> None:
        c = hc.cache
        with pytest.raises(ValueError):
            c.hset("h")
        with pytest.raises(ValueError):
            c.hset("h", mapping={})
        assert c.exists("h") is False

    def test_close_and_context_manager(self, hc: Harness) -> None:
        with hc.open() as entered:
            c = entered
            assert c.set("k", "v") is hc.stores
        c.close()  # closing twice is harmless
        with hc.open() as again:
            assert again.get("k") == ("v" if hc.stores else None)
        opened = hc.open()
        opened.close()
        opened.close()

    def test_context_manager_returns_the_cache(self, hc: Harness) -> None:
        face = hc.open()
        with face as entered:
            assert entered.cache is face.cache

    @needs_storage
    def test_stats_count_hits_misses_sets_deletes(self, hc: Harness) -> None:
        c = hc.open()
        before = c.stats()
        for name in ("hits", "misses", "sets", "deletes", "errors", "evictions", "healed"):
            assert isinstance(before[name], int)
            assert before[name] == 0, name
        c.get("k")
        c.set("k", 1)
        c.get("k")
        c.get("k")
        c.set_many({"a": 1, "b": 2})
        c.get_many(["a", "b", "c"])
        c.delete("k")
        c.delete_many(["a", "b"])
        after = c.stats()
        assert after["hits"] == 4
        assert after["misses"] == 2
        assert after["sets"] == 3
        assert after["deletes"] == 3
        assert after["errors"] == 0
        assert after["healed"] == 0


class NullTests:
    """What a backend that stores nothing (``null://``) must do: miss, always."""

    @without_storage
    def test_null_stores_nothing(self, hc: Harness) -> None:
        c = hc.cache
        assert c.set("k", "v") is False
        assert c.get("k") is None
        assert c.get("k", MISSING) is MISSING
        assert c.exists("k") is False
        assert c.ttl("k") is MISSING
        assert c.add("k", "v") is False
        assert c.touch("k", LONG) is False
        assert c.delete("k") is False
        c.set_many({"a": 1, "b": 2})
        assert c.get_many(["a", "b"]) == {}
        assert c.delete_many(["a", "b"]) == 0
        c.hset("h", "f", "v")
        assert c.hget("h", "f") is None
        assert c.hgetall("h") == {}
        assert c.hdel("h", "f") == 0
        assert c.clear() == 0

    @without_storage
    def test_null_get_or_set_always_produces(self, hc: Harness) -> None:
        producer = Calls("v")
        for _ in range(3):
            assert hc.cache.get_or_set("k", hc.producer(producer)) == "v"
        assert producer.count == 3

    @without_storage
    def test_null_counters_start_over(self, hc: Harness) -> None:
        assert hc.cache.incr("n") == 1
        assert hc.cache.incr("n", 5) == 5
        assert hc.cache.decr("n", 2) == -2
