"""Big values and bounded memory: the server's memory per client is bounded in bytes (finished
gets hold no reply, a client that does not read cannot make monitor queues grow), messages
past 16 MiB cross both ways with p4p (pvxs), and a message over a side's limit fails its
operation with an error the other side sees, never a dropped connection."""

from __future__ import annotations

import socket
import time
from typing import Any

import numpy as np
import pytest

from reckon.errors import PvaRemoteError
from reckon.pva import Client, SharedPV, nt
from reckon.pva.protocol import (
    NEED_DATA,
    ClientConnection,
    ConnectionValidationResponse,
    CreateChannelRequest,
    MonitorInit,
    MonitorStart,
    pv_request,
)

from .conftest import run_p4p_client, start_p4p_client

MB = 1024 * 1024


def rss() -> int:
    """This process's resident set size in bytes (the server runs in a thread of it)."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS in /proc/self/status")


def test_300_gets_of_a_2mb_value_on_one_connection_keep_memory_flat(
    reckon_server: Any, pva_env: dict[str, str]
) -> None:
    image = SharedPV(nt.NTScalarArray("d"), np.arange(2 * MB // 8, dtype=np.float64))
    reckon_server({"big:image": image})
    child = start_p4p_client(
        """
for _ in range(20):
    ctx.get('big:image')['value']
emit('warm')
wait_line()
total = 0
for _ in range(300):
    total += len(ctx.get('big:image')['value'])
emit(total)
""",
        pva_env,
    )
    try:
        assert child.read_json(timeout=120) == "warm"
        before = rss()
        child.send("go")
        assert child.read_json(timeout=300) == 300 * (2 * MB // 8)
        growth = rss() - before
    finally:
        child.stop()
    # each finished get used to keep its 2 MB reply (600 MB here)
    assert growth < 20 * MB, f"server memory grew by {growth / MB:.0f} MB"


def _stalled_monitor(port: int, name: str, queue_size: int) -> socket.socket:
    """A client that subscribes to ``name`` with a big queueSize and then never reads."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)
    conn = ClientConnection()

    def pump() -> list[Any]:
        got: list[Any] = []
        while True:
            ev = conn.next_event()
            if ev is NEED_DATA:
                if got:
                    return got
                conn.receive_data(sock.recv(65536))
                continue
            got.append(ev)

    pump()  # byte order, validation request
    sock.sendall(conn.send(ConnectionValidationResponse()))
    pump()  # validated
    sock.sendall(conn.send(CreateChannelRequest(1, name)))
    [created] = pump()
    request = pv_request(f"record[queueSize={queue_size}]")
    sock.sendall(conn.send(MonitorInit(created.sid, 9, request)))
    pump()
    sock.sendall(conn.send(MonitorStart(created.sid, 9)))
    return sock  # and never read again


def test_a_client_that_asks_a_big_queue_and_does_not_read_is_bounded_in_bytes(
    reckon_server: Any, pva_env: dict[str, str]
) -> None:
    wave = SharedPV(nt.NTScalarArray("d"), np.zeros(12_800))  # 100 KB values
    st = reckon_server({"big:wave": wave})
    sock = _stalled_monitor(st.server.tcp_port, "big:wave", 100_000)
    try:
        time.sleep(0.2)
        before = rss()
        for i in range(1500):  # 150 MB of values, none read
            st.run(wave.post, np.full(12_800, float(i)))
        queued = st.run(lambda: max(c.queued_bytes for c in st.server.context.sessions))
        growth = rss() - before
    finally:
        sock.close()
    assert queued <= st.server.max_queue_bytes
    # unbounded, the queue would hold all 150 MB
    assert growth < 64 * MB, f"server memory grew by {growth / MB:.0f} MB"


