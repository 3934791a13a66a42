"""Helpers shared by the store tests: values derived from keys, child processes, invariants."""

from __future__ import annotations

import contextlib
import hashlib
import os
import signal
import sqlite3
import traceback
from collections.abc import Callable
from pathlib import Path

from reckon.core.stores import LocalStore


def value_for(key: str) -> bytes:
    """The one value a key is ever written with. Keys in one group of three share a value (so
    dedup is exercised); sizes span inline, file and memory-mapped values."""
    group = int(hashlib.sha256(key.encode()).hexdigest()[:8], 16) % 97
    seed = hashlib.sha256(f"group{group}".encode()).digest()
    kind = group % 3
    if kind == 0:
        size = 1 + group * 3
    elif kind == 1:
        size = 1_000 + group * 211
    else:
        size = 40_000 + group * 1_733
    return (seed * (size // len(seed) + 1))[:size]


def fork_child(body: Callable[[], None]) -> int:
    """Run ``body`` in a forked child that never returns into pytest. Exit code 0 on success,
    1 (with the traceback on stderr) on an exception."""
    pid = os.fork()
    if pid == 0:  # pragma: no cover - child
        code = 0
        try:
            body()
        except BaseException:
            traceback.print_exc()
            code = 1
        finally:
            os._exit(code)
    return pid


def wait_exit(pid: int) -> int:
    _, status = os.waitpid(pid, 0)
    if os.WIFSIGNALED(status):
        return -os.WTERMSIG(status)
    return os.WEXITSTATUS(status)


def kill9(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)


def check_index_invariants(path: Path) -> None:
    """The totals kept by triggers equal the totals recomputed from the rows, and every object
    row has its file."""
    conn = sqlite3.connect(path / "index.sqlite3")
    try:
        entries, nbytes = conn.execute("SELECT entries, bytes FROM stats").fetchone()
        count = conn.execute("SELECT count(*) FROM entries").fetchone()[0]
        inline = conn.execute(
            "SELECT coalesce(sum(size), 0) FROM entries WHERE digest IS NULL"
        ).fetchone()[0]
        files = conn.execute("SELECT coalesce(sum(size), 0) FROM objects").fetchone()[0]
        assert (entries, nbytes) == (count, inline + files)
        refs = dict(
            conn.execute(
                "SELECT digest, count(*) FROM entries WHERE digest IS NOT NULL GROUP BY digest"
            ).fetchall()
        )
        objects = {d: r for d, r in conn.execute("SELECT digest, refs FROM objects")}
        assert refs == objects
        for digest in objects:
            assert (path / "objects" / digest[:2] / digest[2:]).exists(), digest
    finally:
        conn.close()


def check_values(store: LocalStore) -> int:
    """Every readable value equals the value of its key; returns how many were readable."""
    readable = 0
    for key in list(store.keys()):
        got = store.get(key)
        if got is not None:
            assert bytes(got) == value_for(key), key
            readable += 1
    return readable
