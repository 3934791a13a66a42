"""Per-entry metadata on the shared stores: Redis, S3 through moto, ``memory://``, and through
the near tier; read back by another process, listed by prefix, removed with the entry, and
ignored when written with another key."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable

import pytest

from reckon.core import RequestId, open_store
from reckon.core.stores.signing import Signer

_READ = """
import json, sys
from reckon.core import open_store
store = open_store(sys.argv[1], near=None)
print(json.dumps([[e.key, e.size, e.meta] for e in store.entries(sys.argv[2])]))
"""


@pytest.mark.parametrize("kind", ["redis", "s3", "memory"])
def test_metadata_is_kept_listed_and_removed(kind: str, store_url: Callable[..., str]) -> None:
    url = store_url(kind, "meta")
    store = open_store(url)  # with its near tier: metadata goes far with the value
    a, b, c = (RequestId("meta", i).disk_key for i in range(3))
    store.put(a, b"a" * 10, meta={"function": "f", "args": "0"})
    store.put(b, b"b" * 20, meta={"function": "f", "args": "1"})
    store.put(c, b"c" * 30)
    assert store.flush() == []
    far = open_store(url, near=None)
    assert far.metadata(a) == {"function": "f", "args": "0"}
    assert far.metadata(c) is None
    listed = {e.key: (e.size, e.meta) for e in far.entries()}
    assert listed == {
        a: (10, {"function": "f", "args": "0"}),
        b: (20, {"function": "f", "args": "1"}),
        c: (30, None),
    }
    assert [e.key for e in far.entries(b[:6])] == [b]
    if kind != "memory":  # another process sees the same
        out = subprocess.run(
            [sys.executable, "-c", _READ, url, a[:6]],
            capture_output=True,
            text=True,
            check=True,
            timeout=120,
        )
        assert out.stdout.strip() == f'[["{a}", 10, {{"args": "0", "function": "f"}}]]'
    assert store.delete(a)
    assert far.metadata(a) is None and a not in {e.key for e in far.entries()}


@pytest.mark.parametrize("kind", ["redis", "s3"])
def test_metadata_written_with_another_key_is_ignored(
    kind: str, store_url: Callable[..., str]
) -> None:
    url = store_url(kind, "meta")
    key = RequestId("forged-meta", 1).disk_key
    theirs = open_store(url, near=None, signer=Signer("not our key"))
    theirs.put(key, b"v", meta={"function": "evil"})
    assert theirs.flush() == []
    theirs.close()  # (one open store per URL: ours is opened afresh, with this process's key)
    ours = open_store(url, near=None)
    assert ours is not theirs
    assert ours.metadata(key) is None
    assert [e.meta for e in ours.entries()] == [None]
