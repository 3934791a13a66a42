"""Copies of one key on one machine coordinate locally first: only one process talks to the far
store's lease; the others wait on a file lock and then read the value once.

Counted on a real redis-server (INFO commandstats: scripts run, BLPOPs), with real processes that
start each key at once (a start file they wait for); kill -9 of the local holder; a frozen local
holder (SIGSTOP) whose far lease lapsed is taken over, not waited for.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import redis
from _holders import kill, open_kind, run_copies, start_holder, takeover

from reckon.core import RequestId, open_store

COPIES = 4
KEYS = 2

_COPY = """
import os, sys, time
from reckon.core import CachingLevel, Engine, RequestId, open_store
store = open_store({url!r})
engine = Engine(store=store, memory_budget=0)
def body(i):
    with open({log!r}, "a") as f:
        f.write(f"{{i}}\\n")
    time.sleep(0.5)
    return i * i
print("ready", flush=True)
while not os.path.exists({go!r}):
    time.sleep(0.002)
for i in range({keys}):
    assert engine.get(RequestId("machine", i), CachingLevel.FULL, lambda i=i: body(i)) == i * i
engine.close()
store.close()
"""


def _commands(client: redis.Redis) -> dict[str, int]:
    stats: dict[str, Any] = client.info("commandstats")
    return {name.removeprefix("cmdstat_"): int(v["calls"]) for name, v in stats.items()}


class _Monitor:
    """The commands clients send to a redis-server while it runs (MONITOR), each as its name,
    those that scripts run inside the server left out (INFO commandstats counts them too)."""

    def __init__(self, url: str) -> None:
        self._url = url
        self._client = redis.Redis.from_url(url)
        self._monitor = self._client.monitor().__enter__()
        self.sent: list[str] = []
        self._thread = threading.Thread(target=self._listen, daemon=True)
        self._thread.start()

    def _listen(self) -> None:
        while True:
            seen = self._monitor.next_command()
            command = seen["command"].split(" ", 1)
            if command == ["ECHO", "monitor-ends"]:
                return
            if seen.get("client_type") != "lua":
                self.sent.append(command[0].upper())

    def stop(self) -> list[str]:
        with redis.Redis.from_url(self._url) as client:
            client.echo("monitor-ends")
        self._thread.join(30)
        self._monitor.__exit__()
        self._client.close()
        return self.sent


def _warm(url: str) -> None:
    """Load the store's scripts into the server (so the counted run has no NOSCRIPT retries)."""
    store = open_store(url)
    key = RequestId("warm", url).disk_key
    with store.lease(key) as mine:
        assert mine
        store.put(key, b"warm")
    store.flush()
    store.close()


@pytest.mark.parametrize("near", ["off", "auto"])
def test_copies_on_one_machine_make_one_far_lease(
    near: str, tmp_path: Path, store_url: Callable[..., str], redis_url: str
) -> None:
    # (a long lease: its renewals, every quarter of it, would be scripts too)
    url = store_url("redis", "machine", near=near, lease_ttl=60)
    _warm(url)
    log, go = tmp_path / "runs", tmp_path / "go"
    script = _COPY.format(url=url, log=str(log), go=str(go), keys=KEYS)
    client = redis.Redis.from_url(redis_url)
    monitor: list[_Monitor] = []
    try:
        run_copies(
            script,
            COPIES,
            go,
            before_go=lambda: (client.config_resetstat(), monitor.append(_Monitor(redis_url))),
        )
        calls = _commands(client)
        sent = monitor[0].stop()
    finally:
        client.close()
    assert sorted(log.read_text().split()) == [str(i) for i in range(KEYS)], "1 body run per key"
    # Nobody waited on the far store: the copies that waited did so on this machine's file lock.
    assert calls.get("blpop", 0) == 0, calls
    # Each copy read the far store at most once before its lease (a GET: the cheaper way to
    # find a value that is there), and never while it waited; after waiting here, each other
    # copy looks once more (a GET, which finds the value) or, with the near tier, not at all
    # (the value is in the near tier when the holder leaves).
    looks = COPIES - 1 if near == "off" else 0
    assert sent.count("GET") <= KEYS * (COPIES + looks), sent
    # Per key, the far lease is taken once (a script), and the holder leaves it with its value
    # (one script): no other copy runs the take script, which costs the server more than a GET.
    assert calls.get("evalsha", 0) <= KEYS * 2, calls


