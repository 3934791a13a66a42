"""Values encoded once and sent on many connections (a monitor post fanned out to N
subscribers costs one encode per byte order, not N, and no copy per connection)."""

from __future__ import annotations

from typing import Any

from ._bitset import BitSet
from ._codec import Codec
from ._errors import LocalProtocolError
from ._event import ALL_CHANGED
from ._types import Structure


class PreparedUpdate:
    """A structure value and the fields that changed, encoded lazily once per byte order.

    The encoding never uses a type cache, so it is valid on every connection. It is kept as
    pieces: the encoded bytes, with big numeric arrays left in their own buffers (see
    ``Codec.spill``), so a message carrying it is a small head of its own followed by these
    shared pieces, written with a vectored write. Send it with
    :meth:`ServerConnection.send_update` (or ``send_update_pieces``).
    """

    __slots__ = ("_encoded", "changed", "messages", "type", "value")

    def __init__(self, type: Structure, value: Any, changed: BitSet = ALL_CHANGED) -> None:
        if not isinstance(type, Structure):
            raise LocalProtocolError(f"PreparedUpdate needs a Structure, not {type!r}")
        if not isinstance(changed, BitSet):
            raise LocalProtocolError(f"changed must be a BitSet, not {changed!r}")
        self.type = type
        self.value = value
        self.changed = changed
        self._encoded: list[tuple[int, tuple[Any, ...]] | None] = [None, None]
        #: (big endian, ioid, event class) -> (size, buffers) of a whole message carrying it
        #: (a server's GET reply or monitor update); (big endian, event class): the last made
        self.messages: dict[tuple[Any, ...], tuple[int, tuple[Any, ...]]] = {}

    def encoded(self, big_endian: bool, codec: Codec | None = None) -> tuple[int, tuple[Any, ...]]:
        """The changed bitset and fields in one byte order: (their size, the buffers to write
        in order: bytes, and the memory of big arrays, uncopied). ``codec``: one without a type
        cache to encode with (a connection's: making one cost a small value's encoding 16%)."""
        got = self._encoded[big_endian]
        if got is None:
            out, holes, parts = bytearray(), list[tuple[int, Any]](), list[Any]()
            codec = Codec() if codec is None else codec
            codec.big_endian, codec.spill = big_endian, holes
            try:
                codec.encode_partial(self.type, self.value, self.changed.mask, out)
            finally:
                codec.spill = None
            start, size = 0, len(out)
            for at, buf in holes:
                parts += (bytes(memoryview(out)[start:at]), buf) if at > start else (buf,)
                start, size = at, size + len(buf)
            if start < len(out) or not parts:
                parts.append(bytes(memoryview(out)[start:]))
            got = self._encoded[big_endian] = (size, tuple(parts))
        return got

    def partial(self, big_endian: bool) -> bytes:
        """The changed bitset followed by the changed fields, in one byte order, as one bytes
        object (a vectored write takes the :meth:`encoded` pieces unjoined)."""
        return b"".join(self.encoded(big_endian)[1])
