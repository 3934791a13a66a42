"""Orders: placed by logged-in customers; each order gets a receipt in the service's file area."""

from __future__ import annotations

from dataclasses import dataclass

from vinyl_api.vinyl import catalog_pb2, inventory_pb2, orders_pb2
from vinyl_api.vinyl.catalog_reckon import Catalog
from vinyl_api.vinyl.inventory_reckon import Inventory
from vinyl_api.vinyl.orders_reckon import Orders

from reckon.errors import UnauthenticatedError
from reckon.service import CallContext, Query, Service


@dataclass(frozen=True)
class OrderRow:
    id: int
    customer: str
    record_id: str
    copies: int
    total_cents: int


MINE = Query(
    OrderRow,
    "SELECT id, customer, record_id, copies, total_cents FROM orders WHERE customer = ? "
    "ORDER BY id",
)


class OrdersService(Service):
    definition = Orders
    requires = (Catalog, Inventory)
    migrations = (
        "CREATE TABLE orders (id INTEGER PRIMARY KEY AUTOINCREMENT, customer TEXT NOT NULL,"
        " record_id TEXT NOT NULL, copies INTEGER NOT NULL, total_cents INTEGER NOT NULL)",
    )

    async def PlaceOrder(
        self, request: orders_pb2.OrderRequest, ctx: CallContext
    ) -> orders_pb2.Order:
        if ctx.user is None:  # the deployment sets auth = "basic"; this guards direct use
            raise UnauthenticatedError("log in to place an order")
        record = await ctx.locate(Catalog).GetRecord(catalog_pb2.RecordId(id=request.record_id))
        await ctx.locate(Inventory).Reserve(
            inventory_pb2.Reservation(record_id=request.record_id, copies=request.copies)
        )
        total = record.price_cents * request.copies
        cur = self.ctx.db.conn.execute(
            "INSERT INTO orders (customer, record_id, copies, total_cents) VALUES (?, ?, ?, ?)",
            (ctx.user.name, request.record_id, request.copies, total),
        )
        order = orders_pb2.Order(
            id=cur.lastrowid or 0,
            customer=ctx.user.name,
            record_id=request.record_id,
            copies=request.copies,
            total_cents=total,
        )
        self.ctx.files.write_text(
            f"receipts/{order.id:06d}.txt",
            f"{ctx.user.name} bought {request.copies} x {record.artist} - {record.title}: "
            f"${total / 100:.2f}\n",
        )
        ctx.log.info("order placed", order=order.id, customer=order.customer)
        return order

    async def ListOrders(
        self, request: orders_pb2.ListOrdersRequest, ctx: CallContext
    ) -> orders_pb2.OrderList:
        if ctx.user is None:
            raise UnauthenticatedError("log in to see your orders")
        rows = self.ctx.db.fetch(MINE, (ctx.user.name,))
        return orders_pb2.OrderList(
            orders=[
                orders_pb2.Order(
                    id=r.id,
                    customer=r.customer,
                    record_id=r.record_id,
                    copies=r.copies,
                    total_cents=r.total_cents,
                )
                for r in rows
            ]
        )
