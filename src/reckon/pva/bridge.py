"""Publish reckon's own values as PVs: an Engine's statistics, memoized results, serve files.

A control room already watches PVs; this puts reckon's cache on the same screens. The engine's
counters become one structured PV refreshed while they change; a memoized function becomes an
RPC PV, and every distinct result it computed gets a PV of its own (``NAME:arg=value``), so a
panel can watch a result without recomputing it.
"""

from __future__ import annotations

import asyncio
import difflib
import inspect
import logging
import re
from collections.abc import Callable, Mapping
from typing import Any

from reckon.errors import ConfigurationError
from reckon.pva import nt
from reckon.pva.protocol import Structure, infer_type
from reckon.pva.pv import RpcOperation, SharedPV
from reckon.pva.server import Server

log = logging.getLogger("reckon.pva.bridge")

# ------------------------------------------------------------------------------------------
# engine statistics
# ------------------------------------------------------------------------------------------


def _present(stats: Mapping[str, Any]) -> dict[str, Any]:
    """The statistics without their empty (None) fields: those have no pvData type."""
    return {
        k: _present(v) if isinstance(v, Mapping) else v for k, v in stats.items() if v is not None
    }


def _stats_type(stats: Mapping[str, Any]) -> Structure:
    base = infer_type(_present(stats))  # as a variant's value would be typed
    assert isinstance(base, Structure)
    return Structure([*base.fields, ("timeStamp", nt.time_t)], id="reckon:EngineStats:1.0")


def _clean(stats: Mapping[str, Any], t: Structure) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, sub in t.fields:
        if name not in stats or stats[name] is None:
            continue
        v = stats[name]
        out[name] = _clean(v, sub) if isinstance(sub, Structure) else v
    return out


class EngineStatsPublisher:
    """Keeps PV ``name`` equal to ``engine.stats()``, posting only when the numbers change
    (make it on the server's event loop)."""

    def __init__(
        self, server: Server, engine: Any, name: str = "reckon:stats", period: float = 0.5
    ) -> None:
        self.server = server
        self.engine = engine
        self.name = name
        self.period = period
        stats = engine.stats()
        self.type = _stats_type(stats)
        self.pv = SharedPV(self.type, _clean(stats, self.type), writable=False)
        self._last = stats
        server.add(name, self.pv)
        self._task: asyncio.Task[None] | None = asyncio.get_running_loop().create_task(
            self._run(), name=f"pva-stats-{name}"
        )

    def refresh(self) -> None:
        """Post the engine's current numbers if they changed."""
        stats = self.engine.stats()
        if stats != self._last:
            self._last = stats
            self.pv.post(_clean(stats, self.type))

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.period)
            try:
                self.refresh()
            except Exception:  # a failing stats call must not kill the publisher
                log.exception("engine stats for %s", self.name)

    def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            self._task = None
        self.server.remove(self.name)


#: publish ``engine.stats()`` as PV ``name``
publish_engine_stats = EngineStatsPublisher


# ------------------------------------------------------------------------------------------
# memoized results
# ------------------------------------------------------------------------------------------

_UNSAFE = re.compile(r"[^A-Za-z0-9_.,=+\-]")


def result_name(prefix: str, args: Mapping[str, Any]) -> str:
    """The PV name of one result: ``prefix:a=1,b=x`` (argument order-independent)."""
    parts = [f"{k}={_UNSAFE.sub('_', str(v))}" for k, v in sorted(args.items())]
    return f"{prefix}:{','.join(parts)}" if parts else f"{prefix}:result"


class MemoPublisher:
    """RPC PV ``name`` calls ``fn(**query)``; each distinct result it produced gets a PV of its
    own, ``name:arg=value,...``.

    ``fn`` is usually a ``@memoize``d function, so calling again with the same arguments is a
    cache hit; sync functions run in a worker thread so the server keeps serving meanwhile.
    """

    def __init__(self, server: Server, name: str, fn: Callable[..., Any]) -> None:
        self.server = server
        self.name = name
        self.fn = fn
        self.results: dict[str, SharedPV] = {}
        server.add(name, SharedPV.rpc_only(self._call))

    async def compute(self, **args: Any) -> Any:
        if inspect.iscoroutinefunction(self.fn):
            value = await self.fn(**args)
        else:
            value = await asyncio.to_thread(self.fn, **args)
        self._publish(args, value)
        return value

    def _publish(self, args: Mapping[str, Any], value: Any) -> None:
        pv_name = result_name(self.name, args)
        helper = nt.for_value(value)
        pv = self.results.get(pv_name)
        if pv is not None and pv.type == helper.type:
            pv.post(helper.wrap(value))
            return
        pv = SharedPV(helper, helper.wrap(value), writable=False)
        self.results[pv_name] = pv
        self.server.add(pv_name, pv)

    async def _call(self, op: RpcOperation) -> Any:
        value = await self.compute(**op.query)
        return nt.typed_scalar(value)

    def stop(self) -> None:
        self.server.remove(self.name)
        for name in self.results:
            self.server.remove(name)
        self.results.clear()


#: publish ``fn`` as RPC PV ``name``; each result appears as ``name:arg=value,...``
publish_memoized = MemoPublisher


# ------------------------------------------------------------------------------------------
# serve files
# ------------------------------------------------------------------------------------------


def _rpc_builtin(kind: str) -> Callable[[RpcOperation], Any]:
    if kind == "echo":
        return lambda op: op.argument if op.argument is not None else {}
    if kind == "sum":
        return lambda op: nt.typed(nt.NTScalar("d"), sum(float(v) for v in op.query.values()))
    raise ConfigurationError(f"unknown rpc {kind!r}: use 'echo' or 'sum'")


