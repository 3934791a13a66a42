"""``deploy.toml``: the services of a unit, where each runs and what each requires.

Everything that can be wrong with a deployment (unknown keys, unknown or missing services, cycles,
definitions that do not import, implementations that do not implement them) is found by
:func:`plan` before anything starts, and reported as one DeploymentError naming the services.

Example::

    [unit]
    name = "shop"
    path = ["."]                  # added to sys.path, relative to this file

    [services.catalog]
    definition = "gen.catalog_reckon:Catalog"
    implementation = "shop.catalog:CatalogService"
    placement = "inprocess"       # or "process", or "remote" (with address = "host:port")
    requires = ["inventory"]
"""

from __future__ import annotations

import sys
import tomllib
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from reckon.errors import DeploymentError
from reckon.service.auth import SCHEMES, check_stored
from reckon.service.base import check_implementation
from reckon.service.definition import ServiceDef, load_definition, load_object
from reckon.service.tls import Tls

PLACEMENTS = ("inprocess", "process", "remote")
RESTARTS = ("never", "on-failure", "always")

_UNIT_KEYS = {
    "name",
    "path",
    "data_dir",
    "log",
    "pulse",
    "strict",
    "seed",
    "shutdown_grace",
    "interceptors",
    "max_message_bytes",
    "keepalive",
    "tls",
}
_SERVICE_KEYS = {
    "definition",
    "implementation",
    "command",
    "placement",
    "address",
    "connect_address",
    "requires",
    "restart",
    "max_restarts",
    "call_limit",
    "time_limit",
    "connect",
    "expose",
    "port",
    "connect_port",
    "auth",
    "env",
    "config",
    "health_interval",
    "start_timeout",
    "cwd",
    "interceptors",
    "max_message_bytes",
    "keepalive",
    "tls",
}


@dataclass(frozen=True)
class ServiceSpec:
    """One ``[services.NAME]`` table, validated for shape (not yet for references)."""

    name: str
    definition: str
    implementation: str | None = None
    command: tuple[str, ...] | None = None
    placement: str = "inprocess"
    address: str | None = None
    connect_address: str | None = None
    requires: tuple[str, ...] = ()
    restart: str = "on-failure"
    max_restarts: int = 3
    call_limit: float | None = None
    time_limit: float | None = None
    connect: bool = False
    expose: bool = False
    #: The port for every protocol (``connect_port`` is another name for it); 0: any free one.
    port: int = 0
    connect_port: int = 0
    auth: str | None = None
    env: dict[str, str] = field(default_factory=dict)
    config: dict[str, Any] = field(default_factory=dict)
    health_interval: float = 1.0
    start_timeout: float = 60.0
    cwd: str | None = None
    #: ``"module:Name"`` interceptors for this service, inside the unit's.
    interceptors: tuple[str, ...] = ()
    #: The largest message this service takes or sends on the wire (None: the unit's).
    max_message_bytes: int | None = None
    #: Seconds between HTTP/2 keepalive pings on its connections (None: the unit's; 0: none).
    keepalive: float | None = None
    #: PEM files ``{cert, key, ca}`` (None: the unit's); see reckon.service.tls.
    tls: dict[str, str] | None = None

    @property
    def public_port(self) -> int:
        """The port the deployment names for the service (0: any free one)."""
        return self.port or self.connect_port


