"""Starting a real redis-server for the tests: a free loopback port, nothing persisted.

At the top of ``tests/`` (on sys.path through its conftest) so the store tests and the pvAccess
sharing tests start Redis the same way.

redis-server cannot be handed a socket, so the port is chosen before it starts and another
process may take it in between. The server is therefore accepted only once the one answering on
the port is the process started here (its pid, from INFO); otherwise it starts again on a new
port.
"""

from __future__ import annotations

import shutil
import subprocess
import time
from pathlib import Path

import redis

from reckon._net import free_port


def start_redis(workdir: Path) -> tuple[subprocess.Popen[bytes], str]:
    """Start redis-server on a free port; return it and its URL once it answers."""
    for _ in range(5):
        started = start_redis_on(workdir, free_port())
        if started is not None:
            return started
    raise RuntimeError("redis-server could not get a port of its own in 5 tries")


def start_redis_on(workdir: Path, port: int) -> tuple[subprocess.Popen[bytes], str] | None:
    """Start redis-server on ``port``; None when it could not bind it (it was taken)."""
    binary = shutil.which("redis-server") or "/usr/bin/redis-server"
    proc = subprocess.Popen(
        [
            binary,
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(workdir),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"redis://127.0.0.1:{port}/0"
    client = redis.Redis.from_url(url)
    deadline = time.monotonic() + 30
    try:
        while True:
            if proc.poll() is not None:
                return None  # it exited: most likely the port was taken
            try:
                if int(client.info("server")["process_id"]) == proc.pid:
                    return proc, url
                proc.kill()  # another process's server answers on this port
                proc.wait()
                return None
            except redis.ConnectionError:
                if time.monotonic() > deadline:
                    proc.kill()
                    raise RuntimeError(f"redis-server did not start on port {port}") from None
                time.sleep(0.05)
    finally:
        client.close()
