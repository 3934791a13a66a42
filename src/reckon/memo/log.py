"""The ``reckon.memo`` logger and the one-line messages it emits.

Every cache event (hit, miss, store, evict, invalidate, expire, orphan, corrupt) is one line on
the ``reckon.memo`` logger, so ``logging.getLogger("reckon.memo").setLevel(logging.DEBUG)`` is all a
user needs to see what the cache does. Argument reprs are truncated: a memoized function called
with a 10 MB array must not write 10 MB of log.
"""

from __future__ import annotations

import logging
import re
import reprlib
import sys
from collections.abc import Mapping, Sequence
from typing import Any

logger = logging.getLogger("reckon.memo")

_NEWLINES = re.compile(r"\s*\n\s*")

#: Longest argument list (in characters) written in one log line.
MAX_ARGS_CHARS = 200


class _ShortRepr(reprlib.Repr):
    """reprlib's bounded repr, plus arrays and tables described rather than printed."""

    def repr_ndarray(self, obj: Any, level: int) -> str:
        return f"ndarray(shape={tuple(obj.shape)}, dtype={obj.dtype})"

    def repr_DataFrame(self, obj: Any, level: int) -> str:
        dtypes = ", ".join(f"{c}: {t}" for c, t in list(obj.dtypes.items())[:6])
        more = ", ..." if obj.shape[1] > 6 else ""
        return f"DataFrame({obj.shape[0]} rows x {obj.shape[1]} columns; {dtypes}{more})"

    def repr_Series(self, obj: Any, level: int) -> str:
        return f"Series({len(obj)} rows, dtype={obj.dtype}, name={obj.name!r})"


_repr = _ShortRepr()
_repr.maxstring = 60
_repr.maxother = 60
_repr.maxlist = 6
_repr.maxtuple = 6
_repr.maxdict = 6
_repr.maxset = 6
_repr.maxlevel = 3


def short_repr(value: object, limit: int = 80) -> str:
    """A one-line repr that never grows past ``limit`` characters and never raises.

    An array shows its shape and dtype, a DataFrame its shape and column dtypes, not their data.
    """
    try:
        text = _repr.repr(value)
    except Exception as exc:  # a broken __repr__ must not break a cache lookup
        text = f"<{type(value).__name__} (repr failed: {type(exc).__name__})>"
    if "\n" in text:
        text = _NEWLINES.sub(" ", text)
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


_PLAIN = (int, float, bool, type(None))
#: Arguments shown in a task title, and the longest string argument shown whole.
TITLE_ARGS = 3
TITLE_STR = 24


def _title_arg(value: object) -> str:
    if isinstance(value, _PLAIN):
        return repr(value)
    if isinstance(value, str):
        return repr(value) if len(value) <= TITLE_STR else repr(value[: TITLE_STR - 3] + "...")
    shape = getattr(value, "shape", None)  # arrays and frames: their type and shape, no repr
    if type(shape) is tuple:
        return f"<{type(value).__name__} {'x'.join(map(str, shape))}>"
    return f"<{type(value).__name__}>"


def task_title(name: str, args: Sequence[Any], kwargs: Mapping[str, Any]) -> str:
    """The title a memoized call's task gets (what ``reckon top`` and the web page show):
    ``module.func(12, 'north', <DataFrame 8760x2>)``. Built on every call, so it never calls a
    ``repr`` of anything but numbers and strings, and shows at most a few arguments."""
    parts = [_title_arg(a) for a in args[:TITLE_ARGS]]
    room = TITLE_ARGS - len(parts)
    for k, v in list(kwargs.items())[:room]:
        parts.append(f"{k}={_title_arg(v)}")
    if len(args) + len(kwargs) > TITLE_ARGS:
        parts.append("...")
    return f"{name}({', '.join(parts)})"


def event(kind: str, message: str, level: int = logging.DEBUG) -> None:
    """Emit one cache event line: ``<kind>: <message>``."""
    if logger.isEnabledFor(level):
        logger.log(level, "%s: %s", kind, message)


def say(kind: str, call: str, detail: str) -> None:
    """One line on stderr for ``verbose=True``: ``reckon: hit  f(1, 2) (saved 1.2 s)``."""
    sys.stderr.write(f"reckon: {kind} {call} ({detail})\n")
