"""Inventory: copies on the shelf; reservations are transactions in its database.

``WatchStock`` streams a record's level as it changes: each reservation bumps a version number and
wakes the watchers, which read the level again and send it.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass

from vinyl_api.vinyl import catalog_pb2, inventory_pb2
from vinyl_api.vinyl.inventory_reckon import Inventory

from reckon.errors import ServiceCallError
from reckon.service import CallContext, Query, Service


@dataclass(frozen=True)
class Shelf:
    record_id: str
    copies: int


COPIES = Query(Shelf, "SELECT record_id, copies FROM shelf WHERE record_id = ?")


class InventoryService(Service):
    definition = Inventory
    migrations = (
        "CREATE TABLE shelf (record_id TEXT PRIMARY KEY, copies INTEGER NOT NULL"
        " CHECK (copies >= 0))",
        "INSERT INTO shelf VALUES ('kob', 2), ('bt', 1), ('als', 3), ('ar', 5), ('dsm', 0),"
        " ('ws', 1)",
    )

    async def ready(self) -> None:
        self._changed = asyncio.Condition()
        self._version = 0  # bumped by every change of any level

    def _level(self, record_id: str) -> Shelf:
        shelf = self.ctx.db.fetch_one(COPIES, (record_id,))
        if shelf is None:
            raise ServiceCallError(f"record {record_id!r} is not stocked", "NOT_FOUND")
        return shelf

    async def GetStock(
        self, request: catalog_pb2.RecordId, ctx: CallContext
    ) -> inventory_pb2.StockLevel:
        shelf = self._level(request.id)
        return inventory_pb2.StockLevel(record_id=shelf.record_id, copies=shelf.copies)

    async def Reserve(
        self, request: inventory_pb2.Reservation, ctx: CallContext
    ) -> inventory_pb2.StockLevel:
        if request.copies <= 0:
            raise ServiceCallError("reserve at least one copy", "INVALID_ARGUMENT")
        with self.ctx.db.transaction() as conn:
            shelf = self._level(request.record_id)
            if shelf.copies < request.copies:
                raise ServiceCallError(
                    f"only {shelf.copies} copies of {request.record_id!r} left",
                    "FAILED_PRECONDITION",
                )
            conn.execute(
                "UPDATE shelf SET copies = copies - ? WHERE record_id = ?",
                (request.copies, request.record_id),
            )
        ctx.log.info("reserved", record=request.record_id, copies=request.copies)
        async with self._changed:
            self._version += 1
            self._changed.notify_all()
        return inventory_pb2.StockLevel(
            record_id=request.record_id, copies=shelf.copies - request.copies
        )

    async def WatchStock(
        self, request: catalog_pb2.RecordId, ctx: CallContext
    ) -> AsyncIterator[inventory_pb2.StockLevel]:
        last = None
        while True:
            async with self._changed:
                seen = self._version
                shelf = self._level(request.id)
            if shelf.copies != last:
                last = shelf.copies
                yield inventory_pb2.StockLevel(record_id=shelf.record_id, copies=shelf.copies)
            async with self._changed:
                while self._version == seen:
                    await self._changed.wait()
