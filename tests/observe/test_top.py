"""``reckon top`` through textual's test pilot, against a real server and engine: one test per
key (filter, sort, cancel, the clears and capture), the token mode, and the real command in a
pseudo-terminal."""

from __future__ import annotations

import asyncio
import os
import sys
import threading
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pexpect
import pytest
from observe_workloads import family
from textual.widgets import DataTable, Static, Tree

from reckon.core import CachingLevel, Engine, LocalStore, RequestId
from reckon.observe import ServerHandle, serve
from reckon.observe.top import TopApp, TreeScreen

RECKON = str(Path(sys.executable).with_name("reckon"))


async def _until(pilot: Any, predicate: Any, within: float = 15.0) -> None:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if predicate():
            return
        await pilot.pause(0.05)
    raise AssertionError("the view did not get there in time")


def _column(table: DataTable[Any], index: int) -> list[str]:
    return [str(table.get_row_at(i)[index]) for i in range(table.row_count)]


def _tables(app: TopApp) -> tuple[DataTable[Any], DataTable[Any]]:
    return app.query_one("#running", DataTable), app.query_one("#recent", DataTable)


@pytest.fixture
async def top(server: ServerHandle) -> AsyncIterator[tuple[TopApp, Any]]:
    app = TopApp(server.url, refresh_interval=0.1)
    async with app.run_test(size=(140, 40)) as pilot:
        yield app, pilot
        await pilot.press("q")
    assert app.return_code in (0, None)


def _computed(engine: Engine, n: int) -> None:
    for i in range(n):
        engine.get(RequestId("top", i), CachingLevel.MEMORY, lambda: b"x" * 100, title=f"done {i}")


async def test_top_shows_running_recent_and_ratios(
    server: ServerHandle, engine: Engine, blocked: Any
) -> None:
    _computed(engine, 3)
    engine.get(RequestId("top", 0), CachingLevel.MEMORY, lambda: None, title="done 0")  # a hit
    await asyncio.to_thread(blocked, "alpha long job")
    app = TopApp(server.url, refresh_interval=0.1)
    async with app.run_test(size=(140, 40)) as pilot:
        running, recent = _tables(app)
        await _until(pilot, lambda: running.row_count == 1 and recent.row_count == 3)
        assert _column(running, 1) == ["alpha long job"]
        assert _column(recent, 2) == ["computed"] * 3
        summary = str(app.query_one("#summary", Static).render())
        assert "memory hits" in summary and "1 (20.0%)" in summary  # 1 hit of 5 requests
        assert "(3 entries)" in summary  # memory use
        # A computation started now shows up, pushed by the server.
        await asyncio.to_thread(blocked, "beta job")
        await _until(pilot, lambda: running.row_count == 2)
        assert _column(running, 1) == ["alpha long job", "beta job"]  # longest elapsed first
        await pilot.press("q")


async def test_top_key_s_sorts_by_elapsed_title_and_id(
    top: tuple[TopApp, Any], blocked: Any
) -> None:
    app, pilot = top
    for title in ("mango", "apple", "zebra"):  # started in this order: mango runs longest
        await asyncio.to_thread(blocked, title)
    running, _ = _tables(app)
    await _until(pilot, lambda: running.row_count == 3)
    assert app.sort_key == "elapsed"
    assert _column(running, 1) == ["mango", "apple", "zebra"]
    await pilot.press("s")
    assert app.sort_key == "title"
    await _until(pilot, lambda: _column(running, 1) == ["apple", "mango", "zebra"])
    assert "sort title" in str(app.query_one("#summary", Static).render())
    await pilot.press("s")
    assert app.sort_key == "id"
    await _until(pilot, lambda: _column(running, 1) == ["mango", "apple", "zebra"])
    ids = [int(x) for x in _column(running, 0)]
    assert ids == sorted(ids)
    await pilot.press("s")
    assert app.sort_key == "elapsed"


