"""Fixtures for the observe tests: a real engine, a real server on a free loopback port, and
computations that block until the test lets them go (so "running" is a state a test can see)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest

from reckon.core import CachingLevel, Engine, RequestId
from reckon.observe import ServerHandle, serve


@pytest.fixture
def engine() -> Iterator[Engine]:
    eng = Engine(name="observe-test")
    yield eng
    eng.close()


@pytest.fixture
def server(engine: Engine) -> Iterator[ServerHandle]:
    handle = serve(engine)
    yield handle
    handle.stop()


@dataclass
class Blocked:
    """A computation running in a thread until ``release()``; ``error`` is what its caller got."""

    title: str
    gate: threading.Event = field(default_factory=threading.Event)
    started: threading.Event = field(default_factory=threading.Event)
    result: Any = None
    error: BaseException | None = None
    thread: threading.Thread | None = None

    def release(self) -> None:
        self.gate.set()
        if self.thread is not None:
            self.thread.join(10)


def start_blocked(engine: Engine, title: str, key: object = None) -> Blocked:
    blocked = Blocked(title)

    def compute() -> str:
        blocked.started.set()
        blocked.gate.wait(30)
        return f"value of {title}"

    def run() -> None:
        try:
            blocked.result = engine.get(
                RequestId("blocked", title, str(key)), CachingLevel.MEMORY, compute, title=title
            )
        except BaseException as exc:
            blocked.error = exc

    blocked.thread = threading.Thread(target=run, daemon=True)
    blocked.thread.start()
    assert blocked.started.wait(10), "the blocking computation never started"
    return blocked


@pytest.fixture
def blocked(engine: Engine) -> Iterator[Any]:
    """Factory: ``blocked("title")`` starts a computation that runs until the test ends."""
    made: list[Blocked] = []

    def make(title: str, key: object = None) -> Blocked:
        b = start_blocked(engine, title, key)
        made.append(b)
        return b

    yield make
    for b in made:
        b.release()
