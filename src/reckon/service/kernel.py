"""The kernel: a :class:`Unit` starts a deployment, routes ``locate``, supervises, and stops it.

Start-up follows the plan's waves (topological order of ``requires``, ties broken by name): in a
wave, in-process services get ``ready()`` one by one in name order and child processes start
together; nothing in a wave starts before every earlier wave is ready. An in-process service is
served over the wire (its one address for every protocol, reckon's own clients included) when
something outside the process needs it (a child requires it, or ``expose``, ``connect`` or
``port`` is set).

A timing pulse (every ``[unit] pulse`` seconds) reaps and restarts children, runs health checks,
kills processes past their time limit, cancels in-process calls past their call limit, and
notices when every child process has ended so that ``svc run`` can exit.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import tempfile
import time
import zlib
from pathlib import Path
from typing import Any, TypeVar

import grpc
import grpc.aio

from reckon.errors import (
    DeploymentError,
    ServiceNotFoundError,
    UnauthenticatedError,
)
from reckon.service.auth import Authenticator, basic_header
from reckon.service.batteries import Database, FileArea
from reckon.service.clients import connect_client, grpc_client, inprocess_client
from reckon.service.context import CallContext, ServiceContext, User, current_call
from reckon.service.definition import ServiceDef, load_object
from reckon.service.deploy import Deployment, Plan, Planned, ServiceSpec, plan
from reckon.service.endpoint import Endpoint, Tracer
from reckon.service.interceptors import load_interceptors
from reckon.service.logs import ServiceLogger, Sink, make_sink
from reckon.service.servers import grpc_options
from reckon.service.standard import HealthBoard, standard_services
from reckon.service.supervisor import Address, ChildProcess, open_channel, wait_healthy
from reckon.service.tls import Tls
from reckon.service.wire import WireServer

T = TypeVar("T")


def service_seed(seed: int, name: str) -> int:
    """A per-service seed that is the same in every process and run (no str hash)."""
    return zlib.crc32(f"{seed}:{name}".encode())


class Unit:
    """A running deployment. Use ``async with Unit(deployment) as unit:``; a Unit runs once.

    ``implementations`` maps service names to objects or classes used instead of the
    deployment's (how ``reckon.testing`` puts mocks in place).
    """

    def __init__(
        self,
        deployment: Deployment,
        *,
        tracer: Tracer | None = None,
        sink: Sink | None = None,
        strict: bool | None = None,
        seed: int | None = None,
        supervise: bool = True,
        implementations: dict[str, Any] | None = None,
        tmp_root: Path | None = None,
    ) -> None:
        self.deployment = deployment
        self.tracer = tracer
        self.sink = sink if sink is not None else make_sink(deployment.log)
        self.strict = deployment.strict if strict is None else strict
        self.seed = deployment.seed if seed is None else seed
        self.supervise = supervise
        #: name -> implementation object or class used instead of the deployment's (mocks).
        self.overrides = dict(implementations or {})
        self.plan: Plan | None = None
        self.endpoints: dict[str, Endpoint] = {}
        self.children: dict[str, ChildProcess] = {}
        self.addresses: dict[str, Address] = {}
        self.started: list[str] = []
        bearer = None
        if deployment.bearer is not None:
            deployment.install_path()
            bearer = load_object(deployment.bearer, "[auth] bearer")
        self.authenticator = Authenticator(deployment.users, bearer)
        self._instances: dict[str, Any] = {}
        self._contexts: dict[str, ServiceContext] = {}
        self._wires: dict[tuple[Any, ...], WireServer] = {}
        self._channels: dict[str, grpc.aio.Channel] = {}
        self._clients: dict[tuple[str, str, str | None], Any] = {}
        self._pulse_task: asyncio.Task[None] | None = None
        self._all_ended = asyncio.Event()
        self._tmp_root: Path | None = None
        self._given_tmp_root = tmp_root
        self._data_dir: Path | None = None
        self._clock = time.monotonic
        self.log = ServiceLogger("reckon", self.sink, self._now)
        self._stopped = False

    def _now(self) -> float:
        return self._clock()

    # -- start ---------------------------------------------------------------------------------

    async def __aenter__(self) -> Unit:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def start(self) -> None:
        """Check the deployment, then start every service in order; stops all on failure."""
        self.plan = plan(self.deployment)  # raises DeploymentError before anything starts
        self._clock = asyncio.get_running_loop().time
        self._all_ended = asyncio.Event()
        if self._given_tmp_root is not None:  # a child: its parent removes it when it dies
            self._tmp_root = self._given_tmp_root
            self._tmp_root.mkdir(parents=True, exist_ok=True)
        else:
            _sweep_stale_tmp()
            self._tmp_root = Path(
                tempfile.mkdtemp(prefix=f"reckon-unit-{os.getpid()}-{self.deployment.name}-")
            )
        if self.deployment.data_dir is not None:
            self._data_dir = (self.deployment.root / self.deployment.data_dir).resolve()
        else:
            self._data_dir = self._tmp_root / "data"  # scratch: removed with the temp root
        self._data_dir.mkdir(parents=True, exist_ok=True)
        self._prepare_addresses()
        try:
            for wave in self.plan.waves:
                for name in wave:
                    p = self.plan.services[name]
                    if p.spec.placement == "inprocess":
                        await self._start_inprocess(p)
                procs = [
                    self.plan.services[n]
                    for n in wave
                    if self.plan.services[n].spec.placement == "process"
                ]
                if procs:
                    await asyncio.gather(*(self._start_child(p) for p in procs))
                for name in wave:
                    spec = self.plan.services[name].spec
                    if spec.placement == "remote":
                        # Ready means answering: dependents start only after it does.
                        await wait_healthy(
                            name,
                            spec.address or "",
                            spec.start_timeout,
                            self.deployment.tls_of(spec),
                        )
                        self.started.append(name)
        except BaseException:
            await self.stop()
            raise
        self.log.info("unit ready", unit=self.deployment.name, services=len(self.started))
        if self.supervise:
            self._pulse_task = asyncio.create_task(self._pulse())
        self._check_all_ended()

    def _prepare_addresses(self) -> None:
        assert self.plan is not None
        outside = {
            r
            for p in self.plan.services.values()
            if p.spec.placement != "inprocess"
            for r in p.requires
        }
        self._exposed: set[str] = set()
        for name, p in self.plan.services.items():
            spec = p.spec
            scheme = "http" if self.deployment.tls_of(spec) is None else "https"
            if spec.placement == "remote":
                connect = spec.connect_address
                if connect is not None and not connect.startswith("http"):
                    connect = f"{scheme}://{connect}"
                self.addresses[name] = Address(spec.address, connect)
            elif spec.placement == "process":
                pass  # known once the child reports the ports it bound (_start_child)
            elif spec.expose or spec.connect or spec.public_port or name in outside:
                self._exposed.add(name)

    def _service_context(self, p: Planned, tmp_dir: Path) -> ServiceContext:
        name = p.spec.name
        assert self._data_dir is not None
        area = self._data_dir / name
        impl = self.overrides.get(name, p.implementation)
        migrations = list(getattr(impl, "migrations", ()))
        seed = None if self.seed is None else service_seed(self.seed, name)
        return ServiceContext(
            name,
            p.definition,
            locate=lambda d: self._locate_for(name, d),
            log=ServiceLogger(name, self.sink, self._now),
            data_dir=area,
            tmp_dir=tmp_dir,
            seed=seed,
            config=p.spec.config,
            clock=self._now,
            open_db=lambda: Database(area / "db.sqlite3", migrations),
            open_files=lambda: FileArea(area / "files"),
        )

    async def _start_inprocess(self, p: Planned) -> None:
        assert self._tmp_root is not None
        name = p.spec.name
        tmp_dir = Path(tempfile.mkdtemp(prefix=f"{name}-", dir=self._tmp_root))
        sctx = self._service_context(p, tmp_dir)
        self._contexts[name] = sctx
        impl = self.overrides.get(name, p.implementation)
        if impl is None:
            raise DeploymentError(f"service {name!r} has no implementation to run in-process")
        instance = impl() if isinstance(impl, type) else impl
        instance.ctx = sctx
        self._instances[name] = instance
        endpoint = Endpoint(
            name,
            p.definition,
            instance,
            sctx,
            authenticator=self.authenticator,
            auth=p.spec.auth,
            call_limit=p.spec.call_limit,
            clock=self._now,
            tracer=self.tracer,
            interceptors=[
                *load_interceptors(self.deployment.interceptors, "[unit]"),
                *load_interceptors(p.spec.interceptors, f"[services.{name}]"),
            ],
        )
        self.endpoints[name] = endpoint
        token = current_call.set(CallContext(sctx, "ready"))  # its calls come from it
        try:
            await instance.ready()
        except Exception as exc:
            raise DeploymentError(
                f"service {name!r} failed in ready(): {type(exc).__name__}: {exc}"
            ) from exc
        finally:
            current_call.reset(token)
        self.started.append(name)
        sctx.log.debug("ready")
        if name in self._exposed:
            wire = self._wire_for(p.spec, tmp_dir)
            await wire.add(name, endpoint)
            self.addresses[name] = Address(wire.grpc_address, wire.connect_url)

    def _wire_for(self, spec: ServiceSpec, tmp_dir: Path) -> WireServer:
        """The servers ``spec``'s service joins: shared by every service with its settings."""
        limit = self.deployment.max_message_bytes_of(spec)
        keepalive = self.deployment.keepalive_of(spec)
        tls = self.deployment.tls_of(spec)
        key = (spec.public_port, limit, keepalive, tls)
        wire = self._wires.get(key)
        if wire is None:
            board = HealthBoard()
            wire = self._wires[key] = WireServer(
                port=spec.public_port,
                keepalive=keepalive,
                tls=tls,
                read_max_bytes=limit,
                standard=self._standard_endpoints(board, tmp_dir),
                board=board,
            )
        return wire

    def _standard_endpoints(self, board: HealthBoard, tmp_dir: Path) -> list[Endpoint]:
        """Health and reflection for a server (not traced: tools' calls)."""
        out = []
        for instance in standard_services(board):
            definition = instance.definition
            sctx = ServiceContext(
                definition.full_name,
                definition,
                locate=_locates_nothing,
                log=ServiceLogger(definition.full_name, self.sink, self._now),
                data_dir=tmp_dir,
                tmp_dir=tmp_dir,
                seed=None,
                config={},
                clock=self._now,
                open_db=_no_database,
                open_files=_no_files,
            )
            instance.ctx = sctx
            out.append(
                Endpoint(
                    definition.full_name,
                    definition,
                    instance,
                    sctx,
                    authenticator=self.authenticator,
                    auth=None,
                    call_limit=None,
                    clock=self._now,
                )
            )
        return out

    def _unit_env(self) -> dict[str, str]:
        assert self._data_dir is not None
        return {
            "RECKON_SVC_ROOT": str(self.deployment.root),
            "RECKON_SVC_DATA_DIR": str(self._data_dir),
        }

    async def _start_child(self, p: Planned) -> None:
        assert self._tmp_root is not None
        name = p.spec.name
        child = ChildProcess(
            p,
            unit_env=self._unit_env(),
            # The deployment holds the users' password hashes: it goes by a file only the
            # child's user can read, never by the environment (which `ps e` and /proc show).
            secret=json.dumps(self.deployment.raw, sort_keys=True, default=str),
            addresses=lambda: self.addresses,
            # A command serves gRPC on the one port it has; a Python child serves its port for
            # every protocol where the deployment says, and its internal gRPC port anywhere.
            port=p.spec.public_port if p.spec.command is not None else 0,
            connect_port=None if p.spec.command is not None else p.spec.public_port,
            log=self.log,
            tmp_root=self._tmp_root,
            on_change=self._check_all_ended,
            tls=self.deployment.tls_of(p.spec),
        )
        self.children[name] = child
        await child.start()
        # The ports the child bound; they stay across its restarts.
        self.addresses[name] = child.address
        self.started.append(name)

    # -- locate --------------------------------------------------------------------------------

    def _target(self, definition: ServiceDef[Any]) -> str:
        if self.plan is None or self._stopped:
            raise ServiceNotFoundError(
                f"unit {self.deployment.name!r} is not running; locate services between "
                "start() and stop() (or inside `async with Unit(...)`)"
            )
        name = self.plan.exporter(definition)
        if name is None:
            raise ServiceNotFoundError(
                f"no service in unit {self.deployment.name!r} exports {definition.full_name}"
            )
        return name

    def _locate_for(self, caller: str, definition: ServiceDef[T]) -> T:
        target = self._target(definition)
        assert self.plan is not None
        if target not in self.plan.services[caller].requires:
            raise ServiceNotFoundError(
                f"service {caller!r} does not require {target!r} ({definition.full_name}); "
                f"add it to requires in the deployment"
            )
        result: T = self._client(target, None, None)
        return result

    def locate(
        self,
        definition: ServiceDef[T],
        *,
        credentials: tuple[str, str] | str | None = None,
        transport: str | None = None,
    ) -> T:
        """A typed client for the service exporting ``definition``.

        ``transport`` is ``None`` (in-process when the service is, else gRPC), ``"grpc"`` or
        ``"connect"``; ``credentials`` are a basic-auth ``(user, password)`` or a whole
        ``authorization`` value (``"Bearer TOKEN"``).
        """
        target = self._target(definition)
        if credentials is None or isinstance(credentials, str):
            header = credentials
        else:
            header = basic_header(*credentials)
        result: T = self._client(target, header, transport)
        return result

    def _client(self, target: str, header: str | None, transport: str | None) -> Any:
        key = (target, transport or "", header)
        cached = self._clients.get(key)
        if cached is not None:
            return cached
        assert self.plan is not None
        definition = self.plan.services[target].definition
        if transport is None and target in self.endpoints:
            user: User | None = None
            bad = None
            try:
                user = self.authenticator.check(header, self.endpoints[target].auth)
            except UnauthenticatedError as exc:
                bad = exc
            client = inprocess_client(
                self.endpoints[target],
                strict=self.strict,
                user=user,
                authorization=header,
                clock=self._now,
            )
            if bad is not None:
                client = _refusing(client, bad)
        elif transport in (None, "grpc"):
            addr = self.addresses.get(target)
            if addr is None or addr.grpc is None:
                raise ServiceNotFoundError(
                    f"service {target!r} is in-process and not served over gRPC; "
                    "set expose = true in its deployment entry"
                )
            spec = self.plan.services[target].spec
            options = grpc_options(
                self.deployment.max_message_bytes_of(spec), self.deployment.keepalive_of(spec)
            )
            channel = self._channel(addr.grpc, options, self.deployment.tls_of(spec))
            client = grpc_client(channel, definition, authorization=header, clock=self._now)
        elif transport == "connect":
            addr = self.addresses.get(target)
            if addr is None or addr.connect is None:
                raise ServiceNotFoundError(
                    f"service {target!r} does not serve Connect; set connect = true"
                )
            tls = self.deployment.tls_of(self.plan.services[target].spec)
            client = connect_client(
                addr.connect,
                definition,
                authorization=header,
                clock=self._now,
                ca=None if tls is None else tls.ca_bytes(),
            )
        else:
            raise DeploymentError(f"transport {transport!r}; use None, 'grpc' or 'connect'")
        self._clients[key] = client
        return client

    def _channel(
        self, address: str, options: list[tuple[str, int]], tls: Tls | None
    ) -> grpc.aio.Channel:
        ch = self._channels.get(address)
        if ch is None:
            ch = open_channel(address, tls, options)
            self._channels[address] = ch
        return ch

    def instance(self, name: str) -> Any:
        """The implementation object of an in-process service (for tests and tools)."""
        return self._instances[name]

    # -- supervision ---------------------------------------------------------------------------

    async def _pulse(self) -> None:
        interval = self.deployment.pulse
        while True:
            await asyncio.sleep(interval)
            now_mono = time.monotonic()
            for child in list(self.children.values()):
                child.tick(now_mono)
            now = self._now()
            for endpoint in self.endpoints.values():
                for call_id in endpoint.overdue(now):
                    self.log.warning("call over its limit; cancelling", service=endpoint.name)
                    endpoint.cancel(call_id)

    def _check_all_ended(self) -> None:
        if self.children and all(c.state == "ended" for c in self.children.values()):
            self._all_ended.set()

    async def wait(self) -> None:
        """Return once every child process has ended for good (never, with none)."""
        await self._all_ended.wait()

    def failures(self) -> dict[str, str]:
        """Services whose processes ended for good by failing (crash loop, time-limit kill),
        with why; ``svc run`` exits non-zero when it stops because of these."""
        return {n: c.failure for n, c in self.children.items() if c.failure is not None}

    def status(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        assert self.plan is not None
        for name in self.plan.order:
            spec = self.plan.services[name].spec
            entry: dict[str, Any] = {"placement": spec.placement}
            addr = self.addresses.get(name)
            if addr is not None:
                entry.update(grpc=addr.grpc, connect=addr.connect)
            if name in self.children:
                entry.update(self.children[name].info())
            out[name] = entry
        return out

    # -- stop ----------------------------------------------------------------------------------

    async def stop(self) -> None:
        """Stop everything in reverse start order and remove temp dirs. Idempotent."""
        if self._stopped:
            return
        self._stopped = True
        if self._pulse_task is not None:
            self._pulse_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._pulse_task
        for wire in reversed(list(self._wires.values())):
            await wire.stop()
        grace = self.deployment.shutdown_grace
        for name in reversed(list(self.children)):
            await self.children[name].stop(grace)
        for name in reversed(self.started):
            inst = self._instances.get(name)
            if inst is not None:
                try:
                    await inst.stop()
                except Exception as exc:
                    self.log.error("stop failed", service=name, error=repr(exc))
            ctx = self._contexts.get(name)
            if ctx is not None:
                ctx.close()
        for ch in self._channels.values():
            await ch.close(None)
        self._channels.clear()
        self._clients.clear()
        self._all_ended.set()
        if self._tmp_root is not None:
            shutil.rmtree(self._tmp_root, ignore_errors=True)
        self.log.info("unit stopped", unit=self.deployment.name)


def _sweep_stale_tmp() -> None:
    """Remove temp dirs left by runtimes that died without cleaning up (kill -9, power loss).

    A unit's temp root is ``reckon-unit-<pid>-<name>-*``; the dirs of its children are inside.
    When that pid is gone, nobody uses them any more.
    """
    root = Path(tempfile.gettempdir())
    for entry in root.glob("reckon-unit-*-*-*"):
        pid = entry.name.split("-")[2]
        if not pid.isdigit() or int(pid) == os.getpid():
            continue
        try:
            os.kill(int(pid), 0)
        except ProcessLookupError:
            shutil.rmtree(entry, ignore_errors=True)
        except PermissionError:
            pass  # another user's live process


def _locates_nothing(definition: ServiceDef[Any]) -> Any:
    raise ServiceNotFoundError(f"the standard services locate nothing ({definition.full_name})")


def _no_database() -> Database:
    raise DeploymentError("the standard services have no database")


def _no_files() -> FileArea:
    raise DeploymentError("the standard services have no file area")


def _refusing(client: Any, error: UnauthenticatedError) -> Any:
    """A client whose every call fails as the wire would: the credentials were wrong."""

    async def refuse(*_: Any, **__: Any) -> Any:
        raise UnauthenticatedError(str(error))

    for name in list(vars(client)):
        if not name.startswith("_"):
            setattr(client, name, refuse)
    return client
