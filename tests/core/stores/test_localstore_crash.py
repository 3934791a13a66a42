"""Crash safety: writers killed with SIGKILL at random moments never leave a wrong value behind.

Each round forks a writer (sync or background mode, small budget so eviction and garbage
collection run too) and kills it at a random moment, sometimes while it opens (or rebuilds) the
store. Afterwards the store must open, every readable value must equal the value its key is
always written with, and the totals and reference counts kept by the index must match its rows.
"""

from __future__ import annotations

import os
import random
import time
from pathlib import Path

from _store_helpers import (
    check_index_invariants,
    check_values,
    fork_child,
    kill9,
    value_for,
    wait_exit,
)

from reckon.core.stores import LocalStore

ROUNDS = 50


def _writer(path: Path, seed: int, ready_w: int) -> None:
    rng = random.Random(seed)
    store = LocalStore(
        path,
        budget=600_000,
        inline_threshold=256,
        sync=seed % 2 == 0,
        policy="lru" if seed % 3 else "gds",
        queue_bytes=2 << 20,
    )
    os.write(ready_w, b"r")
    while True:
        key = f"k{rng.randrange(240)}"
        r = rng.random()
        if r < 0.65:
            store.put(key, value_for(key), cost=rng.random())
        elif r < 0.8:
            store.delete(key)
        elif r < 0.97:
            got = store.get(key)
            if got is not None and bytes(got) != value_for(key):
                os._exit(3)
        else:
            store.flush()


def test_sigkill_at_random_moments_never_leaves_a_wrong_value(tmp_path: Path) -> None:
    path = tmp_path / "store"
    rng = random.Random(1234)
    readable_after = []
    for round_ in range(ROUNDS):
        if round_ % 7 == 3:  # the writer will have to rebuild the index first (and may die)
            for suffix in ("-wal", "-shm", ""):
                (path / f"index.sqlite3{suffix}").unlink(missing_ok=True)
            (path / "index.sqlite3").write_bytes(os.urandom(4096))
        ready_r, ready_w = os.pipe()
        pid = fork_child(lambda r=round_, w=ready_w: _writer(path, r, w))
        os.close(ready_w)
        if rng.random() < 0.2:
            time.sleep(rng.uniform(0, 0.01))  # possibly while it opens the store
        else:
            assert os.read(ready_r, 1) == b"r"
            time.sleep(rng.uniform(0.002, 0.06))
        kill9(pid)
        status = wait_exit(pid)
        os.close(ready_r)
        assert status in (-9, 0), f"round {round_}: writer exited with {status}"
        store = LocalStore(path, sync=True, budget=600_000)
        readable_after.append(check_values(store))
        store.close()
        check_index_invariants(path)
    assert max(readable_after) > 0  # the writers did get values in
    # The store still works normally after all that.
    store = LocalStore(path, sync=True)
    store.put("after", value_for("after"))
    assert store.get("after") == value_for("after")
    store.close()
    store = LocalStore(path)
    store.put("x", b"x" * 5000)  # the first write of a process removes dead writers' temp files
    store.close()
    assert os.listdir(path / "objects" / "tmp") == []


def test_orphaned_object_files_are_swept(tmp_path: Path) -> None:
    from reckon.core.stores import _objects

    store = LocalStore(tmp_path, sync=True)
    store.put("kept", b"k" * 10_000)
    store.close()
    objects = str(tmp_path / "objects")
    data = b"orphan" * 2_000  # as if its writer died between placing the file and committing
    digest = _objects.content_digest(data)
    orphan = _objects.object_path(objects, digest.hex())
    _objects.place(_objects.write_temp(objects, "lost", data, digest, b"", False), orphan, False)
    (tmp_path / "objects" / "ab").mkdir(exist_ok=True)
    stranger = tmp_path / "objects" / "ab" / "not-an-object"
    stranger.write_bytes(b"?")
    two_hours_ago = time.time() - 7200
    for f in (*Path(objects).glob("??/*"), tmp_path / "swept"):
        if f.exists():
            os.utime(f, (two_hours_ago, two_hours_ago))
    os.utime(tmp_path / "swept", (0, 0))  # the last sweep was long ago
    store = LocalStore(tmp_path, sync=True)
    store.put("trigger", b"t")  # the first write of a process does the housekeeping
    assert not os.path.exists(orphan)
    assert stranger.exists()
    assert bytes(store.get("kept") or b"") == b"k" * 10_000
    store.close()
