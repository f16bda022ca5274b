"""The local tier over ``rediss://``: the feed's own connection speaks TLS too."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import trustme

from hotcache import Cache
from redis_server import RedisServer, free_port


@pytest.fixture(scope="module")
def tls_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[RedisServer, int, Path]]:
    certs = tmp_path_factory.mktemp("certs")
    ca = trustme.CA()
    leaf = ca.issue_cert("localhost", "127.0.0.1")
    ca.cert_pem.write_to_path(str(certs / "ca.pem"))
    leaf.cert_chain_pems[0].write_to_path(str(certs / "cert.pem"))
    leaf.private_key_pem.write_to_path(str(certs / "key.pem"))
    port = free_port()
    server = RedisServer(
        None,
        "--tls-port", str(port),
        "--tls-cert-file", str(certs / "cert.pem"),
        "--tls-key-file", str(certs / "key.pem"),
        "--tls-ca-cert-file", str(certs / "ca.pem"),
        "--tls-auth-clients", "no",
    ).start()  # fmt: skip
    yield server, port, certs
    server.stop()


def test_the_feed_speaks_tls_and_keeps_the_tier_coherent(
    tls_server: tuple[RedisServer, int, Path],
) -> None:
    _, port, certs = tls_server
    url = f"rediss://localhost:{port}/0?ssl_ca_certs={certs / 'ca.pem'}"
    with Cache(url) as cache, Cache(url, local=False) as other:
        deadline = time.monotonic() + 10
        while not (cache._feed is not None and cache._feed.sync()):
            assert time.monotonic() < deadline, "the TLS feed never came up"
            time.sleep(0.005)
        assert cache._local is not None and cache._feed is not None
        cache.set("k", "mine")
        cache._feed.barrier()  # our own write's change is in: the next read stays local
        for i in range(20):  # change after change, each reaching the tier over TLS
            assert cache.get("k") == ("mine" if i == 0 else f"theirs-{i - 1}")
            assert cache._local.get(cache._key("k")) is not None
            other.set("k", f"theirs-{i}")
            cache._feed.barrier()
            assert cache._local.get(cache._key("k")) is None
        assert cache.get("k") == "theirs-19"


def test_a_certificate_that_does_not_verify_keeps_the_tier_off(
    tls_server: tuple[RedisServer, int, Path],
) -> None:
    _, port, _ = tls_server
    with Cache(f"rediss://localhost:{port}/0", connect_timeout=0.5) as cache:
        # The system's CAs do not know the test CA: neither the feed nor the
        # client connects, and nothing is served locally.
        assert not (cache._feed is not None and cache._feed.sync())
        assert cache.set("k", "v") is False and cache.get("k") is None


def test_threads_asking_for_barriers_leave_the_tls_session_to_the_feed(
    tls_server: tuple[RedisServer, int, Path],
) -> None:
    """One TLS session must not be used by two threads at once: barriers (every
    local-only write asks for one) are sent by the feed's own thread."""
    import threading

    _, port, certs = tls_server
    url = f"rediss://localhost:{port}/0?ssl_ca_certs={certs / 'ca.pem'}"
    with Cache(url) as cache, Cache(url, local=False) as other:
        assert cache._feed is not None and cache._local is not None
        errors: list[BaseException] = []

        def writer(n: int) -> None:
            try:
                for i in range(25):
                    cache.set(f"mine-{n}-{i}", i, local_only=True)
                    other.set(f"theirs-{n}", i)
            except BaseException as exc:  # pragma: no cover - reported below
                errors.append(exc)

        threads = [threading.Thread(target=writer, args=(n,)) for n in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert not errors
        assert cache._feed.sync()  # still serving: the session survived
        assert cache.stats()["errors"] == 0
        cache._feed.barrier()
        assert [cache.get(f"theirs-{n}") for n in range(4)] == [24] * 4
        assert sum(cache.get(f"mine-{n}-24") == 24 for n in range(4)) == 4
