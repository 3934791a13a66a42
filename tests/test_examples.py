"""Every example of examples/ runs as its docstring says (the vinyl shop has its own tests in
tests/service/test_vinyl.py)."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
RECKON = str(Path(sys.executable).with_name("reckon"))


def run(*args: str, env: dict[str, str] | None = None) -> str:
    done = subprocess.run(
        [sys.executable, *args], capture_output=True, text=True, timeout=300, env=env, check=False
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def test_core_engine_computes_once_then_reads_the_store(tmp_path: Path) -> None:
    first = run(str(EXAMPLES / "core_engine.py"), str(tmp_path))
    assert first.startswith("24 requests, 3 computations")
    second = run(str(EXAMPLES / "core_engine.py"), str(tmp_path))
    assert second.startswith("24 requests, 0 computations")  # a new process: from the store


def test_memo_pandas_notebook(tmp_path: Path) -> None:
    pytest.importorskip("pandas")
    env = dict(os.environ, RECKON_CACHE_DIR=str(tmp_path / "cache"))
    first = run(str(EXAMPLES / "memo_pandas.py"), env=env)
    assert "warmest smoothed day: ('north'," in first
    second = run(str(EXAMPLES / "memo_pandas.py"), env=env)
    # Same results; the second run read them from the cache (what `reckon cache ls` lists).
    assert first.splitlines()[1:] == second.splitlines()[1:]
    listing = subprocess.run(
        [RECKON, "cache", "ls", "--dir", str(tmp_path / "cache")],
        capture_output=True,
        text=True,
        timeout=120,
        env=dict(env, COLUMNS="200"),
        check=True,
    ).stdout
    assert "daily_profile" in listing and "warmest_day" in listing


def test_pva_soft_ioc(pva_ready_env: dict[str, str]) -> None:
    from reckon.errors import PvaRemoteError
    from reckon.pva import Client, nt

    ioc = subprocess.Popen(
        [sys.executable, str(EXAMPLES / "pva_ioc.py")],
        env=pva_ready_env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert ioc.stdout is not None
        assert ioc.stdout.readline().startswith("serving example:mode, example:ramp")

        async def session() -> None:
            async with Client(timeout=30) as client:
                await client.put("example:setpoint", 42.0)
                assert (await client.get("example:readback"))["value"] == 42.0
                with pytest.raises(PvaRemoteError, match="outside 0-100"):
                    await client.put("example:setpoint", 500.0)
                with pytest.raises(PvaRemoteError, match="not writable"):
                    await client.put("example:readback", 1.0)
                ramp = await client.rpc(
                    "example:ramp", nt.uri("example:ramp", {"start": 0, "stop": 10, "steps": 5})
                )
                assert list(ramp["value"]) == [0.0, 2.5, 5.0, 7.5, 10.0]

        asyncio.run(session())
        put = subprocess.run(
            [RECKON, "pva", "put", "example:mode", "auto"],
            env=pva_ready_env,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert put.returncode == 0 and put.stdout.strip().endswith("(1) auto"), put.stderr
    finally:
        ioc.terminate()
        assert ioc.wait(30) == 0  # SIGTERM stops it cleanly


@pytest.fixture
def pva_ready_env(monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """EPICS on loopback, fresh ports, for this test and the processes it starts."""
    from reckon.pva.config import loopback_environment

    env = loopback_environment()
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    return dict(os.environ)
