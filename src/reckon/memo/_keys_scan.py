"""What a code object refers to, read from its bytecode (no source needed: works for Jupyter
cells, ``exec`` and ``__main__``).

A reference is a root (a global name, or a module imported inside the function) followed by the
attribute chain loaded from it: ``mod.helper(x)`` is ``Ref("global", "mod", 0, ("helper",))``, so a
function that calls ``mod.helper`` depends on that helper, not on all of ``mod``. Nested code
objects (inner functions, lambdas, comprehensions) are scanned too; their globals resolve in the
same namespace.
"""

from __future__ import annotations

import contextlib
import dis
import sys
import threading
import types
import weakref
from dataclasses import dataclass

__all__ = ["CodeInfo", "Ref", "scan"]

_LOADS_ROOT = frozenset({"LOAD_GLOBAL", "LOAD_NAME"})
_LOADS_LOCAL = frozenset(
    {"LOAD_FAST", "LOAD_DEREF", "LOAD_NAME", "LOAD_CLASSDEREF", "LOAD_FAST_CHECK"}
)
_ATTRS = frozenset({"LOAD_ATTR", "LOAD_METHOD", "LOAD_SUPER_ATTR"})
_STORES = frozenset({"STORE_FAST", "STORE_NAME", "STORE_DEREF", "STORE_GLOBAL"})
_SKIP_AFTER_IMPORT = frozenset({"SWAP", "POP_TOP", "ROT_TWO", "COPY"})
_HASCONST = frozenset(dis.hasconst)
if sys.version_info >= (3, 12):  # pragma: no cover - RETURN_CONST appeared in 3.12
    _HASCONST = _HASCONST | {dis.opmap.get("RETURN_CONST", -1)}


@dataclass(frozen=True, slots=True, order=True)
class Ref:
    kind: str  # "global": name in the function's globals; "import": a module imported in the body
    name: str  # the global name, or the imported module's name as written
    level: int  # relative import level ("from . import x" is 1)
    chain: tuple[str, ...]  # attributes loaded from the root, in order


@dataclass(frozen=True, slots=True)
class CodeInfo:
    refs: tuple[Ref, ...]  # sorted, unique, over this code and every nested code object
    attr_names: frozenset[str]  # every attribute name loaded anywhere (for impurity heuristics)
    used_consts: frozenset[int]  # indices of co_consts the bytecode of *this* code object loads
    #: Globals that are only ever looked up with constant keys (``CONFIG["a"]``,
    #: ``CONFIG.get("b")``, ``CONFIG.get("c", 3)``), and those keys; a global loaded any other
    #: way anywhere in the code is not here.
    keyed: dict[str, frozenset[object]]


#: Constant types a dict lookup can be narrowed to: their equality is their value.
_KEY_TYPES = (str, int, bytes)


_cache: weakref.WeakKeyDictionary[types.CodeType, CodeInfo] = weakref.WeakKeyDictionary()
_cache_lock = threading.Lock()


def scan(code: types.CodeType) -> CodeInfo:
    """References of ``code`` and its nested code objects (cached per code object)."""
    try:
        info = _cache.get(code)
    except TypeError:  # pragma: no cover - code objects are weak-referenceable
        info = None
    if info is not None:
        return info
    refs: set[Ref] = set()
    attrs: set[str] = set()
    keyed: dict[str, set[object] | None] = {}
    used = _scan_one(code, refs, attrs, {}, keyed)
    narrowed = {name: frozenset(keys) for name, keys in keyed.items() if keys is not None}
    info = CodeInfo(tuple(sorted(refs)), frozenset(attrs), frozenset(used), narrowed)
    with _cache_lock, contextlib.suppress(TypeError):
        _cache[code] = info
    return info


def used_consts(code: types.CodeType) -> frozenset[int]:
    return scan(code).used_consts


def _chain(instrs: list[dis.Instruction], start: int, attrs: set[str]) -> tuple[str, ...]:
    chain: list[str] = []
    j = start
    while j < len(instrs) and instrs[j].opname in _ATTRS:
        name = instrs[j].argval
        if not isinstance(name, str):
            break
        chain.append(name)
        attrs.add(name)
        j += 1
    return tuple(chain)


