"""The store side: eviction by budget, the metadata stored with each entry, persistence."""

from __future__ import annotations

import logging
import sqlite3
import time
from pathlib import Path
from typing import Any

import pytest

from reckon import CachingLevel, LocalStore, MemoizedGroup, memoize
from reckon.memo.entries import read_rows

calls: list[Any] = []


@pytest.fixture(autouse=True)
def _reset() -> None:
    calls.clear()


def _memo_lines(caplog: pytest.LogCaptureFixture, kind: str) -> list[str]:
    return [
        r.getMessage()
        for r in caplog.records
        if r.name == "reckon.memo" and r.getMessage().startswith(kind + ":")
    ]


@pytest.mark.parametrize("policy", ["gds", "lru"])
def test_eviction_by_group_budget(
    cache_dir: Path, policy: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="reckon.memo")
    group = MemoizedGroup(f"evict-{policy}", store=cache_dir, size="1500B", policy=policy)  # type: ignore[arg-type]

    @memoize(group=group)
    def big_fn(x: int) -> bytes:
        calls.append(x)
        return b"\0" * x

    for x in (2, 3, 700):
        big_fn(x)
    group.flush()
    # Hits answered by the memory tier never reach the store, so only store reads count as uses
    # for the store's policy: start the re-reads from an empty memory tier.
    group.engine.clear(CachingLevel.MEMORY)
    for x in (2, 3, 701):
        big_fn(x)
    group.flush()
    assert calls == [2, 3, 700, 701]
    group.engine.clear(CachingLevel.MEMORY)  # look at what the store kept
    assert not (big_fn.would_hit(700) and big_fn.would_hit(701))
    assert big_fn.would_hit(2) and big_fn.would_hit(3)
    usage = group.usage()["store"]
    assert usage["bytes"] <= 1500
    evicted = _memo_lines(caplog, "evict")
    assert evicted and any("big_fn(70" in line for line in evicted)
    # The evicted entry's metadata went with it.
    keys = {row.args for row in read_rows(group.engine.store, big_fn.name)[0]}
    assert "2" in keys and "3" in keys
    assert not {"700", "701"} <= keys


def test_gds_keeps_what_was_expensive(cache_dir: Path) -> None:
    """GreedyDual-Size: at equal size, the cheap-to-recompute entry goes first."""
    store = LocalStore(cache_dir, budget=3000, policy="gds", sync=True)
    group = MemoizedGroup("gds-cost", store=store)
    import time

    @memoize(group=group, assume_pure=True)
    def work(x: int, seconds: float) -> bytes:
        time.sleep(seconds)
        return bytes([x]) * 1200

    work(1, 0.2)  # expensive
    work(2, 0.0)  # cheap
    work(3, 0.0)  # pushes the store over budget
    group.flush()
    group.engine.clear(CachingLevel.MEMORY)
    assert work.would_hit(1, 0.2), "the expensive entry is kept"
    assert not (work.would_hit(2, 0.0) and work.would_hit(3, 0.0)), "a cheap one went"


_OLD_SCHEMA = """
CREATE TABLE entries (key TEXT PRIMARY KEY, function TEXT NOT NULL, args TEXT NOT NULL,
    created REAL NOT NULL, compute_s REAL NOT NULL, size INTEGER NOT NULL,
    fingerprint TEXT NOT NULL);
CREATE TABLE functions (name TEXT PRIMARY KEY, fingerprint TEXT NOT NULL, seen REAL NOT NULL);
"""


def test_cache_of_an_older_reckon_keeps_working(cache_dir: Path, run_py: Any) -> None:
    """A cache directory as an older reckon left it: values without metadata in the store, what
    they are in ``memo-index.sqlite`` beside it. The descriptions move into the store on first
    use (the file is renamed), entries still hit, and clear() finds every code version."""
    code = f"""
        import logging, os, sys
        logging.basicConfig(stream=sys.stdout, level=logging.INFO)
        from reckon import memoize
        @memoize(store={str(cache_dir)!r}, name="old.f", version=os.environ["OLD_VERSION"])
        def f(x):
            print("RAN", x)
            return x * 2
        print("VALUE", f(21))
        if os.environ.get("OLD_CLEAR"):
            print("REMOVED", f.clear())
    """
    for version in ("1", "2"):
        assert "RAN 21" in run_py(code, env={"OLD_VERSION": version}).stdout
    with sqlite3.connect(cache_dir / "index.sqlite3") as conn:  # what an older reckon stored
        conn.execute("DELETE FROM entries WHERE size = 0")  # (usage counters: none then)
        conn.execute("UPDATE entries SET meta = NULL")
        keys = [k for (k,) in conn.execute("SELECT key FROM entries ORDER BY key")]
    with sqlite3.connect(cache_dir / "memo-index.sqlite") as conn:
        conn.executescript(_OLD_SCHEMA)
        for key in keys:
            conn.execute(
                "INSERT INTO entries VALUES (?, 'old.f', '21', ?, 0.5, 10, ?)",
                (key, time.time(), key[:32]),
            )
    store = LocalStore(cache_dir, sync=True)
    rows, unknown = read_rows(store)
    assert rows == [] and len(unknown) == 2, "two entries nobody can describe yet"
    store.close()
    out = run_py(code, env={"OLD_VERSION": "2"}).stdout
    assert "RAN" not in out and "VALUE 42" in out
    assert "the descriptions of 2 entries moved into the store" in out
    assert not (cache_dir / "memo-index.sqlite").exists()
    assert (cache_dir / "memo-index.sqlite.imported").exists()
    store = LocalStore(cache_dir, sync=True)
    rows, unknown = read_rows(store, "old.f")
    store.close()
    assert [(r.args, r.compute_seconds) for r in rows] == [("21", 0.5), ("21", 0.5)]
    assert unknown == []
    cleared = run_py(code, env={"OLD_VERSION": "2", "OLD_CLEAR": "1"}).stdout
    assert "REMOVED 2" in cleared, "both code versions"


