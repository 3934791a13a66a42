"""Where code comes from: the user's own code, the standard library, an installed distribution, or
reckon itself. Only the user's code is fingerprinted by content; the rest counts by version.

An installed distribution is recognised by its files living under ``site-packages`` or
``dist-packages`` *and* a distribution that provides the top-level package. A project installed in
editable mode lives outside those directories, so its code stays "user code" and an edit to it
invalidates keys: the version string of a package under development says nothing about its code.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import sys
import threading
from dataclasses import dataclass
from types import ModuleType
from typing import Any

__all__ = ["Origin", "count_by_version", "module_of", "module_origin", "python_token"]

USER = "user"
STDLIB = "stdlib"
DIST = "dist"
RECKON = "reckon"


@dataclass(frozen=True, slots=True)
class Origin:
    kind: str  # USER, STDLIB, DIST or RECKON
    label: str  # for explain(): "numpy 2.4.6", "Python 3.11 (cpython)", ...
    token: str  # what goes into the fingerprint for non-user code

    @property
    def external(self) -> bool:
        return self.kind != USER


def python_token() -> str:
    return f"{sys.implementation.name}-{sys.version_info[0]}.{sys.version_info[1]}"


_USER = Origin(USER, "user code", "")
_STDLIB = Origin(
    STDLIB,
    f"Python {sys.version_info[0]}.{sys.version_info[1]} ({sys.implementation.name})",
    "stdlib:" + python_token(),
)

_lock = threading.Lock()
_origins: dict[str | None, Origin] = {}
_dist_by_top: dict[str, tuple[str, ...]] = {}
_packages_distributions: dict[str, list[str]] | None = None


def _md() -> Any:
    """importlib.metadata, imported on first need (it costs ~15 ms at startup)."""
    import importlib.metadata

    return importlib.metadata


def _stdlib_dirs() -> tuple[str, ...]:
    import sysconfig

    dirs = {os.path.dirname(os.path.realpath(os.__file__))}
    for key in ("stdlib", "platstdlib"):
        try:
            path = sysconfig.get_path(
                key, vars={"base": sys.base_prefix, "platbase": sys.base_prefix}
            )
        except KeyError:  # pragma: no cover - every scheme has both
            continue
        if path:
            dirs.add(os.path.realpath(path))
    return tuple(sorted(dirs))


_STDLIB_DIRS: tuple[str, ...] | None = None


def _is_installed_path(path: str) -> bool:
    parts = path.replace("\\", "/").split("/")
    return "site-packages" in parts or "dist-packages" in parts


def _is_stdlib_path(path: str) -> bool:
    global _STDLIB_DIRS
    if _STDLIB_DIRS is None:
        _STDLIB_DIRS = _stdlib_dirs()
    return any(path == d or path.startswith(d + os.sep) for d in _STDLIB_DIRS)


def _reckon_origin() -> Origin:
    md = _md()
    try:
        version = md.version("reckon-toolkit")
    except md.PackageNotFoundError:  # running from a source tree
        import reckon

        version = getattr(reckon, "__version__", "0")
    return Origin(RECKON, f"reckon {version}", f"reckon:{version}")


def _normalize(name: str) -> str:
    return name.lower().replace("-", "_").replace(".", "_")


def _distributions_for(module_name: str) -> tuple[str, ...]:
    """Distribution names providing ``module_name`` (its top-level package), cached."""
    global _packages_distributions
    top = module_name.partition(".")[0]
    found = _dist_by_top.get(module_name)
    if found is not None:
        return found
    # Cheap first: most distributions are named like the package they provide.
    md = _md()
    parts = module_name.split(".")
    for n in range(len(parts), 0, -1):
        candidate = ".".join(parts[:n])
        try:
            dist = md.distribution(candidate)
        except (md.PackageNotFoundError, ValueError):
            continue
        result: tuple[str, ...] = (dist.metadata["Name"] or candidate,)
        _dist_by_top[module_name] = result
        return result
    if _packages_distributions is None:
        _packages_distributions = dict(md.packages_distributions())
    names = sorted(set(_packages_distributions.get(top, ())))
    if len(names) > 1:  # a namespace package shared by several distributions
        prefixes = {_normalize(".".join(parts[:n])) for n in range(1, len(parts) + 1)}
        narrowed = [n for n in names if _normalize(n) in prefixes]
        names = narrowed or names
    result = tuple(names)
    _dist_by_top[module_name] = result
    return result


def _dist_origin(module_name: str) -> Origin | None:
    names = _distributions_for(module_name)
    if not names:
        return None
    md = _md()
    pinned = []
    for name in names:
        try:
            pinned.append(f"{name}=={md.version(name)}")
        except md.PackageNotFoundError:
            pinned.append(f"{name}==?")
    text = ", ".join(pinned)
    return Origin(DIST, text, "dist:" + text)


def _module_file(module: ModuleType | None) -> str | None:
    if module is None:
        return None
    file = getattr(module, "__file__", None)
    if file:
        return os.path.realpath(file)
    paths = getattr(module, "__path__", None)  # a namespace package
    if paths:
        for path in paths:
            return os.path.realpath(path)
    return None


_by_version: dict[str, str | None] = {}


def count_by_version(package: str, version: str | None = None) -> None:
    """Count ``package`` (and its submodules) by a version instead of by its code.

    For a large library of your own installed in editable mode, whose code you do not want
    fingerprinted: edits to it no longer change keys, a new ``version`` does. Without
    ``version``, the installed distribution's version is used, else the package's
    ``__version__``.
    """
    with _lock:
        _by_version[package] = version
        _origins.clear()


def _declared_origin(name: str) -> Origin | None:
    for package, version in _by_version.items():
        if name == package or name.startswith(package + "."):
            if version is None:
                dist = _dist_origin(package)
                if dist is not None:
                    return dist
                module = sys.modules.get(package)
                version = str(getattr(module, "__version__", "?"))
            return Origin(
                DIST, f"{package}=={version} (declared)", f"declared:{package}=={version}"
            )
    return None


def _classify(name: str | None, hint_file: str | None) -> Origin:
    if name is None or name == "__main__":
        return _USER
    if name == "reckon" or name.startswith("reckon."):
        return _reckon_origin()
    if _by_version:
        declared = _declared_origin(name)
        if declared is not None:
            return declared
    top = name.partition(".")[0]
    module = sys.modules.get(name) or sys.modules.get(top)
    file = _module_file(sys.modules.get(name)) or hint_file or _module_file(module)
    if file is None:
        if top in sys.builtin_module_names or top in sys.stdlib_module_names:
            return _STDLIB
        if module is None:
            spec = None
            with contextlib.suppress(ImportError, ValueError):
                spec = importlib.util.find_spec(top)
            if spec is not None and spec.origin and spec.origin not in ("built-in", "frozen"):
                file = os.path.realpath(spec.origin)
        if file is None:
            return _USER
    if _is_installed_path(file):
        return _dist_origin(name) or _USER
    if _is_stdlib_path(file) and top in sys.stdlib_module_names:
        return _STDLIB
    if _is_stdlib_path(file) and top.startswith("_"):
        return _STDLIB
    return _USER


_TYPE_MODULE = type.__dict__["__module__"]


def module_of(obj: object) -> str | None:
    """``obj.__module__`` as a str (or None), even for the odd compiled class that shadows it.

    Some extension types (pandas' ``NaTType``) define ``__module__`` for their instances, so
    reading it on the class gives a descriptor: the class's own module is then read through
    ``type``'s descriptor. Anything else that is not a str counts as no module.
    """
    try:
        name = getattr(obj, "__module__", None)
    except Exception:  # a proxy whose __getattr__ raises
        return None
    if name is None or isinstance(name, str):
        return name
    if isinstance(obj, type):
        try:
            name = _TYPE_MODULE.__get__(obj, type)
        except Exception:
            return None
        return name if isinstance(name, str) else None
    return None


def module_origin(name: str | None, hint_file: str | None = None) -> Origin:
    """Classify a module by name (cached per name).

    ``hint_file`` is a file the code came from (``co_filename``), used when the module is not in
    ``sys.modules``.
    """
    origin = _origins.get(name)
    if origin is None:
        with _lock:
            origin = _origins.get(name)
            if origin is None:
                origin = _classify(name, hint_file)
                if name is not None and (name in sys.modules or origin.external):
                    _origins[name] = origin
    return origin


def forget() -> None:
    """Drop cached classifications (for tests that install packages at run time)."""
    global _packages_distributions
    with _lock:
        _origins.clear()
        _dist_by_top.clear()
        _packages_distributions = None
