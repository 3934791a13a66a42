"""Where the cache lives and when its writes reach the disk: ``commit()``, crashes (kill -9 of
real processes), uncaught exceptions, ``$RECKON_CACHE_DIR`` and the per-user default directory."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

from memo_support import child_env

from reckon.core import LocalStore
from reckon.memo.entries import read_rows

MODULE = """
from reckon import memoize
from reckon.memo import commit

@memoize(name="durable.f")
def f(x):
    print("RAN", x)
    return x * 2
"""


def _write_module(where: Path) -> Path:
    (where / "durable_mod.py").write_text(MODULE)
    return where


def _index_rows(cache: Path) -> list[tuple[str, str]]:
    """(function, arguments) of the memo entries the store in ``cache`` describes."""
    store = LocalStore(cache, budget=None, sync=True)
    try:
        rows, _unknown = read_rows(store)
    finally:
        store.close()
    return sorted((row.function, row.args) for row in rows)


def test_commit_survives_kill_9(tmp_path: Path, run_py: Any) -> None:
    cache = tmp_path / "cache"
    mod = _write_module(tmp_path)
    env = {"RECKON_CACHE_DIR": str(cache)}
    proc = run_py(
        """
        import os, signal
        from durable_mod import f, commit
        f(21)
        commit()
        print("COMMITTED", flush=True)
        os.kill(os.getpid(), signal.SIGKILL)
        """,
        env=env,
        pythonpath=[mod],
        check=False,
    )
    assert proc.returncode == -signal.SIGKILL and "COMMITTED" in proc.stdout
    again = run_py("from durable_mod import f\nprint('VALUE', f(21))", env=env, pythonpath=[mod])
    assert "RAN" not in again.stdout and "VALUE 42" in again.stdout
    assert _index_rows(cache) == [("durable.f", "21")]


def test_uncaught_exception_still_persists(tmp_path: Path, run_py: Any) -> None:
    cache = tmp_path / "cache"
    mod = _write_module(tmp_path)
    env = {"RECKON_CACHE_DIR": str(cache)}
    proc = run_py(
        "from durable_mod import f\nf(5)\nraise RuntimeError('boom')",
        env=env,
        pythonpath=[mod],
        check=False,
    )
    assert proc.returncode == 1 and "boom" in proc.stderr
    again = run_py("from durable_mod import f\nprint('VALUE', f(5))", env=env, pythonpath=[mod])
    assert "RAN" not in again.stdout and "VALUE 10" in again.stdout
    assert _index_rows(cache) == [("durable.f", "5")]


def test_entries_reach_the_disk_while_the_process_runs(tmp_path: Path, run_py: Any) -> None:
    """Fine-grained persistence: each entry is written as it is computed (in the background),
    not at exit, so a second process sees it while the first is still running."""
    cache = tmp_path / "cache"
    mod = _write_module(tmp_path)
    env = child_env({"RECKON_CACHE_DIR": str(cache)}, [mod])
    code = (
        "import sys\nfrom durable_mod import f\nf(7)\nprint('DONE', flush=True)\nsys.stdin.read()"
    )
    holder = subprocess.Popen(
        [sys.executable, "-c", code],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        assert holder.stdout is not None
        lines = [holder.stdout.readline() for _ in range(2)]  # "RAN 7", then "DONE"
        assert "DONE" in lines[-1], lines
        probe = textwrap.dedent(
            """
            import time
            from durable_mod import f
            deadline = time.monotonic() + 30
            while not f.would_hit(7) and time.monotonic() < deadline:
                time.sleep(0.05)
            print("HIT" if f.would_hit(7) else "MISS")
            """
        )
        out = run_py(probe, env={"RECKON_CACHE_DIR": str(cache)}, pythonpath=[mod]).stdout
        assert "HIT" in out
        assert holder.poll() is None, "the first process is still running"
    finally:
        holder.kill()
        holder.wait(timeout=30)


def test_cache_dir_from_the_environment(tmp_path: Path, run_py: Any) -> None:
    mod = _write_module(tmp_path)
    first, second = tmp_path / "first", tmp_path / "second"

    def ran(where: Path) -> bool:
        out = run_py(
            "from durable_mod import f\nf(3)",
            env={"RECKON_CACHE_DIR": str(where)},
            pythonpath=[mod],
        ).stdout
        return "RAN 3" in out

    assert ran(first)
    assert not ran(first)
    assert ran(second)
    assert _index_rows(first) == _index_rows(second) == [("durable.f", "3")]


def test_default_cache_is_per_user_not_per_working_directory(tmp_path: Path, run_py: Any) -> None:
    """Without $RECKON_CACHE_DIR the cache is system-wide for the user (~/.cache/reckon, or
    $XDG_CACHE_HOME/reckon): the same from any working directory."""
    mod = _write_module(tmp_path)
    xdg = tmp_path / "xdg"
    env = {"XDG_CACHE_HOME": str(xdg), "RECKON_CACHE_DIR": ""}
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir()
    b.mkdir()
    call = "from durable_mod import f\nf(4)"
    assert "RAN 4" in run_py(call, env=env, pythonpath=[mod], cwd=a).stdout
    assert "RAN 4" not in run_py(call, env=env, pythonpath=[mod], cwd=b).stdout
    assert _index_rows(xdg / "reckon") == [("durable.f", "4")]
    assert not any(p.name == "index.sqlite3" for p in a.rglob("*"))
    assert os.listdir(b) == []


def test_commit_in_process_makes_the_index_current(cache_dir: Path) -> None:
    from reckon import memoize
    from reckon.memo import commit

    @memoize(store=cache_dir, name="durable.inproc")
    def g(x: int) -> int:
        return x

    g(1)
    commit()
    started = time.monotonic()
    assert _index_rows(cache_dir) == [("durable.inproc", "1")]
    assert time.monotonic() - started < 30
