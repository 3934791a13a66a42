"""Thin tests against the real EPICS stack (p4p / pvxs) on loopback, with blocking sockets.

The asyncio server and client have their own interop suite; these only prove the protocol
library alone speaks to pvxs in both directions.
"""

from __future__ import annotations

import os
import socket
import threading
import time
from typing import Any

import numpy as np
import pytest

from reckon._net import free_port
from reckon.pva.protocol import (
    NEED_DATA,
    RPC,
    ClientConnection,
    ConnectionValidated,
    ConnectionValidationRequest,
    ConnectionValidationResponse,
    ControlEchoRequest,
    ControlEchoResponse,
    CreateChannelRequest,
    CreateChannelResponse,
    DestroyChannel,
    Echo,
    Event,
    Get,
    GetField,
    GetFieldResponse,
    GetInit,
    GetInitResponse,
    GetResponse,
    MonitorAck,
    MonitorInit,
    MonitorInitResponse,
    MonitorStart,
    MonitorUpdate,
    Put,
    PutInit,
    PutInitResponse,
    PutRead,
    PutReadResponse,
    PutResponse,
    RPCInit,
    RPCInitResponse,
    RPCResponse,
    SearchRequest,
    SearchResponse,
    ServerConnection,
    Status,
    VariantValue,
    nt,
    pv_request,
)

p4p = pytest.importorskip("p4p")
pytestmark = pytest.mark.timeout(60)

NT = nt.NTScalar("d")
ARR = nt.NTScalarArray("i")


class TinyServer:
    """A blocking, thread-per-connection server built on ServerConnection."""

    def __init__(self) -> None:
        self.values: dict[str, tuple[Any, dict[str, Any]]] = {
            "tiny:d": (NT, NT.wrap(1.5)),
            "tiny:arr": (ARR, ARR.wrap(np.arange(5, dtype=np.int32))),
        }
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.port = self.sock.getsockname()[1]
        self.errors: list[BaseException] = []
        self.closing = False
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while not self.closing:
            try:
                s, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(s,), daemon=True).start()

    def _serve(self, s: socket.socket) -> None:
        conn = ServerConnection()
        names: dict[int, str] = {}  # sid -> pv name
        monitors: dict[int, int] = {}  # ioid -> sid
        try:
            s.sendall(conn.initiate())
            while True:
                data = s.recv(65536)
                conn.receive_data(data)
                out = b""
                for ev in conn.events():
                    out += self._answer(conn, ev, names, monitors)
                if out:
                    s.sendall(out)
                if not data:
                    return
        except OSError:
            return
        except BaseException as exc:  # recorded: the test asserts there were none
            self.errors.append(exc)
        finally:
            s.close()

    def _answer(
        self, conn: ServerConnection, ev: Event, names: dict[int, str], mons: dict[int, int]
    ) -> bytes:
        if isinstance(ev, ConnectionValidationResponse):
            return conn.send(ConnectionValidated())
        if isinstance(ev, SearchRequest):
            cids = tuple(c for c, n in ev.channels if n in self.values)
            if not cids:
                return b""
            return conn.send(
                SearchResponse(b"tinyserver01", ev.sequence, "127.0.0.1", self.port, True, cids)
            )
        if isinstance(ev, CreateChannelRequest):
            if ev.name not in self.values:
                return conn.send(CreateChannelResponse(ev.cid, 0, Status.error("no such PV")))
            sid = len(names) + 100
            names[sid] = ev.name
            return conn.send(CreateChannelResponse(ev.cid, sid))
        if isinstance(ev, (GetInit, PutInit, MonitorInit)):
            kind, _ = self.values[names[ev.sid]]
            cls = {GetInit: GetInitResponse, PutInit: PutInitResponse}.get(
                type(ev), MonitorInitResponse
            )
            if isinstance(ev, MonitorInit):
                mons[ev.ioid] = ev.sid
            return conn.send(cls(ev.ioid, type=kind.type))
        if isinstance(ev, RPCInit):
            return conn.send(RPCInitResponse(ev.ioid))
        if isinstance(ev, Get):
            return conn.send(GetResponse(ev.ioid, value=self.values[names[ev.sid]][1]))
        if isinstance(ev, PutRead):
            return conn.send(PutReadResponse(ev.ioid, value=self.values[names[ev.sid]][1]))
        if isinstance(ev, Put):
            name = names[ev.sid]
            kind, old = self.values[name]
            new = dict(old, value=ev.value["value"])
            self.values[name] = (kind, new)
            out = conn.send(PutResponse(ev.ioid))
            for ioid, sid in mons.items():
                if names[sid] == name:
                    out += conn.send(MonitorUpdate(ioid, new))
            return out
        if isinstance(ev, MonitorStart):
            return conn.send(MonitorUpdate(ev.ioid, self.values[names[ev.sid]][1]))
        if isinstance(ev, RPC):
            a = ev.argument.value if ev.argument is not None else {}
            total = float(sum(v for v in a.get("query", a).values() if isinstance(v, (int, float))))
            return conn.send(RPCResponse(ev.ioid, result=VariantValue(NT.type, NT.wrap(total))))
        if isinstance(ev, GetField):
            return conn.send(GetFieldResponse(ev.ioid, type=self.values[names[ev.sid]][0].type))
        if isinstance(ev, Echo):
            return conn.send(ev)
        if isinstance(ev, ControlEchoRequest):
            return conn.send(ControlEchoResponse(ev.value))
        if isinstance(ev, DestroyChannel):
            return conn.send(ev)
        return b""

    def close(self) -> None:
        self.closing = True
        self.sock.close()


