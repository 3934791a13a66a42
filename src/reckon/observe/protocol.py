"""The introspection protocol, without I/O: frames in, validated messages out, and back.

Every front end (the Python client, ``reckon shell``, ``reckon top``, the web page, tests) speaks
this one message set, so the rules live here once and the server and client stay thin. Nothing
in this module touches a socket or an event loop; the server and client hand it the payload of
each websocket frame and get back a message, or an :class:`ObserveProtocolError` that carries
the error code to send back.

Wire format
-----------
One message per websocket frame. A message is a map (msgpack in binary frames, the default; JSON
in text frames for the web page, chosen by websocket subprotocol) with these keys:

``v``
    Protocol version (``PROTOCOL_VERSION``). Each message type is versioned by it: a peer that
    receives a version it does not speak answers ``error`` with code ``unsupported_version``.
``id``
    Request id chosen by the client (an integer); the reply carries the same id. Pushes have
    ``id`` 0.
``type``
    What the message is: a request type (see ``REQUEST_TYPES``), or one of the server's
    ``result`` / ``error`` replies, or the ``events`` / ``status`` pushes of a subscription.

Anything else is the message's body; the request body fields are listed in ``REQUEST_TYPES``.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final, Literal

import msgpack

from reckon.errors import ObserveProtocolError

PROTOCOL_VERSION: Final = 1
SUPPORTED_VERSIONS: Final = (1,)

#: Websocket subprotocols: binary msgpack frames (the default), or JSON text frames (the web
#: page, so the browser needs no msgpack decoder). Same messages either way.
SUBPROTOCOL_MSGPACK: Final = "reckon.observe.v1.msgpack"
SUBPROTOCOL_JSON: Final = "reckon.observe.v1.json"
SUBPROTOCOLS: Final = (SUBPROTOCOL_MSGPACK, SUBPROTOCOL_JSON)

#: A request frame larger than this gets an ``error`` reply with code ``too_large`` (the
#: connection stays up). Requests are small; only replies and pushes carry bulk.
MAX_REQUEST_BYTES: Final = 64 * 1024
#: The most tasks one ``tasks`` request may ask for, and the most nodes a ``task`` tree holds.
MAX_LIST_LIMIT: Final = 10_000
MAX_TREE_NODES: Final = 2_000
#: Websocket close code for a refused token (RFC 6455 "policy violation").
CLOSE_POLICY: Final = 1008

Codec = Literal["msgpack", "json"]

TASK_STATES: Final = ("pending", "running", "loading", "done", "failed", "cancelled")
CACHE_LEVELS: Final = {"memory": 1, "full": 2}

# Error codes carried by ``error`` replies.
E_MALFORMED: Final = "malformed"  # not a decodable map
E_TOO_LARGE: Final = "too_large"
E_UNSUPPORTED_VERSION: Final = "unsupported_version"
E_UNKNOWN_TYPE: Final = "unknown_type"
E_BAD_REQUEST: Final = "bad_request"  # known type, invalid body
E_UNAUTHORIZED: Final = "unauthorized"
E_NOT_FOUND: Final = "not_found"
E_INTERNAL: Final = "internal"
E_LIMIT: Final = "limit"  # the server's limits (connections, subscriptions, queued bytes)


def _bool(v: Any) -> bool:
    return isinstance(v, bool)


def _opt_str(v: Any) -> bool:
    return v is None or (isinstance(v, str) and len(v) <= 1000)


def _opt_int(v: Any) -> bool:
    return v is None or (isinstance(v, int) and not isinstance(v, bool))


def _task_id(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and 0 <= v < 2**63


def _opt_state(v: Any) -> bool:
    return v is None or (isinstance(v, str) and v in TASK_STATES)


def _limit(v: Any) -> bool:
    return v is None or (
        isinstance(v, int) and not isinstance(v, bool) and 0 <= v <= MAX_LIST_LIMIT
    )


def _level(v: Any) -> bool:
    # Type first: a list is unhashable (``[] in dict`` raises) and ``True == 1``.
    if isinstance(v, str):
        return v in CACHE_LEVELS
    return type(v) is int and v in (1, 2)


def _interval(v: Any) -> bool:
    return v is None or (
        isinstance(v, int | float)
        and not isinstance(v, bool)
        and math.isfinite(v)
        and 0.05 <= v <= 3600
    )


def _versions(v: Any) -> bool:
    return (
        isinstance(v, list)
        and 0 < len(v) <= 16
        and all(isinstance(x, int) and not isinstance(x, bool) and 0 < x < 2**31 for x in v)
    )


def negotiate(offered: list[int] | None) -> int:
    """The highest version both sides speak, for a ``hello`` offering ``offered``."""
    if offered is None:
        return PROTOCOL_VERSION
    common = set(offered) & set(SUPPORTED_VERSIONS)
    if not common:
        raise _error(
            E_UNSUPPORTED_VERSION,
            f"client speaks protocol versions {offered}, this server {list(SUPPORTED_VERSIONS)}",
        )
    return max(common)


def _queue(v: Any) -> bool:
    return v is None or (isinstance(v, int) and not isinstance(v, bool) and 1 <= v <= 1_000_000)


#: Request type -> {body field: (validator, required)}. Fields not listed are rejected, so a
#: typo is an error instead of a silently ignored option.
REQUEST_TYPES: Final[dict[str, dict[str, tuple[Any, bool]]]] = {
    # Opens a session: version check and, when the server asks for one, the token.
    # ``versions``: the protocol versions the client speaks; the reply names the one chosen.
    "hello": {
        "token": (_opt_str, False),
        "client": (_opt_str, False),
        "versions": (_versions, False),
    },
    # Engine.stats() plus the introspector's counters, capture flag and server counters;
    # with history=true also the server's samples of the last minutes (one a second), so a
    # chart can start from them.
    "status": {"history": (_bool, False)},
    # Live and finished task records, newest first.
    "tasks": {"state": (_opt_state, False), "title": (_opt_str, False), "limit": (_limit, False)},
    # One task and its tree of children.
    "task": {"task_id": (_task_id, True)},
    # Start pushing task events (and, with status_interval, status every so many seconds).
    "subscribe": {
        "events": (_bool, False),
        "title": (_opt_str, False),
        "status_interval": (_interval, False),
        "queue": (_queue, False),
        # Only the latest event of each task within a push (for views that show states, not
        # transitions): a task that starts and ends between two pushes arrives once.
        "coalesce": (_bool, False),
    },
    "unsubscribe": {"sub": (_task_id, True)},
    # Turn capture on or off; without "enabled", only report it.
    "capture": {"enabled": (lambda v: v is None or _bool(v), False)},
    "clear_history": {},
    # "memory" (memory tier) or "full" (memory tier and store).
    "clear_cache": {"level": (_level, True)},
    # Cancel a running computation; its waiters get ComputationCancelledError.
    "cancel": {"task_id": (_task_id, True)},
    "ping": {},
}

REPLY_TYPES: Final = ("result", "error")
PUSH_TYPES: Final = ("events", "status")


@dataclass(frozen=True, slots=True)
class Request:
    """A validated request from a client."""

    id: int
    type: str
    body: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Result:
    """The server's successful reply to request ``id``."""

    id: int
    result: Any


