"""Published PVs: a typed value that changes by ``post()``, with put and RPC handlers.

A :class:`SharedPV` lives independently of any server (tests and the bridge build them before a
server exists) and can be published by several servers at once. Values are snapshots: ``post()``
builds a new dict sharing unchanged sub-structures with the previous one and never mutates a
value already handed out, so subscribers queue references, not copies.
"""

from __future__ import annotations

import asyncio
import inspect
import threading
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from reckon.errors import PvaTypeError
from reckon.pva.protocol import (
    BitSet,
    FieldDesc,
    PreparedUpdate,
    Scalar,
    ScalarArray,
    Structure,
    StructureArray,
    Union,
    UnionArray,
    UnionValue,
    Variant,
    VariantArray,
    VariantValue,
)

#: kind -> the numpy dtype of its arrays, as the protocol decodes them (an empty array's)
_DTYPES: dict[str, Any] = {}


@dataclass(frozen=True)
class Peer:
    """Who is on the other end of a connection, as the handshake told us.

    ``method`` is the authentication method ("anonymous" or "ca"); with "ca" ``user`` and
    ``host`` are what the peer claims (pvAccess has no proof of identity without TLS).
    """

    address: tuple[str, int]
    method: str = "anonymous"
    user: str = ""
    host: str = ""

    @property
    def account(self) -> str:
        return self.user if self.method == "ca" else ""


@dataclass
class PutOperation:
    """A client's put: ``value`` is the whole value it sent, ``changed`` the paths it set."""

    pv: SharedPV
    name: str
    peer: Peer
    value: dict[str, Any]
    changed: tuple[str, ...]
    request: dict[str, Any] = field(default_factory=dict)

    @property
    def fields(self) -> dict[str, Any]:
        """Only the fields the client set, as a nested dict (what ``post()`` accepts)."""
        out: dict[str, Any] = {}
        for path in self.changed:
            if path == "":
                return dict(self.value)
            *parents, leaf = path.split(".")
            src: Any = self.value
            dst = out
            for part in parents:
                src, dst = src[part], dst.setdefault(part, {})
            dst[leaf] = src[leaf]
        return out


@dataclass
class RpcOperation:
    """A client's RPC call: ``value`` is the argument (usually an NTURI dict)."""

    pv: SharedPV
    name: str
    peer: Peer
    argument: VariantValue | None
    request: dict[str, Any] = field(default_factory=dict)

    @property
    def value(self) -> Any:
        return None if self.argument is None else self.argument.value

    @property
    def query(self) -> dict[str, Any]:
        """The NTURI ``query`` sub-structure if the argument has one, else the argument."""
        v = self.value
        if isinstance(v, dict) and isinstance(v.get("query"), dict):
            return dict(v["query"])
        return dict(v) if isinstance(v, dict) else {}


PutHandler = Callable[[PutOperation], "Awaitable[None] | None"]
RpcHandler = Callable[[RpcOperation], Any]


class _Subscriber(Protocol):
    def on_post(self, mask: int, value: dict[str, Any]) -> None: ...

    def on_close(self) -> None: ...


class _HasType(Protocol):
    @property
    def type(self) -> Structure: ...


def coerce(t: FieldDesc, value: Any, path: str = "value") -> Any:
    """Make ``value`` a valid Python value of type ``t`` (int for ints, numpy arrays...)."""
    try:
        if isinstance(t, Scalar):
            k = t.kind
            if k == "s":
                return value if isinstance(value, str) else str(value)
            if k == "?":
                return bool(value)
            if k in "fd":
                return float(value)
            if isinstance(value, str):
                value = float(value) if "." in value or "e" in value.lower() else int(value, 0)
            return int(value)
        if isinstance(t, ScalarArray):
            if t.kind == "s":
                if isinstance(value, str):
                    return [value]
                return [str(v) for v in value]
            dtype = _DTYPES.get(t.kind)
            if dtype is None:
                dtype = _DTYPES[t.kind] = t.default().dtype  # type: ignore[attr-defined]
            if isinstance(value, np.ndarray) and value.dtype == dtype:
                return value
            return np.asarray(value, dtype=dtype)
        if isinstance(t, Structure):
            if not isinstance(value, Mapping):
                raise PvaTypeError(f"{path}: a structure takes a dict, not {value!r:.60}")
            out = t.default()
            for name, sub in t.fields:
                if name in value:
                    out[name] = coerce(sub, value[name], f"{path}.{name}")
            unknown = set(value) - set(t.names)
            if unknown:
                raise PvaTypeError(f"{path}: no field(s) {sorted(unknown)}; it has {list(t.names)}")
            return out
        if isinstance(t, StructureArray):
            return [None if v is None else coerce(t.element, v, path) for v in value]
        if isinstance(t, Variant):
            return None if value is None else VariantValue.of(value)
        if isinstance(t, VariantArray):
            return [None if v is None else VariantValue.of(v) for v in value]
        if isinstance(t, Union):
            if value is None or isinstance(value, UnionValue):
                return value
            if isinstance(value, tuple) and len(value) == 2:
                return UnionValue(value[0], coerce(t[value[0]], value[1], path))
            raise PvaTypeError(f"{path}: a union takes UnionValue(name, value) or (name, value)")
        if isinstance(t, UnionArray):
            return [coerce(t.element, v, path) for v in value]
    except PvaTypeError:
        raise
    except (TypeError, ValueError, OverflowError) as exc:
        raise PvaTypeError(f"{path}: {value!r:.60} does not fit {t!r}: {exc}") from None
    return value


