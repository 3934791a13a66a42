"""Pieces the lease tests share: opening each kind of store, a process that holds a lease, the
time a waiter takes to take over from a holder that was stopped, and copies of a computation
started at the same moment in several processes."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from reckon.core import open_store

HERE = str(Path(__file__).parent)


def open_kind(kind: str, url: str, **options: Any) -> Any:
    """The store a test names by kind: "objfile" is an ObjectStore on a local directory (its URL
    would open a LocalStore), every other kind opens by URL."""
    if kind == "objfile":
        from reckon.core.stores import ObjectStore

        return ObjectStore(url, **options)
    return open_store(url, **options)


_HOLDER = """
import sys, time
sys.path.insert(0, {here!r})
from _holders import open_kind
store = open_kind({kind!r}, {url!r}, **{options!r})
with store.lease({key!r}) as mine:
    print("held" if mine else "not mine", flush=True)
{then}
"""


def start_holder(
    kind: str, url: str, key: str, options: dict[str, Any] | None = None, then: str = ""
) -> subprocess.Popen[str]:
    """A process holding the lease on ``key`` (it has said so when this returns); inside the
    lease it runs ``then`` (indented code), or sleeps for ten minutes."""
    code = _HOLDER.format(
        here=HERE,
        kind=kind,
        url=url,
        key=key,
        options=options or {},
        then=then or "    time.sleep(600)",
    )
    holder = subprocess.Popen(
        [sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    assert holder.stdout is not None
    assert holder.stdout.readline().strip() == "held"
    return holder


def takeover(store: Any, key: str, stop: Callable[[], None]) -> tuple[list[bool], float]:
    """Wait for ``key``'s lease on a thread, check it is held, ``stop()`` the holder, and return
    what the lease yielded and the seconds from the stop to the lease."""
    granted: list[float] = []
    result: list[bool] = []

    def wait() -> None:
        with store.lease(key) as mine:
            granted.append(time.monotonic())
            result.append(mine)

    waiter = threading.Thread(target=wait)
    waiter.start()
    time.sleep(0.5)
    assert not granted, "the lease is held"
    stopped = time.monotonic()
    stop()
    waiter.join(60)
    return result, (granted[0] - stopped if granted else float("inf"))


def run_copies(
    script: str, copies: int, go: Path, before_go: Callable[[], None] = lambda: None
) -> None:
    """Run ``copies`` processes of ``script``, which prints "ready" and then waits for the file
    ``go``; ``before_go()`` runs once all are ready. Each must exit 0."""
    procs = [
        subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
        for _ in range(copies)
    ]
    try:
        for p in procs:
            assert p.stdout is not None and p.stdout.readline().strip() == "ready"
        before_go()
        go.touch()
        for p in procs:
            assert p.wait(120) == 0
    finally:
        for p in procs:
            p.kill()
            p.wait(30)


def kill(holder: subprocess.Popen[str]) -> None:
    """End a holder, frozen or not."""
    if holder.poll() is None:
        os.kill(holder.pid, signal.SIGCONT)  # a frozen process dies only once it runs
    holder.kill()
    holder.wait(30)
