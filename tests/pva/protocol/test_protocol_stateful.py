"""Stateful property test: random but legal interleavings of client and server actions keep
both connections in agreement (channels, operations) and never raise anything but
LocalProtocolError for sends the state forbids."""

from __future__ import annotations

import os
from typing import Any

from conftest import Pair  # type: ignore[import-not-found]
from hypothesis import HealthCheck, event, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from reckon.pva.protocol import (
    BitSet,
    CancelRequest,
    CreateChannelRequest,
    CreateChannelResponse,
    DestroyChannel,
    DestroyRequest,
    Get,
    GetInit,
    GetInitResponse,
    GetResponse,
    LocalProtocolError,
    MonitorAck,
    MonitorFinish,
    MonitorInit,
    MonitorInitResponse,
    MonitorStart,
    MonitorStop,
    MonitorUpdate,
    Put,
    PutInit,
    PutInitResponse,
    PutResponse,
    Status,
    nt,
)

NT = nt.NTScalar("d")
ids = st.integers(1, 2)


def pick(data: st.DataObject, existing: Any) -> int:
    """Mostly an id that exists (so sessions get somewhere), sometimes any id."""
    known = sorted(existing)
    if known and data.draw(st.integers(0, 9)) > 0:
        return int(data.draw(st.sampled_from(known)))
    return int(data.draw(ids))


class Session(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.p = Pair(big_endian=False)
        self.pending: list[Any] = []  # server events not yet answered

    def _c2s(self, ev: Any) -> None:
        try:
            data = self.p.client.send(ev)
        except LocalProtocolError:
            return
        if data:
            self.p.server.receive_data(data)
            self.pending += list(self.p.server.events())

    def _s2c(self, ev: Any) -> None:
        try:
            data = self.p.server.send(ev)
        except LocalProtocolError:
            return
        if data:  # b"" is a send the state dropped (receive_data(b"") would mean EOF)
            self.p.client.receive_data(data)
            list(self.p.client.events())

    @initialize()
    def open_session(self) -> None:
        """Start from a channel with a get, a put and a running monitor."""
        self.create(1)
        self.answer(True)
        for ioid, kind in ((1, GetInit), (2, PutInit), (3, MonitorInit)):
            self._c2s(kind(101, ioid))
            self.answer(True)
        self._c2s(MonitorStart(101, 3))
        self.pending.clear()

    @rule(cid=ids)
    def create(self, cid: int) -> None:
        self._c2s(CreateChannelRequest(cid, f"pv{cid}"))

    @rule(ok=st.booleans())
    def answer(self, ok: bool) -> None:
        if not self.pending:
            return
        ev = self.pending.pop(0)
        status = Status.OK if ok else Status.error("no")
        if isinstance(ev, CreateChannelRequest):
            self._s2c(CreateChannelResponse(ev.cid, ev.cid + 100, status))
        elif isinstance(ev, GetInit):
            self._s2c(GetInitResponse(ev.ioid, status, NT.type if ok else None))
        elif isinstance(ev, PutInit):
            self._s2c(PutInitResponse(ev.ioid, status, NT.type if ok else None))
        elif isinstance(ev, MonitorInit):
            self._s2c(MonitorInitResponse(ev.ioid, status, NT.type if ok else None))
        elif isinstance(ev, Get):
            self._s2c(GetResponse(ev.ioid, status, NT.wrap(1.0) if ok else None))
        elif isinstance(ev, Put):
            self._s2c(PutResponse(ev.ioid, status))
        elif isinstance(ev, DestroyChannel):
            self._s2c(ev)

    @rule(ok=st.booleans())
    def answer_again(self, ok: bool) -> None:
        self.answer(ok)  # answers are the most common step of a real session

    def _cid(self, data: st.DataObject) -> int:
        return pick(data, self.p.client.channels)

    def _ioid(self, data: st.DataObject) -> int:
        return pick(data, self.p.client.requests)

    @rule(data=st.data(), kind=st.sampled_from([GetInit, PutInit, MonitorInit]))
    def init(self, data: st.DataObject, kind: Any) -> None:
        self._c2s(kind(self._cid(data) + 100, data.draw(st.integers(1, 4))))

    @rule(data=st.data(), destroy=st.booleans())
    def execute(self, data: st.DataObject, destroy: bool) -> None:
        cid, ioid = self._cid(data), self._ioid(data)
        req = self.p.client.requests.get(ioid)
        if req is not None and req.command == 0x0B:
            self._c2s(Put(cid + 100, ioid, {"value": 2.0}, BitSet([1]), destroy))
        else:
            self._c2s(Get(cid + 100, ioid, destroy))

    @rule(data=st.data(), what=st.sampled_from(["start", "stop", "ack", "update", "finish"]))
    def monitor(self, data: st.DataObject, what: str) -> None:
        sid, ioid = self._cid(data) + 100, self._ioid(data)
        if what == "start":
            self._c2s(MonitorStart(sid, ioid))
        elif what == "stop":
            self._c2s(MonitorStop(sid, ioid))
        elif what == "ack":
            self._c2s(MonitorAck(sid, ioid, 1))
        elif what == "update":
            self._s2c(MonitorUpdate(ioid, NT.wrap(3.0), BitSet([1])))
        else:
            self._s2c(MonitorFinish(ioid))

    @rule(data=st.data(), cancel=st.booleans())
    def destroy_request(self, data: st.DataObject, cancel: bool) -> None:
        cid, ioid = self._cid(data), self._ioid(data)
        self._c2s((CancelRequest if cancel else DestroyRequest)(cid + 100, ioid))

    @rule(data=st.data(), by_server=st.booleans())
    def destroy_channel(self, data: st.DataObject, by_server: bool) -> None:
        cid = self._cid(data)
        if by_server:
            self._s2c(DestroyChannel(cid + 100, cid))
        else:
            self._c2s(DestroyChannel(cid + 100, cid))

    @invariant()
    def sides_agree(self) -> None:
        # every exchange is delivered at once, so both sides must hold the same picture
        srv, cli = self.p.server, self.p.client
        assert {(c.cid, c.sid) for c in cli.channels.values()} == {
            (c.cid, c.sid) for c in srv.channels.values()
        }
        assert set(cli.requests) == set(srv.requests)
        for ioid, req in srv.requests.items():
            assert cli.requests[ioid].state is req.state, ioid
        assert srv.state is cli.state
        for req in srv.requests.values():
            event(f"server op in state {req.state.value}")


Session.TestCase.settings = settings(
    max_examples=int(os.environ.get("RECKON_FUZZ_EXAMPLES", "60")),
    stateful_step_count=50,
    deadline=None,
    suppress_health_check=list(HealthCheck),
)
TestSession = Session.TestCase
