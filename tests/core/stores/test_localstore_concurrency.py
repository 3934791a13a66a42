"""Many processes and threads on one directory, fork safety, and the background writer."""

from __future__ import annotations

import os
import random
import sqlite3
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from _store_helpers import (
    check_index_invariants,
    check_values,
    fork_child,
    value_for,
    wait_exit,
)

from reckon.core.stores import LocalStore


def _mixed_worker(path: Path, seed: int, ops: int) -> None:
    rng = random.Random(seed)
    store = LocalStore(
        path,
        budget=1_500_000,
        inline_threshold=512,
        sync=seed % 2 == 1,
        policy="lru" if seed < 2 else "gds",
    )
    reads = 0
    for _ in range(ops):
        key = f"k{rng.randrange(150)}"
        r = rng.random()
        if r < 0.55:
            got = store.get(key)
            if got is not None:
                reads += 1
                if bytes(got) != value_for(key):
                    raise AssertionError(f"process {seed}: wrong value for {key}")
        elif r < 0.9:
            store.put(key, value_for(key), cost=rng.random())
        elif r < 0.98:
            store.delete(key)
        else:
            store.contains(key)
    store.close()
    if reads == 0:
        raise AssertionError(f"process {seed} never read a value")


def test_four_processes_mixed_gets_and_puts(tmp_path: Path) -> None:
    path = tmp_path / "store"
    pids = [fork_child(lambda s=seed: _mixed_worker(path, s, 2_000)) for seed in range(4)]
    assert [wait_exit(pid) for pid in pids] == [0, 0, 0, 0]
    store = LocalStore(path, sync=True)
    assert check_values(store) > 0
    assert store.usage().bytes <= 1_500_000
    store.close()
    check_index_invariants(path)


def test_threads_share_a_store(tmp_path: Path) -> None:
    store = LocalStore(tmp_path, inline_threshold=512)
    errors: list[BaseException] = []

    def work(seed: int) -> None:
        rng = random.Random(seed)
        try:
            for _ in range(300):
                key = f"k{rng.randrange(60)}"
                if rng.random() < 0.5:
                    store.put(key, value_for(key))
                else:
                    got = store.get(key)
                    assert got is None or bytes(got) == value_for(key)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    store.flush()
    assert check_values(store) > 0
    store.close()
    check_index_invariants(tmp_path)


def test_store_keeps_working_in_a_forked_child(tmp_path: Path) -> None:
    store = LocalStore(tmp_path)
    store.put("parent", b"p" * 10_000)
    assert store.get("parent") == b"p" * 10_000  # the parent's connection is open now

    def child() -> None:
        assert bytes(store.get("parent") or b"") == b"p" * 10_000
        store.put("child", b"c" * 10_000)
        store.flush()
        assert bytes(store.get("child") or b"") == b"c" * 10_000

    assert wait_exit(fork_child(child)) == 0
    assert bytes(store.get("child") or b"") == b"c" * 10_000
    store.put("parent2", b"q")
    store.flush()
    assert store.get("parent2") == b"q"
    store.close()


