"""What every client operation shares: the caller's pvRequest and put value turned into what
goes on the wire, and the server's error statuses turned into exceptions.

Kept apart from the connection and the :class:`~reckon.pva.client.Client` so the monitor
subscription and the blocking wrapper can use them without importing the whole client.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from reckon.errors import PvaError, PvaRemoteError
from reckon.pva.protocol import FieldDesc, Status, Structure, VariantValue
from reckon.pva.pv import merge

DEFAULT_TIMEOUT = 5.0  # seconds: search, connect and reply, unless a call says otherwise


def make_request(request: str | Mapping[str, Any] | VariantValue | None) -> VariantValue | None:
    """A pvRequest from ``"field(value)record[queueSize=4]"``, a dict, or an existing value."""
    if request is None or isinstance(request, VariantValue):
        return request
    from reckon.pva.protocol import pv_request

    if isinstance(request, str):
        return pv_request(request)
    return VariantValue.of(dict(request))


def check_status(status: Status, what: str, name: str) -> None:
    """Raise the server's error status with the operation and PV named, so it can be traced."""
    if not status.success:
        raise PvaRemoteError(f"{what} {name!r}: {status.message or 'error'}")


def build_value(t: FieldDesc | None, value: Any, name: str) -> tuple[dict[str, Any], int]:
    """A full value of the server's put type and the mask of the fields the caller set: a
    dict of field names sets those fields, anything else is the ``value`` field (NT types)."""
    if not isinstance(t, Structure):
        raise PvaError(f"put {name!r}: the server gave no structure type")
    if isinstance(value, Mapping) and set(value) <= set(t.names):
        update: Mapping[str, Any] = value
    elif "value" in t:
        update = {"value": value}
    else:
        raise PvaError(f"put {name!r}: it has no 'value' field; put a dict of {list(t.names)}")
    return merge(t, t.default(), update)
