"""The message table: every pvAccess message's wire layout, written once, as data.

One row per event class: the command it travels under, the role that sends it, its
subcommand byte (what is written, and when a received one selects this row) and its fields in
wire order. :mod:`._generate` compiles each row into the reader and the writer the connections
use; docs/pva-protocol.md draws this table (a test keeps the two the same).

A layout is a list of ``name:kind`` tokens (``a,b:kind`` when one kind fills two fields):

==============  ============================================================================
``u8 u16 u32``  fixed-width unsigned integers
``bool``        one byte, nonzero is True
``size``        pvAccess Size (1, 5 or 13 bytes); ``size32`` keeps its low 32 bits
``str name``    a Size-prefixed UTF-8 string (``name``: a channel name, never empty)
``status``      a status (one byte 0xff when OK without text)
``variant``     a typed value (type then value; 0xff = none); ``variant?``: absent at the end
                of the message means none; ``request``: a pvRequest (none is written as an
                empty structure)
``type stype``  a type description (``stype``: it must be a structure)
``guid addr``   12 bytes; a 16-byte IPv6 or IPv4-mapped address (``addr0``: "any" as zeros)
``strings``     a Size count then strings; ``pairs16``: a u16 count of (u32, string);
                ``u32s16``: a u16 count of u32s
``flags``       the search flags byte (reply required 0x01, unicast 0x80) and 3 reserved bytes
``severity``    one byte, 0..3; ``rest``: every byte to the end
``u32if``       a u32 present when the subcommand's GET_PUT bit is set (else None)
``part``        no bytes: "get" or "put", from the subcommand's GET / GET_PUT bit
``flag``        no bytes: the subcommand's DESTROY bit (``destroy``: the request ends the
                operation, and its response says so)
``partial``     a bitset and the fields it names, of the operation's type (``partial@get``:
                its get type; ``partial@part``: the type ``part`` names)
``array``       a value of the operation's (array) type; ``bitset?``: an optional bitset
==============  ============================================================================

Two tokens are not fields: ``.sub`` is where the subcommand byte goes and ``|`` starts the
fields present only when the status is a success. A layout starting with ``*`` repeats after
a u16 count (a channel creation may ask for several channels).

The event classes of the rows made by :func:`_op` (operations' messages, channels' and the
plain connection messages) are generated from their layouts: the fields in wire order, required
ones first and a request's ``destroy`` last, defaults and checks by kind (:mod:`._event`). The
other rows' events, with more to check or convert, are written in :mod:`._events`.
"""

from __future__ import annotations

import dataclasses
import textwrap
from dataclasses import dataclass

from ._constants import Command, ControlCommand
from ._event import check_fields, event_class
from ._events import (
    Beacon,
    ConnectionValidationRequest,
    ConnectionValidationResponse,
    SearchRequest,
    SearchResponse,
)

#: the subcommand bits (what each means for a command: its rows below)
INIT, DESTROY, GET, GET_PUT, PROCESS = 0x08, 0x10, 0x40, 0x80, 0x04
#: the commands whose messages belong to an operation (an ioid)
OP_COMMANDS = frozenset(
    int(c)
    for c in (
        Command.GET,
        Command.PUT,
        Command.PUT_GET,
        Command.MONITOR,
        Command.ARRAY,
        Command.PROCESS,
        Command.GET_FIELD,
        Command.RPC,
    )
)


@dataclass(frozen=True, slots=True)
class Row:
    """One message: its event class, command, sender and wire layout."""

    event: type
    command: Command
    #: who sends it: "client", "server" or "either"
    sender: str
    layout: str
    #: the subcommand written, a Python expression of ``ev`` (the DESTROY bit is added from
    #: ``ev.destroy`` when the event has one)
    sub: str = "0"
    #: when a received subcommand ``sub`` selects this row (rows of one command and sender are
    #: tried in table order; the first that matches is taken); by default, when it has the
    #: bit the row writes (any subcommand for a row that writes 0)
    when: str = ""

    def __post_init__(self) -> None:
        if not self.when:
            object.__setattr__(self, "when", "True" if self.sub == "0" else f"sub & {self.sub}")
        fields = [
            (n, "bitset?" if n == "changed" else k) for ns, k in tokens(self.layout) for n in ns
        ]
        check_fields(self.event, fields)


def tokens(layout: str) -> list[tuple[list[str], str]]:
    """A layout as (field names, kind); ``.sub``, ``|`` and ``*`` with no names."""
    out: list[tuple[list[str], str]] = []
    for tok in layout.split():
        names, _, kind = tok.rpartition(":")
        out.append((names.split(",") if names else [], kind))
    return out


