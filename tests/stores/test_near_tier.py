"""The near tier: a far store fronted by a LocalStore on each machine.

"Machines" are processes with near tiers in different directories. A value computed on machine A
reaches machine B through Redis; B keeps it near, so B's next fresh process hits even with Redis
gone.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from _redis import start_redis

from reckon.core import RequestId, open_store
from reckon.core.stores.near import NearStore

_READ = """
import sys
from reckon.core import open_store
store = open_store(sys.argv[1])
sys.stdout.buffer.write(bytes(store.get(sys.argv[2]) or b"MISS"))
"""


def _read_in_fresh_process(url: str, key: str) -> bytes:
    out = subprocess.run(
        [sys.executable, "-c", _READ, url, key], capture_output=True, check=True, timeout=120
    )
    return out.stdout


def test_machine_b_keeps_what_it_read_near(tmp_path: Path) -> None:
    proc, redis_url = start_redis(tmp_path)
    try:
        key = RequestId("near", "b").disk_key
        url_a = f"{redis_url}?prefix=near:&near={tmp_path}/machine-a&timeout=1&connect_timeout=0.5"
        url_b = f"{redis_url}?prefix=near:&near={tmp_path}/machine-b&timeout=1&connect_timeout=0.5"
        a = open_store(url_a)
        assert isinstance(a, NearStore)
        a.put(key, b"computed on A")
        assert a.flush() == []
        assert a.far.get(key) == b"computed on A", "write-through reached Redis"
        assert _read_in_fresh_process(url_b, key) == b"computed on A"  # from Redis, kept near
        proc.kill()
        proc.wait(30)
        assert _read_in_fresh_process(url_b, key) == b"computed on A", "a near hit, no Redis"
        a.close()
    finally:
        proc.kill()
        proc.wait(30)


def test_near_off_and_pickling(redis_url: str, tmp_path: Path) -> None:
    import pickle

    url = f"{redis_url}?prefix=near2:&near={tmp_path}/near"
    store = open_store(url)
    assert pickle.loads(pickle.dumps(store)) is store
    assert type(open_store(f"{redis_url}?prefix=near2:&near=off")).__name__ == "RedisStore"
    key = RequestId("near", "delete").disk_key
    store.put(key, b"v")
    store.flush()
    assert store.delete(key)
    assert store.get(key) is None
    assert not store.contains(key)


@pytest.mark.parametrize("size", [10, 3 << 20])
def test_values_bigger_than_the_near_budget_still_reach_far(
    redis_url: str, tmp_path: Path, size: int
) -> None:
    store = open_store(f"{redis_url}?prefix=near3:&near={tmp_path}/n&near_budget=1MiB")
    key = RequestId("near", "big", size).disk_key
    value = os.urandom(size)
    store.put(key, value)
    assert store.get(key) == value  # read-your-writes while the far write is queued
    assert store.flush() == []
    assert isinstance(store, NearStore)
    assert store.far.get(key) == value


# -- the holder's value goes near at once, far in the background ----------------------------

_EXITS_AT_ONCE = """
import os, signal, sys
from reckon.core import CachingLevel, Engine, RequestId, open_store
url, pid = sys.argv[1], int(sys.argv[2])
engine = Engine(store=open_store(url), memory_budget=0)
def body():
    os.kill(pid, signal.SIGSTOP)  # the far store freezes: its write cannot end before we return
    return b"computed"
assert engine.get(RequestId("exit", 1), CachingLevel.FULL, body) == b"computed"
print("returned", flush=True)
"""  # (and exits without flush or close, while the far store is still frozen)


def _far_value(url: str, key: str) -> object:
    """The value of ``key`` in the far store alone (decoded), None when it is not there."""
    from reckon.core import PickleCodec

    far = open_store(url)
    try:
        data = far.get(key)
        return None if data is None else PickleCodec().decode(data)
    finally:
        far.close()


@pytest.mark.parametrize("then", ["flush", "close"])
def test_the_holder_returns_before_its_far_write(tmp_path: Path, then: str) -> None:
    """With the near tier, a holder's caller gets its value once it is in the near tier: the far
    write (and the far lease's release after it) go on in the background, and flush() and
    close() wait for them. Shown with the far store frozen (SIGSTOP) from inside the computation:
    the get returns while Redis cannot answer, and the value is far once it runs again."""
    from reckon.core import CachingLevel, Engine

    proc, url = start_redis(tmp_path)
    options = "prefix=bg:&timeout=30&lease_ttl=30"
    near_url = f"{url}?{options}&near={tmp_path / 'near'}"
    rid = RequestId("background", then)
    engine = Engine(store=open_store(near_url), memory_budget=0)
    try:

        def body() -> bytes:
            os.kill(proc.pid, signal.SIGSTOP)
            return b"computed"

        assert engine.get(rid, CachingLevel.FULL, body) == b"computed"
        assert engine.store.near.contains(rid.disk_key)  # type: ignore[union-attr]
        # (Redis is still frozen here: the far write has not ended.)
        threading.Timer(0.5, os.kill, (proc.pid, signal.SIGCONT)).start()
        if then == "flush":
            assert engine.flush() == []
            assert engine.stats()["counters"]["store_errors"] == 0
        else:
            engine.store.close()  # type: ignore[union-attr]
        assert _far_value(f"{url}?{options}&near=off", rid.disk_key) == b"computed"
    finally:
        os.kill(proc.pid, signal.SIGCONT)
        engine.close()
        proc.terminate()
        proc.wait(30)


def test_far_writes_left_at_exit_are_written(tmp_path: Path) -> None:
    """A process that exits right after its holder returned (no flush, no close) still writes
    the value far before it ends: its exit waits for the far store (frozen until then)."""
    proc, url = start_redis(tmp_path)
    options = "prefix=exit:&timeout=30&lease_ttl=30"
    try:
        child = subprocess.Popen(
            [
                sys.executable,
                "-c",
                _EXITS_AT_ONCE,
                f"{url}?{options}&near={tmp_path / 'near'}",
                str(proc.pid),
            ],
            stdout=subprocess.PIPE,
            text=True,
        )
        assert child.stdout is not None
        assert child.stdout.readline().strip() == "returned"
        threading.Timer(0.5, os.kill, (proc.pid, signal.SIGCONT)).start()
        assert child.wait(120) == 0
        key = RequestId("exit", 1).disk_key
        assert _far_value(f"{url}?{options}&near=off", key) == b"computed"
    finally:
        os.kill(proc.pid, signal.SIGCONT)
        proc.terminate()
        proc.wait(30)
