"""Readers and writers compiled from the message table (:mod:`._table`).

Each row becomes, per byte order, one Python function that writes its event's payload into a
buffer and one that reads it back, generated as source the way :mod:`._codec` generates value
codecs, so a message costs what a hand-written decoder would. The connections call nothing
else to turn events into bytes and bytes into events.

Operation messages need context the bytes do not carry (the types agreed at init, the last
value of the request): the connection passes it in as an :class:`OpContext`.
"""

from __future__ import annotations

import dataclasses
import struct
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ._bitset import BitSet, read_bitset
from ._codec import Codec
from ._constants import MessageSeverity
from ._errors import DecodeError, LocalProtocolError
from ._event import Event, maker
from ._messages import (
    decode_address,
    decode_status,
    encode_address,
    encode_status,
    structure,
)
from ._table import COMBINED, DESTROY, GET, GET_PUT, INIT, MESSAGES, PROCESS, Row, tokens
from ._types import FieldDesc, Structure, Variant
from ._values import VariantValue
from ._wire import READ_STRING, U16, U32, read_size, size_bytes, string_bytes


@dataclass(kw_only=True, slots=True)
class OpContext:
    """What an operation's messages need from the connection: agreed types, last values."""

    command: int
    type: FieldDesc | None = None
    get_type: Structure | None = None
    value: Any = None
    get_value: Any = None


Writer = Callable[[Any, Codec, Any, bytearray], None]
Reader = Callable[[bytes, Codec, Any], Any]

_EMPTY_REQUEST = VariantValue(Structure([]), {})
#: a typed value (type, then value; 0xff: none) is a value of type Variant to the codec
_VARIANT = Variant()


def _agreed(op: OpContext | None, slot: str, row: str, structure: bool = True) -> Any:
    """The type the operation's init agreed (``slot``: "type" or "get_type") that ``row``'s
    value is written in (a structure, unless it is an array's)."""
    t = None if op is None else getattr(op, slot)
    if t is None or (structure and not isinstance(t, Structure)):
        what = slot.replace("_", " ")
        raise LocalProtocolError(f"{row}: the {what} is not known yet (send the init first)")
    return t


def _array_type_in(op: OpContext | None) -> FieldDesc:
    if op is None or op.type is None:
        raise DecodeError("an array value before the array type is known")
    return op.type


def _need(row: str, what: str) -> Any:
    raise LocalProtocolError(f"{row} with a success status needs a {what}")


def _count(n: int, each: int, left: int, what: str) -> None:
    if n * each > left:
        raise DecodeError(f"{what} count is larger than the message")


def _guid(data: bytes, pos: int) -> bytes:
    guid = bytes(data[pos : pos + 12])
    if len(guid) != 12:
        raise DecodeError("a GUID runs past the end of the message")
    return guid


def _read_request(c: Codec, data: bytes, pos: int) -> tuple[VariantValue | None, int]:
    """A pvRequest, the last thing in an INIT (but a monitor's queue size): the same bytes as
    one read before on this connection give the same (shared, read-only) value undecoded."""
    rest = bytes(data[pos:])
    known = c.requests.get(rest)
    if known is not None:
        return known[0], pos + known[1]
    value, end = c.decode_value(_VARIANT, data, pos)
    if len(rest) <= 1024 and b"\xfd" not in rest and b"\xfe" not in rest:
        if len(c.requests) >= 64:  # bounded: a peer sending new ones costs decodes
            c.requests.clear()
        c.requests[rest] = (value, end - pos)  # (type-cache bytes depend on the state)
    return value, end


def _name(name: str) -> str:
    if not name:
        raise DecodeError("empty channel name")
    return name


