"""Leases: cross-process single flight on OS file locks that die with their holder."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

from _store_helpers import fork_child, kill9, wait_exit

from reckon.core.stores import LocalStore

KEY = "a" * 64


def test_two_processes_compute_once(tmp_path: Path) -> None:
    path = tmp_path / "store"
    LocalStore(path).close()
    log = tmp_path / "computed"
    go_r, go_w = os.pipe()

    def contender() -> None:
        store = LocalStore(path)
        os.read(go_r, 1)
        with store.lease(KEY, timeout=60) as mine:
            if mine:
                with open(log, "a") as f:
                    f.write(f"{os.getpid()}\n")
                time.sleep(0.3)  # long enough for the other to queue on the lease
                store.put(KEY, b"result" * 1000)
            else:
                assert bytes(store.get(KEY) or b"") == b"result" * 1000
        assert bytes(store.get(KEY) or b"") == b"result" * 1000
        store.close()

    pids = [fork_child(contender) for _ in range(2)]
    os.write(go_w, b"gg")
    assert [wait_exit(p) for p in pids] == [0, 0]
    assert len(log.read_text().splitlines()) == 1
    assert not any(p.suffix == ".lock" for p in (path / "leases").iterdir())


def test_waiter_takes_over_when_holder_is_killed(tmp_path: Path) -> None:
    path = tmp_path / "store"
    store = LocalStore(path)
    ready_r, ready_w = os.pipe()

    def holder() -> None:
        s = LocalStore(path)
        with s.lease(KEY):
            os.write(ready_w, b"r")
            time.sleep(600)

    pid = fork_child(holder)
    assert os.read(ready_r, 1) == b"r"
    granted = threading.Event()
    result: list[bool] = []

    def waiter() -> None:
        with store.lease(KEY, timeout=120) as mine:
            result.append(mine)
            granted.set()

    t = threading.Thread(target=waiter)
    t.start()
    assert not granted.wait(0.3)  # held by the child
    kill9(pid)
    assert wait_exit(pid) == -9
    assert granted.wait(60)
    t.join()
    assert result == [True]  # the value never arrived: the waiter computes
    store.close()


def test_waiter_reads_when_holder_put_the_value(tmp_path: Path) -> None:
    store = LocalStore(tmp_path)
    other = LocalStore(tmp_path)
    entered = threading.Event()
    release = threading.Event()

    def holder() -> None:
        with store.lease(KEY) as mine:
            assert mine
            entered.set()
            release.wait(60)
            store.put(KEY, b"v")  # queued in the background; the lease flushes it on exit

    t = threading.Thread(target=holder)
    t.start()
    assert entered.wait(60)
    outcome: list[bool] = []

    def waiter() -> None:
        with other.lease(KEY, timeout=60) as mine:
            outcome.append(mine)

    w = threading.Thread(target=waiter)
    w.start()
    release.set()
    t.join()
    w.join(60)
    assert outcome == [False]
    assert other.get(KEY) == b"v"
    store.close()
    other.close()


def test_lease_timeout_yields_true_without_the_lease(tmp_path: Path) -> None:
    store = LocalStore(tmp_path)
    with store.lease(KEY) as first:
        assert first
        start = time.monotonic()
        with store.lease(KEY, timeout=0.2) as second:
            assert second
        assert time.monotonic() - start >= 0.2
    with store.lease(KEY, timeout=0) as again:  # free now
        assert again
    store.close()


def test_lease_on_present_value_yields_false(tmp_path: Path) -> None:
    store = LocalStore(tmp_path)
    store.put(KEY, b"v")
    with store.lease(KEY) as mine:
        assert mine is False
    with store.lease("odd/key with spaces") as mine:
        assert mine is True
    store.close()


def test_failed_computation_releases_the_lease(tmp_path: Path) -> None:
    store = LocalStore(tmp_path)
    try:
        with store.lease(KEY) as mine:
            assert mine
            raise ValueError("compute failed")
    except ValueError:
        pass
    with store.lease(KEY, timeout=5) as mine:
        assert mine
    store.close()
