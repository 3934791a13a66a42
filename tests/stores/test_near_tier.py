"""The near tier: a far store fronted by a LocalStore on each machine.

"Machines" are processes with near tiers in different directories. A value computed on machine A
reaches machine B through Redis; B keeps it near, so B's next fresh process hits even with Redis
gone.
"""

from __future__ import annotations

import os
import subprocess
import sys
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
