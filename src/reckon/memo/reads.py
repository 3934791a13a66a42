"""The globals and closure variables a memoized function reads, as they were when fingerprinted.

A fingerprint covers the values of the globals and closure variables the code reads, but it is
computed once per function: rebinding one of them later (``THRESHOLD = 5`` in a notebook) must
give another fingerprint. Fingerprinting on every call is far too slow, so the values are kept
as a snapshot and compared by identity on each call; only when one was rebound is the function
fingerprinted again, through a fresh copy (:func:`copy_function`) because fingerprints are cached
per function object.
"""

from __future__ import annotations

import types
from operator import is_not
from typing import Any

__all__ = ["Reads", "copy_function"]


def _cell_value(cell: Any) -> object:
    try:
        return cell.cell_contents
    except ValueError:  # an empty cell (a name assigned later in the enclosing scope)
        return _cell_value


class Reads:
    """The globals (by name) and closure cells a function reads, and their values at the last
    :meth:`snapshot`. Empty until the function is first prepared."""

    __slots__ = ("cell_values", "cells", "globals", "names", "values")

    def __init__(self, fn: types.FunctionType | None = None, owner: object = None) -> None:
        if fn is None:
            self.globals: dict[str, Any] = {}
            self.names: tuple[str, ...] = ()
            self.cells: tuple[Any, ...] = ()
        else:
            g = fn.__globals__
            self.globals = g
            # The memoized function reads itself by name when it recurses: not a value to watch.
            self.names = tuple(
                n for n in dict.fromkeys(fn.__code__.co_names) if n in g and g[n] is not owner
            )
            self.cells = tuple(fn.__closure__ or ())
        self.values: list[object] = []
        self.cell_values: list[object] = []
        self.snapshot()

    def __bool__(self) -> bool:
        """Whether there is anything to watch (else calls skip the check)."""
        return bool(self.cells or self.names)

    def snapshot(self) -> None:
        """Remember the values read now (the ones the fingerprint was computed with)."""
        self.values = list(map(self.globals.get, self.names))
        self.cell_values = list(map(_cell_value, self.cells))

    def changed(self) -> bool:
        """Whether a value read was rebound since the snapshot."""
        # Called on every call of a function that reads globals: no list is built, the globals
        # (the common case) are compared first and the first difference stops the scan.
        names = self.names
        if names and any(map(is_not, map(self.globals.get, names), self.values)):
            return True
        cells = self.cells
        if cells:
            return any(map(is_not, map(_cell_value, cells), self.cell_values))
        return False

    def moved_globals(self) -> list[str]:
        """The names of the globals rebound since the snapshot."""
        g = self.globals
        return [n for n, old in zip(self.names, self.values, strict=True) if g.get(n) is not old]


def copy_function(func: types.FunctionType) -> types.FunctionType:
    """A new function object over the same code, globals and cells, so a fingerprint cached per
    function object is computed afresh (after a global or closure value was rebound)."""
    new = types.FunctionType(
        func.__code__, func.__globals__, func.__name__, func.__defaults__, func.__closure__
    )
    new.__kwdefaults__ = func.__kwdefaults__
    new.__qualname__ = func.__qualname__
    new.__module__ = func.__module__
    new.__dict__.update(func.__dict__)
    return new
