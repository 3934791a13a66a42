"""Fixtures for the pva tests: EPICS env on free loopback ports, p4p peers in child processes.

Every test gets its own ports and its own environment; p4p runs in subprocesses so its global
client and server contexts never outlive (or leak into) a test.
"""

from __future__ import annotations

import json
import os
import queue
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from reckon.pva import runloop
from reckon.pva.config import loopback_environment

PEERS = Path(__file__).parent / "peers"
PYTHON = sys.executable


def epics_env(server_port: int | None = None, udp_port: int | None = None) -> dict[str, str]:
    """The EPICS variables that keep pvAccess on loopback, on the given (or fresh) ports."""
    return {**loopback_environment(server_port, udp_port), "EPICS_PVA_CONN_TMO": "30"}


def child_env(env: dict[str, str]) -> dict[str, str]:
    full = {k: v for k, v in os.environ.items() if not k.startswith("EPICS_")}
    full.update(env)
    full["PYTHONUNBUFFERED"] = "1"
    return full


@pytest.fixture
def pva_env(monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """Fresh EPICS variables for this test, also set in os.environ for in-process reckon."""
    env = epics_env()
    for key in list(os.environ):
        if key.startswith("EPICS_"):
            monkeypatch.delenv(key)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    return env


class Child:
    """A child process speaking JSON lines on stdout; stdin is for commands."""

    def __init__(self, argv: list[str], env: dict[str, str]) -> None:
        self.proc = subprocess.Popen(
            argv,
            env=child_env(env),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.lines: queue.Queue[str | None] = queue.Queue()
        self.stderr: list[str] = []
        threading.Thread(target=self._pump, daemon=True).start()
        threading.Thread(target=self._pump_err, daemon=True).start()

    def _pump(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.put(line.rstrip("\n"))
        self.lines.put(None)

    def _pump_err(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self.stderr.append(line)

    def readline(self, timeout: float = 30.0) -> str:
        try:
            line = self.lines.get(timeout=timeout)
        except queue.Empty:
            raise TimeoutError(
                f"child gave no output in {timeout}s; stderr: {self.err()}"
            ) from None
        if line is None:
            raise EOFError(f"child exited ({self.proc.poll()}); stderr: {self.err()}")
        return line

    def read_json(self, timeout: float = 30.0) -> Any:
        while True:
            line = self.readline(timeout)
            try:
                obj = json.loads(line)
            except ValueError:
                continue
            if isinstance(obj, dict) and "error" in obj and "message" in obj:
                raise AssertionError(f"child failed: {obj}; stderr: {self.err()}")
            return obj

    def send(self, obj: Any) -> None:
        assert self.proc.stdin is not None
        text = obj if isinstance(obj, str) else json.dumps(obj)
        self.proc.stdin.write(text + "\n")
        self.proc.stdin.flush()

    def err(self) -> str:
        return "".join(self.stderr[-30:])

    def stop(self) -> None:
        if self.proc.poll() is None:
            try:
                self.send({"op": "quit"})
                self.proc.wait(timeout=5)
            except Exception:
                self.proc.kill()
                self.proc.wait(timeout=5)

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=5)


def start_p4p_server(spec: list[dict[str, Any]], env: dict[str, str]) -> Child:
    child = Child([PYTHON, str(PEERS / "p4p_server.py"), json.dumps(spec)], env)
    line = child.readline(timeout=60)
    assert line == "ready", f"p4p server did not start: {line!r} {child.err()}"
    return child


def start_p4p_client(code: str, env: dict[str, str]) -> Child:
    return Child([PYTHON, str(PEERS / "p4p_client.py"), code], env)


def start_pvapy(code: str, env: dict[str, str], tcp_port: int | None = None) -> Child:
    """pvapy (pvAccessCPP) running ``code`` in a child (see peers/pvapy_peer.py). Its client
    searches only the first address of a list on one host, so it is pointed at a server's
    ``tcp_port`` directly, as a name server."""
    pytest.importorskip("pvaccess")
    if tcp_port is not None:
        env = {**env, "EPICS_PVA_NAME_SERVERS": f"127.0.0.1:{tcp_port}"}
    return Child([PYTHON, str(PEERS / "pvapy_peer.py"), code], env)


def run_p4p_client(code: str, env: dict[str, str], timeout: float = 60.0) -> list[Any]:
    """Run a snippet with p4p's client; return the JSON objects it emitted."""
    proc = subprocess.run(
        [PYTHON, str(PEERS / "p4p_client.py"), code],
        env=child_env(env),
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    out = []
    for line in proc.stdout.splitlines():
        try:
            out.append(json.loads(line))
        except ValueError:
            continue
    for obj in out:
        if isinstance(obj, dict) and "error" in obj and "message" in obj:
            raise AssertionError(f"p4p client failed: {obj}\nstderr: {proc.stderr[-2000:]}")
    return out


@pytest.fixture
def p4p_server(pva_env: dict[str, str]) -> Iterator[Any]:
    """Factory: start a p4p server child with a spec; all are stopped at teardown."""
    children: list[Child] = []

    def start(spec: list[dict[str, Any]]) -> Child:
        child = start_p4p_server(spec, pva_env)
        children.append(child)
        return child

    yield start
    for child in children:
        child.stop()


class ServerThread:
    """A reckon Server on its own event loop in a thread (so blocking p4p children can talk
    to it while the test thread waits on them)."""

    def __init__(self, pvs: dict[str, Any] | None = None, **kw: Any) -> None:
        import asyncio

        from reckon.pva import Server, ServerConfig

        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        config = kw.pop("config", None) or ServerConfig.from_env()

        async def make() -> Any:
            server = Server(pvs, config=config, **kw)
            await server.start()
            return server

        self.server = self.call(make())

    def call(self, coro: Any, timeout: float = 30) -> Any:
        import asyncio

        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def run(self, fn: Any, *args: Any) -> Any:
        """Run a plain function on the server's loop and return its result."""

        async def wrap() -> Any:
            return fn(*args)

        return self.call(wrap())

    def stop(self) -> None:
        if self.loop.is_closed():
            return
        try:
            self.call(self.server.stop())
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self.thread.join(10)
            self.loop.close()


@pytest.fixture
def reckon_server(pva_env: dict[str, str]) -> Iterator[Any]:
    """Factory: start a reckon Server (in a thread) publishing the given PVs."""
    started: list[ServerThread] = []

    def start(pvs: dict[str, Any] | None = None, **kw: Any) -> ServerThread:
        st = ServerThread(pvs, **kw)
        started.append(st)
        return st

    yield start
    for st in started:
        st.stop()


if runloop.loop_factory() is not None:
    # the tests run on uvloop, as `reckon pva serve` does, when it is importable;
    # RECKON_PVA_UVLOOP=0 runs them on asyncio's own loop (the server and client must be
    # correct on both)
    def pytest_asyncio_loop_factories(config: Any, item: Any) -> dict[str, Any]:
        factory = runloop.loop_factory()
        assert factory is not None
        return {"uvloop": factory}
