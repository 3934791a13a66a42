"""``reckon pva`` as a user meets it: serve-file mistakes named by key, an enum put by choice
name, ``--port``/``--interface``, and waits that end at their timeout with a message."""

from __future__ import annotations

import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from reckon.errors import ConfigurationError
from reckon.pva.cli import load_spec

from .conftest import Child, child_env

RECKON = str(Path(sys.executable).parent / "reckon")

SERVE_FILE = """
[pv."usage:mode"]
enum = ["off", "on", "standby"]
value = "on"

[pv."usage:x"]
type = "d"
value = 1.5
"""


def reckon(
    env: dict[str, str], *args: str, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [RECKON, "pva", *args], env=child_env(env), capture_output=True, text=True, timeout=timeout
    )


@pytest.fixture
def served(tmp_path: Path, pva_env: dict[str, str]) -> Iterator[tuple[Child, int]]:
    spec = tmp_path / "pvs.toml"
    spec.write_text(SERVE_FILE)
    # --port 0 (any free port) and --interface override the environment's EPICS_PVAS_* values.
    child = Child(
        [RECKON, "pva", "serve", str(spec), "--port", "0", "--interface", "127.0.0.1"], pva_env
    )
    try:
        line = child.readline(timeout=60)
        match = re.match(r"serving 2 PVs on TCP port (\d+) ", line)
        assert match, line + child.err()
        yield child, int(match.group(1))
    finally:
        child.proc.terminate()
        child.proc.wait(10)


def test_port_and_interface_options(served: tuple[Child, int], pva_env: dict[str, str]) -> None:
    _, port = served
    assert port != int(pva_env["EPICS_PVAS_SERVER_PORT"])  # the option, not the environment
    r = reckon(pva_env, "get", "usage:x")
    assert r.returncode == 0 and r.stdout.strip().endswith(" 1.5"), r.stderr


def test_enum_put_by_choice_name(served: tuple[Child, int], pva_env: dict[str, str]) -> None:
    r = reckon(pva_env, "get", "usage:mode")
    assert r.stdout.strip().endswith("(1) on"), r.stderr  # the serve file named the choice
    r = reckon(pva_env, "put", "usage:mode", "standby")
    assert r.returncode == 0 and r.stdout.strip().endswith("(2) standby"), r.stderr
    r = reckon(pva_env, "put", "usage:mode", "sideways")
    assert r.returncode == 2
    assert r.stderr.strip().splitlines() == [
        "reckon: error: usage:mode: 'sideways' is not one of its choices ['off', 'on', 'standby']"
    ]


@pytest.mark.parametrize("command", ["get", "info", "monitor"])
def test_waits_end_at_their_timeout(command: str, pva_env: dict[str, str]) -> None:
    """Nobody serves the PV: the command says so and exits 1 after -w, never hangs."""
    started = time.monotonic()
    r = reckon(pva_env, command, "-w", "1", "usage:nobody", timeout=60)
    assert r.returncode == 1, r.stdout + r.stderr
    assert "usage:nobody" in r.stderr and "within 1.0s" in r.stderr
    assert "Traceback" not in r.stderr
    assert time.monotonic() - started < 45  # the 1 s wait plus interpreter start on a busy box


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('[pv."a"]\nvalu = 1\n', "[pv.\"a\"]: unknown key 'valu'; did you mean 'value'?"),
        ('[pv."a"]\n', '[pv."a"]: empty table'),
        ("pv = {}\n", "no PVs to serve"),
        ("", "no PVs to serve"),
        ('[pv."a"]\ntype = 3\n', '[pv."a"]: type must be a string, not int 3'),
        ('[pv."a"]\ntype = "d"\nwritable = "no"\n', "writable must be a boolean"),
        ('[pv."a"]\nenum = ["x", "y"]\nvalue = "z"\n', "value 'z' is not one of enum"),
        ('[pv."a"]\nenum = ["x"]\nvalue = 3\n', "a choice name or an index below 1"),
        ('[pv."a"]\ntype = "d"\nrpc = "sum"\n', "type and rpc exclude each other"),
        ('[pvs."a"]\ntype = "d"\n', "unknown key 'pvs'; did you mean 'pv'?"),
        ('[engine]\nstat = "x"\n[pv."a"]\ntype = "d"\n', "[engine]: unknown key 'stat'"),
        ("pv = 3\n", "pv must be a table, not int 3"),
    ],
)
def test_serve_file_mistakes_name_the_key(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "pvs.toml"
    path.write_text(text)
    with pytest.raises(ConfigurationError) as info:
        load_spec(path)
    assert message in str(info.value)
    assert str(path) in str(info.value)


def test_serve_file_mistake_is_one_line_and_exit_2(tmp_path: Path, pva_env: dict[str, str]) -> None:
    path = tmp_path / "pvs.toml"
    path.write_text('[pv."a"]\nvalu = 1\n')
    r = reckon(pva_env, "serve", str(path))
    assert r.returncode == 2
    (line,) = r.stderr.strip().splitlines()
    assert line.startswith("reckon: error: ") and "unknown key 'valu'" in line


def test_serve_file_with_engine_stats_only_is_valid(tmp_path: Path) -> None:
    path = tmp_path / "pvs.toml"
    path.write_text('[engine]\nstats = "reckon:stats"\n')
    assert load_spec(path)["engine"] == {"stats": "reckon:stats"}


def test_serve_without_a_file_needs_share(pva_env: dict[str, str]) -> None:
    r = reckon(pva_env, "serve")
    assert r.returncode == 2
    (line,) = r.stderr.strip().splitlines()
    assert line.startswith("reckon: error: ") and "--share" in line
