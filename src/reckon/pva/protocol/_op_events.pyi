"""Types of the events generated from the message table (:mod:`._table`), for a type
checker: written by ``make pva-stubs`` from :func:`._table.stubs` (do not edit)."""

from dataclasses import dataclass
from typing import Any, Literal

from ._bitset import BitSet
from ._constants import MessageSeverity
from ._event import Event
from ._status import Status
from ._types import FieldDesc, Structure
from ._values import VariantValue

__all__ = [
    "RPC",
    "AckTotalBytesReceived",
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
    "AuthNZ",
    "CancelRequest",
    "ConnectionValidated",
    "ControlEchoRequest",
    "ControlEchoResponse",
    "CreateChannelRequest",
    "CreateChannelResponse",
    "DestroyChannel",
    "DestroyRequest",
    "Echo",
    "Get",
    "GetField",
    "GetFieldResponse",
    "GetInit",
    "GetInitResponse",
    "GetResponse",
    "MarkTotalBytesSent",
    "Message",
    "MonitorAck",
    "MonitorDestroy",
    "MonitorFinish",
    "MonitorInit",
    "MonitorInitResponse",
    "MonitorStart",
    "MonitorStop",
    "MonitorUpdate",
    "OriginTag",
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
    "SetByteOrder",
]

@dataclass(frozen=True)
class ConnectionValidated(Event):
    """Server -> client: the handshake result."""

    status: Status = ...

@dataclass(frozen=True)
class Echo(Event):
    """Application echo (keep-alive): a client sends it, the server returns the payload."""

    payload: bytes = ...

@dataclass(frozen=True)
class OriginTag(Event):
    """UDP: the original destination of a forwarded search (pvxs forwarding)."""

    address: str = ...

@dataclass(frozen=True)
class AuthNZ(Event):
    """Authentication plugin exchange (no plugin uses it today)."""

    data: VariantValue | None = ...

@dataclass(frozen=True)
class CreateChannelRequest(Event):
    """Client -> server: open channel ``name``; the client numbers it ``cid``."""

    cid: int
    name: str

@dataclass(frozen=True)
class CreateChannelResponse(Event):
    """Server -> client: channel ``cid`` is ``sid`` on the server (if status is success)."""

    cid: int
    sid: int
    status: Status = ...

@dataclass(frozen=True)
class DestroyChannel(Event):
    """Either way: close a channel (the server echoes a client's request)."""

    sid: int
    cid: int

@dataclass(frozen=True)
class DestroyRequest(Event):
    """Client -> server: forget operation ``ioid``."""

    sid: int
    ioid: int

@dataclass(frozen=True)
class CancelRequest(Event):
    """Client -> server: abandon the running execution of ``ioid`` (the op stays usable)."""

    sid: int
    ioid: int

@dataclass(frozen=True)
class Message(Event):
    """Server -> client: a human-readable text about operation ``ioid``."""

    ioid: int
    severity: MessageSeverity
    text: str = ...

@dataclass(frozen=True)
class GetInit(Event):
    sid: int
    ioid: int
    pv_request: VariantValue | None = ...

@dataclass(frozen=True)
class GetInitResponse(Event):
    """``type`` is the structure later gets carry (None when status is not success)."""

    ioid: int
    status: Status = ...
    type: Structure | None = ...

@dataclass(frozen=True)
class Get(Event):
    sid: int
    ioid: int
    destroy: bool = ...

@dataclass(frozen=True)
class GetResponse(Event):
    """``value`` is a full value; only the fields in ``changed`` travel."""

    ioid: int
    status: Status = ...
    value: dict[str, Any] | None = ...
    changed: BitSet = ...
    destroy: bool = ...

@dataclass(frozen=True)
class PutInit(Event):
    sid: int
    ioid: int
    pv_request: VariantValue | None = ...

@dataclass(frozen=True)
class PutInitResponse(Event):
    ioid: int
    status: Status = ...
    type: Structure | None = ...

@dataclass(frozen=True)
class PutRead(Event):
    """PUT with the GET bit: read back the current value through a put operation."""

    sid: int
    ioid: int
    destroy: bool = ...

@dataclass(frozen=True)
class PutReadResponse(Event):
    ioid: int
    status: Status = ...
    value: dict[str, Any] | None = ...
    changed: BitSet = ...
    destroy: bool = ...

@dataclass(frozen=True)
class Put(Event):
    """Write the fields of ``value`` named by ``changed`` (others keep their defaults)."""

    sid: int
    ioid: int
    value: dict[str, Any]
    changed: BitSet = ...
    destroy: bool = ...

@dataclass(frozen=True)
class PutResponse(Event):
    ioid: int
    status: Status = ...
    destroy: bool = ...

@dataclass(frozen=True)
class PutGetInit(Event):
    sid: int
    ioid: int
    pv_request: VariantValue | None = ...

@dataclass(frozen=True)
class PutGetInitResponse(Event):
    ioid: int
    status: Status = ...
    put_type: Structure | None = ...
    get_type: Structure | None = ...

@dataclass(frozen=True)
class PutGetRead(Event):
    """Read the current "get" part (``part="get"``) or "put" part (``part="put"``)."""

    sid: int
    ioid: int
    part: Literal["get", "put"] = ...
    destroy: bool = ...

@dataclass(frozen=True)
class PutGetReadResponse(Event):
    ioid: int
    part: Literal["get", "put"] = ...
    status: Status = ...
    value: dict[str, Any] | None = ...
    changed: BitSet = ...
    destroy: bool = ...

@dataclass(frozen=True)
class PutGet(Event):
    """Put ``value`` (of the put type) and receive a value of the get type."""

    sid: int
    ioid: int
    value: dict[str, Any]
    changed: BitSet = ...
    destroy: bool = ...

