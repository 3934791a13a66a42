"""The web page in headless Chromium (Debian's, driven by Playwright)."""

from __future__ import annotations

import asyncio
import os
import threading
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from _browser import HAVE_CHROMIUM, chromium
from observe_workloads import family

from reckon.core import CachingLevel, Engine, RequestId
from reckon.observe import ServerHandle, serve

SCREENSHOT_DIR = os.environ.get("RECKON_SCREENSHOTS")  # set to keep a picture of the page

pytestmark = pytest.mark.skipif(
    not HAVE_CHROMIUM,
    reason="chromium is not installed (make sysdeps installs it)",
)


@pytest.fixture
async def browser(tmp_path: Path) -> AsyncIterator[Any]:
    async with chromium(tmp_path / "chromium-profile") as context:
        yield context


async def test_page_shows_a_new_computation_within_a_second(
    browser: Any, server: ServerHandle, engine: Engine, blocked: Any
) -> None:
    for i in range(20):  # some history, hits and misses, for the charts
        await asyncio.to_thread(
            engine.get,
            RequestId("web", i % 7),
            CachingLevel.MEMORY,
            lambda: b"v" * 5000,
            title=f"warm-up {i % 7}",
        )
    page = await browser.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    await page.goto(server.url)
    await page.wait_for_selector("#conn[data-state='open']", timeout=15_000)
    await page.wait_for_selector("tr[data-task]", timeout=15_000)

    job = await asyncio.to_thread(blocked, "browser probe")
    row = page.locator("#tasks tbody tr", has_text="browser probe")
    await row.wait_for(timeout=15_000)
    # The row may first show "pending" (pushed before "running"); the next push moves it on.
    await page.locator("#tasks tbody tr[data-state='running']", has_text="browser probe").wait_for(
        timeout=5_000
    )

    # Status pushes fill the cards and charts.
    await page.wait_for_function(
        "document.getElementById('c-computed')?.textContent === '7'", timeout=10_000
    )
    assert await page.text_content("#c-memory") == "13"
    if SCREENSHOT_DIR:
        await page.wait_for_timeout(2500)  # a few status samples on the hit-rate chart
        await page.screenshot(path=str(Path(SCREENSHOT_DIR) / "observe-web.png"), full_page=True)

    # Cancel from the page.
    await row.locator("button[data-cancel]").click()
    await page.locator(
        "#tasks tbody tr[data-state='cancelled']", has_text="browser probe"
    ).wait_for(timeout=10_000)
    await asyncio.to_thread(job.release)
    assert type(job.error).__name__ == "ComputationCancelledError"

    # Filter by state, then by title.
    await page.select_option("#state-filter", "cancelled")
    await page.wait_for_function(
        "document.querySelectorAll('#tasks tbody tr').length === 1", timeout=10_000
    )
    assert "browser probe" in (await page.text_content("#tasks tbody") or "")
    await page.select_option("#state-filter", "")
    await page.fill("#filter", "warm-up 3")
    await page.wait_for_function(
        "document.querySelectorAll('#tasks tbody tr').length === 1", timeout=10_000
    )

    # The buttons: capture off and on, clear memory, clear history.
    await page.click("#btn-capture")
    await page.wait_for_selector("#btn-capture:text('capture: off')", timeout=10_000)
    assert engine.introspector.capture is False
    await page.click("#btn-capture")
    await page.wait_for_selector("#btn-capture:text('capture: on')", timeout=10_000)
    assert engine.introspector.capture is True
    assert len(engine.memory) > 0
    await page.click("#btn-clear-memory")
    await page.wait_for_function("document.getElementById('c-memory')?.textContent !== ''")
    for _ in range(100):
        if len(engine.memory) == 0:
            break
        await asyncio.sleep(0.05)
    assert len(engine.memory) == 0
    await page.fill("#filter", "")
    await page.click("#btn-clear-history")
    await page.wait_for_function(
        "document.querySelectorAll('#tasks tbody tr').length === 0", timeout=10_000
    )
    assert engine.introspector.history() == []
    assert errors == []


