"""The server against real websocket clients: the message set, errors, limits, auth, pushes."""

from __future__ import annotations

import asyncio
import itertools
import threading
import time
import urllib.error
import urllib.request
from typing import Any

import msgpack
import pytest
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import connect as ws_connect
from websockets.typing import Origin

from reckon.core import CachingLevel, Engine, LocalStore, RequestId
from reckon.errors import (
    ComputationCancelledError,
    ConfigurationError,
    ObserveAuthError,
    ObserveConnectionError,
    ObserveRequestError,
)
from reckon.observe import AsyncClient, Client, EventsPush, ServerHandle, serve, serve_async
from reckon.observe import protocol as p
from reckon.observe.client import resolve_url
from reckon.observe.pages import is_loopback
from reckon.observe.server import HARD_FRAME_LIMIT, ObserveServer, _EventQueue
from reckon.observe.startup import _reset_for_tests, autostart, parse_address


def _raw(handle: ServerHandle, frame: bytes | str, **kw: Any) -> dict[str, Any]:
    """Send one frame on a fresh raw connection and return the decoded reply."""
    with ws_connect(handle.ws_url, **kw) as ws:
        ws.send(frame)
        return p.loads(ws.recv(timeout=10))


def wait_for(predicate: Any, timeout: float = 10.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.01)
    raise AssertionError("condition not met in time")


# ------------------------------------------------------------------------------ message set


def test_hello_reports_version_and_engine(server: ServerHandle) -> None:
    with Client(server.url) as client:
        info = client.server_info
    assert info["protocol"] == p.PROTOCOL_VERSION
    assert info["engine"] == "observe-test"
    assert info["codec"] == "msgpack"
    assert info["token_required"] is False


def test_status_counts_outcomes_per_tier(server: ServerHandle, engine: Engine) -> None:
    rid = RequestId("status", 1)
    engine.get(rid, CachingLevel.MEMORY, lambda: 1, title="one")
    engine.get(rid, CachingLevel.MEMORY, lambda: 1, title="one")  # a memory hit
    with pytest.raises(ValueError):
        engine.get(RequestId("status", 2), CachingLevel.MEMORY, _fail, title="bad")
    with Client(server.url) as client:
        status = client.status()
    counters = status["engine"]["counters"]
    assert counters["computed"] == 1
    assert counters["memory_hit"] == 1
    assert counters["failed"] == 1
    assert counters["requests"] == 3
    assert status["engine"]["memory"]["entries"] == 1
    assert status["capture"] is True


def _fail() -> int:
    raise ValueError("boom")


def test_tasks_filter_by_state_and_title_with_limit(
    server: ServerHandle, engine: Engine, blocked: Any
) -> None:
    for i in range(5):
        engine.get(RequestId("list", i), CachingLevel.MEMORY, lambda: 0, title=f"fit {i}")
    running = blocked("render slow")
    with Client(server.url) as client:
        everything = client.tasks()
        assert [t["title"] for t in everything[:2]] == ["render slow", "fit 4"]  # newest first
        live = client.tasks(state="running")
        assert [t["task_id"] for t in live] == [
            t["task_id"] for t in everything if t["title"] == "render slow"
        ]
        assert len(client.tasks(title="fit")) == 5
        assert len(client.tasks(title="fit", limit=2)) == 2
        assert client.tasks(state="failed") == []
    running.release()


def test_task_tree_holds_children(server: ServerHandle, engine: Engine) -> None:
    def leaf(n: int) -> int:
        return engine.get(RequestId("leaf", n), CachingLevel.MEMORY, lambda: n, title=f"leaf {n}")

    def middle() -> int:
        return leaf(1) + leaf(2)

    def root() -> int:
        return middle() + engine.get(
            RequestId("mid", 2), CachingLevel.MEMORY, lambda: 3, title="m2"
        )

    engine.get(
        RequestId("root"),
        CachingLevel.MEMORY,
        lambda: engine.get(RequestId("mid", 1), CachingLevel.MEMORY, root, title="mid"),
        title="root",
    )
    with Client(server.url) as client:
        root_id = client.tasks(title="root")[0]["task_id"]
        tree = client.task(root_id)
        with pytest.raises(ObserveRequestError) as info:
            client.task(10**12)
    assert info.value.code == "not_found"
    assert tree["task"]["title"] == "root"
    (mid,) = tree["children"]
    assert mid["task"]["title"] == "mid"
    assert sorted(c["task"]["title"] for c in mid["children"]) == ["leaf 1", "leaf 2", "m2"]


