"""LocalStore basics: the Store protocol, inline and file values, dedup, modes, bad paths."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from reckon.core.stores import LocalStore, Store, StoreUsage
from reckon.errors import StoreError


@pytest.fixture(params=[True, False], ids=["sync", "background"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> LocalStore:
    s = LocalStore(tmp_path / "store", sync=request.param, inline_threshold=64)
    yield s
    s.close()


def test_is_a_store(store: LocalStore) -> None:
    assert isinstance(store, Store)


def test_roundtrip_inline_file_and_mmap(store: LocalStore, tmp_path: Path) -> None:
    small, medium, large = b"s" * 10, os.urandom(10_000), os.urandom(2 << 20)
    store.put("small", small)
    store.put("medium", memoryview(medium))
    store.put("large", large)
    for _ in range(2):  # queued (read-your-writes), then committed
        assert store.get("small") == small
        assert bytes(store.get("medium")) == medium
        assert bytes(store.get("large")) == large
        store.flush()
    assert isinstance(store.get("small"), bytes)
    assert isinstance(store.get("large"), memoryview)
    assert store.get("missing") is None
    assert sorted(store.keys()) == ["large", "medium", "small"]
    assert store.contains("small") and not store.contains("missing")
    store.close()
    again = LocalStore(tmp_path / "store", sync=True)
    assert bytes(again.get("large")) == large
    again.close()


def test_overwrite_and_delete(store: LocalStore) -> None:
    store.put("k", b"one" * 100)
    store.put("k", b"two")
    assert store.get("k") == b"two"
    assert store.delete("k") is True
    assert store.get("k") is None
    assert store.delete("k") is False
    store.flush()
    assert store.get("k") is None
    assert store.usage() == StoreUsage(0, 0, store.budget)


def test_equal_values_are_stored_once(store: LocalStore, tmp_path: Path) -> None:
    value = os.urandom(50_000)
    for i in range(5):
        store.put(f"key{i}", value)
    store.flush()
    usage = store.usage()
    assert usage.entries == 5
    assert usage.bytes == len(value)
    objects = [
        f
        for d in (tmp_path / "store" / "objects").iterdir()
        if d.name != "tmp"
        for f in d.iterdir()
    ]
    assert len(objects) == 1
    for i in range(4):
        store.delete(f"key{i}")
    store.flush()
    assert bytes(store.get("key4")) == value
    assert (
        len(
            [
                f
                for d in (tmp_path / "store" / "objects").iterdir()
                if d.name != "tmp"
                for f in d.iterdir()
            ]
        )
        == 1
    )
    store.delete("key4")
    store.flush()
    assert [
        f
        for d in (tmp_path / "store" / "objects").iterdir()
        if d.name != "tmp"
        for f in d.iterdir()
    ] == []
    assert store.usage().bytes == 0


def test_usage_counts_inline_and_file_bytes(store: LocalStore) -> None:
    store.put("a", b"x" * 10)
    store.put("b", b"y" * 1000)
    store.flush()
    assert store.usage() == StoreUsage(2, 1010, store.budget)


def test_bad_path_is_a_store_error(tmp_path: Path) -> None:
    afile = tmp_path / "file"
    afile.write_text("not a directory")
    with pytest.raises(StoreError, match="not a directory"):
        LocalStore(afile)
    with pytest.raises(StoreError, match="RECKON_CACHE_DIR"):
        LocalStore(afile / "below")


def test_bad_arguments(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match="policy"):
        LocalStore(tmp_path, policy="fifo")  # type: ignore[arg-type]
    s = LocalStore(tmp_path, sync=True)
    with pytest.raises(StoreError, match="bytes"):
        s.put("k", "text")  # type: ignore[arg-type]
    with pytest.raises(StoreError, match="non-empty"):
        s.put("", b"x")
    s.close()
    with pytest.raises(StoreError, match="closed"):
        s.get("k")


def test_default_directory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RECKON_CACHE_DIR", str(tmp_path / "env"))
    s = LocalStore(sync=True)
    assert s.path == str(tmp_path / "env")
    s.close()
    monkeypatch.delenv("RECKON_CACHE_DIR")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    s = LocalStore(sync=True)
    assert s.path == str(tmp_path / "xdg" / "reckon")
    s.close()
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    s = LocalStore(sync=True)
    assert s.path == str(tmp_path / "home" / ".cache" / "reckon")
    s.close()


def test_numpy_buffer_put(store: LocalStore) -> None:
    arr = np.arange(100_000, dtype=np.float64).reshape(100, 1000)
    store.put("arr", memoryview(arr))
    store.flush()
    got = store.get("arr")
    assert got is not None
    assert np.array_equal(np.frombuffer(got, dtype=np.float64).reshape(100, 1000), arr)


def test_long_keys(tmp_path: Path) -> None:
    s = LocalStore(tmp_path, sync=True, mmap_threshold=50_000)
    long_key = "k" * 10_000  # a header much larger than a page
    s.put(long_key, b"v" * 10_000)
    s.put(long_key + "m", b"m" * 60_000)
    assert s.get(long_key) == b"v" * 10_000
    assert bytes(s.get(long_key + "m") or b"") == b"m" * 60_000
    with pytest.raises(StoreError, match="too long"):
        s.put("k" * 20_000, b"v")
    s.close()


def test_fsync_mode_works(tmp_path: Path) -> None:
    s = LocalStore(tmp_path, sync=True, fsync=True)
    s.put("small", b"s")
    s.put("big", b"b" * 100_000)
    assert s.get("small") == b"s"
    assert s.get("big") == b"b" * 100_000
    s.close()


def test_odd_buffers(store: LocalStore) -> None:
    strided = memoryview(bytes(range(200)))[::2]
    store.put("strided", strided)
    store.put("signed", memoryview(bytearray(b"abc")).cast("b"))
    arr = np.arange(24, dtype=np.int32).reshape(2, 3, 4)
    store.put("fortran", memoryview(np.asfortranarray(arr)))
    store.flush()
    assert bytes(store.get("strided") or b"") == bytes(range(0, 200, 2))
    assert bytes(store.get("signed") or b"") == b"abc"
    assert bytes(store.get("fortran") or b"") == arr.tobytes()  # what bytes(view) gives


def test_put_takes_pieces_of_one_value(store: LocalStore, tmp_path: Path) -> None:
    """A list or tuple of buffers is one value (their concatenation): small ones are joined
    inline, large ones written piece by piece into one object file, equal values shared."""
    arr = np.arange(50_000, dtype=np.int32)
    big = [b"head", memoryview(arr), b"", bytearray(b"tail")]
    big_bytes = b"head" + arr.tobytes() + b"tail"
    small = (b"a", memoryview(b"bc"), bytearray(b"d"))
    many = [bytes([i % 256]) * 3 for i in range(1_500)]  # more pieces than one writev takes
    store.put("big", big)
    store.put("small", small)
    store.put("many", many)
    store.put("one", [b"x" * 100])
    store.put("same", big_bytes)  # the same bytes given whole: one object file for both
    for _ in range(2):  # queued (read-your-writes), then committed
        assert bytes(store.get("big") or b"") == big_bytes
        assert store.get("small") == b"abcd"
        assert bytes(store.get("many") or b"") == b"".join(many)
        assert bytes(store.get("one") or b"") == b"x" * 100
        store.flush()
    usage = store.usage()
    assert usage.entries == 5
    assert usage.bytes == len(big_bytes) + 4 + 4_500 + 100  # shared bytes count once
    root = tmp_path / "store" / "objects"
    objects = [f for f in root.rglob("*") if f.is_file() and f.relative_to(root).parts[0] != "tmp"]
    assert len(objects) == 3  # big/same shared, many, one (small is inline)
    with pytest.raises(StoreError):
        store.put("bad", [b"ok", 3])  # type: ignore[list-item]
    store.close()
    again = LocalStore(tmp_path / "store", sync=True)
    assert bytes(again.get("big") or b"") == big_bytes
    again.close()


def test_large_values_are_hashed_while_written(store: LocalStore, tmp_path: Path) -> None:
    """Values of 8 MiB and more take the one-pass path (hash each chunk as it is written, the
    header last); whole or in pieces, equal values still share one file, no temp file stays."""
    arr = np.random.default_rng(1).random((9 << 20) // 8)
    whole = arr.tobytes()
    store.put("pieces", [b"h" * 100, memoryview(arr), b"t"])
    store.put("whole", b"h" * 100 + whole + b"t")
    store.put("again", (b"h" * 100, whole, b"t"))
    store.flush()
    expected = b"h" * 100 + whole + b"t"
    for key in ("pieces", "whole", "again"):
        got = store.get(key)
        assert got is not None and len(got) == len(expected) and bytes(got) == expected
    root = tmp_path / "store" / "objects"
    files = [f for f in root.rglob("*") if f.is_file()]
    assert len(files) == 1 and files[0].relative_to(root).parts[0] != "tmp"
    assert store.usage().bytes == len(expected)
    store.close()
    again = LocalStore(tmp_path / "store", sync=True)
    assert bytes(again.get("pieces") or b"") == expected
    again.close()
