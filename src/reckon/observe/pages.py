"""Serving a page and its websocket safely: the rules every reckon web view shares.

The observe page and the PV page (``reckon pva web``) are both a few static files and a
websocket on one port. What keeps them safe is written once, here: which files are served and
with which headers, which browser origins may open the websocket (only the page itself, so a web
site the user happens to visit cannot drive it), when a token is needed (any bind that is not
loopback) and how it is compared (in constant time).
"""

from __future__ import annotations

import hmac
import ipaddress
import os
import secrets
from http import HTTPStatus
from pathlib import Path
from urllib.parse import urlsplit

from websockets.asyncio.server import ServerConnection
from websockets.datastructures import Headers
from websockets.http11 import Response as HttpResponse

from reckon.errors import ConfigurationError

__all__ = [
    "TOKEN_ENV",
    "PageFiles",
    "is_loopback",
    "origin_allowed",
    "server_token",
    "token_matches",
]

#: where a server that needs a token and was given none reads it (else it makes one up)
TOKEN_ENV = "RECKON_OBSERVE_TOKEN"

CONTENT_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
}
# The page may talk to its own server and show images drawn in the browser, nothing else.
_HEADERS = (
    ("Cache-Control", "no-store"),
    ("X-Content-Type-Options", "nosniff"),
    (
        "Content-Security-Policy",
        "default-src 'self'; connect-src 'self' ws: wss:; img-src 'self' data:",
    ),
)


def is_loopback(host: str) -> bool:
    """True for addresses only this machine can reach; any other bind needs a token."""
    if host in ("localhost", "ip6-localhost"):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def server_token(
    host: str, token: str | None, require_token: bool | None, exposes: str
) -> str | None:
    """The token a server bound to ``host`` asks of its clients (None: it asks none).

    ``require_token=None`` decides by the bind: a token when the bind is not loopback, or when
    one is given. ``False`` on a bind that is not loopback is refused: it would expose
    ``exposes`` to the network with no credential. A token needed and not given comes from
    ``RECKON_OBSERVE_TOKEN``, else is made at random (the server prints it in its URL)."""
    if require_token is None:
        require_token = not is_loopback(host) or token is not None
    elif not require_token and not is_loopback(host):
        raise ConfigurationError(
            f"binding {host!r} exposes {exposes} beyond this machine: it requires a token "
            "(leave require_token unset, or bind 127.0.0.1)"
        )
    if not require_token:
        return None
    return token if token is not None else os.environ.get(TOKEN_ENV) or secrets.token_urlsafe(24)


def origin_allowed(origin: str | None, host: str, port: int) -> bool:
    """Browsers send Origin; only the server's own page (same host and port, or loopback on both
    sides) may open the websocket. Programs send no Origin and are let through here."""
    if origin is None:
        return True
    parts = urlsplit(origin)
    if parts.port != port:
        return False
    hostname = parts.hostname or ""
    return hostname == host.strip("[]") or (is_loopback(hostname) and is_loopback(host))


def token_matches(expected: str | None, presented: object) -> bool:
    """Whether ``presented`` is the token; compared in constant time. No token expected: True."""
    if expected is None:
        return True
    if not isinstance(presented, str):
        return False
    return hmac.compare_digest(presented.encode(), expected.encode())


class PageFiles:
    """The static files of a page, read once: ``/`` is ``index.html``."""

    def __init__(self, directory: Path) -> None:
        self.files: dict[str, tuple[bytes, str]] = {}
        for path in directory.glob("*"):
            ctype = CONTENT_TYPES.get(path.suffix)
            if ctype is not None and path.is_file():
                self.files["/" + path.name] = (path.read_bytes(), ctype)
        if "/index.html" in self.files:
            self.files["/"] = self.files["/index.html"]

    def respond(self, connection: ServerConnection, path: str) -> HttpResponse:
        """The file at ``path`` with the page's headers, or 404."""
        entry = self.files.get(path)
        if entry is None:
            return connection.respond(HTTPStatus.NOT_FOUND, f"not found: {path}\n")
        body, ctype = entry
        headers = Headers([("Content-Type", ctype), ("Content-Length", str(len(body))), *_HEADERS])
        return HttpResponse(200, "OK", headers, body)
