"""Headless Chromium for the web-page tests, started one way (Debian's chromium through
Playwright, with the flags this machine's closed network needs and a fresh profile).

At the top of ``tests/`` (on sys.path through its conftest) so the observe page and the PV page
tests share it.
"""

from __future__ import annotations

import contextlib
import os
import shutil
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

CHROMIUM = os.environ.get("RECKON_CHROMIUM", "/usr/bin/chromium")
# Without the background-networking flags Chromium stalls on refused connections.
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
HAVE_CHROMIUM = bool(shutil.which(CHROMIUM)) or Path(CHROMIUM).exists()


@contextlib.asynccontextmanager
async def chromium(profile: Path) -> AsyncIterator[Any]:
    """A browser context with a fresh profile in ``profile``, closed on exit."""
    from playwright.async_api import async_playwright

    async with async_playwright() as pw:
        context = await pw.chromium.launch_persistent_context(
            str(profile),
            executable_path=CHROMIUM,
            args=ARGS,
            headless=True,
            bypass_csp=True,  # wait_for_function evaluates strings; the page runs with its CSP
            viewport={"width": 1400, "height": 1000},
        )
        try:
            yield context
        finally:
            await context.close()
