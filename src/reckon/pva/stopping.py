"""Ending background tasks on close: cancel, wait, and ask again, bounded.

A plain ``task.cancel(); await task`` can hang and can swallow the closer's own cancel. Hang:
on Python 3.11 ``asyncio.wait_for`` drops a cancel that arrives as the call it waits for
completes, and libraries below (redis-py among them) use it, so a task cancelled at that moment
carries on and never ends. Swallow: ``suppress(CancelledError)`` around ``await task`` cannot
tell the task's cancellation from the caller's. :func:`end_tasks` waits with ``asyncio.wait``
(which never raises a task's exception, and lets a cancel of the caller through), cancels again
every ``retry`` seconds, and gives up after ``within`` seconds.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable
from typing import Any

#: how often a task that has not ended is cancelled again (seconds)
RETRY = 0.05


async def end_tasks(
    tasks: Iterable[asyncio.Task[Any] | None], *, within: float, retry: float = RETRY
) -> set[asyncio.Task[Any]]:
    """Cancel ``tasks`` and wait for them to end, cancelling again every ``retry`` seconds.

    Returns the tasks still running after ``within`` seconds (empty when all ended). Their
    exceptions are retrieved: a task ended by close has nothing left to report.
    """
    pending = {t for t in tasks if t is not None and not t.done()}
    deadline = time.monotonic() + within
    while pending:
        for task in pending:
            task.cancel()
        done, pending = await asyncio.wait(pending, timeout=retry)
        for task in done:
            if not task.cancelled():
                task.exception()  # retrieved
        if pending and time.monotonic() > deadline:
            break
    return pending
