"""Supervision of child processes with real processes and real signals."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from rtest_gen import rtest_pb2 as pb
from rtest_gen.rtest_reckon import Catalog
from svc_helpers import CATALOG, STOCK, make_deployment, two_services

from reckon.errors import DeploymentError, ServiceCallError
from reckon.service import Deployment, Unit


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie still answers kill(0); look at its state.
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split()[2] != "Z"
    except FileNotFoundError:
        return False


async def _until(cond: object, within: float = 30.0) -> None:
    limit = time.monotonic() + within
    while not cond():  # type: ignore[operator]
        if time.monotonic() > limit:
            raise AssertionError(f"condition not met within {within}s")
        await asyncio.sleep(0.05)


def _write_toml(path: Path, dep: dict[str, object]) -> None:
    def value(v: object) -> str:
        if isinstance(v, dict):
            return "{ " + ", ".join(f"{k} = {value(x)}" for k, x in v.items()) + " }"
        return json.dumps(v)  # JSON scalars and arrays of strings are valid TOML

    lines = ["[unit]"]
    for k, v in dep["unit"].items():  # type: ignore[attr-defined]
        lines.append(f"{k} = {value(v)}")
    for name, table in dep["services"].items():  # type: ignore[attr-defined]
        lines.append(f"[services.{name}]")
        for k, v in table.items():
            lines.append(f"{k} = {value(v)}")
    path.write_text("\n".join(lines) + "\n")


def test_sigterm_stops_the_unit_children_and_temp_dirs(tmp_path: Path) -> None:
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    deploy = tmp_path / "deploy.toml"
    _write_toml(deploy, make_deployment(two_services("process"), tmp_path=tmp_path))
    status = tmp_path / "status.json"
    env = {**os.environ, "TMPDIR": str(tmp)}
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "reckon.cli",
            "svc",
            "run",
            str(deploy),
            "--status-file",
            str(status),
        ],
        env=env,
    )
    try:
        limit = time.monotonic() + 60
        while not status.exists():
            assert proc.poll() is None, "svc run exited early"
            assert time.monotonic() < limit, "the unit did not start"
            time.sleep(0.05)
        info = json.loads(status.read_text())
        pids = [info[n]["pid"] for n in ("catalog", "stock")]
        assert all(_alive(p) for p in pids)
        assert any(tmp.iterdir())  # the unit's temp dirs exist while it runs
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
    assert not any(_alive(p) for p in pids)
    assert list(tmp.iterdir()) == []


async def test_kill_9_restarts_on_failure_and_keeps_the_port(tmp_path: Path) -> None:
    dep = make_deployment(two_services("process"), tmp_path=tmp_path)
    async with Unit(Deployment.from_dict(dep)) as unit:
        child = unit.children["catalog"]
        first = child.proc.pid  # type: ignore[union-attr]
        first_address = unit.addresses["catalog"]
        first_tmp = child.tmp_dir
        assert first_tmp is not None and first_tmp.exists()
        os.kill(first, signal.SIGKILL)
        await _until(lambda: child.restarts == 1 and child.state == "running")
        assert child.exit_codes == [-9]
        assert not first_tmp.exists()  # the dead process's temp dir was removed
        assert child.proc.pid != first  # type: ignore[union-attr]
        # Same address: the client does not change.
        assert unit.addresses["catalog"] == first_address == child.address
        who = await unit.locate(Catalog).Who(pb.Empty(), timeout=20)
        assert who.pid == child.proc.pid  # type: ignore[union-attr]


def _listening(pid: int) -> set[int]:
    import psutil

    return {
        c.laddr.port
        for c in psutil.Process(pid).net_connections("tcp")
        if c.status == psutil.CONN_LISTEN
    }


async def test_children_bind_their_own_ports_and_report_them(tmp_path: Path) -> None:
    """Without ports in the deployment nobody picks one for a child to bind later: each child
    binds port 0 and the unit publishes the port that child's own socket listens on: one port
    for every protocol and every client, reckon's own included, and no other."""
    dep = make_deployment(two_services("process"), tmp_path=tmp_path)
    async with Unit(Deployment.from_dict(dep)) as unit:
        for name, child in unit.children.items():
            address = unit.addresses[name]
            assert address == child.address and address.grpc is not None
            mine = {int(address.grpc.rpartition(":")[2])}
            if address.connect is not None:
                mine.add(int(address.connect.rpartition(":")[2]))
            assert len(mine) == 1
            assert _listening(child.proc.pid) == mine  # type: ignore[union-attr]
        assert (await unit.locate(Catalog, transport="connect").Who(pb.Empty())).pid == (
            unit.children["catalog"].proc.pid  # type: ignore[union-attr]
        )


