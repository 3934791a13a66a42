"""reckon.memo.fingerprint: the key follows the code a function reaches, and nothing else.

Edit tests copy the modules in ``keys_fixtures/`` into a temporary directory, apply one edit, and
compute fingerprints in a fresh interpreter (a new process per variant, a different hash seed
each time), exactly as a user's next run would.
"""

from __future__ import annotations

import functools
import json
import os
import shutil
import subprocess
import sys
import textwrap
import types
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from reckon.memo.fingerprint import explain, fingerprint

FIXTURES = Path(__file__).resolve().parent / "keys_fixtures"
ROOT = Path(__file__).resolve().parents[2]

Edit = tuple[str, str, str]  # (file, old text, new text)

_PROBE = textwrap.dedent(
    """
    import json, sys
    from reckon.memo.fingerprint import fingerprint, explain
    import kf_main
    names = ["target", "via_attr", "bystander", "ping", "pong"]
    order = sys.argv[1:] or names
    fps = {n: fingerprint(getattr(kf_main, n)).hex() for n in order}
    print(json.dumps({"fps": fps, "explain": explain(kf_main.target)}))
    """
)


def _env(seed: int, *paths: Path) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([*map(str, paths), env.get("PYTHONPATH", "")])
    env["PYTHONHASHSEED"] = str(seed)
    env["PYTHONDONTWRITEBYTECODE"] = "1"  # edits within one second must not hit a stale .pyc
    return env


def _run(code: str, env: dict[str, str], *args: str, cwd: Path | None = None) -> str:
    proc = subprocess.run(
        [sys.executable, "-c", code, *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=180,
        cwd=cwd,
    )
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def _variant(base: Path, name: str, edits: list[Edit]) -> Path:
    target = base / name
    target.mkdir()
    for fname in ("kf_main.py", "kf_helpers.py"):
        shutil.copy(FIXTURES / fname, target / fname)
    for fname, old, new in edits:
        path = target / fname
        text = path.read_text()
        assert old in text, (name, old)
        path.write_text(text.replace(old, new, 1))
    return target


VARIANTS: dict[str, list[Edit]] = {
    "base": [],
    "helper_body": [("kf_helpers.py", "return x + 1", "return x + 2")],
    "attr_chain_helper": [("kf_helpers.py", "return v * SCALE", "return v * SCALE * 1")],
    "helper_constant": [("kf_helpers.py", "SCALE = 3", "SCALE = 4")],
    "own_constant": [("kf_main.py", "OFFSET = 7", "OFFSET = 8")],
    "default": [("kf_main.py", "def target(x, y=2):", "def target(x, y=3):")],
    "own_body": [("kf_main.py", "+ OFFSET + y", "+ y + OFFSET")],
    "unrelated_function": [("kf_helpers.py", "return x - 1", "return x - 100")],
    "unrelated_constant": [("kf_helpers.py", "UNUSED_CONSTANT = 10", "UNUSED_CONSTANT = 11")],
    "unread_constant_same_module": [("kf_main.py", "OTHER = 1", "OTHER = 2")],
    "bystander_edit": [("kf_main.py", "return OTHER", "return OTHER * 2")],
    "comment": [
        ("kf_main.py", "# a comment", "# a different, much longer comment\n    # and another"),
        ("kf_helpers.py", "def helper(x):", "def helper(x):  # trailing comment"),
    ],
    "docstring": [
        ("kf_main.py", '"""Docstring of target."""', '"""Rewritten docstring.\n\n    Longer."""'),
        ("kf_main.py", '"""Module docstring."""', '"""Another module docstring."""'),
    ],
    "no_docstring": [("kf_main.py", '    """Docstring of target."""\n', "")],
    "lines_moved": [
        ("kf_main.py", '"""Module docstring."""\n', '"""Module docstring."""\n\n\n\n\n'),
        ("kf_helpers.py", "import math\n", "import math\n\n\n\ndef added_above():\n    return 0\n"),
    ],
}
CHANGES_TARGET = {"helper_body", "attr_chain_helper", "helper_constant", "own_constant", "default",
                  "own_body"}  # fmt: skip


@pytest.fixture(scope="module")
def variant_results(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, Any]]:
    base = tmp_path_factory.mktemp("fingerprint_variants")
    dirs = {name: _variant(base, name, edits) for name, edits in VARIANTS.items()}

    def probe(item: tuple[int, str]) -> tuple[str, dict[str, Any]]:
        i, name = item
        out = _run(_PROBE, _env(1000 + i, dirs[name]))
        result: dict[str, Any] = json.loads(out)
        return name, result

    with ThreadPoolExecutor(max_workers=4) as pool:
        results = dict(pool.map(probe, enumerate(VARIANTS)))
    # The base once more, in another process with another seed, probing in reverse order.
    again = json.loads(
        _run(_PROBE, _env(7, dirs["base"]), "pong", "ping", "bystander", "via_attr", "target")
    )
    results["base_again"] = again
    return results


