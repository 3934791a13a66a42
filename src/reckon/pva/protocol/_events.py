"""Events: what a connection turns received bytes into, and what ``send()`` turns into bytes.

Every event is a small frozen dataclass validated on creation. Names follow the protocol:
``XInit``/``XInitResponse`` create an operation (request ``ioid`` on channel ``sid``), ``X`` runs
it and ``XResponse`` answers. Responses leave ``destroy`` False; a connection echoes the
request's destroy flag itself.

Values: structures are dicts, ``changed`` is a :class:`BitSet` of offsets. On receive, the
connection hands out full values: a delta is merged into the previous value of that request.
"""

from __future__ import annotations

import dataclasses
import ipaddress
from dataclasses import dataclass
from typing import Any, Literal

from ._bitset import BitSet
from ._constants import MessageSeverity
from ._errors import LocalProtocolError
from ._status import Status
from ._types import FieldDesc, Structure
from ._values import VariantValue, values_equal

__all__ = [
    "ALL_CHANGED",
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
    "Beacon",
    "CancelRequest",
    "ConnectionClosed",
    "ConnectionValidated",
    "ConnectionValidationRequest",
    "ConnectionValidationResponse",
    "ControlEchoRequest",
    "ControlEchoResponse",
    "CreateChannelRequest",
    "CreateChannelResponse",
    "DestroyChannel",
    "DestroyRequest",
    "Echo",
    "Event",
    "Get",
    "GetField",
    "GetFieldResponse",
    "GetInit",
    "GetInitResponse",
    "GetResponse",
    "MarkTotalBytesSent",
    "Message",
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
    "SearchRequest",
    "SearchResponse",
    "SetByteOrder",
]

ALL_CHANGED = BitSet.from_mask(1)
"""Bit 0 alone: the whole structure."""
NO_BITS = BitSet.from_mask(0)


def _check_u(name: str, v: object, bits: int) -> None:
    if not isinstance(v, int) or isinstance(v, bool) or not 0 <= v < (1 << bits):
        raise LocalProtocolError(f"{name} must be an unsigned {bits}-bit int, not {v!r}")


def _check_str(name: str, v: object) -> None:
    if not isinstance(v, str):
        raise LocalProtocolError(f"{name} must be a str, not {v!r}")


def _check_addr(name: str, v: object) -> None:
    try:
        ipaddress.ip_address(v)  # type: ignore[arg-type]
    except ValueError:
        raise LocalProtocolError(f"{name} must be an IPv4 or IPv6 address, not {v!r}") from None


def _check_u32(name: str, v: object) -> None:
    if v.__class__ is not int or not 0 <= v <= 0xFFFFFFFF:
        _check_u(name, v, 32)


def _check_status(name: str, v: object) -> None:
    if not isinstance(v, Status):
        raise LocalProtocolError(f"status must be a Status, not {v!r}")


def _check_bitset(name: str, v: object) -> None:
    if not isinstance(v, BitSet):
        raise LocalProtocolError(f"{name} must be a BitSet, not {v!r}")


def _check_request(name: str, v: object) -> None:
    if v is not None and not isinstance(v, VariantValue):
        raise LocalProtocolError("pv_request must be a VariantValue (see pv_request()) or None")


_FIELD_CHECKS: dict[str, Any] = {
    "sid": _check_u32,
    "cid": _check_u32,
    "ioid": _check_u32,
    "sequence": _check_u32,
    "port": lambda n, v: _check_u(n, v, 16),
    "change_count": lambda n, v: _check_u(n, v, 16),
    "address": _check_addr,
    "response_address": _check_addr,
    "status": _check_status,
    "changed": _check_bitset,
    "pv_request": _check_request,
}
_CHECKS: dict[type, tuple[tuple[str, Any], ...]] = {}
_NAMES: dict[type, tuple[str, ...]] = {}


_MAKERS: dict[type, Any] = {}


def maker(cls: type) -> Any:
    """The generated unchecked constructor of an event class (made once, then cached)."""
    make = _MAKERS.get(cls)
    if make is None:
        make = _MAKERS[cls] = _maker(cls)
    return make