async def test_a_command_that_never_reports_its_port_fails_saying_how(tmp_path: Path) -> None:
    services = {
        "catalog": {
            **{k: v for k, v in CATALOG.items() if k != "implementation"},
            "placement": "process",
            "command": [sys.executable, "-c", "import time; time.sleep(60)"],
            "start_timeout": 1.0,
        }
    }
    with pytest.raises(DeploymentError, match="RECKON_SVC_PORT_FILE"):
        async with Unit(Deployment.from_dict(make_deployment(services, tmp_path=tmp_path))):
            pass


async def test_restart_never_and_exit_when_every_process_ended(tmp_path: Path) -> None:
    services = {
        "stock": {**STOCK, "placement": "process", "restart": "never"},
        "catalog": {**CATALOG, "placement": "process", "restart": "never"},
    }
    async with Unit(Deployment.from_dict(make_deployment(services, tmp_path=tmp_path))) as unit:
        pids = [c.proc.pid for c in unit.children.values()]  # type: ignore[union-attr]
        os.kill(pids[0], signal.SIGKILL)
        await _until(lambda: next(iter(unit.children.values())).state == "ended")
        waiter = asyncio.ensure_future(unit.wait())
        await asyncio.sleep(0.3)
        assert not waiter.done()  # one process is still active
        os.kill(pids[1], signal.SIGKILL)
        await asyncio.wait_for(waiter, 30)
        assert all(c.restarts == 0 for c in unit.children.values())
        for child in unit.children.values():  # ports and temp dirs are released
            assert child.tmp_dir is None
            with socket.socket() as s:  # (SO_REUSEADDR as servers do: TIME_WAIT remains)
                s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                s.bind(("127.0.0.1", child.port))
                s.listen()


def test_svc_run_exits_when_every_process_has_ended(tmp_path: Path) -> None:
    deploy = tmp_path / "deploy.toml"
    services = {"stock": {**STOCK, "placement": "process", "restart": "never"}}
    _write_toml(deploy, make_deployment(services, tmp_path=tmp_path))
    status = tmp_path / "status.json"
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "reckon.cli",
            "svc",
            "run",
            str(deploy),
            "--status-file",
            str(status),
        ]
    )
    try:
        limit = time.monotonic() + 60
        while not status.exists():
            assert proc.poll() is None and time.monotonic() < limit
            time.sleep(0.05)
        os.kill(json.loads(status.read_text())["stock"]["pid"], signal.SIGKILL)
        # Nothing left to run: the runtime exits by itself, and says the service failed.
        assert proc.wait(timeout=30) == 1
    finally:
        if proc.poll() is None:
            proc.kill()


def test_svc_run_exits_non_zero_after_a_crash_loop(tmp_path: Path) -> None:
    """A service killed over and over (here by its time limit) until the restart policy gives
    up: ``svc run`` stops, exits 1, and names the service and why on stderr and in its log."""
    deploy = tmp_path / "deploy.toml"
    stock = {**STOCK, "placement": "process", "time_limit": 0.5, "max_restarts": 2}
    _write_toml(deploy, make_deployment({"stock": stock}, tmp_path=tmp_path, log="json"))
    run = [sys.executable, "-m", "reckon.cli", "svc", "run", str(deploy)]
    done = subprocess.run(run, capture_output=True, text=True, timeout=120)
    assert done.returncode == 1, done.stderr
    assert "error: service 'stock' failed: ran longer than its time limit of 0.5s" in done.stderr
    warnings = [json.loads(line) for line in done.stderr.splitlines() if line.startswith("{")]
    assert any(
        w.get("level") == "warning" and w.get("service") == "stock" and "failed" in w["event"]
        for w in warnings
    ), done.stderr


async def test_a_killed_service_reopens_its_database(tmp_path: Path) -> None:
    from rtest_gen.rtest_reckon import Stock

    services = {"stock": {**STOCK, "placement": "process"}}
    async with Unit(Deployment.from_dict(make_deployment(services, tmp_path=tmp_path))) as unit:
        stock = unit.locate(Stock)
        assert (await stock.Count(pb.Key(id="a"))).count == 3
        child = unit.children["stock"]
        os.kill(child.proc.pid, signal.SIGKILL)  # type: ignore[union-attr]
        await _until(lambda: child.restarts == 1 and child.state == "running")
        # Migrations are not applied twice (the INSERT would fail on the primary key).
        assert (await stock.Count(pb.Key(id="a"), timeout=20)).count == 3


