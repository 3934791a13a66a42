"""Leases on every shared store: one computation per key across processes, a dead holder
replaced within seconds, waiters released when the value appears.

Kinds: a local directory (LocalStore, OS file locks), Redis (SET NX with an expiry), S3 through
moto (ObjectStore: a lease object created with If-None-Match: *) and ObjectStore on a local
directory (O_EXCL).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from reckon.core import CachingLevel, Engine, RequestId, open_store

KINDS = ["local", "redis", "s3", "objfile"]


def _open(kind: str, url: str) -> Any:
    if kind == "objfile":
        from reckon.core.stores import ObjectStore

        return ObjectStore(url)
    return open_store(url)


_HOLDER = """
import sys, time
sys.path.insert(0, {here!r})
from test_leases import _open
store = _open({kind!r}, {url!r})
with store.lease({key!r}) as mine:
    print("held" if mine else "not mine", flush=True)
    time.sleep(600)
"""


@pytest.mark.parametrize("kind", KINDS)
def test_dead_holder_is_replaced_within_seconds(
    kind: str, tmp_path: Path, store_url: Callable[..., str]
) -> None:
    url = store_url(kind, "lease")
    key = RequestId("lease", kind).disk_key
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            _HOLDER.format(here=str(Path(__file__).parent), kind=kind, url=url, key=key),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None
        assert holder.stdout.readline().strip() == "held"
        store = _open(kind, url)
        granted: list[float] = []
        result: list[bool] = []

        def wait() -> None:
            with store.lease(key) as mine:
                granted.append(time.monotonic())
                result.append(mine)

        waiter = threading.Thread(target=wait)
        waiter.start()
        time.sleep(0.5)
        assert not granted, "the lease is held"
        killed = time.monotonic()
        os.kill(holder.pid, signal.SIGKILL)
        holder.wait(30)
        waiter.join(60)
        assert result == [True]
        takeover = granted[0] - killed
        assert takeover < 10.0, f"takeover took {takeover:.1f}s (default lease: 4s)"
        store.close()
    finally:
        holder.kill()
        holder.wait(30)


@pytest.mark.parametrize("kind", KINDS)
def test_a_waiter_stops_when_the_value_appears(
    kind: str, tmp_path: Path, store_url: Callable[..., str]
) -> None:
    url = store_url(kind, "lease")
    store = _open(kind, url)
    key = RequestId("appears", kind).disk_key
    seen: list[bool] = []
    with store.lease(key) as mine:
        assert mine is True
        t = threading.Thread(target=lambda: seen.append(store.lease(key).__enter__()))
        t.start()
        time.sleep(0.3)
        assert not seen
        store.put(key, b"the value")
        store.flush()
    t.join(30)
    assert seen == [False], "the waiter read the value instead of computing"
    store.close()


_COMPUTE = """
import sys, time
sys.path.insert(0, {here!r})
from test_leases import _open
from reckon.core import CachingLevel, Engine, RequestId
store = _open({kind!r}, {url!r})
engine = Engine(store=store)
def body(i):
    with open({log!r}, "a") as f:
        f.write(f"{{i}}\\n")
    time.sleep(0.3)
    return i * i
for i in range(4):
    assert engine.get(RequestId("once", i), CachingLevel.FULL, lambda i=i: body(i)) == i * i
engine.close()
store.close()
"""


@pytest.mark.parametrize("kind", KINDS)
def test_copies_at_once_compute_each_key_once(
    kind: str, tmp_path: Path, store_url: Callable[..., str]
) -> None:
    url = store_url(kind, "lease")
    _open(kind, url)  # creates what the store needs (bucket prefix, directory)
    log = tmp_path / "runs"
    script = _COMPUTE.format(here=str(Path(__file__).parent), kind=kind, url=url, log=str(log))
    procs = [subprocess.Popen([sys.executable, "-c", script]) for _ in range(4)]
    for p in procs:
        assert p.wait(120) == 0
    assert sorted(log.read_text().split()) == ["0", "1", "2", "3"]
    engine = Engine(store=_open(kind, url))
    assert engine.get(RequestId("once", 2), CachingLevel.FULL, lambda: -1) == 4
    engine.close()
