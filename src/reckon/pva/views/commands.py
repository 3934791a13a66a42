"""The bodies of ``reckon pva top`` and ``reckon pva web`` (the typer wrappers in
:mod:`reckon.pva.cli` only parse arguments)."""

from __future__ import annotations

import asyncio
import signal
import sys

from reckon.pva import runloop
from reckon.pva.views.model import resolve


def run_top(patterns: list[str], share: str | None = None) -> int:
    """The live PV table until ``q``; returns the exit status."""
    from reckon.pva.views.top import PvTopApp

    names = runloop.run(resolve(patterns, share=share))
    app = PvTopApp(names)
    app.run()
    return app.return_code or 0


def run_web(
    patterns: list[str],
    *,
    host: str = "127.0.0.1",
    port: int = 0,
    token: str | None = None,
    share: str | None = None,
) -> int:
    """Serve the live PV page until interrupted, printing its address first."""
    from reckon.pva.views.web import PvWebServer

    async def main() -> None:
        names = await resolve(patterns, share=share)
        web = PvWebServer(names, host=host, port=port, token=token)
        await web.start()
        print(f"reckon pva web: {web.url} ({len(names)} PVs); Ctrl-C stops", flush=True)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        try:
            await stop.wait()
        finally:
            await web.stop()

    runloop.run(main())
    sys.stdout.flush()
    return 0
