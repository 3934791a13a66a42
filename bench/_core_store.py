"""Store benchmarks: reckon's LocalStore beside diskcache.Cache, same machine, same run.

``store_rows()`` returns ``(row, reckon us/op, diskcache us/op)``; ``bench/core.py`` prints them
with the rest of the core's figures, and running this file prints them alone. Each figure is the
best of a few repetitions (as timeit does), so one busy moment on a shared machine does not
decide it.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable

N_SMALL = 2_000
SMALL = [os.urandom(16) * (4 + i % 8) for i in range(N_SMALL)]  # 64..176 bytes, all distinct
KEYS = [f"{i:064x}" for i in range(N_SMALL)]
BIG_SIZE = 100 << 20
REPEATS = 5  # the machine is shared: each figure is the best of REPEATS runs

_HIT_CHILD = r"""
import sys, time
kind, path, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
keys = [f"{i:064x}" for i in range(n)]
if kind == "reckon":
    from reckon.core.stores import LocalStore
    store = LocalStore(path)
    get = store.get
else:
    import diskcache
    store = diskcache.Cache(path)
    get = store.get
t, c = time.perf_counter(), time.process_time()
for k in keys:
    if get(k) is None:
        raise SystemExit("miss on " + k)
wall, cpu = time.perf_counter() - t, time.process_time() - c
print(wall / n * 1e6, cpu / n * 1e6)
"""


def _best(fn: Callable[[], float]) -> float:
    return min(fn() for _ in range(REPEATS))


def _reckon_store(path: str, sync: bool = False):  # type: ignore[no-untyped-def]
    from reckon.core.stores import LocalStore

    return LocalStore(path, sync=sync)


def _diskcache(path: str):  # type: ignore[no-untyped-def]
    import diskcache

    return diskcache.Cache(path)


def _put_small(kind: str, sync: bool = False) -> float:
    with tempfile.TemporaryDirectory() as d:
        store = _reckon_store(d, sync) if kind == "reckon" else _diskcache(d)
        put = store.put if kind == "reckon" else store.set
        t = time.perf_counter()
        for k, v in zip(KEYS, SMALL, strict=True):
            put(k, v)
        if kind == "reckon":
            store.flush()  # the figure includes getting everything to disk
        elapsed = time.perf_counter() - t
        store.close()
    return elapsed / N_SMALL * 1e6


def _hit_fresh_process(kind: str) -> tuple[float, float]:
    d = tempfile.mkdtemp()
    try:
        store = _reckon_store(d) if kind == "reckon" else _diskcache(d)
        put = store.put if kind == "reckon" else store.set
        for k, v in zip(KEYS, SMALL, strict=True):
            put(k, v)
        store.close()
        out = subprocess.run(
            [sys.executable, "-c", _HIT_CHILD, kind, d, str(N_SMALL)],
            check=True,
            capture_output=True,
            text=True,
        ).stdout
        wall, cpu = out.split()
        return float(wall), float(cpu)
    finally:
        shutil.rmtree(d, ignore_errors=True)


def _big(kind: str) -> tuple[float, float]:
    value = os.urandom(BIG_SIZE)
    with tempfile.TemporaryDirectory() as d:
        store = _reckon_store(d) if kind == "reckon" else _diskcache(d)
        t = time.perf_counter()
        if kind == "reckon":
            store.put("big", value)
            store.flush()
        else:
            store.set("big", value)
        put = time.perf_counter() - t
        t = time.perf_counter()
        got = store.get("big")
        n = len(got)
        get = time.perf_counter() - t
        assert n == BIG_SIZE
        del got
        store.close()
    return put * 1e6, get * 1e6


def _raw_file() -> tuple[float, float]:
    value = os.urandom(BIG_SIZE)
    with tempfile.TemporaryDirectory() as d:
        p = os.path.join(d, "raw")
        t = time.perf_counter()
        with open(p, "wb") as f:
            f.write(value)
        put = time.perf_counter() - t
        t = time.perf_counter()
        with open(p, "rb") as f:
            n = len(f.read())
        get = time.perf_counter() - t
        assert n == BIG_SIZE
    return put * 1e6, get * 1e6


def store_rows() -> list[tuple[str, float, float]]:
    hits_r, hits_d = [], []
    for _ in range(REPEATS):  # interleaved, so both see the same machine
        hits_r.append(_hit_fresh_process("reckon"))
        hits_d.append(_hit_fresh_process("diskcache"))
    rows = [
        (
            f"store hit, fresh process ({N_SMALL:,} small values)",
            min(w for w, _ in hits_r),
            min(w for w, _ in hits_d),
        ),
        (
            "  the same, process CPU time (steadier when busy)",
            min(c for _, c in hits_r),
            min(c for _, c in hits_d),
        ),
        (
            f"store put, small values (x{N_SMALL:,}, flushed)",
            _best(lambda: _put_small("reckon")),
            _best(lambda: _put_small("diskcache")),
        ),
        (
            "  the same, sync=True (one transaction per put)",
            _best(lambda: _put_small("reckon", sync=True)),
            _best(lambda: _put_small("diskcache")),
        ),
    ]
    big_r = [_big("reckon") for _ in range(REPEATS)]
    big_d = [_big("diskcache") for _ in range(REPEATS)]
    rows.append(("store put, 100 MB value", min(p for p, _ in big_r), min(p for p, _ in big_d)))
    rows.append(("store get, 100 MB value", min(g for _, g in big_r), min(g for _, g in big_d)))
    return rows


def main() -> None:
    rows = store_rows()
    raw = [_raw_file() for _ in range(REPEATS)]
    print(f"{'':48} {'reckon us/op':>14} {'diskcache us/op':>16} {'ratio':>7}")
    for name, ours, theirs in rows:
        print(f"{name:48} {ours:14.2f} {theirs:16.2f} {ours / theirs:7.2f}x")
    print(
        f"{'raw file write / read, 100 MB (reference)':48} "
        f"{min(p for p, _ in raw):14.0f} {min(g for _, g in raw):16.0f}"
    )
    print(
        "ratio < 1: reckon is faster. 100 MB get: reckon maps the file and verifies its checksum; "
        "diskcache reads it into bytes."
    )


if __name__ == "__main__":
    main()
