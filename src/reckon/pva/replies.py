"""Handler outcomes as pvAccess replies: an exception as an error Status, an RPC handler's
plain Python return value as a typed value (so handlers can return a float or a dict).
"""

from __future__ import annotations

from typing import Any

from reckon.errors import PvaAccessDeniedError
from reckon.pva.protocol import Status, Structure, VariantValue
from reckon.pva.pv import coerce


def status_of(exc: BaseException) -> Status:
    if isinstance(exc, PvaAccessDeniedError):
        return Status.error(f"access denied: {exc}")
    text = str(exc) or type(exc).__name__
    return Status.error(text)


def to_typed(result: Any) -> VariantValue:
    """An RPC handler's return value as a typed value (a dict infers a structure)."""
    if isinstance(result, VariantValue):
        return result
    if hasattr(result, "typed") and callable(result.typed):
        typed = result.typed()
        assert isinstance(typed, VariantValue)
        return typed
    if isinstance(result, tuple) and len(result) == 2 and isinstance(result[0], Structure):
        t, v = result
        return VariantValue(t, coerce(t, v))
    if result is None:
        return VariantValue(Structure([]), {})
    if not isinstance(result, dict):
        from reckon.pva import nt

        return nt.typed_scalar(result)
    return VariantValue.of(result)
