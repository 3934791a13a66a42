"""The code graph of a function: what code it can reach, walked once for every use of it.

The code a function can reach forms a graph. Its nodes are the user's functions, classes, bound
methods, wrappers and (rarely) whole modules; each node has a *local digest* of what it holds by
itself (bytecode, constants, defaults, closure values, the global constants it reads) in which every
reference to another node is written as an edge number. Code that is not the user's is a leaf:
the standard library by Python version, installed distributions by name and version, reckon by
its version, anything carrying ``__reckon_version__`` by (module, qualname, version).

:func:`walk` goes depth-first from a root and yields each node with its local part, or a
back-reference for a node seen before. The fingerprint (:mod:`reckon.memo.fingerprint`) hashes
that walk; the impurity search (:mod:`reckon.memo.impurity`) follows its edges. Both use only
this module's public names.

Not part of a node: line numbers, positions and line tables, comments, docstrings (the docstring
constant is never loaded by the bytecode), file names, and anything in the module the function
does not reach.
"""

from __future__ import annotations

import builtins
import importlib.util
import os
import struct
import sys
import types
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import xxhash

from reckon.errors import UnhashableArgumentError
from reckon.memo._impure_objects import known_object_name
from reckon.memo._keys_modules import Origin, module_of, module_origin
from reckon.memo._keys_scan import Ref, scan
from reckon.memo.hashing import Hasher, type_name
from reckon.memo.log import short_repr

__all__ = [
    "ORIGIN_FREE",
    "Leaf",
    "Local",
    "ValueNode",
    "classify",
    "digest",
    "is_code_like",
    "node_label",
    "node_local",
    "qualname",
    "resolve_import",
    "walk",
]

_U32 = struct.Struct("<I").pack

# Names in a class's namespace that say nothing about behaviour (or change with line moves).
_CLASS_SKIP = frozenset(
    {
        "__dict__",
        "__weakref__",
        "__doc__",
        "__module__",
        "__qualname__",
        "__firstlineno__",
        "__static_attributes__",
        "__slotnames__",
        "_abc_impl",
    }
)
_MODULE_SKIP = frozenset(
    {
        "__builtins__",
        "__cached__",
        "__doc__",
        "__file__",
        "__loader__",
        "__spec__",
        "__path__",
        "__name__",
        "__package__",
        "__annotations__",
    }
)


@dataclass(slots=True)
class Local:
    """What one node holds by itself; references to other nodes are edge numbers."""

    label: str
    digest: bytes = b""
    edges: list[object] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    #: The values hashed into the node, for saying what changed: (what, digest hex, short repr).
    items: list[tuple[str, str, str]] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class Leaf:
    label: str
    digest: bytes


def digest(*parts: object) -> bytes:
    h = Hasher()
    h.update(parts)
    return h.digest()


def qualname(obj: object) -> str:
    module = module_of(obj)
    if module == "__mp_main__":  # the main script as multiprocessing workers import it
        module = "__main__"
    qual = (
        getattr(obj, "__qualname__", None) or getattr(obj, "__name__", None) or type_name(type(obj))
    )
    return f"{module}.{qual}" if module else str(qual)


def _code_file(obj: object) -> str | None:
    code = getattr(obj, "__code__", None)
    filename = getattr(code, "co_filename", None)
    if isinstance(filename, str) and os.path.isabs(filename) and os.path.exists(filename):
        return filename
    return None


def _leaf(origin: Origin, name: str) -> Leaf:
    return Leaf(f"{name} ({origin.label})", digest("leaf", origin.token, name))


def _builtin_origin(obj: Any) -> Origin:
    """Origin of C functions, method descriptors and slot wrappers."""
    module = module_of(obj)
    if not module:
        owner = getattr(obj, "__objclass__", None)
        if owner is None:
            bound = getattr(obj, "__self__", None)
            if isinstance(bound, types.ModuleType):
                module = bound.__name__
            elif bound is not None:
                owner = bound if isinstance(bound, type) else type(bound)
        if owner is not None:
            module = module_of(owner)
    origin = module_origin(module)
    if not origin.external:
        # Compiled code in the user's tree has no bytecode: count it by its file's contents.
        return Origin("user-c", f"compiled code in {module}", f"c:{module}:{_file_token(module)}")
    return origin