def _maker(cls: type) -> Any:
    """A constructor of ``cls`` that stores each field through its slot descriptor (frozen
    dataclasses refuse ``setattr``), generated once per class: about a third of the cost of
    a loop of ``object.__setattr__``."""
    names = tuple(f.name for f in dataclasses.fields(cls))
    env: dict[str, Any] = {"_new": object.__new__, "_cls": cls}
    lines = [f"def make({', '.join(f'a{i}' for i in range(len(names)))}):", "    ev = _new(_cls)"]
    for i, name in enumerate(names):
        env[f"_s{i}"] = cls.__dict__[name].__set__
        lines.append(f"    _s{i}(ev, a{i})")
    lines.append("    return ev")
    exec("\n".join(lines), env)  # field names come from our own dataclasses
    return env["make"]


class Event:
    """Base of every event."""

    __slots__ = ()

    def _validate(self) -> None:
        cls = type(self)
        checks = _CHECKS.get(cls)
        if checks is None:
            checks = _CHECKS[cls] = tuple(
                (f.name, _FIELD_CHECKS[f.name])
                for f in dataclasses.fields(self)  # type: ignore[arg-type]
                if f.name in _FIELD_CHECKS
            )
        for name, check in checks:
            check(name, getattr(self, name))

    def _replaced(self, **changes: Any) -> Any:
        """A copy with some fields changed, without validation (the caller vouches)."""
        names = _NAMES.get(type(self))
        if names is None:
            names = _NAMES[type(self)] = tuple(f.name for f in dataclasses.fields(self))  # type: ignore[arg-type]
        return self._trusted(*[changes.get(n, getattr(self, n)) for n in names])

    @classmethod
    def _trusted(cls, *args: Any) -> Any:
        """Build without validation: for events decoded from bytes that are valid by
        construction (hot receive paths)."""
        make = _MAKERS.get(cls)
        if make is None:
            make = maker(cls)
        return make(*args)

    @classmethod
    def unchecked(cls, *args: Any) -> Any:
        """Build with every field given positionally and no validation: for a server's
        responses built from values it already holds (ids it received, types and values of
        its own PVs), on paths where checking each field would cost more than encoding it.
        Passing wrong types gives undefined results; use the normal constructor otherwise."""
        make = _MAKERS.get(cls)
        if make is None:
            make = maker(cls)
        return make(*args)

    def __post_init__(self) -> None:
        self._validate()

    def __eq__(self, other: object) -> bool:
        if type(other) is not type(self):
            return NotImplemented
        return all(
            values_equal(getattr(self, f.name), getattr(other, f.name))
            for f in dataclasses.fields(self)  # type: ignore[arg-type]
        )

    __hash__ = None  # type: ignore[assignment]


# ---------------------------------------------------------------------------- control messages
@dataclass(frozen=True, slots=True, eq=False)
class SetByteOrder(Event):
    """Control: the server's first message; the client sends in this byte order from now on."""

    big_endian: bool = False


@dataclass(frozen=True, slots=True, eq=False)
class MarkTotalBytesSent(Event):
    """Control: flow-control marker (pvAccessCPP); nobody acts on it today."""

    total: int = 0

    def __post_init__(self) -> None:
        _check_u("total", self.total, 32)


@dataclass(frozen=True, slots=True, eq=False)
class AckTotalBytesReceived(Event):
    """Control: answer to MarkTotalBytesSent."""

    total: int = 0

    def __post_init__(self) -> None:
        _check_u("total", self.total, 32)


@dataclass(frozen=True, slots=True, eq=False)
class ControlEchoRequest(Event):
    """Control echo (pvAccessCPP); ``value`` travels in the header's size field."""

    value: int = 0

    def __post_init__(self) -> None:
        _check_u("value", self.value, 32)


@dataclass(frozen=True, slots=True, eq=False)
class ControlEchoResponse(Event):
    value: int = 0

    def __post_init__(self) -> None:
        _check_u("value", self.value, 32)


# ---------------------------------------------------------------------- connection and discovery
@dataclass(frozen=True, slots=True, eq=False)
class Beacon(Event):
    """UDP: a server announces itself; ``change_count`` bumps when its PV list changes."""

    guid: bytes
    sequence: int = 0
    change_count: int = 0
    address: str = "0.0.0.0"
    port: int = 5075
    protocol: str = "tcp"
    flags: int = 0
    status: VariantValue | None = None

    def _validate(self) -> None:
        if not isinstance(self.guid, bytes) or len(self.guid) != 12:
            raise LocalProtocolError("guid must be 12 bytes")
        _check_u("sequence", self.sequence, 8)
        _check_u("flags", self.flags, 8)
        _check_u("change_count", self.change_count, 16)
        _check_u("port", self.port, 16)
        _check_addr("address", self.address)
        _check_str("protocol", self.protocol)


