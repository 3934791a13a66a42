"""What a user sees: tracebacks without reckon's frames, verbose lines, why a call recomputed."""

from __future__ import annotations

import asyncio
import traceback
from pathlib import Path
from typing import Any

import pytest

import reckon
from reckon import memoize

RECKON_DIR = str(Path(reckon.__file__).resolve().parent)


def _frames(exc: BaseException) -> list[traceback.FrameSummary]:
    return list(traceback.extract_tb(exc.__traceback__))


def _failing_helper(x: int) -> int:
    raise ValueError(f"bad input {x}")


def test_an_error_of_the_function_reaches_the_caller_without_reckon_frames(
    cache_dir: Path,
) -> None:
    @memoize(store=cache_dir)
    def compute(x: int) -> int:
        return _failing_helper(x)

    with pytest.raises(ValueError, match="bad input 3") as info:
        compute(3)
    frames = _frames(info.value)
    assert [f.name for f in frames] == [
        "test_an_error_of_the_function_reaches_the_caller_without_reckon_frames",
        "compute",
        "_failing_helper",
    ]
    assert not any(f.filename.startswith(RECKON_DIR) for f in frames)


def test_a_recursive_or_async_or_method_call_is_as_clean(cache_dir: Path) -> None:
    @memoize(store=cache_dir)
    def down(n: int) -> int:
        return _failing_helper(n) if n == 0 else down(n - 1)

    @memoize(store=cache_dir)
    async def later(x: int) -> int:
        await asyncio.sleep(0)
        return _failing_helper(x)

    class Model:
        @memoize(store=cache_dir)
        def fit(self, x: int) -> int:
            return _failing_helper(x)

    errors: list[BaseException] = []
    for call in (lambda: down(2), lambda: asyncio.run(later(1)), lambda: Model().fit(2)):
        with pytest.raises(ValueError) as info:
            call()
        errors.append(info.value)
    for exc in errors:
        names = [f.name for f in _frames(exc) if f.filename.startswith(RECKON_DIR)]
        assert names == [], names
    assert [f.name for f in _frames(errors[0])].count("down") == 3


def test_an_error_of_reckon_itself_keeps_its_traceback(cache_dir: Path) -> None:
    @memoize(store=cache_dir)
    def takes(x: Any) -> int:
        return 1

    with open(__file__) as fh, pytest.raises(reckon.errors.UnhashableArgumentError) as info:
        takes(fh)
    assert any(f.filename.startswith(RECKON_DIR) for f in _frames(info.value))


# -- why a call recomputed ------------------------------------------------------------------------

EXPLAINED = """
import logging, sys
from reckon import memoize

SCALE = {scale}

def helper(x):
    # comments and blank lines are not compared

    return x * {factor}

def make_offset(k):
    @memoize(store={store!r}, name="explained.offset", assume_pure=True)
    def offset(x):
        return x + k
    return offset

offset = make_offset({k})

@memoize(store={store!r}, assume_pure=True)
def compute(x):
    return helper(x) * SCALE
"""

EXPLAIN_CALL = """
import json, logging, sys
logging.basicConfig(stream=sys.stdout, level=logging.INFO, format="LOG %(name)s %(message)s")
import {name} as m
why = getattr(m, {func!r}).explain({arg})
print("WHY", json.dumps(why.as_dict()))
print("TEXT", str(why))
getattr(m, {func!r})({arg})
print("AGAIN", json.dumps(getattr(m, {func!r}).explain({arg}).as_dict()))
"""


