"""Values encoded once and sent on many connections (a monitor post fanned out to N
subscribers costs one encode per byte order, not N)."""

from __future__ import annotations

from typing import Any

from ._bitset import BitSet
from ._codec import Codec
from ._errors import LocalProtocolError
from ._types import Structure

_ALL = BitSet.from_mask(1)


class PreparedUpdate:
    """A structure value and the fields that changed, encoded lazily once per byte order.

    The encoding never uses a type cache, so it is valid on every connection. Send it with
    :meth:`ServerConnection.send_update`.
    """

    __slots__ = ("_bodies", "changed", "get_replies", "type", "value")

    def __init__(self, type: Structure, value: Any, changed: BitSet = _ALL) -> None:
        if not isinstance(type, Structure):
            raise LocalProtocolError(f"PreparedUpdate needs a Structure, not {type!r}")
        if not isinstance(changed, BitSet):
            raise LocalProtocolError(f"changed must be a BitSet, not {changed!r}")
        self.type = type
        self.value = value
        self.changed = changed
        self._bodies: list[bytes | None] = [None, None]
        #: per byte order, a whole GET reply carrying this value, ioid 0: a get on a new
        #: operation (p4p makes one per get) only writes its ioid into a copy
        self.get_replies: list[bytes | None] = [None, None]

    def partial(self, big_endian: bool) -> bytes:
        """The changed bitset followed by the changed fields, in one byte order."""
        body = self._bodies[big_endian]
        if body is None:
            out = bytearray()
            Codec(big_endian=big_endian).encode_partial(
                self.type, self.value, self.changed.mask, out
            )
            body = self._bodies[big_endian] = bytes(out)
        return body