@pytest.mark.parametrize("kind", ["redis", "s3", "objfile"])
@pytest.mark.parametrize("how", ["kill", "freeze"])
def test_the_local_holder_killed_or_frozen_is_replaced_within_seconds(
    kind: str, how: str, store_url: Callable[..., str]
) -> None:
    """A waiter on this machine waits on the holder's file lock: kill -9 frees it at once (and
    the far lease lapses within ``lease_ttl``); a frozen holder keeps its file lock, but its far
    lease lapses, which the waiter notices. Either way it takes over within seconds (lease_ttl
    here: 1 s)."""
    url = store_url(kind, "machine", lease_ttl=1, near="off")
    options: dict[str, Any] = {}
    if kind == "objfile":
        url, options = url.split("?")[0], {"lease_ttl": 1.0}
    store = open_kind(kind, url, **options)
    key = RequestId("machine-holder", kind, how).disk_key
    holder = start_holder(kind, url, key, options)
    try:
        stop = signal.SIGKILL if how == "kill" else signal.SIGSTOP
        result, took = takeover(store, key, lambda: os.kill(holder.pid, stop))
        assert result == [True]
        assert took < 5.0, f"takeover took {took:.1f}s (lease_ttl 1 s)"
    finally:
        kill(holder)
        store.close()


def test_a_waiter_here_reads_the_value_of_the_holder_here(
    store_url: Callable[..., str], tmp_path: Path
) -> None:
    """A waiter woken by the holder on this machine finds the value (yields False) and the get
    that follows returns it, authenticated (a value with a bad signature is a miss there)."""
    url = store_url("s3", "machine", near="off")
    store = open_store(url)
    key = RequestId("machine-read", 1).disk_key
    seen: list[object] = []
    held = threading.Event()
    leave = threading.Event()
    holder = start_holder(
        "s3", url, key, then=f"    sys.stdin.readline()\n    store.put({key!r}, b'v')"
    )
    try:
        assert holder.stdin is not None

        def wait() -> None:
            held.set()
            with store.lease(key) as mine:
                seen.append(mine)
                seen.append(store.get(key))
            leave.set()

        waiter = threading.Thread(target=wait)
        waiter.start()
        held.wait(10)
        time.sleep(0.3)
        assert not seen
        holder.stdin.write("go\n")
        holder.stdin.flush()
        assert holder.wait(60) == 0
        waiter.join(60)
        assert seen[0] is False
        assert seen[1] is not None and bytes(seen[1]) == b"v"  # type: ignore[arg-type]
    finally:
        holder.kill()
        holder.wait(30)
        store.close()


def test_machine_leases_live_under_the_local_cache_directory(
    store_url: Callable[..., str],
) -> None:
    url = store_url("redis", "machine", near="off")
    store = open_store(url)
    key = RequestId("machine-dir", 1).disk_key
    with store.lease(key) as mine:
        assert mine
        locks = list(Path(os.environ["RECKON_CACHE_DIR"], "far-leases").rglob("*.lock"))
        assert locks, "the machine lease locks a file under the local cache directory"
    store.close()


def test_a_key_held_on_this_machine_holds_up_that_key_alone(
    store_url: Callable[..., str], redis_url: str
) -> None:
    """Another process holds key A: a lease on key B here is granted at once (its far lease is
    taken: the server has it), and one on A is not (its timeout passes on the machine lease, and
    it yields "compute" without taking A's far lease, which the holder has)."""
    url = store_url("redis", "machine", near="off", prefix="bytes:")
    store = open_store(url)
    a, b = RequestId("machine-byte", "a").disk_key, RequestId("machine-byte", "b").disk_key
    holder = start_holder("redis", url, a)
    client = redis.Redis.from_url(redis_url)
    try:
        with store.lease(b, timeout=30) as mine:
            assert mine
            assert client.exists(f"bytes:lease:{b}"), "B's far lease is ours"
        took: list[float] = []
        t0 = time.monotonic()
        with store.lease(a, timeout=0.5) as mine:
            took.append(time.monotonic() - t0)
            assert mine  # (not granted: compute without it)
        assert took[0] >= 0.5, "A's lease waited for its holder here"
    finally:
        client.close()
        kill(holder)
        store.close()


