"""Normative types for users of the server and client: the protocol's helpers plus shortcuts.

Everything of :mod:`reckon.pva.protocol.nt` is re-exported; the additions build *typed* values
(a :class:`VariantValue`: type and value together), which is what RPC arguments and results
need, and pick an NT for a plain Python value (what the bridge and the CLI publish).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from reckon.pva.protocol import VariantValue, infer_type
from reckon.pva.protocol.nt import *  # noqa: F403
from reckon.pva.protocol.nt import NTURI, NTScalar, NTScalarArray, NTTable
from reckon.pva.protocol.nt import __all__ as _protocol_all

__all__ = [*_protocol_all, "for_value", "typed", "typed_scalar", "uri"]


def _kind_of(value: Any) -> str:
    kind = getattr(infer_type(value), "kind", None)
    if not isinstance(kind, str):
        raise TypeError(f"no scalar kind for {value!r:.60}")
    return kind


def for_value(value: Any) -> NTScalar | NTScalarArray | NTTable:
    """The NT a plain value is published as: scalars, arrays, or dict-of-columns tables."""
    if (
        isinstance(value, Mapping)
        and value
        and all(isinstance(v, (list, tuple, np.ndarray)) for v in value.values())
    ):
        return NTTable([(str(k), _kind_of(v)) for k, v in value.items()])
    if isinstance(value, (list, tuple, np.ndarray)):
        return NTScalarArray(_kind_of(value))
    return NTScalar(_kind_of(value))


def typed(helper: Any, *args: Any, **kw: Any) -> VariantValue:
    """``typed(NTScalar("d"), 1.5)``: an NT helper's ``wrap`` result together with its type."""
    return VariantValue(helper.type, helper.wrap(*args, **kw))


def typed_scalar(value: Any) -> VariantValue:
    """A plain value as the NT ``for_value`` picks, typed (an RPC handler may return this)."""
    return typed(for_value(value), value)


def uri(path: str, query: Mapping[str, Any] | None = None) -> VariantValue:
    """An NTURI argument for RPC, with query field types inferred from the values."""
    query = dict(query or {})
    return typed(NTURI([(k, infer_type(v)) for k, v in query.items()]), path, query)