@dataclass(frozen=True, slots=True, eq=False)
class ConnectionValidationRequest(Event):
    """Server -> client, first application message: which auth methods the server takes."""

    auth_methods: tuple[str, ...] = ("anonymous", "ca")
    buffer_size: int = 0x10000
    registry_size: int = 0x7FFF

    def _validate(self) -> None:
        object.__setattr__(self, "auth_methods", tuple(self.auth_methods))
        for m in self.auth_methods:
            _check_str("auth method", m)
        _check_u("buffer_size", self.buffer_size, 32)
        _check_u("registry_size", self.registry_size, 16)


#: the type of the "ca" method's credentials: the user and host names the peer states (shared:
#: types are immutable, and a server reads one per connect)
CA_CREDENTIALS = Structure([("user", "s"), ("host", "s")])


@dataclass(frozen=True, slots=True, eq=False)
class ConnectionValidationResponse(Event):
    """Client -> server: the chosen auth method and its data (``ca``: user and host)."""

    auth_method: str = "anonymous"
    auth_data: VariantValue | None = None
    buffer_size: int = 0x10000
    registry_size: int = 0x7FFF
    qos: int = 0

    def _validate(self) -> None:
        _check_str("auth_method", self.auth_method)
        if self.auth_data is not None and not isinstance(self.auth_data, VariantValue):
            raise LocalProtocolError("auth_data must be a VariantValue or None")
        _check_u("buffer_size", self.buffer_size, 32)
        _check_u("registry_size", self.registry_size, 16)
        _check_u("qos", self.qos, 16)

    @classmethod
    def ca(cls, user: str, host: str) -> ConnectionValidationResponse:
        """The "ca" method: the peer states its user and host names (no proof)."""
        return cls("ca", VariantValue(CA_CREDENTIALS, {"user": user, "host": host}))

    def _auth_field(self, name: str) -> str | None:
        d = self.auth_data
        if d is None or not isinstance(d.value, dict):
            return None
        v = d.value.get(name)
        return v if isinstance(v, str) else None

    @property
    def user(self) -> str | None:
        """The user name the peer claims (``ca`` method), else None."""
        return self._auth_field("user")

    @property
    def host(self) -> str | None:
        return self._auth_field("host")


@dataclass(frozen=True, slots=True, eq=False)
class ConnectionValidated(Event):
    """Server -> client: the handshake result."""

    status: Status = Status.OK


@dataclass(frozen=True, slots=True, eq=False)
class Echo(Event):
    """Application echo (keep-alive): a client sends it, the server returns the payload."""

    payload: bytes = b""

    def _validate(self) -> None:
        if not isinstance(self.payload, bytes):
            raise LocalProtocolError("echo payload must be bytes")


@dataclass(frozen=True, slots=True, eq=False)
class SearchRequest(Event):
    """Who has these channels? ``channels`` are (cid, name) pairs; empty = list servers."""

    sequence: int
    channels: tuple[tuple[int, str], ...] = ()
    response_address: str = "0.0.0.0"
    response_port: int = 0
    reply_required: bool = False
    unicast: bool = False
    protocols: tuple[str, ...] = ("tcp",)

    def _validate(self) -> None:
        _check_u("sequence", self.sequence, 32)
        _check_u("response_port", self.response_port, 16)
        _check_addr("response_address", self.response_address)
        object.__setattr__(self, "channels", tuple((c, n) for c, n in self.channels))
        object.__setattr__(self, "protocols", tuple(self.protocols))
        if len(self.channels) > 0xFFFF:
            raise LocalProtocolError("at most 65535 channels per search request")
        for cid, name in self.channels:
            _check_u("cid", cid, 32)
            _check_str("channel name", name)
        for p in self.protocols:
            _check_str("protocol", p)


