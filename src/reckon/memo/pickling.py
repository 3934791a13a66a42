"""How a memoized function travels to another process (multiprocessing, dask, cloudpickle).

A memoized function is worth sending only if it arrives as the same cache: same name, same group
(store), same fingerprint. Where the receiver can import it, it goes by reference (module and
qualified name) plus its configuration, and the receiver's own object takes that configuration:
re-unpickling never resets what it already cached. Where it cannot (a local function, or code
cloudpickle sends by value), the function goes by value with its configuration and, when known,
its fingerprint, so the rebuilt copy keys like the original without fingerprinting again.

The loaders themselves (``_load_memoized``, ``_rebuild_memoized``) live in
:mod:`reckon.memo.memoize`: pickles name them there, so they must never move.
"""

from __future__ import annotations

import importlib
import sys
import types
from typing import TYPE_CHECKING, Any

from reckon.core import CachingLevel

if TYPE_CHECKING:
    from reckon.memo.memoize import Memoized

__all__ = ["apply_config", "by_reference", "by_value", "config_of", "lookup"]


def lookup(module: str, qualname: str) -> object:
    """The object a module and qualified name name (a method found in its class's namespace,
    where ``getattr`` would bind it)."""
    obj: object = importlib.import_module(module)
    for part in qualname.split("."):
        inside_class = isinstance(obj, type) and part in vars(obj)
        obj = vars(obj)[part] if inside_class else getattr(obj, part)
    return obj


def _inside_cloudpickle(frame: types.FrameType | None) -> bool:
    """Whether cloudpickle is among the (at most 40) callers from ``frame`` outwards."""
    for _ in range(40):
        if frame is None:
            return False
        if str(frame.f_globals.get("__name__", "")).startswith("cloudpickle"):
            return True
        frame = frame.f_back
    return False


def _pickled_by_value(module: str) -> bool:
    cp = sys.modules.get("cloudpickle")
    if cp is None:
        return False
    try:
        return module in cp.list_registry_pickle_by_value()
    except Exception:
        return False


def by_reference(memoized: Memoized[Any, Any]) -> bool:
    """Whether ``memoized`` can be pickled as its import path: importing it there finds this very
    object, and the pickler will not send its module by value. Call from ``__reduce__`` only (the
    cloudpickle check starts at ``__reduce__``'s caller, the pickler)."""
    module, qualname = memoized.__module__, memoized.__qualname__
    if "<locals>" in qualname or _pickled_by_value(module):
        return False
    try:
        found = lookup(module, qualname) is memoized
    except Exception:
        return False
    if found and module == "__main__":
        # cloudpickle sends __main__'s functions by value: a receiver's __main__ is another
        # program, where the name would find nothing or something else.
        return not _inside_cloudpickle(sys._getframe(2))
    return found


def config_of(memoized: Memoized[Any, Any]) -> dict[str, Any]:
    """What a receiver's own object takes over from the sender's (never its counters)."""
    return {
        "group": memoized._group,
        "level": None if memoized._level_override is None else int(memoized._level_override),
        "name": memoized.name,
        "ttl": memoized._ttl,
        "replay_stdout": memoized._replay,
        "replay_logs": memoized._replay_logs,
        "assume_pure": memoized._assume_pure,
        "verbose": memoized._verbose_option,
    }


def by_value(memoized: Memoized[Any, Any]) -> tuple[Any, dict[str, Any]]:
    """The function (as it was decorated) and the state to rebuild its memoized twin from."""
    func: Any = memoized.__wrapped__
    if memoized._kind == "classmethod":
        func = classmethod(func)
    elif memoized._kind == "staticmethod":
        func = staticmethod(func)
    state = config_of(memoized)
    state["key"] = memoized._key
    state["ignore"] = tuple(sorted(memoized._arguments.ignore))
    # The fingerprint goes with the code, so no receiver fingerprints it again: a Dask client
    # that maps a function it never called over 400 tasks fingerprints it here, once, not once
    # per task on the workers (``fingerprint`` prepares, and sees a value it reads rebound).
    state["fp"] = memoized._fp if memoized.fingerprint else b""
    return func, state


def apply_config(obj: Memoized[Any, Any], config: dict[str, Any]) -> None:
    """Give the receiver's memoized function the sender's configuration; it prepares again only
    if its group or level changed."""
    group = config["group"]
    level = config["level"]
    if group is not obj._group:
        obj._group = group
        obj._ready = False
    new_level = None if level is None else CachingLevel(level)
    if new_level != obj._level_override:
        obj._level_override = new_level
        obj._ready = False
    obj._ttl = config["ttl"]
    obj._replay = config["replay_stdout"]
    obj._replay_logs = config.get("replay_logs", False)
    obj._assume_pure = config["assume_pure"]
    if config.get("verbose", obj._verbose_option) != obj._verbose_option:
        obj._verbose_option = config.get("verbose")
        obj._ready = False
