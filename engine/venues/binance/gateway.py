"""Order entry: the WebSocket API first, REST when the WebSocket API could not take the request at all.

Falling back is safe only when nothing was sent (a connect failure): after bytes left, the outcome is unknown and
the OMS must query instead of resending, since Binance keeps client order ids unique only among open orders.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from engine.errors import VenueServerError
from engine.venues.binance.rest import BinanceRest
from engine.venues.binance.wsapi import WsApi


class OrderGateway:
    def __init__(self, rest: BinanceRest, ws_api: WsApi | None = None) -> None:
        self.rest = rest
        self.ws_api = ws_api
        self.fallbacks = 0
        # place_fast(inst, buy, lots, ticks | None, tif, reduce_only, cid, decision_ns) -> Future | None: a LIMIT
        # or MARKET order from integer lots and ticks, written, signed and sent in C before it returns (the WebSocket
        # API's own method, so no frame in between); None when that path cannot take it now and nothing was sent.
        self.place_fast: Callable[..., asyncio.Future | None] = getattr(ws_api, "place_fast", None) or _no_fast_path
        # gate(inst, sf, position, risk, live, orders, stale_ns) -> ext.orders.OrderGate | None: risk check and
        # order.place in one C call (engine.node fires it); fired(rid, decision_ns) -> the future of its answer
        self.gate: Callable[..., Any] = getattr(ws_api, "gate", None) or _no_fast_path
        self.fired: Callable[..., asyncio.Future] = getattr(ws_api, "fired", None) or _no_fast_path

    async def place(self, params: dict[str, Any]) -> dict:
        if self.ws_api is not None:
            try:
                return await self.ws_api.place_order(**params)
            except VenueServerError as exc:
                if exc.sent:
                    raise
                self.fallbacks += 1
        return await self.rest.place_order(**params)

    def place_now(self, params: dict[str, Any], decision_ns: int = 0) -> asyncio.Future:
        """The order is written before this returns when the WebSocket API can send at once (``send_now`` of
        the picows transport); returns the future of the answer. A request that could not be sent at all
        (``sent=False``) goes over REST, as in ``place``; a WebSocket API without ``send_now``: ``place`` in a
        task."""
        send_now = getattr(self.ws_api, "place_order_now", None)
        if send_now is None:
            return asyncio.ensure_future(self.place(params))
        answer = send_now(params, decision_ns)
        out = asyncio.get_running_loop().create_future()
        answer.add_done_callback(lambda f: self._fallback_or_pass(params, f, out))
        return out

    def _fallback_or_pass(self, params: dict[str, Any], answer: asyncio.Future, out: asyncio.Future) -> None:
        exc = None if answer.cancelled() else answer.exception()
        if isinstance(exc, VenueServerError) and not exc.sent:
            self.fallbacks += 1
            rest = asyncio.ensure_future(self.rest.place_order(**params))
            rest.add_done_callback(lambda f: _copy(f, out))
            return
        _copy(answer, out)

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


def _no_fast_path(*_args: Any) -> None:
    return None


def _copy(src: asyncio.Future, dst: asyncio.Future) -> None:
    if dst.done():
        return
    if src.cancelled():
        dst.cancel()
    elif src.exception() is not None:
        dst.set_exception(src.exception())
    else:
        dst.set_result(src.result())
