"""Entry point of a Python service placed in its own process (``python -m reckon.service.child``).

The parent hands over the whole deployment (in a file of mode 0600 named by
``RECKON_SVC_DEPLOYMENT_FILE``: it holds the users' password hashes), the service's name, its
ports (0: bind any free one and report it in the file named by ``RECKON_SVC_PORT_FILE``) and the
addresses of what it requires. The child rebuilds the same unit with that service
in-process and exposed, and everything it requires as remote: the implementation's code is the
same as in a single-process unit. A watchdog thread enforces ``call_limit`` by killing the process
when a call overruns it (a stuck handler may block the event loop, so only the process can go);
the parent notices the death and applies the restart policy.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
import threading
import time
from dataclasses import replace
from pathlib import Path

from reckon.service.deploy import Deployment
from reckon.service.kernel import Unit
from reckon.service.supervisor import die_with_parent, write_port_report


def child_deployment(env: dict[str, str]) -> Deployment:
    raw = json.loads(Path(env["RECKON_SVC_DEPLOYMENT_FILE"]).read_text())
    dep = Deployment.from_dict(raw, env["RECKON_SVC_ROOT"])
    name = env["RECKON_SVC_NAME"]
    addresses = json.loads(env.get("RECKON_SVC_ADDRESSES", "{}"))
    me = replace(
        dep.services[name],
        placement="inprocess",
        expose=True,
        # 0: any free port, reported below; a restart gets back the one it had.
        port=int(env.get("RECKON_SVC_CONNECT_PORT", "0") or 0)
        or int(env.get("RECKON_SVC_PORT", "0") or 0),
        connect_port=0,
        requires=tuple(json.loads(env.get("RECKON_SVC_REQUIRES", "[]"))),
    )
    services = {name: me}
    for other, addr in addresses.items():
        services[other] = replace(
            dep.services[other],
            placement="remote",
            address=addr["grpc"],
            connect_address=addr.get("connect"),
            requires=(),
        )
    return replace(dep, services=services, data_dir=env.get("RECKON_SVC_DATA_DIR", dep.data_dir))


def _watchdog(unit: Unit, name: str, limit: float) -> None:
    """Kill this process when a call has run past ``limit`` (checked from a thread)."""
    endpoint = unit.endpoints[name]
    while True:
        time.sleep(min(0.1, limit / 4))
        now = unit._now()
        for start in endpoint.open_since():  # unary calls and open streams alike
            if now - start > limit:
                sys.stderr.write(
                    f"reckon: {name}: a call ran past its call limit of {limit}s; "
                    "killing the process\n"
                )
                sys.stderr.flush()
                os.kill(os.getpid(), signal.SIGKILL)


async def serve(env: dict[str, str]) -> None:
    dep = child_deployment(env)
    name = env["RECKON_SVC_NAME"]
    # The watchdog kills the process, so the in-loop pulse must not cancel the call first.
    limit = dep.services[name].call_limit
    # Temp files go under the dir the parent made for this process and removes when it dies.
    tmp = env.get("RECKON_SVC_TMP")
    unit = Unit(dep, tmp_root=Path(tmp) if tmp else None)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await unit.start()
    report = env.get("RECKON_SVC_PORT_FILE")
    if report:  # the parent waits for the ports this process bound
        address = unit.addresses[name]
        assert address.grpc is not None
        cport = address.connect.rpartition(":")[2] if address.connect else None
        write_port_report(report, int(address.grpc.rpartition(":")[2]), int(cport or 0))
    if limit is not None:
        unit.endpoints[name].limit_in_loop = False
        threading.Thread(target=_watchdog, args=(unit, name, limit), daemon=True).start()
    try:
        await stop.wait()
    finally:
        await unit.stop()


def main() -> None:
    parent = os.environ.get("RECKON_SVC_PARENT_PID")
    die_with_parent(int(parent) if parent else None)
    asyncio.run(serve(dict(os.environ)))


if __name__ == "__main__":
    main()
