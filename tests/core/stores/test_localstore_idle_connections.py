"""Threads that come and go reuse the index connections of threads that ended (a small idle pool
per store), and the rules of a thread's own connection hold for reused ones: never two live
threads on one, never across fork, never to an index file that was replaced, closed by close()."""

from __future__ import annotations

import gc
import sqlite3
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from _store_helpers import fork_child, wait_exit

from reckon.core.stores import LocalStore
from reckon.core.stores._index import IDLE_MAX


def _in_thread(body: Callable[[], object]) -> object:
    """Run ``body`` in a new thread that ends before this returns; its result."""
    out: list[object] = []
    errors: list[BaseException] = []

    def run() -> None:
        try:
            out.append(body())
        except BaseException as exc:  # re-raised in the caller
            errors.append(exc)

    t = threading.Thread(target=run)
    t.start()
    t.join()
    if errors:
        raise errors[0]
    return out[0]


def _read_and_conn(store: LocalStore, key: str, value: bytes) -> sqlite3.Connection:
    assert store.get(key) == value
    return store._index.conn()


def test_short_lived_threads_reuse_a_few_connections(tmp_path: Path) -> None:
    store = LocalStore(tmp_path, sync=True)
    store.put("k", b"v")
    opened = store._index.opened
    for _ in range(200):
        _in_thread(lambda: store.get("k") == b"v" or pytest.fail("wrong value"))
    assert store._index.opened - opened <= 2  # one per thread before: 200
    store.close()


def test_live_threads_never_share_a_connection(tmp_path: Path) -> None:
    store = LocalStore(tmp_path, sync=True)
    store.put("k", b"v")
    in_use: set[int] = set()
    guard = threading.Lock()
    clashes: list[int] = []

    def work(rounds: int) -> None:
        for _ in range(rounds):
            assert store.get("k") == b"v"
            conn = store._index.conn()
            with guard:
                if id(conn) in in_use:
                    clashes.append(id(conn))
                in_use.add(id(conn))
            time.sleep(0.0005)  # hold it while other threads start and end
            assert store.get("k") == b"v"
            with guard:
                in_use.discard(id(conn))

    for _wave in range(10):  # waves of threads that overlap; each wave reuses the last's
        threads = [threading.Thread(target=work, args=(3,)) for _ in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    assert clashes == []

    barrier = threading.Barrier(IDLE_MAX + 3)
    conns: list[sqlite3.Connection] = []

    def hold() -> None:
        conns.append(_read_and_conn(store, "k", b"v"))
        barrier.wait(timeout=60)  # all alive at once

    threads = [threading.Thread(target=hold) for _ in range(IDLE_MAX + 3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len({id(c) for c in conns}) == IDLE_MAX + 3
    conns.clear()
    gc.collect()
    # the main thread's, plus at most IDLE_MAX kept for threads to come; the rest were closed
    assert len(store._index.connections()) <= 1 + IDLE_MAX
    store.close()


def test_close_closes_idle_connections(tmp_path: Path) -> None:
    store = LocalStore(tmp_path, sync=True)
    store.put("k", b"v")
    conn = _in_thread(lambda: _read_and_conn(store, "k", b"v"))
    assert isinstance(conn, sqlite3.Connection)
    assert _in_thread(lambda: _read_and_conn(store, "k", b"v")) is conn  # kept, then reused
    store.close()
    with pytest.raises(sqlite3.ProgrammingError):
        conn.execute("SELECT 1")


def test_idle_connection_is_not_reused_after_fork(tmp_path: Path) -> None:
    store = LocalStore(tmp_path, sync=True)
    store.put("k", b"v")
    parked = _in_thread(lambda: _read_and_conn(store, "k", b"v"))
    assert _in_thread(lambda: _read_and_conn(store, "k", b"v")) is parked  # it is reused here
    parents = {id(c) for c in store._index.connections()}
    assert id(parked) in parents

    def child() -> None:
        opened = store._index.opened
        conn = _in_thread(lambda: _read_and_conn(store, "k", b"v"))
        assert id(conn) not in parents  # the parent's connections are alive: ids are unique
        assert store._index.opened == opened + 1
        # neither used nor closed here (closing could touch the parent's locks and WAL); this
        # reads a field of the connection object only
        assert parked.in_transaction is False
        store.put("child", b"c")
        assert _in_thread(lambda: store.get("child")) == b"c"

    assert wait_exit(fork_child(child)) == 0
    assert _in_thread(lambda: _read_and_conn(store, "child", b"c")) is parked
    store.close()


def test_idle_connection_is_not_reused_after_the_index_is_replaced(tmp_path: Path) -> None:
    path = tmp_path / "s"
    a = LocalStore(path, sync=True)
    a.put("old", b"o")
    parked = _in_thread(lambda: _read_and_conn(a, "old", b"o"))
    assert any(c is parked for c in a._index.connections())  # kept for the next thread
    for suffix in ("", "-wal", "-shm"):  # someone removes the index under a's feet
        (path / f"index.sqlite3{suffix}").unlink(missing_ok=True)
    b = LocalStore(path, sync=True)  # makes a new one
    b.put("new", b"from b")
    opened = a._index.opened
    conn = _in_thread(lambda: _read_and_conn(a, "new", b"from b"))  # a new thread sees it at once
    assert conn is not parked
    assert a._index.opened == opened + 1
    with pytest.raises(sqlite3.ProgrammingError):  # the one to the removed file was closed
        parked.execute("SELECT 1")
    a.close()
    b.close()
