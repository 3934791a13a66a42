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


def connect_code(code: str) -> str:
    """Connect's name for a gRPC code (``"CANCELLED"`` -> ``"canceled"``)."""
    code = code.upper()
    if code not in CODES[1:]:
        return "unknown"
    return "canceled" if code == "CANCELLED" else code.lower()


def uniform(exc: ServiceCallError) -> ServiceCallError:
    """``exc`` as the class :func:`error_for` gives its code, so a handler's
    ``ServiceCallError(..., "UNAVAILABLE")`` reaches every caller as ServiceUnavailableError.

    A code that is not a failure (``"OK"``) or not a gRPC code at all becomes UNKNOWN: a call
    that failed must end with a failure status, never hang waiting for a result.
    """
    code = exc.code.upper() if isinstance(exc.code, str) else ""
    if code == "CANCELED":
        code = "CANCELLED"
    if code == "OK" or code not in CODES:
        return ServiceCallError(
            f"{exc} (raised with status code {exc.code!r}, which is not a failure code; "
            f"use one of {', '.join(CODES[1:])})",
            "UNKNOWN",
        )
    if type(exc) is ServiceCallError and code in _SPECIFIC:
        return _SPECIFIC[code](str(exc))
    if code != exc.code:
        return error_for(code, str(exc))
    return exc


def from_handler_exception(exc: BaseException, where: str) -> ServiceCallError:
    """What a caller sees when a handler raised ``exc`` (same in-process and over the wire)."""
    if isinstance(exc, ServiceCallError):
        return uniform(exc)
    if isinstance(exc, TimeoutError | asyncio.TimeoutError):
        return DeadlineExceededError(f"{where}: deadline exceeded")
    if isinstance(exc, asyncio.CancelledError):
        return CallCancelledError(f"{where}: cancelled")
    return ServiceCallError(f"{where}: {type(exc).__name__}: {exc}", "UNKNOWN")
