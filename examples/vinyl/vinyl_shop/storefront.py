"""Storefront: what customers call; it composes the other four services."""

from __future__ import annotations

from vinyl_api.vinyl import catalog_pb2, orders_pb2, storefront_pb2
from vinyl_api.vinyl.catalog_reckon import Catalog
from vinyl_api.vinyl.inventory_reckon import Inventory
from vinyl_api.vinyl.orders_reckon import Orders
from vinyl_api.vinyl.recommendations_reckon import Recommendations
from vinyl_api.vinyl.storefront_reckon import Storefront

from reckon.service import CallContext, Service


class StorefrontService(Service):
    definition = Storefront
    requires = (Catalog, Inventory, Orders, Recommendations)

    async def RecordPage(
        self, request: storefront_pb2.PageRequest, ctx: CallContext
    ) -> storefront_pb2.Page:
        rid = catalog_pb2.RecordId(id=request.record_id)
        record = await ctx.locate(Catalog).GetRecord(rid)
        stock = await ctx.locate(Inventory).GetStock(rid)
        recommended = await ctx.locate(Recommendations).Recommend(rid)
        return storefront_pb2.Page(
            record=record, copies_in_stock=stock.copies, recommended=recommended.records
        )

    async def Buy(self, request: storefront_pb2.BuyRequest, ctx: CallContext) -> orders_pb2.Order:
        # The customer's credentials travel with the call: Orders sees the same user.
        return await ctx.locate(Orders).PlaceOrder(
            orders_pb2.OrderRequest(record_id=request.record_id, copies=request.copies or 1)
        )
