"""The local tier: hits from process memory, kept coherent across processes
(docs/coherence.md).

Two worker processes share one SQLite file (the embedded default works the
same). Each reads a price through its local tier; the parent changes it; the
next read in each worker returns the new price, never the old copy. A
local-only value (kept in one process alone, never serialized) is dropped in
every process when the key is deleted anywhere.
"""

from __future__ import annotations

import multiprocessing
import sys
from pathlib import Path

import hotcache

URL = f"sqlite:///{Path('local-tier-example.db').resolve()}"


def worker(commands: multiprocessing.Queue, answers: multiprocessing.Queue) -> None:
    with hotcache.Cache(URL) as cache:
        while (command := commands.get()) is not None:
            price = cache.get("price:tea")
            local = cache._local  # the tier (internal): does it hold the price now?
            held = local is not None and local.get(cache._key("price:tea")) is not None
            answers.put((command, price, held))


def main() -> None:
    spawn = multiprocessing.get_context("spawn")
    commands: multiprocessing.Queue = spawn.Queue()
    answers: multiprocessing.Queue = spawn.Queue()
    workers = [spawn.Process(target=worker, args=(commands, answers)) for _ in range(2)]
    with hotcache.Cache(URL) as cache:
        cache.set("price:tea", 3)
        for process in workers:
            process.start()
        try:
            for _ in workers:
                commands.put("read")
            first = [answers.get(timeout=30) for _ in workers]
            assert all(price == 3 and held for _, price, held in first), first

            cache.set("price:tea", 4)  # another process's write...
            for _ in workers:
                commands.put("read")
            second = [answers.get(timeout=30) for _ in workers]
            assert all(price == 4 for _, price, _held in second), second  # ...seen at once
            print("workers read", [p for _, p, _ in first], "then", [p for _, p, _ in second])
        finally:
            for _ in workers:
                commands.put(None)
            for process in workers:
                process.join(timeout=30)

        # A value kept in this process alone: the shared tier holds only a marker.
        assert cache.set("config", {"currency": "EUR"}, local_only=True)
        assert cache.get("config") == {"currency": "EUR"}
        with hotcache.Cache(URL, local=False) as elsewhere:
            assert elsewhere.get("config") is None  # other processes compute their own
            elsewhere.delete("config")  # ...and a delete anywhere reaches every copy
        assert cache.get("config") is None
        print("local-only value dropped by a delete elsewhere")
    assert all(process.exitcode == 0 for process in workers), [p.exitcode for p in workers]


if __name__ == "__main__":
    main()
    sys.exit(0)
