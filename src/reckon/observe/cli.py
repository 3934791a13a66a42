"""The observe commands of ``reckon``: ``serve``, ``shell`` and ``top``."""

from __future__ import annotations

import signal
import sys
import tempfile
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

if TYPE_CHECKING:
    from reckon.observe.shell import ConsoleKind


app = typer.Typer(no_args_is_help=True, rich_markup_mode=None)

URL_HELP = "Server address, e.g. http://127.0.0.1:8765/ (default: $RECKON_OBSERVE, else that one)"


@app.command()
def serve(
    host: Annotated[
        str, typer.Option(help="Address to bind; anything but loopback needs a token.")
    ] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port (0 picks a free one).")] = 8765,
    cache_dir: Annotated[
        Path | None, typer.Option("--cache-dir", help="Serve the engine of this cache directory.")
    ] = None,
    demo: Annotated[
        bool | None,
        typer.Option(
            "--demo/--no-demo", help="Run a demonstration workload (default: without --cache-dir)."
        ),
    ] = None,
    token: Annotated[
        str | None,
        typer.Option(
            help="Token clients must present (default: $RECKON_OBSERVE_TOKEN, else generated)."
        ),
    ] = None,
    require_token: Annotated[
        bool, typer.Option("--require-token", help="Ask for a token on loopback too.")
    ] = False,
    workers: Annotated[int, typer.Option(help="Demo workload threads.")] = 3,
) -> None:
    """Serve an engine's introspection: websocket API and web page on one port."""
    from reckon.core import Engine, LocalStore
    from reckon.errors import ConfigurationError, ReckonError
    from reckon.observe.server import serve as start_server
    from reckon.observe.workload import DemoWorkload

    if demo is None:
        demo = cache_dir is None
    temp: tempfile.TemporaryDirectory[str] | None = None
    if cache_dir is None:
        temp = tempfile.TemporaryDirectory(prefix="reckon-serve-")
        cache_dir = Path(temp.name)
    try:
        engine = Engine(store=LocalStore(cache_dir), name=f"serve:{cache_dir.name}")
        handle = start_server(
            engine, host, port, token=token, require_token=True if require_token else None
        )
    except ReckonError as exc:
        print(f"reckon serve: {exc}", file=sys.stderr)
        if temp is not None:
            temp.cleanup()
        raise typer.Exit(2 if isinstance(exc, ConfigurationError) else 1) from None
    workload = DemoWorkload(engine, workers=workers).start() if demo else None
    print(f"reckon observe: serving {handle.url}", flush=True)
    print(f"  websocket API {handle.ws_url}   cache {cache_dir}", flush=True)
    if handle.token:
        print(f"  token {handle.token}", flush=True)
    print("  reckon shell / reckon top with the URL above; Ctrl-C stops", flush=True)
    done = threading.Event()

    def stop(*_: Any) -> None:
        done.set()

    signal.signal(signal.SIGTERM, stop)
    try:
        while not done.wait(0.5):
            pass
    except KeyboardInterrupt:
        pass
    finally:
        if workload is not None:
            workload.stop()
        handle.stop()
        engine.close()
        if temp is not None:
            temp.cleanup()


@app.command()
def shell(
    url: Annotated[str | None, typer.Argument(help=URL_HELP, metavar="URL")] = None,
    token: Annotated[str | None, typer.Option(help="Token, when the server requires one.")] = None,
    console: Annotated[
        str, typer.Option(help="auto (IPython when installed), ipython or plain.")
    ] = "auto",
    simple_prompt: Annotated[
        bool,
        typer.Option("--simple-prompt", help="IPython without prompt_toolkit (dumb terminals)."),
    ] = False,
) -> None:
    """An interactive Python session connected to a server: tasks(), status(), tree(id), watch()."""
    from reckon.errors import ConfigurationError, ObserveError
    from reckon.observe.shell import run_shell

    if console not in ("auto", "ipython", "plain"):
        raise typer.BadParameter("use auto, ipython or plain", param_hint="--console")
    kind: ConsoleKind = console  # type: ignore[assignment]
    try:
        run_shell(url, token=token, console=kind, simple_prompt=simple_prompt)
    except (ObserveError, ConfigurationError) as exc:
        print(f"reckon shell: {exc}", file=sys.stderr)
        raise typer.Exit(2 if isinstance(exc, ConfigurationError) else 1) from None


@app.command()
def top(
    url: Annotated[str | None, typer.Argument(help=URL_HELP, metavar="URL")] = None,
    token: Annotated[str | None, typer.Option(help="Token, when the server requires one.")] = None,
) -> None:
    """A live full-screen view: running computations, outcomes, hit ratios, cache use."""
    from reckon.errors import ConfigurationError, ObserveError
    from reckon.observe.client import Client
    from reckon.observe.top import TopApp

    try:
        app_ = TopApp(url, token=token)
        # Reach the server (and present the token) before the screen is taken over, so an
        # unreachable server or a refused token is one line on a terminal left as it was.
        Client(url, token=token, name="top").close()
    except ConfigurationError as exc:
        print(f"reckon top: {exc}", file=sys.stderr)
        raise typer.Exit(2) from None
    except ObserveError as exc:
        print(f"reckon top: {exc}", file=sys.stderr)
        raise typer.Exit(1) from None
    app_.run()
    if app_.return_code:
        raise typer.Exit(app_.return_code)
