"""The 8-byte header and the framer that cuts a byte stream into (reassembled) messages.

``| 0xCA | version | flags | command | size (uint32, byte order from flags bit 7) |``

For control messages ``size`` carries the message's only datum. The framer checks a header's
size against ``max_message_size`` before it buffers anything for it, so a forged 4 GB header
costs nothing; segments (first/middle/last) are joined into one payload under the same limit.
"""

from __future__ import annotations

import struct
from typing import Any

from ._constants import HEADER_SIZE, MAGIC, PROTOCOL_VERSION, Flags
from ._errors import DecodeError, LimitExceededError

# The flag bits as plain ints, not :class:`Flags` members: every message's framing tests them,
# and an IntFlag operation costs several times an int's. The connection modules import these.
FLAG_CONTROL = int(Flags.CONTROL)
FLAG_SEG_FIRST = int(Flags.SEGMENT_FIRST)
FLAG_SEG_LAST = int(Flags.SEGMENT_LAST)
FLAG_SEG_MIDDLE = int(Flags.SEGMENT_MIDDLE)
FLAG_SEG_MASK = int(Flags.SEGMENT_MASK)
FLAG_FROM_SERVER = int(Flags.FROM_SERVER)
FLAG_BIG = int(Flags.BIG_ENDIAN)
#: the header's layout by byte order (keyed by "big endian?")
HEADER_STRUCT = {False: struct.Struct("<BBBBI"), True: struct.Struct(">BBBBI")}
_LE = HEADER_STRUCT[False]
_BE = HEADER_STRUCT[True]


def encode_header(command: int, flags: int, size: int, big_endian: bool) -> bytes:
    """Header bytes; the byte-order flag is set from ``big_endian``."""
    flags = int(flags) | FLAG_BIG if big_endian else int(flags) & 0x7F
    return (_BE if big_endian else _LE).pack(MAGIC, PROTOCOL_VERSION, flags, command, size)


def decode_header(data: bytes | bytearray | memoryview, offset: int = 0) -> tuple[int, int, int]:
    """(command, flags, size) of the 8 bytes at ``offset`` (the caller checked they are)."""
    magic, version, flags, command, size = (
        _BE if data[offset + 2] & FLAG_BIG else _LE
    ).unpack_from(data, offset)
    if magic != MAGIC:
        raise DecodeError(f"bad magic byte 0x{magic:02x} (expected 0xca): not a pvAccess peer")
    if version == 0:
        raise DecodeError("header version 0 is invalid")
    return command, flags, size


#: a flag outside the wire's flags byte: the message was over ``max_message_size`` and was
#: skipped as it arrived, never buffered; its payload is only its first ``TOO_BIG_HEAD`` bytes
#: (the ids, for an error reply) and its size what the header(s) claimed
FLAG_TOO_BIG = 0x100
TOO_BIG_HEAD = 16
#: a header claiming more than this is no pvAccess peer's (pvxs and pvAccessCPP keep sizes in
#: a signed 32-bit int): refused, not skipped
SKIP_LIMIT = 0x7FFFFFFF


def _check_segment(command: int, seg: int, first: tuple[Any, ...] | None) -> None:
    """A message or segment header's segment bits ``seg`` may follow what came before: the
    ``first`` segment (command, ...) of a message under way, or None."""
    if first is None:
        if seg not in (0, FLAG_SEG_FIRST):
            raise DecodeError("middle or last segment without a first segment")
    elif seg in (0, FLAG_SEG_FIRST):
        raise DecodeError("a new message before the last segment of the previous")
    elif command != first[0]:
        raise DecodeError(f"segment of 0x{command:02x} inside a message of 0x{first[0]:02x}")