def footprint(value: Any) -> int:
    """About the bytes ``value`` holds (arrays by their buffers): what a queued update costs.
    Counts shared sub-structures again, so it errs on the safe side."""
    if type(value) in _NUMBERS:  # (the most frequent: a plain post's, sized per post)
        return 32
    if isinstance(value, dict):
        return 64 + sum(footprint(v) for v in value.values())
    nbytes = getattr(value, "nbytes", None)  # a numpy array
    if nbytes is not None:
        return int(nbytes) + 112
    if isinstance(value, (str, bytes)):
        return len(value) + 49
    if isinstance(value, (list, tuple)):
        return 56 + sum(8 + footprint(v) for v in value)
    if isinstance(value, (int, float, bool)) or value is None:
        return 32
    return 48 + footprint(getattr(value, "value", None))  # a union's or variant's value


def fields_update(t: Structure, value: Any) -> Mapping[str, Any]:
    """``value`` as an update of ``t``'s fields: a dict whose keys are all field names sets
    those fields, anything else is the ``value`` field (NT types)."""
    if isinstance(value, Mapping) and set(value) <= set(t.names):
        return value
    if "value" not in t:
        raise PvaTypeError(
            f"{t.id or 'structure'} has no 'value' field; give a dict of its fields {list(t.names)}"
        )
    return {"value": value}


_LAYOUT: dict[Structure, dict[str, tuple[FieldDesc, int, bool]]] = {}


def _layout(t: Structure) -> dict[str, tuple[FieldDesc, int, bool]]:
    """name -> (type, bit offset relative to ``t``, is a structure), computed once per type."""
    lay = _LAYOUT.get(t)
    if lay is None:
        offsets = t.offsets
        lay = {name: (sub, offsets[name], isinstance(sub, Structure)) for name, sub in t.fields}
        if len(_LAYOUT) > 4096:
            _LAYOUT.clear()
        _LAYOUT[t] = lay
    return lay


def merge(
    t: Structure, old: Mapping[str, Any], update: Mapping[str, Any], base: int = 0, prefix: str = ""
) -> tuple[dict[str, Any], int]:
    """A new value: ``old`` with ``update`` applied (copy-on-write), and the changed-bit mask.

    Unchanged sub-structures are shared with ``old``; the mask has one bit per field set
    (``base`` and ``prefix``: where ``t`` sits in the structure a recursive call merges).
    """
    lay = _layout(t)
    new = dict(old)
    mask = 0
    for name, v in update.items():
        entry = lay.get(name)
        if entry is None:
            raise PvaTypeError(
                f"no field {prefix + name!r} in {t.id or 'structure'}; it has {list(t.names)}"
            )
        sub, off, is_struct = entry
        if is_struct and isinstance(v, Mapping):
            assert isinstance(sub, Structure)
            child, m = merge(
                sub, old.get(name) or sub.default(), v, base + off, prefix + name + "."
            )
            new[name] = child
            mask |= m
        else:
            new[name] = coerce(sub, v, prefix + name)
            mask |= 1 << (base + off)
    return new, mask


