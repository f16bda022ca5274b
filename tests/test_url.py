"""Configuration by URL: every scheme, typed options, overrides, errors, secrets."""

from __future__ import annotations

import asyncio
import logging
import os
import sys
import traceback
from pathlib import Path
from typing import Any

import pytest

import hotcache
from hotcache import AsyncCache, Cache, ConfigError
from hotcache._facade import resolve_settings
from hotcache._url import OPTIONS, default_sqlite_path, parse_url, redact
from redis_server import RedisServer, free_port

SECRET = "s3cr3t"


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Keep the machine's HOTCACHE_* variables out of these tests."""
    monkeypatch.delenv("HOTCACHE_URL", raising=False)
    monkeypatch.delenv("HOTCACHE_SECRET", raising=False)


# -- every scheme parses --------------------------------------------------------------


def test_memory_private_and_named() -> None:
    assert parse_url("memory://").scheme == "memory"
    assert parse_url("memory://").path is None
    assert parse_url("memory://shared").path == "shared"


def test_sqlite_relative_and_absolute_paths() -> None:
    rel = parse_url("sqlite:///rel.db")
    assert (rel.scheme, rel.path, rel.host) == ("sqlite", "rel.db", None)
    absolute = parse_url("sqlite:////abs/dir/cache.db")
    assert absolute.path == "/abs/dir/cache.db"
    assert parse_url("sqlite:///with%20space.db").path == "with space.db"


def test_sqlite_without_path_is_the_default_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert parse_url("sqlite://").path == str(tmp_path / "hotcache" / "cache.db")


def test_redis_full_url() -> None:
    parsed = parse_url("redis://user:pass@cachehost:6380/3")
    assert parsed.scheme == "redis"
    assert (parsed.host, parsed.port) == ("cachehost", 6380)
    assert (parsed.username, parsed.password) == ("user", "pass")
    assert parsed.options == {"db": 3}


def test_redis_defaults_host_and_port() -> None:
    parsed = parse_url("redis://")
    assert (parsed.host, parsed.port) == ("localhost", 6379)
    assert "db" not in parsed.options
    assert parse_url("redis://h").port == 6379


def test_redis_userinfo_is_percent_decoded() -> None:
    parsed = parse_url("redis://u%40x:p%3Aw%40d@h")
    assert (parsed.username, parsed.password) == ("u@x", "p:w@d")


def test_rediss_is_tls() -> None:
    parsed = parse_url("rediss://secure.example:6390/1?ssl_cert_reqs=none")
    assert parsed.scheme == "rediss"
    assert (parsed.host, parsed.port) == ("secure.example", 6390)
    assert parsed.options == {"db": 1, "ssl_cert_reqs": "none"}


def test_unix_socket_with_db() -> None:
    parsed = parse_url("unix:///run/redis/redis.sock?db=2")
    assert (parsed.scheme, parsed.path) == ("unix", "/run/redis/redis.sock")
    assert parsed.options == {"db": 2}


def test_null() -> None:
    assert parse_url("null://").scheme == "null"


def test_scheme_is_case_insensitive() -> None:
    assert parse_url("MEMORY://").scheme == "memory"


@pytest.mark.parametrize(
    "url",
    [
        "memory://",
        "memory://named-store",
        "null://",
        "sqlite:///{tmp}/c.db",
        "sqlite:////{tmp}/d.db",
    ],
)
def test_local_schemes_build_a_working_cache(url: str, tmp_path: Path) -> None:
    with Cache(url.format(tmp=str(tmp_path).lstrip("/"))) as cache:
        stored = cache.set("k", "v")
        assert cache.get("k") == ("v" if stored else None)
        assert stored is (not url.startswith("null"))