class Framer:
    """Accumulates received bytes and yields complete ``(header, payload)`` messages.

    Segmented messages come out once, joined, with the header of the first segment (segment
    bits cleared). Control messages come out with an empty payload. A message over
    ``max_message_size`` is read past without being buffered and comes out with
    ``FLAG_TOO_BIG`` set, so the connection can answer it with an error instead of dropping
    the peer: memory stays bounded either way.
    """

    def __init__(self, max_message_size: int, *, expect_from_server: bool) -> None:
        self.max_message_size = max_message_size
        self.expect_from_server = expect_from_server
        # bytes while it holds one received chunk (no copy), bytearray once chunks are joined
        self._buf: bytes | bytearray = b""
        self._pos = 0
        #: a segmented message under way: its (command, flags)
        self._seg_header: tuple[int, int] | None = None
        self._seg_parts: list[bytes] = []
        self._seg_size = 0
        self.bytes_received = 0
        #: reading past an oversized message: bytes of it still to come, and whether
        #: segments of it follow; what to report once it is over
        self._skipping = False
        self._skip_left = 0
        self._skip_segments = False
        self._skipped: tuple[int, int, int, bytes] | None = None
        #: nothing buffered and no message under way: the next bytes start a new message
        self.idle = True

    def feed(self, data: bytes | bytearray | memoryview) -> None:
        buf = self._buf
        if self._pos >= len(buf):
            # nothing pending: keep the chunk as it came (a big array is copied only once,
            # when its message is cut out)
            self._buf = data if isinstance(data, bytes) else bytes(data)
            self._pos = 0
        else:
            if not isinstance(buf, bytearray):
                buf = self._buf = bytearray(memoryview(buf)[self._pos :])
                self._pos = 0
            buf += data
        self.bytes_received += len(data)
        if data:
            self.idle = False

    @property
    def buffered(self) -> int:
        """Bytes received but not yet returned as messages."""
        return len(self._buf) - self._pos + self._seg_size

    def next_message(self) -> tuple[int, int, int, bytes] | None:
        """The next complete message as (command, flags, size, payload), or None when more
        bytes are needed. ``size`` is the control datum for control messages."""
        msg = self._next_message()
        busy = self._seg_header is not None or self._skipping or self._skip_segments
        self.idle = self._pos >= len(self._buf) and not busy  # (a server reads it per message)
        return msg

    def _next_message(self) -> tuple[int, int, int, bytes] | None:
        while True:
            buf = self._buf
            pos = self._pos
            avail = len(buf) - pos
            if self._skipping:
                n = min(self._skip_left, avail)
                self._pos = pos = pos + n
                self._skip_left -= n
                if self._skip_left:
                    self._compact()
                    return None
                self._skipping = False
                if not self._skip_segments:
                    report, self._skipped = self._skipped, None
                    return report
                continue
            if avail < HEADER_SIZE:
                self._compact()
                return None
            command, flags, size = decode_header(buf, pos)
            if bool(flags & FLAG_FROM_SERVER) != self.expect_from_server:
                who = "server" if self.expect_from_server else "client"
                raise DecodeError(f"message direction flag is wrong: expected one from the {who}")
            if flags & FLAG_CONTROL:
                self._pos = pos + HEADER_SIZE
                return command, flags, size, b""
            seg = flags & FLAG_SEG_MASK
            if self._skip_segments:
                self._skip_segment(command, seg, size)
                continue
            total = self._seg_size + size
            if total > self.max_message_size:
                if size > SKIP_LIMIT:
                    raise LimitExceededError(
                        f"message of {total} bytes is over the limit of "
                        f"{self.max_message_size} bytes (max_message_size)"
                    )
                want = min(size, TOO_BIG_HEAD)
                if self._seg_header is None and avail < HEADER_SIZE + want:
                    self._compact()
                    return None
                self._start_skip(buf, pos, command, flags, seg, size)
                continue
            if avail < HEADER_SIZE + size:
                self._compact()
                return None
            start = pos + HEADER_SIZE
            if start == 0 and size == len(buf) and isinstance(buf, bytes):
                payload = buf
            else:
                payload = bytes(memoryview(buf)[start : start + size])
            self._pos = start + size
            first = self._seg_header
            if seg == 0 and first is None:
                return command, flags, size, payload
            _check_segment(command, seg, first)
            if first is None:
                self._seg_header = (command, flags)
                self._seg_parts = [payload]
                self._seg_size = size
                continue
            self._seg_parts.append(payload)
            self._seg_size += size
            if seg == FLAG_SEG_LAST:
                joined = b"".join(self._seg_parts)
                self._seg_header = None
                self._seg_parts = []
                self._seg_size = 0
                return first[0], first[1] & ~FLAG_SEG_MASK & 0xFF, len(joined), joined

    def _start_skip(
        self, buf: bytes | bytearray, pos: int, command: int, flags: int, seg: int, size: int
    ) -> None:
        """Read past the message whose (segment) header is at ``pos``: it is over the limit."""
        first = self._seg_header
        _check_segment(command, seg, first)
        if first is None:
            start = pos + HEADER_SIZE
            head = bytes(memoryview(buf)[start : start + min(size, TOO_BIG_HEAD)])
            cmd, fl = command, flags
        else:
            head = self._seg_parts[0][:TOO_BIG_HEAD]
            cmd, fl = first
        total = self._seg_size + size
        self._seg_header = None
        self._seg_parts = []
        self._seg_size = 0
        self._skipped = (cmd, (fl & ~FLAG_SEG_MASK & 0xFF) | FLAG_TOO_BIG, total, head)
        self._skip_segments = seg in (FLAG_SEG_FIRST, FLAG_SEG_MIDDLE)
        self._pos = pos + HEADER_SIZE
        self._skip_left = size
        self._skipping = True

    def _skip_segment(self, command: int, seg: int, size: int) -> None:
        """The next segment of a message being read past: read past it too."""
        skipped = self._skipped
        assert skipped is not None
        _check_segment(command, seg, skipped)
        self._skipped = (skipped[0], skipped[1], min(skipped[2] + size, SKIP_LIMIT), skipped[3])
        self._skip_segments = seg != FLAG_SEG_LAST
        self._pos += HEADER_SIZE
        self._skip_left = size
        self._skipping = True

    def _compact(self) -> None:
        if self._pos:
            buf = self._buf
            if isinstance(buf, bytearray):
                del buf[: self._pos]
            else:
                self._buf = buf[self._pos :]
            self._pos = 0
