"""Writes that tell the truth, on a real full disk: a small tmpfs mounted by the test (root).

A put that returns normally in sync mode is stored (never lost); one that cannot be stored raises
StoreError. In the background, one value that does not fit never takes the others of its batch
with it, flush() names what was not stored, and the engine counts it in store_errors.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from reckon.core import CachingLevel, Engine, LocalStore, RequestId
from reckon.errors import StoreError

pytestmark = pytest.mark.skipif(
    not hasattr(os, "geteuid") or os.geteuid() != 0, reason="mounting a tmpfs needs root"
)


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    mount = tmp_path / "disk"
    mount.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=20m", "tmpfs", str(mount)], capture_output=True
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.decode().strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def test_sync_puts_raise_when_not_stored_and_keep_what_they_acknowledged(
    small_disk: Path,
) -> None:
    store = LocalStore(small_disk / "cache", sync=True, budget=None)
    acknowledged: dict[str, bytes] = {}
    refused = 0
    for i in range(40):
        value = os.urandom(1 << 20)
        key = f"k{i}"
        try:
            store.put(key, value)
        except StoreError as exc:
            assert "not stored" in str(exc)
            refused += 1
        else:
            acknowledged[key] = value
    assert refused > 0, "a 20 MB disk cannot hold 40 MB"
    assert acknowledged, "the first values fit"
    assert store.unstored == refused
    store.close()
    again = LocalStore(small_disk / "cache", sync=True, budget=None)
    for key, value in acknowledged.items():
        assert bytes(again.get(key) or b"") == value, f"acknowledged {key} was lost"
    again.close()


def test_one_value_that_does_not_fit_never_takes_its_batch_with_it(small_disk: Path) -> None:
    store = LocalStore(small_disk / "cache", budget=None)
    small = {f"small{i}": os.urandom(2000) for i in range(100)}
    for key, value in list(small.items())[:50]:
        store.put(key, value)
    store.put("huge", os.urandom(30 << 20))  # larger than the disk
    for key, value in list(small.items())[50:]:
        store.put(key, value)
    assert store.flush() == ["huge"]
    assert store.flush() == [], "each failure is reported once"
    assert store.unstored == 1
    for key, value in small.items():
        assert store.get(key) == value, f"{key} went down with the value that did not fit"
    assert store.get("huge") is None
    store.close()


def test_the_engine_counts_background_failures(small_disk: Path) -> None:
    store = LocalStore(small_disk / "cache", budget=None)
    engine = Engine(store=store, memory_budget=0)
    for i in range(10):
        engine.get(RequestId("big", i), CachingLevel.FULL, lambda: os.urandom(5 << 20))
    failed = engine.flush()
    counters = engine.stats()["counters"]
    assert len(failed) >= 6, "at most 3 of ten 5 MB values fit in 20 MB"
    assert counters["store_errors"] == len(failed)
    engine.close()
    store.close()
