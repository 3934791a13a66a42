"""Child processes of a unit: start, probe, restart, kill, and clean up after them.

A child is either a Python service (``python -m reckon.service.child``, which rebuilds the same
unit with that one service in-process) or any command that serves the .proto over gRPC on the
port it is given (``{port}`` in its arguments, ``RECKON_SVC_PORT`` in its environment). The
runtime's timing pulse calls :meth:`ChildProcess.tick`: it notices deaths, removes the dead
process's temp dir, applies the restart policy, runs health checks, and kills a process that
overran its time limit. Children get PR_SET_PDEATHSIG so they die with a runtime killed by -9.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import json
import os
import shutil
import signal
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import grpc.aio

from reckon.errors import DeploymentError
from reckon.service.deploy import Planned
from reckon.service.logs import ServiceLogger
from reckon.service.tls import Tls


@dataclass
class Address:
    """Where a service answers: ``grpc`` is ``host:port``, ``connect`` a base URL or None."""

    grpc: str | None
    connect: str | None = None

    def to_json(self) -> dict[str, str | None]:
        return {"grpc": self.grpc, "connect": self.connect}


def die_with_parent(parent_pid: int | None) -> None:
    """Ask Linux to SIGKILL this process when the runtime that started it dies (even by -9).

    Set by the child itself (not in a preexec_fn: forking a process that runs gRPC threads and
    then running Python before exec can abort), so a tiny shim does it for non-Python commands.
    """
    with contextlib.suppress(Exception):
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    if parent_pid is not None and os.getppid() != parent_pid:
        os._exit(1)  # the runtime died before we could ask


_SHIM = (  # die_with_parent, then exec the command (python -S: no site, fast start)
    "import ctypes,os,sys\n"
    "try: ctypes.CDLL('libc.so.6').prctl(1, 9)\n"
    "except Exception: pass\n"
    "if os.getppid() != int(os.environ['RECKON_SVC_PARENT_PID']): os._exit(1)\n"
    "os.execvp(sys.argv[1], sys.argv[1:])\n"
)


def open_channel(address: str, tls: Tls | None, options: Any = None) -> grpc.aio.Channel:
    """A gRPC channel to ``address``: TLS checked against ``tls.ca`` when given."""
    if tls is None:
        return grpc.aio.insecure_channel(address, options=options)
    return grpc.aio.secure_channel(address, tls.channel_credentials(), options=options)


async def health_check(
    address: str,
    timeout: float = 2.0,  # noqa: ASYNC109
    tls: Tls | None = None,
) -> bool:
    """True when ``address`` answers gRPC health (UNIMPLEMENTED counts: it answered)."""
    async with open_channel(address, tls) as channel:
        check = channel.unary_unary("/grpc.health.v1.Health/Check", None, None)
        try:
            await check(b"", timeout=timeout)
        except grpc.aio.AioRpcError as exc:
            return bool(exc.code() == grpc.StatusCode.UNIMPLEMENTED)
        return True


async def wait_healthy(name: str, address: str, within: float, tls: Tls | None = None) -> None:
    """Until ``address`` answers health checks; DeploymentError naming ``name`` after timeout."""
    limit = time.monotonic() + within
    while not await health_check(address, timeout=min(1.0, max(within, 0.1)), tls=tls):
        if time.monotonic() > limit:
            raise DeploymentError(
                f"service {name!r} at {address} did not answer gRPC health checks "
                f"within {within}s; is it running?"
            )
        await asyncio.sleep(0.1)


PORT_FILE = "port.json"


def read_port_report(path: Path) -> dict[str, int] | None:
    """What a child wrote to ``RECKON_SVC_PORT_FILE`` once it listens: a JSON object with
    ``port`` (its gRPC port) and, when it serves one, ``connect_port``; None until written.

    Children write it to a temporary name and rename it, so a file that exists is whole.
    """
    try:
        raw = json.loads(path.read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return None
    if not isinstance(raw, dict) or not isinstance(raw.get("port"), int) or raw["port"] <= 0:
        return None
    out = {"port": int(raw["port"])}
    if isinstance(raw.get("connect_port"), int) and raw["connect_port"] > 0:
        out["connect_port"] = int(raw["connect_port"])
    return out


def write_port_report(path: str, port: int, connect_port: int | None = None) -> None:
    """The child's side of :func:`read_port_report` (atomic: temporary file, then rename)."""
    body: dict[str, int] = {"port": port}
    if connect_port:
        body["connect_port"] = connect_port
    tmp = f"{path}.tmp"
    with open(tmp, "w") as f:
        json.dump(body, f)
    os.replace(tmp, path)


