"""Discovery: UDP datagrams (search, search response, beacon, origin tag), without sockets."""

from __future__ import annotations

from ._events import Event


class Discovery:
    """Encode and decode discovery datagrams. One datagram may hold several messages."""

    def __init__(self, *, big_endian: bool = False, max_depth: int = 32) -> None:
        self.big_endian = big_endian
        self.max_depth = max_depth

    def encode(self, *events: Event) -> bytes:
        """One datagram holding ``events`` (e.g. OriginTag then SearchRequest)."""
        raise NotImplementedError

    def decode(self, datagram: bytes) -> list[Event]:
        """Every message in a datagram; RemoteProtocolError if it is malformed."""
        raise NotImplementedError