async def test_top_key_f_filters_by_title_and_escape_clears(
    top: tuple[TopApp, Any], engine: Engine, blocked: Any
) -> None:
    app, pilot = top
    _computed(engine, 2)
    await asyncio.to_thread(blocked, "alpha long job")
    await asyncio.to_thread(blocked, "beta job")
    running, recent = _tables(app)
    await _until(pilot, lambda: running.row_count == 2 and recent.row_count == 2)
    await pilot.press("f")
    await pilot.press(*"BETA", "enter")  # case does not matter
    await _until(pilot, lambda: running.row_count == 1)
    assert _column(running, 1) == ["beta job"]
    assert recent.row_count == 0
    assert "filter 'BETA'" in str(app.query_one("#summary", Static).render())
    await pilot.press("f")
    await pilot.press(*"done 1", "enter")  # replaces the filter; applies to outcomes too
    await _until(pilot, lambda: running.row_count == 0 and recent.row_count == 1)
    assert _column(recent, 1) == ["done 1"]
    await pilot.press("escape")
    await _until(pilot, lambda: running.row_count == 2 and recent.row_count == 2)


async def test_top_key_c_cancels_the_highlighted_computation(
    top: tuple[TopApp, Any], blocked: Any
) -> None:
    app, pilot = top
    first = await asyncio.to_thread(blocked, "alpha long job")
    await asyncio.to_thread(blocked, "beta job")
    running, recent = _tables(app)
    await _until(pilot, lambda: running.row_count == 2)
    running.focus()
    running.move_cursor(row=1)  # beta, then back to alpha with the arrow key
    await pilot.press("up")
    assert app.selected_task_id() is not None
    assert _column(running, 1)[running.cursor_row] == "alpha long job"
    await pilot.press("c")
    await _until(pilot, lambda: running.row_count == 1)
    assert _column(running, 1) == ["beta job"]
    await asyncio.to_thread(first.release)
    assert type(first.error).__name__ == "ComputationCancelledError"
    await _until(pilot, lambda: _column(recent, 2)[:1] == ["cancelled"])


async def test_top_keys_x_m_p_clear_history_memory_and_toggle_capture(
    top: tuple[TopApp, Any], engine: Engine
) -> None:
    app, pilot = top
    _computed(engine, 3)
    _, recent = _tables(app)
    await _until(pilot, lambda: recent.row_count == 3)
    await pilot.press("x")
    await _until(pilot, lambda: recent.row_count == 0)
    assert engine.introspector.history() == []
    assert len(engine.memory) == 3
    await pilot.press("m")
    await _until(pilot, lambda: len(engine.memory) == 0)
    await pilot.press("p")
    await _until(pilot, lambda: engine.introspector.capture is False)
    await _until(pilot, lambda: "capture off" in str(app.query_one("#summary", Static).render()))
    await pilot.press("p")
    await _until(pilot, lambda: engine.introspector.capture is True)


def _labels(tree: Tree[Any]) -> list[str]:
    out: list[str] = []

    def walk(node: Any) -> None:
        out.append(str(node.label))
        for child in node.children:
            walk(child)

    walk(tree.root)
    return out


async def test_top_key_t_shows_the_tree_of_the_highlighted_task(
    top: tuple[TopApp, Any], engine: Engine
) -> None:
    app, pilot = top
    more, gate = threading.Event(), threading.Event()
    thread = family(engine, gate, more, key="kid", title="parent job")
    try:
        running, recent = _tables(app)
        await _until(pilot, lambda: running.row_count == 1 and recent.row_count == 2)
        running.focus()
        await pilot.press("t")
        await _until(pilot, lambda: isinstance(app.screen, TreeScreen))
        tree = app.screen.query_one("#tree", Tree)
        await _until(pilot, lambda: len(_labels(tree)) == 3)
        labels = _labels(tree)
        assert "parent job" in labels[0] and "running" in labels[0]
        assert "child a" in labels[1] and "done" in labels[1] and "child b" in labels[2]
        more.set()  # a new child joins the open tree: fetched again while the parent runs
        await _until(pilot, lambda: len(_labels(tree)) == 4)
        await pilot.press("escape")
        await _until(pilot, lambda: not isinstance(app.screen, TreeScreen))

        # From the outcomes table (tab moves the focus there): a finished child's own tree.
        await pilot.press("tab")
        assert app.focused is recent
        title = _column(recent, 1)[recent.cursor_row]
        await pilot.press("enter")
        await _until(pilot, lambda: isinstance(app.screen, TreeScreen))
        tree = app.screen.query_one("#tree", Tree)
        await _until(pilot, lambda: title in _labels(tree)[0])
        assert len(_labels(tree)) == 1
        await pilot.press("escape")
    finally:
        more.set()
        gate.set()
        thread.join(10)


