"""A small soft IOC: PVs with a put handler and an RPC, served over EPICS pvAccess.

    python examples/pva_ioc.py            # serve until Ctrl-C
    reckon pva get example:setpoint example:readback
    reckon pva put example:setpoint 42
    reckon pva put example:setpoint 500   # refused by the put handler
    reckon pva put example:mode auto
    reckon pva call example:ramp start=0 stop=10 steps=5

pvxs, p4p, pvapy, Phoebus and the other EPICS tools see the same PVs. The environment decides
where it listens (EPICS_PVAS_INTF_ADDR_LIST, EPICS_PVAS_SERVER_PORT, ...), as for any EPICS server.
"""

from __future__ import annotations

import asyncio
import signal
from typing import Any

from reckon.pva import PutOperation, RpcOperation, Server, SharedPV, nt

LIMIT = 100.0

setpoint = SharedPV(nt.NTScalar("d", display=True), 20.0)
readback = SharedPV(nt.NTScalar("d"), 20.0, writable=False)
mode = SharedPV(nt.NTEnum(), {"value": {"index": 0, "choices": ["manual", "auto"]}})


@setpoint.on_put
async def set_point(op: PutOperation) -> None:
    """Refuse values out of range; otherwise apply, and let the readback follow."""
    value = op.fields.get("value")
    if value is not None and not 0.0 <= float(value) <= LIMIT:
        raise ValueError(f"setpoint {value} is outside 0-{LIMIT:g}")
    op.pv.post(op.fields)
    readback.post(float(value if value is not None else setpoint.value["value"]))


def ramp(op: RpcOperation) -> Any:
    """RPC: the values of a linear ramp, ``start`` to ``stop`` in ``steps`` steps."""
    start = float(op.query.get("start", 0))
    stop = float(op.query.get("stop", 1))
    steps = int(op.query.get("steps", 10))
    if steps < 2 or steps > 10_000:
        raise ValueError("steps must be between 2 and 10000")
    values = [start + (stop - start) * i / (steps - 1) for i in range(steps)]
    return nt.typed(nt.NTScalarArray("d"), values)


PVS = {
    "example:setpoint": setpoint,
    "example:readback": readback,
    "example:mode": mode,
    "example:ramp": SharedPV.rpc_only(ramp),
}


async def main() -> None:
    async with Server(PVS) as server:
        print(f"serving {', '.join(server.names())} on TCP port {server.tcp_port}", flush=True)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await stop.wait()


if __name__ == "__main__":
    asyncio.run(main())
