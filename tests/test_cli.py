"""The ``reckon`` command as a user meets it: every ``--help`` reads cleanly, ``--version``, and a
user's mistake is one line with exit status 2 (usage) or 1 (failure), never a traceback, unless
``-v`` or ``RECKON_DEBUG=1`` asks for one."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

import reckon
from reckon.cli import LAYERS, app, load_command

RECKON = str(Path(sys.executable).with_name("reckon"))


def _paths(path: list[str], command: Any) -> Iterator[list[str]]:
    yield path
    for name, sub in (getattr(command, "commands", None) or {}).items():
        if not sub.hidden:
            yield from _paths([*path, name], sub)


def every_command() -> list[list[str]]:
    out: list[list[str]] = [[]]
    for name in LAYERS:
        out.extend(_paths([name], load_command(name)))
    return out


COMMANDS = every_command()


def test_every_layer_and_subcommand_is_listed() -> None:
    names = {" ".join(p) for p in COMMANDS}
    assert {"cache ls", "serve", "shell", "top", "pva get", "pva serve", "svc gen", "demo"} <= names


@pytest.mark.parametrize("path", COMMANDS, ids=lambda p: " ".join(p) or "reckon")
def test_help_is_clean(path: list[str]) -> None:
    result = CliRunner().invoke(app, [*path, "--help"], prog_name="reckon", terminal_width=100)
    assert result.exit_code == 0, result.output
    text = result.output
    assert text.startswith(f"Usage: reckon {' '.join(path)}".replace("  ", " "))
    for noise in ("``", "<bool>", "Traceback", "\x1b["):
        assert noise not in text, f"{noise!r} in the help of reckon {' '.join(path)}:\n{text}"
    usage = text.splitlines()[0]
    # An argument's placeholder is an upper-case word (NAME, FILE), never a Python-ish {name}.
    for placeholder in re.findall(r"[{\[]([^}\]]*)[}\]]", usage):
        assert placeholder == placeholder.upper(), usage


def run(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    full = {k: v for k, v in os.environ.items() if k != "RECKON_DEBUG"}
    full.update(env, COLUMNS="100")
    return subprocess.run(
        [RECKON, *args], capture_output=True, text=True, timeout=120, env=full, check=False
    )


def test_version() -> None:
    r = run("--version")
    assert r.returncode == 0
    assert r.stdout.strip() == f"reckon-toolkit {reckon.__version__}"


def test_no_arguments_prints_the_commands() -> None:
    r = run()
    assert "cache" in r.stdout + r.stderr and "pva" in r.stdout + r.stderr


@pytest.mark.parametrize(
    ("args", "code", "expected"),
    [
        (
            ["svc", "gen", "nope.proto", "-o", "x"],
            2,
            "reckon: error: nope.proto: no such .proto file",
        ),
        (["pva", "serve", "nope.toml"], 2, "reckon: error: cannot read nope.toml"),
        (["nosuchcommand"], 2, "No such command 'nosuchcommand'"),
        (["pv", "get", "x"], 2, "No such command 'pv'. Did you mean 'pva'?"),
        (["pva", "get"], 2, "Missing argument"),
        (["demo", "--act", "nope"], 2, "no act 'nope'"),
        (["pva", "get", "-r", "field((", "x"], 2, "cannot parse pvRequest 'field(('"),
        (["pva", "monitor", "-w", "0", "x"], 2, "give a positive number of seconds"),
        (["svc", "docs", "nope_pb2", "-o", "x.md"], 2, "cannot import nope_pb2"),
        (["svc", "check", "nope.toml"], 2, "nope.toml: no such deployment file"),
        (["serve", "--port", "99999"], 2, "port 99999 is not a TCP port"),
        (["shell", "nonsense://x"], 2, "'nonsense://x' is not a server address"),
        (["cache", "prune", "--max-size", "12XB"], 2, "--max-size='12XB' is not a size"),
    ],
)
def test_user_mistakes_are_one_line(
    args: list[str], code: int, expected: str, tmp_path: Path
) -> None:
    r = subprocess.run(
        [RECKON, *args],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
        env={k: v for k, v in os.environ.items() if k != "RECKON_DEBUG"},
        check=False,
    )
    assert r.returncode == code, r.stdout + r.stderr
    assert expected in r.stderr
    assert "Traceback" not in r.stderr and "╭" not in r.stderr


def test_svc_gen_of_a_bad_proto_is_one_line(tmp_path: Path) -> None:
    (tmp_path / "bad.proto").write_text('syntax = "proto3";\nmessage {\n')
    r = subprocess.run(
        [RECKON, "svc", "gen", "bad.proto", "-o", "out"],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
        check=False,
    )
    assert r.returncode == 2
    assert "Traceback" not in r.stderr
    assert r.stderr.strip().splitlines()[-1] == "reckon: error: protoc failed (exit 1) on bad.proto"


@pytest.mark.parametrize("how", ["-v", "RECKON_DEBUG"])
def test_traceback_on_request(how: str, tmp_path: Path) -> None:
    args = ["svc", "gen", "nope.proto", "-o", "x"]
    r = run("-v", *args) if how == "-v" else run(*args, RECKON_DEBUG="1")
    assert r.returncode == 1  # the exception itself ends the process
    assert "Traceback" in r.stderr and "ConfigurationError" in r.stderr


def test_stand_in_commands_import_nothing() -> None:
    """Listing the commands does not import the layers (the base install has not got them)."""
    code = (
        "import sys\n"
        "from typer.testing import CliRunner\n"
        "from reckon.cli import app\n"
        "r = CliRunner().invoke(app, ['--help'])\n"
        "assert r.exit_code == 0, r.output\n"
        "loaded = [m for m in ('reckon.pva', 'reckon.service', 'reckon.observe', 'numpy', 'grpc')"
        " if m in sys.modules]\n"
        "assert not loaded, loaded\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)


def test_top_of_an_unreachable_server_is_one_line_on_an_untouched_terminal() -> None:
    import socket

    with socket.socket() as held:  # a port that is bound and never listens: nobody answers
        held.bind(("127.0.0.1", 0))
        port = held.getsockname()[1]
        r = run("top", f"http://127.0.0.1:{port}/", TERM="xterm-256color")
    assert r.returncode == 1
    assert r.stderr.startswith("reckon top: cannot reach the reckon observe server")
    assert "\x1b" not in r.stdout + r.stderr  # the screen was never taken over
