"""The demo and the ``hotcache`` command line, run as users run them."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

import hotcache
from hotcache import demo
from hotcache.cli import main

SRC = str(Path(__file__).resolve().parent.parent / "src")
ROW = re.compile(
    r"^(?P<phase>cold|warm)\s+(?P<reads>\d+)\s+(?P<source>\d+)\s+(?P<ratio>[\d.]+)%"
    r"\s+(?P<p50>[\d.]+)\s+(?P<p99>[\d.]+)\s+(?P<mean>[\d.]+)$",
    re.MULTILINE,
)


def _env(tmp_path: Path) -> dict[str, str]:
    """Return an environment that finds ``src`` and keeps the user's cache dir untouched."""
    env = {k: v for k, v in os.environ.items() if k not in {"HOTCACHE_URL", "HOTCACHE_SECRET"}}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [SRC, env.get("PYTHONPATH")]))
    env["HOME"] = str(tmp_path / "home")
    env["XDG_CACHE_HOME"] = str(tmp_path / "xdg")
    return env


def _hotcache(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "hotcache", *args],
        env=_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=60,
    )


def _phases(report: str) -> dict[str, dict[str, float]]:
    found = {
        m["phase"]: {k: float(v) for k, v in m.groupdict().items() if k != "phase"}
        for m in ROW.finditer(report)
    }
    assert set(found) == {"cold", "warm"}, report
    return found


def _check_report(proc: subprocess.CompletedProcess[str]) -> dict[str, dict[str, float]]:
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr
    out = proc.stdout
    assert "stale reads: 0" in out
    assert re.search(r"^speed-up\s+\d", out, re.MULTILINE), out
    phases = _phases(out)
    cold, warm = phases["cold"], phases["warm"]
    # Cold: every read is the first of its id, so every one goes to the source.
    assert cold["source"] == cold["reads"] > 0
    assert cold["ratio"] == 0.0
    assert warm["ratio"] > 90.0
    assert warm["p50"] < cold["p50"]
    # stderr is not a TTY here: a few plain progress lines, no carriage returns.
    assert "hotcache demo: cold done" in proc.stderr
    assert "hotcache demo: warm done" in proc.stderr
    assert "\r" not in proc.stderr
    return phases


@pytest.mark.parametrize("url_fixture", ["sqlite_url", "redis_url"])
def test_demo_on_a_url(url_fixture: str, request: pytest.FixtureRequest, tmp_path: Path) -> None:
    url = request.getfixturevalue(url_fixture)
    proc = _hotcache(
        tmp_path, "demo", "--url", url, "--requests", "200", "--latency-ms", "3", "--rows", "80"
    )
    _check_report(proc)
    assert f"hotcache demo on {url}," in proc.stdout


def test_demo_on_the_embedded_default_starts_cold_every_time(tmp_path: Path) -> None:
    first = _check_report(_hotcache(tmp_path, "demo", "--requests", "120", "--latency-ms", "2"))
    assert (tmp_path / "xdg" / "hotcache" / "cache.db").is_file()
    # The rerun clears its namespace first: the cold phase goes to the source again.
    proc = _hotcache(tmp_path, "demo", "--requests", "120", "--latency-ms", "2")
    second = _check_report(proc)
    assert "embedded default (SQLite file " in proc.stdout
    assert second["cold"]["source"] == first["cold"]["source"]