# Every key a serve file may hold, with the type its value must have: a typo is an error that
# names the key, never a setting silently ignored (the rule deploy.toml follows too).
_TOP_KEYS: dict[str, tuple[type, ...]] = {"pv": (dict,), "engine": (dict,)}
_ENGINE_KEYS: dict[str, tuple[type, ...]] = {"stats": (str,)}
_PV_KEYS: dict[str, tuple[type, ...]] = {
    "type": (str,),
    "value": (bool, int, float, str, list, dict),
    "units": (str,),
    "description": (str,),
    "writable": (bool,),
    "enum": (list,),
    "table": (list, dict),
    "rpc": (str,),
}
_KINDS = ("type", "enum", "table", "rpc")
_TYPE_NAMES = {
    bool: "a boolean",
    int: "an integer",
    float: "a number",
    str: "a string",
    list: "a list",
    dict: "a table",
}


def _check_keys(
    table: Mapping[str, Any], known: Mapping[str, tuple[type, ...]], where: str
) -> None:
    for key, value in table.items():
        if key not in known:
            close = difflib.get_close_matches(str(key), list(known), n=1)
            hint = f"did you mean {close[0]!r}? " if close else ""
            raise ConfigurationError(
                f"{where}: unknown key {key!r}; {hint}known keys: {', '.join(known)}"
            )
        allowed = known[key]
        ok = isinstance(value, allowed) and not (bool not in allowed and isinstance(value, bool))
        if not ok:
            want = " or ".join(_TYPE_NAMES[t] for t in allowed)
            raise ConfigurationError(
                f"{where}: {key} must be {want}, not {type(value).__name__} {value!r}"
            )


def check_serve_spec(data: Mapping[str, Any], where: str = "serve file") -> None:
    """Check a serve file's structure before anything is built: unknown keys, empty tables and
    values of the wrong type are errors naming the key (``[pv."x"]: unknown key 'valu'; ...``)."""
    _check_keys(data, _TOP_KEYS, where)
    engine = data.get("engine", {})
    _check_keys(engine, _ENGINE_KEYS, f"{where} [engine]")
    pvs = data.get("pv", {})
    if not pvs and not engine.get("stats"):
        raise ConfigurationError(
            f'{where}: no PVs to serve; add a table like [pv."demo:x"] with type = "d" and value'
        )
    for name, entry in pvs.items():
        check_pv_entry(str(name), entry, f'{where} [pv."{name}"]')


def check_pv_entry(name: str, entry: Any, at: str) -> None:
    """One ``[pv."name"]`` table of a serve file, checked as check_serve_spec says."""
    if not isinstance(entry, Mapping):
        raise ConfigurationError(f"{at}: must be a table with type and value")
    if not entry:
        raise ConfigurationError(f'{at}: empty table; give a type (e.g. type = "d") or a value')
    _check_keys(entry, _PV_KEYS, at)
    kinds = [k for k in _KINDS if k in entry]
    if len(kinds) > 1:
        raise ConfigurationError(f"{at}: {' and '.join(kinds)} exclude each other; keep one")
    if "enum" in entry:
        choices = entry["enum"]
        if not choices or not all(isinstance(c, str) for c in choices):
            raise ConfigurationError(f'{at}: enum must be a list of names, e.g. ["off", "on"]')
        value = entry.get("value", 0)
        if isinstance(value, str) and value not in choices:
            raise ConfigurationError(f"{at}: value {value!r} is not one of enum {choices}")
        if not isinstance(value, str) and not (
            isinstance(value, int) and not isinstance(value, bool) and 0 <= value < len(choices)
        ):
            raise ConfigurationError(
                f"{at}: value must be a choice name or an index below {len(choices)}"
            )


def build_pv(name: str, entry: Mapping[str, Any]) -> SharedPV:
    """One PV from a serve-file entry (see docs/pva.md for the keys)."""
    writable = bool(entry.get("writable", True))
    value = entry.get("value")
    try:
        if "rpc" in entry:
            return SharedPV.rpc_only(_rpc_builtin(str(entry["rpc"])))
        if "enum" in entry:
            choices = [str(c) for c in entry["enum"]]
            # a choice by name or by index (check_pv_entry made sure it is one of them)
            index = choices.index(value) if isinstance(value, str) else int(value or 0)
            return SharedPV(
                nt.NTEnum(), {"value": {"index": index, "choices": choices}}, writable=writable
            )
        if "table" in entry:
            cols = entry["table"]
            pairs = list(cols.items()) if isinstance(cols, Mapping) else [tuple(c) for c in cols]
            table = nt.NTTable([(str(c), str(k)) for c, k in pairs])
            return SharedPV(table, table.wrap(value or {}), writable=writable)
        code = str(entry.get("type", ""))
        if not code:
            if value is None:
                raise ConfigurationError(f'PV {name!r}: give a type (e.g. type = "d") or a value')
            helper: Any = nt.for_value(value)
        elif code.startswith("a"):
            helper = nt.NTScalarArray(code[1:])
        else:
            helper = nt.NTScalar(code, display="units" in entry or "description" in entry)
        pv = SharedPV(helper, value, writable=writable)
        display = {k: entry[k] for k in ("units", "description") if k in entry}
        if display and "display" in helper.type:
            pv.post({"display": display})
        return pv
    except ConfigurationError:
        raise
    except Exception as exc:
        raise ConfigurationError(f"PV {name!r}: {exc}") from None


def build_pvs(spec: Mapping[str, Any]) -> dict[str, SharedPV]:
    """Every PV of a serve file's ``[pv."name"]`` tables (checked first: see check_serve_spec)."""
    for name, entry in spec.items():
        check_pv_entry(str(name), entry, f'[pv."{name}"]')
    return {str(name): build_pv(str(name), entry) for name, entry in spec.items()}
