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
import types
import weakref
from collections.abc import Callable
from typing import Any

from reckon.memo import _impure_objects as known
from reckon.memo._keys_scan import Ref, scan
from reckon.memo.codegraph import Leaf, classify, qualname, resolve_import, walk

__all__ = ["find_impurities"]


def _resolve(ref: Ref, globals_: dict[str, Any]) -> list[object]:
    """Objects a reference names: the root, each module hop, and one attribute of a class."""
    if ref.kind == "import":
        found = resolve_import(ref, globals_)
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
        return known.class_attr_label(obj.cls, obj.attr)
    return known.label(obj)


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
        for name in sorted(info.attr_names.intersection(known.PATH_IO)):
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
        text = known.label(value)
        if text is not None:
            found.append(text)
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
    target: Any = func
    for _ in range(16):  # through memoized wrappers to the user's function
        inner = getattr(target, "__wrapped__", None)
        if inner is None or isinstance(target, types.FunctionType):
            break
        target = inner
    root = classify(target)
    result: list[str] = []
    if not isinstance(root, Leaf):
        files_ok = _uses_file_contents(root)
        seen: set[str] = set()
        for node in _called_functions(root, walk):
            where = "" if node is root else f" (in {qualname(node)})"
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