@pytest.mark.parametrize("name", sorted(set(VARIANTS) - {"base"}))
def test_edit_changes_target_fingerprint_only_when_reached(
    variant_results: dict[str, dict[str, Any]], name: str
) -> None:
    base = variant_results["base"]["fps"]["target"]
    edited = variant_results[name]["fps"]["target"]
    if name in CHANGES_TARGET:
        assert edited != base, f"{name}: the edit must change the fingerprint"
    else:
        assert edited == base, f"{name}: the edit must not change the fingerprint\n" + "\n".join(
            variant_results[name]["explain"]
        )


def test_fingerprints_are_stable_across_processes_and_seeds(
    variant_results: dict[str, dict[str, Any]],
) -> None:
    assert variant_results["base"]["fps"] == variant_results["base_again"]["fps"]


def test_mutual_recursion_and_independent_functions(
    variant_results: dict[str, dict[str, Any]],
) -> None:
    fps = variant_results["base"]["fps"]
    assert fps["ping"] != fps["pong"]
    assert len(set(fps.values())) == len(fps)
    # The bystander's own edit changes the bystander, and only it.
    assert variant_results["bystander_edit"]["fps"]["bystander"] != fps["bystander"]
    assert variant_results["bystander_edit"]["fps"]["ping"] == fps["ping"]
    # via_attr reaches the attribute-chain helper, not the from-imported one.
    assert variant_results["attr_chain_helper"]["fps"]["via_attr"] != fps["via_attr"]
    assert variant_results["helper_body"]["fps"]["via_attr"] == fps["via_attr"]


def test_explain_lists_what_went_in(variant_results: dict[str, dict[str, Any]]) -> None:
    text = "\n".join(variant_results["base"]["explain"])
    assert "function kf_main.target" in text
    assert "function kf_helpers.helper" in text
    assert "function kf_helpers.scaled" in text
    assert "reads OFFSET" in text
    assert "reads SCALE" in text
    assert "math (Python 3." in text
    assert "unrelated" not in text and "bystander" not in text


# -- installed packages --------------------------------------------------------------------------

_INSTALLED_PROBE = textwrap.dedent(
    """
    import json
    from reckon.memo.fingerprint import fingerprint, explain
    import kf_uses_installed, fakepkg
    print(json.dumps({
        "user": fingerprint(kf_uses_installed.f).hex(),
        "lib": fingerprint(fakepkg.compute).hex(),
        "explain": explain(kf_uses_installed.f),
    }))
    """
)


def _installed_variant(base: Path, name: str, version: str, code_edit: bool) -> Path:
    root = base / name
    site = root / "lib" / "site-packages"
    (site / "fakepkg").mkdir(parents=True)
    source = (FIXTURES / "kf_installed.py").read_text()
    if code_edit:
        source = source.replace("FACTOR = 2", "FACTOR = 3")
    (site / "fakepkg" / "__init__.py").write_text(source)
    info = site / f"fakepkg-{version}.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: fakepkg\nVersion: {version}\n")
    (info / "top_level.txt").write_text("fakepkg\n")
    user = root / "user"
    user.mkdir()
    shutil.copy(FIXTURES / "kf_uses_installed.py", user / "kf_uses_installed.py")
    return root


