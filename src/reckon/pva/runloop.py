"""The event loop for processes reckon itself starts (``reckon pva serve``, the CLI, the bench).

uvloop cuts asyncio's own share of a message's cost (the loop and its wake-ups: ~20-35 us of CPU
per p4p get), so these processes use it whenever it is importable; ``RECKON_PVA_UVLOOP=0`` turns
it off. Library code never picks a loop: an application runs reckon's servers and clients on
whatever loop it started (``uvloop.run(main())`` to get the same speed-up).
"""

from __future__ import annotations

import asyncio
import gc
import os
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

T = TypeVar("T")

ENV = "RECKON_PVA_UVLOOP"


def loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    """uvloop's loop factory when it is wanted and importable, else None (asyncio's own loop)."""
    if os.environ.get(ENV, "1").strip().lower() in ("0", "no", "false", "off"):
        return None
    try:
        import uvloop
    except ImportError:
        return None
    return uvloop.new_event_loop


def run(coro: Coroutine[Any, Any, T]) -> T:
    """asyncio.run on the loop :func:`loop_factory` picks."""
    with asyncio.Runner(loop_factory=loop_factory()) as runner:
        return runner.run(coro)


def freeze_heap() -> None:
    """Collect once, then leave every object alive now out of later collections (``gc.freeze``).

    A serving process imports much (numpy, redis, the protocol's tables) and keeps all of it:
    without this, each full collection walks that heap again, a pause of tens of milliseconds
    on a busy machine in the middle of a post's way to its monitors. Called once a server has
    started (``reckon pva serve`` does); objects made afterwards are collected as usual.
    """
    gc.collect()
    gc.freeze()
