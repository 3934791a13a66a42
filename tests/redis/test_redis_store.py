"""RedisStore against a real redis-server: the Store protocol, checksums, budget, concurrency."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import pytest
import redis
from _redis import start_redis

from reckon.core.stores import RedisStore, Store, StoreUsage
from reckon.errors import StoreError


@pytest.fixture
def store(redis_url: str, redis_client: redis.Redis) -> RedisStore:
    s = RedisStore(redis_url)
    yield s
    s.close()


def test_is_a_store(store: RedisStore) -> None:
    assert isinstance(store, Store)


def test_roundtrip(store: RedisStore) -> None:
    small, big = b"hello", os.urandom(200_000)
    store.put("a", small)
    store.put("b", memoryview(big))
    assert store.get("a") == small
    assert bytes(store.get("b") or b"") == big
    assert store.get("missing") is None
    assert store.contains("a") and not store.contains("missing")
    assert sorted(store.keys()) == ["a", "b"]
    assert store.usage() == StoreUsage(2, len(small) + len(big), None)
    store.put("a", b"replaced!")
    assert store.get("a") == b"replaced!"
    assert store.usage().bytes == len(b"replaced!") + len(big)
    assert store.delete("a") is True
    assert store.delete("a") is False
    assert store.usage() == StoreUsage(1, len(big), None)
    store.flush()


def test_corrupt_value_is_a_logged_miss(
    store: RedisStore, redis_client: redis.Redis, caplog: pytest.LogCaptureFixture
) -> None:
    store.put("k", b"value" * 100)
    raw = bytearray(redis_client.get("reckon:v:k") or b"")
    raw[20] ^= 1
    redis_client.set("reckon:v:k", bytes(raw))
    assert store.get("k") is None
    assert "failed authentication" in caplog.text
    assert not store.contains("k")
    assert store.usage().entries == 0
    redis_client.set("reckon:v:short", b"xx")  # not even a header
    assert store.get("short") is None


def test_lru_budget(redis_url: str, redis_client: redis.Redis) -> None:
    evicted: list[str] = []
    s = RedisStore(redis_url, budget=300, on_evict=evicted.append)
    for k in "abc":
        s.put(k, k.encode() * 100)
        time.sleep(0.002)  # access times are wall-clock on the client
    assert s.get("a") is not None
    time.sleep(0.002)
    s.put("d", b"d" * 100)
    assert evicted == ["b"]
    assert sorted(s.keys()) == ["a", "c", "d"]
    assert s.usage().bytes == 300
    assert s.evict(100) == 2
    assert s.usage() == StoreUsage(1, 100, 300)
    s.close()


def test_ttl_expires_values(redis_url: str, redis_client: redis.Redis) -> None:
    s = RedisStore(redis_url, ttl=0.2)
    s.put("k", b"v")
    assert s.get("k") == b"v"
    deadline = time.monotonic() + 10
    while s.get("k") is not None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert s.get("k") is None
    s.close()


def test_prefixes_isolate_stores(redis_url: str, redis_client: redis.Redis) -> None:
    one = RedisStore(redis_url, prefix="one:")
    two = RedisStore(redis_url, prefix="two:")
    one.put("k", b"1")
    assert two.get("k") is None
    assert list(two.keys()) == []
    one.close()
    two.close()


def test_threads_and_clients_share_a_server(redis_url: str, redis_client: redis.Redis) -> None:
    errors: list[BaseException] = []

    def work(seed: int) -> None:
        s = RedisStore(redis_url, budget=50_000)
        try:
            for i in range(200):
                key = f"k{(seed * 7 + i) % 40}"
                value = key.encode() * 200
                if i % 3:
                    s.put(key, value)
                else:
                    got = s.get(key)
                    assert got is None or bytes(got) == value
        except BaseException as exc:
            errors.append(exc)
        finally:
            s.close()

    threads = [threading.Thread(target=work, args=(n,)) for n in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    s = RedisStore(redis_url, budget=50_000)
    usage = s.usage()
    assert usage.bytes <= 50_000
    stored = list(s.keys())
    assert usage.bytes == sum(len(bytes(s.get(k) or b"")) for k in stored)
    s.close()


def test_unreachable_server_is_a_miss_and_a_bad_url_an_error(
    caplog: pytest.LogCaptureFixture,
) -> None:
    store = RedisStore("redis://127.0.0.1:1/0")  # nothing listens on port 1: not fatal
    assert not store.reachable
    assert store.get("k") is None
    store.put("k", b"v")
    assert store.unstored == 1
    assert caplog.text.count("unreachable") == 1, "one warning per outage"
    store.close()
    with pytest.raises(StoreError, match="redis"):
        RedisStore("not a url")


def test_server_going_away_degrades_to_misses(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    proc, url = start_redis(tmp_path)
    s = RedisStore(url)
    s.put("k", b"v")
    assert s.get("k") == b"v"
    proc.kill()
    proc.wait(30)
    assert s.get("k") is None
    s.put("k2", b"v")
    assert s.contains("k") is False
    assert s.delete("k") is False
    assert s.usage().entries == 0
    assert list(s.keys()) == []
    assert s.evict(0) == 0
    assert caplog.text.count("unreachable") == 1, "one warning per outage"
    s.close()


def test_put_takes_pieces_of_one_value(store: RedisStore) -> None:
    pieces = [b"head", memoryview(os.urandom(100_000)), bytearray(b"tail")]
    store.put("p", pieces)
    store.put("t", (b"a", b"b"))
    assert bytes(store.get("p") or b"") == b"".join(bytes(p) for p in pieces)
    assert bytes(store.get("t") or b"") == b"ab"
    assert store.usage().bytes == 100_008 + 2
    with pytest.raises(StoreError):
        store.put("bad", [b"ok", 3])  # type: ignore[list-item]


def test_hits_access_times_reach_the_server_in_batches(
    redis_url: str, redis_client: redis.Redis
) -> None:
    """A hit is one GET; its access time (for LRU) waits for the next batch, sent by flush (or
    256 hits, or a second, or an eviction, or close), in one ZADD."""
    s = RedisStore(redis_url, prefix="touch:")
    s.put("a", b"a")
    s.put("b", b"b")
    put_at = redis_client.zscore("touch:access", "a")
    b_at = redis_client.zscore("touch:access", "b")
    time.sleep(0.01)
    assert s.get("a") == b"a"
    assert redis_client.zscore("touch:access", "a") == put_at  # not sent yet
    assert s.flush() == []
    touched = redis_client.zscore("touch:access", "a")
    assert touched is not None and put_at is not None and touched > put_at
    assert redis_client.zscore("touch:access", "b") == b_at  # not read: not touched
    s.close()
