"""A shared store that goes away never fails a call: Redis refused at start, killed with
SIGKILL, frozen with SIGSTOP, and restarted on the same port, while a caller keeps asking.

Every call must return the right value (computed when the store is away), the store must warn
once per outage, answer without waiting out its timeout on every call, and be used again once
the server is back.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import redis
from _redis import start_redis, start_redis_on

from reckon.core import CachingLevel, Engine, RequestId
from reckon.core.stores import RedisStore


def _calls(engine: Engine, tag: str, n: int) -> list[int]:
    return [
        engine.get(RequestId("outage", tag, i), CachingLevel.FULL, lambda i=i: i * 3)
        for i in range(n)
    ]


def _wait_reachable(engine: Engine, store: RedisStore, tag: str) -> None:
    deadline = time.monotonic() + 60
    n = 0
    while not store.reachable:
        assert time.monotonic() < deadline, "the store never came back"
        _calls(engine, f"{tag}-{n}", 1)
        n += 1
        time.sleep(0.2)


def _warnings(caplog: pytest.LogCaptureFixture) -> int:
    return sum("unreachable" in r.getMessage() for r in caplog.records)


def test_killed_and_restarted_mid_run(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    proc, url = start_redis(tmp_path)
    port = urlsplit(url).port
    store = RedisStore(url, prefix="kill:", timeout=1.0, connect_timeout=0.5)
    engine = Engine(store=store, memory_budget=0)
    caplog.set_level(logging.INFO, logger="reckon.core.store")
    assert _calls(engine, "before", 5) == [i * 3 for i in range(5)]
    proc.kill()
    proc.wait(30)
    t0 = time.monotonic()
    assert _calls(engine, "down", 30) == [i * 3 for i in range(30)]
    assert time.monotonic() - t0 < 15, "calls do not each wait for the dead server"
    assert not store.reachable
    assert _warnings(caplog) == 1
    assert port is not None
    restarted = start_redis_on(tmp_path, port)
    assert restarted is not None, f"port {port} was taken while the server was down"
    proc, url = restarted
    try:
        _wait_reachable(engine, store, "back")
        assert _calls(engine, "after", 5) == [i * 3 for i in range(5)]
        client = redis.Redis.from_url(url)
        key = RequestId("outage", "after", 4).disk_key
        assert client.exists(f"kill:v:{key}"), "writes reach the restarted server"
        client.close()
        assert "reachable again" in caplog.text
    finally:
        engine.close()
        store.close()
        proc.kill()
        proc.wait(30)


def test_frozen_server_does_not_block_calls(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    proc, url = start_redis(tmp_path)
    store = RedisStore(url, prefix="frozen:", timeout=1.0, connect_timeout=0.5)
    engine = Engine(store=store, memory_budget=0)
    try:
        assert _calls(engine, "before", 3) == [0, 3, 6]
        os.kill(proc.pid, signal.SIGSTOP)
        t0 = time.monotonic()
        assert _calls(engine, "frozen", 30) == [i * 3 for i in range(30)]
        assert time.monotonic() - t0 < 15, "a frozen server costs a timeout, not a wait per call"
        assert _warnings(caplog) == 1
        os.kill(proc.pid, signal.SIGCONT)
        _wait_reachable(engine, store, "thawed")
        assert _calls(engine, "after", 3) == [0, 3, 6]
    finally:
        os.kill(proc.pid, signal.SIGCONT)
        engine.close()
        store.close()
        proc.kill()
        proc.wait(30)


def test_unreachable_at_import_never_fails_the_import(tmp_path: Path) -> None:
    """RECKON_STORE names a server that is down: importing and calling memoized code works."""
    proc, url = start_redis(tmp_path)
    proc.kill()
    proc.wait(30)
    module = tmp_path / "uses_the_cache.py"
    module.write_text(
        "from reckon import memoize\n"
        "@memoize(store=" + repr(url + "?timeout=1&connect_timeout=0.5") + ", assume_pure=True)\n"
        "def f(x):\n    return x + 1\n"
        "@memoize(assume_pure=True)\n"
        "def g(x):\n    return x + 2\n"
        "print(f(1), g(1))\n"
    )
    env = dict(os.environ, RECKON_STORE=url + "?connect_timeout=0.5")
    out = subprocess.run(
        [sys.executable, str(module)], env=env, capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["2", "3"]


def test_s3_endpoint_going_away(caplog: pytest.LogCaptureFixture) -> None:
    """moto's server killed mid-run: calls compute, one warning; the endpoint unreachable when
    the store opens is not an error either."""
    import s3fs
    from _s3_server import s3_options, start_s3

    from reckon.core.stores import ObjectStore

    proc, endpoint = start_s3()
    try:
        s3fs.S3FileSystem(**s3_options(endpoint)).mkdir("outage")
        store = ObjectStore(
            "s3://outage/c", storage_options=s3_options(endpoint), timeout=1.0, connect_timeout=0.5
        )
        engine = Engine(store=store, memory_budget=0)
        assert _calls(engine, "s3-before", 3) == [0, 3, 6]
        proc.kill()
        proc.wait(30)
        t0 = time.monotonic()
        assert _calls(engine, "s3-down", 20) == [i * 3 for i in range(20)]
        assert time.monotonic() - t0 < 20
        assert not store.reachable
        assert _warnings(caplog) == 1
        engine.close()
        again = ObjectStore(
            "s3://outage/d", storage_options=s3_options(endpoint), timeout=1.0, connect_timeout=0.5
        )
        assert again.get(RequestId("x").disk_key) is None
    finally:
        proc.kill()
        proc.wait(30)