@dataclass(frozen=True)
class Deployment:
    """A parsed deployment file. ``raw`` is kept to hand the same unit to child processes."""

    name: str
    root: Path
    services: dict[str, ServiceSpec]
    path: tuple[str, ...] = ()
    data_dir: str | None = None
    log: str = "dev"
    pulse: float = 0.2
    strict: bool = False
    seed: int | None = None
    shutdown_grace: float = 5.0
    #: ``"module:Name"`` interceptors for every Python service, outermost first.
    interceptors: tuple[str, ...] = ()
    max_message_bytes: int = 4 * 1024 * 1024
    keepalive: float = 0.0
    tls: dict[str, str] | None = None
    users: dict[str, str] = field(default_factory=dict)
    #: ``"module:function"`` checking bearer tokens: ``fn(token) -> user name or None``.
    bearer: str | None = None
    raw: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def load(cls, path: str | Path) -> Deployment:
        p = Path(path)
        try:
            data = tomllib.loads(p.read_text())
        except FileNotFoundError:
            raise DeploymentError(f"{p}: no such deployment file") from None
        except tomllib.TOMLDecodeError as exc:
            raise DeploymentError(f"{p}: not valid TOML: {exc}") from exc
        return cls.from_dict(data, root=p.resolve().parent)

    @classmethod
    def from_dict(cls, data: dict[str, Any], root: str | Path = ".") -> Deployment:
        data = dict(_table(data, "the deployment"))
        unknown = set(data) - {"unit", "services", "auth"}
        if unknown:
            raise DeploymentError(
                f"unknown top-level tables {sorted(unknown)}; use [unit], [auth], [services.NAME]"
            )
        unit = _table(data.get("unit", {}), "[unit]")
        bad = set(unit) - _UNIT_KEYS
        if bad:
            raise DeploymentError(
                f"[unit]: unknown keys {sorted(bad)} (known: {sorted(_UNIT_KEYS)})"
            )
        services: dict[str, ServiceSpec] = {}
        for name, table in sorted(_table(data.get("services", {}), "[services]").items()):
            services[name] = _service_spec(name, table)
        if not services:
            raise DeploymentError("the deployment lists no services; add a [services.NAME] table")
        auth = _table(data.get("auth", {}), "[auth]")
        if set(auth) - {"users", "bearer"}:
            raise DeploymentError(
                f"[auth]: unknown keys {sorted(set(auth) - {'users', 'bearer'})} "
                "(known: users, bearer)"
            )
        users = {str(k): str(v) for k, v in _table(auth.get("users", {}), "[auth] users").items()}
        for user, stored in users.items():
            check_stored(user, stored)
        bearer = auth.get("bearer")
        if bearer is not None and not isinstance(bearer, str):
            raise DeploymentError("[auth] bearer must be 'module:function' (a token check)")
        for name, spec in services.items():
            if spec.auth == "bearer" and bearer is None:
                raise DeploymentError(
                    f"[services.{name}]: auth = 'bearer' needs a token check: set [auth] bearer "
                    "= 'module:function'"
                )
        log = str(unit.get("log", "dev"))
        if log not in ("dev", "json", "test", "off"):
            raise DeploymentError(f"[unit] log = {log!r}; use 'dev', 'json', 'test' or 'off'")
        seed = unit.get("seed")
        data_dir = unit.get("data_dir")
        if data_dir is not None and not isinstance(data_dir, str):
            raise DeploymentError("[unit] data_dir must be a string (a folder path)")
        try:
            return cls(
                name=str(unit.get("name", "unit")),
                root=Path(root).resolve(),
                services=services,
                path=tuple(str(x) for x in _list(unit.get("path", []), "[unit] path")),
                data_dir=data_dir,
                log=log,
                pulse=float(unit.get("pulse", 0.2)),
                strict=bool(unit.get("strict", False)),
                seed=None if seed is None else int(seed),
                shutdown_grace=float(unit.get("shutdown_grace", 5.0)),
                interceptors=_strings(unit.get("interceptors", []), "[unit] interceptors"),
                max_message_bytes=int(unit.get("max_message_bytes", 4 * 1024 * 1024)),
                keepalive=float(unit.get("keepalive", 0.0)),
                tls=unit.get("tls"),
                users=users,
                bearer=bearer,
                raw=data,
            )
        except (TypeError, ValueError) as exc:
            raise DeploymentError(f"[unit]: a value has the wrong type: {exc}") from None

    def max_message_bytes_of(self, spec: ServiceSpec) -> int:
        """The service's own limit, else the unit's."""
        n = self.max_message_bytes if spec.max_message_bytes is None else spec.max_message_bytes
        if n <= 0:
            raise DeploymentError(f"[services.{spec.name}] max_message_bytes must be > 0")
        return n

    def keepalive_of(self, spec: ServiceSpec) -> float:
        return self.keepalive if spec.keepalive is None else spec.keepalive

    def tls_of(self, spec: ServiceSpec) -> Tls | None:
        """The service's TLS files, else the unit's; None: plain text."""
        table = self.tls if spec.tls is None else spec.tls
        if not table:
            return None
        return Tls.from_table(table, self.root, f"[services.{spec.name}]")

    def with_services(self, services: dict[str, ServiceSpec]) -> Deployment:
        return replace(self, services=services)

    def install_path(self) -> None:
        """Put the unit's ``path`` entries on sys.path so its modules import."""
        for entry in self.path:
            full = str((self.root / entry).resolve())
            if full not in sys.path:
                sys.path.insert(0, full)