def test_p4p_puts_and_gets_arrays_past_16_mib(reckon_server: Any, pva_env: dict[str, str]) -> None:
    n = 20 * MB // 8 + 1000
    big = SharedPV(nt.NTScalarArray("d"), [0.0])
    reckon_server({"big:a": big})
    out = run_p4p_client(
        f"""
ctx.put('big:a', np.arange({n}, dtype=np.float64), timeout=60)
v = ctx.get('big:a', timeout=60)['value']
emit([len(v), float(v[-1]), float(np.sum(v))])
""",
        pva_env,
        timeout=180,
    )
    assert out == [[n, float(n - 1), float(n * (n - 1) // 2)]]
    assert len(big.value["value"]) == n


def test_a_put_over_the_servers_limit_is_answered_with_an_error(
    reckon_server: Any, pva_env: dict[str, str]
) -> None:
    x = SharedPV(nt.NTScalarArray("d"), [0.0])
    reckon_server({"big:x": x}, max_message_size=1 * MB)
    out = run_p4p_client(
        """
try:
    ctx.put('big:x', np.arange(300_000, dtype=np.float64), timeout=20)
    emit('no error')
except Exception as e:
    emit(str(e))
ctx.put('big:x', [1.0, 2.0], timeout=20)
emit(plain(ctx.get('big:x'))['value'])
""",
        pva_env,
        timeout=120,
    )
    assert "max_message_size" in out[0]
    assert out[1] == [1.0, 2.0]  # the same connection goes on


async def test_reckon_client_gets_past_16_mib_and_fails_once_over_its_limit(
    p4p_server: Any,
) -> None:
    n = 20 * MB // 8 + 1000
    p4p_server(
        [
            {"name": "p:big", "kind": "array", "type": "d", "size": n},
            {"name": "p:x", "type": "d", "initial": 1.5},
        ]
    )
    async with Client() as client:
        value = await client.get("p:big", timeout=60)
        assert len(value["value"]) == n and value["value"][-1] == n - 1
    async with Client(max_message_size=1 * MB) as small:
        t0 = time.monotonic()
        with pytest.raises(PvaRemoteError, match="max_message_size"):
            await small.get("p:big", timeout=30)
        assert time.monotonic() - t0 < 20  # one failure, not a reconnect loop to the timeout
        assert (await small.get("p:x", timeout=10))["value"] == 1.5


def test_a_1024x1024_ntndarray_to_p4p(reckon_server: Any, pva_env: dict[str, str]) -> None:
    image_nt = nt.NTNDArray()
    image = (np.arange(1024 * 1024, dtype=np.uint32) % 65521).astype(np.uint16).reshape(1024, 1024)
    pv = SharedPV(image_nt, image_nt.wrap(image, unique_id=1))
    st = reckon_server({"img:a": pv})
    child = start_p4p_client(
        """
from p4p.client.thread import Context
ctx.close()
ctx = Context('pva')  # with NT unwrapping: images as numpy arrays
v = ctx.get('img:a')
emit([list(v.shape), int(v.astype('int64').sum()), int(v[1, 0])])
got = []
sub = ctx.monitor('img:a', got.append)
time.sleep(0.5)
emit('subscribed')
wait_line()
deadline = time.time() + 30
while len(got) < 2 and time.time() < deadline:
    time.sleep(0.05)
sub.close()
emit([len(got), list(got[-1].shape), int(got[-1][0, 0])])
""",
        pva_env,
    )
    try:
        first = child.read_json(timeout=60)
        assert first == [[1024, 1024], int(image.astype(np.int64).sum()), int(image[1, 0])]
        assert child.read_json(timeout=60) == "subscribed"
        st.run(pv.post, image_nt.wrap(np.full((1024, 1024), 7, dtype=np.uint16), unique_id=2))
        child.send("go")
        count, shape, corner = child.read_json(timeout=60)
    finally:
        child.stop()
    assert count >= 2 and shape == [1024, 1024] and corner == 7


async def test_a_1024x1024_ntndarray_from_p4p(p4p_server: Any) -> None:
    p4p_server([{"name": "p:img", "kind": "ndarray", "shape": [1024, 1024]}])
    expected = (np.arange(1024 * 1024, dtype=np.uint32) % 65536).astype(np.uint16)
    async with Client() as client:
        value = await client.get("p:img", timeout=30)
        image = nt.NTNDArray().unwrap(value)
        assert image.shape == (1024, 1024)
        assert np.array_equal(image.reshape(-1), expected)
        async with client.monitor("p:img") as sub:
            update = await sub.next(timeout=30)
        assert nt.NTNDArray().unwrap(update.value).shape == (1024, 1024)