async def test_time_limit_kills_a_process_that_runs_too_long(tmp_path: Path) -> None:
    services = {"stock": {**STOCK, "placement": "process", "time_limit": 1.0, "restart": "never"}}
    async with Unit(Deployment.from_dict(make_deployment(services, tmp_path=tmp_path))) as unit:
        child = unit.children["stock"]
        await asyncio.wait_for(unit.wait(), 30)
        assert child.kill_reason is not None and "time limit" in child.kill_reason
        assert child.exit_codes == [-9]


async def test_call_limit_kills_a_stuck_child_and_restarts_it(tmp_path: Path) -> None:
    dep = make_deployment(two_services("process", call_limit=0.5), tmp_path=tmp_path)
    async with Unit(Deployment.from_dict(dep)) as unit:
        child = unit.children["catalog"]
        first = child.proc.pid  # type: ignore[union-attr]
        with pytest.raises(ServiceCallError) as info:
            # The handler blocks its event loop: only killing the process ends the call.
            await unit.locate(Catalog).Fail(pb.Failure(code="hang"), timeout=30)
        assert info.value.code == "UNAVAILABLE"
        await _until(lambda: child.restarts == 1 and child.state == "running")
        assert child.proc.pid != first  # type: ignore[union-attr]
        assert child.exit_codes == [-9]


async def test_health_checks_kill_a_frozen_process(tmp_path: Path) -> None:
    dep = make_deployment(two_services("process", health_interval=0.3), tmp_path=tmp_path)
    async with Unit(Deployment.from_dict(dep)) as unit:
        child = unit.children["catalog"]
        first = child.proc.pid  # type: ignore[union-attr]
        os.kill(first, signal.SIGSTOP)  # alive but not answering
        await _until(lambda: child.restarts >= 1 and child.state == "running", within=60)
        assert child.kills[0] == "failed 3 health checks in a row"
        assert (await unit.locate(Catalog).Get(pb.Key(id="a"), timeout=20)).count == 3


def test_children_die_with_a_runtime_killed_by_sigkill(tmp_path: Path, node_modules: Path) -> None:
    deploy = tmp_path / "deploy.toml"
    services = two_services("process")
    services["recs"] = {
        "definition": "rtest_gen.rtest_reckon:Recommender",
        "placement": "process",
        "command": ["node", str(Path(__file__).parent / "node" / "recommender.js")],
        "requires": ["catalog"],
        "env": {"NODE_PATH": str(node_modules)},
    }
    _write_toml(deploy, make_deployment(services, tmp_path=tmp_path))
    status = tmp_path / "status.json"
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    env = {**os.environ, "TMPDIR": str(tmp)}
    run = [sys.executable, "-m", "reckon.cli", "svc", "run", str(deploy)]
    proc = subprocess.Popen([*run, "--status-file", str(status)], env=env)
    try:
        limit = time.monotonic() + 60
        while not status.exists():
            assert proc.poll() is None and time.monotonic() < limit
            time.sleep(0.05)
        pids = [v["pid"] for v in json.loads(status.read_text()).values()]
        assert len(pids) == 3 and all(_alive(p) for p in pids)
        proc.kill()
        proc.wait(timeout=10)
        limit = time.monotonic() + 20
        while any(_alive(p) for p in pids) and time.monotonic() < limit:
            time.sleep(0.05)
        assert not any(_alive(p) for p in pids)
        # Nobody cleaned up after the killed runtime; the next unit to start sweeps its dirs.
        (stale,) = tmp.iterdir()
        assert stale.name.startswith(f"reckon-unit-{proc.pid}-")
        sweep = "from reckon.service.kernel import _sweep_stale_tmp as s; s()"
        subprocess.run([sys.executable, "-c", sweep], env=env, check=True)
        assert list(tmp.iterdir()) == []
    finally:
        if proc.poll() is None:
            proc.kill()


async def test_a_failing_ready_stops_what_had_started(tmp_path: Path) -> None:
    from reckon.errors import DeploymentError, ServiceNotFoundError

    services = two_services("inprocess", implementation="svc_impls:BrokenCatalog")
    services["stock"]["placement"] = "process"
    unit = Unit(Deployment.from_dict(make_deployment(services, tmp_path=tmp_path)))
    with pytest.raises(DeploymentError, match="'catalog' failed in ready\\(\\): RuntimeError"):
        await unit.start()
    stock = unit.children["stock"]
    assert stock.proc is not None and stock.proc.returncode is not None
    with pytest.raises(ServiceNotFoundError, match="not running"):
        unit.locate(Catalog)