_file_tokens: dict[str, str] = {}


def _file_token(module_name: str | None) -> str:
    """xxh3 of a compiled module's file (cached per module name for the process)."""
    if not module_name:
        return "-"
    token = _file_tokens.get(module_name)
    if token is None:
        file = getattr(sys.modules.get(module_name), "__file__", None)
        try:
            with open(file, "rb") as fh:  # type: ignore[arg-type]
                token = xxhash.xxh3_128_hexdigest(fh.read())
        except (OSError, TypeError):
            token = "-"
        _file_tokens[module_name] = token
    return token


ORIGIN_FREE = (
    types.BuiltinFunctionType,
    types.MethodWrapperType,
    types.WrapperDescriptorType,
    types.MethodDescriptorType,
    types.ClassMethodDescriptorType,
)


def _attr(obj: object, name: str) -> Any:
    """getattr that survives proxies whose __getattr__ raises something else than AttributeError."""
    try:
        return getattr(obj, name, None)
    except Exception:
        return None


def classify(obj: Any, _depth: int = 0) -> object:
    """A node (the object itself, or a stand-in) or a Leaf."""
    if _depth > 32:  # a __wrapped__ chain that loops
        return Leaf(type_name(type(obj)), digest("opaque", type_name(type(obj))))
    if isinstance(obj, type):  # a class's own version only: subclasses do not inherit it
        version = vars(obj).get("__reckon_version__")
    else:
        version = _attr(obj, "__reckon_version__")
    if version is not None and not isinstance(obj, types.ModuleType):
        name = qualname(getattr(obj, "__wrapped__", obj))
        return Leaf(f"{name} (version {version})", digest("versioned", name, str(version)))
    if isinstance(obj, types.FunctionType):
        origin = module_origin(obj.__module__, _code_file(obj))
        return obj if not origin.external else _leaf(origin, qualname(obj))
    if isinstance(obj, type):
        origin = module_origin(module_of(obj))
        return obj if not origin.external else _leaf(origin, qualname(obj))
    if isinstance(obj, types.ModuleType):
        origin = module_origin(obj.__name__)
        return obj if not origin.external else _leaf(origin, obj.__name__)
    if isinstance(obj, types.MethodType):
        return obj
    if isinstance(obj, ORIGIN_FREE):
        return _leaf(_builtin_origin(obj), qualname(obj))
    if isinstance(obj, (staticmethod, classmethod)):
        return obj
    wrapped = _attr(obj, "__wrapped__")
    if wrapped is not None:
        # lru_cache, a memoized function, any functools.wraps-style wrapper: a node when it wraps
        # the user's code, the wrapped leaf when it wraps a library's (numpy's dispatchers).
        inner = classify(wrapped, _depth + 1)
        return inner if isinstance(inner, Leaf) else obj
    return ValueNode(obj)  # functools.partial, a callable object, ...: by value


class ValueNode:
    """Any other object fingerprinted directly: its value, code inside it as edges."""

    __slots__ = ("obj",)

    def __init__(self, obj: object) -> None:
        self.obj = obj