async def test_page_with_token(browser: Any, engine: Engine) -> None:
    with serve(engine, require_token=True, token="page-token") as handle:
        page = await browser.new_page()
        await page.goto(handle.url)  # the URL carries ?token=
        await page.wait_for_selector("#conn[data-state='open']", timeout=15_000)
        bad = await browser.new_page()
        await bad.goto(handle.url.replace("page-token", "nope"))
        await bad.wait_for_selector("#conn[data-state='closed']", timeout=15_000)
        assert "refused" in (await bad.text_content("#conn-text") or "")


# Counts the pixels of a canvas drawn in the page's accent colour (#4fb3ff) below ``top`` css px:
# the bars of the histogram and the memory line of the hit-rate chart.
_ACCENT_PIXELS = """([id, top]) => {
  const c = document.getElementById(id);
  const ratio = c.width / c.clientWidth;
  const y0 = Math.round(top * ratio);
  const data = c.getContext('2d').getImageData(0, y0, c.width, c.height - y0).data;
  let n = 0;
  for (let i = 0; i < data.length; i += 4) {
    if (Math.abs(data[i] - 79) < 30 && Math.abs(data[i + 1] - 179) < 30 && data[i + 2] > 220) n++;
  }
  return n;
}"""


async def _data(page: Any, selector: str, name: str) -> str | None:
    value: str | None = await page.get_attribute(selector, f"data-{name}")
    return value


async def test_charts_follow_the_pushes(browser: Any, server: ServerHandle, engine: Engine) -> None:
    page = await browser.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    await page.goto(server.url)
    await page.wait_for_selector("#conn[data-state='open']", timeout=15_000)
    # Two status pushes make the first sample; nothing has been requested yet.
    await page.wait_for_function(
        "Number(document.getElementById('chart-hits').dataset.samples) >= 1", timeout=10_000
    )
    assert await _data(page, "#chart-hits", "requests") == "0"
    assert await _data(page, "#chart-durations", "count") == "0"
    assert await page.evaluate(_ACCENT_PIXELS, ["chart-durations", 0]) == 0
    assert await page.evaluate(_ACCENT_PIXELS, ["chart-hits", 22]) == 0
    assert await _data(page, "#chart-usage", "memory-entries") == "0"

    # 6 computations, then 6 memory hits: 12 requests, half of them hits.
    for _ in range(2):
        for i in range(6):
            await asyncio.to_thread(
                engine.get,
                RequestId("chart", i),
                CachingLevel.MEMORY,
                lambda: b"c" * 1000,
                title=f"chart {i}",
            )

    # The histogram counts every finished computation, from the task events pushed.
    await page.wait_for_function(
        "document.getElementById('chart-durations').dataset.count === '6'", timeout=10_000
    )
    assert await page.evaluate(_ACCENT_PIXELS, ["chart-durations", 0]) > 0
    # The hit-rate series sums the counters of the status pushes.
    await page.wait_for_function(
        "document.getElementById('chart-hits').dataset.requests === '12'"
        " && document.getElementById('chart-hits').dataset.hits === '6'",
        timeout=10_000,
    )
    await page.wait_for_function(
        "document.getElementById('hit-now')?.textContent.includes('50.0% overall')",
        timeout=10_000,
    )
    assert await page.evaluate(_ACCENT_PIXELS, ["chart-hits", 22]) > 0
    # Cache usage follows the memory tier, down to empty after a clear.
    await page.wait_for_function(
        "document.getElementById('chart-usage').dataset.memoryEntries === '6'", timeout=10_000
    )
    assert int(await _data(page, "#chart-usage", "memory-bytes") or 0) >= 6000
    await asyncio.to_thread(engine.clear, CachingLevel.MEMORY)
    await page.wait_for_function(
        "document.getElementById('chart-usage').dataset.memoryEntries === '0'", timeout=10_000
    )
    assert errors == []


