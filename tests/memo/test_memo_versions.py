"""Counting code by a version instead of its contents: ``@code_version`` for one function or
class, ``count_requirements_by_version`` for the packages a project declares."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from reckon.errors import ConfigurationError
from reckon.memo import code_version, count_requirements_by_version
from reckon.memo.fingerprint import explain, fingerprint
from reckon.memo.versions import requirement_names

CALLER = "def f(x):\n    return helper(x) + 1\n"


def _namespace(helper_src: str, version: str | None) -> dict[str, Any]:
    ns: dict[str, Any] = {"__name__": "cv_ns", "code_version": code_version}
    deco = f"@code_version({version!r})\n" if version is not None else ""
    exec(deco + helper_src + CALLER, ns)
    return ns


def test_code_version_on_a_helper_stops_the_fingerprint() -> None:
    one = "def helper(x):\n    return x + 1\n"
    two = "def helper(x):\n    return x + 2\n"
    assert fingerprint(_namespace(one, None)["f"]) != fingerprint(_namespace(two, None)["f"])
    assert fingerprint(_namespace(one, "1")["f"]) == fingerprint(_namespace(two, "1")["f"])
    assert fingerprint(_namespace(two, "1")["f"]) != fingerprint(_namespace(two, "2")["f"])
    assert any("cv_ns.helper (version 1)" in line for line in explain(_namespace(one, "1")["f"]))


def test_code_version_on_a_class_is_not_inherited() -> None:
    def build(body: int) -> dict[str, Any]:
        ns: dict[str, Any] = {"__name__": "cv_cls", "code_version": code_version}
        src = (
            "@code_version('3')\n"
            "class Base:\n"
            f"    def get(self):\n        return {body}\n"
            "class Child(Base):\n"
            f"    def more(self):\n        return {body} + 1\n"
            "def use_base():\n    return Base().get()\n"
            "def use_child():\n    return Child().more()\n"
        )
        exec(src, ns)
        return ns

    a, b = build(1), build(2)
    assert fingerprint(a["use_base"]) == fingerprint(b["use_base"])
    assert fingerprint(a["use_child"]) != fingerprint(b["use_child"])


def test_code_version_refuses_bad_input() -> None:
    with pytest.raises(ConfigurationError):
        code_version(1.5)  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError):
        code_version("1")(42)


def test_requirement_names_from_requirements_and_pyproject(tmp_path: Path) -> None:
    req = tmp_path / "requirements.txt"
    req.write_text(
        "# comment\n"
        "numpy>=1.26\n"
        "Mylib-Core==2.1.0  # pinned\n"
        "requests[socks]; python_version >= '3.8'\n"
        "-r other.txt\n"
        "--index-url https://example.invalid/simple\n"
        "-e git+https://example.invalid/repo.git#egg=edlib\n"
        "thing @ https://example.invalid/thing.whl\n"
    )
    assert requirement_names(req) == [
        ("numpy", None),
        ("Mylib-Core", "2.1.0"),
        ("requests", None),
        ("edlib", None),
        ("thing", None),
    ]
    pyproject = tmp_path / "pyproject.toml"
    pyproject.write_text(
        '[project]\nname = "x"\ndependencies = ["pandas>=2", "kf_devlib==0.9"]\n'
        '[project.optional-dependencies]\ndev = ["pytest"]\n'
    )
    assert requirement_names(pyproject) == [
        ("pandas", None),
        ("kf_devlib", "0.9"),
        ("pytest", None),
    ]
    with pytest.raises(ConfigurationError, match="cannot read"):
        requirement_names(tmp_path / "missing.txt")


def test_listed_packages_count_by_version(tmp_path: Path) -> None:
    """A package under development (not in site-packages) listed in requirements.txt: edits to
    its code no longer change keys; a new pinned version does."""
    pkg = tmp_path / "kf_reqlib"
    pkg.mkdir()
    (tmp_path / "kf_requser.py").write_text(
        "import kf_reqlib\ndef f(x):\n    return kf_reqlib.core(x)\n"
    )
    req = tmp_path / "requirements.txt"
    code = (
        "import json, sys, kf_requser\n"
        "from reckon.memo import count_requirements_by_version\n"
        "from reckon.memo.fingerprint import fingerprint\n"
        "mods = count_requirements_by_version(sys.argv[1]) if sys.argv[1] != '-' else []\n"
        "print(json.dumps([fingerprint(kf_requser.f).hex(), mods]))\n"
    )
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(tmp_path), env.get("PYTHONPATH", "")])
    env["PYTHONDONTWRITEBYTECODE"] = "1"

    def run(body: int, pin: str | None) -> tuple[str, list[str]]:
        (pkg / "__init__.py").write_text(f"def core(x):\n    return x + {body}\n")
        arg = "-"
        if pin is not None:
            req.write_text(f"kf_reqlib=={pin}\n")
            arg = str(req)
        proc = subprocess.run(
            [sys.executable, "-c", code, arg], capture_output=True, text=True, env=env, timeout=120
        )
        assert proc.returncode == 0, proc.stderr
        fp, mods = json.loads(proc.stdout)
        return fp, mods

    plain1, _ = run(1, None)
    plain2, _ = run(2, None)
    assert plain1 != plain2  # by default its code counts
    listed1, mods = run(1, "1.0")
    listed2, _ = run(2, "1.0")
    assert mods == ["kf_reqlib"]
    assert listed1 == listed2  # listed: its version counts, not its code
    listed3, _ = run(2, "1.1")
    assert listed3 != listed2


def test_count_requirements_returns_module_names(tmp_path: Path) -> None:
    req = tmp_path / "requirements.txt"
    req.write_text("numpy\n")
    from reckon.memo import _keys_modules

    try:
        assert count_requirements_by_version(req) == ["numpy"]
    finally:
        with _keys_modules._lock:
            _keys_modules._by_version.pop("numpy", None)
            _keys_modules._origins.clear()