class _NodeBuilder:
    """Computes one node's local digest; code references found while hashing become edges."""

    def __init__(self, label: str) -> None:
        self.local = Local(label)
        self._ids: dict[int, int] = {}
        self.hasher = Hasher(code_hook=self.code_ref)

    def code_ref(self, obj: object) -> bytes:
        target = classify(obj)
        if isinstance(target, Leaf):
            self.local.notes.append(f"uses {target.label}")
            return b"L" + target.digest
        index = self._ids.get(id(target))
        if index is None:
            index = len(self.local.edges)
            self._ids[id(target)] = index
            self.local.edges.append(target)
            self.local.notes.append(f"refers to {node_label(target)}")
        return b"E" + _U32(index)

    def value(self, what: str, value: object) -> None:
        """Hash one value into the node, degrading to its type name if it cannot be hashed."""
        sub = Hasher(code_hook=self.code_ref)
        try:
            sub.update(value, path=what)
        except UnhashableArgumentError:
            tname = type_name(type(value))
            self.local.notes.append(f"{what}: a {tname}, not hashable by value (type name used)")
            self.hasher.update(("unhashable", tname))
            return
        digest = sub.digest()
        self.hasher.update(digest)
        if not what.startswith("constant "):  # constants are code: the source shows them
            self.local.items.append((what, digest.hex(), short_repr(value)))

    def finish(self) -> Local:
        self.local.digest = self.hasher.digest()
        return self.local


def node_label(obj: object) -> str:
    if isinstance(obj, types.ModuleType):
        return f"module {obj.__name__}"
    if isinstance(obj, type):
        return f"class {qualname(obj)}"
    if isinstance(obj, types.MethodType):
        return f"method {qualname(obj.__func__)}"
    if isinstance(obj, (staticmethod, classmethod)):
        return f"{type(obj).__name__} {qualname(obj.__func__)}"
    if isinstance(obj, types.FunctionType):
        return f"function {qualname(obj)}"
    if isinstance(obj, ValueNode):
        return f"value {type_name(type(obj.obj))}"
    return f"wrapper {type_name(type(obj))} of {qualname(getattr(obj, '__wrapped__', obj))}"


# -- code objects ------------------------------------------------------------------------------


def _feed_code(b: _NodeBuilder, code: types.CodeType) -> None:
    """Bytecode and constants; not names of files, line numbers, positions or the docstring."""
    info = scan(code)
    b.hasher.update(
        (
            "code",
            code.co_name,
            code.co_argcount,
            code.co_posonlyargcount,
            code.co_kwonlyargcount,
            code.co_flags,
            code.co_names,
            code.co_varnames,
            code.co_freevars,
            code.co_cellvars,
            code.co_code,
            getattr(code, "co_exceptiontable", b""),
            len(code.co_consts),
        )
    )
    for index, const in enumerate(code.co_consts):
        if index not in info.used_consts and not isinstance(const, types.CodeType):
            b.hasher.update(_UNUSED)  # the docstring: never loaded, so not behaviour
        elif isinstance(const, types.CodeType):
            _feed_code(b, const)
        else:
            b.value(f"constant {index} of {code.co_qualname}", const)


_UNUSED = ("unused-constant",)


# -- globals -----------------------------------------------------------------------------------


def resolve_import(ref: Ref, globals_: dict[str, Any]) -> tuple[object, str] | None:
    """The module an import in a function body names: (module or Origin, absolute name)."""
    name = ref.name
    if ref.level:
        package = globals_.get("__package__") or ""
        try:
            name = importlib.util.resolve_name("." * ref.level + ref.name, package)
        except (ImportError, ValueError):
            return None
    module = _load(name)
    if module is None:
        return None
    return module, name


def _load(name: str) -> types.ModuleType | Origin | None:
    """A module the function imports in its body, which may not have run yet.

    The user's modules are imported now (the body would import them anyway, and their code must
    be read); for others the Origin is enough, found without importing them.
    """
    module = sys.modules.get(name)
    if module is not None:
        return module
    try:
        spec = importlib.util.find_spec(name)
    except (ImportError, ValueError, AttributeError):
        return None
    if spec is None:
        return None
    hint = spec.origin
    if not (hint and os.path.isabs(hint)):
        hint = next(iter(spec.submodule_search_locations or ()), None)
    origin = module_origin(name, hint)
    if origin.external:
        return origin
    try:
        return importlib.import_module(name)
    except Exception:  # a module that fails to import: the call would fail too
        return None


