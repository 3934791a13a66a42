"""A real redis-server the share tests can kill and restart on the same port, and reckon
instances (`reckon pva serve FILE --share URL`) as separate processes."""

from __future__ import annotations

import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import redis
from _redis import start_redis

from reckon.pva.config import loopback_environment

from .conftest import Child

PVA_CLI = [sys.executable, "-m", "reckon.pva.cli"]


class RedisProcess:
    """Debian's redis-server on a loopback port, persisting nothing (so a restart is empty)."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        # The first start takes a port of its own (the server answering must be this process);
        # restarts come back on the same port.
        self.proc, url = start_redis(workdir)
        self.port = int(url.rsplit(":", 1)[1].split("/")[0])

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        binary = shutil.which("redis-server") or "/usr/bin/redis-server"
        argv = [binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", ""]
        argv += ["--appendonly", "no", "--dir", str(self.workdir)]
        self.proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        client = redis.Redis.from_url(self.url, socket_timeout=2)
        deadline = time.monotonic() + 30
        while True:
            try:
                client.ping()
                break
            except redis.ConnectionError:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"redis-server did not start on {self.port}") from None
                time.sleep(0.05)
        client.close()

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)

    def freeze(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGSTOP)

    def thaw(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGCONT)

    def client(self) -> redis.Redis:
        return redis.Redis.from_url(self.url, socket_timeout=5)


class Instance:
    """One `reckon pva serve [FILE] --share URL` process and the environment its clients use
    (without FILE it serves what the deployment already shares)."""

    def __init__(self, spec: Path | None, share: str) -> None:
        env = {**loopback_environment(), "EPICS_PVA_CONN_TMO": "30"}
        files = [str(spec)] if spec is not None else []
        self.child = Child([*PVA_CLI, "serve", *files, "--share", share], env)
        line = self.child.readline(timeout=60)
        assert line.startswith("serving"), line + self.child.err()
        # "serving N PVs on TCP port P (UDP search port U): ..."
        words = line.replace("(", " ").replace(")", " ").replace(":", " ").split()
        self.tcp_port = int(words[words.index("TCP") + 2])
        self.udp_port = int(words[words.index("UDP") + 3])
        ident = self.child.readline(timeout=10).split()  # "instance GUID on HOST, shared ..."
        assert ident[0] == "instance", ident
        self.guid, self.host = ident[1], ident[3].rstrip(",")
        #: what a client of this instance (p4p, pvapy, reckon) runs with
        self.env = {
            **loopback_environment(self.tcp_port, self.udp_port),
            "EPICS_PVA_NAME_SERVERS": f"127.0.0.1:{self.tcp_port}",
            "EPICS_PVA_CONN_TMO": "30",
        }

    def kill(self) -> None:
        self.child.kill()

    def stop(self) -> None:
        if self.child.proc.poll() is None:
            self.child.proc.terminate()
            try:
                self.child.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.child.kill()
