"""Large values on an ObjectStore stream both ways, through moto's S3 server and s3fs.

A put larger than one part is a multipart upload (S3 names such an object with an ETag ending in
``-<parts>``), written from the value's pieces; a get reads it back in ranges and checks the
signature of the whole value before anything is decoded. A big object tampered with in its last
range, or whose header claims a length it does not have, is a miss: never decoded, never
allocated for.
"""

from __future__ import annotations

import os
import tracemalloc
from pathlib import Path
from typing import Any

import pytest
from _s3_server import s3_options

from reckon.core import CachingLevel, Engine, PickleCodec, RequestId
from reckon.core.stores import ObjectStore
from reckon.core.stores.signing import Signer

SIZE = 40 << 20  # three 16 MB parts; the get reads it in ranges of 2.5 MB, two at a time


@pytest.fixture
def team() -> Signer:
    return Signer("the team's shared secret")


def _s3(s3_endpoint: str, s3_bucket: str, signer: Signer | None) -> ObjectStore:
    return ObjectStore(
        f"s3://{s3_bucket}/big", storage_options=s3_options(s3_endpoint), signer=signer, timeout=60
    )


def _raw_fs(s3_endpoint: str) -> Any:
    import s3fs

    return s3fs.S3FileSystem(**s3_options(s3_endpoint))  # type: ignore[arg-type]


def test_a_big_put_is_a_multipart_upload_and_reads_back_in_ranges(
    s3_endpoint: str, s3_bucket: str, team: Signer
) -> None:
    store = _s3(s3_endpoint, s3_bucket, team)
    key = RequestId("big", "multipart").disk_key
    head, body = b"a small head", os.urandom(SIZE)
    store.put(key, [head, memoryview(body)], meta={"note": "big"})
    assert store.flush() == []
    etag = _raw_fs(s3_endpoint).info(f"{s3_bucket}/big/{key[:2]}/{key}")["ETag"]
    assert etag.strip('"').endswith("-3"), f"not a 3-part upload: ETag {etag}"
    got = ObjectStore(
        f"s3://{s3_bucket}/big", storage_options=s3_options(s3_endpoint), signer=team
    ).get(key)
    assert got is not None and bytes(got) == head + body
    assert store.metadata(key) == {"note": "big"}


def test_a_big_hit_holds_about_one_copy(s3_endpoint: str, s3_bucket: str, team: Signer) -> None:
    store = _s3(s3_endpoint, s3_bucket, team)
    key = RequestId("big", "memory").disk_key
    value = os.urandom(SIZE)
    store.put(key, value)
    reader = _s3(s3_endpoint, s3_bucket, team)
    tracemalloc.start()
    try:
        got = reader.get(key)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert got is not None and got == value
    assert peak < 1.25 * SIZE, f"a get of {SIZE} bytes peaked at {peak} bytes"


def test_a_big_value_tampered_in_its_last_range_is_never_decoded(
    s3_endpoint: str, s3_bucket: str, team: Signer, tmp_path: Path
) -> None:
    marker = tmp_path / "planted-code-ran"
    rid = RequestId("big", "tampered")
    store = _s3(s3_endpoint, s3_bucket, team)
    # A big value whose unpickling would create the marker: a list of padding, then the payload.
    planted = [os.urandom(SIZE), _Planted(str(marker))]
    store.put(rid.disk_key, PickleCodec().encode(planted))
    fs = _raw_fs(s3_endpoint)
    path = f"{s3_bucket}/big/{rid.disk_key[:2]}/{rid.disk_key}"
    blob = bytearray(fs.cat_file(path))
    blob[-(1 << 20)] ^= 1  # in the padding, 1 MB from the end: only the last range differs
    fs.pipe_file(path, bytes(blob))
    del blob
    with Engine(store=_s3(s3_endpoint, s3_bucket, team)) as engine:
        assert engine.get(rid, CachingLevel.FULL, lambda: "the true value") == "the true value"
    assert not marker.exists()
    assert not fs.exists(path) or fs.size(path) < SIZE  # dropped (then replaced by the value)
    # The control: the same value untampered does run the payload when read.
    control = RequestId("big", "control")
    store.put(control.disk_key, PickleCodec().encode(planted))
    with Engine(store=_s3(s3_endpoint, s3_bucket, team)) as engine:
        engine.get(control, CachingLevel.FULL, lambda: "the true value")
    assert marker.exists()


def test_a_header_claiming_a_huge_length_is_a_miss_without_allocating(
    s3_endpoint: str, s3_bucket: str, team: Signer
) -> None:
    key = RequestId("big", "lying header").disk_key
    forged = b"RKF2" + (1 << 50).to_bytes(8, "little") + b"\x02" * 33 + os.urandom(3 << 20)
    fs = _raw_fs(s3_endpoint)
    path = f"{s3_bucket}/big/{key[:2]}/{key}"
    fs.pipe_file(path, forged)
    assert _s3(s3_endpoint, s3_bucket, team).get(key) is None  # no MemoryError: size checked
    assert not fs.exists(path)


@pytest.mark.parametrize("scheme", ["file", "memory"])
def test_big_values_stream_on_other_file_systems(scheme: str, tmp_path: Path, team: Signer) -> None:
    url = f"file://{tmp_path}/objects" if scheme == "file" else f"memory://big-{id(tmp_path)}"
    store = ObjectStore(url, signer=team)
    key = RequestId("big", scheme).disk_key
    value = os.urandom(20 << 20)
    store.put(key, [value[:5], memoryview(value)[5:]])
    assert store.flush() == []
    got = ObjectStore(url, signer=team).get(key)
    assert got is not None and got == value
    if scheme == "file":  # written to a temporary name, then renamed: no temporaries remain
        assert not [p for p in (tmp_path / "objects").rglob("*") if p.name.endswith(".tmp")]


class _Planted:
    """Unpickling this creates ``path``."""

    def __init__(self, path: str) -> None:
        self.path = path

    def __reduce__(self) -> tuple[Any, ...]:
        return (open, (self.path, "w"))
