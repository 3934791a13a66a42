"""One mapping between gRPC/Connect status codes and reckon's ServiceCallError family.

Every transport (in-process, gRPC, Connect) raises the same exception for the same failure, so
calling code handles errors the same way whatever the placement.
"""

from __future__ import annotations

import asyncio

from reckon.errors import (
    CallCancelledError,
    DeadlineExceededError,
    PermissionDeniedError,
    ServiceCallError,
    ServiceUnavailableError,
    UnauthenticatedError,
)

CODES = (
    "OK",
    "CANCELLED",
    "UNKNOWN",
    "INVALID_ARGUMENT",
    "DEADLINE_EXCEEDED",
    "NOT_FOUND",
    "ALREADY_EXISTS",
    "PERMISSION_DENIED",
    "RESOURCE_EXHAUSTED",
    "FAILED_PRECONDITION",
    "ABORTED",
    "OUT_OF_RANGE",
    "UNIMPLEMENTED",
    "INTERNAL",
    "UNAVAILABLE",
    "DATA_LOSS",
    "UNAUTHENTICATED",
)

_SPECIFIC: dict[str, type[ServiceCallError]] = {
    "DEADLINE_EXCEEDED": DeadlineExceededError,
    "UNAUTHENTICATED": UnauthenticatedError,
    "UNAVAILABLE": ServiceUnavailableError,
    "CANCELLED": CallCancelledError,
    "PERMISSION_DENIED": PermissionDeniedError,
}


def error_for(code: str, message: str) -> ServiceCallError:
    """The reckon exception for a status code name (``"NOT_FOUND"``) and message."""
    code = code.upper()
    if code == "CANCELED":  # Connect's spelling
        code = "CANCELLED"
    if code not in CODES:
        code = "UNKNOWN"
    cls = _SPECIFIC.get(code)
    if cls is not None:
        return cls(message)
    return ServiceCallError(message, code)


def from_handler_exception(exc: BaseException, where: str) -> ServiceCallError:
    """What a caller sees when a handler raised ``exc`` (same in-process and over the wire)."""
    if isinstance(exc, ServiceCallError):
        return exc
    if isinstance(exc, TimeoutError | asyncio.TimeoutError):
        return DeadlineExceededError(f"{where}: deadline exceeded")
    if isinstance(exc, asyncio.CancelledError):
        return CallCancelledError(f"{where}: cancelled")
    return ServiceCallError(f"{where}: {type(exc).__name__}: {exc}", "UNKNOWN")
