"""Per-entry metadata: stored beside the value, signed on its own, decoded as JSON only after
its signature checks; on LocalStore (the other stores: tests/stores/test_shared_metadata.py)."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from reckon.core.stores import LocalStore
from reckon.core.stores import metadata as md
from reckon.core.stores.signing import Signer
from reckon.errors import StoreError

OURS = Signer("our secret")
THEIRS = Signer("someone else's")

_json = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**53), 2**53)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=20,
)


@settings(max_examples=200, deadline=None)
@given(st.dictionaries(st.text(max_size=10), _json, max_size=6), st.text(min_size=1, max_size=70))
def test_metadata_round_trips_and_binds_to_its_key(meta: dict[str, Any], key: str) -> None:
    raw = md.encode(OURS, key, meta)
    assert md.decode(OURS, key, raw) == meta
    assert md.decode(THEIRS, key, raw) is None, "another key's signer refuses it"
    assert md.decode(OURS, key + "x", raw) is None, "not valid for another entry"
    flipped = bytearray(raw)
    flipped[-1] ^= 1
    assert md.decode(OURS, key, bytes(flipped)) is None


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=200))
def test_arbitrary_bytes_are_never_metadata(raw: bytes) -> None:
    assert md.decode(OURS, "k", raw) is None


def test_a_value_signature_cannot_be_replayed_as_metadata() -> None:
    body = b'{"kind":"memo"}'
    assert md.decode(OURS, "k", OURS.sign("k", body) + body) is None


def test_metadata_that_is_not_json_or_too_big_is_refused() -> None:
    with pytest.raises(StoreError, match="JSON"):
        md.encode(OURS, "k", {"f": object()})
    with pytest.raises(StoreError, match="JSON"):
        md.encode(OURS, "k", {"f": float("nan")})
    with pytest.raises(StoreError, match="too large"):
        md.encode(OURS, "k", {"f": "x" * (md.MAX_META + 1)})


@pytest.mark.parametrize("sync", [True, False])
def test_localstore_keeps_metadata_with_its_entry(tmp_path: Path, sync: bool) -> None:
    store = LocalStore(tmp_path, sync=sync, signer=OURS)
    store.put("ab1", b"v" * 10, meta={"function": "f", "args": "1"})
    store.put("ab2", b"w" * 10_000, meta={"function": "f", "args": "2"})  # an object file
    store.put("cd3", b"x")
    # Queued puts are seen at once, committed ones the same way.
    assert store.metadata("ab1") == {"function": "f", "args": "1"}
    listed = list(store.entries("ab"))
    assert [(e.key, e.size, e.meta) for e in listed] == [
        ("ab1", 10, {"function": "f", "args": "1"}),
        ("ab2", 10_000, {"function": "f", "args": "2"}),
    ]
    store.flush()
    assert [e.key for e in store.entries()] == ["ab1", "ab2", "cd3"]
    assert store.metadata("cd3") is None
    assert store.delete("ab1")
    assert store.metadata("ab1") is None
    assert [e.key for e in store.entries("ab")] == ["ab2"]
    store.close()


def test_forged_metadata_is_ignored_never_decoded(tmp_path: Path) -> None:
    ours = LocalStore(tmp_path, sync=True, signer=OURS)
    ours.put("k", b"value", meta={"function": "f"})
    ours.close()
    forged = THEIRS.sign("\0reckon-meta\0k", b'{"function":"evil"}') + b'{"function":"evil"}'
    with sqlite3.connect(tmp_path / "index.sqlite3") as conn:
        conn.execute("UPDATE entries SET meta = ? WHERE key = 'k'", (forged,))
    again = LocalStore(tmp_path, sync=True, signer=OURS)
    assert again.metadata("k") is None
    assert [e.meta for e in again.entries()] == [None]
    assert again.get("k") == b"value", "the value itself is still sound"
    again.close()


def test_an_index_made_before_metadata_gains_its_column(tmp_path: Path) -> None:
    old = LocalStore(tmp_path, sync=True, signer=OURS)
    old.put("k", b"value")
    old.close()
    with sqlite3.connect(tmp_path / "index.sqlite3") as conn:
        conn.execute("ALTER TABLE entries DROP COLUMN meta")  # what an older reckon made
    store = LocalStore(tmp_path, sync=True, signer=OURS)
    assert store.get("k") == b"value", "nothing lost, nothing rebuilt"
    assert store.metadata("k") is None
    store.put("j", b"new", meta={"a": 1})
    assert store.metadata("j") == {"a": 1}
    store.close()