_ENV: dict[str, Any] = {
    "INIT": INIT,
    "DESTROY": DESTROY,
    "GET": GET,
    "GET_PUT": GET_PUT,
    "PROCESS": PROCESS,
    "h_encode_status": encode_status,
    "h_decode_status": decode_status,
    "h_encode_address": encode_address,
    "h_decode_address": decode_address,
    "h_VARIANT": _VARIANT,
    "h_structure": structure,
    "h_read_size": read_size,
    "h_size_bytes": size_bytes,
    "h_string_bytes": string_bytes,
    "h_read_bitset": read_bitset,
    "h_bits": BitSet.from_mask,
    "h_Severity": MessageSeverity,
    "h_EMPTY_REQUEST": _EMPTY_REQUEST,
    "h_agreed": _agreed,
    "h_array_type_in": _array_type_in,
    "h_need": _need,
    "h_count": _count,
    "h_guid": _guid,
    "h_channel_name": _name,
    "h_read_request": _read_request,
    "h_unpack_from": struct.unpack_from,
}

#: kind -> (writer lines, reader lines): ``{a}`` is the field, ``{b}`` a second field
_KINDS: dict[str, tuple[str, str]] = {
    "u8": ("out.append(ev.{a})", "{a} = data[pos]; pos += 1"),
    "u16": ("out += u16(ev.{a})", "{a} = u16f(data, pos)[0]; pos += 2"),
    "u32": ("out += u32(ev.{a})", "{a} = u32f(data, pos)[0]; pos += 4"),
    "bool": ("out.append(1 if ev.{a} else 0)", "{a} = data[pos] != 0; pos += 1"),
    "size": ("out += h_size_bytes(ev.{a}, BE)", "{a}, pos = h_read_size(data, pos, BE)"),
    "size32": (
        "out += h_size_bytes(ev.{a}, BE)",
        "{a}, pos = h_read_size(data, pos, BE); {a} &= 0xFFFFFFFF",
    ),
    "str": ("out += h_string_bytes(ev.{a}, BE)", "{a}, pos = rs(data, pos)"),
    "name": (
        "out += h_string_bytes(ev.{a}, BE)",
        "{a}, pos = rs(data, pos); h_channel_name({a})",
    ),
    "status": ("out += h_encode_status(ev.{a}, BE)", "{a}, pos = h_decode_status(data, pos, BE)"),
    "variant": (
        "c.encode_value(h_VARIANT, ev.{a}, out)",
        "{a}, pos = c.decode_value(h_VARIANT, data, pos)",
    ),
    "variant?": (
        "c.encode_value(h_VARIANT, ev.{a}, out)",
        "{a}, pos = c.decode_value(h_VARIANT, data, pos) if pos < len(data) else (None, pos)",
    ),
    "request": (
        "c.encode_value(h_VARIANT, h_EMPTY_REQUEST if ev.{a} is None else ev.{a}, out)",
        "{a}, pos = h_read_request(c, data, pos)",
    ),
    "type": ("out += c.encode_type(ev.{a})", "{a}, pos = c.decode_type(data, pos)"),
    "stype": (
        "out += c.encode_type(ev.{a})",
        "{a}, pos = c.decode_type(data, pos); {a} = h_structure({a}, 'operation type')",
    ),
    "guid": ("out += ev.{a}", "{a} = h_guid(data, pos); pos += 12"),
    "addr": ("out += h_encode_address(ev.{a})", "{a}, pos = h_decode_address(data, pos)"),
    "addr0": ("out += h_encode_address(ev.{a}, True)", "{a}, pos = h_decode_address(data, pos)"),
    "strings": (
        "out += h_size_bytes(len(ev.{a}), BE)\nfor s in ev.{a}: out += h_string_bytes(s, BE)",
        "n, pos = h_read_size(data, pos, BE); h_count(n, 1, len(data) - pos, 'string')\n"
        "{a} = []\nfor _ in range(n):\n    s, pos = rs(data, pos); {a}.append(s)\n"
        "{a} = tuple({a})",
    ),
    "pairs16": (
        "out += u16(len(ev.{a}))\nfor i, s in ev.{a}: out += u32(i); out += h_string_bytes(s, BE)",
        "n = u16f(data, pos)[0]; pos += 2; h_count(n, 5, len(data) - pos, 'channel')\n"
        "{a} = []\nfor _ in range(n):\n"
        "    i = u32f(data, pos)[0]; s, pos = rs(data, pos + 4); {a}.append((i, s))\n"
        "{a} = tuple({a})",
    ),
    "u32s16": (
        "out += u16(len(ev.{a}))\nfor i in ev.{a}: out += u32(i)",
        "n = u16f(data, pos)[0]; pos += 2; h_count(n, 4, len(data) - pos, 'cid')\n"
        "{a} = h_unpack_from(U32N % n, data, pos); pos += 4 * n",
    ),
    "flags": (
        "out.append((0x01 if ev.{a} else 0) | (0x80 if ev.{b} else 0)); out += bytes(3)",
        "{a} = bool(data[pos] & 0x01); {b} = bool(data[pos] & 0x80); pos += 4",
    ),
    "severity": ("out.append(int(ev.{a}))", "{a} = h_Severity(min(data[pos], 3)); pos += 1"),
    "rest": ("out += ev.{a}", "{a} = bytes(data[pos:]); pos = len(data)"),
    "u32if": (
        "if ev.{a} is not None: out += u32(ev.{a})",
        "{a} = None\nif sub & GET_PUT: {a} = u32f(data, pos)[0]; pos += 4",
    ),
    "part": ("", "{a} = 'get' if sub & GET else 'put'"),
    "flag": ("", "{a} = bool(sub & DESTROY)"),
    "array": (
        "c.encode_value(h_agreed(op, 'type', NAME, False), ev.{a}, out)",
        "{a}, pos = c.decode_value(h_array_type_in(op), data, pos)",
    ),
    "bitset?": (
        "out += ev.{a}.encode(BE)",
        "m = 0\nif pos < len(data): m, pos = h_read_bitset(data, pos, BE)\n{a} = h_bits(m)",
    ),
}
#: partial values: (the type when writing, the type and the slot of the last value when
#: reading a response; a request's value is not kept)
_PARTIAL: dict[str, tuple[str, str, str]] = {
    "partial": ("h_agreed(op, 'type', NAME)", "h_structure(op.type, 'type')", "value"),
    "partial@get": (
        "h_agreed(op, 'get_type', NAME)",
        "h_structure(op.get_type, 'get type')",
        "get_value",
    ),
}
#: the fields of a non-success response and what they read as
_ABSENT = {"changed": "h_bits(0)", "length": "0"}


