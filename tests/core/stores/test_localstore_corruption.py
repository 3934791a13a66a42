"""Corruption: flipped bytes, truncated or deleted object files, damaged inline rows and a garbage
or incompatible index are misses (logged), never exceptions, and the store keeps working."""

from __future__ import annotations

import logging
import os
import sqlite3
import time
from pathlib import Path

import pytest
from _store_helpers import check_index_invariants

from reckon.core.stores import LocalStore
from reckon.core.stores._index import SCHEMA_VERSION

BIG = bytes(range(256)) * 40  # 10,240 bytes: an object file
HUGE = os.urandom(3 << 20)  # memory-mapped on read


def _object_file(path: Path) -> Path:
    files = [f for d in (path / "objects").iterdir() if d.name != "tmp" for f in d.iterdir()]
    assert len(files) == 1
    return files[0]


@pytest.fixture
def store(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> LocalStore:
    caplog.set_level(logging.WARNING, logger="reckon.core.store")
    s = LocalStore(tmp_path / "s", sync=True)
    yield s
    s.close()


def _flip(f: Path, offset: int) -> None:
    data = bytearray(f.read_bytes())
    data[offset] ^= 0x40
    f.write_bytes(bytes(data))


@pytest.mark.parametrize("value", [BIG, HUGE], ids=["read", "mmap"])
@pytest.mark.parametrize("where", ["data", "header", "key-in-header", "last-byte"])
def test_flipped_byte_is_a_logged_miss(
    store: LocalStore, value: bytes, where: str, caplog: pytest.LogCaptureFixture
) -> None:
    store.put("k", value)
    store.put("other", b"fine")
    f = _object_file(Path(store.path))
    offset = {"data": 200, "header": 12, "key-in-header": 50, "last-byte": f.stat().st_size - 1}
    _flip(f, offset[where])
    assert store.get("k") is None
    assert "dropped" in caplog.text
    assert not store.contains("k")
    assert store.get("other") == b"fine"
    assert not f.exists()  # the bad file went with its last entry
    store.put("k", value)  # and the store heals on the next put
    assert bytes(store.get("k") or b"") == value
    check_index_invariants(Path(store.path))


@pytest.mark.parametrize("keep", [0, 10, 100, 5000])
def test_truncated_object_file_is_a_miss(store: LocalStore, keep: int) -> None:
    store.put("k", BIG)
    f = _object_file(Path(store.path))
    with open(f, "r+b") as fh:
        fh.truncate(keep)
    assert store.get("k") is None
    assert not store.contains("k")
    check_index_invariants(Path(store.path))


def test_extended_object_file_is_a_miss(store: LocalStore) -> None:
    store.put("k", BIG)
    with open(_object_file(Path(store.path)), "ab") as fh:
        fh.write(b"tail")
    assert store.get("k") is None


def test_deleted_object_file_drops_every_key_sharing_it(
    store: LocalStore, caplog: pytest.LogCaptureFixture
) -> None:
    store.put("a", BIG)
    store.put("b", BIG)
    _object_file(Path(store.path)).unlink()
    assert store.get("a") is None
    assert "object file missing" in caplog.text
    assert not store.contains("b")
    assert store.usage().entries == 0
    store.put("b", BIG)
    assert store.get("b") == BIG
    check_index_invariants(Path(store.path))


def test_object_file_replaced_by_another_value(store: LocalStore) -> None:
    store.put("a", BIG)
    store.put("b", BIG[::-1])
    files = [
        f for d in (Path(store.path) / "objects").iterdir() if d.name != "tmp" for f in d.iterdir()
    ]
    first, second = files
    first.write_bytes(second.read_bytes())  # a well-formed file, but not the one named
    got = {k: store.get(k) for k in ("a", "b")}
    assert [k for k, v in got.items() if v is not None] in (["a"], ["b"])
    for k, v in got.items():
        if v is not None:
            assert bytes(v) == (BIG if k == "a" else BIG[::-1])


def test_damaged_inline_row_is_a_miss(store: LocalStore, caplog: pytest.LogCaptureFixture) -> None:
    store.put("k", b"hello world")
    conn = sqlite3.connect(Path(store.path) / "index.sqlite3")
    conn.execute("UPDATE entries SET value = ? WHERE key = 'k'", (b"hellO world",))
    conn.commit()
    conn.close()
    assert store.get("k") is None
    assert "failed authentication" in caplog.text
    assert not store.contains("k")
    check_index_invariants(Path(store.path))


def _garbage_index(path: Path) -> None:
    for suffix in ("", "-wal", "-shm"):
        (path / f"index.sqlite3{suffix}").unlink(missing_ok=True)
    (path / "index.sqlite3").write_bytes(os.urandom(8192))


def test_garbage_index_is_rebuilt_from_object_files(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "s"
    s = LocalStore(path)
    s.put("small", b"inline values live only in the index")
    s.put("big", BIG)
    s.put("huge", HUGE)
    s.close()
    _garbage_index(path)
    s = LocalStore(path)
    assert "rebuilt" in caplog.text
    assert s.get("small") is None  # lost with the index: a miss
    assert s.get("big") == BIG  # recovered from its object file
    assert bytes(s.get("huge") or b"") == HUGE
    assert any(p.name.startswith("index.sqlite3.bad-") for p in path.iterdir())
    s.put("small", b"again")
    s.flush()
    assert s.get("small") == b"again"
    assert s.usage().entries == 3
    s.close()
    check_index_invariants(path)


def test_deleted_index_is_recovered_from_object_files(tmp_path: Path) -> None:
    path = tmp_path / "s"
    s = LocalStore(path, sync=True)
    s.put("big", BIG)
    s.put("small", b"x")
    s.close()
    for suffix in ("", "-wal", "-shm"):
        (path / f"index.sqlite3{suffix}").unlink(missing_ok=True)
    s = LocalStore(path, sync=True)
    assert s.get("big") == BIG
    assert s.get("small") is None
    s.close()
    check_index_invariants(path)


def test_index_with_another_schema_version_is_rebuilt(tmp_path: Path) -> None:
    path = tmp_path / "s"
    s = LocalStore(path, sync=True)
    s.put("big", BIG)
    s.close()
    conn = sqlite3.connect(path / "index.sqlite3")
    conn.execute("PRAGMA user_version = 99")
    conn.close()
    s = LocalStore(path, sync=True)
    assert s.get("big") == BIG
    s.close()
    conn = sqlite3.connect(path / "index.sqlite3")
    assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    conn.close()


def test_index_of_another_program_is_moved_aside(tmp_path: Path) -> None:
    path = tmp_path / "s"
    path.mkdir()
    conn = sqlite3.connect(path / "index.sqlite3")
    conn.execute("CREATE TABLE foreign_thing (x)")
    conn.commit()
    conn.close()
    s = LocalStore(path, sync=True)
    s.put("k", b"v")
    assert s.get("k") == b"v"
    s.close()


def test_index_destroyed_while_open(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "s"
    s = LocalStore(path, sync=True)
    s.put("big", BIG)
    s.put("small", b"x")
    s.close()
    s = LocalStore(path, sync=True)
    assert s.get("small") == b"x"
    with open(path / "index.sqlite3", "r+b") as fh:  # same inode, contents destroyed
        fh.write(os.urandom(8192))
    for _ in range(3):  # whatever comes back is right or a miss, and nothing raises
        for key, value in (("big", BIG), ("small", b"x")):
            got = s.get(key)
            assert got is None or bytes(got) == value
        s.contains("big")
        list(s.keys())
        s.usage()
    s.put("new", b"works")
    assert s.get("new") == b"works"
    s.close()
    s = LocalStore(path, sync=True)
    assert s.get("new") == b"works"
    assert s.get("big") == BIG
    s.close()


def test_stray_files_in_objects_dir_are_ignored_by_rebuild(tmp_path: Path) -> None:
    path = tmp_path / "s"
    s = LocalStore(path, sync=True)
    s.put("big", BIG)
    s.close()
    (path / "objects" / "zz").mkdir()
    (path / "objects" / "zz" / "junk").write_bytes(b"RKNO" + os.urandom(100))
    (path / "objects" / "ab").mkdir(exist_ok=True)
    (path / "objects" / "ab" / "cdef").write_bytes(b"")
    _garbage_index(path)
    s = LocalStore(path, sync=True)
    assert list(s.keys()) == ["big"]
    s.close()


def test_open_store_follows_a_replaced_index(tmp_path: Path) -> None:
    path = tmp_path / "s"
    a = LocalStore(path, sync=True)
    a.put("big", BIG)
    assert a.get("big") == BIG
    for suffix in ("", "-wal", "-shm"):  # someone removes the index under a's feet
        (path / f"index.sqlite3{suffix}").unlink(missing_ok=True)
    b = LocalStore(path, sync=True)  # makes a new one, recovering the object files
    b.put("new", b"from b")
    deadline = time.monotonic() + 30
    while a.get("new") is None and time.monotonic() < deadline:
        time.sleep(0.001)  # a notices the replaced file within a second and reconnects
    assert a.get("new") == b"from b"
    assert a.get("big") == BIG
    a.close()
    b.close()
