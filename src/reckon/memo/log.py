"""The ``reckon.memo`` logger and the one-line messages it emits.

Every cache event (hit, miss, store, evict, invalidate, expire, orphan, corrupt) is one line on
the ``reckon.memo`` logger, so ``logging.getLogger("reckon.memo").setLevel(logging.DEBUG)`` is all a
user needs to see what the cache does. Argument reprs are truncated: a memoized function called
with a 10 MB array must not write 10 MB of log.
"""

from __future__ import annotations

import logging
import reprlib
from collections.abc import Mapping, Sequence
from typing import Any

logger = logging.getLogger("reckon.memo")

#: Longest argument list (in characters) written in one log line.
MAX_ARGS_CHARS = 200

_repr = reprlib.Repr()
_repr.maxstring = 60
_repr.maxother = 60
_repr.maxlist = 6
_repr.maxtuple = 6
_repr.maxdict = 6
_repr.maxset = 6
_repr.maxlevel = 3


def short_repr(value: object, limit: int = 80) -> str:
    """A repr that never grows past ``limit`` characters and never raises."""
    try:
        text = _repr.repr(value)
    except Exception as exc:  # a broken __repr__ must not break a cache lookup
        text = f"<{type(value).__name__} (repr failed: {type(exc).__name__})>"
    if len(text) > limit:
        text = text[: limit - 3] + "..."
    return text


def format_call(
    name: str, args: Sequence[Any], kwargs: Mapping[str, Any], limit: int = MAX_ARGS_CHARS
) -> str:
    """``name(arg, ..., key=value)`` with each argument and the whole list truncated."""
    parts = [short_repr(a) for a in args]
    parts.extend(f"{k}={short_repr(v)}" for k, v in kwargs.items())
    inner = ", ".join(parts)
    if len(inner) > limit:
        inner = inner[: limit - 3] + "..."
    return f"{name}({inner})"


def event(kind: str, message: str, level: int = logging.DEBUG) -> None:
    """Emit one cache event line: ``<kind>: <message>``."""
    if logger.isEnabledFor(level):
        logger.log(level, "%s: %s", kind, message)