class _Source:
    def __init__(self) -> None:
        self.lines: list[str] = []
        self.depth = 1

    def add(self, code: str) -> None:
        for line in code.split("\n"):
            self.lines.append("    " * self.depth + line)


def _writer_source(row: Row, fields: set[str], name: str, part: int) -> str:
    """The writer of ``row`` (``part`` 0), or of the fields before its value (1) or after it
    (2): a prepared value goes between those two."""
    src = _Source()
    destroy = " | (DESTROY if ev.destroy else 0)" if "destroy" in fields else ""
    ok = False
    toks = tokens(row.layout)
    at = next((i for i, (_, k) in enumerate(toks) if k.startswith("partial")), len(toks))
    for i, (names, kind) in enumerate(toks):
        if (part == 1 and i >= at) or (part == 2 and i <= at and kind != "|"):
            continue
        if kind == "*":
            src.add("out += u16(1)")
        elif kind == ".sub":
            src.add(f"out.append({row.sub}{destroy})")
        elif kind == "|":
            src.add("if ev.status.success:")
            src.depth += 1
            src.add("pass")
            ok = True
        elif kind.startswith("partial"):
            if ok:
                src.add("if ev.value is None: h_need(NAME, 'value')")
            if kind == "partial@part":
                src.add("st = h_agreed(op, 'type' if ev.part == 'put' else 'get_type', NAME)")
            else:
                src.add(f"st = {_PARTIAL[kind][0]}")
            src.add("c.encode_partial(st, ev.value, ev.changed.mask, out)")
        else:
            a = names[0]
            if ok and kind in ("type", "stype", "array"):
                src.add(f"if ev.{a} is None: h_need(NAME, '{a.replace('_', ' ')}')")
            code = _KINDS[kind][0]
            if code:
                src.add(code.format(a=a, b=names[-1]))
    return f"def {name}(ev, c, op, out):\n" + "\n".join(src.lines) + "\n    pass"