def _walk(value: object, path: str, chain: tuple[str, ...]) -> tuple[object, str, int]:
    """Follow an attribute chain through user modules; stop at anything else."""
    used = 0
    for attr in chain:
        if not isinstance(value, types.ModuleType):
            break
        if module_origin(value.__name__).external:
            break
        nxt = vars(value).get(attr, _MISSING)  # not getattr: no lazy-module imports
        if nxt is _MISSING and hasattr(value, "__path__"):  # a submodule not imported yet
            loaded = _load(f"{value.__name__}.{attr}")
            nxt = loaded if isinstance(loaded, types.ModuleType) else _MISSING
        if nxt is _MISSING:
            break
        value = nxt
        path = f"{path}.{attr}"
        used += 1
    return value, path, used


_MISSING = object()


def _feed_dict_keys(
    b: _NodeBuilder, name: str, table: dict[Any, Any], keys: frozenset[object]
) -> bool:
    """A global dict the code only looks up with constant keys: only those entries count.

    Editing another entry of the dict cannot change what the code computes (the lookup of a
    ``str``, ``int`` or ``bytes`` key in an exact ``dict`` reads that entry only), so it must
    not change the key either. False (hash the whole dict) if a stored key refuses comparison.
    """
    entries: list[tuple[str, object]] = []
    try:
        for key in sorted(keys, key=lambda k: (type(k).__name__, repr(k))):
            entries.append((repr(key), table.get(key, _MISSING_KEY)))
    except Exception:
        return False
    b.hasher.update(("ref", "global-keys", name, tuple(k for k, _ in entries)))
    b.local.notes.append(f"reads {name}[{', '.join(k for k, _ in entries)}] (dict entries)")
    for text, value in entries:
        if value is _MISSING_KEY:
            b.hasher.update(("missing-key", text))
        else:
            b.value(f"global {name}[{text}]", value)
    return True


_MISSING_KEY = object()


def _feed_ref(
    b: _NodeBuilder,
    ref: Ref,
    globals_: dict[str, Any],
    keyed: dict[str, frozenset[object]] | None = None,
) -> None:
    if ref.kind == "import":
        found = resolve_import(ref, globals_)
        if found is None:
            b.hasher.update(("import-missing", ref.name, ref.level, ref.chain))
            b.local.notes.append(f"imports {ref.name} (not loaded yet: keyed by name)")
            return
        root, path = found
        chain = ref.chain
        if isinstance(root, Origin):  # an installed or standard module, not imported yet
            b.hasher.update(("import", path, root.token, chain))
            b.local.notes.append(f"uses {path} ({root.label})")
            return
    else:
        keys = keyed.get(ref.name) if keyed else None
        table = globals_.get(ref.name)
        if keys is not None and type(table) is dict and _feed_dict_keys(b, ref.name, table, keys):
            return
        if ref.name in globals_:
            root = globals_[ref.name]
        else:
            builtins_ns = globals_.get("__builtins__", builtins)
            if isinstance(builtins_ns, types.ModuleType):
                builtins_ns = vars(builtins_ns)
            if ref.name in builtins_ns:
                b.hasher.update(("builtin", ref.name))
                return
            b.hasher.update(("unbound", ref.name))
            return
        path = ref.name
        chain = ref.chain
    value, path, used = _walk(root, path, chain)
    b.hasher.update(("ref", ref.kind, path))
    if isinstance(value, types.ModuleType) and used < len(chain):
        origin = module_origin(value.__name__)
        if origin.external:  # np.linalg.norm: numpy's version says it all
            b.hasher.update((b.code_ref(value), chain[used:]))
            return
    if is_code_like(value):
        b.hasher.update(b.code_ref(value))
        if chain[used : used + 1] == ("__doc__",):  # the one case where a docstring is data
            b.value(f"{path}.__doc__", getattr(value, "__doc__", None))
        return
    special = known_object_name(value)
    if special is not None:  # os.environ and friends: by name, never by (changing) content
        b.hasher.update(("named", special))
        return
    b.local.notes.append(f"reads {path} ({type_name(type(value))})")
    b.value(f"global {path}", value)
    _instance_class(b, value)


