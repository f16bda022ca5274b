"""Key encoding: unambiguous, stable, bounded; glob escaping on every backend."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hotcache import Cache
from hotcache._core.keys import (
    MAX_KEY_BYTES,
    KeyEncoder,
    glob_escape,
    header,
    key_text,
    namespace_pattern,
)
from hotcache.backends._common import compile_glob
from hotcache.backends.redis import redis_glob
from hotcache.backends.sqlite import SQLiteBackend

SRC = str(Path(__file__).resolve().parents[1] / "src")

# Characters that matter to the encoding or to globs, plus some non-ASCII.
TRICKY = ":%@!#*?[]\\^-~/ a\u00e9\u4e2d\U0001f600\n"
tricky_text = st.text(st.sampled_from(TRICKY), max_size=6)
any_text = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"))
parts = tricky_text | any_text


def encode(
    namespace: str, key: Any, *, tenant: str | None = None, version: str | None = None
) -> str:
    return KeyEncoder(header(namespace, tenant=tenant, version=version)).encode(key)


# -- unambiguous ----------------------------------------------------------------------------

triples = st.tuples(
    parts.filter(bool),  # a namespace is never empty
    st.none() | parts,
    st.none() | parts,
    parts | st.builds(lambda s, n: s * n, tricky_text.filter(bool), st.integers(40, 120)),
)


@settings(max_examples=400, deadline=None)
@given(st.lists(triples, min_size=2, max_size=12, unique=True))
def test_different_tuples_never_share_a_backend_key(tuples: list[tuple[Any, ...]]) -> None:
    seen: dict[str, tuple[Any, ...]] = {}
    for namespace, tenant, version, key in tuples:
        out = encode(namespace, key, tenant=tenant, version=version)
        assert out not in seen or seen[out] == (namespace, tenant, version, key), (out, seen)
        seen[out] = (namespace, tenant, version, key)


@settings(max_examples=300, deadline=None)
@given(a=triples, b=triples)
def test_pairs_of_tuples_collide_only_when_equal(a: tuple[Any, ...], b: tuple[Any, ...]) -> None:
    ea = encode(a[0], a[3], tenant=a[1], version=a[2])
    eb = encode(b[0], b[3], tenant=b[1], version=b[2])
    assert (ea == eb) == (a == b)


@pytest.mark.parametrize(
    ("a", "b"),
    [
        (("a:b", None, None, "c"), ("a", None, None, "b:c")),
        (("a", None, "1", "k"), ("a@1", None, None, "k")),
        (("a", "t", None, "k"), ("a!t", None, None, "k")),
        (("a", "t", None, "k"), ("a", None, "t", "k")),
        (("a", "", None, "k"), ("a", None, None, "k")),
        (("a", None, "", "k"), ("a", None, None, "k")),
        (("a%3A", None, None, "k"), ("a:", None, None, "k")),
        (("a", None, None, "#:k"), ("a#", None, None, "k")),
        (("ns", None, None, "x" * 300), ("ns#", None, None, "x" * 80)),
    ],
)
def test_classic_collisions_are_apart(a: tuple[Any, ...], b: tuple[Any, ...]) -> None:
    assert encode(a[0], a[3], tenant=a[1], version=a[2]) != encode(
        b[0], b[3], tenant=b[1], version=b[2]
    )


def test_int_str_and_bytes_name_one_entry() -> None:
    enc = KeyEncoder("ns")
    assert enc.encode(1) == enc.encode("1") == enc.encode(b"1") == "ns:1"
    assert enc.encode(-42) == "ns:-42"
    assert enc.encode(bytearray(b"k")) == enc.encode(memoryview(b"k")) == "ns:k"
    assert enc.encode("\u00e9") == enc.encode("\u00e9".encode()) == "ns:\u00e9"
    assert enc.encode(2**80) == f"ns:{2**80}"


def test_str_and_int_subclasses_use_their_plain_value() -> None:
    import enum

    class Weird(str):
        def __str__(self) -> str:
            return "not me"

    class Num(enum.IntEnum):
        ONE = 1

    enc = KeyEncoder("ns")
    assert enc.encode(Weird("k")) == "ns:k"
    assert enc.encode(Num.ONE) == "ns:1"


def test_memoised_encoding_equals_fresh_encoding() -> None:
    enc = KeyEncoder("ns")
    first = enc.encode("hot")
    assert enc.encode("hot") == first == KeyEncoder("ns").encode("hot")
    # A value equal to a memoised str but of another type still goes through checks.
    with pytest.raises(TypeError):
        enc.encode(True)  # type: ignore[arg-type]


# -- long keys ------------------------------------------------------------------------------


def test_long_keys_are_hashed_with_a_readable_prefix() -> None:
    enc = KeyEncoder("ns")
    key = "user-profile:" + "x" * 400
    out = enc.encode(key)
    assert out.startswith("ns#:user-profile:xxx")
    assert len(out.encode()) <= MAX_KEY_BYTES
    assert enc.encode(key) == out
    assert enc.encode(key[:-1] + "y") != out


def test_boundary_at_max_key_bytes() -> None:
    enc = KeyEncoder("ns")
    fits = "k" * (MAX_KEY_BYTES - len("ns:"))
    assert enc.encode(fits) == "ns:" + fits
    assert enc.encode(fits + "k").startswith("ns#:")
    # Bytes, not characters: 2-byte characters hash sooner.
    wide = "\u00e9" * ((MAX_KEY_BYTES - 3) // 2 + 1)
    assert len(wide) < MAX_KEY_BYTES and enc.encode(wide).startswith("ns#:")


@settings(max_examples=200, deadline=None)
@given(key=any_text | tricky_text, repeat=st.integers(1, 400))
def test_every_key_stays_bounded(key: str, repeat: int) -> None:
    text = key * repeat
    out = KeyEncoder("hc").encode(text)
    assert len(out.encode("utf-8")) <= MAX_KEY_BYTES
    if out.startswith("hc#:"):
        assert text.startswith(out[4:].rsplit("~", 1)[0])  # readable prefix of the key


def test_wide_characters_keep_the_bound() -> None:
    out = KeyEncoder("hc").encode("\U0001f600" * 500)
    assert out.startswith("hc#:\U0001f600")
    assert len(out.encode()) <= MAX_KEY_BYTES


HASH_SCRIPT = """
import sys
sys.path.insert(0, {src!r})
from hotcache._core.keys import KeyEncoder, header
enc = KeyEncoder(header("app", version="3"))
for key in ("x" * 500, "\\u00e9:" * 300, b"b" * 300, "short"):
    print(enc.encode(key))