def _scan_one(
    code: types.CodeType,
    refs: set[Ref],
    attrs: set[str],
    aliases: dict[str, tuple[str, int, tuple[str, ...]]],
    keyed: dict[str, set[object] | None],
) -> set[int]:
    instrs = list(dis.get_instructions(code))
    aliases = dict(aliases)  # nested code sees the enclosing imports, not the other way round
    used: set[int] = set()
    n = len(instrs)
    for i, ins in enumerate(instrs):
        op = ins.opname
        if ins.opcode in _HASCONST and ins.arg is not None:
            used.add(ins.arg)
        if op in _ATTRS and isinstance(ins.argval, str):
            attrs.add(ins.argval)
        if op in _LOADS_LOCAL and ins.argval in aliases:
            module, level, base = aliases[ins.argval]
            refs.add(Ref("import", module, level, base + _chain(instrs, i + 1, attrs)))
        elif op in _LOADS_ROOT and isinstance(ins.argval, str):
            refs.add(Ref("global", ins.argval, 0, _chain(instrs, i + 1, attrs)))
            _note_lookup(instrs, i, keyed)
        elif op == "IMPORT_NAME":
            _scan_import(instrs, i, n, refs, aliases)
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            _scan_one(const, refs, attrs, aliases, keyed)
    return used


def _const_key(ins: dis.Instruction) -> tuple[bool, object]:
    if ins.opname in ("LOAD_CONST", "LOAD_SMALL_INT") and type(ins.argval) in _KEY_TYPES:
        return True, ins.argval
    return False, None


def _note_lookup(
    instrs: list[dis.Instruction], i: int, keyed: dict[str, set[object] | None]
) -> None:
    """Record the constant key a global is looked up with here, or that it is used otherwise."""
    name = instrs[i].argval
    key = _lookup_key(instrs, i)
    if key is _NOT_A_LOOKUP:
        keyed[name] = None
        return
    keys = keyed.setdefault(name, set())
    if keys is not None:
        keys.add(key)


_NOT_A_LOOKUP = object()


def _lookup_key(instrs: list[dis.Instruction], i: int) -> object:
    """``G[const]`` or ``G.get(const)`` / ``G.get(const, const)`` right after the load at ``i``."""
    n = len(instrs)
    if i + 2 < n:
        ok, key = _const_key(instrs[i + 1])
        sub = instrs[i + 2]
        if ok and (
            sub.opname == "BINARY_SUBSCR" or (sub.opname == "BINARY_OP" and sub.argrepr == "[]")
        ):
            return key
    if (
        i + 3 < n
        and instrs[i + 1].opname in ("LOAD_METHOD", "LOAD_ATTR")
        and instrs[i + 1].argval == "get"
    ):
        ok, key = _const_key(instrs[i + 2])
        j = i + 3
        nargs = 1
        if ok and j < n and _const_key(instrs[j])[0]:
            j += 1
            nargs = 2
        while j < n and instrs[j].opname in ("PRECALL", "PUSH_NULL"):
            j += 1
        if ok and j < n and instrs[j].opname == "CALL" and instrs[j].arg == nargs:
            return key
    return _NOT_A_LOOKUP


def _scan_import(
    instrs: list[dis.Instruction],
    i: int,
    n: int,
    refs: set[Ref],
    aliases: dict[str, tuple[str, int, tuple[str, ...]]],
) -> None:
    module = str(instrs[i].argval)
    level = 0
    fromlist = None
    if i >= 2 and instrs[i - 2].opname == "LOAD_CONST" and isinstance(instrs[i - 2].argval, int):
        level = instrs[i - 2].argval
    if i >= 1 and instrs[i - 1].opname == "LOAD_CONST":
        fromlist = instrs[i - 1].argval
    j = i + 1
    if j < n and instrs[j].opname in ("IMPORT_STAR", "CALL_INTRINSIC_1"):
        refs.add(Ref("import", module, level, ()))  # a star import: the whole module
        return
    if fromlist is None:
        # "import a.b" binds a; "import a.b as c" binds a.b (through IMPORT_FROM b).
        chain: tuple[str, ...] = ()
        while j < n and instrs[j].opname == "IMPORT_FROM":
            j += 1
        while j < n and instrs[j].opname in _SKIP_AFTER_IMPORT:
            j += 1
        if j < n and instrs[j].opname in _STORES:
            target = module if instrs[i + 1].opname == "IMPORT_FROM" else module.partition(".")[0]
            aliases[str(instrs[j].argval)] = (target, level, chain)
        return
    # from module import x as y, z
    while j < n and instrs[j].opname == "IMPORT_FROM":
        name = str(instrs[j].argval)
        k = j + 1
        if k < n and instrs[k].opname in _STORES:
            aliases[str(instrs[k].argval)] = (module, level, (name,))
        j = k + 1
