"""Discovery: UDP datagrams (search, search response, beacon, origin tag), without sockets.

A datagram holds one or more whole messages (pvxs prefixes forwarded searches with an origin
tag). UDP messages are never segmented and never control messages.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Sequence

from ._codec import Codec
from ._constants import HEADER_SIZE, MAGIC, Command, Flags
from ._errors import LOW_LEVEL_ERRORS, DecodeError, LocalProtocolError, RemoteProtocolError
from ._events import Event
from ._generate import read_message, write_payload
from ._header import FLAG_BIG, FLAG_FROM_SERVER, decode_header, encode_header
from ._messages import decode_address
from ._op_events import Beacon, OriginTag, SearchRequest, SearchResponse
from ._wire import U32

_UDP_EVENTS = (Beacon, OriginTag, SearchRequest, SearchResponse)
_UDP_COMMANDS = {Command.BEACON, Command.SEARCH, Command.SEARCH_RESPONSE, Command.ORIGIN_TAG}
_FROM_SERVER = (Beacon, SearchResponse)


# a plain int (as _header's flags are): enum arithmetic costs a call per operation
_CONTROL_OR_SEGMENTED = int(Flags.CONTROL | Flags.SEGMENT_MASK)
_SEARCH = int(Command.SEARCH)
#: a search for one name from the header's size on: size, sequence, flags, 3 reserved bytes,
#: response address (16 bytes, skipped) and port, the protocols (``_ONLY_TCP``), the count, the
#: cid, the name's size
_SEARCH_ONE = {be: struct.Struct((">" if be else "<") + "IIB19xH5xHIB") for be in (False, True)}
_ONLY_TCP = b"\x01\x03tcp"  # one protocol, "tcp": what every client asks for


class Discovery:
    """Encode and decode discovery datagrams. One datagram may hold several messages."""

    def __init__(self, *, big_endian: bool = False) -> None:
        self.big_endian = big_endian
        self._codec = Codec(big_endian=big_endian, use_numpy=False)

    def encode(self, *events: Event) -> bytes:
        """One datagram holding ``events`` (e.g. OriginTag then SearchRequest)."""
        out = bytearray()
        self._codec.big_endian = self.big_endian
        for ev in events:
            if not isinstance(ev, _UDP_EVENTS):
                raise LocalProtocolError(f"{type(ev).__name__} is not a UDP discovery message")
            payload = bytearray()
            cmd = write_payload(ev, self._codec, None, payload)
            flags = FLAG_FROM_SERVER if isinstance(ev, _FROM_SERVER) else 0
            out += encode_header(cmd, flags, len(payload), self.big_endian)
            out += payload
        return bytes(out)

    def search_answers(
        self, guid: bytes, address: str, port: int, protocol: str = "tcp"
    ) -> Callable[[int, bool, Sequence[int]], bytes]:
        """A function giving the datagram of a :class:`SearchResponse` from ``guid`` at
        ``address``:``port`` for (sequence, found, cids): what ``encode(SearchResponse(guid,
        sequence, address, port, found, cids, protocol))`` gives.

        A server answers every search with the same guid, address, port and protocol: they
        are checked and encoded once, and an answer on the connect path is a few copies.
        """
        SearchResponse(guid, 0, address, port, False, (), protocol)  # the checks, once
        be = self.big_endian
        u32 = U32[be]

        def encoded(sequence: int, found: bool, cids: Sequence[int]) -> bytes:
            return self.encode(
                SearchResponse.unchecked(guid, sequence, address, port, found, cids, protocol)
            )

        # an answer for one name (a client's connect) is this one with its sequence (after the
        # guid), found byte and cid (the last 7 bytes) written in
        one = encoded(0, False, (0,))

        def answer(sequence: int, found: bool, cids: Sequence[int]) -> bytes:
            if len(cids) != 1:
                return encoded(sequence, found, tuple(cids))
            out = bytearray(one)
            u32.pack_into(out, HEADER_SIZE + 12, sequence)
            out[-7] = 1 if found else 0
            u32.pack_into(out, len(out) - 4, cids[0])
            return bytes(out)

        return answer

    def search_one(self, datagram: bytes) -> tuple[int, int, str, str, int, bool] | None:
        """``(sequence, cid, name, response address, response port, reply required)`` of
        ``datagram`` when it holds exactly one search request for one name, of the usual shape
        (protocol "tcp", a name shorter than 254 bytes); None otherwise, and then
        :meth:`decode` reads it with all its checks.

        This is what a server reads most, and it is the first step of every client's connect:
        after an idle spell the first code to run pays for every line and object it touches
        (tens of microseconds for the general decoder's layers and an event), so the usual
        datagram is read with one struct. Where it gives a tuple, :meth:`decode` gives
        ``[SearchRequest(sequence, ((cid, name),), address, port, reply_required, ...)]``.
        """
        n = len(datagram)
        if (
            n < 46
            or datagram[0] != MAGIC
            or datagram[1] == 0
            or datagram[3] != _SEARCH
            or datagram[34:39] != _ONLY_TCP
        ):
            return None
        flags = datagram[2]
        if flags & (_CONTROL_OR_SEGMENTED | FLAG_FROM_SERVER):
            return None
        be = flags >= FLAG_BIG  # the byte-order flag is the top bit
        size, seq, sflags, port, count, cid, length = _SEARCH_ONE[be].unpack_from(datagram, 4)
        if size != n - HEADER_SIZE or count != 1 or length >= 254 or 46 + length != n:
            return None
        address = decode_address(datagram, 16)[0]
        name = datagram[46:].decode("utf-8", "replace")
        return seq, cid, name, address, port, bool(sflags & 0x01)

    def decode(self, datagram: bytes | bytearray | memoryview) -> list[Event]:
        """Every message in a datagram; RemoteProtocolError if it is malformed."""
        data = bytes(datagram)
        events: list[Event] = []
        pos = 0
        try:
            while pos < len(data):
                if len(data) - pos < HEADER_SIZE:
                    raise DecodeError("truncated header at the end of the datagram")
                command, flags, size = decode_header(data, pos)
                if flags & _CONTROL_OR_SEGMENTED:
                    raise DecodeError("control or segmented message in a datagram")
                start = pos + HEADER_SIZE
                end = start + size
                if end > len(data):
                    raise DecodeError("message size runs past the end of the datagram")
                if command not in _UDP_COMMANDS:
                    raise DecodeError(f"command 0x{command:02x} is not a discovery message")
                self._codec.big_endian = bool(flags & FLAG_BIG)
                events += read_message(
                    command, data[start:end], self._codec, bool(flags & FLAG_FROM_SERVER)
                )
                pos = end
        except RemoteProtocolError:
            raise
        except LocalProtocolError as exc:
            raise DecodeError(str(exc)) from None
        except LOW_LEVEL_ERRORS as exc:
            raise DecodeError(f"malformed datagram: {exc!r}") from None
        return events
