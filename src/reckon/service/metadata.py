"""Request metadata, the same on every transport: text values as ``str``, ``-bin`` keys as bytes.

gRPC carries binary metadata natively (keys ending in ``-bin``); Connect and gRPC-Web carry it as
HTTP headers whose values are base64. A handler sees ``ctx.metadata`` in one shape whichever way
the call came, and the headers a transport uses for itself (content type, timeouts, encodings)
are left out so that the same call shows the same metadata in-process and over the wire.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Iterable, Mapping
from typing import Any

from reckon.errors import ServiceCallError

Metadata = dict[str, str | bytes]

_TRANSPORT = frozenset(
    {
        "accept",
        "accept-encoding",
        "connection",
        "content-encoding",
        "content-length",
        "content-type",
        "host",
        "te",
        "transfer-encoding",
        "user-agent",
        "x-user-agent",
        "upgrade",
        "http2-settings",
    }
)


def _transport_key(key: str) -> bool:
    return key in _TRANSPORT or key.startswith((":", "grpc-", "connect-"))


def from_pairs(pairs: Iterable[tuple[str, Any]] | Mapping[str, Any] | None) -> Metadata:
    """Metadata from gRPC pairs or a caller's dict/list (``-bin`` values must be bytes)."""
    if pairs is None:
        return {}
    items = pairs.items() if isinstance(pairs, Mapping) else pairs
    out: Metadata = {}
    for k, v in items:
        key = str(k).lower()
        if _transport_key(key) or key == "authorization":  # that one is ctx.authorization
            continue
        if key.endswith("-bin"):
            if isinstance(v, str):
                v = _b64decode(key, v)
            out[key] = bytes(v)
        else:
            out[key] = v.decode() if isinstance(v, bytes) else str(v)
    return out


def from_headers(headers: Iterable[tuple[str, str]] | Mapping[str, str]) -> Metadata:
    """Metadata from HTTP headers (Connect, gRPC-Web): ``-bin`` values are base64 there."""
    return from_pairs(headers)


def to_headers(md: Metadata) -> dict[str, str]:
    """HTTP headers for metadata: ``-bin`` values base64-encoded, as Connect specifies."""
    out: dict[str, str] = {}
    for k, v in md.items():
        if isinstance(v, bytes):
            out[k] = base64.b64encode(v).decode("ascii")
        else:
            out[k] = v
    return out


def _b64decode(key: str, value: str) -> bytes:
    text = value.strip().replace("-", "+").replace("_", "/")  # URL-safe alphabets too
    try:
        return base64.b64decode(text + "=" * (-len(text) % 4), validate=False)
    except (binascii.Error, ValueError):
        raise ServiceCallError(
            f"metadata {key!r} is binary (its name ends in -bin) but its value is not base64",
            "INVALID_ARGUMENT",
        ) from None