def test_installed_package_counts_by_version_only(tmp_path: Path) -> None:
    variants = {
        "v1": ("1.0", False),
        "v1_code_edited": ("1.0", True),
        "v2": ("2.0", False),
    }
    results = {}
    for i, (name, (version, edit)) in enumerate(variants.items()):
        root = _installed_variant(tmp_path, name, version, edit)
        env = _env(i, root / "user", root / "lib" / "site-packages")
        results[name] = json.loads(_run(_INSTALLED_PROBE, env))
    assert results["v1"]["user"] == results["v1_code_edited"]["user"]
    assert results["v1"]["lib"] == results["v1_code_edited"]["lib"]
    assert results["v1"]["user"] != results["v2"]["user"]
    assert results["v1"]["lib"] != results["v2"]["lib"]
    text = "\n".join(results["v1"]["explain"])
    assert "fakepkg==1.0" in text
    assert "FACTOR" not in text  # the package's internals are not read


def test_real_installed_and_stdlib_functions_are_leaves() -> None:
    from importlib.metadata import version

    import dateutil.parser
    import numpy as np

    # python-dateutil (installed with pandas) imports as `dateutil`: the distribution's name counts.
    (line,) = explain(dateutil.parser.parse)
    assert f"python-dateutil=={version('python-dateutil')}" in line
    (line,) = explain(np.linalg.norm)
    assert f"numpy=={np.__version__}" in line
    (line,) = explain(json.dumps)
    assert f"Python {sys.version_info[0]}.{sys.version_info[1]}" in line
    (line,) = explain(len)
    assert "builtins.len" in line


def test_reckon_counts_by_its_version() -> None:
    import reckon
    from reckon.memo import hashing

    (line,) = explain(hashing.hash_value)
    assert f"reckon {reckon.__version__}" in line


# -- __main__, Jupyter cells and exec ------------------------------------------------------------


def test_main_script(tmp_path: Path) -> None:
    src = (FIXTURES / "kf_script.py").read_text()
    edits = {
        "base": src,
        "moved": src.replace('"""Run as __main__', '\n\n\n"""Run as __main__').replace(
            "def work(n):", "# a comment\n\n\ndef work(n):"
        ),
        "edited": src.replace("i * i", "i * i * i"),
        "constant": src.replace("LIMIT = 5", "LIMIT = 6"),
    }
    fps = {}
    for i, (name, text) in enumerate(edits.items()):
        script = tmp_path / f"script_{name}.py"
        script.write_text(text)
        proc = subprocess.run(
            [sys.executable, str(script)],
            capture_output=True,
            text=True,
            env=_env(i),
            timeout=180,
        )
        assert proc.returncode == 0, proc.stderr
        fps[name] = proc.stdout
    assert fps["base"] == fps["moved"]
    assert fps["base"] != fps["edited"]
    assert fps["base"] != fps["constant"]


_IPYTHON_PROBE = textwrap.dedent(
    """
    import json
    from IPython.core.interactiveshell import InteractiveShell
    shell = InteractiveShell.instance()
    def cell(src):
        result = shell.run_cell(src)
        assert result.success, result.error_in_exec
    cell("SCALE = 2\\ndef helper(x):\\n    return x * SCALE\\n")
    cell("def f(x):\\n    return helper(x) + 1\\n")
    from reckon.memo.fingerprint import fingerprint, explain
    fps = {"first": fingerprint(shell.user_ns["f"]).hex()}
    cell("\\n\\n# re-run in a later cell, moved down\\ndef f(x):\\n    return helper(x) + 1\\n")
    fps["rerun"] = fingerprint(shell.user_ns["f"]).hex()
    cell("def helper(x):\\n    return x * SCALE * 10\\n")
    cell("def f(x):\\n    return helper(x) + 1\\n")
    fps["helper_edited"] = fingerprint(shell.user_ns["f"]).hex()
    cell("SCALE = 3\\ndef f(x):\\n    return helper(x) + 1\\n")
    fps["constant"] = fingerprint(shell.user_ns["f"]).hex()
    fps["module"] = shell.user_ns["f"].__module__
    print(json.dumps(fps))
    """
)