def test_subscription_pushes_task_events(server: ServerHandle, engine: Engine) -> None:
    with Client(server.url) as client, client.subscribe(title="pushed") as sub:
        engine.get(RequestId("push", 1), CachingLevel.MEMORY, lambda: 1, title="pushed 1")
        engine.get(RequestId("push", 2), CachingLevel.MEMORY, lambda: 2, title="other")
        states = []
        for event in sub.events(timeout=10):
            assert event["task"]["title"] == "pushed 1"
            states.append(event["task"]["state"])
            if event["task"]["state"] == "done":
                break
    assert states == ["pending", "running", "done"]


def test_subscription_pushes_status_periodically(server: ServerHandle) -> None:
    with Client(server.url) as client, client.subscribe(events=False, status_interval=0.1) as sub:
        first = sub.get(timeout=10)
        second = sub.get(timeout=10)
    assert first is not None and second is not None
    assert first.status["time"] < second.status["time"]  # type: ignore[union-attr]


def test_capture_can_be_turned_off_and_on(server: ServerHandle, engine: Engine) -> None:
    with Client(server.url) as client:
        assert client.capture() is True
        assert client.capture(False) is False
        assert engine.introspector.capture is False
        engine.get(RequestId("cap", 1), CachingLevel.MEMORY, lambda: 1, title="unseen")
        assert client.tasks(title="unseen") == []
        assert client.status()["engine"]["counters"]["computed"] == 1  # counters still count
        assert client.capture(True) is True
        engine.get(RequestId("cap", 2), CachingLevel.MEMORY, lambda: 1, title="seen")
        assert len(client.tasks(title="seen")) == 1


def test_clear_history(server: ServerHandle, engine: Engine) -> None:
    engine.get(RequestId("hist"), CachingLevel.MEMORY, lambda: 1, title="old")
    with Client(server.url) as client:
        assert client.tasks(title="old")
        client.clear_history()
        assert client.tasks(title="old") == []


def test_status_counts_store_hits_and_store_use(tmp_path: Any) -> None:
    with Engine(store=LocalStore(tmp_path, sync=True), name="tiers") as eng:
        rid = RequestId("tier", 1)
        eng.get(rid, CachingLevel.FULL, lambda: b"s" * 2000, title="stored")
        eng.flush()
        eng.clear(CachingLevel.MEMORY)
        eng.get(rid, CachingLevel.FULL, lambda: b"never", title="stored")  # from the store
        eng.get(rid, CachingLevel.FULL, lambda: b"never", title="stored")  # from memory again
        with serve(eng) as handle, Client(handle.url) as client:
            status = client.status()
            (from_store,) = client.tasks(title="stored", limit=1)
    counters = status["engine"]["counters"]
    assert (counters["computed"], counters["store_hit"], counters["memory_hit"]) == (1, 1, 1)
    assert counters["requests"] == 3
    store, memory = status["engine"]["store"], status["engine"]["memory"]
    assert store["entries"] == 1 and store["bytes"] >= 2000
    assert memory["entries"] == 1 and memory["bytes"] >= 2000
    assert from_store["outcome"] == "store_hit"


def test_clear_cache_levels(tmp_path: Any) -> None:
    with Engine(store=LocalStore(tmp_path, sync=True), name="full") as eng:
        rid = RequestId("clear", 1)
        eng.get(rid, CachingLevel.FULL, lambda: "v", title="stored")
        eng.flush()
        with serve(eng) as handle, Client(handle.url) as client:
            client.clear_cache("memory")
            assert not eng.contains(rid, CachingLevel.MEMORY)
            assert eng.contains(rid, CachingLevel.FULL)
            assert client.status()["engine"]["store"]["entries"] == 1
            client.clear_cache("full")
            assert not eng.contains(rid, CachingLevel.FULL)
            with pytest.raises(ObserveRequestError) as info:
                client.request("clear_cache", level="disk")
            assert info.value.code == "bad_request"


def test_cancel_a_running_computation(server: ServerHandle, blocked: Any) -> None:
    job = blocked("cancel me")
    with Client(server.url) as client:
        (task,) = client.tasks(state="running", title="cancel me")
        assert client.cancel(task["task_id"]) is True
        assert client.cancel(task["task_id"]) is False  # not running any more
        # A sync computation cannot be interrupted; once it returns its caller gets the error.
        job.release()
        assert isinstance(job.error, ComputationCancelledError)
        assert client.tasks(title="cancel me")[0]["state"] == "cancelled"


