"""Static search for things that make a function's result depend on more than its arguments.

The decorator turns the list into one warning (``assume_pure=True`` silences it). The search reads
bytecode, through the same code graph as the fingerprint (so it is transitive through the user's
functions and classes, never through installed packages), and resolves each global reference and
attribute chain to the object it names. Matching is by identity, so aliases are caught:
``from time import time as now`` is still ``time.time``.

What it reports: clocks (``time.*``, ``datetime.now/utcnow/today``, ``date.today``), randomness
(the ``random`` module's functions, ``secrets``, ``os.urandom``, ``uuid.uuid1/uuid4``, numpy's
global random functions), the environment (``os.environ``, ``os.getenv``), and file I/O
(``open``, ``io.open``, ``os.open``, ``os.listdir`` and friends, ``pathlib.Path`` reads and writes).
It cannot see through values computed at run time, e.g. ``getattr(time, name)()``.
"""

from __future__ import annotations

import contextlib
import sys
import threading
import types
import weakref
from collections.abc import Callable
from typing import Any

from reckon.memo._keys_scan import Ref, scan

__all__ = ["find_impurities", "known_object_name"]

_table: dict[int, tuple[object, str]] | None = None
_class_attrs: dict[tuple[int, str], str] = {}
_objects: dict[int, tuple[object, str]] = {}
_table_lock = threading.Lock()
_PATH_IO = ("read_text", "read_bytes", "write_text", "write_bytes")


def _add(obj: object, label: str) -> None:
    if obj is not None:
        _objects[id(obj)] = (obj, label)


def _build() -> dict[int, tuple[object, str]]:
    import builtins
    import datetime
    import io
    import os
    import pathlib
    import random
    import secrets
    import time
    import uuid

    for name in (
        "time",
        "time_ns",
        "perf_counter",
        "perf_counter_ns",
        "monotonic",
        "monotonic_ns",
        "process_time",
        "process_time_ns",
        "thread_time",
        "thread_time_ns",
        "localtime",
        "gmtime",
        "ctime",
        "asctime",
        "strftime",
        "clock_gettime",
        "clock_gettime_ns",
    ):
        _add(getattr(time, name, None), f"calls time.{name}")
    inst = getattr(random, "_inst", None)
    for name in dir(random):
        obj = getattr(random, name)
        if getattr(obj, "__self__", None) is inst and inst is not None:
            _add(obj, f"calls random.{name}")
    _add(random.SystemRandom, "uses random.SystemRandom")
    for name in secrets.__all__:
        _add(getattr(secrets, name, None), f"calls secrets.{name}")
    _add(os.environ, "reads os.environ")
    _add(getattr(os, "environb", None), "reads os.environb")
    _add(os.getenv, "reads os.environ (os.getenv)")
    _add(getattr(os, "getenvb", None), "reads os.environ (os.getenvb)")
    _add(getattr(os, "putenv", None), "writes os.environ (os.putenv)")
    _add(os.urandom, "calls os.urandom")
    _add(os.getcwd, "reads the working directory (os.getcwd)")
    _add(os.getpid, "reads the process id (os.getpid)")
    for module_name, attr in (
        ("socket", "gethostname"),
        ("getpass", "getuser"),
        ("platform", "node"),
    ):  # only if already imported: the table never imports anything new
        module = sys.modules.get(module_name)
        if module is not None:
            _add(getattr(module, attr, None), f"reads the machine ({module_name}.{attr})")
    _add(sys.argv, "reads sys.argv")
    _add(builtins.input, "reads stdin (input)")
    _add(getattr(os, "getrandom", None), "calls os.getrandom")
    _add(uuid.uuid1, "calls uuid.uuid1")
    _add(uuid.uuid4, "calls uuid.uuid4")
    _add(builtins.open, "opens files (open)")
    _add(io.FileIO, "opens files (io.FileIO)")
    for name in ("open", "read", "write", "listdir", "scandir", "walk", "stat", "remove"):
        _add(getattr(os, name, None), f"touches the file system (os.{name})")
    for name in ("open", "read_text", "read_bytes", "write_text", "write_bytes", "iterdir", "glob"):
        _add(getattr(pathlib.Path, name, None), f"touches the file system (pathlib.Path.{name})")
    for name in ("now", "utcnow", "today"):
        _class_attrs[(id(datetime.datetime), name)] = f"calls datetime.datetime.{name}"
    _class_attrs[(id(datetime.date), "today")] = "calls datetime.date.today"
    for name in (*_PATH_IO, "open", "iterdir", "glob"):
        _class_attrs[(id(pathlib.Path), name)] = f"touches the file system (pathlib.Path.{name})"
    _add_numpy_random()
    return _objects


