"""Processes reckon starts run on uvloop when it is importable; RECKON_PVA_UVLOOP=0 turns it off."""

from __future__ import annotations

import asyncio
import socket
import subprocess
import sys

import pytest

from reckon.pva import runloop

uvloop = pytest.importorskip("uvloop")


async def _loop_module() -> str:
    return type(asyncio.get_running_loop()).__module__


def test_run_uses_uvloop_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(runloop.ENV, raising=False)
    assert runloop.run(_loop_module()).startswith("uvloop")


@pytest.mark.parametrize("off", ["0", "off", "false"])
def test_env_switch_turns_uvloop_off(monkeypatch: pytest.MonkeyPatch, off: str) -> None:
    monkeypatch.setenv(runloop.ENV, off)
    assert runloop.loop_factory() is None
    assert runloop.run(_loop_module()).startswith("asyncio")


def test_cli_runs_on_the_chosen_loop(monkeypatch: pytest.MonkeyPatch) -> None:
    # the CLI's commands (serve included) go through the same runner
    code = (
        "import asyncio\n"
        "from reckon.pva import cli\n"
        "async def f():\n"
        "    return type(asyncio.get_running_loop()).__module__\n"
        "print(cli._run(f()))\n"
    )
    for env, want in (("1", "uvloop"), ("0", "asyncio")):
        monkeypatch.setenv(runloop.ENV, env)
        out = subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
        )
        assert out.stdout.strip().startswith(want)


async def _no_delay_on_both_ends() -> tuple[int, int, int]:
    """A reckon server and client on the running loop: TCP_NODELAY on each end's socket, and
    how many connections the server built ahead of time were used."""
    from reckon.pva import Client, Server, SharedPV, nt

    server = Server()
    server.add("x", SharedPV(nt.NTScalar("d"), 1.0))
    await server.start()
    try:
        spare = server._spare
        async with Client() as client:
            assert (await client.get("x", timeout=10))["value"] == 1.0
            [conn] = server.context.sessions
            [fut] = client._conns.values()
            ends = [conn.sink, fut.result().transport]
            flags = [
                t.get_extra_info("socket").getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)
                for t in ends
                if t is not None
            ]
        used = spare is not None and conn is spare.session
        return flags[0], flags[1], int(used and server._spare is not None)
    finally:
        await server.stop()


@pytest.mark.parametrize("loop", ["1", "0"])
def test_connections_send_small_messages_at_once_on_both_loops(
    monkeypatch: pytest.MonkeyPatch, pva_env: dict[str, str], loop: str
) -> None:
    """reckon relies on the loops' TCP transports setting TCP_NODELAY (asyncio and uvloop
    both do), rather than a system call of its own per connection: a request or reply of a
    few bytes must not wait for Nagle's timer. The accepted connection is the one the server
    built ahead of time, and the next one is built once it answered."""
    monkeypatch.setenv(runloop.ENV, loop)
    assert runloop.run(_no_delay_on_both_ends()) == (1, 1, 1)


async def _a_big_put_and_small_gets() -> tuple[bool, bool, bool]:
    """A reckon server and client on the running loop: whether the server's connection reads
    into a buffer of its own (a BufferedProtocol), and whether an 8 MB put (many reads) and
    the small gets around it arrived whole."""
    import numpy as np

    from reckon.pva import Client, Server, SharedPV, nt

    server = Server({"a": SharedPV(nt.NTScalarArray("d"), np.zeros(1))})
    await server.start()
    try:
        async with Client() as client:
            small = len((await client.get("a", timeout=10))["value"]) == 1
            big = np.arange(1_000_000, dtype="f8")
            await client.put("a", big, timeout=30)
            got = (await client.get("a", timeout=30))["value"]
            [conn] = server.context.sessions
            assert conn.sink is not None
            buffered = isinstance(conn.sink.get_protocol(), asyncio.BufferedProtocol)
            return buffered, small, bool(np.array_equal(got, big))
    finally:
        await server.stop()


@pytest.mark.parametrize(("loop", "buffered"), [("1", False), ("0", True)])
def test_a_server_reads_requests_whole_and_in_pieces_on_both_loops(
    monkeypatch: pytest.MonkeyPatch, pva_env: dict[str, str], loop: str, buffered: bool
) -> None:
    """On uvloop a connection takes each read as the bytes object uvloop makes (cheaper per
    small request than a buffer of its own); on asyncio's own loop it reads into the server's
    one buffer (asyncio's plain reads allocate 256 KiB each). Both take requests whole and
    split over many reads."""
    monkeypatch.setenv(runloop.ENV, loop)
    assert runloop.run(_a_big_put_and_small_gets()) == (buffered, True, True)


def test_freeze_heap_leaves_the_startup_heap_out_of_collections() -> None:
    import gc

    gc.unfreeze()
    try:
        runloop.freeze_heap()
        assert gc.get_freeze_count() > 0
    finally:
        gc.unfreeze()
