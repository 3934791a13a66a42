"""UDP discovery over asyncio: the server's search responder and beacons, the client's search.

The protocol library encodes and decodes the datagrams; this module only owns sockets, timers
and the policy (who answers, how often to retry). Undecodable datagrams are logged at debug
level and ignored: on UDP there is no peer to drop.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, cast

from reckon.pva.config import Address
from reckon.pva.protocol import (
    Beacon,
    Discovery,
    Event,
    ProtocolError,
    SearchRequest,
    SearchResponse,
)
from reckon.pva.stopping import end_tasks

log = logging.getLogger("reckon.pva.discovery")


def new_guid() -> bytes:
    """12 random bytes: a server's identity for this run (clients notice restarts by it)."""
    return os.urandom(12)


def _resolve(host: str) -> str:
    try:
        return socket.gethostbyname(host)
    except OSError:
        return host


def _send_all(transport: asyncio.DatagramTransport, data: bytes, targets: list[Address]) -> None:
    """Send one datagram to every target; one that fails (no route) does not stop the rest."""
    for target in targets:
        try:
            transport.sendto(data, target)
        except OSError as exc:
            log.debug("datagram to %s failed: %s", target, exc)


def _messages(codec: Discovery, data: bytes, source: Address) -> list[Event]:
    """The messages of a datagram; none when it is malformed (logged: no peer to drop)."""
    try:
        return codec.decode(data)
    except ProtocolError as exc:
        log.debug("ignoring a bad datagram from %s:%d: %s", source[0], source[1], exc)
        return []


class _Datagram(asyncio.DatagramProtocol):
    def __init__(self, on_datagram: Callable[[bytes, Address], None]) -> None:
        self.on_datagram = on_datagram
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: tuple[str | Any, int]) -> None:
        try:
            self.on_datagram(data, (str(addr[0]), int(addr[1])))
        except Exception:  # a bad datagram never stops discovery
            log.exception("error handling a datagram from %s", addr)

    def error_received(self, exc: Exception) -> None:
        log.debug("UDP error: %s", exc)


async def open_udp(
    local: Address, on_datagram: Callable[[bytes, Address], None], *, reuse: bool = True
) -> tuple[asyncio.DatagramTransport, _Datagram]:
    """A UDP socket bound to ``local`` that may broadcast (and share its port, like pvxs)."""
    loop = asyncio.get_running_loop()
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST, 1)
        if reuse:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if hasattr(socket, "SO_REUSEPORT"):
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind(local)
        sock.setblocking(False)
    except OSError:
        sock.close()
        raise
    transport, proto = await loop.create_datagram_endpoint(
        lambda: _Datagram(on_datagram), sock=sock
    )
    return transport, proto