async def test_top_key_shift_m_clears_memory_and_store(tmp_path: Path) -> None:
    with (
        Engine(store=LocalStore(tmp_path, sync=True), name="top-full") as engine,
        serve(engine) as handle,
    ):
        engine.get(RequestId("full", 1), CachingLevel.FULL, lambda: "kept", title="kept")
        engine.flush()
        assert engine.stats()["store"]["entries"] == 1
        app = TopApp(handle.url, refresh_interval=0.1)
        async with app.run_test(size=(140, 40)) as pilot:
            await pilot.press("M")
            await _until(
                pilot,
                lambda: len(engine.memory) == 0 and engine.stats()["store"]["entries"] == 0,
            )
            await pilot.press("q")


async def test_top_with_a_token(engine: Engine) -> None:
    with serve(engine, require_token=True, token="top-token") as handle:
        engine.get(RequestId("tok"), CachingLevel.MEMORY, lambda: 1, title="seen with token")
        for app in (  # the token in the URL, or given apart
            TopApp(handle.url, refresh_interval=0.1),
            TopApp(handle.ws_url, token="top-token", refresh_interval=0.1),
        ):
            async with app.run_test(size=(140, 40)) as pilot:
                _, recent = _tables(app)
                await _until(pilot, lambda: recent.row_count == 1)  # noqa: B023
                assert _column(recent, 1) == ["seen with token"]
                await pilot.press("q")
        refused = TopApp(handle.url.replace("top-token", "wrong"))
        async with refused.run_test() as pilot:
            await pilot.pause()
        assert refused.return_code == 1


async def test_top_exits_with_a_message_when_the_server_is_unreachable() -> None:
    app = TopApp("http://127.0.0.1:1/")
    async with app.run_test() as pilot:
        await pilot.pause()
    assert app.return_code == 1


def test_reckon_top_command_in_a_terminal_with_a_token_url(engine: Engine) -> None:
    """The real command, token in the URL as ``reckon serve`` prints it, in a pseudo-terminal."""
    env = dict(os.environ, TERM="xterm-256color", COLUMNS="140", LINES="40")
    env.pop("RECKON_OBSERVE", None)
    env.pop("RECKON_OBSERVE_TOKEN", None)
    with serve(engine, require_token=True, token="tty-token") as handle:
        engine.get(RequestId("tty"), CachingLevel.MEMORY, lambda: 1, title="terminal probe")
        child = pexpect.spawn(
            RECKON, ["top", handle.url], env=env, encoding="utf-8", timeout=60, dimensions=(40, 140)
        )
        try:
            child.expect("terminal probe")
            child.send("q")
            child.expect(pexpect.EOF)
        finally:
            child.close(force=True)
        assert child.exitstatus == 0
        bad = pexpect.spawn(
            RECKON,
            ["top", handle.url.replace("tty-token", "wrong")],
            env=env,
            encoding="utf-8",
            timeout=60,
            dimensions=(40, 140),
        )
        try:
            bad.expect("refused the token")
            bad.expect(pexpect.EOF)
        finally:
            bad.close(force=True)
        assert bad.exitstatus == 1