def _op(
    name: str,
    command: Command,
    sender: str,
    layout: str,
    sub: str = "0",
    *,
    when: str = "",
) -> Row:
    """The row of a message whose event class is generated from the layout (an operation's,
    and the plain messages of connections and channels)."""
    fields: list[tuple[str, str, bool]] = []
    on_success = False
    for names, kind in tokens(layout):
        on_success = on_success or kind == "|"
        fields += [(n, kind, on_success) for n in names]
    event = event_class(name, fields, _DOCS.get(name, ""), _GENERATED)
    return Row(event, command, sender, layout, sub, when)


#: the module of the generated event classes
_GENERATED = "reckon.pva.protocol._op_events"


_C, _S, _E = "client", "server", "either"
_REQ = "sid:u32 ioid:u32 .sub"
_RESP = "ioid:u32 .sub status:status |"
#: an execution (its request may end the operation) and its response
_EXEC = "sid:u32 ioid:u32 .sub destroy:flag"
_EXEC_RESP = "ioid:u32 .sub destroy:flag status:status |"

#: the docstrings of the generated event classes
_DOCS = {
    "ConnectionValidated": "Server -> client: the handshake result.",
    "Echo": "Application echo (keep-alive): a client sends it, the server returns the payload.",
    "OriginTag": "UDP: the original destination of a forwarded search (pvxs forwarding).",
    "AuthNZ": "Authentication plugin exchange (no plugin uses it today).",
    "CreateChannelRequest": "Client -> server: open channel ``name``; the client numbers it "
    "``cid``.",
    "CreateChannelResponse": "Server -> client: channel ``cid`` is ``sid`` on the server (if "
    "status is success).",
    "DestroyChannel": "Either way: close a channel (the server echoes a client's request).",
    "DestroyRequest": "Client -> server: forget operation ``ioid``.",
    "Message": "Server -> client: a human-readable text about operation ``ioid``.",
    "CancelRequest": "Client -> server: abandon the running execution of ``ioid`` (the op stays "
    "usable).",
    "GetInitResponse": "``type`` is the structure later gets carry (None when status is not "
    "success).",
    "GetResponse": "``value`` is a full value; only the fields in ``changed`` travel.",
    "PutRead": "PUT with the GET bit: read back the current value through a put operation.",
    "Put": "Write the fields of ``value`` named by ``changed`` (others keep their defaults).",
    "PutGetRead": 'Read the current "get" part (``part="get"``) or "put" part (``part="put"``).',
    "PutGet": "Put ``value`` (of the put type) and receive a value of the get type.",
    "MonitorInit": "Subscribe. ``queue_size`` set = pipelined (flow control by MonitorAck).",
    "MonitorAck": "Pipeline: the client freed ``nfree`` queue slots; the server may send that "
    "many more.",
    "MonitorDestroy": "Monitor subcommand DESTROY (pvAccessCPP clients; pvxs uses DestroyRequest).",
    "MonitorFinish": "Server -> client: the subscription ends (no more updates for ``ioid``).",
    "MonitorUpdate": "A new value: fields in ``changed`` are new; ``overrun`` marks fields that "
    "changed more than once since the last update.",
    "ArrayInitResponse": "``type`` is the array field's type (a ScalarArray or array of "
    "structures...).",
    "GetField": "Ask for a channel's type (``sub_field`` empty = the whole structure).",
    "RPC": "Call: ``argument`` is any typed value (usually an NTURI structure).",
    "SetByteOrder": "Control: the server's first message; the client sends in this byte order "
    "from now on.",
    "MarkTotalBytesSent": "Control: flow-control marker (pvAccessCPP); nobody acts on it today.",
    "AckTotalBytesReceived": "Control: answer to MarkTotalBytesSent.",
    "ControlEchoRequest": "Control echo (pvAccessCPP); ``value`` travels in the header's size "
    "field.",
    "ControlEchoResponse": "Control echo's answer.",
}

