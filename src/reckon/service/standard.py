"""The standard gRPC services every server of a unit answers: health and server reflection.

They are reckon services like any other (a definition read from a generated module, handlers on a
:class:`~reckon.service.base.Service`), so they are served by the same code on gRPC and on
Connect. Health (``grpc.health.v1.Health``) reports each service the server serves: ``Check`` of
a name the server does not serve is NOT_FOUND, ``Watch`` sends the status now and then each change
(SERVICE_UNKNOWN for a name it does not serve), ``List`` gives them all; the empty name is the
server as a whole. Reflection (``grpc.reflection.v1`` and ``v1alpha``) lets tools such as
``buf curl`` and ``grpcurl`` call a service knowing only its address; it is grpcio-reflection's
servicer, with the v1 protocol (the same messages under a new package name) bridged to it.
"""

from __future__ import annotations

import asyncio
import types
from collections.abc import AsyncIterator, Callable, Iterable
from typing import Any

from google.protobuf import descriptor_pb2, descriptor_pool
from grpc_health.v1 import health_pb2
from grpc_reflection.v1alpha import reflection_pb2 as v1alpha_pb2
from grpc_reflection.v1alpha._async import ReflectionServicer

from reckon.errors import ServiceCallError
from reckon.service.base import Service
from reckon.service.context import CallContext
from reckon.service.definition import ServiceDef

HEALTH: ServiceDef[Any] = ServiceDef.from_module(health_pb2, "Health")
REFLECTION_V1ALPHA: ServiceDef[Any] = ServiceDef.from_module(v1alpha_pb2, "ServerReflection")

SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING
SERVICE_UNKNOWN = health_pb2.HealthCheckResponse.SERVICE_UNKNOWN


def _v1_module() -> types.ModuleType:
    """``grpc/reflection/v1/reflection.proto``: v1alpha's file under v1's package and name."""
    pool = descriptor_pool.Default()
    name = "grpc/reflection/v1/reflection.proto"
    try:
        fd = pool.FindFileByName(name)
    except KeyError:
        proto = descriptor_pb2.FileDescriptorProto()
        v1alpha_pb2.DESCRIPTOR.CopyToProto(proto)
        proto.name = name
        proto.package = "grpc.reflection.v1"
        proto.options.Clear()
        for message in proto.message_type:
            for f in message.field:
                if f.type_name.startswith(".grpc.reflection.v1alpha."):
                    f.type_name = f.type_name.replace(".v1alpha.", ".v1.", 1)
        for service in proto.service:
            for m in service.method:
                m.input_type = m.input_type.replace(".v1alpha.", ".v1.", 1)
                m.output_type = m.output_type.replace(".v1alpha.", ".v1.", 1)
        pool.Add(proto)
        fd = pool.FindFileByName(name)
    module = types.ModuleType("reckon_grpc_reflection_v1_pb2")
    module.DESCRIPTOR = fd  # type: ignore[attr-defined]
    return module


REFLECTION_V1: ServiceDef[Any] = ServiceDef.from_module(_v1_module(), "ServerReflection")
STANDARD = (HEALTH, REFLECTION_V1, REFLECTION_V1ALPHA)


class HealthBoard:
    """The serving status of each service of one server; watchers wake on every change."""

    def __init__(self, services: Iterable[str] = ()) -> None:
        self._status: dict[str, int] = {"": SERVING}
        for s in (*services, *(d.full_name for d in STANDARD)):
            self._status[s] = SERVING
        self._version = 0
        self._changed: asyncio.Condition | None = None

    def _condition(self) -> asyncio.Condition:
        if self._changed is None:
            self._changed = asyncio.Condition()
        return self._changed

    async def set(self, service: str, status: int) -> None:
        """Set one status (``""``: the whole server) and wake the watchers."""
        if self._status.get(service) == status:
            return
        self._status[service] = status
        cond = self._condition()
        async with cond:
            self._version += 1
            cond.notify_all()

    async def stopping(self) -> None:
        """Everything NOT_SERVING: watchers learn it before the server goes."""
        for name in list(self._status):
            await self.set(name, NOT_SERVING)

    def get(self, service: str) -> int | None:
        return self._status.get(service)

    def all(self) -> dict[str, int]:
        return dict(self._status)

    async def changed_since(self, version: int) -> int:
        cond = self._condition()
        async with cond:
            while self._version == version:
                await cond.wait()
            return self._version

    @property
    def version(self) -> int:
        return self._version


class HealthService(Service):
    """``grpc.health.v1.Health`` over a :class:`HealthBoard`."""

    definition = HEALTH

    def __init__(self, board: HealthBoard) -> None:
        self.board = board

    async def Check(
        self, request: health_pb2.HealthCheckRequest, ctx: CallContext
    ) -> health_pb2.HealthCheckResponse:
        status = self.board.get(request.service)
        if status is None:
            served = ", ".join(sorted(n for n in self.board.all() if n)) or "none"
            raise ServiceCallError(
                f"this server does not serve {request.service!r} (it serves: {served})",
                "NOT_FOUND",
            )
        return health_pb2.HealthCheckResponse(status=status)

    async def List(
        self, request: health_pb2.HealthListRequest, ctx: CallContext
    ) -> health_pb2.HealthListResponse:
        out = health_pb2.HealthListResponse()
        for name, status in sorted(self.board.all().items()):
            out.statuses[name].status = status
        return out

    async def Watch(
        self, request: health_pb2.HealthCheckRequest, ctx: CallContext
    ) -> AsyncIterator[health_pb2.HealthCheckResponse]:
        last = None
        while True:
            version = self.board.version
            status = self.board.get(request.service)
            status = SERVICE_UNKNOWN if status is None else status
            if status != last:
                last = status
                yield health_pb2.HealthCheckResponse(status=status)
            await self.board.changed_since(version)


class ReflectionService(Service):
    """``grpc.reflection.v1alpha.ServerReflection``: grpcio-reflection's servicer, over the
    services the server serves when the call comes (services join a server as they start)."""

    definition = REFLECTION_V1ALPHA

    def __init__(self, services: Callable[[], Iterable[str]]) -> None:
        self._services = services

    def _servicer(self) -> ReflectionServicer:
        return ReflectionServicer(sorted({*self._services(), *(d.full_name for d in STANDARD)}))

    async def ServerReflectionInfo(
        self, request: AsyncIterator[Any], ctx: CallContext
    ) -> AsyncIterator[Any]:
        async for response in self._servicer().ServerReflectionInfo(request, None):
            yield response


class ReflectionV1Service(ReflectionService):
    """``grpc.reflection.v1.ServerReflection``: the same answers (the messages are the same on
    the wire), converted to and from v1alpha."""

    definition = REFLECTION_V1

    async def ServerReflectionInfo(
        self, request: AsyncIterator[Any], ctx: CallContext
    ) -> AsyncIterator[Any]:
        method = REFLECTION_V1.methods["ServerReflectionInfo"]

        async def as_v1alpha() -> AsyncIterator[Any]:
            async for r in request:
                yield v1alpha_pb2.ServerReflectionRequest.FromString(r.SerializeToString())

        async for response in self._servicer().ServerReflectionInfo(as_v1alpha(), None):
            yield method.output.FromString(response.SerializeToString())


def standard_services(board: HealthBoard) -> list[Service]:
    """Health and reflection for a server whose services are those on ``board``."""

    def served() -> list[str]:
        return [name for name in board.all() if name]

    return [HealthService(board), ReflectionV1Service(served), ReflectionService(served)]
