"""Run-time impurity detection: side effects seen while a memoized body computes (audit events,
arguments changed in place, globals rebound, the global random generator advanced)."""

from __future__ import annotations

import importlib
import random
import shutil
import subprocess
import sys
import warnings
from pathlib import Path
from typing import Any

import pytest

from reckon import CachingLevel, FileContents, memoize
from reckon.errors import ImpurityWarning
from reckon.memo import audit_side_effects

COUNTER = 0


def _impurity_messages(record: list[warnings.WarningMessage]) -> list[str]:
    return [str(w.message) for w in record if issubclass(w.category, ImpurityWarning)]


@pytest.fixture
def audited() -> None:
    audit_side_effects()  # for the rest of this test process: opt-in, irreversible


def test_audit_events_are_opt_in(cache_dir: Path, run_py: Any) -> None:
    code = f"""
        import subprocess, sys, warnings
        warnings.simplefilter("error")
        from reckon import memoize
        from reckon.memo import watch
        @memoize(store={str(cache_dir)!r})
        def run(n):
            return subprocess.run([sys.executable, "-c", "pass"]).returncode + n
        try:
            run({{n}})
            print("QUIET", watch._installed)
        except Warning as w:
            print("WARNED", w)
    """
    assert "QUIET False" in run_py(code.format(n=1)).stdout
    out = run_py(code.format(n=2), env={"RECKON_AUDIT": "1"}).stdout
    assert "WARNED" in out and "starts the process" in out


@pytest.mark.parametrize("depth", [0, 8])
def test_file_io_inside_a_library_warns_once(
    cache_dir: Path, tmp_path: Path, audited: None, depth: int
) -> None:
    # (a long path is shortened in the middle: the warning still names the file)
    src = tmp_path.joinpath(*["a-directory-with-a-long-name"] * depth, "src.txt")
    src.parent.mkdir(parents=True, exist_ok=True)
    src.write_text("data")

    @memoize(store=cache_dir)
    def copy(n: int) -> int:
        shutil.copyfile(src, tmp_path / f"dst{n}.txt")  # no open() in sight of the static scan
        return n

    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        copy(1)
        copy(2)
        copy(1)
    messages = _impurity_messages(record)
    assert len(messages) == 1, messages
    assert "copies" in messages[0] and "src.txt" in messages[0]
    assert "side effects while computing" in messages[0]


def test_processes_are_side_effects(cache_dir: Path, audited: None) -> None:
    @memoize(store=cache_dir)
    def run_true(n: int) -> int:
        return subprocess.run([sys.executable, "-c", "pass"], check=True).returncode + n

    with pytest.warns(ImpurityWarning, match="starts the process"):
        run_true(1)


def test_arguments_changed_in_place(cache_dir: Path) -> None:
    @memoize(store=cache_dir)
    def grow(items: list[int]) -> int:
        items.append(0)
        return len(items)

    with pytest.warns(ImpurityWarning, match="changes its arguments in place"):
        grow([1, 2])


def test_rebinding_a_global(cache_dir: Path) -> None:
    @memoize(store=cache_dir)
    def bump(n: int) -> int:
        global COUNTER
        COUNTER += n
        return COUNTER

    with pytest.warns(ImpurityWarning, match="rebinds the global.s. COUNTER"):
        bump(1)


def test_global_random_generator(cache_dir: Path) -> None:
    name = "ran" + "dom"  # reached at run time only: the static scan cannot resolve it

    @memoize(store=cache_dir)
    def noisy(n: int) -> float:
        return float(getattr(random, name)()) + n

    with pytest.warns(ImpurityWarning, match="global random generator"):
        noisy(1)


def test_pure_work_declared_files_imports_and_store_reads_are_quiet(
    cache_dir: Path, tmp_path: Path, audited: None
) -> None:
    (tmp_path / "purity_helper_mod.py").write_text("def triple(x):\n    return 3 * x\n")
    sys.path.insert(0, str(tmp_path))
    try:

        @memoize(store=cache_dir)
        def inner(x: int) -> int:
            return x + 1

        @memoize(store=cache_dir)
        def outer(x: int) -> int:
            helper: Any = importlib.import_module("purity_helper_mod")  # opens a .py: quiet
            return int(helper.triple(inner(x)))

        @memoize(store=cache_dir)
        def doubled(infile: FileContents) -> FileContents:
            out = infile + ".doubled"
            numbers = [int(n) * 2 for n in Path(infile).read_text().split()]
            Path(out).write_text(" ".join(map(str, numbers)))
            return out

        source = FileContents(tmp_path / "in.txt")
        Path(source).write_text("1 2")
        inner(1)
        inner.group.flush()
        inner.group.engine.clear(CachingLevel.MEMORY)  # inner's value is read from the store
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            assert outer(1) == 6
            assert Path(doubled(source)).read_text() == "2 4"
    finally:
        sys.path.remove(str(tmp_path))
        sys.modules.pop("purity_helper_mod", None)


def test_assume_pure_turns_the_watch_off(cache_dir: Path, audited: None) -> None:
    @memoize(store=cache_dir, assume_pure=True)
    def grow(items: list[int]) -> int:
        items.append(0)
        subprocess.run([sys.executable, "-c", "pass"], check=True)
        return len(items)

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert grow([1]) == 2


async def test_async_bodies_are_watched(cache_dir: Path) -> None:
    @memoize(store=cache_dir)
    async def grow(items: list[int]) -> int:
        items.append(0)
        return len(items)

    with pytest.warns(ImpurityWarning, match="changes its arguments in place"):
        assert await grow([1]) == 2


async def test_the_warning_names_reckons_memoize_module_for_filters(cache_dir: Path) -> None:
    """The warning is attributed to reckon.memo.memoize, sync and async alike, so a filter such
    as ``ignore::reckon.errors.ImpurityWarning:reckon.memo.memoize`` silences exactly it."""

    @memoize(store=cache_dir)
    def grow(items: list[int]) -> int:
        items.append(0)
        return len(items)

    @memoize(store=cache_dir)
    async def agrow(items: list[int]) -> int:
        items.append(0)
        return len(items)

    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        grow([1])
        await agrow([1])
    impure = [w for w in record if issubclass(w.category, ImpurityWarning)]
    assert len(impure) == 2
    assert {Path(w.filename).name for w in impure} == {"memoize.py"}
    assert {Path(w.filename).parent.name for w in impure} == {"memo"}
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        warnings.filterwarnings("ignore", category=ImpurityWarning, module="reckon.memo.memoize")

        @memoize(store=cache_dir)
        def grow_again(items: list[int]) -> int:
            items.append(0)
            return len(items)

        grow_again([2])
    assert not _impurity_messages(record)


def test_a_ttl_bucket_moving_during_the_call_is_not_a_mutation(
    cache_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import types

    from reckon import TTL

    now = [1000.0]
    monkeypatch.setattr(
        sys.modules["reckon.memo.helpers"], "time", types.SimpleNamespace(time=lambda: now[0])
    )

    @memoize(store=cache_dir)
    def fetch(items: list[int], fresh: TTL) -> int:
        now[0] += 60  # the call spans a bucket boundary
        return len(items)

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert fetch([1, 2], TTL(30)) == 2
