"""Helpers shared by the store tests: values derived from keys, child processes, invariants."""

from __future__ import annotations

import hashlib
import sqlite3
from pathlib import Path

from _forking import fork_child, kill9, wait_exit

from reckon.core.stores import LocalStore

__all__ = [
    "check_index_invariants",
    "check_values",
    "fork_child",
    "kill9",
    "value_for",
    "wait_exit",
]


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