@dataclass(frozen=True, slots=True, eq=False)
class SearchResponse(Event):
    """A server's answer: it has the channels ``cids`` (``found``) at address:port."""

    guid: bytes
    sequence: int
    address: str = "0.0.0.0"
    port: int = 5075
    found: bool = True
    cids: tuple[int, ...] = ()
    protocol: str = "tcp"

    def _validate(self) -> None:
        if not isinstance(self.guid, bytes) or len(self.guid) != 12:
            raise LocalProtocolError("guid must be 12 bytes")
        _check_u("sequence", self.sequence, 32)
        _check_u("port", self.port, 16)
        _check_addr("address", self.address)
        _check_str("protocol", self.protocol)
        object.__setattr__(self, "cids", tuple(self.cids))
        if len(self.cids) > 0xFFFF:
            raise LocalProtocolError("at most 65535 cids per search response")
        for c in self.cids:
            _check_u("cid", c, 32)


@dataclass(frozen=True, slots=True, eq=False)
class OriginTag(Event):
    """UDP: the original destination of a forwarded search (pvxs forwarding)."""

    address: str = "0.0.0.0"


@dataclass(frozen=True, slots=True, eq=False)
class AuthNZ(Event):
    """Authentication plugin exchange (no plugin uses it today)."""

    data: VariantValue | None = None


# --------------------------------------------------------------------------------- channels
@dataclass(frozen=True, slots=True, eq=False)
class CreateChannelRequest(Event):
    """Client -> server: open channel ``name``; the client numbers it ``cid``."""

    cid: int
    name: str

    def _validate(self) -> None:
        _check_u("cid", self.cid, 32)
        _check_str("name", self.name)
        if not self.name:
            raise LocalProtocolError("channel name must not be empty")


@dataclass(frozen=True, slots=True, eq=False)
class CreateChannelResponse(Event):
    """Server -> client: channel ``cid`` is ``sid`` on the server (if status is success)."""

    cid: int
    sid: int
    status: Status = Status.OK


@dataclass(frozen=True, slots=True, eq=False)
class DestroyChannel(Event):
    """Either way: close a channel (the server echoes a client's request)."""

    sid: int
    cid: int


@dataclass(frozen=True, slots=True, eq=False)
class DestroyRequest(Event):
    """Client -> server: forget operation ``ioid``."""

    sid: int
    ioid: int


@dataclass(frozen=True, slots=True, eq=False)
class CancelRequest(Event):
    """Client -> server: abandon the running execution of ``ioid`` (the op stays usable)."""

    sid: int
    ioid: int


@dataclass(frozen=True, slots=True, eq=False)
class Message(Event):
    """Server -> client: a human-readable text about operation ``ioid``."""

    ioid: int
    severity: MessageSeverity
    text: str

    def _validate(self) -> None:
        _check_u("ioid", self.ioid, 32)
        try:
            object.__setattr__(self, "severity", MessageSeverity(self.severity))
        except ValueError:
            raise LocalProtocolError(
                f"message severity must be 0..3, not {self.severity!r}"
            ) from None
        _check_str("text", self.text)


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
        _check_u("sid", self.sid, 32)
        _check_u("ioid", self.ioid, 32)
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
            _check_u("queue_size", self.queue_size, 32)


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
        _check_u("nfree", self.nfree, 32)


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
            _check_u(n, getattr(self, n), 32)


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
            _check_u(n, getattr(self, n), 32)


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
        _check_u("length", self.length, 32)


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
        _check_u("length", self.length, 32)


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


# ------------------------------------------------------------------------------ transport
@dataclass(frozen=True, slots=True, eq=False)
class ConnectionClosed(Event):
    """The peer closed the stream (``receive_data(b"")``)."""


OP_EVENTS = (
    GetInit, GetInitResponse, Get, GetResponse,
    PutInit, PutInitResponse, Put, PutResponse, PutRead, PutReadResponse,
    PutGetInit, PutGetInitResponse, PutGet, PutGetResponse, PutGetRead, PutGetReadResponse,
    MonitorInit, MonitorInitResponse, MonitorStart, MonitorStop, MonitorAck, MonitorDestroy,
    MonitorUpdate, MonitorFinish,
    ArrayInit, ArrayInitResponse, ArrayGet, ArrayGetResponse, ArrayPut, ArrayPutResponse,
    ArraySetLength, ArraySetLengthResponse, ArrayGetLength, ArrayGetLengthResponse,
    ProcessInit, ProcessInitResponse, Process, ProcessResponse,
    GetField, GetFieldResponse, RPCInit, RPCInitResponse, RPC, RPCResponse,
)  # fmt: skip
