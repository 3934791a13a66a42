"""``reckon pva ...`` through real subprocesses: serve a file, then get/put/monitor/info/call."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from reckon.pva.cli import format_value, parse_put_args

from .conftest import Child, child_env, run_p4p_client

RECKON = str(Path(sys.executable).parent / "reckon")

SERVE_FILE = """
[pv."cli:temperature"]
type = "d"
value = 21.5
units = "C"

[pv."cli:waveform"]
type = "ai"
value = [1, 2, 3]

[pv."cli:mode"]
enum = ["off", "on"]
value = 1

[pv."cli:table"]
table = [["name", "s"], ["x", "d"]]
value = { name = ["a", "b"], x = [1.0, 2.0] }

[pv."cli:add"]
rpc = "sum"

[pv."cli:fixed"]
type = "i"
value = 7
writable = false
"""


# `reckon pva serve` runs through the installed `reckon` entry point; the client commands run
# as `python -m reckon.pva.cli` (the same typer app, without importing every other layer).
PVA_CLI = [sys.executable, "-m", "reckon.pva.cli"]


def reckon(
    env: dict[str, str], *args: str, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*PVA_CLI, *args], env=child_env(env), capture_output=True, text=True, timeout=timeout
    )


@pytest.fixture
def served(tmp_path: Path, pva_env: dict[str, str]) -> Iterator[Child]:
    spec = tmp_path / "pvs.toml"
    spec.write_text(SERVE_FILE)
    child = Child([RECKON, "pva", "serve", str(spec)], pva_env)
    try:
        line = child.readline(timeout=60)
        assert line.startswith("serving 6 PVs"), line + child.err()
        yield child
    finally:
        child.proc.terminate()
        child.proc.wait(10)


def test_get_put_info_call(served: Child, pva_env: dict[str, str]) -> None:
    r = reckon(pva_env, "get", "cli:temperature", "cli:waveform", "cli:mode")
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[0].startswith("cli:temperature ") and lines[0].endswith(" 21.5")
    assert lines[1].endswith("[1, 2, 3]")
    assert lines[2].endswith("(1) on")

    r = reckon(pva_env, "put", "cli:temperature", "30.25")
    assert r.returncode == 0 and r.stdout.strip().endswith(" 30.25"), r.stderr
    r = reckon(pva_env, "put", "cli:mode", "value.index=0")
    assert r.returncode == 0 and r.stdout.strip().endswith("(0) off"), r.stderr
    r = reckon(pva_env, "put", "cli:fixed", "8")
    assert r.returncode == 1 and "not writable" in r.stderr

    r = reckon(pva_env, "info", "cli:temperature")
    assert r.returncode == 0
    assert 'struct "epics:nt/NTScalar:1.0"' in r.stdout and "double value" in r.stdout
    assert "string units" in r.stdout

    r = reckon(pva_env, "call", "cli:add", "a=1", "b=2.5", "--json")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["value"]["value"] == 3.5

    r = reckon(pva_env, "get", "cli:missing", "-w", "0.5")
    assert r.returncode == 1 and "cli:missing" in r.stderr


def test_monitor_and_p4p_sees_served_file(served: Child, pva_env: dict[str, str]) -> None:
    monitor = Child([*PVA_CLI, "monitor", "cli:temperature", "-n", "2", "--json"], pva_env)
    try:
        first = monitor.read_json(timeout=60)
        assert first["value"]["value"] == 21.5
        out = run_p4p_client(
            "ctx.put('cli:temperature', 40.0)\nemit(plain(ctx.get('cli:table'))['value'])",
            pva_env,
        )
        assert out == [{"name": ["a", "b"], "x": [1.0, 2.0]}]
        second = monitor.read_json(timeout=60)
        assert second["value"]["value"] == 40.0
        assert monitor.proc.wait(30) == 0
    finally:
        monitor.kill()


def test_serve_rejects_a_bad_file(tmp_path: Path, pva_env: dict[str, str]) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text('[pv."x"]\ntype = "q"\nvalue = 1\n')
    r = reckon(pva_env, "serve", str(bad))
    assert r.returncode == 2 and "PV 'x'" in r.stderr


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["1.5"], 1.5),
        (["hello"], "hello"),
        (["1", "2", "3"], [1, 2, 3]),
        (["value.index=1"], {"value": {"index": 1}}),
        (["value=2", "alarm.severity=1"], {"value": 2, "alarm": {"severity": 1}}),
    ],
)
def test_parse_put_args(args: list[str], expected: Any) -> None:
    assert parse_put_args(args) == expected


def test_format_value_alarm_and_tree() -> None:
    v = {"value": 2.0, "alarm": {"severity": 2, "status": 0, "message": "high"}}
    assert format_value("x", v) == "x 2.0 MAJOR high"
    assert format_value("s", {"a": 1, "b": {"c": "t"}}).splitlines() == [
        "s",
        "    a 1",
        "    b",
        '        c "t"',
    ]


def test_p4p_client_reconnects_after_reckon_server_restart(
    tmp_path: Path, pva_env: dict[str, str]
) -> None:
    """kill -9 the served reckon process, start a new one: p4p's monitor carries on."""
    spec = tmp_path / "pvs.toml"
    spec.write_text('[pv."cli:r"]\ntype = "i"\nvalue = 1\n')
    server = Child([RECKON, "pva", "serve", str(spec)], pva_env)
    monitor = Child(
        [
            sys.executable,
            str(Path(__file__).parent / "peers" / "p4p_client.py"),
            "import queue\nq = queue.Queue()\n"
            "sub = ctx.monitor('cli:r', q.put, notify_disconnect=True)\n"
            "while True:\n    v = q.get(timeout=60)\n"
            "    emit(plain(v)['value'] if not isinstance(v, Exception) else type(v).__name__)\n",
        ],
        pva_env,
    )
    try:
        assert server.readline(timeout=60).startswith("serving")
        first = monitor.read_json(timeout=60)
        if first == "Disconnected":  # p4p reports "not yet connected" first
            first = monitor.read_json(timeout=60)
        assert first == 1
        server.kill()
        assert monitor.read_json(timeout=60) == "Disconnected"
        spec.write_text('[pv."cli:r"]\ntype = "i"\nvalue = 2\n')
        server = Child([RECKON, "pva", "serve", str(spec)], pva_env)
        assert server.readline(timeout=60).startswith("serving")
        assert monitor.read_json(timeout=90) == 2
    finally:
        monitor.kill()
        server.kill()