def test_s3_copies_on_one_machine_touch_the_lease_object_once(
    tmp_path: Path, store_url: Callable[..., str], s3_endpoint: str
) -> None:
    """On S3 only the copy that computes touches the lease object (its conditional create, and
    its removal, in a batch: one request for the releases of a moment); each other copy makes
    one request: the lease's look, once the holder here is done (handed to the get that
    follows). No copy looks before the lease."""
    from _s3_server import requests_seen

    url = store_url("s3", "machine", near="off", lease_ttl=8)
    open_store(url)  # the bucket prefix
    log, go = tmp_path / "runs", tmp_path / "go"
    script = _COPY.format(url=url, log=str(log), go=str(go), keys=KEYS)
    run_copies(script, COPIES, go)
    assert sorted(log.read_text().split()) == [str(i) for i in range(KEYS)], "1 body run per key"
    seen = requests_seen(s3_endpoint)
    for i in range(KEYS):
        key = RequestId("machine", i).disk_key
        mine = [r for r in seen if key in r]
        leases = [r for r in mine if ".lease" in r]
        assert [r.split()[0] for r in leases] == ["PUT"], leases
        # the holder: look, lease, look, value; each other copy one look
        assert len(mine) <= 4 + (COPIES - 1), mine
    bucket = url.split("/")[2]
    removals = [r for r in seen if r.startswith(f"POST /{bucket}?delete")]
    assert 1 <= len(removals) <= KEYS, removals  # (each copy's process closed its store)
    assert not [r for r in seen if r.startswith(f"DELETE /{bucket}") and ".lease" in r], seen


def test_redis_while_looks_miss_the_lease_is_the_only_look(
    store_url: Callable[..., str], redis_url: str
) -> None:
    """Through the engine, a computation on Redis reads first (a GET, the cheaper way to find a
    value that is there), takes the lease and leaves it with its value (two scripts); once most
    recent looks missed, it leaves the look to the lease's script (two round trips, not three).
    A value there after all is still a hit, found by that script, and as hits come back, so do
    the plain reads (one GET a hit). The commands are those the rule in ``redis`` predicts."""
    from reckon.core import CachingLevel, Engine
    from reckon.core.stores import redis as redis_store

    url = store_url("redis", "skip", near="off", lease_ttl=60)
    _warm(url)
    store = open_store(url)
    engine = Engine(store=store, memory_budget=0)
    monitor = _Monitor(redis_url)
    computed, hits = 12, 12
    try:
        for i in range(computed):
            assert engine.get(RequestId("skip", i), CachingLevel.FULL, lambda i=i: i) == i
        for i in range(hits):
            assert engine.get(RequestId("skip", i), CachingLevel.FULL, lambda: -1) == i
    finally:
        sent = [c for c in monitor.stop() if c in ("GET", "EVALSHA")]
        engine.close()
        store.close()
    expected: list[str] = []
    misses = 0.0
    for missed in [True] * computed + [False] * hits:
        skip = misses > redis_store._SKIP_ABOVE
        if missed:  # (a GET that misses, unless skipped; the take; the put with the release)
            expected += ["EVALSHA", "EVALSHA"] if skip else ["GET", "EVALSHA", "EVALSHA"]
        else:  # a hit: the take script finds it, or one GET
            expected += ["EVALSHA"] if skip else ["GET"]
        misses += (float(missed) - misses) * redis_store._LOOK_WEIGHT
    assert expected.count("GET") < computed + hits - 4  # (some looks were left to the lease)
    assert expected[-1] == "GET"  # (and the reads came back)
    assert sent == expected, sent