def _table(value: Any, where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise DeploymentError(f"{where} must be a table, not {type(value).__name__}")
    return value


def _list(value: Any, where: str) -> list[Any]:
    if not isinstance(value, list):
        raise DeploymentError(f"{where} must be a list, not {type(value).__name__}")
    return value


def _service_spec(name: str, table: Any) -> ServiceSpec:
    where = f"[services.{name}]"
    if not isinstance(table, dict):
        raise DeploymentError(f"{where} must be a table")
    bad = set(table) - _SERVICE_KEYS
    if bad:
        raise DeploymentError(
            f"{where}: unknown keys {sorted(bad)} (known: {sorted(_SERVICE_KEYS)})"
        )
    if not isinstance(table.get("definition"), str):
        raise DeploymentError(
            f"{where}: 'definition' must be a string like 'gen.catalog_reckon:Catalog'"
        )
    for key in ("implementation", "address", "connect_address", "auth", "cwd"):
        if table.get(key) is not None and not isinstance(table[key], str):
            raise DeploymentError(f"{where}: {key} must be a string")
    placement = str(table.get("placement", "inprocess"))
    if placement not in PLACEMENTS:
        raise DeploymentError(f"{where}: placement {placement!r}; use one of {PLACEMENTS}")
    restart = str(table.get("restart", "on-failure"))
    if restart not in RESTARTS:
        raise DeploymentError(f"{where}: restart {restart!r}; use one of {RESTARTS}")
    command = table.get("command")
    if command is not None:
        if not isinstance(command, list) or not all(isinstance(c, str) for c in command):
            raise DeploymentError(f"{where}: command must be a list of strings")
        command = tuple(command)
    impl = table.get("implementation")
    if placement == "remote":
        if not table.get("address"):
            raise DeploymentError(f"{where}: a remote service needs address = 'host:port'")
    elif impl is None and command is None:
        raise DeploymentError(f"{where}: give an 'implementation' (Python class) or a 'command'")
    elif command is not None and placement == "inprocess":
        raise DeploymentError(
            f"{where}: a command runs in its own process; set placement = 'process'"
        )
    auth = table.get("auth")
    if auth is not None and auth not in SCHEMES:
        raise DeploymentError(
            f"{where}: auth {auth!r}; use 'basic', 'bearer' (a [auth] bearer hook) or 'any'"
        )
    if table.get("port") and table.get("connect_port") and table["port"] != table["connect_port"]:
        raise DeploymentError(
            f"{where}: port and connect_port name the same port (the one for every protocol); "
            "give one of them"
        )
    requires = table.get("requires", [])
    if not isinstance(requires, list) or not all(isinstance(r, str) for r in requires):
        raise DeploymentError(f"{where}: requires must be a list of service names")
    try:
        return ServiceSpec(
            name=name,
            definition=str(table["definition"]),
            implementation=impl,
            command=command,
            placement=placement,
            address=table.get("address"),
            connect_address=table.get("connect_address"),
            requires=tuple(requires),
            restart=restart,
            max_restarts=int(table.get("max_restarts", 3)),
            call_limit=_opt_float(table.get("call_limit")),
            time_limit=_opt_float(table.get("time_limit")),
            connect=bool(table.get("connect", False)),
            expose=bool(table.get("expose", False)),
            port=int(table.get("port", 0)),
            connect_port=int(table.get("connect_port", 0)),
            auth=auth,
            env={str(k): str(v) for k, v in _table(table.get("env", {}), f"{where} env").items()},
            config=dict(_table(table.get("config", {}), f"{where} config")),
            health_interval=float(table.get("health_interval", 1.0)),
            start_timeout=float(table.get("start_timeout", 60.0)),
            cwd=table.get("cwd"),
            interceptors=_strings(table.get("interceptors", []), f"{where} interceptors"),
            max_message_bytes=_opt_int(table.get("max_message_bytes")),
            keepalive=_opt_float(table.get("keepalive")),
            tls=table.get("tls"),
        )
    except (TypeError, ValueError, AttributeError) as exc:
        raise DeploymentError(f"{where}: a value has the wrong type: {exc}") from None


def _opt_float(v: Any) -> float | None:
    return None if v is None else float(v)


def _opt_int(v: Any) -> int | None:
    return None if v is None else int(v)


def _strings(v: Any, where: str) -> tuple[str, ...]:
    if not isinstance(v, list) or not all(isinstance(x, str) for x in v):
        raise DeploymentError(f"{where} must be a list of 'module:Name' strings")
    return tuple(v)


@dataclass(frozen=True)
class Planned:
    """A service with everything resolved: definition, class, and required service names."""

    spec: ServiceSpec
    definition: ServiceDef[Any]
    implementation: type | None
    requires: tuple[str, ...]


@dataclass(frozen=True)
class Plan:
    """Services in start order, grouped in waves (a wave needs only earlier waves)."""

    deployment: Deployment
    services: dict[str, Planned]
    order: tuple[str, ...]
    waves: tuple[tuple[str, ...], ...]

    def exporter(self, definition: ServiceDef[Any]) -> str | None:
        for name, p in self.services.items():
            if p.definition == definition:
                return name
        return None


def plan(deployment: Deployment) -> Plan:
    """Resolve and check a deployment; raises DeploymentError before anything starts."""
    deployment.install_path()
    problems: list[str] = []
    defs: dict[str, ServiceDef[Any]] = {}
    impls: dict[str, type | None] = {}
    for name, spec in deployment.services.items():
        where = f"service {name!r}"
        try:
            deployment.tls_of(spec)  # the files exist and the table has the right keys
            defs[name] = load_definition(spec.definition, where)
            impl = None
            if spec.implementation is not None and spec.placement != "remote":
                impl = load_object(spec.implementation, where)
                check_implementation(impl, defs[name], where)
            impls[name] = impl
        except DeploymentError as exc:
            problems.append(str(exc))
    if problems:
        raise DeploymentError("; ".join(problems))
    exports: dict[str, str] = {}
    for name, d in sorted(defs.items()):
        if d.full_name in exports:
            problems.append(
                f"services {exports[d.full_name]!r} and {name!r} both export {d.full_name}"
            )
        exports[d.full_name] = name
    requires: dict[str, tuple[str, ...]] = {}
    for name, spec in deployment.services.items():
        needed: list[str] = []
        wanted = list(spec.requires)
        impl = impls.get(name)
        if impl is not None:
            wanted += [d.full_name for d in getattr(impl, "requires", ())]
        for r in wanted:
            target = r if r in deployment.services else exports.get(r)
            if target is None:
                problems.append(f"service {name!r} requires {r!r}, which is not in the unit")
            elif target == name:
                problems.append(f"service {name!r} requires itself")
            elif target not in needed:
                needed.append(target)
        requires[name] = tuple(sorted(needed))
    if problems:
        raise DeploymentError("; ".join(problems))
    order, waves = _toposort(requires)
    services = {n: Planned(deployment.services[n], defs[n], impls[n], requires[n]) for n in order}
    return Plan(deployment, services, tuple(order), tuple(waves))


def _toposort(requires: dict[str, tuple[str, ...]]) -> tuple[list[str], list[tuple[str, ...]]]:
    done: set[str] = set()
    order: list[str] = []
    waves: list[tuple[str, ...]] = []
    remaining = set(requires)
    while remaining:
        wave = tuple(sorted(n for n in remaining if set(requires[n]) <= done))
        if not wave:
            raise DeploymentError(f"requires form a cycle: {_cycle(requires, remaining)}")
        waves.append(wave)
        order.extend(wave)
        done.update(wave)
        remaining.difference_update(wave)
    return order, waves


def _cycle(requires: dict[str, tuple[str, ...]], remaining: set[str]) -> str:
    start = min(remaining)
    path = [start]
    seen = {start: 0}
    node = start
    while True:
        node = min(r for r in requires[node] if r in remaining)
        if node in seen:
            loop = [*path[seen[node] :], node]
            return " -> ".join(loop)
        seen[node] = len(path)
        path.append(node)