# Posts from threads other than a server's loop, waiting for that loop: one wake-up
# (call_soon_threadsafe) per batch, not per post. A loop's key is present exactly while a drain
# is scheduled on it. A poster that gets ahead of the loop waits (up to YIELD_TIMEOUT) until the
# loop has taken the batch and served a round of I/O (a thread running a loop of its own never
# waits: it would stall its loop); else the two threads convoy on the GIL (each time the loop
# gives it up, for a read, write or epoll, it waits a switch interval, 5 ms, to get it back) and
# a burst reaches the client as a few squashed updates. A C++ poster (pvxs) has no GIL to share.
# How far ahead is twice the smallest queue the batch feeds, at most RUN_AHEAD: the queue takes
# the first values and squashes the rest into its newest, as pvxs's does while its sender is
# busy. It counts posts, not monitors: a post to 50 monitors of a loop is one item of a batch.
RUN_AHEAD = 32
#: types a posted value often has that are never a Mapping (post() checks these first)
_PLAIN = frozenset((float, int, str, bool, list, np.ndarray))
_NUMBERS = frozenset((float, int, bool, type(None)))  # footprint 32 (numpy's scalars: theirs)
#: a scalar's kind -> the Python type coerce() makes of it (a value of it is taken as it is)
_COERCED = {"f": float, "d": float, "s": str, "?": bool}
YIELD_TIMEOUT = 0.005


#: a post on its way to a loop: the PV, the changed mask, the value, its footprint
_Post = tuple["SharedPV", int, Any, int]
_IDLE = [None, 0, 0, None]  # SharedPV.delivering while none is (no monitor gets None: unchanged)


@dataclass(eq=False, slots=True)
class _Batch:
    #: posts a poster may get ahead of the loop: the smallest queue the batch feeds
    ahead: int
    #: (the loop's subscribers, (PV, changed mask, value, footprint)) per post, in order
    items: list[tuple[list[Any], _Post]] = field(default_factory=list)
    #: made by the first poster that waits (under _handoff_lock), held until the loop has
    #: taken the batch and served a round of I/O (a lock: an Event costs ~8 us more)
    done: threading.Lock | None = None
    #: a poster waited YIELD_TIMEOUT in vain: the loop is busy; stop waiting on this batch
    stuck: bool = False


_handoff: dict[asyncio.AbstractEventLoop, _Batch] = {}
_handoff_lock = threading.Lock()


def _hand_off(loop: Any, subs: list[Any], ahead: int, post: _Post, may_wait: bool) -> None:
    """Give one ``post`` (the PV, changed mask, value, its footprint) to ``loop`` for its
    subscribers ``subs``, whose poster may get ``ahead`` posts ahead of the loop."""
    item = (subs, post)
    with _handoff_lock:
        batch = _handoff.get(loop)
        if batch is None:
            batch = _handoff[loop] = _Batch(ahead)
            batch.items.append(item)
            try:
                loop.call_soon_threadsafe(_drain, loop)
            except RuntimeError:  # the loop is closed: nothing will drain it
                del _handoff[loop]
                raise
            return
        batch.items.append(item)
        if ahead < batch.ahead:
            batch.ahead = ahead
        if len(batch.items) < batch.ahead or batch.stuck or not may_wait:
            return
        done = batch.done
        if done is None:
            done = batch.done = threading.Lock()
            done.acquire()
    if done.acquire(timeout=YIELD_TIMEOUT):
        done.release()  # (for the next poster waiting on this batch, if any)
    else:
        batch.stuck = True


def _drain(loop: asyncio.AbstractEventLoop) -> None:
    with _handoff_lock:
        batch = _handoff.pop(loop, None)
    if batch is None:
        return
    for subs, (pv, mask, snapshot, size) in batch.items:  # in posting order
        pv.delivering = [snapshot, mask, size, None]  # (sized by the poster)
        for sub in subs:
            try:
                sub.on_post(mask, snapshot)
            except Exception as exc:  # one broken monitor must not lose the others' updates
                loop.call_exception_handler({"message": "monitor update failed", "exception": exc})
        pv.delivering = _IDLE  # (holds no value longer than its drain)
    # release waiting posters after the loop's next round of I/O (client acks, socket writes)
    if batch.done is not None:  # (final: made under the lock that popped the batch)
        loop.call_soon(batch.done.release)


