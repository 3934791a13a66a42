"""Values larger than the Redis server takes (``proto-max-bulk-len``) are stored in chunks, on a
real redis-server whose limit is set to its minimum (1 MB): read back whole and verified by
another process, never seen half written, removed with their entry, evicted, and refused when a
chunk was tampered with."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from _redis import start_redis

from reckon.core import CachingLevel, Engine, RequestId, open_store
from reckon.core.stores import RedisStore

_READ = """
import hashlib, sys
from reckon.core import open_store
value = open_store(sys.argv[1], near=None).get(sys.argv[2])
print("MISS" if value is None else hashlib.sha256(value).hexdigest())
"""


@pytest.fixture
def small_redis(tmp_path: Path) -> Iterator[str]:
    import redis

    proc, url = start_redis(tmp_path)
    redis.Redis.from_url(url).config_set("proto-max-bulk-len", "1mb")
    yield url
    proc.kill()
    proc.wait(30)


def _chunk_keys(url: str, prefix: str) -> list[bytes]:
    import redis

    return sorted(redis.Redis.from_url(url).scan_iter(match=f"{prefix}c:*"))


def test_a_value_over_the_limit_is_chunked_and_read_whole_elsewhere(small_redis: str) -> None:
    store = RedisStore(small_redis, prefix="big:")
    key = RequestId("big", 1).disk_key
    value = os.urandom((5 << 19) + 123)  # 2.5 MB: three chunks
    store.put(key, [value[:1000], memoryview(value)[1000:]], meta={"what": "big"})
    assert store.flush() == []
    assert len(_chunk_keys(small_redis, "big:")) == 3
    assert store.usage().entries == 1 and store.usage().bytes == len(value)
    read = subprocess.run(
        [sys.executable, "-c", _READ, small_redis + "?prefix=big:", key],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    import hashlib

    assert read.stdout.strip() == hashlib.sha256(value).hexdigest()
    assert store.metadata(key) == {"what": "big"}
    store.put(key, value[::-1])  # a new value replaces the old chunks
    assert bytes(store.get(key) or b"") == value[::-1]
    assert len(_chunk_keys(small_redis, "big:")) == 3
    assert store.delete(key)
    assert _chunk_keys(small_redis, "big:") == []
    store.close()


def test_a_tampered_chunk_is_refused_and_dropped(small_redis: str) -> None:
    import redis

    store = RedisStore(small_redis, prefix="bad:")
    key = RequestId("bad", 1).disk_key
    store.put(key, os.urandom(3 << 20))
    chunks = _chunk_keys(small_redis, "bad:")
    redis.Redis.from_url(small_redis).set(chunks[1], os.urandom(10))
    assert store.get(key) is None
    assert not store.contains(key) and _chunk_keys(small_redis, "bad:") == []
    store.close()


def test_eviction_and_engine_hits_with_chunked_values(small_redis: str) -> None:
    store = open_store(f"{small_redis}?prefix=ev:&budget=5MB", near=None)
    engine = Engine(store=store, memory_budget=0)
    runs: list[int] = []

    def compute(i: int) -> bytes:
        runs.append(i)
        return bytes([i]) * (2 << 20)

    for i in range(3):  # 3 x 2 MiB over a 5 MB budget: the oldest goes, chunks and all
        engine.get(RequestId("ev", i), CachingLevel.FULL, lambda i=i: compute(i))
    assert store.usage().entries == 2
    assert len(_chunk_keys(small_redis, "ev:")) == 2 * 3
    for i in (1, 2):
        assert engine.get(RequestId("ev", i), CachingLevel.FULL, lambda i=i: compute(i)) == (
            bytes([i]) * (2 << 20)
        )
    assert runs == [0, 1, 2], "chunked values hit"
    engine.close()