def _hold_write_lock(path: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(path / "index.sqlite3", isolation_level=None)
    conn.execute("BEGIN IMMEDIATE")
    return conn


def test_background_writes_are_readable_before_they_reach_disk(tmp_path: Path) -> None:
    store = LocalStore(tmp_path)
    other = LocalStore(tmp_path, sync=True)
    blocker = _hold_write_lock(tmp_path)  # the writer cannot commit while this is held
    store.put("small", b"queued")
    store.put("big", b"B" * 100_000)
    store.put("gone", b"x")
    assert store.delete("gone") is True
    assert store.get("small") == b"queued"
    assert bytes(store.get("big") or b"") == b"B" * 100_000
    assert store.get("gone") is None and not store.contains("gone")
    assert sorted(store.keys()) == ["big", "small"]
    assert not other.contains("small")  # not on disk yet
    blocker.execute("COMMIT")
    blocker.close()
    store.flush()
    assert other.get("small") == b"queued"
    assert bytes(other.get("big") or b"") == b"B" * 100_000
    assert not other.contains("gone")
    store.close()
    other.close()


def test_queue_is_bounded(tmp_path: Path) -> None:
    store = LocalStore(tmp_path, queue_bytes=4_000)
    blocker = _hold_write_lock(tmp_path)
    done = threading.Event()

    def producer() -> None:
        for i in range(20):
            store.put(f"k{i}", bytes([i]) * 1_000)
        done.set()

    t = threading.Thread(target=producer)
    t.start()
    # While the writer is stuck, the producer must block once about 4 KB are queued.
    assert not done.wait(0.5)
    assert len(store._writer.pending) <= 5  # type: ignore[union-attr]
    blocker.execute("COMMIT")
    blocker.close()
    t.join(60)
    assert done.is_set()
    store.flush()
    assert all(store.get(f"k{i}") == bytes([i]) * 1_000 for i in range(20))
    store.close()


def test_queued_writes_are_flushed_at_exit(tmp_path: Path) -> None:
    code = (
        "import sys\n"
        "from reckon.core.stores import LocalStore\n"
        "s = LocalStore(sys.argv[1])\n"
        "for i in range(200):\n"
        "    s.put(f'k{i}', bytes([i % 256]) * (10 + i * 50))\n"
        "# no flush, no close: interpreter exit must write them\n"
    )
    subprocess.run([sys.executable, "-c", code, str(tmp_path)], check=True, timeout=120)
    store = LocalStore(tmp_path, sync=True)
    assert store.usage().entries == 200
    assert all(
        bytes(store.get(f"k{i}") or b"") == bytes([i % 256]) * (10 + i * 50) for i in range(200)
    )
    store.close()


def test_sync_mode_writes_before_returning(tmp_path: Path) -> None:
    store = LocalStore(tmp_path, sync=True)
    other = LocalStore(tmp_path, sync=True)
    store.put("k", b"v" * 9000)
    assert other.get("k") == b"v" * 9000
    store.close()
    other.close()


def test_get_in_other_process_after_flush(tmp_path: Path) -> None:
    store = LocalStore(tmp_path)
    store.put("k", os.urandom(5) * 2000)
    store.flush()
    code = (
        "import sys\nfrom reckon.core.stores import LocalStore\n"
        "print(len(LocalStore(sys.argv[1]).get('k') or b''))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, str(tmp_path)],
        check=True,
        capture_output=True,
        text=True,
        timeout=120,
    ).stdout
    assert out.strip() == "10000"
    store.close()


def test_connections_of_finished_threads_are_released(tmp_path: Path) -> None:
    import gc

    store = LocalStore(tmp_path, sync=True)
    store.put("k", b"v")

    def read() -> None:
        assert store.get("k") == b"v"

    for _ in range(40):
        t = threading.Thread(target=read)
        t.start()
        t.join()
    gc.collect()
    assert len(store._index.connections()) <= 2
    assert store.get("k") == b"v"
    store.close()


def test_many_hits_are_recorded_for_lru(tmp_path: Path) -> None:
    store = LocalStore(tmp_path, budget=None)
    for i in range(4_200):
        store.put(f"k{i}", b"x" * 10)
    store.flush()
    for i in range(4_150):  # more than one batch of hits: the first is handed to the writer
        assert store.get(f"k{i}") == b"x" * 10
    store.flush()
    assert store.evict(41_500) == 50  # the 50 never read go first
    assert sorted(store.keys()) == sorted(f"k{i}" for i in range(4_150))
    store.close()


def _mp_writer(path: str) -> None:
    store = LocalStore(path)
    for i in range(50):
        store.put(f"k{i}", bytes([i]) * 100)
    # no flush: the child ends through multiprocessing, which skips atexit


@pytest.mark.parametrize("method", ["fork", "forkserver", "spawn"])
def test_queued_writes_survive_multiprocessing_exit(tmp_path: Path, method: str) -> None:
    import multiprocessing

    proc = multiprocessing.get_context(method).Process(target=_mp_writer, args=(str(tmp_path),))
    proc.start()
    proc.join(120)
    assert proc.exitcode == 0
    store = LocalStore(tmp_path, sync=True)
    assert store.usage().entries == 50
    assert all(store.get(f"k{i}") == bytes([i]) * 100 for i in range(50))
    store.close()