def test_ipython_cells(tmp_path: Path) -> None:
    env = _env(3)
    env["IPYTHONDIR"] = str(tmp_path / "ipython")
    first = json.loads(_run(_IPYTHON_PROBE, env, cwd=tmp_path).strip().splitlines()[-1])
    env["PYTHONHASHSEED"] = "99"
    second = json.loads(_run(_IPYTHON_PROBE, env, cwd=tmp_path).strip().splitlines()[-1])
    assert first == second  # a new kernel with the same cells: same keys
    assert first["module"] == "__main__"
    assert first["first"] == first["rerun"]
    assert first["helper_edited"] != first["first"]
    assert first["constant"] not in (first["first"], first["helper_edited"])


def test_exec_without_source_file() -> None:
    def build(body: str, name: str = "dyn") -> types.FunctionType:
        ns: dict[str, Any] = {"__name__": name, "K": 3}
        exec(compile(f"def f(x):\n    return {body}\n", "<generated>", "exec"), ns)
        fn: types.FunctionType = ns["f"]
        return fn

    assert fingerprint(build("x + K")) == fingerprint(build("x + K"))
    assert fingerprint(build("x + K")) != fingerprint(build("x - K"))
    ns: dict[str, Any] = {}
    exec("def g(x):\n    return x\n", ns)  # no __name__ at all: module None
    assert len(fingerprint(ns["g"])) == 16
    assert explain(ns["g"])[0].startswith("function")


# -- closures, defaults, classes, versions, wrappers ---------------------------------------------


def make_adder(k: Any) -> Callable[[int], int]:
    def add(x: int) -> int:
        return x + k

    return add


def test_closure_values_and_defaults() -> None:
    assert fingerprint(make_adder(1)) == fingerprint(make_adder(1))
    assert fingerprint(make_adder(1)) != fingerprint(make_adder(2))
    assert fingerprint(make_adder([1, 2])) != fingerprint(make_adder([1, 3]))
    assert fingerprint(make_adder(make_adder)) == fingerprint(make_adder(make_adder))

    def with_default(x: int, k: int = 1) -> int:
        return x + k

    before = fingerprint(with_default)
    copy = types.FunctionType(
        with_default.__code__, with_default.__globals__, "with_default", (2,), None
    )
    assert fingerprint(copy) != before
    copy2 = types.FunctionType(
        with_default.__code__, with_default.__globals__, "with_default", (1,), None
    )
    assert fingerprint(copy2) == before


def test_nested_code_constants_count() -> None:
    def outer_a() -> Any:
        return [lambda y: y + 1 for _ in range(2)]

    def outer_b() -> Any:
        return [lambda y: y + 2 for _ in range(2)]

    code_b = outer_b.__code__.replace(co_name="outer_a", co_qualname=outer_a.__code__.co_qualname)
    twin = types.FunctionType(code_b, outer_a.__globals__, "outer_a")
    assert fingerprint(twin) != fingerprint(outer_a)


class Base:
    factor = 2

    def scale(self, x: int) -> int:
        return x * self.factor


class Child(Base):
    def run(self, x: int) -> int:
        return self.helper(x) + 1

    def helper(self, x: int) -> int:
        return self.scale(x)


def test_methods_depend_on_their_class_and_bases() -> None:
    text = "\n".join(explain(Child.run))
    assert f"class {__name__}.Child" in text
    assert "Child.helper" in text
    assert "Base.scale" in text
    before = fingerprint(Child.run)
    ns: dict[str, Any] = {"__name__": __name__}
    exec(
        "class Base:\n    factor = 3\n    def scale(self, x):\n        return x * self.factor\n",
        ns,
    )

    class Child2(ns["Base"]):  # type: ignore[misc,name-defined]
        run = Child.__dict__["run"]
        helper = Child.__dict__["helper"]

    assert fingerprint(Child.run) == before
    assert fingerprint(Child2) != fingerprint(Child)