def _add_numpy_random() -> None:
    """numpy's legacy global generator (np.random.rand, ...), if numpy is already imported."""
    nprandom = sys.modules.get("numpy.random")
    if nprandom is None:
        return
    global_rng = getattr(getattr(nprandom, "mtrand", None), "_rand", None)
    if global_rng is None:  # pragma: no cover - every numpy since 1.17 has it
        return
    for name in getattr(nprandom, "__all__", ()):
        obj = getattr(nprandom, name, None)
        if getattr(obj, "__self__", None) is global_rng:
            _add(obj, f"calls numpy.random.{name}")


def _objects_table() -> dict[int, tuple[object, str]]:
    global _table
    if _table is None:
        with _table_lock:
            if _table is None:
                _table = _build()
    elif "numpy.random" in sys.modules and not any(
        label.startswith("calls numpy.random.") for _, label in _table.values()
    ):
        with _table_lock:
            _add_numpy_random()
    return _table


def _label(obj: object) -> str | None:
    entry = _objects_table().get(id(obj))
    if entry is not None and entry[0] is obj:
        return entry[1]
    return None


def known_object_name(value: object) -> str | None:
    """A stable name for impure *data* objects (os.environ): the fingerprint keys them by name."""
    entry = _objects_table().get(id(value))
    if entry is not None and entry[0] is value and not callable(value):
        return entry[1]
    return None


def _resolve(ref: Ref, globals_: dict[str, Any]) -> list[object]:
    """Objects a reference names: the root, each module hop, and one attribute of a class."""
    if ref.kind == "import":
        from reckon.memo.fingerprint import _resolve_import

        found = _resolve_import(ref, globals_)
        if found is None:
            return []
        value: object = found[0]
        if not isinstance(value, types.ModuleType):  # external, not imported yet: by name
            return [_Dotted((*found[1].split("."), *ref.chain))]
    elif ref.name in globals_:
        value = globals_[ref.name]
    else:
        import builtins

        value = getattr(builtins, ref.name, _NONE)
        if value is _NONE:
            return []
    seen = [value]
    for i, attr in enumerate(ref.chain):
        if isinstance(value, types.ModuleType):
            nxt = vars(value).get(attr, _NONE)  # not getattr: no lazy-module imports
            if nxt is _NONE:
                nxt = sys.modules.get(f"{value.__name__}.{attr}", _NONE)
            if nxt is _NONE:  # not loaded yet (numpy.random is lazy): match by name
                seen.append(_Dotted((*value.__name__.split("."), *ref.chain[i:])))
                break
            value = nxt
            seen.append(value)
            continue
        if isinstance(value, type):
            seen.append(_ClassAttr(value, attr))
        break
    return seen


class _Dotted:
    """A dotted name through a module that is not loaded yet."""

    __slots__ = ("parts",)

    def __init__(self, parts: tuple[str, ...]) -> None:
        self.parts = parts


# numpy.random attributes that are not the legacy global generator.
_NUMPY_RANDOM_PURE = frozenset(
    {"default_rng", "Generator", "RandomState", "SeedSequence", "BitGenerator", "PCG64",
     "PCG64DXSM", "MT19937", "Philox", "SFC64", "bit_generator", "mtrand"}
)  # fmt: skip


class _ClassAttr:
    __slots__ = ("attr", "cls")

    def __init__(self, cls: type, attr: str) -> None:
        self.cls = cls
        self.attr = attr


_NONE = object()


def _check(obj: object) -> str | None:
    if isinstance(obj, _Dotted):
        parts = obj.parts
        is_numpy_random = parts[:2] == ("numpy", "random") and len(parts) > 2
        if is_numpy_random and parts[2] not in _NUMPY_RANDOM_PURE:
            return f"calls numpy.random.{parts[2]}"
        return None
    if isinstance(obj, _ClassAttr):
        _objects_table()
        for klass in obj.cls.__mro__:
            label = _class_attrs.get((id(klass), obj.attr))
            if label is not None:
                return label
        return None
    return _label(obj)