def _explained(
    run_py: Any, tmp_path: Path, edits: dict[str, int], func: str = "compute", arg: str = "3"
) -> tuple[dict[str, Any], str, list[str], dict[str, Any]]:
    """Run 1 computes with the base code; run 2 (edited code) explains, then calls."""
    import json

    values = {"scale": 1, "factor": 2, "k": 10}
    name = f"explained_{func}_{'_'.join(sorted(edits))}"
    path = tmp_path / f"{name}.py"
    store = str(tmp_path / "cache")
    path.write_text(EXPLAINED.format(store=store, **values))
    run_py(f"import {name} as m; m.{func}({arg})", pythonpath=[tmp_path])
    path.write_text(EXPLAINED.format(store=store, **{**values, **edits}))
    out = run_py(EXPLAIN_CALL.format(name=name, func=func, arg=arg), pythonpath=[tmp_path]).stdout
    lines = out.splitlines()
    why = json.loads(next(line[4:] for line in lines if line.startswith("WHY ")))
    text = next(line[5:] for line in lines if line.startswith("TEXT "))
    logged = [line for line in lines if line.startswith("LOG reckon.memo miss:")]
    again = json.loads(next(line[6:] for line in lines if line.startswith("AGAIN ")))
    return why, text, logged, again


def test_a_miss_after_a_code_edit_names_the_function_and_the_first_differing_line(
    run_py: Any, tmp_path: Path
) -> None:
    why, text, logged, again = _explained(run_py, tmp_path, {"factor": 3})
    assert why["hit"] is False
    first = why["changes"][0]
    assert first["kind"] == "code"
    assert first["where"].endswith(".helper")
    assert first["detail"] == "line 10 changed: 'return x * 2' -> 'return x * 3'"
    assert text.endswith(f"recomputes: {first['where']}: {first['detail']}")
    assert logged == [f"LOG reckon.memo miss: {text}"]  # one line per miss, the same words
    assert again == {**why, "hit": True, "changes": []}


def test_a_miss_after_a_global_or_closure_value_changed_names_the_value(
    run_py: Any, tmp_path: Path
) -> None:
    why, _, logged, _ = _explained(run_py, tmp_path, {"scale": 5})
    assert [(c["kind"], c["where"].split(" (")[0], c["detail"]) for c in why["changes"]] == [
        ("value", "global SCALE", "1 -> 5")
    ]
    assert len(logged) == 1
    why, _, _, _ = _explained(run_py, tmp_path, {"k": 11}, func="offset")
    assert [(c["kind"], c["where"].split(" (")[0], c["detail"]) for c in why["changes"]] == [
        ("value", "closure variable k", "10 -> 11")
    ]


def test_a_miss_after_an_arguments_class_changed_names_the_argument(
    run_py: Any, tmp_path: Path
) -> None:
    import json

    shapes = "class Box:\n    def __init__(self, w):\n        self.w = w\n\n    def area(self):\n"
    (tmp_path / "boxes.py").write_text(shapes + "        return self.w * 2\n")
    main = (
        "from reckon import memoize\n"
        f"@memoize(store={str(tmp_path / 'cache')!r}, assume_pure=True)\n"
        "def area(box):\n    return box.area()\n"
    )
    (tmp_path / "box_area.py").write_text(main)
    code = "import json, boxes, box_area\n{}"
    run_py(code.format("box_area.area(boxes.Box(3))"), pythonpath=[tmp_path])
    (tmp_path / "boxes.py").write_text(shapes + "        return self.w * 4\n")
    out = run_py(
        code.format("print(json.dumps(box_area.area.explain(boxes.Box(3)).as_dict()))"),
        pythonpath=[tmp_path],
    ).stdout
    [change] = json.loads(out)["changes"]
    assert change["kind"] == "argument" and change["where"] == "box"
    assert (
        "boxes.Box.area: line 6 changed: 'return self.w * 2' -> 'return self.w * 4'"
        in (change["detail"])
    )


def test_explain_says_hit_or_new_arguments(cache_dir: Path) -> None:
    @memoize(store=cache_dir, name="feedback.square")
    def square(x: int) -> int:
        return x * x

    assert square.explain(2).changes[0].kind == "new"
    square(2)
    assert square.explain(2).hit is True
    why = square.explain(5)
    assert why.hit is False and why.changes[0].kind == "new"
    assert "x=5 (stored: 2)" in why.changes[0].detail