def test_explicit_version_stops_recursion() -> None:
    def v1(x: int) -> int:
        return x + 1

    def v2(x: int) -> int:
        return x + 2

    v1.__reckon_version__ = "1.0"  # type: ignore[attr-defined]
    v2.__reckon_version__ = "1.0"  # type: ignore[attr-defined]
    v2.__qualname__ = v1.__qualname__
    assert fingerprint(v1) == fingerprint(v2)
    v3 = make_adder(0)
    v3.__reckon_version__ = "2.0"  # type: ignore[attr-defined]
    v3.__qualname__ = v1.__qualname__
    v3.__module__ = v1.__module__
    assert fingerprint(v3) != fingerprint(v1)
    assert explain(v1) == [f"{__name__}.{v1.__qualname__} (version 1.0)"]


@functools.lru_cache
def cached_helper(x: int) -> int:
    return x * 2


def calls_wrapper(x: int) -> int:
    return cached_helper(x) + 1


def test_wrappers_are_followed_through_wrapped() -> None:
    text = "\n".join(explain(calls_wrapper))
    assert "cached_helper" in text
    assert "functools._lru_cache_wrapper" in text

    class FakeMemoized:
        def __init__(self, fn: Callable[..., Any]) -> None:
            self.__wrapped__ = fn

        def __call__(self, *a: Any) -> Any:
            return self.__wrapped__(*a)

    ns: dict[str, Any] = {"__name__": "wrapped_ns", "FakeMemoized": FakeMemoized}
    src = "@FakeMemoized\ndef inner(x):\n    return x + {k}\ndef outer(x):\n    return inner(x)\n"
    exec(src.format(k=1), ns)
    fp1 = fingerprint(ns["outer"])
    exec(src.format(k=2), ns)
    assert fingerprint(ns["outer"]) != fp1


def test_computed_once_per_function_object() -> None:
    fn = make_adder(5)
    first = fingerprint(fn)
    assert fingerprint(fn) is first
    fn2 = make_adder(5)
    assert fingerprint(fn2) == first and fingerprint(fn2) is not first


def test_unhashable_global_does_not_break_fingerprint() -> None:
    import threading

    ns: dict[str, Any] = {"__name__": "locky", "LOCK": threading.Lock()}
    exec("def f():\n    with LOCK:\n        return 1\n", ns)
    assert len(fingerprint(ns["f"])) == 16
    assert any("not hashable by value" in line for line in explain(ns["f"]))


def test_global_instance_of_user_class_follows_its_methods() -> None:
    src = (
        "class Cfg:\n    def __init__(self):\n        self.k = 1\n"
        "    def get(self):\n        return self.k {op} 1\n"
        "CFG = Cfg()\n"
        "def f():\n    return CFG.get()\n"
    )
    fps = []
    for op in ("+", "-"):
        ns: dict[str, Any] = {"__name__": "cfg_ns"}
        exec(src.format(op=op), ns)
        fps.append(fingerprint(ns["f"]))
    assert fps[0] != fps[1]


def test_functions_inside_constants_and_partials() -> None:
    src = (
        "import functools\n"
        "def a(x):\n    return x {op} 1\n"
        "def b(x):\n    return x * 2\n"
        "TABLE = {{'a': a, 'b': b}}\n"
        "BOUND = functools.partial(b, 3)\n"
        "def via_table(k, x):\n    return TABLE[k](x)\n"
        "def via_partial():\n    return BOUND()\n"
    )
    results = []
    for op in ("+", "-"):
        ns: dict[str, Any] = {"__name__": "tables_ns"}
        exec(src.format(op=op), ns)
        results.append((fingerprint(ns["via_table"]), fingerprint(ns["via_partial"])))
    assert results[0][0] != results[1][0]  # a changed, and TABLE holds a
    assert results[0][1] == results[1][1]  # BOUND holds b only