print(hash("x" * 500))
"""


def test_long_key_hash_is_stable_across_processes() -> None:
    outputs = []
    for seed in ("1", "2"):
        env = {**os.environ, "PYTHONHASHSEED": seed}
        done = subprocess.run(
            [sys.executable, "-c", HASH_SCRIPT.format(src=SRC)],
            env=env,
            capture_output=True,
            text=True,
            check=True,
            timeout=60,
        )
        outputs.append(done.stdout.splitlines())
    first, second = outputs
    assert first[-1] != second[-1]  # Python's hash() did change with the seed...
    assert first[:-1] == second[:-1]  # ...the backend keys did not
    enc = KeyEncoder(header("app", version="3"))
    assert first[:-1] == [enc.encode(k) for k in ("x" * 500, "\u00e9:" * 300, b"b" * 300, "short")]


# -- bad keys -------------------------------------------------------------------------------


@pytest.mark.parametrize("key", [True, False, 1.0, 1.5, None, object(), [1], (1,), {"a": 1}, {1}])
def test_other_key_types_are_type_errors(key: Any) -> None:
    enc = KeyEncoder("ns")
    with pytest.raises(TypeError):
        enc.encode(key)
    with pytest.raises(TypeError):
        key_text(key)


@pytest.mark.parametrize("key", [b"\xff", b"\xc3", b"ok\x80", bytearray(b"\xed\xa0\x80")])
def test_invalid_utf8_bytes_are_value_errors(key: bytes) -> None:
    with pytest.raises(ValueError, match="UTF-8"):
        KeyEncoder("ns").encode(key)


@pytest.mark.parametrize("key", ["\ud800", "a\udfffb", "\ud800" * 100])
def test_lone_surrogates_are_value_errors(key: str) -> None:
    with pytest.raises(ValueError, match="surrogate"):
        KeyEncoder("ns").encode(key)


@pytest.mark.parametrize("url", ["memory://", "sqlite:///{tmp}/c.db"])
def test_bad_keys_change_nothing(url: str, tmp_path: Path) -> None:
    with Cache(url.format(tmp=tmp_path)) as cache:
        cache.set("k", "v")
        for bad in (True, 1.5, None, object(), b"\xff", "\ud800"):
            with pytest.raises((TypeError, ValueError)):
                cache.set(bad, "x")  # type: ignore[arg-type]
            with pytest.raises((TypeError, ValueError)):
                cache.get(bad)  # type: ignore[arg-type]
        assert cache.get("k") == "v"
        assert cache.stats()["sets"] == 1


@pytest.mark.parametrize("namespace", ["", None, 1])
def test_namespace_must_be_non_empty_text(namespace: Any) -> None:
    with pytest.raises(ValueError):
        header(namespace)


# -- glob escaping ----------------------------------------------------------------------------

LITERALS = [
    "plain", "star*", "*", "?", "q?mark", "[", "]", "[]", "[!x]", "[^x]", "a[bc]d", "\\", "a\\*",
    "a\\", "back\\\\slash", "-", "[a-z]", "^", "!", "ns:*:x", "%2A", "\u00e9*", "\U0001f600?",
    "new\nline", "a]b", "]]", "[[", "*?[]\\",
]  # fmt: skip


@pytest.mark.parametrize("text", LITERALS)
def test_escaped_text_matches_itself_only_in_memory_glob(text: str) -> None:
    pattern = compile_glob(glob_escape(text))
    assert pattern.fullmatch(text)
    for other in LITERALS:
        assert bool(pattern.fullmatch(other)) == (other == text)


@settings(max_examples=300, deadline=None)
@given(a=tricky_text | any_text, b=tricky_text | any_text)
def test_property_escaped_glob_is_literal(a: str, b: str) -> None:
    pattern = compile_glob(glob_escape(a))
    assert bool(pattern.fullmatch(b)) == (a == b)
    prefix = compile_glob(glob_escape(a) + "*")
    assert bool(prefix.fullmatch(b)) == b.startswith(a)


def test_escaped_text_matches_itself_only_in_sqlite_glob(tmp_path: Path) -> None:
    backend = SQLiteBackend(str(tmp_path / "g.db"))
    try:
        for text in LITERALS:
            backend.set(text, b"1")
        for text in LITERALS:
            found = [k for batch in backend.scan(glob_escape(text)) for k in batch]
            assert found == [text], text
            prefixed = {k for batch in backend.scan(glob_escape(text) + "*") for k in batch}
            assert prefixed == {k for k in LITERALS if k.startswith(text)}, text
    finally:
        backend.close()


def test_escaped_text_matches_itself_only_in_redis_scan(redis_url: str) -> None:
    import redis

    client = redis.Redis.from_url(redis_url)
    try:
        for text in LITERALS:
            client.set(text, b"1")
        for text in LITERALS:
            found = {k.decode() for k in client.scan_iter(match=redis_glob(glob_escape(text)))}
            assert found == {text}, text
            match = redis_glob(glob_escape(text) + "*")
            prefixed = {k.decode() for k in client.scan_iter(match=match)}
            assert prefixed == {k for k in LITERALS if k.startswith(text)}, text
    finally:
        client.close()


# -- a namespace pattern covers that namespace only --------------------------------------------

NAMESPACES = ["a", "ab", "a*", "a?", "a[b]", "a:b", "a!b", "a@b", "a#", "a%3A", "a\\", "\u00e9"]


@settings(max_examples=300, deadline=None)
@given(ns1=parts.filter(bool), ns2=parts.filter(bool), triple=triples)
def test_property_namespace_pattern_matches_its_namespace_only(
    ns1: str, ns2: str, triple: tuple[Any, ...]
) -> None:
    _, tenant, version, key = triple
    pattern = compile_glob(namespace_pattern(ns1))
    for ns in (ns1, ns2):
        backend_key = encode(ns, key, tenant=tenant, version=version)
        assert bool(pattern.fullmatch(backend_key)) == (ns == ns1)


def fill_and_clear(url: str, **options: Any) -> None:
    caches = [Cache(url, namespace=ns, **options) for ns in NAMESPACES]
    versioned = Cache(url, namespace="a", version="2", **options)
    try:
        for cache in [*caches, versioned]:
            cache.set("k", cache.namespace)
            cache.set("x" * 300, cache.namespace)  # hashed key
        assert caches[0].clear() == 4  # "a" and its version "2"
        assert caches[0].get("k") is None and versioned.get("k") is None
        for cache in caches[1:]:
            assert cache.get("k") == cache.namespace, cache.namespace
            assert cache.get("x" * 300) == cache.namespace
        assert caches[2].clear() == 2  # "a*" is literal
        assert caches[1].get("k") == "ab" and caches[3].get("k") == "a?"
    finally:
        for cache in [*caches, versioned]:
            cache.close()


def test_clear_is_per_namespace_on_memory() -> None:
    fill_and_clear("memory://shared-for-clear")


def test_clear_is_per_namespace_on_sqlite(tmp_path: Path) -> None:
    fill_and_clear(f"sqlite:///{tmp_path / 'c.db'}")


def test_clear_is_per_namespace_on_redis(redis_url: str) -> None:
    fill_and_clear(redis_url)


# -- batches ----------------------------------------------------------------------------------


@settings(max_examples=200, deadline=None)
@given(st.lists(parts | st.integers() | st.binary().filter(lambda b: _utf8(b)), max_size=20))
def test_encode_many_equals_encode_one_by_one(keys: list[Any]) -> None:
    warm = KeyEncoder("ns")
    for key in keys[::2]:
        warm.encode(key)  # some memoised, some not
    assert warm.encode_many(keys) == [KeyEncoder("ns").encode(k) for k in keys]


def _utf8(raw: bytes) -> bool:
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


@pytest.mark.parametrize(
    ("bad", "error"),
    [(True, TypeError), ([1], TypeError), (b"\xff", ValueError), (None, TypeError)],
)
def test_encode_many_raises_the_bad_keys_own_error(bad: Any, error: type[Exception]) -> None:
    enc = KeyEncoder("ns")
    enc.encode("ok")
    with pytest.raises(error):
        enc.encode_many(["ok", bad, "other"])


def test_sqlite_pattern_does_not_stop_at_a_nul(tmp_path: Path) -> None:
    """SQLite's GLOB stops comparing at NUL; the backend must still match exactly."""
    from hotcache.backends.sqlite import SQLiteBackend

    backend = SQLiteBackend(str(tmp_path / "nul.db"))
    try:
        backend.set("ns:a", b"1")
        backend.set("ns:a\x00b", b"2")
        assert [k for batch in backend.scan("ns:a") for k in batch] == ["ns:a"]
        assert backend.delete_matching("ns:a") == 1
        assert backend.get("ns:a\x00b") == b"2"
    finally:
        backend.close()
