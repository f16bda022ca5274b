"""Run every ``examples/*.py`` as a user would, in its own process; each must exit 0.

Examples end with asserts, so an example that no longer matches the library fails
here. Each runs from a temporary working directory with ``XDG_CACHE_HOME`` inside
it (the embedded default is a fresh file, never the developer's own cache) and
without ``HOTCACHE_URL``/``HOTCACHE_SECRET``; ``src`` comes first on the import
path, so the tree under test is what runs, installed or not.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = sorted((ROOT / "examples").glob("*.py"))
TIMEOUT = 60


def test_there_are_examples() -> None:
    assert EXAMPLES, "examples/ has no *.py to run"


@pytest.mark.parametrize("example", EXAMPLES, ids=lambda path: path.name)
def test_example_exits_0(example: Path, tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k not in {"HOTCACHE_URL", "HOTCACHE_SECRET"}}
    env["XDG_CACHE_HOME"] = str(tmp_path / "xdg")
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT / "src"), *filter(None, [env.get("PYTHONPATH")])])
    done = subprocess.run(
        [sys.executable, str(example)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        check=False,
    )
    assert done.returncode == 0, (
        f"{example.name} exited {done.returncode}\n"
        f"--- stdout\n{done.stdout[-4000:]}\n--- stderr\n{done.stderr[-4000:]}"
    )