async def test_charts_start_from_the_servers_history(
    browser: Any, server: ServerHandle, engine: Engine
) -> None:
    """Requests made before the page opened are on its hit-rate chart: it draws the server's
    samples of the last minutes. (Without them it would only sum requests made while open.)"""
    from reckon.observe import Client

    for _ in range(2):
        for i in range(3):
            await asyncio.to_thread(
                engine.get, RequestId("before", i), CachingLevel.MEMORY, lambda: 1
            )
    with Client(server.url) as client:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            history = await asyncio.to_thread(client.status, True)
            if history["history"] and history["history"][-1]["engine"]["counters"]["requests"] >= 6:
                break
            await asyncio.sleep(0.2)
    page = await browser.new_page()
    await page.goto(server.url)
    await page.wait_for_selector("#conn[data-state='open']", timeout=15_000)
    await page.wait_for_function(
        "document.getElementById('chart-hits').dataset.requests === '6'"
        " && document.getElementById('chart-hits').dataset.hits === '3'",
        timeout=10_000,
    )


async def test_click_a_task_to_see_its_tree_of_children(
    browser: Any, server: ServerHandle, engine: Engine
) -> None:
    gate, more = threading.Event(), threading.Event()
    thread = family(engine, gate, more)
    try:
        page = await browser.new_page()
        errors: list[str] = []
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        await page.goto(server.url)
        await page.wait_for_selector("#conn[data-state='open']", timeout=15_000)
        parent_row = page.locator("#tasks tbody tr", has_text="family parent")
        await page.locator("#tasks tbody tr", has_text="child b").wait_for(timeout=10_000)
        parent_id = int(await parent_row.get_attribute("data-task") or 0)

        # A click on the row opens the panel: the task, then its tree.
        await parent_row.locator("td.title").click()
        panel = page.locator("#detail")
        await panel.wait_for(state="visible", timeout=5_000)
        assert await page.text_content("#detail-title") == f"Task #{parent_id}"
        assert page.url.endswith(f"#task={parent_id}")
        root = page.locator(f"#tree li.root[data-tree-task='{parent_id}']")
        await root.wait_for(timeout=10_000)
        await page.wait_for_function(
            "document.querySelectorAll('#tree li[data-tree-task]').length === 3", timeout=10_000
        )
        titles = await page.locator("#tree li:not(.root) .t").all_text_contents()
        assert titles == ["child a", "child b"]
        assert "running" in (await page.text_content("#detail-fields") or "")
        assert "selected" in (await parent_row.get_attribute("class") or "")

        # A child started now joins the open tree (pushed event, tree fetched again).
        more.set()
        await page.wait_for_function(
            "document.querySelectorAll('#tree li[data-tree-task]').length === 4", timeout=10_000
        )
        gate.set()
        await asyncio.to_thread(thread.join, 10)
        await page.locator("#detail-fields .state.done").wait_for(timeout=10_000)

        # A child in the tree opens its own panel, which links back to the parent.
        await page.locator("#tree a", has_text="child b").click()
        await page.wait_for_function(
            f"document.getElementById('detail-title')?.textContent !== 'Task #{parent_id}'",
            timeout=5_000,
        )
        # The title changes at once; the fields follow when the child's tree arrives, and
        # until then the panel shows no fields rather than the parent's.
        assert "family parent" not in (await page.text_content("#detail-fields") or "")
        await page.wait_for_function(
            "document.getElementById('detail-fields')?.textContent.includes('child b')",
            timeout=10_000,
        )
        fields = await page.text_content("#detail-fields") or ""
        assert "child b" in fields and f"#{parent_id}" in fields
        assert await page.locator("#tree li[data-tree-task]").count() == 1
        await page.click("#detail-fields a.parent")
        await page.wait_for_function(
            f"document.getElementById('detail-title')?.textContent === 'Task #{parent_id}'",
            timeout=5_000,
        )
        # Escape closes the panel; the address names a task, so a pasted link opens it.
        await page.keyboard.press("Escape")
        await panel.wait_for(state="hidden", timeout=5_000)
        linked = await browser.new_page()
        await linked.goto(f"{server.url}#task={parent_id}")
        await linked.wait_for_function(
            "document.querySelectorAll('#tree li[data-tree-task]').length === 4", timeout=15_000
        )
        # An unknown task says so instead of showing nothing.
        await linked.goto(f"{server.url}#task=999999")
        await linked.locator("#detail-error", has_text="not_found").wait_for(timeout=15_000)
        assert errors == []
    finally:
        more.set()
        gate.set()
        thread.join(10)
