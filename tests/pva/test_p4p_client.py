"""p4p's client (pvxs) against reckon's server: every operation p4p offers, over loopback."""

from __future__ import annotations

import getpass
import socket
import threading
from typing import Any

import numpy as np
import pytest

from reckon.errors import PvaAccessDeniedError
from reckon.pva import Peer, SharedPV, nt
from reckon.pva.pv import PutOperation, RpcOperation

from .conftest import run_p4p_client, start_p4p_client

KINDS = "?bBhHiIlLfds"


def test_get_put_and_credentials(reckon_server: Any, pva_env: dict[str, str]) -> None:
    x = SharedPV(nt.NTScalar("d"), 1.5)
    seen: list[tuple[Peer, dict[str, Any]]] = []

    @x.on_put
    def handle(op: PutOperation) -> None:
        seen.append((op.peer, op.fields))
        op.pv.post(op.fields)

    reckon_server({"t:x": x, "t:s": SharedPV(nt.NTScalar("s"), "hello")})
    out = run_p4p_client(
        """
emit(plain(ctx.get('t:x'))['value'])
emit(plain(ctx.get('t:s'))['value'])
ctx.put('t:x', 2.75)
emit(plain(ctx.get('t:x'))['value'])
ctx.put('t:s', 'world')
emit(plain(ctx.get('t:s'))['value'])
""",
        pva_env,
    )
    assert out == [1.5, "hello", 2.75, "world"]
    assert x.value["value"] == 2.75
    peer, fields = seen[0]
    assert fields == {"value": 2.75}
    assert peer.method == "ca"
    assert peer.user == getpass.getuser()
    assert peer.host == socket.gethostname()


def test_arrays_of_every_scalar_type(reckon_server: Any, pva_env: dict[str, str]) -> None:
    pvs = {}
    for k in KINDS:
        initial = ["a", "bc", ""] if k == "s" else ([True, False, True] if k == "?" else [1, 2, 3])
        pvs[f"t:arr:{k}"] = SharedPV(nt.NTScalarArray(k), initial)
    reckon_server(pvs)
    out = run_p4p_client(
        f"""
for k in {KINDS!r}:
    v = ctx.get('t:arr:' + k)
    emit([k, str(v.type()['value']), plain(v)['value']])
ctx.put('t:arr:d', np.arange(5.0))
emit(plain(ctx.get('t:arr:d'))['value'])
ctx.put('t:arr:s', ['x', 'y'])
emit(plain(ctx.get('t:arr:s'))['value'])
""",
        pva_env,
    )
    got = {k: (t, v) for k, t, v in out[: len(KINDS)]}
    for k in KINDS:
        t, v = got[k]
        assert t == "a" + k, (k, t)
        if k == "s":
            assert v == ["a", "bc", ""]
        elif k == "?":
            assert v == [True, False, True]
        else:
            assert v == [1, 2, 3]
    assert out[-2] == [0.0, 1.0, 2.0, 3.0, 4.0]
    assert out[-1] == ["x", "y"]
    assert np.array_equal(pvs["t:arr:d"].value["value"], np.arange(5.0))


def test_nttable_and_enum(reckon_server: Any, pva_env: dict[str, str]) -> None:
    table = nt.NTTable([("name", "s"), ("x", "d"), ("n", "i")])
    data: dict[str, list[Any]] = {"name": ["a", "b"], "x": [1.5, 2.5], "n": [7, 8]}
    mode = SharedPV(nt.NTEnum(), {"value": {"index": 0, "choices": ["off", "on"]}})
    reckon_server({"t:table": SharedPV(table, table.wrap(data)), "t:mode": mode})
    out = run_p4p_client(
        """
v = ctx.get('t:table')
emit([v.getID(), list(v.labels), plain(v.value)])
ctx.put('t:mode', {'value.index': 1})
v = ctx.get('t:mode')
emit([v.getID(), plain(v.value)])
""",
        pva_env,
    )
    assert out[0] == ["epics:nt/NTTable:1.0", ["name", "x", "n"], data]
    assert out[1] == ["epics:nt/NTEnum:1.0", {"index": 1, "choices": ["off", "on"]}]
    assert mode.value["value"]["index"] == 1


def test_rpc_sync_async_and_error(reckon_server: Any, pva_env: dict[str, str]) -> None:
    calls: list[Peer] = []

    def add(op: RpcOperation) -> Any:
        calls.append(op.peer)
        return nt.typed(nt.NTScalar("d"), float(op.query["a"]) + float(op.query["b"]))

    async def mul(op: RpcOperation) -> Any:
        import asyncio

        await asyncio.sleep(0.01)
        return {"product": float(op.query["a"]) * float(op.query["b"])}

    def fail(op: RpcOperation) -> Any:
        raise ValueError("no such thing")

    reckon_server(
        {
            "t:add": SharedPV.rpc_only(add),
            "t:mul": SharedPV.rpc_only(mul),
            "t:fail": SharedPV.rpc_only(fail),
        }
    )
    out = run_p4p_client(
        """
from p4p.nt import NTURI
uri = NTURI([('a', 'd'), ('b', 'd')])
emit(plain(ctx.rpc('t:add', uri.wrap('t:add', kws={'a': 2.0, 'b': 3.5})))['value'])
emit(plain(ctx.rpc('t:mul', uri.wrap('t:mul', kws={'a': 2.0, 'b': 3.5})))['product'])
try:
    ctx.rpc('t:fail', uri.wrap('t:fail', kws={'a': 1.0, 'b': 1.0}))
    emit('no error')
except Exception as e:
    emit(str(e))
""",
        pva_env,
    )
    assert out[0] == 5.5
    assert out[1] == 7.0
    assert "no such thing" in out[2]
    assert calls[0].method == "ca"