def _reader_source(row: Row, fields: list[str], server_sent: bool) -> str:
    src = _Source()
    repeat = False
    absent: list[str] = []
    toks = tokens(row.layout)
    for i, (names, kind) in enumerate(toks):
        if kind == "*":
            src.add("n = u16f(data, 0)[0]; pos = 2; h_count(n, 5, len(data) - pos, 'channel')")
            src.add("events = []")
            src.add("for _ in range(n):")
            src.depth += 1
            repeat = True
        elif kind == ".sub":
            src.add("sub = data[pos]; pos += 1")
        elif kind == "|":
            absent = [n for ns, _ in toks[i + 1 :] for n in ns]
            src.add("if status.success:")
            src.depth += 1
            src.add("pass")
        elif kind.startswith("partial"):
            if kind == "partial@part":
                src.add("if part == 'put':")
                src.add("    st, base = h_structure(op.type, 'type'), op.value")
                src.add("else:")
                src.add("    st, base = h_structure(op.get_type, 'get type'), op.get_value")
            else:
                _, st, slot = _PARTIAL[kind]
                src.add(f"st, base = {st}, {'op.' + slot if server_sent else 'None'}")
            src.add("mask, value, pos = c.decode_partial(st, data, pos, base)")
            if server_sent:
                if kind == "partial@part":
                    src.add("if part == 'put': op.value = value")
                    src.add("else: op.get_value = value")
                else:
                    src.add(f"op.{_PARTIAL[kind][2]} = value")
            src.add("changed = h_bits(mask)")
        else:
            src.add(_KINDS[kind][1].format(a=names[0], b=names[-1]))
    if any(kind == "|" for _, kind in toks):
        src.depth -= 1
        if absent:
            src.add("else:")
            src.add("    " + "; ".join(f"{n} = {_ABSENT.get(n, 'None')}" for n in absent))
    call = f"make({', '.join(fields)})"
    if repeat:
        src.add(f"events.append({call})")
        src.depth -= 1
        src.add("return events")
    else:
        src.add(f"return {call}")
    first = "    pos = 0\n" if not repeat else ""
    return "def read(data, c, op):\n" + first + "\n".join(src.lines)


def _compile(row: Row, be: bool) -> tuple[int, Writer, Reader, Writer, Writer]:
    fields = [f.name for f in dataclasses.fields(row.event)]
    env = dict(_ENV)
    env.update(
        BE=be,
        NAME=row.event.__name__,
        make=maker(row.event),
        u16=U16[be].pack,
        u32=U32[be].pack,
        u16f=U16[be].unpack_from,
        u32f=U32[be].unpack_from,
        rs=READ_STRING[be],
        U32N=(">" if be else "<") + "%dI",
    )
    server_sent = row.sender == "server"
    code = "\n\n".join(
        (
            _writer_source(row, set(fields), "write", 0),
            _reader_source(row, fields, server_sent),
            _writer_source(row, set(fields), "head", 1),
            _writer_source(row, set(fields), "tail", 2),
        )
    )
    exec(compile(code, f"<pva message {row.event.__name__}>", "exec"), env)  # from our table
    return int(row.command), env["write"], env["read"], env["head"], env["tail"]


#: event class -> (command, writer, reader, head writer, tail writer) per byte order (index:
#: big_endian)
_Compiled = tuple[int, Writer, Reader, Writer, Writer]
_CODECS: dict[type, tuple[_Compiled, _Compiled]] = {
    row.event: (_compile(row, False), _compile(row, True)) for row in MESSAGES
}


