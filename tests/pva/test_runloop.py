"""Processes reckon starts run on uvloop when it is importable; RECKON_PVA_UVLOOP=0 turns it off."""

from __future__ import annotations

import asyncio
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