class SharedPV:
    """A PV a server publishes: a structure type, a current value, handlers for put and RPC.

    ``SharedPV(nt.NTScalar("d"), 1.5)`` makes an NTScalar double; ``post(2.0)`` sets ``value``;
    ``post({"alarm": {"severity": 2}})`` sets any fields. Without a put handler puts are applied
    as posts; with one, the handler decides (call ``op.pv.post(op.fields)`` to accept).
    ``SharedPV.rpc_only()`` makes a PV that only answers RPC (like p4p's SharedPV()).
    """

    def __init__(
        self,
        type: Structure | _HasType | None,
        initial: Any = None,
        *,
        on_rpc: RpcHandler | None = None,
        writable: bool = True,
        timestamp: bool = True,
    ) -> None:
        if type is not None and not isinstance(type, Structure):
            type = type.type
        if type is not None and not isinstance(type, Structure):
            raise PvaTypeError(f"a PV's type is a Structure (or an NT helper), not {type!r}")
        self.type: Structure | None = type
        self.put_handler: PutHandler | None = None
        self.rpc_handler = on_rpc
        self.writable = writable
        self.timestamp = timestamp and type is not None and "timeStamp" in type
        self._subs: set[_Subscriber] = set()
        #: (loop or None, its subscribers, posts a poster may get ahead) per loop (see _route)
        self._routes: list[tuple[Any, list[Any], int]] = []
        # (value, {changed mask: its encoding}): a posted value is encoded once for all the
        # monitors that send the same fields of it (one tuple, swapped whole: thread-safe)
        self._prep: tuple[Any, dict[int, PreparedUpdate]] = (None, {})
        # (value, its footprint): what a queued update of it costs, sized once per post
        self._size: tuple[Any, int] = (None, 0)
        #: the post being given to a loop's subscribers, on it: [value, changed mask, footprint,
        #: encoding or None]: sized once, encoded by the first monitor that queues it, for all
        self.delivering: list[Any] = _IDLE
        self._lock = threading.Lock()
        self.value: dict[str, Any] = {}
        #: changed-bit mask of every field ever given a value (by ``initial``, the timestamp,
        #: a post or a put): a full reply sends only these, as pvxs sends only "marked" fields.
        #: The others are still their type's defaults, which a client fills in itself.
        self.assigned = 0
        # post(plain value) on a structure with a plain "value" field (NTScalar, NTScalarArray)
        # skips the generic merge: (value type, its bit, timestamp bits or 0, _COERCED type)
        self._fast: tuple[FieldDesc, int, int, Any] | None = None
        if type is not None and "value" in type and not isinstance(type["value"], Structure):
            secs = type.offsets.get("timeStamp.secondsPastEpoch")
            ns = type.offsets.get("timeStamp.nanoseconds")
            ts_bits = 0
            if self.timestamp and secs is not None and ns is not None:
                ts_bits = (1 << secs) | (1 << ns)
            vt = type["value"]
            same = _COERCED.get(vt.kind, int) if isinstance(vt, Scalar) else None
            self._fast = (vt, 1 << type.offset_of("value"), ts_bits, same)
        if type is not None:
            self.value = type.default()
            if initial is not None or self.timestamp:
                self.post({} if initial is None else initial)  # (no subscriber yet)

    @classmethod
    def rpc_only(cls, on_rpc: RpcHandler | None = None) -> SharedPV:
        return cls(None, on_rpc=on_rpc, writable=False)

    # -------------------------------------------------------------------- handler decorators
    def on_put(self, fn: PutHandler) -> PutHandler:
        self.put_handler = fn
        return fn

    def on_rpc(self, fn: RpcHandler) -> RpcHandler:
        self.rpc_handler = fn
        return fn

    # -------------------------------------------------------------------- values
    def post(self, value: Any, *, timestamp: bool | None = None) -> None:
        """Publish a new value (a plain value for ``value``, or a dict of fields).

        Thread-safe: from a thread other than a server's event loop the update is handed to it.
        """
        if self.type is None:
            raise PvaTypeError("an RPC-only PV has no value to post")
        stamp = self.timestamp if timestamp is None else timestamp
        fast = self._fast
        # (a number, string or array is no Mapping: asking the ABC costs more than the check)
        plain = type(value) in _PLAIN or not isinstance(value, Mapping)
        if fast is not None and not plain and len(value) == 1:  # ({"value": x}, a put's, ...)
            inner = value.get("value", value)
            if not isinstance(inner, Mapping):
                value, plain = inner, True  # (... is post(x): take the fast path)
        if fast is not None and plain and (not stamp or fast[2]):
            vt, mask, ts_bits, same = fast
            v = value if type(value) is same else coerce(vt, value)
            with self._lock:
                new = dict(old := self.value)
                new["value"] = v
                if stamp:
                    new["timeStamp"] = ts = dict(old["timeStamp"])
                    ts["secondsPastEpoch"], ts["nanoseconds"] = divmod(time.time_ns(), 10**9)
                    mask |= ts_bits
                sized = self._size  # (a new stamp: new ints, the same size)
                if sized[0] is old:
                    self._size = (new, sized[1] - footprint(old["value"]) + footprint(v))
                self.value = snapshot = new
                self.assigned |= mask
                routes = self._routes
        else:
            update = fields_update(self.type, value)
            if stamp and "timeStamp" not in update:
                secs, ns = divmod(time.time_ns(), 10**9)
                update = {**update, "timeStamp": {"secondsPastEpoch": secs, "nanoseconds": ns}}
            with self._lock:
                self.value, mask = merge(self.type, self.value, update)
                self.assigned |= mask
                snapshot = self.value
                routes = self._routes
        if not routes:
            return
        # (None off any loop, where get_running_loop's exception cost a posting thread ~2 us)
        running = asyncio._get_running_loop()
        item = None
        # one hand-off per post and loop, however many of its monitors the post feeds
        for loop, group, ahead in routes:
            if loop is None or loop is running:
                self.delivering = [snapshot, mask, self.footprint(snapshot), None]
                for sub in group:
                    sub.on_post(mask, snapshot)
                self.delivering = _IDLE
                continue
            if item is None:  # sized here, where the size of the value before is at hand
                item = (self, mask, snapshot, self.footprint(snapshot))
            # a thread that runs an event loop of its own is never made to wait
            _hand_off(loop, group, ahead, item, running is None)

    def prepared(self, value: dict[str, Any], mask: int) -> PreparedUpdate:
        """``value``'s fields in ``mask``, encoded once however many monitors send them."""
        cached, by_mask = self._prep
        if cached is not value:
            by_mask = {}
            self._prep = (value, by_mask)
        update = by_mask.get(mask)
        if update is None:
            assert self.type is not None
            update = by_mask[mask] = PreparedUpdate(self.type, value, BitSet.from_mask(mask))
        return update

    def footprint(self, value: dict[str, Any]) -> int:
        """:func:`footprint` of ``value``, computed once per posted value however many
        monitors queue it (a plain post's from the size of the value before it)."""
        post = self.delivering
        if post[0] is value:
            return post[2]
        sized, size = self._size
        if sized is not value:
            self._size = (value, size := footprint(value))
        return size

    # -------------------------------------------------------------------- subscribers
    def subscribe(self, sub: _Subscriber) -> None:
        """Have ``sub.on_post(mask, value)`` called for every post (and ``on_close()`` on
        close), as a monitor is: on ``sub.loop`` when it has one, in posting order. Sharing
        PVs through Redis watches them this way (as ``add_watcher``)."""
        with self._lock:
            self._subs.add(sub)
            self._route()

    def unsubscribe(self, sub: _Subscriber) -> None:
        with self._lock:
            self._subs.discard(sub)
            self._route()

    def _route(self) -> None:
        """Group the subscribers by ``sub.loop`` (read here: a subscriber that changes it
        subscribes again), each with how far a poster may get ahead (twice its smallest
        ``limit``): a post reads the groups. A group, once made, is never changed."""
        groups: dict[Any, tuple[list[Any], int]] = {}
        for sub in self._subs:
            loop = getattr(sub, "loop", None)
            group, ahead = groups.get(loop, ([], RUN_AHEAD))
            group.append(sub)
            groups[loop] = (group, min(ahead, 2 * max(1, getattr(sub, "limit", RUN_AHEAD))))
        self._routes = [(loop, group, ahead) for loop, (group, ahead) in groups.items()]

    add_watcher = subscribe
    remove_watcher = unsubscribe

    def close(self) -> None:
        """Finish every subscription (clients see the monitor end)."""
        with self._lock:
            subs = list(self._subs)
            self._subs.clear()
            self._route()
        for sub in subs:
            sub.on_close()


async def call_handler(fn: Callable[[Any], Any], op: Any) -> Any:
    """Run a handler that may be a plain callable or a coroutine function."""
    result = fn(op)
    if inspect.isawaitable(result):
        result = await result
    return result