@dataclass(eq=False, kw_only=True)
class SearchResponder:
    """Answers UDP searches for the names ``has_channel`` knows, and sends beacons."""

    interface: str
    udp_port: int
    tcp_port: int
    guid: bytes
    has_channel: Callable[[str], bool]
    beacon_targets: list[Address]
    beacon_period: float
    change_count: Callable[[], int]
    searches_answered: int = field(default=0, init=False)

    def __post_init__(self) -> None:
        self.beacon_targets = [(_resolve(h), p) for h, p in self.beacon_targets]
        self.codec = Discovery()
        self.transport: asyncio.DatagramTransport | None = None
        self._beacon_task: asyncio.Task[None] | None = None
        self._beacon_seq = 0
        #: a search response's datagram for (sequence, found, cids): what never changes
        #: between answers (guid, address, port) is checked and encoded once, here
        self._answer_with = self.codec.search_answers(self.guid, self.interface, self.tcp_port)

    async def start(self) -> None:
        self.transport, _ = await open_udp((self.interface, self.udp_port), self._on_datagram)
        self.udp_port = self.transport.get_extra_info("sockname")[1]
        if self.beacon_targets:
            self._beacon_task = asyncio.create_task(self._beacons(), name="pva-beacons")

    async def stop(self) -> None:
        await end_tasks([self._beacon_task], within=1.0)
        self._beacon_task = None
        if self.transport is not None:
            self.transport.close()
            self.transport = None

    def _found(self, req: SearchRequest) -> tuple[int, ...] | None:
        """The cids of the names we have, or None when we have none and no answer is due."""
        cids = tuple(cid for cid, name in req.channels if self.has_channel(name))
        if not cids and not (req.reply_required or not req.channels):
            return None
        return cids

    def answer(self, req: SearchRequest, source: Address) -> SearchResponse | None:
        """The response to a search (None when we have none of the names and none is needed)."""
        cids = self._found(req)
        if cids is None:
            return None
        # every field is ours or was decoded: no checks (a search answer is on the connect path)
        return SearchResponse.unchecked(
            self.guid, req.sequence, self.interface, self.tcp_port, bool(cids), cids, "tcp"
        )

    def _on_datagram(self, data: bytes, source: Address) -> None:
        one = self.codec.search_one(data)  # the usual datagram, on a short path
        if one is not None:
            sequence, cid, name, host, port, required = one
            found = self.has_channel(name)
            if found or required:
                self._send(
                    self._answer_with(sequence, found, (cid,) if found else ()), host, port, source
                )
            return
        for ev in _messages(self.codec, data, source):
            if isinstance(ev, SearchRequest):
                cids = self._found(ev)
                if cids is not None:
                    answer = self._answer_with(ev.sequence, bool(cids), cids)
                    self._send(answer, ev.response_address, ev.response_port, source)

    def _send(self, answer: bytes, host: str, port: int, source: Address) -> None:
        """Send a search's answer where it asks (its sender, for an unspecified address)."""
        if self.transport is None:
            return
        if host == "0.0.0.0":  # (what decoding makes of any unspecified address)
            host = source[0]
        self.searches_answered += 1
        self.transport.sendto(answer, (host, port or source[1]))

    async def _beacons(self) -> None:
        # Fast beacons right after start (clients waiting on a restart find us at once), then
        # the configured period, as pvxs does.
        delays = [0.0, 0.5, 1.0, 2.0, 4.0]
        while True:
            delay = delays.pop(0) if delays else self.beacon_period
            await asyncio.sleep(min(delay, self.beacon_period))
            self.send_beacon()

    def send_beacon(self) -> None:
        if self.transport is None:
            return
        beacon = Beacon(
            guid=self.guid,
            sequence=self._beacon_seq & 0xFF,
            change_count=self.change_count() & 0xFFFF,
            address=self.interface,
            port=self.tcp_port,
        )
        self._beacon_seq += 1
        _send_all(self.transport, self.codec.encode(beacon), self.beacon_targets)


class SearchClient:
    """The client's UDP socket: sends searches, routes their responses to a callback (beacons
    are ignored: a channel searches again on its own when its server goes away)."""

    def __init__(
        self,
        targets: list[Address],
        on_response: Callable[[SearchResponse, Address], None],
    ) -> None:
        self.targets = [(_resolve(h), p) for h, p in targets]
        self.on_response = on_response
        self.codec = Discovery()
        self.transport: asyncio.DatagramTransport | None = None
        self.port = 0

    async def start(self) -> None:
        self.transport, _ = await open_udp(("0.0.0.0", 0), self._on_datagram, reuse=False)
        self.port = int(self.transport.get_extra_info("sockname")[1])

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()
            self.transport = None

    def search(self, sequence: int, channels: list[tuple[int, str]]) -> None:
        if self.transport is None or not channels:
            return
        # one datagram per batch of names; pvxs packs as many as fit in 1400 bytes
        batch: list[tuple[int, str]] = []
        size = 0
        for cid, name in channels:
            if batch and size + len(name) + 8 > 1200:
                self._send(sequence, batch)
                batch, size = [], 0
            batch.append((cid, name))
            size += len(name) + 8
        if batch:
            self._send(sequence, batch)

    def _send(self, sequence: int, batch: list[tuple[int, str]]) -> None:
        assert self.transport is not None
        req = SearchRequest(
            sequence=sequence,
            channels=tuple(batch),
            response_address="0.0.0.0",
            response_port=self.port,
            reply_required=False,
            unicast=True,
        )
        _send_all(self.transport, self.codec.encode(req), self.targets)

    def _on_datagram(self, data: bytes, source: Address) -> None:
        for ev in _messages(self.codec, data, source):
            if isinstance(ev, SearchResponse):
                self.on_response(ev, source)