# ------------------------------------------------------------------------------ bad peers


def test_unknown_and_malformed_messages_get_errors_and_the_connection_stays(
    server: ServerHandle,
) -> None:
    with ws_connect(server.ws_url) as ws:
        ws.send(msgpack.packb({"v": 1, "id": 5, "type": "reboot"}))
        reply = p.loads(ws.recv(timeout=10))
        assert reply["type"] == "error" and reply["code"] == "unknown_type" and reply["id"] == 5
        ws.send(b"\xc1garbage")
        reply = p.loads(ws.recv(timeout=10))
        assert reply["type"] == "error" and reply["code"] == "malformed"
        ws.send("not json")
        reply = p.loads(ws.recv(timeout=10))
        assert reply["code"] == "malformed"
        ws.send(msgpack.packb({"v": 9, "id": 6, "type": "status"}))
        reply = p.loads(ws.recv(timeout=10))
        assert reply["code"] == "unsupported_version" and reply["id"] == 6
        ws.send(p.encode_request(p.Request(8, "hello", {"versions": [7]})))
        reply = p.loads(ws.recv(timeout=10))
        assert reply["code"] == "unsupported_version" and reply["id"] == 8
        ws.send(p.encode_request(p.Request(7, "ping")))
        reply = p.loads(ws.recv(timeout=10))
        assert reply["type"] == "result" and reply["id"] == 7


def test_oversized_frames_are_rejected_with_an_error(server: ServerHandle) -> None:
    big = msgpack.packb({"v": 1, "id": 3, "type": "ping", "pad": "x" * (p.MAX_REQUEST_BYTES + 1)})
    with ws_connect(server.ws_url, max_size=None) as ws:
        ws.send(big)
        reply = p.loads(ws.recv(timeout=10))
        assert reply["code"] == "too_large"
        ws.send(p.encode_request(p.Request(4, "ping")))
        assert p.loads(ws.recv(timeout=10))["id"] == 4
        # Beyond the hard limit the websocket layer itself closes (1009: message too big).
        ws.send(b"\x00" * (HARD_FRAME_LIMIT + 1))
        with pytest.raises(ConnectionClosed) as info:
            ws.recv(timeout=10)
        assert info.value.rcvd is not None and info.value.rcvd.code == 1009
    with Client(server.url) as client:  # and the server carries on
        assert client.ping() > 0


def test_json_subprotocol_for_the_web_page(server: ServerHandle) -> None:
    with ws_connect(server.ws_url, subprotocols=[p.SUBPROTOCOL_JSON]) as ws:  # type: ignore[list-item]
        assert ws.subprotocol == p.SUBPROTOCOL_JSON
        ws.send('{"v": 1, "id": 1, "type": "hello"}')
        reply = ws.recv(timeout=10)
        assert isinstance(reply, str)
        assert p.loads(reply)["result"]["codec"] == "json"


def test_foreign_browser_origins_are_refused(server: ServerHandle) -> None:
    with pytest.raises(InvalidStatus) as info:
        ws_connect(server.ws_url, origin=Origin("http://evil.example"))
    assert info.value.response.status_code == 403
    own = f"http://127.0.0.1:{server.port}"
    with ws_connect(server.ws_url, origin=Origin(own)) as ws:
        ws.send(p.encode_request(p.Request(1, "ping")))
        assert p.loads(ws.recv(timeout=10))["type"] == "result"


def test_http_serves_the_page_and_404s(server: ServerHandle) -> None:
    with urllib.request.urlopen(server.url, timeout=10) as response:
        assert response.headers["Content-Type"].startswith("text/html")
        assert b"reckon" in response.read()
    with urllib.request.urlopen(server.url + "app.js", timeout=10) as response:
        assert response.headers["Content-Type"].startswith("text/javascript")
    with pytest.raises(urllib.error.HTTPError) as info:
        urllib.request.urlopen(server.url + "nope", timeout=10)
    assert info.value.code == 404
    info.value.close()


# ------------------------------------------------------------------------------ slow subscribers