def test_cache_why_and_ls_mark_stale_entries(run_py: Any, tmp_path: Path) -> None:
    import json

    from typer.testing import CliRunner

    from reckon.cli import app

    _explained(run_py, tmp_path, {"factor": 3})
    runner = CliRunner()
    out = runner.invoke(app, ["cache", "why", "--dir", str(tmp_path / "cache"), "--json"])
    assert out.exit_code == 0, out.output
    [item] = json.loads(out.output)
    assert item["function"].endswith(".compute") and item["entries"] == 1
    assert item["changes"][0]["detail"] == "line 10 changed: 'return x * 2' -> 'return x * 3'"
    out = runner.invoke(app, ["cache", "ls", "--dir", str(tmp_path / "cache"), "--json"])
    [cache] = json.loads(out.output)
    assert sorted(e["stale"] for e in cache["entries"]) == [False, True]


# -- verbose ---------------------------------------------------------------------------------------

VERBOSE = """
import pandas as pd
from reckon import memoize, MemoizedGroup
group = MemoizedGroup("chatty", store={store!r}, verbose={group_verbose})

@memoize(group=group, verbose={verbose})
def total(df, scale):
    return float(df["a"].sum()) * scale

df = pd.DataFrame({{"a": [1.0, 2.0], "b": [1, 2]}})
total(df, 2)
total(df, 2)
"""


@pytest.mark.parametrize(
    ("verbose", "group_verbose", "env", "expect"),
    [
        ("True", "None", "", True),
        ("None", "True", "", True),
        ("None", "None", "1", True),
        ("False", "True", "1", False),
        ("None", "None", "", False),
    ],
    ids=["decorator", "group", "environment", "decorator-off-wins", "default-quiet"],
)
def test_verbose_prints_one_short_line_per_call(
    run_py: Any, cache_dir: Path, verbose: str, group_verbose: str, env: str, expect: bool
) -> None:
    code = VERBOSE.format(store=str(cache_dir), verbose=verbose, group_verbose=group_verbose)
    proc = run_py(code, env={"RECKON_VERBOSE": env})
    lines = [line for line in proc.stderr.splitlines() if line.startswith("reckon: ")]
    if not expect:
        assert lines == []
        return
    call = "__main__.total(DataFrame(2 rows x 2 columns; a: float64, b: int64), 2)"
    assert len(lines) == 2
    assert lines[0].startswith(f"reckon: miss {call} (took ")
    assert lines[1].startswith(f"reckon: hit  {call} (saved ")


def test_argument_reprs_are_one_line_and_short() -> None:
    np = pytest.importorskip("numpy")
    from reckon.memo.log import format_call, short_repr

    class Chatty:
        def __repr__(self) -> str:
            return "first line\n    second line\n" + "x" * 500

    assert short_repr(np.zeros((1000, 3))) == "ndarray(shape=(1000, 3), dtype=float64)"
    text = format_call("f", (Chatty(), list(range(1000))), {"k": "y" * 1000})
    assert "\n" not in text and len(text) <= 210


def test_damaged_notes_never_break_a_call(run_py: Any, cache_dir: Path) -> None:
    """What explains misses is only read to explain: garbage there changes no result."""
    code = f"""
        import logging, sys
        logging.basicConfig(stream=sys.stdout, level=logging.INFO)
        from reckon import memoize
        @memoize(store={str(cache_dir)!r}, name="damaged.f", verbose=True)
        def f(x):
            return x + {{k}}
        print("VALUE", f(1), f.explain(1).hit)
    """
    assert "VALUE 2 True" in run_py(code.format(k=1)).stdout
    for path in (cache_dir / "memo-why").iterdir():
        path.write_bytes(b"\\x00not json\\n{]\\n")
    out = run_py(code.format(k=2)).stdout
    assert "VALUE 3 True" in out
