"""end_tasks: background tasks end on close even when a cancel is lost, and the closer's own
cancel is never swallowed."""

from __future__ import annotations

import asyncio
import contextlib

import pytest

from reckon.pva.stopping import end_tasks


async def _loses_one_cancel(started: asyncio.Event) -> None:
    """Like a call inside Python 3.11's wait_for that completes as the cancel arrives: the
    first cancel is dropped, and the task carries on."""
    started.set()
    with contextlib.suppress(asyncio.CancelledError):
        await asyncio.sleep(60)
    await asyncio.sleep(60)


async def test_a_task_that_loses_a_cancel_still_ends() -> None:
    started = asyncio.Event()
    task = asyncio.create_task(_loses_one_cancel(started))
    await started.wait()
    assert await end_tasks([task], within=5.0, retry=0.01) == set()
    assert task.cancelled()


async def test_a_task_that_will_not_end_is_handed_back_after_the_bound() -> None:
    give_up = False

    async def stubborn() -> None:
        while not give_up:
            try:
                await asyncio.sleep(60)
            except asyncio.CancelledError:
                continue

    task = asyncio.create_task(stubborn())
    await asyncio.sleep(0)
    left = await end_tasks([task], within=0.1, retry=0.02)
    assert left == {task}
    assert not task.done()
    give_up = True
    assert await end_tasks([task], within=5.0, retry=0.02) == set()


async def test_the_closers_own_cancel_goes_through() -> None:
    started = asyncio.Event()
    child = asyncio.create_task(_loses_one_cancel(started))
    await started.wait()

    async def closer() -> None:
        await end_tasks([child], within=60.0, retry=30.0)  # waits on the child for a while

    outer = asyncio.create_task(closer())
    await asyncio.sleep(0.05)
    outer.cancel()
    with pytest.raises(asyncio.CancelledError):
        await outer
    child.cancel()
    with pytest.raises(asyncio.CancelledError):
        await child


async def test_exceptions_of_ended_tasks_are_retrieved_not_raised() -> None:
    async def fails() -> None:
        raise ValueError("boom")

    task = asyncio.create_task(fails())
    await asyncio.sleep(0)
    assert await end_tasks([task, None], within=1.0) == set()
