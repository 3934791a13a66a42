"""The events of operations (an ``ioid`` on a channel): get, put, put-get, monitor, array,
process, get-field and RPC. ``XInit``/``XInitResponse`` create an operation, ``X`` runs it and
``XResponse`` answers; responses leave ``destroy`` False (a connection echoes the request's
destroy flag itself)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from ._bitset import BitSet
from ._errors import LocalProtocolError
from ._event import ALL_CHANGED, NO_BITS, Event, check_u
from ._status import Status
from ._types import FieldDesc, Structure
from ._values import VariantValue

__all__ = [
    "RPC",
    "ArrayGet",
    "ArrayGetLength",
    "ArrayGetLengthResponse",
    "ArrayGetResponse",
    "ArrayInit",
    "ArrayInitResponse",
    "ArrayPut",
    "ArrayPutResponse",
    "ArraySetLength",
    "ArraySetLengthResponse",
    "Get",
    "GetField",
    "GetFieldResponse",
    "GetInit",
    "GetInitResponse",
    "GetResponse",
    "MessageTooBig",
    "MonitorAck",
    "MonitorDestroy",
    "MonitorFinish",
    "MonitorInit",
    "MonitorInitResponse",
    "MonitorStart",
    "MonitorStop",
    "MonitorUpdate",
    "Process",
    "ProcessInit",
    "ProcessInitResponse",
    "ProcessResponse",
    "Put",
    "PutGet",
    "PutGetInit",
    "PutGetInitResponse",
    "PutGetRead",
    "PutGetReadResponse",
    "PutGetResponse",
    "PutInit",
    "PutInitResponse",
    "PutRead",
    "PutReadResponse",
    "PutResponse",
    "RPCInit",
    "RPCInitResponse",
    "RPCResponse",
]


# ---------------------------------------------------------------------------------- get
@dataclass(frozen=True, slots=True, eq=False)
class GetInit(Event):
    sid: int
    ioid: int
    pv_request: VariantValue | None = None


@dataclass(frozen=True, slots=True, eq=False)
class GetInitResponse(Event):
    """``type`` is the structure later gets carry (None when status is not success)."""

    ioid: int
    status: Status = Status.OK
    type: Structure | None = None


@dataclass(frozen=True, slots=True, eq=False)
class Get(Event):
    sid: int
    ioid: int
    destroy: bool = False


@dataclass(frozen=True, slots=True, eq=False)
class GetResponse(Event):
    """``value`` is a full value; only the fields in ``changed`` travel."""

    ioid: int
    status: Status = Status.OK
    value: dict[str, Any] | None = None
    changed: BitSet = ALL_CHANGED
    destroy: bool = False


# ---------------------------------------------------------------------------------- put
@dataclass(frozen=True, slots=True, eq=False)
class PutInit(Event):
    sid: int
    ioid: int
    pv_request: VariantValue | None = None


@dataclass(frozen=True, slots=True, eq=False)
class PutInitResponse(Event):
    ioid: int
    status: Status = Status.OK
    type: Structure | None = None


@dataclass(frozen=True, slots=True, eq=False)
class Put(Event):
    """Write the fields of ``value`` named by ``changed`` (others keep their defaults)."""

    sid: int
    ioid: int
    value: dict[str, Any]
    changed: BitSet = ALL_CHANGED
    destroy: bool = False


@dataclass(frozen=True, slots=True, eq=False)
class PutResponse(Event):
    ioid: int
    status: Status = Status.OK
    destroy: bool = False


@dataclass(frozen=True, slots=True, eq=False)
class PutRead(Event):
    """PUT with the GET bit: read back the current value through a put operation."""

    sid: int
    ioid: int
    destroy: bool = False


@dataclass(frozen=True, slots=True, eq=False)
class PutReadResponse(Event):
    ioid: int
    status: Status = Status.OK
    value: dict[str, Any] | None = None
    changed: BitSet = ALL_CHANGED
    destroy: bool = False


# ------------------------------------------------------------------------------ put-get
@dataclass(frozen=True, slots=True, eq=False)
class PutGetInit(Event):
    sid: int
    ioid: int
    pv_request: VariantValue | None = None


@dataclass(frozen=True, slots=True, eq=False)
class PutGetInitResponse(Event):
    ioid: int
    status: Status = Status.OK
    put_type: Structure | None = None
    get_type: Structure | None = None


@dataclass(frozen=True, slots=True, eq=False)
class PutGet(Event):
    """Put ``value`` (of the put type) and receive a value of the get type."""

    sid: int
    ioid: int
    value: dict[str, Any]
    changed: BitSet = ALL_CHANGED
    destroy: bool = False


@dataclass(frozen=True, slots=True, eq=False)
class PutGetResponse(Event):
    ioid: int
    status: Status = Status.OK
    value: dict[str, Any] | None = None
    changed: BitSet = ALL_CHANGED
    destroy: bool = False


@dataclass(frozen=True, slots=True, eq=False)
class PutGetRead(Event):
    """Read the current "get" part (``part="get"``) or "put" part (``part="put"``)."""

    sid: int
    ioid: int
    part: Literal["get", "put"] = "get"
    destroy: bool = False

    def _validate(self) -> None:
        check_u("sid", self.sid, 32)
        check_u("ioid", self.ioid, 32)
        if self.part not in ("get", "put"):
            raise LocalProtocolError(f"part must be 'get' or 'put', not {self.part!r}")


@dataclass(frozen=True, slots=True, eq=False)
class PutGetReadResponse(Event):
    ioid: int
    part: Literal["get", "put"] = "get"
    status: Status = Status.OK
    value: dict[str, Any] | None = None
    changed: BitSet = ALL_CHANGED
    destroy: bool = False


# ------------------------------------------------------------------------------ monitor
@dataclass(frozen=True, slots=True, eq=False)
class MonitorInit(Event):
    """Subscribe. ``queue_size`` set = pipelined (flow control by MonitorAck)."""

    sid: int
    ioid: int
    pv_request: VariantValue | None = None
    queue_size: int | None = None

    def _validate(self) -> None:
        Event._validate(self)
        if self.queue_size is not None:
            check_u("queue_size", self.queue_size, 32)


@dataclass(frozen=True, slots=True, eq=False)
class MonitorInitResponse(Event):
    ioid: int
    status: Status = Status.OK
    type: Structure | None = None


@dataclass(frozen=True, slots=True, eq=False)
class MonitorStart(Event):
    sid: int
    ioid: int


@dataclass(frozen=True, slots=True, eq=False)
class MonitorStop(Event):
    sid: int
    ioid: int


@dataclass(frozen=True, slots=True, eq=False)
class MonitorAck(Event):
    """Pipeline: the client freed ``nfree`` queue slots; the server may send that many more."""

    sid: int
    ioid: int
    nfree: int

    def _validate(self) -> None:
        Event._validate(self)
        check_u("nfree", self.nfree, 32)


@dataclass(frozen=True, slots=True, eq=False)
class MonitorDestroy(Event):
    """Monitor subcommand DESTROY (pvAccessCPP clients; pvxs uses DestroyRequest)."""

    sid: int
    ioid: int


@dataclass(frozen=True, slots=True, eq=False)
class MonitorUpdate(Event):
    """A new value: fields in ``changed`` are new; ``overrun`` marks fields that changed
    more than once since the last update."""

    ioid: int
    value: dict[str, Any]
    changed: BitSet = ALL_CHANGED
    overrun: BitSet = NO_BITS

    def _validate(self) -> None:
        Event._validate(self)
        if not isinstance(self.overrun, BitSet):
            raise LocalProtocolError("overrun must be a BitSet")


@dataclass(frozen=True, slots=True, eq=False)
class MonitorFinish(Event):
    """Server -> client: the subscription ends (no more updates for ``ioid``)."""

    ioid: int
    status: Status = Status.OK


@dataclass(frozen=True, slots=True, eq=False)
class MessageTooBig(Event):
    """Server side: a client's request over ``max_message_size`` was skipped, unbuffered.
    Send ``reply`` (the request's error response, which says so) and the client sees why:
    the connection stays up. (A client receiving a reply over its limit gets that reply as an
    error response event instead: a get fails once, with a message saying so.)"""

    command: int
    sid: int
    ioid: int
    size: int
    limit: int
    reply: Any = None
    destroy: bool = False


# -------------------------------------------------------------------------------- array
@dataclass(frozen=True, slots=True, eq=False)
class ArrayInit(Event):
    sid: int
    ioid: int
    pv_request: VariantValue | None = None


@dataclass(frozen=True, slots=True, eq=False)
class ArrayInitResponse(Event):
    """``type`` is the array field's type (a ScalarArray or array of structures...)."""

    ioid: int
    status: Status = Status.OK
    type: FieldDesc | None = None


@dataclass(frozen=True, slots=True, eq=False)
class ArrayGet(Event):
    sid: int
    ioid: int
    offset: int = 0
    count: int = 0
    stride: int = 1
    destroy: bool = False

    def _validate(self) -> None:
        Event._validate(self)
        for n in ("offset", "count", "stride"):
            check_u(n, getattr(self, n), 32)


@dataclass(frozen=True, slots=True, eq=False)
class ArrayGetResponse(Event):
    ioid: int
    status: Status = Status.OK
    value: Any = None
    destroy: bool = False


@dataclass(frozen=True, slots=True, eq=False)
class ArrayPut(Event):
    sid: int
    ioid: int
    value: Any
    offset: int = 0
    stride: int = 1
    destroy: bool = False

    def _validate(self) -> None:
        Event._validate(self)
        for n in ("offset", "stride"):
            check_u(n, getattr(self, n), 32)


@dataclass(frozen=True, slots=True, eq=False)
class ArrayPutResponse(Event):
    ioid: int
    status: Status = Status.OK
    destroy: bool = False


@dataclass(frozen=True, slots=True, eq=False)
class ArraySetLength(Event):
    sid: int
    ioid: int
    length: int
    destroy: bool = False

    def _validate(self) -> None:
        Event._validate(self)
        check_u("length", self.length, 32)


@dataclass(frozen=True, slots=True, eq=False)
class ArraySetLengthResponse(Event):
    ioid: int
    status: Status = Status.OK
    destroy: bool = False


@dataclass(frozen=True, slots=True, eq=False)
class ArrayGetLength(Event):
    sid: int
    ioid: int
    destroy: bool = False


@dataclass(frozen=True, slots=True, eq=False)
class ArrayGetLengthResponse(Event):
    ioid: int
    status: Status = Status.OK
    length: int = 0
    destroy: bool = False

    def _validate(self) -> None:
        Event._validate(self)
        check_u("length", self.length, 32)


# ------------------------------------------------------------------------------ process
@dataclass(frozen=True, slots=True, eq=False)
class ProcessInit(Event):
    sid: int
    ioid: int
    pv_request: VariantValue | None = None


@dataclass(frozen=True, slots=True, eq=False)
class ProcessInitResponse(Event):
    ioid: int
    status: Status = Status.OK


@dataclass(frozen=True, slots=True, eq=False)
class Process(Event):
    sid: int
    ioid: int
    destroy: bool = False


@dataclass(frozen=True, slots=True, eq=False)
class ProcessResponse(Event):
    ioid: int
    status: Status = Status.OK
    destroy: bool = False


# ---------------------------------------------------------------------------- get-field
@dataclass(frozen=True, slots=True, eq=False)
class GetField(Event):
    """Ask for a channel's type (``sub_field`` empty = the whole structure)."""

    sid: int
    ioid: int
    sub_field: str = ""


@dataclass(frozen=True, slots=True, eq=False)
class GetFieldResponse(Event):
    ioid: int
    status: Status = Status.OK
    type: FieldDesc | None = None


# ---------------------------------------------------------------------------------- rpc
@dataclass(frozen=True, slots=True, eq=False)
class RPCInit(Event):
    sid: int
    ioid: int
    pv_request: VariantValue | None = None


@dataclass(frozen=True, slots=True, eq=False)
class RPCInitResponse(Event):
    ioid: int
    status: Status = Status.OK


@dataclass(frozen=True, slots=True, eq=False)
class RPC(Event):
    """Call: ``argument`` is any typed value (usually an NTURI structure)."""

    sid: int
    ioid: int
    argument: VariantValue | None = None
    destroy: bool = False


@dataclass(frozen=True, slots=True, eq=False)
class RPCResponse(Event):
    ioid: int
    status: Status = Status.OK
    result: VariantValue | None = None
    destroy: bool = False
