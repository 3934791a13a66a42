"""pvapy (pvAccessCPP, the C++ stack of EPICS 7's `pv*` tools) against reckon, both ways:
scalars, arrays past 16 MiB, a 1024x1024 NTNDArray, monitors, and a put over reckon's limit
answered with an error pvapy sees (it used to be dropped, and pvapy hung past its timeout)."""

from __future__ import annotations

from typing import Any

import numpy as np

from reckon.pva import Client, SharedPV, nt

from .conftest import start_pvapy

MB = 1024 * 1024
N_BIG = 20 * MB // 8 + 1000  # doubles: past 16 MiB


def _image() -> np.ndarray:
    return (np.arange(1024 * 1024, dtype=np.uint32) % 65521).astype(np.uint16).reshape(1024, 1024)


def test_pvapy_client_against_reckon_server(reckon_server: Any, pva_env: dict[str, str]) -> None:
    x = SharedPV(nt.NTScalar("d"), 1.5)
    big = SharedPV(nt.NTScalarArray("d"), [0.0])
    image_nt = nt.NTNDArray()
    img = SharedPV(image_nt, image_nt.wrap(_image(), unique_id=1))
    st = reckon_server({"r:x": x, "r:big": big, "r:img": img})
    child = start_pvapy(
        f"""
c = pva.Channel('r:x')
emit(c.get()['value'])
c.put(2.75)
emit(c.get()['value'])
b = pva.Channel('r:big')
b.put(pva.PvObject({{'value': [pva.DOUBLE]}}, {{'value': np.arange({N_BIG}, dtype=np.float64)}}))
v = b.get()['value']
emit([len(v), float(v[-1])])
g = pva.Channel('r:img').get('')
flat = np.asarray(g['value'][0]['ushortValue'])
emit([len(flat), int(flat.astype(np.int64).sum()), [d['size'] for d in g['dimension']]])
got = []
m = pva.Channel('r:x')
m.subscribe('s', lambda pv: got.append(pv['value']))
m.startMonitor('field(value)')
time.sleep(1.0)
emit('subscribed')
wait_line()
deadline = time.time() + 20
while (not got or got[-1] != 9.5) and time.time() < deadline:
    time.sleep(0.05)
m.stopMonitor()
emit(got[-1])
""",
        pva_env,
        st.server.tcp_port,
    )
    try:
        assert child.read_json(timeout=60) == 1.5
        assert child.read_json(timeout=30) == 2.75
        assert child.read_json(timeout=120) == [N_BIG, float(N_BIG - 1)]
        image = _image()
        assert child.read_json(timeout=60) == [
            image.size,
            int(image.astype(np.int64).sum()),
            [1024, 1024],
        ]
        assert child.read_json(timeout=30) == "subscribed"
        st.run(x.post, 9.5)
        child.send("go")
        assert child.read_json(timeout=30) == 9.5
    finally:
        child.stop()
    assert len(big.value["value"]) == N_BIG


def test_pvapy_put_over_reckons_limit_gets_an_error(
    reckon_server: Any, pva_env: dict[str, str]
) -> None:
    arr = SharedPV(nt.NTScalarArray("d"), [0.0])
    st = reckon_server({"r:arr": arr}, max_message_size=1 * MB)
    child = start_pvapy(
        """
c = pva.Channel('r:arr')
c.setTimeout(10)
try:
    c.put(pva.PvObject({'value': [pva.DOUBLE]}, {'value': np.arange(300000, dtype=np.float64)}))
    emit('no error')
except Exception as e:
    emit(str(e))
c.put(pva.PvObject({'value': [pva.DOUBLE]}, {'value': np.arange(3, dtype=np.float64)}))
emit(list(c.get()['value']))
""",
        pva_env,
        st.server.tcp_port,
    )
    try:
        assert "max_message_size" in child.read_json(timeout=60)
        assert child.read_json(timeout=30) == [0.0, 1.0, 2.0]
    finally:
        child.stop()


async def test_reckon_client_against_pvapy_server(pva_env: dict[str, str]) -> None:
    child = start_pvapy(
        f"""
s = pva.PvaServer('c:x', pva.NtScalar(pva.DOUBLE, 1.5))
big = pva.PvObject({{'value': [pva.DOUBLE]}}, 'epics:nt/NTScalarArray:1.0')
big['value'] = np.arange({N_BIG}, dtype=np.float64)
s.addRecord('c:big', big)
nd = pva.NtNdArray()
nd['value'] = {{'ushortValue': (np.arange(1024 * 1024, dtype=np.uint32) % 65521).astype(np.uint16)}}
nd['dimension'] = [pva.PvDimension(1024, 0, 1024, 1, False)] * 2
s.addRecord('c:img', nd)
emit('ready')
wait_line()
s.update('c:x', pva.NtScalar(pva.DOUBLE, 4.25))
emit('posted')
wait_line()
s.stop()
""",
        pva_env,
    )
    import asyncio

    try:
        assert await asyncio.to_thread(child.read_json, 60) == "ready"
        async with Client() as client:
            assert (await client.get("c:x", timeout=30))["value"] == 1.5
            value = await client.get("c:big", timeout=60)
            assert len(value["value"]) == N_BIG and value["value"][-1] == N_BIG - 1
            image = nt.NTNDArray().unwrap(await client.get("c:img", timeout=60))
            assert image.shape == (1024, 1024)
            assert np.array_equal(image, _image())
            async with client.monitor("c:x") as sub:
                assert (await sub.next(timeout=30)).value["value"] == 1.5
                child.send("post")
                assert await asyncio.to_thread(child.read_json, 30) == "posted"
                assert (await sub.next(timeout=30)).value["value"] == 4.25
            await client.put("c:x", 6.5, timeout=30)
            assert (await client.get("c:x", timeout=30))["value"] == 6.5
        child.send("stop")
    finally:
        child.stop()