class ChildProcess:
    """One supervised service process.

    Without a port in the deployment the child binds port 0 itself and reports the port it got
    in the file named by ``RECKON_SVC_PORT_FILE``: nobody picks a port for another process to
    bind later (another program could take it in between). Restarts rebind the reported port,
    so dependents keep their address.
    """

    def __init__(
        self,
        planned: Planned,
        *,
        unit_env: dict[str, str],
        secret: str = "{}",
        addresses: Callable[[], dict[str, Address]],
        port: int,
        connect_port: int | None,
        log: ServiceLogger,
        tmp_root: Path,
        on_change: Callable[[], None],
        tls: Tls | None = None,
    ) -> None:
        self.planned = planned
        self.spec = planned.spec
        self.name = planned.spec.name
        #: The gRPC port; 0 until the child reports the one it bound.
        self.port = port
        #: The port for every protocol (None: not served; 0 until reported).
        self.connect_port = connect_port
        self.tls = tls
        self._unit_env = unit_env
        self._secret = secret
        self._addresses = addresses
        self._log = log
        self._tmp_root = tmp_root
        self._on_change = on_change
        self.proc: asyncio.subprocess.Process | None = None
        self.tmp_dir: Path | None = None
        self.state = "new"  # new, starting, running, restarting, ended
        self.restarts = 0
        self.exit_codes: list[int] = []
        self.pids: list[int] = []
        self.started_at = 0.0
        self._health_due = 0.0
        self._health_failures = 0
        self._health_task: asyncio.Task[None] | None = None
        self._restart_task: asyncio.Task[None] | None = None
        self.kill_reason: str | None = None
        #: Why the supervisor killed this service's processes, oldest first.
        self.kills: list[str] = []
        #: Why this service ended for good when it ended by failing (None: still up, or clean).
        self.failure: str | None = None

    @property
    def address(self) -> Address:
        scheme = "http" if self.tls is None else "https"
        cport = self.connect_port
        return Address(
            f"127.0.0.1:{self.port}" if self.port else None,
            f"{scheme}://127.0.0.1:{cport}" if cport else None,
        )

    def _known(self) -> bool:
        return self.port > 0 and self.connect_port != 0

    # -- starting ------------------------------------------------------------------------------

    def _command(self) -> tuple[list[str], dict[str, str], str]:
        assert self.tmp_dir is not None
        spec = self.spec
        subst = {
            "port": str(self.port if self.connect_port is None else self.connect_port),
            "tmp": str(self.tmp_dir),
            "root": self._unit_env["RECKON_SVC_ROOT"],
            "python": sys.executable,
        }
        env = dict(os.environ)
        env.update(self._unit_env)
        addresses = self._addresses()
        required = {r: addresses[r].to_json() for r in self.planned.requires}
        env.update(
            RECKON_SVC_NAME=self.name,
            RECKON_SVC_PORT=str(self.port),
            RECKON_SVC_CONNECT_PORT=str(self.connect_port or 0),
            RECKON_SVC_TMP=str(self.tmp_dir),
            RECKON_SVC_PORT_FILE=str(self.tmp_dir / PORT_FILE),
            RECKON_SVC_ADDRESSES=json.dumps(required, sort_keys=True),
            RECKON_SVC_REQUIRES=json.dumps(list(self.planned.requires)),
        )
        for r, a in required.items():
            env[f"RECKON_SVC_ADDR_{r.upper().replace('-', '_')}"] = str(a["grpc"])
        for k, v in spec.env.items():
            env[k] = v.format(**subst)
        env["RECKON_SVC_PARENT_PID"] = str(os.getpid())
        if spec.command is not None:
            argv = [sys.executable, "-S", "-c", _SHIM, *(a.format(**subst) for a in spec.command)]
        else:
            argv = [sys.executable, "-m", "reckon.service.child"]
            env["RECKON_SVC_DEPLOYMENT_FILE"] = str(self._write_secret())
        cwd = str(Path(self._unit_env["RECKON_SVC_ROOT"]) / (spec.cwd or "."))
        return argv, env, cwd

    def _write_secret(self) -> Path:
        """The deployment, in the child's temp dir (0700), in a file of mode 0600 from birth."""
        assert self.tmp_dir is not None
        path = self.tmp_dir / "deployment.json"
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(self._secret)
        return path

    async def spawn(self) -> None:
        self.tmp_dir = Path(tempfile.mkdtemp(prefix=f"reckon-{self.name}-", dir=self._tmp_root))
        argv, env, cwd = self._command()
        self.state = "starting"
        self.kill_reason = None
        try:
            self.proc = await asyncio.create_subprocess_exec(*argv, env=env, cwd=cwd)
        except OSError as exc:
            self._cleanup()
            self.state = "ended"
            raise DeploymentError(f"service {self.name!r}: cannot run {argv[0]!r}: {exc}") from exc
        self.pids.append(self.proc.pid)
        self.started_at = time.monotonic()
        self._log.info("process started", service=self.name, pid=self.proc.pid, port=self.port)

    async def wait_ready(self) -> None:
        """Until the process answers health checks; fails if it exits or takes too long."""
        assert self.proc is not None
        limit = time.monotonic() + self.spec.start_timeout
        assert self.tmp_dir is not None
        report = self.tmp_dir / PORT_FILE
        while True:
            if self.proc.returncode is not None:
                raise DeploymentError(
                    f"service {self.name!r} exited with code {self.proc.returncode} while starting"
                )
            got = read_port_report(report)
            if got is not None:
                self.port = got["port"]
                if self.connect_port is not None:
                    self.connect_port = got.get("connect_port", self.connect_port)
            if self._known() and await health_check(
                self.address.grpc or "", timeout=0.5, tls=self.tls
            ):
                break
            if time.monotonic() > limit:
                self.kill("did not become healthy in time")
                if not self._known():
                    raise DeploymentError(
                        f"service {self.name!r} did not report the port it listens on within "
                        f"{self.spec.start_timeout}s: a service given port 0 in RECKON_SVC_PORT "
                        'binds any free port and writes {"port": N} to the file named by '
                        "RECKON_SVC_PORT_FILE (or set `port` in the deployment)"
                    )
                raise DeploymentError(
                    f"service {self.name!r} did not answer health checks on port {self.port} "
                    f"within {self.spec.start_timeout}s"
                )
            await asyncio.sleep(0.05)
        self.state = "running"
        self._health_due = time.monotonic() + self.spec.health_interval
        self._on_change()

    async def start(self) -> None:
        await self.spawn()
        await self.wait_ready()

    # -- the pulse -----------------------------------------------------------------------------

    def tick(self, now: float) -> None:
        proc = self.proc
        if proc is None or self.state != "running":
            return  # starting and restarting are watched by wait_ready
        if proc.returncode is not None:
            self._exited(proc.returncode)
            return
        limit = self.spec.time_limit
        if limit is not None and now - self.started_at > limit:
            self.kill(f"ran longer than its time limit of {limit}s")
            return
        if now >= self._health_due and self._health_task is None:
            self._health_due = now + self.spec.health_interval
            self._health_task = asyncio.create_task(self._probe())

    async def _probe(self) -> None:
        try:
            # Generous: a busy machine must not look like a frozen process.
            wait = max(2.0, self.spec.health_interval)
            ok = await health_check(self.address.grpc or "", timeout=wait, tls=self.tls)
        except Exception:
            ok = False
        finally:
            self._health_task = None
        if ok:
            self._health_failures = 0
            return
        self._health_failures += 1
        self._log.warning("health check failed", service=self.name, count=self._health_failures)
        if self._health_failures >= 3:
            self.kill("failed 3 health checks in a row")

    def kill(self, reason: str) -> None:
        if self.proc is not None and self.proc.returncode is None:
            self.kill_reason = reason
            self.kills.append(reason)
            self._log.error("killing process", service=self.name, pid=self.proc.pid, reason=reason)
            with contextlib.suppress(ProcessLookupError):
                self.proc.kill()

    def _exited(self, code: int) -> None:
        self.exit_codes.append(code)
        self._cleanup()
        policy = self.spec.restart
        failed = code != 0 or self.kill_reason is not None
        again = policy == "always" or (policy == "on-failure" and failed)
        if again and self.restarts < self.spec.max_restarts:
            self.restarts += 1
            self.state = "restarting"
            self._log.warning(
                "process exited; restarting", service=self.name, code=code, restart=self.restarts
            )
            self._restart_task = asyncio.create_task(self._restart())
        else:
            self.state = "ended"
            if failed:
                why = self.kill_reason or f"exited with code {code}"
                self.failure = f"{why}, after {self.restarts} restarts"
                self._log.warning(
                    "process failed; not restarting", service=self.name, code=code, reason=why
                )
            else:
                self._log.info("process ended", service=self.name, code=code)
        self._on_change()

    async def _restart(self) -> None:
        await asyncio.sleep(min(0.1 * 2 ** (self.restarts - 1), 2.0))
        try:
            await self.start()
        except Exception as exc:
            self._log.error("restart failed", service=self.name, error=str(exc))
            if self.proc is not None and self.proc.returncode is None:
                self.kill("restart failed")
                await self.proc.wait()
            self._cleanup()
            self.state = "ended"
            self.failure = f"restart {self.restarts} failed: {exc}"
            self._on_change()
        finally:
            self._restart_task = None

    def _cleanup(self) -> None:
        """Release what the dead process held: its temp dir (the port is reused on restart)."""
        if self.tmp_dir is not None:
            shutil.rmtree(self.tmp_dir, ignore_errors=True)
            self.tmp_dir = None

    # -- stopping ------------------------------------------------------------------------------

    async def stop(self, grace: float) -> None:
        self.state = "ended"
        for task in (self._restart_task, self._health_task):
            if task is not None:
                task.cancel()
        proc = self.proc
        if proc is not None and proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                proc.terminate()
            try:
                await asyncio.wait_for(proc.wait(), grace)
            except TimeoutError:
                self._log.warning("process ignored SIGTERM; killing", service=self.name)
                with contextlib.suppress(ProcessLookupError):
                    proc.kill()
                await proc.wait()
        self._cleanup()

    def info(self) -> dict[str, Any]:
        return {
            "state": self.state,
            "pid": self.proc.pid if self.proc else None,
            "restarts": self.restarts,
            "exit_codes": list(self.exit_codes),
            "port": self.port,
        }