def test_demo_counts_stale_reads_and_fails(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def forgetful_write(
        cache: hotcache.Cache, source: demo.SlowSource, result: demo.DemoResult, pid: int
    ) -> None:
        source.update(pid)  # the source changes, the cache is left as it was
        result.write_through += 1

    monkeypatch.setattr(demo, "_write", forgetful_write)
    config = demo.DemoConfig(
        url="memory://stale-demo", requests=300, latency_ms=0, rows=20, write_ratio=0.2
    )
    assert demo.main(config) == 1
    out = capsys.readouterr().out
    stale = int(re.search(r"^stale reads: (\d+)$", out, re.MULTILINE)[1])  # type: ignore[index]
    assert stale > 0


@pytest.mark.parametrize("url_fixture", ["sqlite_url", "redis_url"])
def test_cli_round_trip(
    url_fixture: str, request: pytest.FixtureRequest, capsys: pytest.CaptureFixture[str]
) -> None:
    url = request.getfixturevalue(url_fixture)
    target = ["--url", url, "--namespace", "cli"]

    def run(*args: str) -> tuple[int, str, str]:
        code = main([*args, *target])
        captured = capsys.readouterr()
        return code, captured.out, captured.err

    assert run("get", "greeting") == (1, "", "hotcache: key 'greeting' not found\n")
    assert run("set", "greeting", "hello world", "--ttl", "60") == (0, "", "")
    assert run("set", "other", "x") == (0, "", "")
    assert run("get", "greeting") == (0, "hello world\n", "")
    with hotcache.Cache(url, namespace="cli") as cache:
        assert cache.get("greeting") == "hello world"
        assert 0 < cache.ttl("greeting") <= 60  # type: ignore[operator]
        cache.set("number", 42)
    assert run("get", "number") == (0, "42\n", "")
    assert run("delete", "greeting") == (0, "", "")
    assert run("delete", "greeting") == (1, "", "hotcache: key 'greeting' not found\n")
    assert run("clear") == (0, "cleared 2 entries from namespace 'cli'\n", "")
    assert run("get", "other")[0] == 1

    code, out, _ = run("stats")
    assert code == 0
    assert re.search(r"^namespace\s+cli$", out, re.MULTILINE)
    assert re.search(r"^reachable\s+yes", out, re.MULTILINE)


def test_cli_version(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["version"]) == 0
    assert capsys.readouterr().out == f"hotcache {hotcache.__version__}\n"


@pytest.mark.parametrize(
    ("url", "names"),
    [
        ("redis://bob:s3cr3t@localhost:notaport/0", "notaport"),
        ("redis://bob:s3cr3t@localhost:6390/0?bogus=1", "'bogus'"),
        ("redis://localhost:6390/0?password=s3cr3t&timeout=-1", "'timeout'"),
        ("bogus://bob:s3cr3t@localhost", "bogus://"),
    ],
)
def test_cli_bad_url_is_one_clean_line(
    url: str, names: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["get", "k", "--url", url]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.startswith("hotcache: error: ")
    assert captured.err.count("\n") == 1
    assert names in captured.err
    assert "s3cr3t" not in captured.err


def test_cli_unreachable_server_is_reported_without_the_password(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # A port nothing listens on: bind one and close it again.
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    url = f"redis://bob:s3cr3t@127.0.0.1:{port}/0?timeout=0.5&connect_timeout=0.5"
    assert main(["get", "k", "--url", url]) == 2
    err = capsys.readouterr().err
    assert err.startswith("hotcache: error: ") and err.count("\n") == 1
    assert "s3cr3t" not in err


def test_cli_process_error_has_no_traceback(tmp_path: Path) -> None:
    proc = _hotcache(tmp_path, "set", "k", "v", "--url", "redis://bob:s3cr3t@localhost:notaport")
    assert proc.returncode == 2
    assert proc.stdout == ""
    assert proc.stderr.startswith("hotcache: error: ")
    assert proc.stderr.count("\n") == 1
    assert "notaport" in proc.stderr
    assert "s3cr3t" not in proc.stderr
    assert "Traceback" not in proc.stderr


@pytest.mark.parametrize(
    "args",
    [
        ["set", "k", "v", "--ttl", "-1"],
        ["set", "k", "v", "--ttl", "nan"],
        ["demo", "--requests", "0"],
    ],
)
def test_cli_bad_values_exit_2(args: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    assert main([*args, "--url", "memory://bad-values"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("hotcache: error: ") and err.count("\n") == 1