def test_access_hook_refuses_put(reckon_server: Any, pva_env: dict[str, str]) -> None:
    x = SharedPV(nt.NTScalar("i"), 1)
    locked = SharedPV(nt.NTScalar("i"), 1)

    @locked.on_put
    def refuse(op: PutOperation) -> None:
        raise PvaAccessDeniedError(f"{op.peer.user} may not write {op.name}")

    def access(peer: Peer, name: str, operation: str) -> bool:
        return not (name == "t:x" and operation == "put")

    reckon_server({"t:x": x, "t:locked": locked}, access=access)
    out = run_p4p_client(
        """
for name in ('t:x', 't:locked'):
    try:
        ctx.put(name, 5)
        emit('ok')
    except Exception as e:
        emit(str(e))
emit(plain(ctx.get('t:x'))['value'])
""",
        pva_env,
    )
    assert "refused by access control" in out[0]
    assert "may not write t:locked" in out[1]
    assert out[2] == 1
    assert x.value["value"] == 1 and locked.value["value"] == 1


@pytest.mark.parametrize("request_text", ["", "record[pipeline=true,queueSize=4]"])
def test_monitor_burst_delivers_last_value(
    reckon_server: Any, pva_env: dict[str, str], request_text: str
) -> None:
    """A burst far larger than the queue (and the pipeline window) ends with its last value."""
    counter = SharedPV(nt.NTScalar("i"), 0)
    reckon_server({"t:count": counter})
    n = 3000
    client = start_p4p_client(
        f"""
import queue
q = queue.Queue()
sub = ctx.monitor('t:count', q.put, request={request_text!r} or None)
first = q.get(timeout=20)
emit({{'first': int(first.value)}})
count = 0
while True:
    v = q.get(timeout=20)
    count += 1
    if int(v.value) == {n}:
        break
emit({{'count': count, 'last': int(v.value)}})
sub.close()
""",
        pva_env,
    )
    try:
        assert client.read_json() == {"first": 0}

        def burst() -> None:
            for i in range(1, n + 1):
                counter.post(i)

        threading.Thread(target=burst).start()
        done = client.read_json(timeout=60)
        assert done["last"] == n
        assert 1 <= done["count"] <= n
    finally:
        client.kill()


def test_pvs_added_and_removed_while_running(reckon_server: Any, pva_env: dict[str, str]) -> None:
    st = reckon_server({"t:a": SharedPV(nt.NTScalar("i"), 1)})
    client = start_p4p_client(
        """
emit(plain(ctx.get('t:a'))['value'])
wait_line()
emit(plain(ctx.get('t:b', timeout=10))['value'])
wait_line()
try:
    ctx.get('t:a', timeout=1.5)
    emit('still there')
except Exception as e:
    emit('gone: ' + type(e).__name__)
""",
        pva_env,
    )
    try:
        assert client.read_json() == 1
        st.run(st.server.create, "t:b", nt.NTScalar("i"), 2)
        client.send("go")
        assert client.read_json() == 2
        st.run(st.server.remove, "t:a")
        client.send("go")
        assert client.read_json().startswith("gone")
    finally:
        client.kill()


def test_a_get_sends_only_fields_that_were_given_a_value(
    reckon_server: Any, pva_env: dict[str, str]
) -> None:
    """As pvxs does: fields never given a value still hold their defaults, which the client
    fills in itself, so a get reply leaves them out (p4p marks what arrived as changed)."""
    alarmed = SharedPV(nt.NTScalar("d"), 1.5, timestamp=False)
    alarmed.post({"alarm": {"severity": 2}})
    reckon_server(
        {
            "t:bare": SharedPV(nt.NTScalar("d"), 1.5, timestamp=False),
            "t:stamped": SharedPV(nt.NTScalar("d"), 1.5),
            "t:alarmed": alarmed,
        }
    )
    out = run_p4p_client(
        """
for name in ('t:bare', 't:stamped', 't:alarmed'):
    v = ctx.get(name)
    emit([sorted(v.changedSet()), plain(v)['value'], plain(v)['alarm']['severity']])
v = ctx.get('t:stamped', request='field(value,alarm)')
emit(sorted(v.changedSet()))
""",
        pva_env,
    )
    stamp = ["timeStamp.nanoseconds", "timeStamp.secondsPastEpoch"]
    assert out == [
        [["value"], 1.5, 0],
        [sorted(["value", *stamp]), 1.5, 0],
        [["alarm.severity", "value"], 1.5, 2],
        ["value"],
    ]