def test_a_stuck_server_never_blocks_the_engine_and_drops_are_reported(
    server: ServerHandle, engine: Engine
) -> None:
    with Client(server.url) as client, client.subscribe(queue=10) as sub:
        # Freeze the server's event loop: events can only pile up in the bounded queue.
        frozen, release = threading.Event(), threading.Event()

        def freeze() -> None:
            frozen.set()
            release.wait(30)

        server._loop.call_soon_threadsafe(freeze)
        assert frozen.wait(10)
        started = time.monotonic()
        for i in range(100):  # 300 events; computing them must not wait for the server
            engine.get(RequestId("flood", i), CachingLevel.MEMORY, lambda: 0, title="flood")
        elapsed = time.monotonic() - started
        release.set()
        assert elapsed < 10  # generous: the point is it returned while the server was frozen
        pushes: list[EventsPush] = []
        while sum(len(x.events) for x in pushes) < 10:
            push = sub.get(timeout=10)
            assert push is not None
            if isinstance(push, EventsPush):
                pushes.append(push)
        assert sum(len(x.events) for x in pushes) == 10
        assert pushes[-1].dropped == 290
        assert sub.dropped == 290
        server_view = client.status()["server"]
        assert server_view["subscriptions"][str(sub.sub_id)]["dropped"] == 290


def test_coalesced_subscriptions_get_the_latest_state_of_each_task(
    server: ServerHandle, engine: Engine
) -> None:
    with Client(server.url) as client, client.subscribe(coalesce=True) as sub:
        frozen, release = threading.Event(), threading.Event()

        def freeze() -> None:
            frozen.set()
            release.wait(30)

        server._loop.call_soon_threadsafe(freeze)
        assert frozen.wait(10)
        for i in range(5):
            engine.get(RequestId("coalesce", i), CachingLevel.MEMORY, lambda: 0, title=f"c{i}")
        release.set()
        events = list(itertools.islice(sub.events(timeout=10), 5))
    assert [e["task"]["title"] for e in events] == [f"c{i}" for i in range(5)]
    assert {e["task"]["state"] for e in events} == {"done"}


def test_event_queue_drops_and_counts_when_full() -> None:
    async def main() -> None:
        q = _EventQueue(asyncio.get_running_loop(), maxsize=3)
        items: list[Any] = [object() for _ in range(6)]
        for item in items[:5]:
            q.put(item)
        assert q.dropped == 2
        assert await q.get_batch(10) == items[:3]
        q.put(items[5])
        assert await asyncio.wait_for(q.get_batch(10), 5) == items[5:]

    asyncio.run(main())


# ------------------------------------------------------------------------------ tokens


def test_loopback_detection() -> None:
    for host in ("127.0.0.1", "127.0.0.2", "::1", "localhost"):
        assert is_loopback(host)
    for host in ("0.0.0.0", "192.168.1.4", "::", "example.org"):
        assert not is_loopback(host)


def test_a_non_loopback_bind_requires_a_token(engine: Engine, monkeypatch: Any) -> None:
    monkeypatch.delenv("RECKON_OBSERVE_TOKEN", raising=False)
    server = ObserveServer(engine, "0.0.0.0")  # not started: binding it is not allowed here
    assert server.require_token and server.token and len(server.token) >= 24
    monkeypatch.setenv("RECKON_OBSERVE_TOKEN", "from-env")
    assert ObserveServer(engine, "192.168.1.4").token == "from-env"
    assert ObserveServer(engine, "127.0.0.1").require_token is False
    assert ObserveServer(engine, "127.0.0.1", token="given").require_token is True
    with pytest.raises(ConfigurationError):
        ObserveServer(engine, "0.0.0.0", require_token=False)


def test_token_mode(engine: Engine) -> None:
    with serve(engine, require_token=True, token="s3cret") as handle:
        assert handle.url.endswith("?token=s3cret")
        with pytest.raises(ObserveAuthError):
            Client(handle.ws_url, token="")  # no token at all
        with pytest.raises(ObserveAuthError):
            Client(handle.ws_url, token="wrong")
        with pytest.raises(ObserveAuthError):
            Client(handle.ws_url.replace("/ws", "/ws?token=wrong"))
        with Client(handle.ws_url, token="s3cret") as client:
            assert client.server_info["token_required"] is True
        with Client(handle.url) as client:  # the token in the page URL's query
            assert client.ping() > 0
        # A wrong token closes the connection with the policy-violation code.
        with ws_connect(handle.ws_url) as ws:
            ws.send(p.encode_request(p.Request(1, "hello", {"token": "wrong"})))
            assert p.loads(ws.recv(timeout=10))["code"] == "unauthorized"
            with pytest.raises(ConnectionClosed) as info:
                ws.recv(timeout=10)
            assert info.value.rcvd is not None and info.value.rcvd.code == p.CLOSE_POLICY
        # Requests before hello are refused the same way.
        with ws_connect(handle.ws_url) as ws:
            ws.send(p.encode_request(p.Request(1, "status")))
            assert p.loads(ws.recv(timeout=10))["code"] == "unauthorized"
            with pytest.raises(ConnectionClosed):
                ws.recv(timeout=10)


