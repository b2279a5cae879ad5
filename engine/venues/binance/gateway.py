"""Order entry: the WebSocket API first, REST when the WebSocket API could not take the request at all.

Falling back is safe only when nothing was sent (a connect failure): after bytes left, the outcome is unknown and
the OMS must query instead of resending, since Binance keeps client order ids unique only among open orders.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

from engine.errors import VenueServerError
from engine.metrics import HISTOGRAMS
from engine.venues.binance.rest import BinanceRest
from engine.venues.binance.wsapi import WsApi


class OrderGateway:
    """Order entry over the WebSocket API with REST as the fallback when nothing could be sent."""

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

    async def place(self, params: dict[str, Any], max_wait_ms: int | None = None,
                    on_sent: Callable[[], None] | None = None) -> dict:
        """Place one order (Binance's parameters); the venue's answer.

        ``max_wait_ms``: the longest the rate limiter may hold it, over both paths together; beyond it
        ``RiskRefused("deadline")`` and nothing is sent. ``on_sent``: called synchronously right before the
        request's bytes are written, once, on whichever path sends them; never when nothing was sent."""
        t0 = time.monotonic()
        if self.ws_api is not None:
            try:
                return await self.ws_api.place_order(max_wait_ms=max_wait_ms, on_sent=on_sent, **params)
            except VenueServerError as exc:
                if exc.sent:
                    raise
                self.fallbacks += 1
        return await self.rest.place_order(max_wait_ms=_left(max_wait_ms, t0), on_sent=on_sent, **params)

    def place_now(self, params: dict[str, Any], decision_ns: int = 0, max_wait_ms: int | None = None,
                  on_sent: Callable[[], None] | None = None) -> asyncio.Future:
        """The order is written before this returns when the WebSocket API can send at once (``send_now`` of
        the picows transport); returns the future of the answer. A request that could not be sent at all
        (``sent=False``) goes over REST, as in ``place``; a WebSocket API without ``send_now``: ``place`` in a
        task. ``max_wait_ms`` and ``on_sent`` as in ``place`` (the future fails with ``RiskRefused`` when the
        limiter would hold the order past ``max_wait_ms``)."""
        send_now = getattr(self.ws_api, "place_order_now", None)
        if send_now is None:                  # (picows's send_now records decision to send itself)
            return asyncio.ensure_future(self.place(params, max_wait_ms, _timed(on_sent, decision_ns)))
        t0 = time.monotonic()
        answer = send_now(params, decision_ns, max_wait_ms=max_wait_ms, on_sent=on_sent)
        out = asyncio.get_running_loop().create_future()
        answer.add_done_callback(lambda f: self._fallback_or_pass(params, f, out, _left(max_wait_ms, t0), on_sent))
        return out

    def _fallback_or_pass(self, params: dict[str, Any], answer: asyncio.Future, out: asyncio.Future,
                          max_wait_ms: int | None = None, on_sent: Callable[[], None] | None = None) -> None:
        exc = None if answer.cancelled() else answer.exception()
        if isinstance(exc, VenueServerError) and not exc.sent:
            self.fallbacks += 1
            rest = asyncio.ensure_future(self.rest.place_order(max_wait_ms=max_wait_ms, on_sent=on_sent, **params))
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


def _left(max_wait_ms: int | None, t0: float) -> int | None:
    """What is left of ``max_wait_ms`` since ``t0`` (``time.monotonic()``); None stays None."""
    if max_wait_ms is None:
        return None
    return max_wait_ms - int((time.monotonic() - t0) * 1000)


def _timed(on_sent: Callable[[], None] | None, decision_ns: int) -> Callable[[], None] | None:
    """``on_sent`` that first records decision (``decision_ns``, ``time.monotonic_ns``) to send (no stamp: as is)."""
    if not decision_ns:
        return on_sent

    def sent() -> None:
        HISTOGRAMS["decision_to_send"].observe((time.monotonic_ns() - decision_ns) / 1e9)
        if on_sent is not None:
            on_sent()
    return sent


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
