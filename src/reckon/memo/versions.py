"""Saying "count this by its version, not its code": for one function or class, or for the
packages a project declares as dependencies.

The fingerprint reads the user's code transitively. That is right for code under edit and wasteful
(or wrong) for code that is versioned elsewhere: a vendored library, generated code, a sibling
package installed in editable mode. ``@code_version("1.0")`` stops the fingerprint at one function
or class; :func:`count_requirements_by_version` does it for every package a ``requirements.txt`` or
``pyproject.toml`` lists (installed packages from site-packages already count by version).
"""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from reckon.errors import ConfigurationError
from reckon.memo._keys_modules import count_by_version

__all__ = ["code_version", "count_requirements_by_version", "requirement_names"]

T = TypeVar("T")

_NAME = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)\s*(\[[^\]]*\])?\s*(.*)$")
_PIN = re.compile(r"^===?\s*([A-Za-z0-9][A-Za-z0-9.+!_-]*)\s*$")
_EGG = re.compile(r"#egg=([A-Za-z0-9][A-Za-z0-9._-]*)")


def code_version(version: str | int) -> Callable[[T], T]:
    """Key a function or class by its qualified name and ``version`` instead of by its code.

    ``@code_version("2")`` above a helper (memoized or not): edits to its body no longer change
    the keys of the memoized functions that call it, and neither does anything it calls; bumping
    the version does. For a memoized function itself, ``memoize(version=...)`` does the same.
    """
    if isinstance(version, bool) or not isinstance(version, str | int):
        raise ConfigurationError(f"code_version takes a str or int version, got {version!r}")

    def mark(obj: T) -> T:
        target: Any = obj
        if isinstance(target, staticmethod | classmethod):
            target = target.__func__
        if not callable(target):
            raise ConfigurationError(
                f"@code_version applies to functions and classes, not {type(obj).__name__}"
            )
        try:
            target.__reckon_version__ = str(version)
        except (AttributeError, TypeError) as exc:
            raise ConfigurationError(f"cannot mark {target!r} with a code version: {exc}") from None
        return obj

    return mark


def _requirement(line: str) -> tuple[str, str | None] | None:
    """(distribution name, pinned version or None) of one requirement line, or None."""
    line = line.split(" #", 1)[0].strip()
    if not line or line.startswith("#"):
        return None
    if line.startswith(("-e", "--editable")):
        egg = _EGG.search(line)
        return (egg.group(1), None) if egg else None
    if line.startswith("-"):  # -r other.txt, --index-url ...: not a requirement
        return None
    line = line.split(";", 1)[0]  # environment markers
    if "@" in line and "://" in line:  # name @ https://...
        return (line.split("@", 1)[0].strip(), None)
    m = _NAME.match(line)
    if m is None:
        return None
    pin = _PIN.match(m.group(3))
    return (m.group(1), pin.group(1) if pin else None)


def requirement_names(path: str | os.PathLike[str]) -> list[tuple[str, str | None]]:
    """The (distribution, pinned version) pairs a requirements file or pyproject.toml lists."""
    p = Path(path)
    try:
        text = p.read_text()
    except OSError as exc:
        raise ConfigurationError(f"cannot read the requirements file {p}: {exc}") from None
    lines: list[str]
    if p.suffix == ".toml":
        import tomllib

        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise ConfigurationError(f"{p} is not valid TOML: {exc}") from None
        project = data.get("project", {})
        lines = list(project.get("dependencies", []))
        for group in project.get("optional-dependencies", {}).values():
            lines.extend(group)
    else:
        lines = text.splitlines()
    found: list[tuple[str, str | None]] = []
    for line in lines:
        req = _requirement(str(line))
        if req is not None and req not in found:
            found.append(req)
    return found


def _modules_of(distribution: str) -> list[str]:
    """Top-level modules an installed distribution provides; else its name as a module name."""
    import importlib.metadata as md

    wanted = distribution.lower().replace("-", "_").replace(".", "_")
    modules = sorted(
        top
        for top, dists in md.packages_distributions().items()
        if any(d.lower().replace("-", "_").replace(".", "_") == wanted for d in dists)
    )
    return modules or [wanted]


def count_requirements_by_version(path: str | os.PathLike[str]) -> list[str]:
    """Count every package ``path`` lists (requirements.txt or pyproject.toml) by its version.

    A package pinned with ``==`` counts by that pin; an unpinned one by its installed version
    (else its ``__version__``). Returns the module names now counted by version. Call it once at
    start-up, before the first memoized call.
    """
    modules: list[str] = []
    for distribution, pin in requirement_names(path):
        for module in _modules_of(distribution):
            if module == "reckon" or module in sys.stdlib_module_names:
                continue
            count_by_version(module, pin)
            modules.append(module)
    return modules