def test_metadata_is_stored_with_each_entry(cache_dir: Path) -> None:
    group = MemoizedGroup("described", store=cache_dir)

    @memoize(group=group, name="described.f", assume_pure=True)
    def f(x: int, *, scale: float = 1.0) -> float:
        return x * scale

    f(2, scale=0.5)
    group.flush()
    [row] = read_rows(group.engine.store, "described.f")[0]
    assert (row.function, row.args) == ("described.f", "2, scale=0.5")
    assert row.fingerprint == f.fingerprint.hex() and row.size > 0
    assert 0 < time.time() - row.created < 60


def test_evicted_then_recomputed_is_not_reported_corrupt(
    cache_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """An entry evicted on purpose is gone from the index too, even while that delete still
    waits in the background: recomputing it warns of nothing."""
    caplog.set_level(logging.DEBUG, logger="reckon.memo")
    group = MemoizedGroup("evict-then-miss", store=cache_dir)
    calls: list[int] = []

    @memoize(group=group)
    def f(x: int) -> int:
        calls.append(x)
        return x

    for _ in range(20):
        f(1)
        group.flush()
        f.evict(1)
        assert f(1) == 1  # at once, while the index's delete is queued
        f.evict(1)
    group.flush()
    assert calls == [1] * 40
    assert _memo_lines(caplog, "corrupt") == []


def test_memory_level_never_touches_the_store(cache_dir: Path) -> None:
    group = MemoizedGroup("memory-only", store=cache_dir)

    @memoize(group=group, level=CachingLevel.MEMORY)
    def f(x: int) -> int:
        calls.append(x)
        return x

    f(1)
    f(1)
    group.flush()
    assert calls == [1]
    assert group.usage()["store"]["entries"] == 0
    f.clear()
    f(1)
    assert calls == [1, 1]


def test_clear_removes_every_code_version(cache_dir: Path) -> None:
    group = MemoizedGroup("versions", store=cache_dir)

    def make(version: str) -> Any:
        @memoize(group=group, name="versioned.f", version=version)
        def f(x: int) -> int:
            calls.append((version, x))
            return x

        return f

    v1, v2 = make("1"), make("2")
    v1(1)
    v2(1)
    assert calls == [("1", 1), ("2", 1)]
    assert v1.clear() == 2
    group.flush()
    assert group.usage()["store"]["entries"] == 0


def test_group_pickles_as_configuration(cache_dir: Path) -> None:
    import pickle

    group = MemoizedGroup("pickled", store=cache_dir, size="2 MiB", policy="lru")
    again = pickle.loads(pickle.dumps(group))
    assert again is group
    assert repr(group).startswith("MemoizedGroup('pickled'")


def test_clear_stale_cascades_to_old_code_versions(
    cache_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """charmonium deletes an old version's entries when the function's code changes (its
    "cascading delete"); reckon keeps them (changing the code back hits again) until asked."""
    caplog.set_level(logging.INFO, logger="reckon.memo")
    group = MemoizedGroup("stale", store=cache_dir)

    def make(version: str) -> Any:
        @memoize(group=group, name="stale.f", version=version)
        def f(x: int) -> int:
            calls.append((version, x))
            return x

        return f

    v1 = make("1")
    v1(1)
    v1(2)
    v2 = make("2")  # the code changed: v1's entries are now stale
    v2(1)
    group.flush()
    assert v2.clear(stale=True) == 2
    evicted = _memo_lines(caplog, "evict")
    assert sorted(line.split(" (")[0] for line in evicted) == [
        "evict: stale.f(1)",
        "evict: stale.f(2)",
    ]
    assert all("stale: code version" in line for line in evicted)
    group.engine.clear(CachingLevel.MEMORY)
    assert v2.would_hit(1)
    assert group.usage()["store"]["entries"] == 1
    assert [r.args for r in read_rows(group.engine.store, "stale.f")[0]] == ["1"]
    assert v2.clear(stale=True) == 0