@dataclass(frozen=True, slots=True)
class Error:
    """The server's error reply; ``id`` is 0 when the request's id could not be read."""

    id: int
    code: str
    message: str


@dataclass(frozen=True, slots=True)
class EventsPush:
    """A batch of task events of subscription ``sub``; ``dropped`` is the running total of
    events this subscription lost because the client read too slowly."""

    sub: int
    events: list[dict[str, Any]]
    dropped: int


@dataclass(frozen=True, slots=True)
class StatusPush:
    """A periodic status of subscription ``sub`` (same shape as the ``status`` result)."""

    sub: int
    status: dict[str, Any]


ServerMessage = Result | Error | EventsPush | StatusPush


# ---------------------------------------------------------------------------------------------
# frames <-> maps
# ---------------------------------------------------------------------------------------------


def _json_default(obj: object) -> object:
    if isinstance(obj, bytes | bytearray | memoryview):
        return bytes(obj).hex()
    if isinstance(obj, set | frozenset | tuple):
        return list(obj)
    return str(obj)


def _msgpack_default(obj: object) -> object:
    if isinstance(obj, set | frozenset):
        return list(obj)
    if isinstance(obj, memoryview):
        return bytes(obj)
    return str(obj)


def dumps(message: Mapping[str, Any], codec: Codec = "msgpack") -> bytes | str:
    """A map as one frame payload: bytes for msgpack, str for JSON."""
    if codec == "json":
        return json.dumps(message, default=_json_default, separators=(",", ":"), allow_nan=False)
    out: bytes = msgpack.packb(message, default=_msgpack_default, use_bin_type=True)
    return out


