"""Fencing: a holder whose lease lapsed (here: frozen with SIGSTOP for longer than the lease)
cannot overwrite the value of the holder that took over, on Redis (a fencing number per key,
checked by the put script) and on ObjectStore (the lease object must still carry the writer's
token), on S3 through moto and on a local directory.

A LocalStore needs no fencing: its lease is an OS lock that lapses only when its holder dies.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from reckon.core import RequestId, open_store

_HOLDER = """
import sys
sys.path.insert(0, {here!r})
from test_fencing import _open
store = _open({kind!r}, {url!r})
with store.lease({key!r}) as mine:
    print("held" if mine else "not mine", flush=True)
    sys.stdin.readline()  # frozen here (SIGSTOP) until long after the lease lapsed
    store.put({key!r}, b"stale: from the holder whose lease lapsed")
    print("not stored:", store.flush(), flush=True)
"""


def _open(kind: str, url: str) -> Any:
    if kind == "objfile":
        from reckon.core.stores import ObjectStore

        return ObjectStore(url, lease_ttl=1.0)
    return open_store(url, near=None)


@pytest.mark.parametrize("kind", ["redis", "s3", "objfile"])
def test_a_lapsed_holder_cannot_overwrite_the_newer_value(
    kind: str, store_url: Callable[..., str]
) -> None:
    ttl = {} if kind == "objfile" else {"lease_ttl": 1}
    url = store_url(kind, "fence", **ttl)
    key = RequestId("fence", kind).disk_key
    here = str(Path(__file__).parent)
    holder = subprocess.Popen(
        [sys.executable, "-c", _HOLDER.format(here=here, kind=kind, url=url, key=key)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdin is not None and holder.stdout is not None
        assert holder.stdout.readline().strip() == "held"
        os.kill(holder.pid, signal.SIGSTOP)
        store = _open(kind, url)
        with store.lease(key, timeout=60) as mine:  # taken over once the frozen lease lapses
            assert mine
            store.put(key, b"newer: from the holder that took over")
            assert store.flush() == []
        os.kill(holder.pid, signal.SIGCONT)
        holder.stdin.write("go\n")
        holder.stdin.flush()
        said = holder.stdout.readline()
        assert said.startswith("not stored:") and key in said, said
        assert holder.wait(60) == 0
        assert bytes(store.get(key) or b"") == b"newer: from the holder that took over"
        store.close()
    finally:
        if holder.poll() is None:
            os.kill(holder.pid, signal.SIGCONT)
        holder.kill()
        holder.wait(30)
