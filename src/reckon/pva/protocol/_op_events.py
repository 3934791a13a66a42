"""The events generated from the message table (:mod:`._table`): those of operations (an
``ioid`` on a channel: get, put, put-get, monitor, array, process, get-field and RPC) and the
plain messages of connections and channels (the others, with more to check, are written in
:mod:`._events`). ``XInit``/``XInitResponse`` create an operation, ``X`` runs it and
``XResponse`` answers; responses leave ``destroy`` False (a connection echoes the request's
destroy flag itself).

The declarations under ``TYPE_CHECKING`` give the generated classes their types for a type
checker (a test keeps both the same)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from ._event import Event
from ._table import MESSAGES

if TYPE_CHECKING:
    from ._bitset import BitSet
    from ._event import ALL_CHANGED, NO_BITS
    from ._status import Status
    from ._types import FieldDesc, Structure
    from ._values import VariantValue

    @dataclass(frozen=True)
    class _Ids(Event):
        sid: int
        ioid: int

    @dataclass(frozen=True)
    class _Init(_Ids):
        pv_request: VariantValue | None = None

    @dataclass(frozen=True)
    class _Exec(_Ids):
        destroy: bool = False

    @dataclass(frozen=True)
    class _Reply(Event):
        ioid: int
        status: Status = Status.OK

    @dataclass(frozen=True)
    class _TypeReply(_Reply):
        type: Structure | None = None

    @dataclass(frozen=True)
    class _FieldReply(_Reply):
        type: FieldDesc | None = None

    @dataclass(frozen=True)
    class _ExecReply(_Reply):
        destroy: bool = False

    @dataclass(frozen=True)
    class _ValueExec(_Ids):
        value: dict[str, Any]
        changed: BitSet = ALL_CHANGED
        destroy: bool = False

    @dataclass(frozen=True)
    class _ValueReply(_Reply):
        value: dict[str, Any] | None = None
        changed: BitSet = ALL_CHANGED
        destroy: bool = False

    @dataclass(frozen=True)
    class ConnectionValidated(Event):
        status: Status = Status.OK

    @dataclass(frozen=True)
    class Echo(Event):
        payload: bytes = b""

    @dataclass(frozen=True)
    class OriginTag(Event):
        address: str = "0.0.0.0"

    @dataclass(frozen=True)
    class AuthNZ(Event):
        data: VariantValue | None = None

    @dataclass(frozen=True)
    class CreateChannelRequest(Event):
        cid: int
        name: str

    @dataclass(frozen=True)
    class CreateChannelResponse(Event):
        cid: int
        sid: int
        status: Status = Status.OK

    @dataclass(frozen=True)
    class DestroyChannel(Event):
        sid: int
        cid: int

    class DestroyRequest(_Ids): ...

    class CancelRequest(_Ids): ...

    class GetInit(_Init): ...

    class GetInitResponse(_TypeReply): ...

    class Get(_Exec): ...

    class GetResponse(_ValueReply): ...

    class PutInit(_Init): ...

    class PutInitResponse(_TypeReply): ...

    class PutRead(_Exec): ...

    class PutReadResponse(_ValueReply): ...

    class Put(_ValueExec): ...

    class PutResponse(_ExecReply): ...

    class PutGetInit(_Init): ...

    @dataclass(frozen=True)
    class PutGetInitResponse(_Reply):
        put_type: Structure | None = None
        get_type: Structure | None = None

    @dataclass(frozen=True)
    class PutGetRead(_Ids):
        part: Literal["get", "put"] = "get"
        destroy: bool = False

    @dataclass(frozen=True)
    class PutGetReadResponse(Event):
        ioid: int
        part: Literal["get", "put"] = "get"
        status: Status = Status.OK
        value: dict[str, Any] | None = None
        changed: BitSet = ALL_CHANGED
        destroy: bool = False

    class PutGet(_ValueExec): ...

    class PutGetResponse(_ValueReply): ...

    @dataclass(frozen=True)
    class MonitorInit(_Init):
        queue_size: int | None = None

    class MonitorInitResponse(_TypeReply): ...

    class MonitorStart(_Ids): ...

    class MonitorStop(_Ids): ...

    @dataclass(frozen=True)
    class MonitorAck(_Ids):
        nfree: int

    class MonitorDestroy(_Ids): ...

    @dataclass(frozen=True)
    class MonitorUpdate(Event):
        ioid: int
        value: dict[str, Any]
        changed: BitSet = ALL_CHANGED
        overrun: BitSet = NO_BITS

    class MonitorFinish(_Reply): ...

    class ArrayInit(_Init): ...

    class ArrayInitResponse(_FieldReply): ...

    @dataclass(frozen=True)
    class ArrayGet(_Ids):
        offset: int = 0
        count: int = 0
        stride: int = 1
        destroy: bool = False

    @dataclass(frozen=True)
    class ArrayGetResponse(_Reply):
        value: Any = None
        destroy: bool = False

    @dataclass(frozen=True)
    class ArrayPut(_Ids):
        value: Any
        offset: int = 0
        stride: int = 1
        destroy: bool = False

    class ArrayPutResponse(_ExecReply): ...

    @dataclass(frozen=True)
    class ArraySetLength(_Ids):
        length: int
        destroy: bool = False

    class ArraySetLengthResponse(_ExecReply): ...

    class ArrayGetLength(_Exec): ...

    @dataclass(frozen=True)
    class ArrayGetLengthResponse(_Reply):
        length: int = 0
        destroy: bool = False

    class ProcessInit(_Init): ...

    class ProcessInitResponse(_Reply): ...

    class Process(_Exec): ...

    class ProcessResponse(_ExecReply): ...

    @dataclass(frozen=True)
    class GetField(_Ids):
        sub_field: str = ""

    class GetFieldResponse(_FieldReply): ...

    class RPCInit(_Init): ...

    class RPCInitResponse(_Reply): ...

    @dataclass(frozen=True)
    class RPC(_Ids):
        argument: VariantValue | None = None
        destroy: bool = False

    @dataclass(frozen=True)
    class RPCResponse(_Reply):
        result: VariantValue | None = None
        destroy: bool = False

else:
    globals().update(
        {r.event.__name__: r.event for r in MESSAGES if r.event.__module__ == __name__}
    )


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
    "AuthNZ",
    "CancelRequest",
    "ConnectionValidated",
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
    "MessageTooBig",
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
]