#: every message, in the order the docs draw them
MESSAGES: tuple[Row, ...] = (
    # connection and discovery
    Row(
        Beacon,
        Command.BEACON,
        _S,
        "guid:guid flags:u8 sequence:u8 change_count:u16 address:addr port:u16 protocol:str "
        "status:variant?",
    ),
    Row(
        ConnectionValidationRequest,
        Command.CONNECTION_VALIDATION,
        _S,
        "buffer_size:u32 registry_size:u16 auth_methods:strings",
    ),
    Row(
        ConnectionValidationResponse,
        Command.CONNECTION_VALIDATION,
        _C,
        "buffer_size:u32 registry_size:u16 qos:u16 auth_method:str auth_data:variant?",
    ),
    _op("ConnectionValidated", Command.CONNECTION_VALIDATED, _S, "status:status"),
    _op("Echo", Command.ECHO, _E, "payload:rest"),
    Row(
        SearchRequest,
        Command.SEARCH,
        _C,
        "sequence:u32 reply_required,unicast:flags response_address:addr0 response_port:u16 "
        "protocols:strings channels:pairs16",
    ),
    Row(
        SearchResponse,
        Command.SEARCH_RESPONSE,
        _S,
        "guid:guid sequence:u32 address:addr port:u16 protocol:str found:bool cids:u32s16",
    ),
    _op("OriginTag", Command.ORIGIN_TAG, _C, "address:addr"),
    _op("AuthNZ", Command.AUTHNZ, _E, "data:variant"),
    # channels
    _op("CreateChannelRequest", Command.CREATE_CHANNEL, _C, "* cid:u32 name:name"),
    _op("CreateChannelResponse", Command.CREATE_CHANNEL, _S, "cid:u32 sid:u32 status:status"),
    _op("DestroyChannel", Command.DESTROY_CHANNEL, _E, "sid:u32 cid:u32"),
    _op("DestroyRequest", Command.DESTROY_REQUEST, _C, "sid:u32 ioid:u32"),
    _op("CancelRequest", Command.CANCEL_REQUEST, _C, "sid:u32 ioid:u32"),
    _op("Message", Command.MESSAGE, _S, "ioid:u32 severity:severity text:str"),
    # get
    _op("GetInit", Command.GET, _C, f"{_REQ} pv_request:request", "INIT"),
    _op("GetInitResponse", Command.GET, _S, f"{_RESP} type:stype", "INIT"),
    _op("Get", Command.GET, _C, _EXEC),
    _op("GetResponse", Command.GET, _S, f"{_EXEC_RESP} value,changed:partial"),
    # put
    _op("PutInit", Command.PUT, _C, f"{_REQ} pv_request:request", "INIT"),
    _op("PutInitResponse", Command.PUT, _S, f"{_RESP} type:stype", "INIT"),
    _op("PutRead", Command.PUT, _C, _EXEC, "GET"),
    _op("PutReadResponse", Command.PUT, _S, f"{_EXEC_RESP} value,changed:partial", "GET"),
    _op("Put", Command.PUT, _C, f"{_EXEC} value,changed:partial"),
    _op("PutResponse", Command.PUT, _S, _EXEC_RESP),
    # put-get
    _op("PutGetInit", Command.PUT_GET, _C, f"{_REQ} pv_request:request", "INIT"),
    _op(
        "PutGetInitResponse", Command.PUT_GET, _S, f"{_RESP} put_type:stype get_type:stype", "INIT"
    ),
    _op(
        "PutGetRead",
        Command.PUT_GET,
        _C,
        f"{_EXEC} part:part",
        "GET if ev.part == 'get' else GET_PUT",
        when="sub & (GET | GET_PUT)",
    ),
    _op(
        "PutGetReadResponse",
        Command.PUT_GET,
        _S,
        "ioid:u32 .sub destroy:flag part:part status:status | value,changed:partial@part",
        "GET if ev.part == 'get' else GET_PUT",
        when="sub & (GET | GET_PUT)",
    ),
    _op("PutGet", Command.PUT_GET, _C, f"{_EXEC} value,changed:partial"),
    _op("PutGetResponse", Command.PUT_GET, _S, f"{_EXEC_RESP} value,changed:partial@get"),
    # monitor: a client's message may carry several of these at once (pvAccessCPP)
    _op(
        "MonitorInit",
        Command.MONITOR,
        _C,
        f"{_REQ} pv_request:request queue_size:u32if",
        "INIT | (GET_PUT if ev.queue_size is not None else 0)",
        when="sub & INIT",
    ),
    _op("MonitorInitResponse", Command.MONITOR, _S, f"{_RESP} type:stype", "INIT"),
    _op("MonitorAck", Command.MONITOR, _C, f"{_REQ} nfree:u32", "GET_PUT"),
    _op(
        "MonitorStart",
        Command.MONITOR,
        _C,
        _REQ,
        "GET | PROCESS",
        when="sub & PROCESS and sub & GET",
    ),
    _op(
        "MonitorStop", Command.MONITOR, _C, _REQ, "PROCESS", when="sub & PROCESS and not sub & GET"
    ),
    _op("MonitorDestroy", Command.MONITOR, _C, _REQ, "DESTROY"),
    _op("MonitorFinish", Command.MONITOR, _S, "ioid:u32 .sub status:status", "DESTROY"),
    _op(
        "MonitorUpdate", Command.MONITOR, _S, "ioid:u32 .sub value,changed:partial overrun:bitset?"
    ),
    # array
    _op("ArrayInit", Command.ARRAY, _C, f"{_REQ} pv_request:request", "INIT"),
    _op("ArrayInitResponse", Command.ARRAY, _S, f"{_RESP} type:type", "INIT"),
    _op("ArrayGet", Command.ARRAY, _C, f"{_EXEC} offset:size count:size stride:size", "GET"),
    _op("ArrayGetResponse", Command.ARRAY, _S, f"{_EXEC_RESP} value:array", "GET"),
    _op("ArraySetLength", Command.ARRAY, _C, f"{_EXEC} length:size", "GET_PUT"),
    _op("ArraySetLengthResponse", Command.ARRAY, _S, _EXEC_RESP, "GET_PUT"),
    _op("ArrayGetLength", Command.ARRAY, _C, _EXEC, "PROCESS"),
    _op("ArrayGetLengthResponse", Command.ARRAY, _S, f"{_EXEC_RESP} length:size32", "PROCESS"),
    _op("ArrayPut", Command.ARRAY, _C, f"{_EXEC} offset:size stride:size value:array"),
    _op("ArrayPutResponse", Command.ARRAY, _S, _EXEC_RESP),
    # process
    _op("ProcessInit", Command.PROCESS, _C, f"{_REQ} pv_request:request", "INIT"),
    _op("ProcessInitResponse", Command.PROCESS, _S, _RESP, "INIT"),
    _op("Process", Command.PROCESS, _C, _EXEC),
    _op("ProcessResponse", Command.PROCESS, _S, _EXEC_RESP),
    # get-field (no subcommand)
    _op("GetField", Command.GET_FIELD, _C, "sid:u32 ioid:u32 sub_field:str"),
    _op("GetFieldResponse", Command.GET_FIELD, _S, "ioid:u32 status:status | type:type"),
    # rpc
    _op("RPCInit", Command.RPC, _C, f"{_REQ} pv_request:request", "INIT"),
    _op("RPCInitResponse", Command.RPC, _S, _RESP, "INIT"),
    _op("RPC", Command.RPC, _C, f"{_EXEC} argument:variant"),
    _op("RPCResponse", Command.RPC, _S, f"{_EXEC_RESP} result:variant"),
)

