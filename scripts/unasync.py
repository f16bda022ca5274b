"""Generate ``src/hotcache/_sync`` from ``src/hotcache/_async``; ``--check`` reports drift.

Token-based (the ``unasync`` package) with an explicit rename table: every name
that differs between the two faces is listed here, nowhere else.
"""

from __future__ import annotations

import difflib
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

# This file shares its name with the package it drives: keep its own folder
# off the import path so ``import unasync`` finds the package.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

import unasync  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
ASYNC_DIR = ROOT / "src" / "hotcache" / "_async"
SYNC_DIR = ROOT / "src" / "hotcache" / "_sync"

RENAMES = {
    "AsyncCache": "Cache",
    "AsyncRunner": "SyncRunner",
    "AsyncFlights": "SyncFlights",
    "AsyncEvent": "SyncEvent",
    "aclose": "close",
    "async_produce": "sync_produce",
    "async_blocking": "sync_blocking",
    "async_sleep": "sync_sleep",
    "async_background": "sync_background",
    "async_waiters": "sync_waiters",
    "AsyncLock": "SyncLock",
    "make_async_backend": "make_sync_backend",
    "_async": "_sync",
}

HEADER = "# Generated from src/hotcache/_async by scripts/unasync.py. Do not edit.\n"


def generate(out_dir: Path) -> list[Path]:
    """Write the sync tree into ``out_dir``; return the files written."""
    work = Path(tempfile.mkdtemp())
    try:
        src = work / "_async"
        shutil.copytree(ASYNC_DIR, src, ignore=shutil.ignore_patterns("__pycache__"))
        files = sorted(str(p) for p in src.rglob("*.py"))
        rule = unasync.Rule(fromdir="/_async/", todir="/_sync/", additional_replacements=RENAMES)
        unasync.unasync_files(files, [rule])
        written = []
        out_dir.mkdir(parents=True, exist_ok=True)
        for path in sorted((work / "_sync").rglob("*.py")):
            target = out_dir / path.relative_to(work / "_sync")
            target.write_text(HEADER + path.read_text())
            written.append(target)
        subprocess.run(
            [sys.executable, "-m", "ruff", "format", "--quiet", *map(str, written)], check=True
        )
        return written
    finally:
        shutil.rmtree(work)


def main() -> int:
    if "--check" not in sys.argv:
        generate(SYNC_DIR)
        return 0
    with tempfile.TemporaryDirectory() as tmp:
        fresh = generate(Path(tmp))
        drift = []
        for path in fresh:
            committed = SYNC_DIR / path.name
            old = committed.read_text() if committed.exists() else ""
            new = path.read_text()
            if old != new:
                drift.extend(
                    difflib.unified_diff(
                        old.splitlines(True), new.splitlines(True), str(committed), "generated"
                    )
                )
        extra = {p.name for p in SYNC_DIR.glob("*.py")} - {p.name for p in fresh}
        if drift or extra:
            sys.stdout.writelines(drift)
            for name in sorted(extra):
                print(f"{SYNC_DIR / name}: not generated from _async")
            print("_sync is out of date: run `python scripts/unasync.py`", file=sys.stderr)
            return 1
    print("_sync matches _async")
    return 0


if __name__ == "__main__":
    os.chdir(ROOT)
    sys.exit(main())