@dataclass(frozen=True)
class PutGetResponse(Event):
    ioid: int
    status: Status = ...
    value: dict[str, Any] | None = ...
    changed: BitSet = ...
    destroy: bool = ...

@dataclass(frozen=True)
class MonitorInit(Event):
    """Subscribe. ``queue_size`` set = pipelined (flow control by MonitorAck)."""

    sid: int
    ioid: int
    pv_request: VariantValue | None = ...
    queue_size: int | None = ...

@dataclass(frozen=True)
class MonitorInitResponse(Event):
    ioid: int
    status: Status = ...
    type: Structure | None = ...

@dataclass(frozen=True)
class MonitorAck(Event):
    """Pipeline: the client freed ``nfree`` queue slots; the server may send that many more."""

    sid: int
    ioid: int
    nfree: int

@dataclass(frozen=True)
class MonitorStart(Event):
    sid: int
    ioid: int

@dataclass(frozen=True)
class MonitorStop(Event):
    sid: int
    ioid: int

@dataclass(frozen=True)
class MonitorDestroy(Event):
    """Monitor subcommand DESTROY (pvAccessCPP clients; pvxs uses DestroyRequest)."""

    sid: int
    ioid: int

@dataclass(frozen=True)
class MonitorFinish(Event):
    """Server -> client: the subscription ends (no more updates for ``ioid``)."""

    ioid: int
    status: Status = ...

@dataclass(frozen=True)
class MonitorUpdate(Event):
    """A new value: fields in ``changed`` are new; ``overrun`` marks fields that changed more than
    once since the last update."""

    ioid: int
    value: dict[str, Any]
    changed: BitSet = ...
    overrun: BitSet = ...

@dataclass(frozen=True)
class ArrayInit(Event):
    sid: int
    ioid: int
    pv_request: VariantValue | None = ...

@dataclass(frozen=True)
class ArrayInitResponse(Event):
    """``type`` is the array field's type (a ScalarArray or array of structures...)."""

    ioid: int
    status: Status = ...
    type: FieldDesc | None = ...

@dataclass(frozen=True)
class ArrayGet(Event):
    sid: int
    ioid: int
    offset: int = ...
    count: int = ...
    stride: int = ...
    destroy: bool = ...

@dataclass(frozen=True)
class ArrayGetResponse(Event):
    ioid: int
    status: Status = ...
    value: Any = ...
    destroy: bool = ...

@dataclass(frozen=True)
class ArraySetLength(Event):
    sid: int
    ioid: int
    length: int
    destroy: bool = ...

@dataclass(frozen=True)
class ArraySetLengthResponse(Event):
    ioid: int
    status: Status = ...
    destroy: bool = ...

@dataclass(frozen=True)
class ArrayGetLength(Event):
    sid: int
    ioid: int
    destroy: bool = ...

@dataclass(frozen=True)
class ArrayGetLengthResponse(Event):
    ioid: int
    status: Status = ...
    length: int = ...
    destroy: bool = ...

@dataclass(frozen=True)
class ArrayPut(Event):
    sid: int
    ioid: int
    value: Any
    offset: int = ...
    stride: int = ...
    destroy: bool = ...

@dataclass(frozen=True)
class ArrayPutResponse(Event):
    ioid: int
    status: Status = ...
    destroy: bool = ...

@dataclass(frozen=True)
class ProcessInit(Event):
    sid: int
    ioid: int
    pv_request: VariantValue | None = ...

@dataclass(frozen=True)
class ProcessInitResponse(Event):
    ioid: int
    status: Status = ...

@dataclass(frozen=True)
class Process(Event):
    sid: int
    ioid: int
    destroy: bool = ...

@dataclass(frozen=True)
class ProcessResponse(Event):
    ioid: int
    status: Status = ...
    destroy: bool = ...

@dataclass(frozen=True)
class GetField(Event):
    """Ask for a channel's type (``sub_field`` empty = the whole structure)."""

    sid: int
    ioid: int
    sub_field: str = ...

@dataclass(frozen=True)
class GetFieldResponse(Event):
    ioid: int
    status: Status = ...
    type: FieldDesc | None = ...

@dataclass(frozen=True)
class RPCInit(Event):
    sid: int
    ioid: int
    pv_request: VariantValue | None = ...

@dataclass(frozen=True)
class RPCInitResponse(Event):
    ioid: int
    status: Status = ...

@dataclass(frozen=True)
class RPC(Event):
    """Call: ``argument`` is any typed value (usually an NTURI structure)."""

    sid: int
    ioid: int
    argument: VariantValue | None = ...
    destroy: bool = ...

@dataclass(frozen=True)
class RPCResponse(Event):
    ioid: int
    status: Status = ...
    result: VariantValue | None = ...
    destroy: bool = ...

@dataclass(frozen=True)
class SetByteOrder(Event):
    """Control: the server's first message; the client sends in this byte order from now on."""

    big_endian: bool = ...

@dataclass(frozen=True)
class MarkTotalBytesSent(Event):
    """Control: flow-control marker (pvAccessCPP); nobody acts on it today."""

    total: int = ...

@dataclass(frozen=True)
class AckTotalBytesReceived(Event):
    """Control: answer to MarkTotalBytesSent."""

    total: int = ...

@dataclass(frozen=True)
class ControlEchoRequest(Event):
    """Control echo (pvAccessCPP); ``value`` travels in the header's size field."""

    value: int = ...

@dataclass(frozen=True)
class ControlEchoResponse(Event):
    """Control echo's answer."""

    value: int = ...