def _instance_class(b: _NodeBuilder, value: object) -> None:
    """An instance of the user's class: its methods are code the function may call."""
    cls = type(value)
    if not module_origin(module_of(cls)).external:
        b.hasher.update(("instance-of", b.code_ref(cls)))


def is_code_like(value: object) -> bool:
    return (
        isinstance(
            value,
            (
                types.FunctionType,
                type,
                types.ModuleType,
                types.MethodType,
                ORIGIN_FREE,
                staticmethod,
                classmethod,
            ),
        )
        or (callable(value) and _attr(value, "__wrapped__") is not None)
        or _attr(value, "__reckon_version__") is not None
    )


# -- node kinds --------------------------------------------------------------------------------


def _owner_class(func: types.FunctionType) -> type | None:
    """The class a method is defined in (found through its qualname), if any."""
    parts = func.__qualname__.split(".")
    if len(parts) < 2 or "<locals>" in parts:
        return None
    module = sys.modules.get(func.__module__ or "")
    obj: object = module
    for part in parts[:-1]:
        obj = getattr(obj, part, None)
        if obj is None:
            return None
    if isinstance(obj, type) and any(
        v is func or _attr(v, "__func__") is func or _attr(v, "__wrapped__") is func
        for v in vars(obj).values()
    ):  # the function itself, a static/class method, or a memoized method wrapping it
        return obj
    return None


def _local_function(func: types.FunctionType) -> Local:
    b = _NodeBuilder(f"function {qualname(func)}")
    b.hasher.update("function")
    _feed_code(b, func.__code__)
    b.value("defaults", func.__defaults__)
    b.value("keyword defaults", func.__kwdefaults__)
    for default in (*(func.__defaults__ or ()), *(func.__kwdefaults__ or {}).values()):
        _instance_class(b, default)
    code = func.__code__
    cells = func.__closure__ or ()
    for name, cell in zip(code.co_freevars, cells, strict=False):
        try:
            content = cell.cell_contents
        except ValueError:  # an empty cell (assigned later)
            b.hasher.update(("empty-cell", name))
            continue
        b.hasher.update(("cell", name))
        if is_code_like(content):
            b.hasher.update(b.code_ref(content))
        else:
            b.local.notes.append(f"closure {name} ({type_name(type(content))})")
            b.value(f"closure variable {name}", content)
            _instance_class(b, content)
    globals_ = func.__globals__
    info = scan(code)
    for ref in info.refs:
        _feed_ref(b, ref, globals_, info.keyed)
    owner = _owner_class(func)
    if owner is not None:
        b.hasher.update(("owner", b.code_ref(owner)))
    wrapped = getattr(func, "__wrapped__", None)
    if wrapped is not None:
        b.hasher.update(("wraps", b.code_ref(wrapped)))
    _feed_registry(b, func)
    return b.finish()


def _feed_registry(b: _NodeBuilder, obj: object) -> None:
    """Functions a dispatcher keeps in a registry outside its own closure.

    ``functools.singledispatch`` keeps its implementations in a dict closed over by ``dispatch``
    and ``register``, not by the wrapper that is called; the wrapper shows it as ``registry``.
    Every implementation is code the call may run, so each is an edge (in the order of the
    registered types' names, which is stable across runs).
    """
    registry = _attr(obj, "registry")
    if not isinstance(registry, (dict, types.MappingProxyType)) or _attr(obj, "dispatch") is None:
        return
    items = sorted(registry.items(), key=lambda kv: qualname(kv[0]))
    for tp, impl in items:
        b.hasher.update(("registered", qualname(tp), b.code_ref(impl)))


