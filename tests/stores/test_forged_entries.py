"""Nothing read from a store is decoded before it is authenticated.

For every kind of store (a local directory, Redis, S3 through moto's server) an entry whose
unpickling would create a marker file is planted: by a process that signs with another key, as
raw bytes with no signature, and as raw bytes behind a made-up signature. A process with the real
key then asks for that value: it must compute the right value, never run the planted code, and
drop the entry. A control plants the same payload signed with the real key and sees the marker
appear, which shows the payload would run if it were trusted.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import redis
from _s3_server import s3_options

from reckon.core import CachingLevel, Engine, PickleCodec, RequestId
from reckon.core.stores import LocalStore, ObjectStore, RedisStore
from reckon.core.stores.signing import Signer

KINDS = ["local", "redis", "s3"]


class Planted:
    """Unpickling this creates ``path`` (as os.system would run a command)."""

    def __init__(self, path: str) -> None:
        self.path = path

    def __reduce__(self) -> tuple[Any, ...]:
        return (open, (self.path, "w"))


def _spec(kind: str, tmp_path: Path, request: pytest.FixtureRequest) -> dict[str, Any]:
    if kind == "local":
        return {"kind": kind, "path": str(tmp_path / "cache")}
    if kind == "redis":
        return {
            "kind": kind,
            "url": request.getfixturevalue("redis_url"),
            "prefix": f"f{id(tmp_path)}:",
        }
    endpoint = request.getfixturevalue("s3_endpoint")
    bucket = request.getfixturevalue("s3_bucket")
    return {"kind": kind, "url": f"s3://{bucket}/cache", "options": s3_options(endpoint)}


def _open(spec: dict[str, Any], signer: Signer | None) -> Any:
    if spec["kind"] == "local":
        return LocalStore(spec["path"], sync=True, signer=signer)
    if spec["kind"] == "redis":
        return RedisStore(spec["url"], prefix=spec["prefix"], signer=signer)
    return ObjectStore(spec["url"], storage_options=spec["options"], signer=signer)


_ATTACKER = """
import json, sys
sys.path.insert(0, {here!r})
from test_forged_entries import Planted, _open
from reckon.core import PickleCodec
spec, key, marker = json.loads(sys.argv[1])
store = _open(spec, None)  # signs with this process's key: RECKON_CACHE_KEY of the attacker
store.put(key, PickleCodec().encode(Planted(marker)))
store.close()
"""


def _plant_with_other_key(spec: dict[str, Any], key: str, marker: str) -> None:
    env = dict(os.environ, RECKON_CACHE_KEY="the attacker's own key")
    subprocess.run(
        [
            sys.executable,
            "-c",
            _ATTACKER.format(here=str(Path(__file__).parent)),
            json.dumps([spec, key, marker]),
        ],
        env=env,
        check=True,
        timeout=120,
    )


def _insert_row(spec: dict[str, Any], key: str, tag: bytes | None, value: bytes) -> None:
    """Write an inline entry straight into a LocalStore's index, past the store."""
    LocalStore(spec["path"], sync=True).close()  # the index exists
    conn = sqlite3.connect(Path(spec["path"]) / "index.sqlite3")
    conn.execute(
        "INSERT OR REPLACE INTO entries (key, size, tag, digest, value, access, priority, cost)"
        " VALUES (?, ?, ?, NULL, ?, 0, 0, 0)",
        (key, len(value), tag, value),
    )
    conn.commit()
    conn.close()


def _plant_raw(spec: dict[str, Any], key: str, payload: bytes) -> None:
    """Write ``payload`` straight into the store's backend, as an attacker with write access to
    it (but not the key) can."""
    if spec["kind"] == "local":
        _insert_row(spec, key, payload[:33] if len(payload) >= 33 else None, payload)
    elif spec["kind"] == "redis":
        client = redis.Redis.from_url(spec["url"])
        client.set(spec["prefix"] + "v:" + key, payload)
        client.close()
    else:
        import s3fs

        fs = s3fs.S3FileSystem(**spec["options"])
        root = spec["url"].removeprefix("s3://")
        fs.pipe_file(f"{root}/{key[:2]}/{key}", payload)