def loads(frame: bytes | str, *, max_bytes: int | None = None) -> dict[str, Any]:
    """One frame payload as a map; msgpack when bytes, JSON when str.

    Raises :class:`ObserveProtocolError` (``code`` attribute set) when the frame is too large,
    undecodable, or not a map with string keys.
    """
    if max_bytes is not None and len(frame) > max_bytes:
        raise _error(E_TOO_LARGE, f"frame of {len(frame)} bytes is over the {max_bytes} limit")
    try:
        if isinstance(frame, str):
            obj = json.loads(frame)
        else:
            obj = msgpack.unpackb(frame, raw=False, strict_map_key=False)
    except Exception as exc:  # msgpack and json raise a zoo of types on garbage
        kind = "JSON" if isinstance(frame, str) else "msgpack"
        raise _error(E_MALFORMED, f"frame is not valid {kind}: {exc}") from None
    if not isinstance(obj, dict) or not all(isinstance(k, str) for k in obj):
        raise _error(E_MALFORMED, f"a message is a map with string keys, not {type(obj).__name__}")
    return obj


class ProtocolViolation(ObserveProtocolError):
    """A frame that breaks the protocol; ``code`` is the error code the reply carries."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


def _error(code: str, message: str) -> ProtocolViolation:
    return ProtocolViolation(code, message)


def error_code(exc: BaseException) -> str:
    """The protocol error code an exception stands for."""
    return str(getattr(exc, "code", E_INTERNAL))


def peek_id(message: Mapping[str, Any]) -> int:
    """The request id of a possibly invalid message, 0 when it has none usable, so that the
    error reply can still be matched to the request when possible."""
    rid = message.get("id")
    if isinstance(rid, int) and not isinstance(rid, bool) and 0 <= rid < 2**63:
        return rid
    return 0


# ---------------------------------------------------------------------------------------------
# requests (client -> server)
# ---------------------------------------------------------------------------------------------


def encode_request(request: Request, codec: Codec = "msgpack") -> bytes | str:
    return dumps(
        {"v": PROTOCOL_VERSION, "id": request.id, "type": request.type, **request.body}, codec
    )


def parse_request(message: Mapping[str, Any]) -> Request:
    """Validate a decoded map as a request, or raise ObserveProtocolError with its code."""
    version = message.get("v")
    if version not in SUPPORTED_VERSIONS or isinstance(version, bool):
        raise _error(
            E_UNSUPPORTED_VERSION,
            f"protocol version {version!r} is not supported; this server speaks "
            f"{list(SUPPORTED_VERSIONS)} (set 'v': {PROTOCOL_VERSION})",
        )
    rid = message.get("id")
    if not isinstance(rid, int) or isinstance(rid, bool) or not 0 < rid < 2**63:
        raise _error(E_BAD_REQUEST, f"'id' must be a positive integer, not {rid!r}")
    kind = message.get("type")
    if not isinstance(kind, str) or kind not in REQUEST_TYPES:
        raise _error(
            E_UNKNOWN_TYPE,
            f"unknown message type {kind!r}; known types: {', '.join(sorted(REQUEST_TYPES))}",
        )
    spec = REQUEST_TYPES[kind]
    body: dict[str, Any] = {}
    for key, value in message.items():
        if key in ("v", "id", "type"):
            continue
        if key not in spec:
            allowed = ", ".join(sorted(spec)) or "none"
            raise _error(E_BAD_REQUEST, f"{kind}: unknown field {key!r} (fields: {allowed})")
        check, _required = spec[key]
        if not check(value):
            raise _error(E_BAD_REQUEST, f"{kind}: invalid value {value!r} for field {key!r}")
        body[key] = value
    for key, (_check, required) in spec.items():
        if required and key not in body:
            raise _error(E_BAD_REQUEST, f"{kind}: field {key!r} is required")
    return Request(rid, kind, body)


def decode_request(frame: bytes | str, *, max_bytes: int = MAX_REQUEST_BYTES) -> Request:
    return parse_request(loads(frame, max_bytes=max_bytes))


# ---------------------------------------------------------------------------------------------
# server messages (server -> client)
# ---------------------------------------------------------------------------------------------


def encode_result(rid: int, result: Any, codec: Codec = "msgpack") -> bytes | str:
    return dumps({"v": PROTOCOL_VERSION, "id": rid, "type": "result", "result": result}, codec)


def encode_error(rid: int, code: str, message: str, codec: Codec = "msgpack") -> bytes | str:
    return dumps(
        {"v": PROTOCOL_VERSION, "id": rid, "type": "error", "code": code, "message": message},
        codec,
    )


def encode_events(
    sub: int, events: list[dict[str, Any]], dropped: int, codec: Codec = "msgpack"
) -> bytes | str:
    return dumps(
        {
            "v": PROTOCOL_VERSION,
            "id": 0,
            "type": "events",
            "sub": sub,
            "events": events,
            "dropped": dropped,
        },
        codec,
    )


def encode_status(sub: int, status: dict[str, Any], codec: Codec = "msgpack") -> bytes | str:
    return dumps(
        {"v": PROTOCOL_VERSION, "id": 0, "type": "status", "sub": sub, "status": status}, codec
    )


def decode_server_message(frame: bytes | str) -> ServerMessage:
    """A frame from the server as a message; raises ObserveProtocolError on anything else."""
    m = loads(frame)
    if m.get("v") != PROTOCOL_VERSION:
        raise _error(E_UNSUPPORTED_VERSION, f"server spoke protocol version {m.get('v')!r}")
    kind = m.get("type")
    try:
        if kind == "result":
            return Result(int(m["id"]), m.get("result"))
        if kind == "error":
            return Error(int(m.get("id") or 0), str(m["code"]), str(m.get("message", "")))
        if kind == "events":
            events = m["events"]
            if not isinstance(events, list):
                raise TypeError("events is not a list")
            return EventsPush(int(m["sub"]), events, int(m.get("dropped", 0)))
        if kind == "status":
            status = m["status"]
            if not isinstance(status, dict):
                raise TypeError("status is not a map")
            return StatusPush(int(m["sub"]), status)
    except (KeyError, TypeError, ValueError) as exc:
        raise _error(E_MALFORMED, f"bad {kind} message from server: {exc}") from None
    raise _error(E_UNKNOWN_TYPE, f"unknown server message type {kind!r}")


def cache_level_value(level: str | int) -> int:
    """The CachingLevel integer a ``clear_cache`` level names."""
    if isinstance(level, str):
        if level not in CACHE_LEVELS:
            raise _error(E_BAD_REQUEST, f"cache level {level!r}: use 'memory' or 'full'")
        return CACHE_LEVELS[level]
    if level not in (1, 2):
        raise _error(E_BAD_REQUEST, f"cache level {level!r}: use 1 (memory) or 2 (full)")
    return int(level)