def _function_impurities(func: types.FunctionType) -> list[str]:
    import pathlib

    found: list[str] = []
    info = scan(func.__code__)
    globals_ = func.__globals__
    uses_path_class = False
    for ref in info.refs:
        for obj in _resolve(ref, globals_):
            label = _check(obj)
            if label is not None:
                found.append(label)
            if obj is pathlib.Path or obj is pathlib.PurePath:
                uses_path_class = True
    if uses_path_class:
        for name in sorted(info.attr_names.intersection(_PATH_IO)):
            found.append(f"touches the file system (pathlib.Path.{name})")
    values: list[object] = list(func.__defaults__ or ()) + list(
        (func.__kwdefaults__ or {}).values()
    )
    for cell in func.__closure__ or ():
        try:
            values.append(cell.cell_contents)
        except ValueError:
            continue
    for value in values:
        label = _label(value)
        if label is not None:
            found.append(label)
    return found


_cache: weakref.WeakKeyDictionary[Any, list[str]] = weakref.WeakKeyDictionary()
_FILE_IO = ("opens files", "touches the file system")


def _uses_file_contents(func: object) -> bool:
    """Whether the function declares (annotation) or builds (reference) a FileContents."""
    if not isinstance(func, types.FunctionType):
        return False
    from reckon.memo.helpers import FileContents

    for annotation in getattr(func, "__annotations__", {}).values():
        if annotation is FileContents or "FileContents" in str(annotation):
            return True
    # By identity: a global may be any object (a numpy array's == is elementwise, so ``in`` on a
    # list holding one raises).
    globals_ = func.__globals__
    refs = scan(func.__code__).refs
    return any(obj is FileContents for ref in refs for obj in _resolve(ref, globals_))


def _members(cls: type) -> list[tuple[str, object]]:
    """(name, code) pairs of a class's namespace, unwrapping descriptors."""
    out: list[tuple[str, object]] = []
    for name, value in vars(cls).items():
        if isinstance(value, (staticmethod, classmethod)):
            out.append((name, value.__func__))
        elif isinstance(value, property):
            out.extend((name, f) for f in (value.fget, value.fset, value.fdel) if f is not None)
        else:
            out.append((name, value))
    return out


def _called_functions(root: object, walk: Callable[[object], Any]) -> list[types.FunctionType]:
    """The user's functions ``root`` may call, in the order the code graph is walked.

    A class the code refers to contributes only the methods whose names the code loads as
    attributes (``self.pick()``) and its dunders (called by syntax), so a memoized method is
    not blamed for what an unrelated method of its class does.
    """
    edges: dict[int, list[object]] = {}
    order: list[object] = []
    for _depth, node, local, _earlier in walk(root):
        if local is not None:
            edges[id(node)] = local.edges
            order.append(node)
    used_attrs: set[str] = set()
    reached: set[int] = set()
    classes: list[type] = []
    pending: list[object] = [root]
    while pending:
        while pending:
            node = pending.pop()
            if id(node) in reached or id(node) not in edges:
                continue
            reached.add(id(node))
            if isinstance(node, types.FunctionType):
                used_attrs |= scan(node.__code__).attr_names
            if isinstance(node, type):
                classes.append(node)
                pending.extend(e for e in edges[id(node)] if isinstance(e, type))
                continue
            pending.extend(edges[id(node)])
        for cls in classes:
            for name, member in _members(cls):
                called = name in used_attrs or (name.startswith("__") and name.endswith("__"))
                if called and id(member) not in reached and id(member) in edges:
                    pending.append(member)
    return [n for n in order if id(n) in reached and isinstance(n, types.FunctionType)]


def find_impurities(func: Callable[..., object]) -> list[str]:
    """Impure things ``func`` reaches, transitively through the user's code; [] if none.

    Entries found outside ``func`` itself name where: ``"calls time.time (in mod.helper)"``.
    File I/O is not reported for a function that works with ``FileContents`` (a parameter
    annotated with it, or a reference to it): the file's contents are then part of the key.
    """
    try:
        cached = _cache.get(func)
    except TypeError:
        cached = None
    if cached is not None:
        return list(cached)
    from reckon.memo.fingerprint import _classify, _Leaf, _qualname, _walk_graph

    target: Any = func
    for _ in range(16):  # through memoized wrappers to the user's function
        inner = getattr(target, "__wrapped__", None)
        if inner is None or isinstance(target, types.FunctionType):
            break
        target = inner
    root = _classify(target)
    result: list[str] = []
    if not isinstance(root, _Leaf):
        files_ok = _uses_file_contents(root)
        seen: set[str] = set()
        for node in _called_functions(root, _walk_graph):
            where = "" if node is root else f" (in {_qualname(node)})"
            for label in _function_impurities(node):
                if files_ok and label.startswith(_FILE_IO):
                    continue
                text = label + where
                if text not in seen:
                    seen.add(text)
                    result.append(text)
    with contextlib.suppress(TypeError):
        _cache[func] = result
    return list(result)
