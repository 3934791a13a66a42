"""The events generated from the message table (:mod:`._table`): those of operations (an
``ioid`` on a channel: get, put, put-get, monitor, array, process, get-field and RPC), of
connections, channels and discovery, and the control messages (the two outside the table, a
too-big request and a closed stream, are written in :mod:`._events`). ``XInit``/
``XInitResponse`` create an operation, ``X`` runs it and ``XResponse`` answers; responses leave
``destroy`` False (a connection echoes the request's destroy flag itself).

A type checker reads their types in ``_op_events.pyi``, generated from the same classes
(:func:`._table.stubs`; a test fails when it is stale)."""

from __future__ import annotations

from ._table import CONTROL, MESSAGES

_GENERATED = {
    c.__name__: c for c in (*(r.event for r in MESSAGES), *CONTROL) if c.__module__ == __name__
}
globals().update(_GENERATED)
__all__ = sorted(_GENERATED)
