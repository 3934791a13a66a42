"""Code the user really writes: classes of arguments, dispatch registries, wrappers, any global.

Each scenario about code edits writes modules into a temp dir and calls the memoized function in
a fresh interpreter per run: run 1 computes, run 2 (same code) must hit (the self-check that the
scenario can hit at all), run 3 (edited) must recompute and return the edited code's value.
"""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any

import pytest

CALL = "import {main}; print('VALUE', {main}.{call})"


def _runs(
    run_py: Any, tmp_path: Path, files: dict[str, str], edits: dict[str, str], call: str
) -> list[tuple[bool, str]]:
    """(recomputed, value) for: first run, same code again, code edited."""
    main = next(name for name in files if "memoize" in files[name])
    store = str(tmp_path / "cache")
    out: list[tuple[bool, str]] = []
    for version in (files, files, {**files, **edits}):
        for name, text in version.items():
            (tmp_path / f"{name}.py").write_text(textwrap.dedent(text).format(store=store))
        proc = run_py(CALL.format(main=main, call=call), pythonpath=[tmp_path])
        out.append(("RAN" in proc.stdout, proc.stdout.split("VALUE", 1)[1].strip()))
    return out


def _assert_edit_recomputes(runs: list[tuple[bool, str]], before: str, after: str) -> None:
    assert runs[0] == (True, before)
    assert runs[1] == (False, before), "the same code in a new process must hit"
    assert runs[2] == (True, after), "the edited code must recompute"


# -- an argument's class changed -----------------------------------------------------------------

SHAPES = """
import dataclasses

class Square:
    def __init__(self, side):
        self.side = side

    def area(self):
        return self.side * {factor}

@dataclasses.dataclass
class Drawing:
    title: str
    parts: list

class Unused:
    def area(self):
        return {unused}
"""

TOTALS = """
from reckon import memoize

@memoize(store={store!r}, assume_pure=True)
def area_of(shape):
    print("RAN")
    return shape.area()

@memoize(store={store!r}, assume_pure=True)
def total(drawing):
    print("RAN")
    return sum(p.area() for p in drawing.parts["shapes"])
"""


@pytest.mark.parametrize(
    "call",
    [
        "area_of(__import__('shapes').Square(3))",
        "total(__import__('shapes').Drawing('d', {'shapes': [__import__('shapes').Square(3)]}))",
    ],
    ids=["argument", "nested-in-dataclass-and-dict"],
)
def test_editing_an_arguments_class_recomputes(run_py: Any, tmp_path: Path, call: str) -> None:
    files = {
        "shapes": SHAPES.replace("{factor}", "3").replace("{unused}", "1"),
        "totals": TOTALS,
    }
    edits = {"shapes": SHAPES.replace("{factor}", "4").replace("{unused}", "1")}
    _assert_edit_recomputes(_runs(run_py, tmp_path, files, edits, call), "9", "12")


def test_editing_an_unrelated_class_of_the_arguments_module_hits(
    run_py: Any, tmp_path: Path
) -> None:
    files = {
        "shapes": SHAPES.replace("{factor}", "3").replace("{unused}", "1"),
        "totals": TOTALS,
    }
    edits = {"shapes": SHAPES.replace("{factor}", "3").replace("{unused}", "2")}
    runs = _runs(run_py, tmp_path, files, edits, "area_of(__import__('shapes').Square(3))")
    assert runs == [(True, "9"), (False, "9"), (False, "9")]


# -- registries and closures of standard wrappers --------------------------------------------------

WRAPPERS = """
import functools
from reckon import memoize

@functools.singledispatch
def describe(x):
    return 0

@describe.register
def _(x: int):
    return x * {k}

class Shape:
    @functools.singledispatchmethod
    def scale(self, x):
        return 0

    @scale.register
    def _(self, x: int):
        return x * {k}

    @functools.cached_property
    def size(self):
        return {k}

    @property
    def side(self):
        return {k}

    @staticmethod
    def twice(x):
        return x * {k}

    @classmethod
    def make(cls, x):
        return x * {k}

def times(a, b):
    return a * b

triple = functools.partial(times, {k})

@functools.lru_cache
def cached(x):
    return x * {k}

def logged(fn):
    @functools.wraps(fn)
    def inner(*args):
        return fn(*args)
    return inner

@logged
def wrapped(x):
    return x * {k}

@memoize(store={store!r}, assume_pure=True)
def use(which, x):
    print("RAN")
    if which == "singledispatch":
        return describe(x)
    if which == "singledispatchmethod":
        return Shape().scale(x)
    if which == "cached_property":
        return Shape().size * x
    if which == "property":
        return Shape().side * x
    if which == "staticmethod":
        return Shape.twice(x)
    if which == "classmethod":
        return Shape.make(x)
    if which == "partial":
        return triple(x)
    if which == "lru_cache":
        return cached(x)
    return wrapped(x)
"""


@pytest.mark.parametrize(
    "which",
    [
        "singledispatch",
        "singledispatchmethod",
        "cached_property",
        "property",
        "staticmethod",
        "classmethod",
        "partial",
        "lru_cache",
        "wraps",
    ],
)
def test_editing_code_kept_by_a_standard_wrapper_recomputes(
    run_py: Any, tmp_path: Path, which: str
) -> None:
    files = {"wrappers_" + which: WRAPPERS.replace("{k}", "2")}
    edits = {"wrappers_" + which: WRAPPERS.replace("{k}", "3")}
    runs = _runs(run_py, tmp_path, files, edits, f"use({which!r}, 5)")
    _assert_edit_recomputes(runs, "10", "15")


