"""Events: what a connection turns received bytes into, and what ``send()`` turns into bytes.

Every event is a small frozen dataclass validated on creation. Names follow the protocol:
``XInit``/``XInitResponse`` create an operation (request ``ioid`` on channel ``sid``), ``X`` runs
it and ``XResponse`` answers. Responses leave ``destroy`` False; a connection echoes the
request's destroy flag itself.

Values: structures are dicts, ``changed`` is a :class:`BitSet` of offsets. On receive, the
connection hands out full values: a delta is merged into the previous value of that request.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Self

from ._event import ALL_CHANGED, Event
from ._types import Structure
from ._values import VariantValue

__all__ = ["ALL_CHANGED", "ConnectionClosed", "Event", "MessageTooBig"]


# ---------------------------------------------------------------------- connection and discovery
#: the type of the "ca" method's credentials: the user and host names the peer states (shared:
#: types are immutable, and a server reads one per connect)
CA_CREDENTIALS = Structure([("user", "s"), ("host", "s")])


class CaAuth(Event):
    """The base of the generated ConnectionValidationResponse (:mod:`._table`): the "ca" auth
    method, whose data are the user and host names the peer states."""

    __slots__ = ()
    auth_data: VariantValue | None

    @classmethod
    def ca(cls, user: str, host: str) -> Self:
        """The "ca" method: the peer states its user and host names (no proof)."""
        data = VariantValue(CA_CREDENTIALS, {"user": user, "host": host})
        return cls(**{"auth_method": "ca", "auth_data": data})

    def _auth_field(self, name: str) -> str | None:
        d = self.auth_data
        if d is None or not isinstance(d.value, dict):
            return None
        v = d.value.get(name)
        return v if isinstance(v, str) else None

    #: the user and host names the peer claims (``ca`` method), else None
    user = property(lambda self: self._auth_field("user"))
    host = property(lambda self: self._auth_field("host"))


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


# ------------------------------------------------------------------------------ transport
@dataclass(frozen=True, slots=True, eq=False)
class ConnectionClosed(Event):
    """The peer closed the stream (``receive_data(b"")``)."""
