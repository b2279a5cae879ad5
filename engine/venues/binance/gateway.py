"""Order entry: the WebSocket API first, REST when the WebSocket API could not take the request at all.

Falling back is safe only when nothing was sent (a connect failure): after bytes left, the outcome is unknown and
the OMS must query instead of resending, since Binance keeps client order ids unique only among open orders.
"""

from __future__ import annotations

from typing import Any

from engine.errors import VenueServerError
from engine.venues.binance.rest import BinanceRest
from engine.venues.binance.wsapi import WsApi


class OrderGateway:
    def __init__(self, rest: BinanceRest, ws_api: WsApi | None = None) -> None:
        self.rest = rest
        self.ws_api = ws_api
        self.fallbacks = 0

    async def place(self, params: dict[str, Any]) -> dict:
        if self.ws_api is not None:
            try:
                return await self.ws_api.place_order(**params)
            except VenueServerError as exc:
                if exc.sent:
                    raise
                self.fallbacks += 1
        return await self.rest.place_order(**params)

    async def cancel(self, symbol: str, client_order_id: str) -> dict:
        if self.ws_api is not None:
            try:
                return await self.ws_api.cancel_order(symbol, client_order_id=client_order_id)
            except VenueServerError as exc:
                if exc.sent:
                    raise
                self.fallbacks += 1
        return await self.rest.cancel_order(symbol, client_order_id=client_order_id)

    async def query(self, symbol: str, client_order_id: str) -> dict:
        return await self.rest.query_order(symbol, client_order_id=client_order_id)
