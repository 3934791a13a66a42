"""Seals: a mapped LocalStore value verified once is not hashed again, in this process or
another, until its file changes; a changed, replaced or foreign file is verified in full."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import pytest

from reckon.core.stores import LocalStore, _seals
from reckon.core.stores.signing import Signer

SIZE = 2 << 20  # above the default mmap_threshold: a mapped value


class CountingSigner(Signer):
    """The real signer, counting the full verifications of large values."""

    __slots__ = ("full",)

    def __init__(self, secret: str) -> None:
        super().__init__(secret)
        self.full = 0

    def verify(self, key: str, data: Any, tag: bytes | None) -> bool:
        if len(data) >= SIZE:
            self.full += 1
        return super().verify(key, data, tag)


@pytest.fixture(autouse=True)
def quick_settle(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_seals, "SETTLE", 0.2)


def _settle() -> None:
    time.sleep(0.3)


def _object_file(store: LocalStore) -> Path:
    files = [p for p in Path(store.path, "objects").rglob("*") if p.is_file()]
    assert len(files) == 1
    return files[0]


def test_a_verified_file_is_not_hashed_again_here_or_in_another_store(tmp_path: Path) -> None:
    value = os.urandom(SIZE)
    signer = CountingSigner("team")
    store = LocalStore(tmp_path, sync=True, signer=signer)
    store.put("k", value)
    _settle()
    assert store.get("k") == value
    assert signer.full == 1
    for _ in range(3):
        assert store.get("k") == value
    assert signer.full == 1, "later hits check the seal"
    other_signer = CountingSigner("team")
    other = LocalStore(tmp_path, sync=True, signer=other_signer)  # as another process would
    assert other.get("k") == value
    assert other_signer.full == 0, "the seal in the index serves every process"
    stranger = CountingSigner("another key")
    assert LocalStore(tmp_path, sync=True, signer=stranger).get("k") is None
    assert stranger.full == 1, "a seal under another key is no seal: verified, and refused"


def test_a_file_changed_in_place_after_its_seal_is_caught(tmp_path: Path) -> None:
    value = os.urandom(SIZE)
    signer = CountingSigner("team")
    store = LocalStore(tmp_path, sync=True, signer=signer)
    store.put("k", value)
    _settle()
    assert store.get("k") == value  # verified and sealed
    path = _object_file(store)
    stat = path.stat()
    with open(path, "r+b") as f:  # same size, same mtime afterwards: only the ctime tells
        f.seek(-1, os.SEEK_END)
        last = f.read(1)
        f.seek(-1, os.SEEK_END)
        f.write(bytes([last[0] ^ 1]))
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    fresh = LocalStore(tmp_path, sync=True, signer=CountingSigner("team"))
    assert fresh.get("k") is None, "the changed file is verified again, and refused"
    assert store.get("k") is None


def test_the_seal_of_one_entry_does_not_vouch_for_another(tmp_path: Path) -> None:
    signer = CountingSigner("team")
    store = LocalStore(tmp_path, sync=True, signer=signer)
    a, b = os.urandom(SIZE), os.urandom(SIZE)
    store.put("a", a)
    store.put("b", b)
    _settle()
    assert store.get("a") == a and store.get("b") == b
    conn = store._index.conn()
    seal_a = conn.execute("SELECT seal FROM seals WHERE key = 'a'").fetchone()[0]
    conn.execute("UPDATE seals SET seal = ? WHERE key = 'b'", (seal_a,))
    fresh_signer = CountingSigner("team")
    fresh = LocalStore(tmp_path, sync=True, signer=fresh_signer)
    assert fresh.get("b") == b
    assert fresh_signer.full == 1, "a moved seal does not match: the value was hashed"


def test_a_file_others_can_write_is_never_mapped_nor_sealed(tmp_path: Path) -> None:
    value = os.urandom(SIZE)
    signer = CountingSigner("team")
    store = LocalStore(tmp_path, sync=True, signer=signer)
    store.put("k", value)
    _settle()
    path = _object_file(store)
    path.chmod(0o666)
    _settle()
    for _ in range(2):
        got = store.get("k")
        assert got == value
        assert isinstance(got, memoryview) and not isinstance(got.obj, __import__("mmap").mmap)
    assert signer.full == 2, "verified on every read, from a private copy"
    assert store._index.conn().execute("SELECT count(*) FROM seals").fetchone()[0] == 0


def test_a_seal_goes_with_its_entry(tmp_path: Path) -> None:
    store = LocalStore(tmp_path, sync=True, signer=Signer("team"))
    store.put("k", os.urandom(SIZE))
    _settle()
    assert store.get("k") is not None
    conn = store._index.conn()
    assert conn.execute("SELECT count(*) FROM seals").fetchone()[0] == 1
    store.put("k", os.urandom(SIZE))  # replaced: the old seal is gone
    assert conn.execute("SELECT count(*) FROM seals").fetchone()[0] == 0
