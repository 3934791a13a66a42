"""``reckon pva web NAME...``: a live web page of PVs, on one port (page at ``/``, websocket at
``/ws``).

The server monitors the PVs through reckon's client (:class:`~reckon.pva.views.model.PvWatch`)
and pushes JSON frames to each page: one per PV that changed, at most every ``PUSH_INTERVAL``
(a PV posting at 10 kHz costs each page 20 frames a second, not 10,000). A frame carries the
row (value, severity, rate, age), new history points for scalars, a 1-D array downsampled to
``MAX_POINTS`` and an NTNDArray image downsampled to ``MAX_PIXELS`` (8-bit, base64).

Memory per page is bounded in bytes: a page holds at most one waiting frame per PV (a newer one
replaces it) and at most ``max_client_bytes`` of them (or one frame, whatever its size, which
the limits on points and pixels bound); past that a PV's frame is dropped and rebuilt from the
current value once the page has caught up. The websocket's own send buffer is
bounded by ``write_limit``. Pages send nothing but the token, so incoming frames are capped
small.

Access follows the observe page's rules: 127.0.0.1 by default with no token; any other address
requires one (``token``, else ``$RECKON_OBSERVE_TOKEN``, else generated), given in the page's
URL (``?token=...``); the websocket also checks the Origin a browser sends.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import logging
import math
import time
from http import HTTPStatus
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import numpy as np
from websockets.asyncio.server import Server as WsServer
from websockets.asyncio.server import ServerConnection
from websockets.asyncio.server import serve as ws_serve
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request as HttpRequest
from websockets.http11 import Response as HttpResponse

from reckon.observe.pages import PageFiles, origin_allowed, server_token, token_matches
from reckon.pva.client import Client
from reckon.pva.views.model import PvState, PvWatch, image_of

log = logging.getLogger("reckon.pva.web")

WEB_DIR = Path(__file__).with_name("web")
#: seconds between two frames of one PV (changes in between are coalesced)
PUSH_INTERVAL = 0.05
#: points of a 1-D array sent to the page
MAX_POINTS = 2000
#: pixels of an image sent to the page
MAX_PIXELS = 256 * 256
#: bytes of frames waiting for one page
MAX_CLIENT_BYTES = 8 * 1024 * 1024
#: the websocket's send buffer high-water mark, bytes
WRITE_LIMIT = 256 * 1024
#: what a page may send (its token, once)
MAX_INCOMING = 4096
CLOSE_POLICY = 1008


def _finite(v: float) -> float | None:
    return v if math.isfinite(v) else None


def array_points(state: PvState) -> list[float | None] | None:
    """A 1-D numeric array, downsampled by striding to at most ``MAX_POINTS``."""
    if state.kind != "array" or state.value is None:
        return None
    try:
        arr = np.asarray(state.value.get("value"), dtype=float).reshape(-1)
    except (TypeError, ValueError):
        return None
    if arr.size > MAX_POINTS:
        arr = arr[:: math.ceil(arr.size / MAX_POINTS)]
    return [_finite(float(x)) for x in arr]


def image_frame(state: PvState) -> dict[str, Any] | None:
    """An NTNDArray as 8-bit pixels (grey or RGB) at most ``MAX_PIXELS`` large."""
    if state.kind != "image" or state.value is None:
        return None
    img = image_of(state.value)
    if img is None or img.size == 0:
        return None
    rows, cols = img.shape[0], img.shape[1]
    step = max(1, math.ceil(math.sqrt(rows * cols / MAX_PIXELS)))
    img = np.asarray(img[::step, ::step], dtype=float)
    lo, hi = float(np.nanmin(img)), float(np.nanmax(img))
    scaled = np.zeros(img.shape, np.uint8) if hi <= lo else (img - lo) * (255.0 / (hi - lo))
    pixels = np.nan_to_num(scaled).astype(np.uint8)
    return {
        "w": int(pixels.shape[1]),
        "h": int(pixels.shape[0]),
        "rgb": pixels.ndim == 3,
        "full": [int(cols), int(rows)],
        "data": base64.b64encode(pixels.tobytes()).decode(),
    }


class _Page:
    """One connected page: the frames waiting for it, at most one per PV."""

    def __init__(self, conn: ServerConnection, max_bytes: int) -> None:
        self.conn = conn
        self.max_bytes = max_bytes
        self.pending: dict[str, str] = {}
        self.bytes = 0
        self.stale: set[str] = set()
        self.ready = asyncio.Event()
        self.closed = False
        self.sent_points: dict[str, float] = {}

    def offer(self, name: str, frame: str) -> None:
        old = self.pending.pop(name, None)
        if old is not None:
            self.bytes -= len(old)
        if self.pending and self.bytes + len(frame) > self.max_bytes:
            self.stale.add(name)  # rebuilt from the current value once the page catches up
            return
        self.pending[name] = frame
        self.bytes += len(frame)
        self.ready.set()


class PvWebServer:
    """Serves the live PV page for ``names`` (read through ``client``)."""

    def __init__(
        self,
        names: list[str],
        *,
        client: Client | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        token: str | None = None,
        require_token: bool | None = None,
        max_client_bytes: int = MAX_CLIENT_BYTES,
    ) -> None:
        self.names = names
        self.client = client or Client()
        self._own_client = client is None
        self.host = host
        self._requested_port = port
        self.token = server_token(host, token, require_token, "the PVs")
        self.max_client_bytes = max_client_bytes
        self.watch = PvWatch(self.client, names)
        self._pages: set[_Page] = set()
        self._dirty: set[str] = set()
        self._server: WsServer | None = None
        self._flusher: asyncio.Task[None] | None = None
        self._page = PageFiles(WEB_DIR)

    # -- lifecycle -----------------------------------------------------------------------------

    async def start(self) -> PvWebServer:
        self.watch.listeners.append(lambda s: self._dirty.add(s.name))
        await self.watch.start()
        self._server = await ws_serve(
            self._handle,
            self.host,
            self._requested_port,
            process_request=self._process_request,
            max_size=MAX_INCOMING,
            write_limit=WRITE_LIMIT,
            compression=None,
            logger=log,
        )
        self._flusher = asyncio.get_running_loop().create_task(self._flush_loop())
        return self

    async def stop(self) -> None:
        if self._flusher is not None:
            self._flusher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._flusher
        if self._server is not None:
            self._server.close()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._server.wait_closed(), 2.0)
            self._server = None
        await self.watch.stop()
        if self._own_client:
            await self.client.close()

    async def __aenter__(self) -> PvWebServer:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    @property
    def port(self) -> int:
        if self._server is None:
            return self._requested_port
        return int(next(iter(self._server.sockets)).getsockname()[1])

    @property
    def url(self) -> str:
        """The page's address (with the token when one is required)."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        base = f"http://{host}:{self.port}/"
        return f"{base}?token={self.token}" if self.token else base

    def pending_bytes(self) -> int:
        """Bytes of frames waiting for the connected pages (each page's share is bounded)."""
        return sum(page.bytes for page in self._pages)

    # -- frames --------------------------------------------------------------------------------

    def frame(self, state: PvState, since: float = 0.0) -> dict[str, Any]:
        now = time.monotonic()
        age = state.age(now)
        out: dict[str, Any] = {
            "type": "pv",
            "name": state.name,
            "kind": state.kind,
            "text": state.text or (state.error if not state.updates else ""),
            "severity": state.severity,
            "severity_name": state.severity_name if state.connected else "",
            "message": state.message,
            "units": state.units,
            "rate": round(state.rate(now), 2),
            "age": None if age is None else round(age, 3),
            "updates": state.updates,
            "connected": state.connected,
            "error": state.error,
            "shape": list(state.shape),
            "points": [[t, _finite(v)] for t, v in state.history if t > since],
        }
        points = array_points(state)
        if points is not None:
            out["array"] = points
        image = image_frame(state)
        if image is not None:
            out["image"] = image
        return out

    def _send_frames(self, names: set[str]) -> None:
        for name in names:
            state = self.watch.states[name]
            for page in list(self._pages):
                since = page.sent_points.get(name, 0.0)
                frame = self.frame(state, since)
                if frame["points"]:
                    page.sent_points[name] = frame["points"][-1][0]
                page.offer(name, json.dumps(frame, allow_nan=False))

    async def _flush_loop(self) -> None:
        while True:
            await asyncio.sleep(PUSH_INTERVAL)
            dirty, self._dirty = self._dirty, set()
            for page in self._pages:
                if page.stale and not page.pending:
                    dirty |= page.stale
                    page.stale = set()
            if dirty:
                self._send_frames(dirty)

    # -- HTTP and websocket --------------------------------------------------------------------

    def _origin_allowed(self, origin: str | None) -> bool:
        return origin_allowed(origin, self.host, self.port)

    def _token_ok(self, presented: str | None) -> bool:
        return token_matches(self.token, presented)

    def _process_request(
        self, connection: ServerConnection, request: HttpRequest
    ) -> HttpResponse | None:
        parts = urlsplit(request.path)
        if request.headers.get("Upgrade", "").lower() == "websocket":
            if parts.path != "/ws" or not self._origin_allowed(request.headers.get("Origin")):
                return connection.respond(HTTPStatus.FORBIDDEN, "not allowed\n")
            token = parse_qs(parts.query).get("token", [None])[0]
            if not self._token_ok(token):
                return connection.respond(HTTPStatus.UNAUTHORIZED, "token required\n")
            return None
        return self._page.respond(connection, parts.path)

    async def _handle(self, conn: ServerConnection) -> None:
        page = _Page(conn, self.max_client_bytes)
        hello = {"type": "hello", "pvs": self.names}
        try:
            await conn.send(json.dumps(hello))
        except ConnectionClosed:
            return
        self._pages.add(page)
        self._send_frames(set(self.names))  # everything once, then what changes
        reader = asyncio.get_running_loop().create_task(self._drain_incoming(page))
        try:
            while not page.closed:
                await page.ready.wait()
                page.ready.clear()
                while page.pending:
                    name = next(iter(page.pending))
                    frame = page.pending.pop(name)
                    page.bytes -= len(frame)
                    await conn.send(frame)
        except ConnectionClosed:
            pass
        finally:
            self._pages.discard(page)
            reader.cancel()

    async def _drain_incoming(self, page: _Page) -> None:
        with contextlib.suppress(ConnectionClosed):
            async for _ in page.conn:
                pass  # pages have nothing to say; reading keeps pings and closes flowing
        page.closed = True
        page.ready.set()