@pytest.fixture
def tiny() -> Any:
    srv = TinyServer()
    yield srv
    srv.close()
    assert srv.errors == []


def p4p_context(port: int) -> Any:
    from p4p.client.thread import Context

    conf = {
        "EPICS_PVA_NAME_SERVERS": f"127.0.0.1:{port}",
        "EPICS_PVA_AUTO_ADDR_LIST": "NO",
        "EPICS_PVA_ADDR_LIST": "",
        "EPICS_PVA_BROADCAST_PORT": str(free_port(socket.SOCK_DGRAM)),
    }
    return Context("pva", conf=conf, useenv=False)


def test_p4p_client_against_protocol_server(tiny: TinyServer) -> None:
    ctx = p4p_context(tiny.port)
    try:
        assert ctx.get("tiny:d", timeout=10) == 1.5
        assert list(ctx.get("tiny:arr", timeout=10)) == [0, 1, 2, 3, 4]
        seen: list[float] = []
        got = threading.Event()

        def cb(v: Any) -> None:
            seen.append(float(v))
            if float(v) == 4.5:
                got.set()

        sub = ctx.monitor("tiny:d", cb)
        ctx.put("tiny:d", 4.5, timeout=10)
        assert got.wait(10), seen
        sub.close()
        assert ctx.get("tiny:d", timeout=10) == 4.5
        from p4p.nt import NTURI

        uri = NTURI([("a", "d"), ("b", "d")]).wrap("add", kws={"a": 1.0, "b": 2.5})
        assert ctx.rpc("tiny:d", uri, timeout=10) == 3.5
    finally:
        ctx.close()


def _talk(sock: socket.socket, conn: ClientConnection, ev: Event | None, want: type) -> Any:
    if ev is not None:
        sock.sendall(conn.send(ev))
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        got = conn.next_event()
        if got is NEED_DATA:
            conn.receive_data(sock.recv(65536))
            continue
        if isinstance(got, want):
            return got
    raise AssertionError(f"no {want.__name__}")


def test_protocol_client_against_p4p_server() -> None:
    from p4p.nt import NTScalar
    from p4p.server import Server, StaticProvider
    from p4p.server.thread import SharedPV

    pv = SharedPV(nt=NTScalar("d"), initial=2.5)

    @pv.put  # type: ignore[misc]
    def _put(pv_: Any, op: Any) -> None:
        pv_.post(op.value())
        op.done()

    prov = StaticProvider("protocol-test")
    prov.add("p4p:d", pv)
    port = free_port()
    conf = {
        "EPICS_PVAS_INTF_ADDR_LIST": "127.0.0.1",
        "EPICS_PVAS_SERVER_PORT": str(port),
        "EPICS_PVAS_BROADCAST_PORT": str(free_port(socket.SOCK_DGRAM)),
        "EPICS_PVAS_AUTO_BEACON_ADDR_LIST": "NO",
        "EPICS_PVAS_BEACON_ADDR_LIST": "127.0.0.1",
    }
    srv = Server(providers=[prov], conf=conf, useenv=False)
    try:
        sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        conn = ClientConnection()
        _talk(sock, conn, None, ConnectionValidationRequest)
        _talk(
            sock,
            conn,
            ConnectionValidationResponse.ca(os.environ.get("USER", "tester"), "h"),
            ConnectionValidated,
        )
        created = _talk(sock, conn, CreateChannelRequest(1, "p4p:d"), CreateChannelResponse)
        sid = created.sid
        init = _talk(sock, conn, GetInit(sid, 1, pv_request()), GetInitResponse)
        assert init.type.id == "epics:nt/NTScalar:1.0"
        got = _talk(sock, conn, Get(sid, 1), GetResponse)
        assert got.value["value"] == 2.5
        _talk(sock, conn, PutInit(sid, 2, pv_request()), PutInitResponse)
        put = _talk(sock, conn, Put(sid, 2, {"value": 7.25}), PutResponse)
        assert put.status.success
        _talk(
            sock,
            conn,
            MonitorInit(sid, 3, pv_request("record[pipeline=true,queueSize=4]"), queue_size=4),
            MonitorInitResponse,
        )
        upd = _talk(sock, conn, MonitorStart(sid, 3), MonitorUpdate)
        assert upd.value["value"] == 7.25
        sock.sendall(conn.send(MonitorAck(sid, 3, 1)))
        pv.post(8.5)
        upd = _talk(sock, conn, None, MonitorUpdate)
        assert upd.value["value"] == 8.5
        assert _talk(sock, conn, Echo(b""), Echo) == Echo(b"")
        sock.close()
    finally:
        srv.stop()
