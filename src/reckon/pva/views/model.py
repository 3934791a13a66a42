"""What the PV views show: each watched PV's latest value reduced to what a table row, a plot
or an image needs, with its update rate and recent history. Both ``reckon pva top`` and
``reckon pva web`` read PVs through one :class:`PvWatch` (reckon's client, so any pvAccess
server), and neither keeps more than a bounded history per PV.
"""

from __future__ import annotations

import asyncio
import contextlib
import fnmatch
import math
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from reckon.errors import ConfigurationError, PvaError
from reckon.pva.client import Client
from reckon.pva.protocol import UnionValue, VariantValue

#: numeric history kept per scalar PV (points)
HISTORY = 300
#: window over which the update rate is measured (seconds)
RATE_WINDOW = 10.0
SEVERITIES = ("NO_ALARM", "MINOR", "MAJOR", "INVALID")
SPARKS = "▁▂▃▄▅▆▇█"
_GLOB = set("*?[")


@dataclass
class PvState:
    """One watched PV as the views see it."""

    name: str
    #: "scalar", "string", "enum", "array", "image", "table", "structure" (or "" before any value)
    kind: str = ""
    text: str = ""
    number: float | None = None
    severity: int = 0
    message: str = ""
    units: str = ""
    shape: tuple[int, ...] = ()
    updates: int = 0
    last: float = 0.0
    connected: bool = False
    error: str = ""
    #: the latest full value (arrays and images are drawn from it)
    value: dict[str, Any] | None = None
    times: deque[float] = field(default_factory=lambda: deque(maxlen=4096))
    history: deque[tuple[float, float]] = field(default_factory=lambda: deque(maxlen=HISTORY))

    def rate(self, now: float | None = None) -> float:
        """Updates per second over the last ``RATE_WINDOW`` seconds."""
        now = time.monotonic() if now is None else now
        while self.times and now - self.times[0] > RATE_WINDOW:
            self.times.popleft()
        if not self.times:
            return 0.0
        span = min(RATE_WINDOW, max(now - self.times[0], 1.0))
        return len(self.times) / span

    def age(self, now: float | None = None) -> float | None:
        """Seconds since the last update reached us (None before the first)."""
        if not self.updates:
            return None
        return (time.monotonic() if now is None else now) - self.last

    def sparkline(self, width: int = 20) -> str:
        points = [v for _, v in list(self.history)[-width:] if math.isfinite(v)]
        if len(points) < 2:
            return ""
        lo, hi = min(points), max(points)
        if hi == lo:
            return SPARKS[3] * len(points)
        scale = (len(SPARKS) - 1) / (hi - lo)
        return "".join(SPARKS[int((v - lo) * scale)] for v in points)

    @property
    def severity_name(self) -> str:
        return SEVERITIES[self.severity] if 0 <= self.severity < len(SEVERITIES) else "?"

    def apply(self, value: dict[str, Any], type_id: str = "", now: float | None = None) -> None:
        """Take a new value (a full structure, as monitor updates carry) of type ``type_id``."""
        now = time.monotonic() if now is None else now
        self.value = value
        self.updates += 1
        self.last = now
        self.times.append(now)
        self.connected = True
        self.error = ""
        alarm = value.get("alarm")
        if isinstance(alarm, dict):
            self.severity = int(alarm.get("severity") or 0)
            self.message = str(alarm.get("message") or "")
        display = value.get("display")
        if isinstance(display, dict):
            self.units = str(display.get("units") or "")
        self.kind, self.text, self.number, self.shape = summarize(value, type_id)
        if self.number is not None:
            self.history.append((time.time(), self.number))


def _ndarray(value: dict[str, Any]) -> np.ndarray[Any, Any] | None:
    u = value.get("value")
    if not isinstance(u, UnionValue):
        return None
    flat = np.asarray(u.value)
    shape = [int(d["size"]) for d in reversed(value.get("dimension") or []) if d]
    if shape and int(np.prod(shape)) == flat.size:
        return flat.reshape(shape)
    return flat


def image_of(value: dict[str, Any]) -> np.ndarray[Any, Any] | None:
    """An NTNDArray's pixels as a 2-D (rows, cols) or 3-D (rows, cols, 3) array, else None."""
    arr = _ndarray(value)
    if arr is None or arr.ndim < 2:
        return None
    if arr.ndim == 3:
        if arr.shape[0] == 3:  # colour planes first (RGB3)
            arr = np.moveaxis(arr, 0, -1)
        elif arr.shape[1] == 3:  # RGB2
            arr = np.moveaxis(arr, 1, -1)
        if arr.shape[-1] != 3:
            arr = arr[..., 0]
    return arr if arr.ndim in (2, 3) else None


