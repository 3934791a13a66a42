"""``reckon serve`` as a real child process."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from reckon.core import CachingLevel, Engine, LocalStore, RequestId
from reckon.observe import Client

RECKON = str(Path(sys.executable).with_name("reckon"))


def _start(*args: str) -> tuple[subprocess.Popen[str], list[str]]:
    env = dict(os.environ)
    env.pop("RECKON_OBSERVE", None)
    env.pop("RECKON_OBSERVE_TOKEN", None)
    proc = subprocess.Popen(
        [RECKON, "serve", "--port", "0", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
    )
    lines: list[str] = []
    assert proc.stdout is not None
    while True:
        line = proc.stdout.readline()
        assert line, f"reckon serve exited early: {''.join(lines)}"
        lines.append(line)
        if "Ctrl-C stops" in line:
            return proc, lines


def _stop(proc: subprocess.Popen[str]) -> int:
    proc.send_signal(signal.SIGTERM)
    try:
        return proc.wait(30)
    finally:
        if proc.poll() is None:
            proc.kill()


def test_serve_runs_a_demo_workload() -> None:
    proc, lines = _start("--workers", "2", "--require-token")
    try:
        url = lines[0].split("serving ", 1)[1].strip()
        assert "?token=" in url
        assert any(line.strip().startswith("token ") for line in lines)
        with Client(url) as client:
            deadline = time.monotonic() + 30
            while not client.tasks(title="report") and time.monotonic() < deadline:
                time.sleep(0.1)
            assert client.tasks(title="report")
            assert client.status()["engine"]["store"] is not None
    finally:
        assert _stop(proc) == 0


def test_serve_a_cache_directory(tmp_path: Path) -> None:
    with Engine(store=LocalStore(tmp_path, sync=True)) as eng:
        eng.get(RequestId("cli", 1), CachingLevel.FULL, lambda: "kept", title="kept")
        eng.flush()
    proc, lines = _start("--cache-dir", str(tmp_path))
    try:
        url = lines[0].split("serving ", 1)[1].strip()
        with Client(url) as client:
            status = client.status()
            assert status["engine"]["store"]["entries"] == 1
            assert client.tasks() == []  # no demo workload with a cache directory
    finally:
        assert _stop(proc) == 0


def test_python_m_reckon_observe_runs_a_script_with_a_server(tmp_path: Path) -> None:
    script = tmp_path / "job.py"
    script.write_text(
        "import sys\n"
        "from reckon.core import CachingLevel, RequestId, default_engine\n"
        "engine = default_engine()\n"
        "engine.get(RequestId('job'), CachingLevel.MEMORY, lambda: 1, title='from script')\n"
        "print('computed', sys.argv[1:], flush=True)\n"
        "sys.stdin.readline()\n"
    )
    env = dict(os.environ, RECKON_OBSERVE="127.0.0.1:0", RECKON_CACHE_DIR=str(tmp_path / "cache"))
    proc = subprocess.Popen(
        [sys.executable, "-m", "reckon.observe", str(script), "--flag"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        assert proc.stderr is not None and proc.stdout is not None and proc.stdin is not None
        banner = proc.stderr.readline()
        assert banner.startswith("reckon observe: serving http://127.0.0.1:"), banner
        assert proc.stdout.readline().strip() == "computed ['--flag']"
        with Client(banner.split("serving ", 1)[1].strip()) as client:
            assert [t["title"] for t in client.tasks()] == ["from script"]
        proc.stdin.write("\n")
        proc.stdin.flush()
        assert proc.wait(30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()


def test_serve_on_a_busy_port_is_a_clear_error() -> None:
    import socket

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        done = subprocess.run(
            [RECKON, "serve", "--port", str(port)], capture_output=True, text=True, timeout=60
        )
    assert done.returncode == 1
    assert "address already in use" in done.stderr and "Traceback" not in done.stderr


def test_demo_workload_produces_every_kind_of_outcome(tmp_path: Path) -> None:
    from reckon.observe.workload import DemoWorkload

    with Engine(store=LocalStore(tmp_path), name="demo") as eng:
        work = DemoWorkload(eng, workers=2, speed=20.0, seed=1)
        work.clear_every = 10.0  # at speed 20: every half second
        work.start()
        try:
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                counters = eng.stats()["counters"]
                if all(counters[k] for k in ("memory_hit", "store_hit", "computed")):
                    break
                time.sleep(0.1)
        finally:
            work.stop()
        assert all(counters[k] for k in ("memory_hit", "store_hit", "computed")), counters
        assert any(r.parent is not None for r in eng.introspector.history())