def _local_class(cls: type) -> Local:
    b = _NodeBuilder(f"class {qualname(cls)}")
    b.hasher.update(("class", cls.__name__))
    b.hasher.update(tuple(b.code_ref(base) for base in cls.__bases__))
    if type(cls) is not type:
        b.hasher.update(("metaclass", b.code_ref(type(cls))))
    namespace = vars(cls)
    for name in sorted(namespace):
        if name in _CLASS_SKIP:
            continue
        value = namespace[name]
        b.hasher.update(("attr", name))
        if isinstance(value, property):
            b.hasher.update(
                (
                    "property",
                    *tuple(
                        b.code_ref(f) if f is not None else b"-"
                        for f in (value.fget, value.fset, value.fdel)
                    ),
                )
            )
        elif is_code_like(value):
            b.hasher.update(b.code_ref(value))
        else:
            b.value(f"{cls.__qualname__}.{name}", value)
    return b.finish()


def _local_module(module: types.ModuleType) -> Local:
    """A user module used as a whole (passed around, or reached by getattr)."""
    b = _NodeBuilder(f"module {module.__name__}")
    b.hasher.update(("module", module.__name__))
    for name in sorted(vars(module)):
        if name in _MODULE_SKIP:
            continue
        value = vars(module)[name]
        b.hasher.update(("member", name))
        if is_code_like(value):
            b.hasher.update(b.code_ref(value))
        else:
            b.value(f"{module.__name__}.{name}", value)
    return b.finish()


def _local_method(method: types.MethodType) -> Local:
    b = _NodeBuilder(f"method {qualname(method.__func__)}")
    b.hasher.update("method")
    b.value("bound instance", method.__self__)
    b.hasher.update(b.code_ref(method.__func__))
    return b.finish()


def _local_descriptor(obj: staticmethod[Any, Any] | classmethod[Any, Any, Any]) -> Local:
    b = _NodeBuilder(f"{type(obj).__name__} {qualname(obj.__func__)}")
    b.hasher.update((type(obj).__name__, b.code_ref(obj.__func__)))
    return b.finish()


def _local_wrapper(obj: Any) -> Local:
    b = _NodeBuilder(node_label(obj))
    b.hasher.update(("wrapper", type_name(type(obj)), b.code_ref(obj.__wrapped__)))
    return b.finish()


def node_local(obj: Any) -> Local:
    """The local part of one node: its digest, its edges (other nodes) and notes for people."""
    if isinstance(obj, types.FunctionType):
        local = _local_function(obj)
    elif isinstance(obj, type):
        local = _local_class(obj)
    elif isinstance(obj, types.ModuleType):
        local = _local_module(obj)
    elif isinstance(obj, types.MethodType):
        local = _local_method(obj)
    elif isinstance(obj, (staticmethod, classmethod)):
        local = _local_descriptor(obj)
    elif isinstance(obj, ValueNode):
        b = _NodeBuilder(node_label(obj))
        b.hasher.update(("value", type_name(type(obj.obj))))
        b.value("value", obj.obj)
        _instance_class(b, obj.obj)
        local = b.finish()
    else:
        local = _local_wrapper(obj)
    return local


def walk(root: object) -> Iterator[tuple[int, object, Local | None, int | None]]:
    """Depth-first, pre-order: (depth, node, local, None) or (depth, node, None, earlier index)."""
    order: dict[int, int] = {}
    keep: list[object] = []
    stack: list[tuple[int, Iterator[object]]] = [(0, iter((root,)))]
    while stack:
        depth, it = stack[-1]
        node = next(it, _MISSING)
        if node is _MISSING:
            stack.pop()
            continue
        seen = order.get(id(node))
        if seen is not None:
            yield depth, node, None, seen
            continue
        order[id(node)] = len(order)
        keep.append(node)  # ids stay unique while the walk runs
        local = node_local(node)
        yield depth, node, local, None
        stack.append((depth + 1, iter(local.edges)))