def summarize(
    value: dict[str, Any], type_id: str = ""
) -> tuple[str, str, float | None, tuple[int, ...]]:
    """(kind, short text, number for plots or None, shape) of a PV's value."""
    v = value.get("value")
    if type_id.startswith("epics:nt/NTNDArray:"):
        arr = _ndarray(value)
        shape = tuple(int(s) for s in arr.shape) if arr is not None else ()
        dims = "x".join(str(s) for s in reversed(shape)) if shape else "empty"
        return "image", f"image {dims}", None, shape
    if type_id.startswith("epics:nt/NTEnum:") and isinstance(v, dict):
        index = int(v.get("index") or 0)
        choices = list(v.get("choices") or [])
        label = choices[index] if 0 <= index < len(choices) else "?"
        return "enum", f"({index}) {label}", float(index), ()
    if type_id.startswith("epics:nt/NTTable:") and isinstance(v, dict):
        columns = list(v)
        rows = len(v[columns[0]]) if columns else 0
        return "table", f"table {rows} rows x {len(columns)} columns", None, (rows, len(columns))
    if isinstance(v, VariantValue):
        v = v.value
    if isinstance(v, bool | np.bool_):
        return "scalar", str(bool(v)), float(v), ()
    if isinstance(v, int | float | np.integer | np.floating):
        return "scalar", _number(v), float(v), ()
    if isinstance(v, str):
        return "string", v, None, ()
    if isinstance(v, np.ndarray | list):
        n = len(v)
        head = ", ".join(_number(x) if not isinstance(x, str) else x for x in v[:4])
        more = ", …" if n > 4 else ""
        return "array", f"[{head}{more}]", None, (n,)
    return "structure", _short(value), None, ()


def _number(v: Any) -> str:
    if isinstance(v, float | np.floating):
        return f"{float(v):.6g}"
    return str(v)


def _short(value: Any, limit: int = 60) -> str:
    text = ", ".join(f"{k}={v!r}" for k, v in value.items() if not isinstance(v, dict))
    return text if len(text) <= limit else text[: limit - 1] + "…"


def is_pattern(text: str) -> bool:
    return bool(_GLOB & set(text))


async def resolve(
    patterns: Iterable[str], *, share: str | None = None, wait: float = 2.0
) -> list[str]:
    """The PV names to watch: names as given, and glob patterns (``demo:*``) matched against
    the names a Redis-shared deployment holds (``share``, the URL given to ``serve --share``).
    pvAccess itself has no listing every server answers, so a pattern needs ``share``."""
    names: list[str] = []
    listed: list[str] | None = None
    for pattern in patterns:
        if not is_pattern(pattern):
            names.append(pattern)
            continue
        if share is None:
            raise ConfigurationError(
                f"{pattern!r} is a pattern: pass --share redis://... so it can be matched "
                "against the names a shared deployment serves, or give the names"
            )
        if listed is None:
            from reckon.pva.share_layout import shared_names

            listed = await shared_names(share, wait=wait)
        matched = [n for n in listed if fnmatch.fnmatchcase(n, pattern)]
        if not matched:
            raise ConfigurationError(f"no PV under {share} matches {pattern!r}")
        names.extend(matched)
    return list(dict.fromkeys(names))


class PvWatch:
    """Monitors PVs through reckon's client and keeps a :class:`PvState` per PV.

    ``listeners`` are called with each state after it changes (on the loop). Monitors
    reconnect by themselves when a server restarts; a PV not found yet shows as unconnected
    and is searched again.
    """

    def __init__(self, client: Client, names: Iterable[str]) -> None:
        self.client = client
        self.states: dict[str, PvState] = {n: PvState(n) for n in names}
        self.listeners: list[Callable[[PvState], None]] = []
        self._tasks: list[asyncio.Task[None]] = []

    async def start(self) -> PvWatch:
        # a monitor alone does not start the client's searches (a get does): start it here
        await self.client.__aenter__()
        loop = asyncio.get_running_loop()
        self._tasks = [
            loop.create_task(self._follow(state), name=f"pva-watch:{state.name}")
            for state in self.states.values()
        ]
        return self

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._tasks = []

    def _changed(self, state: PvState) -> None:
        for listener in list(self.listeners):
            listener(state)

    async def _follow(self, state: PvState) -> None:
        while True:
            try:
                async with self.client.monitor(state.name) as sub:
                    async for update in sub:
                        state.apply(update.value, update.type.id)
                        self._changed(state)
                state.connected = False
                state.error = "monitor finished by the server"
            except PvaError as exc:
                state.connected = False
                state.error = str(exc)
            self._changed(state)
            await asyncio.sleep(1.0)
