"""Start a server because the environment asks for one: ``RECKON_OBSERVE=127.0.0.1:PORT``.

The core must not import observe (layers import downwards only), so the engine cannot start a
server by itself. Instead :func:`autostart` is called by whatever runs the user's code: the
program itself (one line, a no-op when the variable is unset), ``python -m reckon.observe
script.py`` (which calls it, then runs the script), or a higher layer when it creates its engine.
It serves the process-wide default engine unless given one.
"""

from __future__ import annotations

import os
import sys
import threading
from typing import TYPE_CHECKING

from reckon.errors import ConfigurationError

if TYPE_CHECKING:
    from reckon.core import Engine
    from reckon.observe.server import ServerHandle

ENV = "RECKON_OBSERVE"

_lock = threading.Lock()
_handle: ServerHandle | None = None


def parse_address(value: str) -> tuple[str, int]:
    """``"127.0.0.1:8765"``, ``":8765"`` (loopback) or ``"8765"`` as (host, port)."""
    text = value.strip()
    host, sep, port_text = text.rpartition(":")
    if not sep:
        host, port_text = "", text
    host = host.strip("[]") or "127.0.0.1"
    try:
        port = int(port_text)
    except ValueError:
        raise ConfigurationError(
            f"{ENV}={value!r}: expected HOST:PORT such as 127.0.0.1:8765 (port 0 picks one)"
        ) from None
    if not 0 <= port <= 65535:
        raise ConfigurationError(f"{ENV}={value!r}: port {port} is outside 0..65535")
    return host, port


def autostart(engine: Engine | None = None) -> ServerHandle | None:
    """Serve ``engine`` (default: the process-wide engine) when ``$RECKON_OBSERVE`` is set.

    Idempotent: the first call in a process starts the server, later calls return it (until it
    is stopped: then the next call starts a new one). Returns
    None when the variable is unset or empty. Prints the URL (with the token, if one is needed)
    to stderr so the person who set the variable can find it.
    """
    global _handle
    value = os.environ.get(ENV, "").strip()
    if not value:
        return None
    host, port = parse_address(value)
    if engine is None:
        # Outside the lock: creating the default engine runs the core's on_engine_created hooks,
        # and the package root's hook calls autostart() itself when $RECKON_OBSERVE is set.
        from reckon.core import default_engine

        engine = default_engine()
    with _lock:
        if _handle is not None and _handle.running:
            return _handle
        from reckon.observe.server import serve

        _handle = serve(engine, host, port)
        print(f"reckon observe: serving {_handle.url}", file=sys.stderr, flush=True)
        return _handle


def _reset_for_tests() -> None:
    """Forget the started server (stopping it): tests start several in one process."""
    global _handle
    with _lock:
        if _handle is not None:
            _handle.stop()
        _handle = None