def _victim_reads(spec: dict[str, Any], rid: RequestId, signer: Signer) -> object:
    store = _open(spec, signer)
    engine = Engine(store=store)
    try:
        return engine.get(rid, CachingLevel.FULL, lambda: "the true value")
    finally:
        engine.close()
        store.close()


@pytest.fixture
def team() -> Signer:
    return Signer("the team's shared secret")


def _raw_forgeries(evil: bytes) -> dict[str, bytes]:
    return {
        "bare pickle": evil,
        "redis header, zero tag": b"RKR2" + bytes(33) + evil,
        "object header, made-up tag": b"RKF2"
        + len(evil).to_bytes(8, "little")
        + b"\x02" * 33
        + evil,
        "blake3 tag byte, random tag": b"\x02" + os.urandom(32) + evil,
        "blake2b tag byte, random tag": b"\x04" + os.urandom(32) + evil,
        "earlier blake2b tag byte, random tag": b"\x03" + os.urandom(32) + evil,
    }


_TEAM_SECRET = b"the team's shared secret"


def _earlier_tag(key: str, value: bytes) -> bytes:
    """The tag an earlier reckon wrote for small values under the team's key (BLAKE2b, algorithm
    byte 3), computed from its description in ``signing``: still read, never written."""
    master = hashlib.sha256(b"reckon cache key v1\0" + _TEAM_SECRET).digest()
    b2key = hashlib.sha256(b"blake2b\0" + master).digest()
    kb = key.encode()
    head = b"reckon-store-v1\0" + len(kb).to_bytes(4, "little") + kb
    head += bytes((1 - len(head)) % 128)
    return b"\x03" + hashlib.blake2b(head + value, key=b2key, digest_size=32).digest()


def _plant_signed(spec: dict[str, Any], key: str, tag: bytes, value: bytes) -> None:
    """Write ``value`` with ``tag`` into the store's backend in the store's own layout."""
    if spec["kind"] == "local":
        _insert_row(spec, key, tag, value)
    elif spec["kind"] == "redis":
        _plant_raw(spec, key, b"RKR2" + tag + value)
    else:
        _plant_raw(spec, key, b"RKF2" + len(value).to_bytes(8, "little") + tag + value)


@pytest.mark.parametrize("kind", KINDS)
def test_entry_signed_with_another_key_is_never_decoded(
    kind: str,
    tmp_path: Path,
    request: pytest.FixtureRequest,
    team: Signer,
    caplog: pytest.LogCaptureFixture,
) -> None:
    spec = _spec(kind, tmp_path, request)
    marker = tmp_path / "planted-code-ran"
    rid = RequestId("forged", kind)
    _plant_with_other_key(spec, rid.disk_key, str(marker))
    with caplog.at_level(logging.WARNING, logger="reckon.core.store"):
        assert _victim_reads(spec, rid, team) == "the true value"
    assert not marker.exists()
    assert "failed authentication" in caplog.text
    assert "RECKON_CACHE_KEY" in caplog.text  # the fix is named
    # The forged entry was replaced by the victim's own value, which now hits.
    assert _victim_reads(spec, rid, team) == "the true value"


@pytest.mark.parametrize("kind", KINDS)
def test_raw_bytes_are_never_decoded(
    kind: str, tmp_path: Path, request: pytest.FixtureRequest, team: Signer
) -> None:
    spec = _spec(kind, tmp_path, request)
    marker = tmp_path / "planted-code-ran"
    evil = bytes(PickleCodec().encode(Planted(str(marker))))
    for n, (_name, payload) in enumerate(_raw_forgeries(evil).items()):
        rid = RequestId("raw", kind, n)
        _plant_raw(spec, rid.disk_key, payload)
        assert _victim_reads(spec, rid, team) == "the true value"
        assert not marker.exists(), _name