def _readers_of(cmd: int, by_server: bool) -> list[Row]:
    """The rows that may read a message of ``cmd`` (sent by the server or not), in table
    order; a command whose rows one side sends is read whoever sent it (the connection says
    who may send it)."""
    rows = [r for r in MESSAGES if r.command == cmd]
    not_by = "client" if by_server else "server"
    return [r for r in rows if r.sender != not_by] or rows


#: (command, sent by the server) -> the rows that may read it
_BY_COMMAND = {
    (int(r.command), s): _readers_of(r.command, s) for r in MESSAGES for s in (True, False)
}
#: a row -> its "when" predicate of the subcommand
_WHEN: dict[type, Callable[[int], Any]] = {
    row.event: eval(f"lambda sub: {row.when}", dict(_ENV))
    for row in MESSAGES  # our table
}


#: (command, sent by the server, big endian) -> each subcommand byte's readers: the first
#: row's whose "when" takes it, or every such row's for a client's non-INIT message of a
#: COMBINED command; chosen once, so any message (a monitor's ack too) costs one lookup
READERS_BY_SUB: dict[tuple[int, bool, bool], tuple[tuple[Reader, ...], ...]] = {
    (cmd, s, be): tuple(
        taken if not s and cmd in COMBINED and not sub & INIT else taken[:1]
        for sub in range(256)
        for taken in [tuple(_CODECS[r.event][be][2] for r in rows if _WHEN[r.event](sub))]
    )
    for (cmd, s), rows in _BY_COMMAND.items()
    for be in (False, True)
}
#: the same, one reader per subcommand byte (the first; None: no row takes it)
READER_BY_SUB: dict[tuple[int, bool, bool], tuple[Reader | None, ...]] = {
    key: tuple(reads[0] if reads else None for reads in by_sub)
    for key, by_sub in READERS_BY_SUB.items()
}


def write_payload(ev: Event, c: Codec, op: OpContext | None, out: bytearray) -> int:
    """Append ``ev``'s payload to ``out`` (in ``c``'s byte order); returns its command."""
    got = _CODECS.get(type(ev))
    if got is None:
        raise LocalProtocolError(f"{type(ev).__name__} is not an application message")
    compiled = got[c.big_endian]
    compiled[1](ev, c, op, out)
    return compiled[0]


def write_around(
    ev: Event, c: Codec, op: OpContext | None, head: bytearray, tail: bytearray
) -> int:
    """:func:`write_payload` for a message whose value is prepared elsewhere (encoded once for
    many connections): the fields before the value to ``head``, those after it to ``tail``.
    Returns the command."""
    cmd, _, _, write_head, write_tail = _CODECS[type(ev)][c.big_endian]
    write_head(ev, c, op, head)
    write_tail(ev, c, op, tail)
    return cmd


def read_message(
    cmd: int, data: bytes, c: Codec, from_server: bool, op: OpContext | None = None
) -> list[Event]:
    """The events of one message's payload (in ``c``'s byte order). DecodeError for a command
    no row reads."""
    rows = _BY_COMMAND.get((cmd, from_server))
    if rows is None:
        raise DecodeError(f"unknown or unexpected command 0x{cmd:02x}")
    if len(rows) == 1:  # (whatever its subcommand, if it has one)
        got = _CODECS[rows[0].event][c.big_endian][2](data, c, op)
        return got if got.__class__ is list else [got]
    readers = READERS_BY_SUB[cmd, from_server, c.big_endian][data[4 if from_server else 8]]
    return [read(data, c, op) for read in readers]


def reply_event(cmd: int, sub: int) -> Any:
    """The event class of the server's message of command ``cmd`` that subcommand ``sub``
    selects (a reply that answers a request with this subcommand)."""
    return next(r.event for r in _BY_COMMAND[(cmd, True)] if _WHEN[r.event](sub))