# ------------------------------------------------------------------------------ async side


async def test_async_server_and_client(engine: Engine) -> None:
    server = await serve_async(engine)
    try:
        async with AsyncClient(server.url) as client:
            sub = await client.subscribe()
            await engine.resolve(RequestId("async", 1), CachingLevel.MEMORY, lambda: 5, title="aio")
            seen = []
            async for event in sub.events():
                seen.append(event["task"]["state"])
                if event["task"]["state"] == "done":
                    break
            assert seen == ["pending", "running", "done"]
            assert (await client.tasks(title="aio"))[0]["outcome"] == "computed"
            await sub.close()
            results = await asyncio.gather(*(client.ping() for _ in range(20)))
            assert len(results) == 20
    finally:
        await server.stop()


async def test_client_reports_a_lost_server(engine: Engine) -> None:
    server = await serve_async(engine)
    client = await AsyncClient(server.url).connect()
    await server.stop()
    with pytest.raises(ObserveConnectionError):
        for _ in range(50):  # the close reaches the client's reader soon after
            await client.ping()
            await asyncio.sleep(0.05)
    await client.close()


def test_client_refuses_unreachable_and_bad_addresses() -> None:
    with pytest.raises(ObserveConnectionError):
        Client("127.0.0.1:1", timeout=2)
    with pytest.raises(ConfigurationError):
        resolve_url("http://127.0.0.1/")  # no port
    assert resolve_url(":8765") == ("ws://127.0.0.1:8765/ws", None)
    assert resolve_url("http://127.0.0.1:80/?token=t") == ("ws://127.0.0.1:80/ws", "t")


# ------------------------------------------------------------------------------ autostart


def test_autostart_follows_the_environment(engine: Engine, monkeypatch: Any) -> None:
    monkeypatch.delenv("RECKON_OBSERVE", raising=False)
    assert autostart(engine) is None
    monkeypatch.setenv("RECKON_OBSERVE", "127.0.0.1:0")
    try:
        handle = autostart(engine)
        assert handle is not None and handle.port > 0
        assert autostart(engine) is handle  # once per process
        with Client(handle.url) as client:
            assert client.server_info["engine"] == "observe-test"
    finally:
        _reset_for_tests()
    assert parse_address(":9000") == ("127.0.0.1", 9000)
    assert parse_address("9000") == ("127.0.0.1", 9000)
    with pytest.raises(ConfigurationError):
        parse_address("127.0.0.1:http")


def test_a_sync_subscription_that_is_not_read_drops_locally_and_counts(
    server: ServerHandle, engine: Engine
) -> None:
    with Client(server.url) as client:
        sub = client.subscribe()
        sub._maxsize = 5  # a reader that fell behind: at most 5 events waiting
        for i in range(10):
            engine.get(RequestId("local-drop", i), CachingLevel.MEMORY, lambda: 0, title="ld")
        deadline = time.monotonic() + 10
        while sub.local_dropped + sub._queued < 30 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert sub._queued <= 5
        assert sub.local_dropped + sub._queued == 30
        assert sub.dropped == sub.local_dropped > 0
        sub.close()
        assert sub.get(timeout=0.1) is None


def test_status_history_holds_the_last_minutes(engine: Engine) -> None:
    """The server samples counters and usage once a second, from the start, for the page."""
    with serve(engine) as handle, Client(handle.url) as client:
        for i in range(4):
            engine.get(RequestId("history", i % 2), CachingLevel.MEMORY, lambda: 1)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            history = client.status(history=True)["history"]
            if len(history) >= 2 and history[-1]["engine"]["counters"]["requests"] >= 4:
                break
            time.sleep(0.2)
        assert len(history) >= 2
        times = [s["time"] for s in history]
        assert times == sorted(times)
        assert history[-1]["engine"]["counters"]["memory_hit"] >= 2
        assert "history" not in client.status()  # only when asked for
