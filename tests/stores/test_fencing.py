"""Fencing: a holder whose lease lapsed (here: frozen with SIGSTOP for longer than the lease)
cannot overwrite the value of the holder that took over, on Redis (a fencing number per key,
checked by the put script) and on ObjectStore (the lease object must still carry the writer's
token), on S3 through moto and on a local directory.

A LocalStore needs no fencing: its lease is an OS lock that lapses only when its holder dies.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Callable
from typing import Any

import pytest
from _holders import kill, open_kind, start_holder

from reckon.core import RequestId

_FROZEN = """\
    sys.stdin.readline()  # frozen here (SIGSTOP) until long after the lease lapsed
    store.put({key!r}, b"stale: from the holder whose lease lapsed")
    print("not stored:", store.flush(), flush=True)"""


def _options(kind: str) -> dict[str, Any]:
    return {"lease_ttl": 1.0} if kind == "objfile" else {"near": None}


@pytest.mark.parametrize("kind", ["redis", "s3", "objfile"])
def test_a_lapsed_holder_cannot_overwrite_the_newer_value(
    kind: str, store_url: Callable[..., str]
) -> None:
    ttl = {} if kind == "objfile" else {"lease_ttl": 1}
    url = store_url(kind, "fence", **ttl)
    key = RequestId("fence", kind).disk_key
    holder = start_holder(kind, url, key, _options(kind), _FROZEN.format(key=key))
    try:
        assert holder.stdin is not None and holder.stdout is not None
        os.kill(holder.pid, signal.SIGSTOP)
        store = open_kind(kind, url, **_options(kind))
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
        kill(holder)
