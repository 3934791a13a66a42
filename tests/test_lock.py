"""The lock (constraints.txt) matches pyproject.toml, and this environment was installed from it.

A fresh machine must get exactly the versions of the last green run: these tests fail when the
dependencies change without `make lock`, when a direct requirement's range no longer admits its
locked version, or when something installed here differs from the lock.
"""

from __future__ import annotations

import importlib.util
import re
import tomllib
from importlib import metadata
from pathlib import Path
from types import ModuleType

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

ROOT = Path(__file__).resolve().parent.parent
SELF = "reckon-toolkit"


def _lock_script() -> ModuleType:
    spec = importlib.util.spec_from_file_location("lock_script", ROOT / "scripts" / "lock.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _locked() -> dict[str, Version]:
    pins: dict[str, Version] = {}
    for line in (ROOT / "constraints.txt").read_text().splitlines():
        match = re.match(r"^([A-Za-z0-9_.\-]+)==([^\s;]+)", line)
        if match:
            pins[canonicalize_name(match[1])] = Version(match[2])
    return pins


def test_lock_was_written_from_todays_pyproject() -> None:
    lock = _lock_script()
    assert lock.recorded_digest() == lock.dependencies_digest(), (
        "pyproject.toml's dependencies changed since constraints.txt was written: run `make lock`"
    )


def test_the_digest_notices_a_changed_requirement(tmp_path: Path) -> None:
    lock = _lock_script()
    text = (ROOT / "pyproject.toml").read_text()
    changed = tmp_path / "pyproject.toml"
    changed.write_text(text.replace('"xxhash>=3.4"', '"xxhash>=3.5"'))
    assert lock.dependencies_digest(changed) != lock.dependencies_digest()
    # A change outside the dependency tables does not ask for a new lock.
    described = tmp_path / "described.toml"
    described.write_text(text.replace("description = ", 'description = "x" #', 1))
    assert lock.dependencies_digest(described) == lock.dependencies_digest()


def test_every_requirement_is_locked_inside_its_range() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    requirements = list(project["dependencies"])
    for extra in project["optional-dependencies"].values():
        requirements += extra
    pins = _locked()
    for text in requirements:
        req = Requirement(text)
        name = canonicalize_name(req.name)
        if name == SELF or (req.marker is not None and not req.marker.evaluate()):
            continue
        assert name in pins, f"{req.name} is required but not in constraints.txt: run `make lock`"
        assert req.specifier.contains(pins[name], prereleases=True), (
            f"constraints.txt pins {req.name}=={pins[name]}, outside {text!r}: run `make lock`"
        )


def test_this_environment_was_installed_from_the_lock() -> None:
    pins = _locked()
    differ = {}
    for name, locked in pins.items():
        try:
            # The distribution an import finds first; copies vendored inside other packages (such
            # as setuptools/_vendor, put on sys.path once setuptools is imported) come later.
            version = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue  # an extra this environment does not install
        if Version(version) != locked:
            differ[name] = (str(locked), version)
    assert not differ, f"installed differs from constraints.txt (locked, installed): {differ}"
