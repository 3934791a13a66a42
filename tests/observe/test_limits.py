"""What clients can make the introspection server hold is bounded: connections, subscriptions,
and the bytes of their event queues, per connection and in all, whatever the clients ask."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from typing import Any

import pytest
from websockets.exceptions import InvalidStatus
from websockets.sync.client import ClientConnection
from websockets.sync.client import connect as ws_connect

from reckon.core import CachingLevel, Engine, RequestId
from reckon.errors import ConfigurationError, ObserveError
from reckon.observe import Client, Limits, ServerHandle, serve
from reckon.observe import protocol as p
from reckon.observe.server import EVENT_BYTES

SMALL = Limits(
    connections=2,
    subscriptions_per_connection=2,
    subscriptions=3,
    queued_bytes_per_connection=10 * EVENT_BYTES,
    queued_bytes=15 * EVENT_BYTES,
)


@pytest.fixture
def small_server() -> Iterator[ServerHandle]:
    engine = Engine(name="limits")
    with serve(engine, limits=SMALL) as handle:
        yield handle
    engine.close()


def ask(ws: ClientConnection, rid: int, kind: str, **body: Any) -> dict[str, Any]:
    ws.send(p.encode_request(p.Request(rid, kind, body)))
    while True:
        reply = p.loads(ws.recv(timeout=60))
        if reply.get("id") == rid:
            return reply


def test_queues_are_granted_out_of_the_byte_budgets(small_server: ServerHandle) -> None:
    with ws_connect(small_server.ws_url) as a, ws_connect(small_server.ws_url) as b:
        # Asking for a million events gets what the connection's budget holds: 10.
        assert ask(a, 1, "subscribe", queue=1_000_000)["result"]["queue"] == 10
        refused = ask(a, 2, "subscribe", queue=5)
        assert refused["code"] == "limit" and "queued-bytes limit" in refused["message"]
        # A subscription without events costs no queue.
        assert ask(a, 3, "subscribe", events=False)["result"]["queue"] == 0
        refused = ask(a, 4, "subscribe", events=False)
        assert refused["code"] == "limit" and "per connection" in refused["message"]
        # The server's budget (15 events) leaves the second connection 5.
        assert ask(b, 5, "subscribe", queue=1_000_000)["result"]["queue"] == 5
        refused = ask(b, 6, "subscribe", events=False)
        assert (
            refused["code"] == "limit" and "the server holds 3 subscriptions" in refused["message"]
        )
        # A third connection is refused at the handshake.
        with pytest.raises(InvalidStatus) as info:
            ws_connect(small_server.ws_url).close()
        assert info.value.response.status_code == 503
        assert b"too many connections (limit 2)" in info.value.response.body
        status = ask(b, 7, "status")["result"]["server"]
        assert status["queued_bytes_reserved"] == 15 * EVENT_BYTES
        assert status["limits"]["queued_bytes"] == 15 * EVENT_BYTES
        # Ending a subscription gives its share back.
        assert ask(a, 8, "unsubscribe", sub=1)["result"]["sub"] == 1
        # b holds 5 of its own 10: it gets the other 5, now that the server has room.
        assert ask(b, 9, "subscribe", queue=1_000_000)["result"]["queue"] == 5
    # Closing connections returns everything (once the server has seen them close: until
    # then a new connection may still be one too many).
    deadline = time.monotonic() + 30
    reserved = None
    while time.monotonic() < deadline:
        try:
            with Client(small_server.url) as client:
                reserved = client.status()["server"]["queued_bytes_reserved"]
        except ObserveError:
            reserved = None
        if reserved == 0:
            break
        time.sleep(0.1)
    assert reserved == 0


def test_limits_must_be_positive() -> None:
    with pytest.raises(ConfigurationError, match=r"Limits\.connections=0"):
        Limits(connections=0)


def test_an_event_costs_no_more_than_counted() -> None:
    """EVENT_BYTES is what the budgets count per queued event: measure what one holds."""
    import gc
    import tracemalloc

    engine = Engine(name="measure")
    events: list[Any] = []
    engine.introspector.add_listener(events.append)
    for i in range(100):  # warm up
        engine.get(RequestId("warm", i), CachingLevel.NONE, lambda: 1, title=f"mod.f({i})")
    events.clear()
    gc.collect()
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    for i in range(5000):
        engine.get(RequestId("x", i), CachingLevel.NONE, lambda: 1, title=f"mod.f({i}, 'north')")
    after = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    per_event = (after - before) / len(events)
    engine.close()
    assert per_event < EVENT_BYTES, per_event


CHILD = textwrap.dedent(
    """
    import sys, threading
    from reckon.core import CachingLevel, Engine, RequestId
    from reckon.observe import serve

    engine = Engine(name="flood")
    handle = serve(engine)
    print(handle.ws_url, flush=True)
    stop = threading.Event()

    def work():
        i = 0
        while not stop.is_set():
            i += 1
            engine.get(RequestId("flood", i), CachingLevel.NONE, lambda: i, title=f"job.f({i})")

    sys.stdin.readline()  # the clients are connected and subscribed: flood
    threads = [threading.Thread(target=work) for _ in range(2)]
    for t in threads:
        t.start()
    sys.stdin.readline()
    stop.set()
    """
)


def _rss(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


@pytest.mark.slow
def test_greedy_clients_cannot_grow_the_server_past_100_mb() -> None:
    """Every connection the defaults allow, each with every subscription it may hold, asking
    for a million-event queue and never reading, while the engine computes flat out."""
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env={k: v for k, v in os.environ.items() if k != "RECKON_OBSERVE"},
    )
    sockets = contextlib.ExitStack()
    try:
        assert child.stdout is not None
        url = child.stdout.readline().strip()
        time.sleep(1.0)
        baseline = _rss(child.pid)
        limits = Limits()
        granted = 0
        for c in range(limits.connections):
            ws = sockets.enter_context(ws_connect(url, max_size=None, open_timeout=60))
            for s in range(limits.subscriptions_per_connection):
                reply = ask(ws, 100 * c + s + 1, "subscribe", queue=1_000_000)
                granted += reply.get("result", {}).get("queue", 0)
        with pytest.raises(InvalidStatus):
            ws_connect(url, open_timeout=60).close()
        assert granted * EVENT_BYTES <= limits.queued_bytes
        assert child.stdin is not None
        child.stdin.write("\n")
        child.stdin.flush()
        peak = 0
        for _ in range(12):  # six seconds of flooding, nobody reading
            time.sleep(0.5)
            peak = max(peak, _rss(child.pid) - baseline)
        print(f"server grew by {peak / 2**20:.0f} MiB, {granted} events granted")
        assert peak < 100 * 1024 * 1024, f"server grew by {peak / 2**20:.0f} MiB"
    finally:
        sockets.close()
        assert child.stdin is not None
        with contextlib.suppress(OSError):
            child.stdin.write("\n\n")  # start (if not yet) and stop the flood
            child.stdin.flush()
        try:
            child.wait(30)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait(10)
