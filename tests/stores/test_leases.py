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

import pytest
from _holders import kill, open_kind, start_holder, takeover

from reckon.core import CachingLevel, Engine, RequestId

KINDS = ["local", "redis", "s3", "objfile"]


@pytest.mark.parametrize("kind", KINDS)
def test_dead_holder_is_replaced_within_seconds(
    kind: str, tmp_path: Path, store_url: Callable[..., str]
) -> None:
    url = store_url(kind, "lease")
    key = RequestId("lease", kind).disk_key
    holder = start_holder(kind, url, key)
    try:
        store = open_kind(kind, url)

        def stop() -> None:
            os.kill(holder.pid, signal.SIGKILL)
            holder.wait(30)

        result, took = takeover(store, key, stop)
        assert result == [True]
        assert took < 10.0, f"takeover took {took:.1f}s (default lease: 4s)"
        store.close()
    finally:
        kill(holder)


@pytest.mark.parametrize("kind", KINDS)
def test_a_waiter_stops_when_the_value_appears(
    kind: str, tmp_path: Path, store_url: Callable[..., str]
) -> None:
    url = store_url(kind, "lease")
    store = open_kind(kind, url)
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
from _holders import open_kind
from reckon.core import CachingLevel, Engine, RequestId
store = open_kind({kind!r}, {url!r})
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
    open_kind(kind, url)  # creates what the store needs (bucket prefix, directory)
    log = tmp_path / "runs"
    script = _COMPUTE.format(here=str(Path(__file__).parent), kind=kind, url=url, log=str(log))
    procs = [subprocess.Popen([sys.executable, "-c", script]) for _ in range(4)]
    for p in procs:
        assert p.wait(120) == 0
    assert sorted(log.read_text().split()) == ["0", "1", "2", "3"]
    engine = Engine(store=open_kind(kind, url))
    assert engine.get(RequestId("once", 2), CachingLevel.FULL, lambda: -1) == 4
    engine.close()


def test_s3_lease_releases_go_in_batches(s3_endpoint: str, s3_bucket: str) -> None:
    """Leaving a lease removes its object in the background, the releases of a moment in one
    request (DeleteObjects), counted on the server: 10 leases, 10 creates, a few removals, no
    lease object left after ``flush``."""
    import s3fs
    from _s3_server import requests_seen, s3_options

    from reckon.core.stores.objectstore import ObjectStore

    store = ObjectStore(f"s3://{s3_bucket}/batch", storage_options=s3_options(s3_endpoint))
    keys = [RequestId("batch", i).disk_key for i in range(10)]
    before = len(requests_seen(s3_endpoint))
    for key in keys:
        with store.shared_lease(key) as mine:
            assert mine
            store.put(key, b"v")
    assert store.flush() == []
    seen = requests_seen(s3_endpoint)[before:]
    creates = [r for r in seen if r.startswith("PUT") and ".lease" in r]
    removals = [r for r in seen if r.startswith(f"POST /{s3_bucket}?delete")]
    assert len(creates) == len(keys), seen
    assert not [r for r in seen if r.startswith("DELETE")], seen
    assert 1 <= len(removals) <= 5, removals  # (10 one by one before)
    fs = s3fs.S3FileSystem(**s3_options(s3_endpoint))  # type: ignore[arg-type]
    assert not fs.exists(f"{s3_bucket}/batch/leases") or fs.ls(f"{s3_bucket}/batch/leases") == []
    store.close()


def test_s3_a_lease_taken_right_after_its_look_looks_once(s3_endpoint: str, s3_bucket: str) -> None:
    """A lease taken soon after its look for the value (well within ``lease_ttl/16``) reads the
    value's object once, not again after the create; in exchange, the lease object of a value
    stays at least ``lease_ttl/16`` after the value was written, even when ``flush`` hurries
    the removals, so a look that missed the value cannot be followed by a successful create."""
    import s3fs
    from _s3_server import requests_seen, s3_options

    from reckon.core.stores.objectstore import ObjectStore

    ttl = 32.0  # a lease taken within 2 s of its look
    store = ObjectStore(
        f"s3://{s3_bucket}/once", storage_options=s3_options(s3_endpoint), lease_ttl=ttl
    )
    fs = s3fs.S3FileSystem(**s3_options(s3_endpoint))  # type: ignore[arg-type]
    key = RequestId("once", 1).disk_key
    before = len(requests_seen(s3_endpoint))
    with store.shared_lease(key) as mine:
        assert mine
        store.put(key, b"v")
        written = time.monotonic()
    seen = requests_seen(s3_endpoint)[before:]
    looks = [r for r in seen if r.startswith("GET") and key in r and "." not in r.split(key)[1]]
    assert len(looks) == 1, seen
    assert fs.exists(f"{s3_bucket}/once/leases/{key}.lease")
    assert store.flush() == []
    assert time.monotonic() - written >= ttl / 16
    assert not fs.exists(f"{s3_bucket}/once/leases/{key}.lease")
    other = ObjectStore(f"s3://{s3_bucket}/once", storage_options=s3_options(s3_endpoint))
    with other.shared_lease(key) as mine:
        assert mine is False  # the value is there: no lease, no compute
    assert other.get(key) == b"v"
    store.close()
    other.close()


def test_s3_waiter_elsewhere_stops_when_the_value_appears(s3_endpoint: str, s3_bucket: str) -> None:
    """A waiter on another machine (its own store, the far lease alone) looks for the value
    before the lease object: it stops the moment the holder's value is there, while the holder
    still holds its lease (whose removal comes later, in the background)."""
    from _s3_server import s3_options

    from reckon.core.stores.objectstore import ObjectStore

    url = f"s3://{s3_bucket}/elsewhere"
    holder = ObjectStore(url, storage_options=s3_options(s3_endpoint))
    waiter = ObjectStore(url, storage_options=s3_options(s3_endpoint))
    key = RequestId("elsewhere", 1).disk_key
    done: list[tuple[bool, float]] = []
    with holder.shared_lease(key) as mine:
        assert mine

        def wait() -> None:
            with waiter.shared_lease(key) as got:
                done.append((got, time.monotonic()))

        thread = threading.Thread(target=wait)
        thread.start()
        time.sleep(0.5)
        assert not done, "the waiter waits while the value is absent"
        put_at = time.monotonic()
        holder.put(key, b"value")
        thread.join(10)  # (the holder stays in its lease meanwhile)
        assert done, "the waiter stopped while the holder still held its lease"
    got, at = done[0]
    assert got is False
    assert at - put_at < 3.0
    assert waiter.get(key) == b"value"
    holder.close()
    waiter.close()