@pytest.mark.parametrize("kind", KINDS)
def test_control_the_payload_runs_when_signed_with_the_readers_key(
    kind: str, tmp_path: Path, request: pytest.FixtureRequest, team: Signer
) -> None:
    """Without this, the tests above could pass because the payload never runs at all."""
    spec = _spec(kind, tmp_path, request)
    marker = tmp_path / "planted-code-ran"
    rid = RequestId("control", kind)
    store = _open(spec, team)
    store.put(rid.disk_key, PickleCodec().encode(Planted(str(marker))))
    store.close()
    _victim_reads(spec, rid, team)
    assert marker.exists()


def test_a_value_cannot_be_replayed_under_another_key(tmp_path: Path, team: Signer) -> None:
    """A validly signed value copied to another key's row is refused: the key is signed too."""
    store = LocalStore(tmp_path / "cache", sync=True, signer=team)
    a, b = RequestId("a").disk_key, RequestId("b").disk_key
    store.put(a, b"value of a")
    store.put(b, b"value of b")
    conn = sqlite3.connect(tmp_path / "cache" / "index.sqlite3")
    row = conn.execute("SELECT tag, value FROM entries WHERE key = ?", (a,)).fetchone()
    conn.execute("UPDATE entries SET tag = ?, value = ? WHERE key = ?", (*row, b))
    conn.commit()
    conn.close()
    assert store.get(b) is None
    assert store.get(a) == b"value of a"
    store.close()


@pytest.mark.parametrize("kind", KINDS)
def test_entries_of_an_earlier_version_still_hit(
    kind: str, tmp_path: Path, request: pytest.FixtureRequest, team: Signer
) -> None:
    """A value stored by an earlier reckon (its tag in the earlier BLAKE2b layout) is a hit, not
    a miss: the new layout is written from now on, the old one still read."""
    spec = _spec(kind, tmp_path, request)
    rid = RequestId("earlier", kind)
    value = bytes(PickleCodec().encode("the stored value"))
    _plant_signed(spec, rid.disk_key, _earlier_tag(rid.disk_key, value), value)
    assert _victim_reads(spec, rid, team) == "the stored value"


@pytest.mark.parametrize("kind", KINDS)
def test_a_tag_relabelled_as_another_algorithm_is_never_decoded(
    kind: str, tmp_path: Path, request: pytest.FixtureRequest, team: Signer
) -> None:
    """A valid tag of the team (either BLAKE2b layout) given another algorithm's byte is
    refused: each algorithm has its own key and domain. The control, the same entries
    with their own bytes, runs the payload."""
    spec = _spec(kind, tmp_path, request)
    marker = tmp_path / "planted-code-ran"
    evil = bytes(PickleCodec().encode(Planted(str(marker))))
    n = 0
    for made in (team.sign("x", b"")[0], 3):
        for claimed in (1, 2, 3, 4):
            if claimed == made:
                continue
            n += 1
            key = RequestId("relabelled", kind, n).disk_key
            tag = team.sign(key, evil) if made != 3 else _earlier_tag(key, evil)
            assert tag[0] == made
            _plant_signed(spec, key, bytes((claimed,)) + tag[1:], evil)
            assert _victim_reads(spec, RequestId("relabelled", kind, n), team) == "the true value"
            assert not marker.exists(), (made, claimed)
    for made in (team.sign("x", b"")[0], 3):
        rid = RequestId("control", kind, made)
        key = rid.disk_key
        tag = team.sign(key, evil) if made != 3 else _earlier_tag(key, evil)
        _plant_signed(spec, key, tag, evil)
        _victim_reads(spec, rid, team)
        assert marker.exists(), made
        marker.unlink()
