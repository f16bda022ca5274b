"""Conformance tests of keys and namespaces: types, escaping, hashing, and ``clear()``."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from .._core.keys import header
from .._core.missing import MISSING
from ._api import Calls
from ._harness import Face, Harness, needs_storage

__all__ = ["KeyTests"]

SPECIAL_KEYS = (
    "a:b",
    "a%3Ab",
    "a%b",
    "a@b",
    "a#b",
    "a!b",
    "a*",
    "a?",
    "a[b]",
    "a[",
    "a]",
    "a\\b",
    "a^b",
    "*",
    "?",
    "[",
    "]",
    ":",
    "::",
    "@",
    "#",
    "%",
    "",
    " ",
    "a b",
    "a\nb",
    "a\tb",
    "a\0b",
    "ü",
    "☃:𝄞",
    "#:x",
    "@1:x",
    "!t:x",
)
SPECIAL_NAMESPACES = (
    "n*",
    "n?",
    "n[",
    "n]",
    "n[x]",
    "n\\",
    "n%",
    "n%3A",
    "n@",
    "n#",
    "n!",
    "n:",
    "n^",
    "n-",
    "n:x",
    "n ü",
)
# Namespaces a careless pattern for one of the above would also match.
NEIGHBOUR_NAMESPACES = ("n", "nx", "n*x", "n[x", "n]x", "n\\x", "n%x", "n-x", "n:y", "n x")
HASHABLE_BAD_KEYS: tuple[Any, ...] = (1.5, None, object(), ("a",), True, False, 2j, frozenset())
BAD_KEYS: tuple[Any, ...] = (*HASHABLE_BAD_KEYS, ["a"], {"a": 1}, {"a"})


def _bad_key_calls(c: Face, bad: Any, producer: Calls) -> list[Callable[[], Any]]:
    calls: list[Callable[[], Any]] = [
        lambda: c.get(bad),
        lambda: c.set(bad, 1),
        lambda: c.add(bad, 1),
        lambda: c.delete(bad),
        lambda: c.exists(bad),
        lambda: c.touch(bad, 10),
        lambda: c.ttl(bad),
        lambda: c.incr(bad),
        lambda: c.decr(bad),
        lambda: c.get_or_set(bad, producer),
        lambda: c.hset(bad, "f", 1),
        lambda: c.hget(bad, "f"),
        lambda: c.hget("h", bad),
        lambda: c.hgetall(bad),
        lambda: c.hdel(bad, "f"),
        lambda: c.hdel("h", "f", bad),
        lambda: c.get_many(["ok", bad]),
        lambda: c.delete_many(["ok", bad]),
    ]
    if bad is not None:  # hset's field=None means "no single field"
        calls.append(lambda: c.hset("h", bad, 1))
    try:
        hash(bad)
    except TypeError:
        return calls
    calls += [
        lambda: c.set_many({"ok": "after", "new": 1, bad: 2}),
        lambda: c.hset("h", mapping={"f": "after", "new": 1, bad: 2}),
    ]
    return calls


class KeyTests:
    """Keys of every accepted type and character, in namespaces that never meet."""

    @needs_storage
    def test_key_types_are_equivalent(self, hc: Harness) -> None:
        c = hc.cache
        c.set(1, "one")
        assert c.get("1") == "one"
        assert c.get(b"1") == "one"
        c.set(b"1", "uno")
        assert c.get(1) == "uno"
        assert c.get_many([1, "1", b"1"]) == {1: "uno", "1": "uno", b"1": "uno"}
        c.set(-7, "neg")
        assert c.get("-7") == "neg"
        c.set(2**80, "big")
        assert c.get(str(2**80)) == "big"
        c.set("ü", "u")
        assert c.get("ü".encode()) == "u"
        assert c.exists(b"1") is True
        assert c.incr(b"n") == 1
        assert c.incr("n") == 2
        assert c.get(b"n") == 2
        c.hset(10, 20, "x")
        assert c.hget("10", b"20") == "x"
        assert c.hgetall(b"10") == {"20": "x"}
        assert c.delete(b"1") is True
        assert c.exists(1) is False
        assert c.get("1", MISSING) is MISSING

    def test_bad_key_type_changes_nothing(self, hc: Harness) -> None:
        c = hc.cache
        c.set("ok", "before")
        c.hset("h", "f", "before")
        producer = Calls()
        for bad in BAD_KEYS:
            for call in _bad_key_calls(c, bad, producer):
                with pytest.raises(TypeError):
                    call()
        assert producer.count == 0
        if hc.stores:
            assert c.get("ok") == "before"
            assert c.hgetall("h") == {"f": "before"}
            assert c.ttl("ok") is None
        assert c.exists("new") is False

    @needs_storage
    def test_special_characters_never_collide(self, hc: Harness) -> None:
        c = hc.cache
        for i, key in enumerate(SPECIAL_KEYS):
            c.set(key, i)
        for i, key in enumerate(SPECIAL_KEYS):
            assert c.get(key) == i, key
        assert c.get_many(SPECIAL_KEYS) == {key: i for i, key in enumerate(SPECIAL_KEYS)}
        for i, key in enumerate(SPECIAL_KEYS):
            c.hset("h", key, i)
        assert c.hgetall("h") == {key: i for i, key in enumerate(SPECIAL_KEYS)}
        assert c.delete("a*") is True
        assert c.get("a?") == SPECIAL_KEYS.index("a?")
        c.clear()
        assert c.get_many(SPECIAL_KEYS) == {}

    @needs_storage
    def test_namespace_version_and_key_never_meet(self, hc: Harness) -> None:
        spots: list[tuple[dict[str, str], str]] = [
            ({"namespace": "a"}, "b:c"),
            ({"namespace": "a:b"}, "c"),
            ({"namespace": "a", "version": "b"}, "c"),
            ({"namespace": "a@b"}, "c"),
            ({"namespace": "a"}, "@b:c"),
            ({"namespace": "a", "version": "b:c"}, "d"),
            ({"namespace": "a", "version": "b"}, "c:d"),
            ({"namespace": "a#"}, "b"),
            ({"namespace": "a"}, "#:b"),
            ({"namespace": "a!b"}, "c"),
            ({"namespace": "a"}, "!b:c"),
            ({"namespace": "a%3Ab"}, "c"),
            ({"namespace": "a%"}, "3Ab:c"),
            ({"namespace": "a", "version": "1"}, "c"),
            ({"namespace": "a", "version": "2"}, "c"),
        ]
        faces = [(hc.open(**options), key) for options, key in spots]
        for i, (face, key) in enumerate(faces):
            face.set(key, i)
        for i, (face, key) in enumerate(faces):
            assert face.get(key) == i, spots[i]
        assert len({face.key(key) for face, key in faces}) == len(faces)

    @needs_storage
    def test_long_keys(self, hc: Harness) -> None:
        c = hc.cache
        prefix = "p" * 250
        keys: list[Any] = [
            prefix + "a",
            prefix + "b",
            "ü" * 150,
            "ü" * 150 + "x",
            "k" * 190,
            "k" * 200,
            "k" * 201,
            "k" * 5000,
            (prefix + "a").encode(),
            10**250,
            10**250 + 1,
        ]
        for i, key in enumerate(keys):
            c.set(key, i, ttl=1000)
        # prefix + "a" and its bytes spelling are one entry: the later write wins.
        expected = {i: i for i in range(len(keys))}
        expected[0] = keys.index((prefix + "a").encode())
        for i, key in enumerate(keys):
            assert c.get(key) == expected[i], i
            assert c.exists(key) is True
            assert 0 < c.ttl(key) <= 1000
        assert len(c.get_many(keys)) == len(keys)
        # The hashed form of a long key is not reachable as a literal short key.
        literal = c.key(keys[0]).split(":", 1)[1]
        c.set(literal, "literal")
        assert c.get(keys[0]) == expected[0]
        assert c.get(literal) == "literal"
        assert c.incr("n" * 300) == 1
        assert c.incr("n" * 300) == 2
        c.hset("h" * 300, "f" * 300, "v")
        assert c.hget("h" * 300, "f" * 300) == "v"
        assert c.delete(keys[1]) is True
        assert c.get(keys[0]) == expected[0]
        # The hash is stable: another cache (and the other face) finds the entries.
        assert hc.open().get(keys[7]) == 7
        assert hc.sync_cache.get(keys[7]) == 7
        c.clear()
        assert c.get_many(keys) == {}
        assert c.hgetall("h" * 300) == {}

    @needs_storage
    def test_faces_share_entries(self, hc: Harness) -> None:
        c = hc.cache
        other = hc.sync_cache
        c.set("from-face", {"v": 1})
        assert other.get("from-face") == {"v": 1}
        other.set("from-sync", [2])
        assert c.get("from-sync") == [2]
        assert c.incr("from-sync-counter") == 1
        assert other.incr("from-sync-counter") == 2

    @needs_storage
    def test_clear_only_clears_this_namespace(self, hc: Harness) -> None:
        app = hc.open(namespace="app")
        app_v2 = hc.open(namespace="app", version="2")
        app_signed = hc.open(namespace="app", secret="conformance-secret-0123456789")
        others = {
            "app2": hc.open(namespace="app2"),
            "ap": hc.open(namespace="ap"),
            "app:x": hc.open(namespace="app:x"),
            "app@2": hc.open(namespace="app@2"),
            "APP": hc.open(namespace="APP"),
            "xapp": hc.open(namespace="xapp"),
        }
        app.set("k", 1)
        app.set("long" * 100, 2)
        app.hset("h", "f", 3)
        app.incr("n")
        app.set("ttl", 4, ttl=1000)
        app_v2.set("k", 5)
        app_signed.set("signed", 6)
        raw = hc.raw
        tenant_key = header("app", tenant="t1") + ":k"
        tenant_version_key = header("app", tenant="t1", version="9") + ":k"
        foreign_tenant_key = header("app2", tenant="t1") + ":k"
        for key in (tenant_key, tenant_version_key, foreign_tenant_key):
            raw.set(key, b"7")
        for name, face in others.items():
            face.set("k", name)
            face.hset("h", "f", name)
        app.clear()
        assert app.get_many(["k", "long" * 100, "n", "ttl"]) == {}
        assert app.hgetall("h") == {}
        assert app_v2.get("k", MISSING) is MISSING
        assert app_signed.get("signed", MISSING) is MISSING
        assert raw.get(tenant_key) is None
        assert raw.get(tenant_version_key) is None
        assert raw.get(foreign_tenant_key) == b"7"
        for name, face in others.items():
            assert face.get("k") == name, name
            assert face.hget("h", "f") == name, name
        app.set("k", "again")
        assert app.get("k") == "again"

    @needs_storage
    def test_clear_many_entries(self, hc: Harness) -> None:
        c = hc.open(namespace="big")
        other = hc.open(namespace="bigger")
        c.set_many({i: i for i in range(2500)})
        c.set_many({"x" * 300 + str(i): i for i in range(20)})
        other.set_many({i: -i for i in range(10)})
        assert isinstance(c.clear(), int)
        assert c.get_many(range(2500)) == {}
        assert c.get_many(["x" * 300 + str(i) for i in range(20)]) == {}
        assert other.get_many(range(10)) == {i: -i for i in range(10)}
        assert isinstance(c.clear(), int)

    @needs_storage
    def test_clear_never_matches_a_prefix_namespace(self, hc: Harness) -> None:
        outer = hc.open(namespace="a")
        inner = hc.open(namespace="a:b")
        outer.set("b:c", "outer")
        outer.set("b", "outer-b")
        inner.set("c", "inner")
        inner.clear()
        assert outer.get("b:c") == "outer"
        assert outer.get("b") == "outer-b"
        assert inner.get("c", MISSING) is MISSING
        inner.set("c", "inner")
        outer.clear()
        assert inner.get("c") == "inner"
        assert outer.get_many(["b:c", "b"]) == {}

    @needs_storage
    def test_clear_with_special_namespaces(self, hc: Harness) -> None:
        names = (*SPECIAL_NAMESPACES, *NEIGHBOUR_NAMESPACES)
        faces = {name: hc.open(namespace=name) for name in names}
        for name, face in faces.items():
            face.set("k", name)
        for cleared in SPECIAL_NAMESPACES:
            faces[cleared].clear()
            assert faces[cleared].get("k", MISSING) is MISSING, cleared
            for name, face in faces.items():
                if name != cleared:
                    assert face.get("k") == name, f"clearing {cleared!r} removed {name!r}"
            faces[cleared].set("k", cleared)
