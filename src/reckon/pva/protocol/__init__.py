"""reckon.pva.protocol: EPICS pvAccess as a pure library (bytes in, events out).

No sockets, no asyncio, nothing of reckon: stdlib plus optional numpy. See docs/pva-protocol.md.
"""

from __future__ import annotations

from . import nt
from ._bitset import BitSet
from ._codec import Codec, decode_partial, decode_value, encode_partial, encode_value
from ._connection import NEED_DATA, ClientConnection
from ._constants import (
    Command,
    ControlCommand,
    Flags,
    MessageSeverity,
    StatusType,
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
from ._generate import OpContext, read_message, write_payload
from ._op_events import *  # noqa: F403
from ._op_events import __all__ as _op_events_all
from ._operations import ChannelInfo, RequestInfo
from ._prepared import PreparedUpdate
from ._pvrequest import pv_request, request_fields, request_options
from ._server_connection import ServerConnection
from ._state import OPENERS, OPERATIONS, ConnectionState, RequestState, Role, Step
from ._status import Status
from ._table import MESSAGES, Row
from ._typecodec import TypeRecvCache, TypeSendCache, decode_type, encode_type
from ._types import (
    KIND_NAMES,
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
    "Codec",
    "ChannelInfo",
    "ClientConnection",
    "Command",
    "ConnectionState",
    "ControlCommand",
    "DecodeError",
    "Discovery",
    "FieldDesc",
    "KIND_NAMES",
    "Flags",
    "LimitExceededError",
    "LocalProtocolError",
    "MessageSeverity",
    "PreparedUpdate",
    "ProtocolError",
    "RemoteProtocolError",
    "RequestInfo",
    "RequestState",
    "MESSAGES",
    "OPENERS",
    "OpContext",
    "Row",
    "OPERATIONS",
    "Role",
    "Step",
    "Scalar",
    "ScalarArray",
    "ServerConnection",
    "Status",
    "StatusType",
    "Structure",
    "StructureArray",
    "Union",
    "UnionArray",
    "UnionValue",
    "Variant",
    "VariantArray",
    "VariantValue",
    "TypeRecvCache",
    "TypeSendCache",
    "decode_partial",
    "decode_type",
    "decode_value",
    "encode_partial",
    "encode_type",
    "encode_value",
    "infer_type",
    "nt",
    "parse_type",
    "pv_request",
    "read_message",
    "request_fields",
    "request_options",
    "values_equal",
    "write_payload",
    *_events_all,
    *_op_events_all,
]