def test_imports_inside_the_function_body(tmp_path: Path) -> None:
    pkg = tmp_path / "kf_pkg_inner"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "helpers.py").write_text("def helper(x):\n    return x + 1\n")
    (pkg / "main.py").write_text(
        "def f(x):\n"
        "    from . import helpers\n"
        "    from .helpers import helper as h\n"
        "    import kf_pkg_inner.helpers as hh\n"
        "    return helpers.helper(x) + h(x) + hh.helper(x)\n"
    )
    code = (
        "import json, kf_pkg_inner.main as m\n"
        "from reckon.memo.fingerprint import fingerprint, explain\n"
        "print(json.dumps([fingerprint(m.f).hex(), explain(m.f)]))\n"
    )
    fp1, lines = json.loads(_run(code, _env(1, tmp_path)))
    assert any("function kf_pkg_inner.helpers.helper" in line for line in lines)
    (pkg / "helpers.py").write_text("def helper(x):\n    return x + 2\n")
    fp2, _ = json.loads(_run(code, _env(2, tmp_path)))
    assert fp1 != fp2


def test_misbehaving_values_degrade_or_raise_a_clear_error() -> None:
    from reckon.errors import FingerprintError

    class Proxy:
        def __getattr__(self, name: str) -> Any:
            raise KeyError(name)

        def __reduce_ex__(self, protocol: Any) -> Any:
            raise RuntimeError("no state")

    ns: dict[str, Any] = {"__name__": "proxy_ns", "P": Proxy()}
    exec("def f():\n    return P.x\n", ns)
    assert any("not hashable by value" in line for line in explain(ns["f"]))

    class Odd:
        def __init__(self) -> None:
            self.value = 1

        def __getstate__(self) -> Any:
            raise ValueError("broken state")

    ns2: dict[str, Any] = {"__name__": "odd_ns", "O": Odd()}
    exec("def g():\n    return O.value\n", ns2)
    assert len(fingerprint(ns2["g"])) == 16  # the broken global counts by its type name
    deep: list[Any] = []
    node = deep
    for _ in range(100_000):
        node.append([])
        node = node[0]
    ns3: dict[str, Any] = {"__name__": "deep_ns", "DEEP": deep}
    exec("def h():\n    return DEEP\n", ns3)
    assert any("DEEP: a builtins.list, not hashable" in line for line in explain(ns3["h"]))
    # A class whose namespace cannot even be listed: a clear FingerprintError, not a crash.

    class BadMeta(type):
        def __getattribute__(cls, name: str) -> Any:
            if name == "__bases__":
                raise RuntimeError("no bases for you")
            return super().__getattribute__(name)

    bad = BadMeta("Bad", (), {"__module__": "bad_ns"})
    with pytest.raises(FingerprintError, match="RuntimeError: no bases for you"):
        fingerprint(bad)


def test_count_by_version_for_an_editable_package(tmp_path: Path) -> None:
    pkg = tmp_path / "kf_devlib"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("__version__ = '0.3'\ndef core(x):\n    return x + 1\n")
    (tmp_path / "kf_devuser.py").write_text(
        "import kf_devlib\ndef f(x):\n    return kf_devlib.core(x)\n"
    )
    code = (
        "import json, sys, kf_devuser\n"
        "from reckon.memo.fingerprint import count_by_version, explain, fingerprint\n"
        "if sys.argv[1:] == ['declare']:\n"
        "    count_by_version('kf_devlib')\n"
        "print(json.dumps([fingerprint(kf_devuser.f).hex(), explain(kf_devuser.f)]))\n"
    )
    plain1, _ = json.loads(_run(code, _env(1, tmp_path)))
    declared1, lines = json.loads(_run(code, _env(2, tmp_path), "declare"))
    assert any("kf_devlib==0.3 (declared)" in line for line in lines)
    (pkg / "__init__.py").write_text("__version__ = '0.3'\ndef core(x):\n    return x + 2\n")
    plain2, _ = json.loads(_run(code, _env(3, tmp_path)))
    declared2, _ = json.loads(_run(code, _env(4, tmp_path), "declare"))
    assert plain1 != plain2  # by default, the editable package's code counts
    assert declared1 == declared2  # declared: its version counts, not its code
    (pkg / "__init__.py").write_text("__version__ = '0.4'\ndef core(x):\n    return x + 2\n")
    declared3, _ = json.loads(_run(code, _env(5, tmp_path), "declare"))
    assert declared3 != declared2


