"""Workloads the observe tests watch (a module of its own: test modules cannot import conftest)."""

from __future__ import annotations

import threading

from reckon.core import CachingLevel, Engine, RequestId


def family(
    engine: Engine,
    gate: threading.Event,
    more: threading.Event,
    *,
    key: str = "family",
    title: str = "family parent",
) -> threading.Thread:
    """A running parent (``title``) with two finished children, "child a" and "child b"; a
    third child starts when ``more`` is set, and the parent finishes when ``gate`` is. Started
    in a daemon thread, which is returned."""

    def child(name: str) -> str:
        return engine.get(
            RequestId(key, name), CachingLevel.MEMORY, lambda: name, title=f"child {name}"
        )

    def parent() -> str:
        out = child("a") + child("b")
        more.wait(30)
        out += child("c")
        gate.wait(30)
        return out

    thread = threading.Thread(
        target=engine.get,
        args=(RequestId(f"{key}-parent"), CachingLevel.MEMORY, parent),
        kwargs={"title": title},
        daemon=True,
    )
    thread.start()
    return thread
