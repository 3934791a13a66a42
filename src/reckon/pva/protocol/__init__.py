"""reckon.pva.protocol: EPICS pvAccess as a pure library (bytes in, events out).

No sockets, no asyncio, nothing of reckon: stdlib plus optional numpy. See docs/pva-protocol.md.
"""

from __future__ import annotations

from ._bitset import BitSet
from ._connection import (
    NEED_DATA,
    ChannelInfo,
    ChannelState,
    ClientConnection,
    ConnectionState,
    RequestInfo,
    RequestState,
    Role,
    ServerConnection,
)
from ._constants import (
    Command,
    ControlCommand,
    Flags,
    MessageSeverity,
    SearchFlags,
    StatusType,
    Subcommand,
)
from ._discovery import Discovery
from ._errors import (
    DecodeError,
    LimitExceededError,
    LocalProtocolError,
    ProtocolError,
    RemoteProtocolError,
)
from ._events import *  # noqa: F403
from ._events import __all__ as _events_all
from ._status import Status
from ._types import (
    BoundedString,
    FieldDesc,
    Scalar,
    ScalarArray,
    Structure,
    StructureArray,
    Union,
    UnionArray,
    Variant,
    VariantArray,
    parse_type,
)
from ._values import UnionValue, VariantValue, infer_type, values_equal

__all__ = [
    "NEED_DATA",
    "BitSet",
    "BoundedString",
    "ChannelInfo",
    "ChannelState",
    "ClientConnection",
    "Command",
    "ConnectionState",
    "ControlCommand",
    "DecodeError",
    "Discovery",
    "FieldDesc",
    "Flags",
    "LimitExceededError",
    "LocalProtocolError",
    "MessageSeverity",
    "ProtocolError",
    "RemoteProtocolError",
    "RequestInfo",
    "RequestState",
    "Role",
    "Scalar",
    "ScalarArray",
    "SearchFlags",
    "ServerConnection",
    "Status",
    "StatusType",
    "Structure",
    "StructureArray",
    "Subcommand",
    "Union",
    "UnionArray",
    "UnionValue",
    "Variant",
    "VariantArray",
    "VariantValue",
    "infer_type",
    "parse_type",
    "values_equal",
    *_events_all,
]
