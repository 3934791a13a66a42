"""``reckon top`` through textual's test pilot, against a real server and engine."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from textual.widgets import DataTable, Static

from reckon.core import CachingLevel, Engine, RequestId
from reckon.observe import ServerHandle
from reckon.observe.top import TopApp


async def _until(pilot: Any, predicate: Any, within: float = 15.0) -> None:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if predicate():
            return
        await pilot.pause(0.05)
    raise AssertionError("the view did not get there in time")


def _column(table: DataTable[Any], index: int) -> list[str]:
    return [str(table.get_row_at(i)[index]) for i in range(table.row_count)]


async def test_top_shows_filters_sorts_cancels_and_clears(
    server: ServerHandle, engine: Engine, blocked: Any
) -> None:
    for i in range(3):
        engine.get(RequestId("top", i), CachingLevel.MEMORY, lambda: b"x" * 100, title=f"done {i}")
    engine.get(RequestId("top", 0), CachingLevel.MEMORY, lambda: None, title="done 0")  # a hit
    first = await asyncio.to_thread(blocked, "alpha long job")
    app = TopApp(server.url, refresh_interval=0.1)
    async with app.run_test(size=(140, 40)) as pilot:
        running = app.query_one("#running", DataTable)
        recent = app.query_one("#recent", DataTable)
        await _until(pilot, lambda: running.row_count == 1 and recent.row_count == 3)
        assert _column(running, 1) == ["alpha long job"]
        summary = str(app.query_one("#summary", Static).render())
        assert "memory hits" in summary and "1 (20.0%)" in summary  # 1 hit of 5 requests

        # A computation started now shows up, pushed by the server.
        second = await asyncio.to_thread(blocked, "beta job")
        await _until(pilot, lambda: running.row_count == 2)
        assert _column(running, 1) == ["alpha long job", "beta job"]  # longest elapsed first
        await pilot.press("s")  # sort by title
        assert app.sort_key == "title"
        await pilot.press("s", "s")  # back round to elapsed
        assert app.sort_key == "elapsed"

        # Filter by title.
        await pilot.press("f")
        await pilot.press(*"beta", "enter")
        await _until(pilot, lambda: running.row_count == 1)
        assert _column(running, 1) == ["beta job"]
        assert recent.row_count == 0
        await pilot.press("escape")
        await _until(pilot, lambda: running.row_count == 2)

        # Cancel the highlighted one (the first row: alpha, the longest running).
        running.focus()
        running.move_cursor(row=0)
        await pilot.pause()
        assert app.selected_task_id() is not None
        await pilot.press("c")
        await _until(pilot, lambda: running.row_count == 1)
        assert _column(running, 1) == ["beta job"]
        await asyncio.to_thread(first.release)
        assert type(first.error).__name__ == "ComputationCancelledError"

        # Clear history, pause capture.
        await pilot.press("x")
        await _until(pilot, lambda: recent.row_count == 0)
        assert [r.title for r in engine.introspector.history()] == []
        await pilot.press("p")
        await _until(pilot, lambda: engine.introspector.capture is False)
        await pilot.press("p")
        await _until(pilot, lambda: engine.introspector.capture is True)
        await pilot.press("m")
        await _until(pilot, lambda: len(engine.memory) == 0)
        await asyncio.to_thread(second.release)
        await _until(pilot, lambda: running.row_count == 0 and recent.row_count == 1)
        await pilot.press("q")
    assert app.return_code in (0, None)


async def test_top_exits_with_a_message_when_the_server_is_unreachable() -> None:
    app = TopApp("http://127.0.0.1:1/")
    async with app.run_test() as pilot:
        await pilot.pause()
    assert app.return_code == 1