#: a command whose client messages may hold several of its rows' events at once
COMBINED = frozenset({int(Command.MONITOR)})

#: the control messages, a header alone: event class -> (command, the field the header's size
#: carries; SetByteOrder's datum is the header's byte-order flag)
CONTROL: dict[type, tuple[int, str]] = {
    event_class(name, [(field, kind, False)], _DOCS[name], _GENERATED): (
        int(cmd),
        "" if kind == "flag" else field,
    )
    for name, cmd, field, kind in (
        ("SetByteOrder", ControlCommand.SET_BYTE_ORDER, "big_endian", "flag"),
        ("MarkTotalBytesSent", ControlCommand.MARK_TOTAL_BYTES_SENT, "total", "datum"),
        ("AckTotalBytesReceived", ControlCommand.ACK_TOTAL_BYTES_RECEIVED, "total", "datum"),
        ("ControlEchoRequest", ControlCommand.ECHO_REQUEST, "value", "datum"),
        ("ControlEchoResponse", ControlCommand.ECHO_RESPONSE, "value", "datum"),
    )
}


def markdown() -> str:
    """The table as the docs draw it (docs/pva-protocol.md holds this text)."""
    lines = [
        "| message | command | sent by | subcommand | layout |",
        "|---|---|---|---|---|",
    ]
    for r in MESSAGES:
        sub = "" if ".sub" not in r.layout else f"`{r.sub}`"
        layout = r.layout.replace("|", "\\|")
        lines.append(
            f"| {r.event.__name__} | {r.command.name} (0x{int(r.command):02x}) | {r.sender} "
            f"| {sub} | `{layout}` |"
        )
    return "\n".join(lines) + "\n"


_STUB_HEAD = '''"""Types of the events generated from the message table (:mod:`._table`), for a type
checker: written by ``make pva-stubs`` from :func:`._table.stubs` (do not edit)."""

from dataclasses import dataclass
from typing import Any, Literal

from ._bitset import BitSet
from ._constants import MessageSeverity
from ._event import Event
from ._status import Status
from ._types import FieldDesc, Structure
from ._values import VariantValue
'''


def stubs() -> str:
    """The type stub of the generated event classes (``_op_events.pyi`` holds this text)."""
    classes = [*(r.event for r in MESSAGES if r.event.__module__ == _GENERATED), *CONTROL]
    names = sorted((c.__name__ for c in classes), key=lambda n: (not n.isupper(), n))
    out = [_STUB_HEAD, "__all__ = [", *(f'    "{n}",' for n in names), "]"]
    for cls in classes:
        out += ["", "@dataclass(frozen=True)", f"class {cls.__name__}(Event):"]
        doc = _DOCS.get(cls.__name__)
        if doc:
            out += [textwrap.indent(textwrap.fill(f'"""{doc}"""', 96), "    "), ""]
        for f in dataclasses.fields(cls):
            default = "" if f.default is dataclasses.MISSING else " = ..."
            out.append(f"    {f.name}: {f.type}{default}")
    return "\n".join(out) + "\n"
