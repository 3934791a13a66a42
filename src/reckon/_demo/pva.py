"""Act 4, pvAccess: reckon publishes a PV and its engine's statistics to EPICS clients, and its
own client gets, puts and monitors them; all on 127.0.0.1 with ports picked at run time."""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
from collections.abc import Iterator

from reckon._demo.common import Act, child_env
from reckon.core import CachingLevel, RequestId
from reckon.pva.config import loopback_environment

NAME, STATS = "demo:temperature", "demo:engine"


def loopback_env() -> dict[str, str]:
    """EPICS variables that keep server and client on loopback, on fresh ports."""
    return loopback_environment()


@contextlib.contextmanager
def _environment(env: dict[str, str]) -> Iterator[None]:
    """Set the EPICS variables for this act only (server and client read them when created)."""
    saved = {k: v for k, v in os.environ.items() if k.startswith("EPICS_")}
    for key in saved:
        del os.environ[key]
    os.environ.update(env)
    try:
        yield
    finally:
        for key in [k for k in os.environ if k.startswith("EPICS_")]:
            del os.environ[key]
        os.environ.update(saved)


async def _cli_get(env: dict[str, str]) -> str:
    """What ``reckon pva get NAME`` prints, run as a separate program."""
    child = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "reckon.cli", "pva", "get", NAME, "-w", "10",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        env={k: v for k, v in child_env().items() if not k.startswith("EPICS_")}
        | {k: env[k] for k in _CLIENT_VARS},
    )  # fmt: skip
    try:
        out, _ = await asyncio.wait_for(child.communicate(), 30)
    except TimeoutError:
        child.kill()
        await child.wait()
        raise
    if child.returncode != 0:
        raise RuntimeError(f"reckon pva get exited with {child.returncode}: {out.decode()}")
    return out.decode().strip()


_CLIENT_VARS = ("EPICS_PVA_AUTO_ADDR_LIST", "EPICS_PVA_ADDR_LIST", "EPICS_PVA_BROADCAST_PORT")


def _command(env: dict[str, str]) -> str:
    """The shell line :func:`_cli_get` runs: a client needs only where to search."""
    return " ".join(f"{k}={env[k]}" for k in _CLIENT_VARS) + f" reckon pva get {NAME}"


async def _session(act: Act, env: dict[str, str]) -> None:
    from reckon.pva import Client, Server, SharedPV, nt
    from reckon.pva.bridge import publish_engine_stats

    temperature = SharedPV(nt.NTScalar("d", display=True), 21.5)
    temperature.post({"display": {"units": "C"}})
    async with Server({NAME: temperature}) as server, Client(timeout=10) as client:
        stats = publish_engine_stats(server, act.engine, STATS, period=0.1)
        try:
            port = env["EPICS_PVAS_SERVER_PORT"]
            act.say(f"serving {NAME} (NTScalar double, 21.5 C) and {STATS} on 127.0.0.1:{port}")
            got = await client.get(NAME)
            act.say(f"get {NAME} -> {got['value']} {got['display']['units']}")
            await client.put(NAME, 22.5)
            act.say(f"put {NAME} 22.5 -> read back {(await client.get(NAME))['value']}")
            async with client.monitor(NAME) as updates:
                seen = [(await updates.next()).value["value"]]
                for value in (23.0, 23.5):
                    temperature.post(value)
                while seen[-1] != 23.5 and len(seen) < 10:
                    seen.append((await updates.next()).value["value"])
            act.say(f"monitor {NAME}, server posts 23.0 and 23.5 -> updates {seen}")
            async with client.monitor(STATS) as engine_updates:
                before = (await engine_updates.next()).value["counters"]["computed"]
                await asyncio.to_thread(
                    act.engine.get, RequestId("demo", "pva", os.getpid()), CachingLevel.MEMORY,
                    lambda: "seen on the control room's screen", title="pva demo",
                )  # fmt: skip
                after = before
                while after == before:
                    after = (await engine_updates.next()).value["counters"]["computed"]
            act.say(f"monitor {STATS}: the engine computed, counters.computed {before} -> {after}")
            printed = await _cli_get(env)
            act.say(f"the same from a shell (another program, same variables): {_command(env)}")
            act.say(printed, indent=4)
        finally:
            stats.stop()


def run(act: Act) -> None:
    env = loopback_env()
    with _environment(env):
        asyncio.run(asyncio.wait_for(_session(act, env), 60))
    act.say(
        "pvxget, Phoebus, CS-Studio and p4p read these PVs too; `reckon pva serve FILE` serves some"
    )
    act.why(
        "reckon speaks the control room's protocol: live values and the cache's own health "
        "appear on EPICS screens with no gateway."
    )