# -- any global of any type ----------------------------------------------------------------------

ARRAYS = """
import numpy as np
import pandas as pd
from reckon import memoize

TABLE = pd.DataFrame({{"a": [1, 2, 3], "b": [0.5, 1.5, 2.5]}})
WEIGHTS = np.arange({n})

@memoize(store={store!r})
def weigh(x):
    print("RAN")
    return int(WEIGHTS.sum()) * x + int(TABLE["a"].sum())
"""


def test_numpy_and_pandas_globals_are_read_without_crashing(run_py: Any, tmp_path: Path) -> None:
    """An array or a DataFrame read as a global is hashed by value; its edits recompute."""
    files = {"weights": ARRAYS.replace("{n}", "4")}
    edits = {"weights": ARRAYS.replace("{n}", "5")}
    runs = _runs(run_py, tmp_path, files, edits, "weigh(2)")
    _assert_edit_recomputes(runs, str(6 * 2 + 6), str(10 * 2 + 6))


def test_globals_that_refuse_comparison_do_not_break_the_impurity_check() -> None:
    """Objects whose == raises or is ambiguous, read as globals, in one process."""
    np = pytest.importorskip("numpy")
    pd = pytest.importorskip("pandas")
    from reckon.memo.impurity import find_impurities

    class Touchy:
        def __eq__(self, other: object) -> bool:
            raise RuntimeError("no comparing me")

        __hash__ = object.__hash__

    namespace: dict[str, Any] = {
        "A": np.ones((3, 3)),
        "DF": pd.DataFrame({"x": [1, 2]}),
        "T": Touchy(),
    }
    exec("def f(x):\n    return A.sum() + len(DF) + (T is None) + x\n", namespace)
    assert find_impurities(namespace["f"]) == []


# -- needless recomputes, narrowed where it is safe ------------------------------------------------

SETTINGS = """
from reckon import memoize

HANDLERS = {{"double": lambda x: x * 2, "triple": lambda x: x * {triple}}}
SETTINGS = {{"scale": {scale}, "unused": {unused}}}

@memoize(store={store!r}, assume_pure=True)
def scaled(x):
    print("RAN")
    return x * SETTINGS["scale"] + SETTINGS.get("offset", 0) + HANDLERS["double"](x)

@memoize(store={store!r}, assume_pure=True)
def counted(x):
    print("RAN")
    return x * SETTINGS["scale"] + len(SETTINGS)
"""


@pytest.mark.parametrize(
    ("call", "edit", "recomputes"),
    [
        ("scaled(2)", {"unused": 7}, False),
        ("scaled(2)", {"triple": 4}, False),
        ("scaled(2)", {"scale": 5}, True),
        ("counted(2)", {"unused": 7}, True),
    ],
    ids=["unused-entry-hits", "unused-handler-hits", "used-entry-recomputes", "whole-dict-read"],
)
def test_only_the_entries_of_a_global_dict_the_code_looks_up_count(
    run_py: Any, tmp_path: Path, call: str, edit: dict[str, int], recomputes: bool
) -> None:
    base = {"scale": 3, "unused": 1, "triple": 3}
    name = f"settings_{call[:-3]}_{'_'.join(edit)}"
    store = str(tmp_path / "cache")
    ran: list[bool] = []
    for values in (base, base, {**base, **edit}):
        (tmp_path / f"{name}.py").write_text(SETTINGS.format(store=store, **values))
        proc = run_py(f"import {name}; print('VALUE', {name}.{call})", pythonpath=[tmp_path])
        ran.append("RAN" in proc.stdout)
    assert ran == [True, False, recomputes]


class _Hostile:
    """Refuses everything a careless check might try: attributes, ==, truth, hash, pickling."""

    def __getattr__(self, name: str) -> Any:
        raise RuntimeError(f"no attribute {name}")

    def __eq__(self, other: object) -> bool:
        raise RuntimeError("no comparing")

    def __bool__(self) -> bool:
        raise RuntimeError("no truth")

    def __reduce_ex__(self, protocol: Any) -> Any:
        raise TypeError("no pickling")

    __hash__ = None  # type: ignore[assignment]


def _odd_globals() -> dict[str, Any]:
    import sqlite3
    import threading

    np = pytest.importorskip("numpy")
    pd = pytest.importorskip("pandas")
    return {
        "structured": np.zeros(2, dtype=[("a", "i4"), ("b", "f8")]),
        "masked": np.ma.masked_array([1, 2], mask=[0, 1]),
        "frame_of_objects": pd.DataFrame({"o": [object(), None]}),
        "multiindex": pd.MultiIndex.from_tuples([(1, 2)]),
        "nat": pd.NaT,
        "na": pd.NA,
        "lock": threading.Lock(),
        "connection": sqlite3.connect(":memory:"),
        "generator": (i for i in range(3)),
        "hostile": _Hostile(),
    }


@pytest.mark.parametrize(
    "name",
    ["structured", "masked", "frame_of_objects", "multiindex", "nat", "na", "lock", "connection",
     "generator", "hostile"],
)  # fmt: skip
def test_any_global_of_any_type_is_read_without_crashing(cache_dir: Path, name: str) -> None:
    import warnings

    from reckon import memoize

    namespace: dict[str, Any] = {"__name__": "odd_globals", "G": _odd_globals()[name]}
    exec("def f(x):\n    g = G\n    return x + 1\n", namespace)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # a lock or a connection read as a global may warn
        f = memoize(store=cache_dir, name=f"odd.{name}")(namespace["f"])
        assert (f(1), f(1)) == (2, 2)
    assert f.stats()["hits"] == 1