def test_sqlite_relative_path_is_relative_to_cwd(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    with Cache("sqlite:///rel.db") as cache:
        cache.set("k", 1)
    assert (tmp_path / "rel.db").exists()


def test_redis_url_reaches_the_server(redis_url: str) -> None:
    with Cache(redis_url) as cache:
        assert cache.set("k", [1, 2])
        assert cache.get("k") == [1, 2]


def test_redis_db_from_path_and_query_select_the_database(redis_url: str) -> None:
    import redis

    base = redis_url.rsplit("/", 1)[0]
    port = int(base.rsplit(":", 1)[1])
    with Cache(f"{base}/5", namespace="p") as in_path:
        in_path.set("k", 1)
    with Cache(f"{base}?db=6", namespace="q") as in_query:
        in_query.set("k", 1)
    for db, key in ((5, b"p:k"), (6, b"q:k")):
        client = redis.Redis(port=port, db=db)
        try:
            assert client.get(key) == b"1"
            client.flushdb()
        finally:
            client.close()


def test_unix_socket_reaches_the_server(tmp_path: Path) -> None:
    from redis_server import RedisServer

    sock = tmp_path / "r.sock"
    server = RedisServer(None, "--unixsocket", str(sock), "--unixsocketperm", "700").start()
    try:
        with Cache(f"unix://{sock}?db=2") as cache:
            assert cache.set("k", "v")
            assert cache.get("k") == "v"
    finally:
        server.stop()


# -- options are typed ----------------------------------------------------------------


def test_options_are_typed() -> None:
    settings = resolve_settings(
        "memory://?namespace=app&version=7&default_ttl=1.5&serializer=json"
        "&compress_threshold=10&compression=zlib&max_bytes=64mb&max_entries=100"
        "&policy=lru&on_error=raise&breaker_threshold=3&breaker_window=0.5",
        {},
    )
    assert settings.namespace == "app"
    assert settings.version == "7"
    assert settings.default_ttl == 1.5
    assert settings.serializer == "json"
    assert settings.compress_threshold == 10
    assert settings.compression == "zlib"
    assert settings.on_error == "raise"
    assert settings.breaker_threshold == 3
    assert settings.breaker_window == 0.5
    assert settings.backend_options == {
        "max_bytes": 64 << 20,
        "max_entries": 100,
        "policy": "lru",
    }


def test_redis_options_are_typed() -> None:
    parsed = parse_url(
        "redis://h?timeout=0.1&connect_timeout=2&retries=0&max_connections=9"
        "&health_check_interval=30&client_name=svc&protocol=3&ssl_check_hostname=false"
    )
    assert parsed.options == {
        "timeout": 0.1,
        "connect_timeout": 2.0,
        "retries": 0,
        "max_connections": 9,
        "health_check_interval": 30,
        "client_name": "svc",
        "protocol": "3",
        "ssl_check_hostname": False,
    }


@pytest.mark.parametrize(
    ("text", "expected"),
    [("1048576", 1 << 20), ("512kb", 512 << 10), ("64mb", 64 << 20), ("1gb", 1 << 30),
     ("100b", 100), ("1.5kb", 1536), ("64MB", 64 << 20)],
)  # fmt: skip
def test_byte_sizes(text: str, expected: int) -> None:
    assert parse_url(f"sqlite:///x.db?max_bytes={text}").options["max_bytes"] == expected


def test_defaults_when_nothing_is_given() -> None:
    settings = resolve_settings("memory://", {})
    assert settings.namespace == "hc"
    assert settings.version is None
    assert settings.default_ttl is None
    assert settings.serializer == "pickle"
    assert settings.on_error == "open"
    assert settings.secret is None


# -- keywords override the URL ------------------------------------------------------


def test_keywords_override_url_options() -> None:
    settings = resolve_settings(
        "redis://h?namespace=from_url&timeout=1&default_ttl=5",
        {"namespace": "from_kw", "timeout": 0.25, "default_ttl": 2},
    )
    assert settings.namespace == "from_kw"
    assert settings.default_ttl == 2.0
    assert settings.backend_options["timeout"] == 0.25


def test_keyword_none_keeps_the_url_value() -> None:
    settings = resolve_settings("memory://?namespace=u", {"namespace": None})
    assert settings.namespace == "u"


def test_keywords_are_validated_like_url_options() -> None:
    with pytest.raises(ConfigError, match="max_bytes"):
        resolve_settings("redis://h", {"max_bytes": 100})
    with pytest.raises(ConfigError, match="default_ttl"):
        resolve_settings("memory://", {"default_ttl": -1})
    with pytest.raises(ConfigError, match="nonsense"):
        resolve_settings("memory://", {"nonsense": 1})
    with pytest.raises(ConfigError, match="on_error"):
        Cache("memory://", on_error="ignore")


def test_keyword_bytes_secret_and_custom_serializer() -> None:
    class Upper:
        id = 42
        name = "upper"

        def dumps(self, value: Any) -> bytes:
            return repr(value).encode()

        def loads(self, data: bytes) -> Any:
            return data.decode()

    serializer = Upper()
    settings = resolve_settings("memory://", {"secret": b"x" * 16, "serializer": serializer})
    assert settings.secret == b"x" * 16
    assert settings.serializer is serializer


# -- HOTCACHE_URL and the default -----------------------------------------------------


def test_env_url_is_used_without_an_argument(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOTCACHE_URL", "memory://envstore?namespace=from_env")
    settings = resolve_settings(None, {})
    assert settings.url.scheme == "memory"
    assert settings.namespace == "from_env"
    with Cache() as cache:
        assert cache.namespace == "from_env"


def test_argument_wins_over_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOTCACHE_URL", "redis://elsewhere")
    assert resolve_settings("null://", {}).url.scheme == "null"


def test_bad_env_url_is_a_config_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOTCACHE_URL", "mongodb://h")
    with pytest.raises(ConfigError, match="mongodb"):
        Cache()


def test_no_url_no_env_is_the_xdg_sqlite_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    expected = tmp_path / "xdg" / "hotcache" / "cache.db"
    assert default_sqlite_path() == str(expected)
    settings = resolve_settings(None, {})
    assert (settings.url.scheme, settings.url.path) == ("sqlite", str(expected))
    with Cache() as cache:
        cache.set("k", "v")
        assert cache.get("k") == "v"
    assert expected.is_file()
    # Payloads may be pickles: the file is private to its user.
    assert expected.stat().st_mode & 0o077 == 0


def test_no_xdg_falls_back_to_home_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("XDG_CACHE_HOME", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    assert resolve_settings(None, {}).url.path == str(tmp_path / ".cache" / "hotcache" / "cache.db")


def test_empty_url_is_the_default(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert parse_url("").path == str(tmp_path / "hotcache" / "cache.db")


def test_url_must_be_text() -> None:
    with pytest.raises(TypeError):
        parse_url(b"memory://")  # type: ignore[arg-type]


# -- bad URLs name the bad part -------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "names"),
    [
        ("mongodb://h", ["'mongodb://'", "redis://"]),
        ("redis://h:99999", ["port"]),
        ("redis://h:abc", ["port"]),
        ("redis://h:0", ["port"]),
        ("redis://h?bogus=1", ["unknown option", "'bogus'"]),
        ("memory://?timeout=1", ["'timeout'", "memory://"]),
        ("redis://h?max_entries=10", ["'max_entries'", "redis://"]),
        ("sqlite:///x.db?policy=lru", ["'policy'", "sqlite://"]),
        ("redis://h?timeout=soon", ["'timeout'", "'soon'"]),
        ("redis://h?timeout=-1", ["'timeout'"]),
        ("redis://h?timeout=nan", ["'timeout'"]),
        ("memory://?max_bytes=lots", ["'max_bytes'", "'lots'"]),
        ("memory://?max_bytes=infmb", ["'max_bytes'"]),
        ("memory://?max_entries=0", ["'max_entries'"]),
        ("memory://?serializer=yaml", ["'serializer'", "'yaml'"]),
        ("memory://?on_error=maybe", ["'on_error'"]),
        ("memory://?namespace=", ["'namespace'"]),
        # The path is shown through the redacted URL, never quoted as a value: with an
        # unencoded '/' in a password, the "path" is part of the secret.
        ("redis://h/x", ["'db'", "redis://h/x"]),
        ("redis://h?namespace=a&namespace=b", ["'namespace'", "twice"]),
        ("redis://h/1?db=2", ["path", "db"]),
        ("sqlite://host/x.db", ["host", "sqlite:///"]),
        ("unix://", ["socket path"]),
        ("memory://#frag", ["fragment"]),
    ],
)
def test_bad_url_raises_config_error_naming_the_part(url: str, names: list[str]) -> None:
    with pytest.raises(ConfigError) as info:
        Cache(url)
    assert isinstance(info.value, ValueError)
    assert isinstance(info.value, hotcache.CacheError)
    for name in names:
        assert name in str(info.value)


@pytest.mark.parametrize("url", ["sqlite:///:memory:", "sqlite:///file::memory:"])
def test_sqlite_in_memory_is_refused(url: str) -> None:
    with pytest.raises(ConfigError, match="memory://"):
        Cache(url)


def test_every_option_rejects_garbage_with_config_error() -> None:
    free_text = {"namespace", "version", "secret", "client_name", "password"}
    free_text |= {"ssl_ca_certs", "ssl_certfile", "ssl_keyfile"}
    for name, spec in OPTIONS.items():
        scheme = sorted(spec.schemes)[0]
        base = {"sqlite": "sqlite:///x.db", "unix": "unix:///s.sock"}.get(scheme, f"{scheme}://")
        # Free text is wrong only when empty; everything else refuses a snowman.
        bad = "" if name in free_text else "%E2%98%83"
        with pytest.raises(ConfigError, match=repr(name)):
            parse_url(f"{base}?{name}={bad}")


# -- secrets never show -----------------------------------------------------------------

SECRET_URLS = [
    f"redis://u:{SECRET}@h:6379/0",
    f"redis://:{SECRET}@h",
    f"rediss://u:{SECRET}@h",
    f"redis://h?password={SECRET}",
    f"unix:///tmp/r.sock?password={SECRET}",
    f"redis://h?secret={SECRET}-long-enough",
]


@pytest.mark.parametrize(
    "url",
    [
        f"redis://u:{SECRET}@h:99999",
        f"redis://u:{SECRET}@h:port",
        f"redis://u:{SECRET}@[::1",
        f"mongodb://u:{SECRET}@h",
        f"redis://u:{SECRET}@h?bogus=1",
        f"redis://h?pasword={SECRET}",  # a misspelt secret option
        f"redis://u:{SECRET}@h?timeout=x",
        f"redis://u:{SECRET}@h/1?db=1",
        f"redis://h?password={SECRET}&password={SECRET}",
        f"redis://h?password={SECRET}&timeout=x",
        f"memory://?password={SECRET}",
        f"redis://u:{SECRET}@h?password={SECRET}&max_bytes=1",
        f"sqlite://u:{SECRET}@h/x.db",
        f"memory://?secret={SECRET}&secret={SECRET}",
    ],
)
def test_config_errors_never_show_the_password(url: str) -> None:
    with pytest.raises(ConfigError) as info:
        Cache(url)
    shown = "".join(traceback.format_exception(info.value))
    assert SECRET not in shown
    assert SECRET not in repr(info.value)


def test_bad_password_keyword_is_not_echoed() -> None:
    with pytest.raises(ConfigError) as info:
        Cache("memory://", password=SECRET)
    assert SECRET not in str(info.value)


def test_short_secret_is_refused_without_echo() -> None:
    with pytest.raises(ConfigError) as info:
        Cache("memory://", secret=SECRET)
    assert SECRET not in str(info.value)


@pytest.mark.parametrize("url", SECRET_URLS)
def test_reprs_never_show_the_password(url: str) -> None:
    settings = resolve_settings(url, {})
    parsed = settings.url
    for text in (repr(parsed), str(parsed), repr(settings), str(settings), parsed.redacted):
        assert SECRET not in text
    # The secret is still there for the driver.
    assert SECRET in f"{parsed.password}{settings.secret}"


@pytest.mark.parametrize("url", SECRET_URLS)
def test_cache_repr_never_shows_the_password(url: str) -> None:
    cache = Cache(url)
    try:
        assert SECRET not in repr(cache)
        assert SECRET not in str(cache)
        assert SECRET not in repr(cache.settings)
        assert SECRET not in repr(cache.stats())
    finally:
        cache.close()


def test_keyword_secret_not_in_repr() -> None:
    cache = Cache("memory://", secret=SECRET * 3)
    assert SECRET not in repr(cache)
    assert SECRET not in repr(cache.settings)


@pytest.mark.parametrize("where", ["userinfo", "query"])
@pytest.mark.parametrize("on_error", ["open", "raise"])
def test_no_log_record_or_error_shows_the_password(
    where: str, on_error: str, caplog: pytest.LogCaptureFixture
) -> None:
    port = free_port()  # nothing listens here: every call is refused
    url = (
        f"redis://user:{SECRET}@127.0.0.1:{port}/0?timeout=0.1"
        if where == "userinfo"
        else f"redis://127.0.0.1:{port}/0?timeout=0.1&password={SECRET}"
    )
    caplog.set_level(logging.DEBUG)
    errors: list[BaseException] = []
    cache = Cache(url, on_error=on_error, breaker_window=0.01)
    try:
        for i in range(6):
            for call in (
                lambda: cache.get("k"),
                lambda i=i: cache.set("k", i),
                lambda i=i: cache.get_or_set("g", lambda: i),
                lambda: cache.incr("n"),
            ):
                try:
                    call()
                except hotcache.BackendError as exc:
                    errors.append(exc)
    finally:
        cache.close()
    assert cache.stats()["errors"] > 0
    assert any("hotcache" in r.name for r in caplog.records)
    for record in caplog.records:
        text = record.getMessage()
        if record.exc_info:
            text += "".join(traceback.format_exception(*record.exc_info))
        assert SECRET not in text, record
    assert errors
    for exc in errors:
        assert SECRET not in "".join(traceback.format_exception(exc))


def test_async_failures_never_show_the_password(caplog: pytest.LogCaptureFixture) -> None:
    port = free_port()
    caplog.set_level(logging.DEBUG)

    async def main() -> BaseException:
        async with AsyncCache(
            f"redis://u:{SECRET}@127.0.0.1:{port}?timeout=0.1", on_error="raise"
        ) as cache:
            assert SECRET not in repr(cache)
            with pytest.raises(hotcache.BackendUnavailable) as info:
                await cache.get("k")
            return info.value

    exc = asyncio.run(main())
    assert SECRET not in "".join(traceback.format_exception(exc))
    for record in caplog.records:
        assert SECRET not in record.getMessage()


# -- missing extras name the pip install --------------------------------------------------


def test_missing_msgpack_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "msgpack", None)
    with pytest.raises(ConfigError, match=r"pip install 'hotcache\[msgpack\]'"):
        Cache("memory://?serializer=msgpack")
    with pytest.raises(ConfigError, match=r"pip install 'hotcache\[msgpack\]'"):
        Cache("memory://", serializer="msgpack")


def test_missing_zstd_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "zstandard", None)
    with pytest.raises(ConfigError, match=r"pip install 'hotcache\[zstd\]'"):
        Cache("memory://?compression=zstd")
    # "auto" settles for zlib instead of failing.
    with Cache("memory://?compression=auto&compress_threshold=0") as cache:
        cache.set("k", "x" * 1000)
        assert cache.get("k") == "x" * 1000


def test_missing_orjson_falls_back_to_the_stdlib(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "orjson", None)
    with Cache("memory://?serializer=json") as cache:
        cache.set("k", {"a": [1, 2.5, None]})
        assert cache.get("k") == {"a": [1, 2.5, None]}


def test_installed_extras_work() -> None:
    pytest.importorskip("msgpack")
    pytest.importorskip("zstandard")
    with Cache("memory://?serializer=msgpack&compression=zstd&compress_threshold=0") as cache:
        cache.set("k", {"a": b"x" * 500})
        assert cache.get("k") == {"a": b"x" * 500}


def test_env_secret_is_used(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOTCACHE_SECRET", "e" * 20)
    assert resolve_settings("memory://", {}).secret == "e" * 20
    assert resolve_settings("memory://", {"secret": "k" * 20}).secret == "k" * 20


def test_default_path_ignores_cwd(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    monkeypatch.chdir(tmp_path)
    assert os.path.isabs(default_sqlite_path())


@pytest.mark.parametrize(
    "url",
    [
        "redis://u:1234/s3cr3t@host/0",
        "redis://u:pa/s3cr3t@host:6379/0",
        "redis://u:pa#s3cr3t@host:6379/0?db=1",
        "redis://u:pa?s3cr3t@host/0",
        "redis://u:s3cr3t@host:notaport/0",
        "redis://:p@s3cr3t/x@h:6379/0",
    ],
)
def test_a_password_with_reserved_characters_never_leaks(url: str) -> None:
    """An unencoded '/', '#' or '?' in a password ends the netloc early; still masked."""
    assert "s3cr3t" not in redact(url)
    with pytest.raises(ConfigError) as info:
        hotcache.Cache(url)
    assert "s3cr3t" not in str(info.value)


def test_zero_timeouts_are_refused() -> None:
    for name in ("timeout", "connect_timeout"):
        with pytest.raises(ConfigError, match=name):
            hotcache.Cache(f"redis://h/0?{name}=0")
        with pytest.raises(ConfigError, match=name):
            hotcache.Cache("redis://h/0", **{name: 0})


def test_a_bool_is_not_a_number_for_options() -> None:
    with pytest.raises(ConfigError, match="default_ttl"):
        hotcache.Cache("memory://", default_ttl=True)
    with pytest.raises(ConfigError, match="max_entries"):
        hotcache.Cache("memory://", max_entries=True)


def test_password_keyword_reaches_redis(own_redis: RedisServer) -> None:
    """``password=`` as a keyword authenticates exactly like the URL's userinfo."""
    import redis

    admin = redis.Redis(port=own_redis.port)
    admin.config_set("requirepass", "kw-s3cr3t")
    admin.close()
    url = f"redis://127.0.0.1:{own_redis.port}/0"
    with hotcache.Cache(url, password="kw-s3cr3t", on_error="raise") as cache:
        assert cache.set("k", 1) and cache.get("k") == 1
        assert "kw-s3cr3t" not in repr(cache)
    with hotcache.Cache(url, on_error="raise") as cache, pytest.raises(hotcache.BackendError):
        cache.get("k")
