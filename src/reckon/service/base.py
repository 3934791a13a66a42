"""The base class of Python service implementations.

An implementation names its definition and writes one ``async def`` per RPC, named as in the
.proto, taking ``(request, ctx: CallContext)``. A method whose requests stream gets an async
iterator of them as ``request``; a method whose responses stream is an async generator that
``yield``s them. The runtime sets ``self.ctx`` and awaits
``ready()`` once everything the service requires is ready; ``stop()`` runs at shutdown.
"""

from __future__ import annotations

import inspect
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, ClassVar

from reckon.errors import DeploymentError

if TYPE_CHECKING:
    from reckon.service.context import ServiceContext
    from reckon.service.definition import ServiceDef


class Service:
    """Subclass, set ``definition`` and implement every method of it as ``async def``."""

    definition: ClassVar[ServiceDef[Any]]
    #: SQL statements applied in order, once each, to ``ctx.db`` (tracked by PRAGMA user_version).
    migrations: ClassVar[Sequence[str]] = ()
    #: Definitions this implementation calls; merged with the deployment's ``requires``.
    requires: ClassVar[Sequence[ServiceDef[Any]]] = ()

    ctx: ServiceContext

    async def ready(self) -> None:
        """Runs after every required service is ready and before any call arrives."""

    async def stop(self) -> None:
        """Runs at shutdown, in reverse start order."""


def check_implementation(cls: type, definition: ServiceDef[Any], where: str) -> None:
    """Refuse, before anything starts, a class that does not implement its definition."""
    if not isinstance(cls, type):
        raise DeploymentError(f"{where}: implementation {cls!r} is not a class")
    own = getattr(cls, "definition", None)
    if own is not None and own != definition:
        raise DeploymentError(
            f"{where}: {cls.__name__} implements {own.full_name}, "
            f"but the deployment says {definition.full_name}"
        )
    missing = []
    for name, m in definition.methods.items():
        fn = getattr(cls, name, None)
        if fn is None or not _is_async(fn):
            missing.append(name)
        elif m.server_streaming and not _is_async_generator(fn):
            raise DeploymentError(
                f"{where}: {cls.__name__}.{name} streams its responses "
                f"({definition.full_name}.{name} returns a stream): write it as an async "
                "generator, `async def` that `yield`s each response"
            )
        elif not m.server_streaming and _is_async_generator(fn):
            raise DeploymentError(
                f"{where}: {cls.__name__}.{name} yields, but {definition.full_name}.{name} "
                "returns one message: `return` it instead"
            )
    if missing:
        raise DeploymentError(
            f"{where}: {cls.__name__} must define async methods {', '.join(sorted(missing))} "
            f"of {definition.full_name}"
        )


def _is_async(fn: object) -> bool:
    """An async def (or async generator), or a wrapper of one (``@memoize`` and
    functools.wraps-style decorators)."""
    while fn is not None:
        if inspect.iscoroutinefunction(fn) or inspect.isasyncgenfunction(fn):
            return True
        fn = getattr(fn, "__wrapped__", None)
    return False


def _is_async_generator(fn: object) -> bool:
    while fn is not None:
        if inspect.isasyncgenfunction(fn):
            return True
        fn = getattr(fn, "__wrapped__", None)
    return False
