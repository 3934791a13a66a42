"""Building blocks of message payloads the generated readers and writers call: status and
address encodings (typed values are the codec's: a variant's value)."""

from __future__ import annotations

import functools
import ipaddress

from ._constants import StatusType
from ._errors import DecodeError
from ._status import Status
from ._types import FieldDesc, Structure
from ._wire import READ_STRING, string_bytes


# ------------------------------------------------------------------------ primitives
def encode_status(s: Status, be: bool) -> bytes:
    if s.type == StatusType.OK and not s.message and not s.call_tree:
        return b"\xff"
    return bytes((int(s.type),)) + string_bytes(s.message, be) + string_bytes(s.call_tree, be)


def decode_status(data: bytes, pos: int, be: bool) -> tuple[Status, int]:
    b = data[pos]
    if b == 0xFF:
        return Status.OK, pos + 1
    if b > 3:
        raise DecodeError(f"status type {b} is not 0..3")
    rs = READ_STRING[be]
    msg, pos = rs(data, pos + 1)
    tree, pos = rs(data, pos)
    return Status(StatusType(b), msg, tree), pos


@functools.lru_cache(maxsize=256)  # a server answers every search with the same address
def encode_address(addr: str, any_as_zeros: bool = False) -> bytes:
    """16 bytes, IPv4 mapped into IPv6. pvxs writes "any" as 16 zero bytes in searches."""
    ip = ipaddress.ip_address(addr)
    if any_as_zeros and ip.packed == bytes(len(ip.packed)):
        return bytes(16)
    if isinstance(ip, ipaddress.IPv4Address):
        return b"\x00" * 10 + b"\xff\xff" + ip.packed
    return ip.packed


V4_MAPPED = b"\x00" * 10 + b"\xff\xff"


def decode_address(data: bytes, pos: int) -> tuple[str, int]:
    raw = data[pos : pos + 16]
    if len(raw) != 16:
        raise DecodeError("address runs past the end of the message")
    if raw[:12] == V4_MAPPED:
        return f"{raw[12]}.{raw[13]}.{raw[14]}.{raw[15]}", pos + 16
    if raw == b"\x00" * 16:
        return "0.0.0.0", pos + 16
    return str(ipaddress.IPv6Address(raw)), pos + 16


def structure(t: FieldDesc | None, what: str) -> Structure:
    if not isinstance(t, Structure):
        raise DecodeError(f"{what} is not a structure")
    return t