def test_adding_a_log_handler_does_not_change_the_fingerprint() -> None:
    import logging

    ns: dict[str, Any] = {"__name__": "logging_ns", "log": logging.getLogger("kf.logging.test")}
    exec("def f(x):\n    log.info('x=%s', x)\n    return x\n", ns)
    before = fingerprint(ns["f"])
    handler = logging.NullHandler()
    ns["log"].addHandler(handler)
    try:
        copy = types.FunctionType(ns["f"].__code__, ns, "f")
        assert fingerprint(copy) == before
    finally:
        ns["log"].removeHandler(handler)


def test_partials_and_callable_objects_fingerprint_by_value() -> None:
    def base(x: int, k: int) -> int:
        return x + k

    assert fingerprint(functools.partial(base, k=1)) == fingerprint(functools.partial(base, k=1))
    assert fingerprint(functools.partial(base, k=1)) != fingerprint(functools.partial(base, k=2))
    assert explain(functools.partial(base, k=1))[0] == "value functools.partial"


def test_docstrings_count_when_the_code_reads_them() -> None:
    src = 'def f():\n    """{doc}"""\n    return f.__doc__.upper()\n'
    fps = []
    for doc in ("one", "two"):
        ns: dict[str, Any] = {"__name__": "doc_ns"}
        exec(src.format(doc=doc), ns)
        fps.append(fingerprint(ns["f"]))
    assert fps[0] != fps[1]


_MODULE_SRC = '''\
"""A module."""
import math

RATE = 0.25


def helper(x):
    """Help."""
    total = 0
    for i in range(x):
        total += math.floor(i * RATE)
    return total


class Acc:
    """Accumulate."""

    def __init__(self):
        self.items = []

    def add(self, v):
        self.items.append(helper(v))
        return self


def target(n):
    acc = Acc()
    for i in range(n):
        acc.add(i)
    return sum(acc.items), [j * 2 for j in acc.items if j]
'''


@settings(max_examples=25, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.integers(0, _MODULE_SRC.count("\n")),
            st.sampled_from(["", "# note", "    # indented note", "\t# tab note"]),
        ),
        max_size=6,
    )
)
def test_comments_and_blank_lines_never_change_the_fingerprint(
    inserts: list[tuple[int, str]],
) -> None:
    def load(source: str) -> Any:
        ns: dict[str, Any] = {"__name__": "prop_ns"}
        exec(compile(source, "<prop>", "exec"), ns)
        return ns["target"]

    lines = _MODULE_SRC.splitlines()
    for index, text in sorted(inserts, reverse=True):
        lines.insert(index, text)
    edited = "\n".join(lines) + "\n"
    assert fingerprint(load(edited)) == fingerprint(load(_MODULE_SRC))


def test_memoized_methods_depend_on_their_class() -> None:
    from reckon.core import CachingLevel
    from reckon.memo import memoize

    src = (
        "class K:\n"
        "    def helper(self):\n        return {k}\n"
        "    def run(self):\n        return self.helper()\n"
    )
    fps = []
    for k in (1, 2):
        ns: dict[str, Any] = {"__name__": "memo_method_ns"}
        exec(src.format(k=k), ns)
        cls = ns["K"]
        cls.run = memoize(level=CachingLevel.MEMORY)(cls.__dict__["run"])  # as in a class body
        sys.modules["memo_method_ns"] = types.SimpleNamespace(K=cls)  # type: ignore[assignment]
        try:
            fps.append(fingerprint(cls.__dict__["run"].__wrapped__))
        finally:
            del sys.modules["memo_method_ns"]
    assert fps[0] != fps[1]
