"""Order entry over Binance's WebSocket API (``/ws-fapi/v1``): the low-latency path; REST is the fallback.

Requests are JSON text frames ``{"id", "method", "params"}``; signed params carry ``apiKey``, ``timestamp`` and an
HMAC ``signature`` over the params sorted by name. Answers are matched by id; ``rateLimits`` in each answer keep
the shared limiter in step. A dropped connection fails every request in flight with ``VenueServerError``: its
outcome is unknown and the OMS resolves it by querying the order.

A malformed answer (not JSON, not an object, an id that is not an integer, a status, error or result of the wrong
type) is counted in ``bad_answers``, logged without its content and skipped; the reader lives on. When its id is
a request in flight, that request fails with ``VenueServerError(UNEXPECTED_RESP)``: its outcome is unknown.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
from collections.abc import Callable
from typing import Any

import aiohttp
import orjson

from engine.errors import VenueClientError, VenueServerError
from engine.keys import Credentials
from engine.venues.binance import codes
from engine.venues.binance.limiter import RateLimiter
from engine.venues.binance.signing import ws_payload

log = logging.getLogger(__name__)

MAINNET_WS_API = "wss://ws-fapi.binance.com/ws-fapi/v1"
TESTNET_WS_API = "wss://testnet.binancefuture.com/ws-fapi/v1"

_LIMIT_HEADERS = {("REQUEST_WEIGHT", "MINUTE", 1): "X-MBX-USED-WEIGHT-1M",
                  ("ORDERS", "SECOND", 10): "X-MBX-ORDER-COUNT-10S",
                  ("ORDERS", "MINUTE", 1): "X-MBX-ORDER-COUNT-1M"}


class WsApi:
    """One WebSocket API session; connects lazily and again after a drop."""

    def __init__(self, url: str, session: aiohttp.ClientSession, creds: Credentials, now_ms,
                 limiter: RateLimiter | None = None, recv_window_ms: int = 5000, timeout_s: float = 10.0) -> None:
        self.url = url
        self.session = session
        self.creds = creds
        self.now_ms = now_ms
        self.limiter = limiter or RateLimiter()
        self.recv_window_ms = recv_window_ms
        self.timeout_s = timeout_s
        self._ids = itertools.count(1)
        self._pending: dict[int, asyncio.Future] = {}
        self._ws: aiohttp.ClientWebSocketResponse | None = None
        self._reader: asyncio.Task | None = None
        self._lock = asyncio.Lock()
        self.drops = 0
        self.bad_answers = 0
        self.on_clock_error: Callable[[], None] | None = None    # a -1021 answer: our clock estimate is off

    async def connect(self) -> None:
        async with self._lock:
            if self._ws is not None and not self._ws.closed:
                return
            try:
                self._ws = await self.session.ws_connect(self.url, heartbeat=30, max_msg_size=0)
            except (aiohttp.ClientError, OSError) as exc:
                raise VenueServerError(codes.DISCONNECTED, f"WebSocket API: {type(exc).__name__}", sent=False) from None
            self._reader = asyncio.create_task(self._read(self._ws))

    async def _read(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        try:
            async for msg in ws:
                if msg.type == aiohttp.WSMsgType.TEXT:
                    self._on_message(msg.data)
                elif msg.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.ERROR):
                    break
        finally:
            self._fail_pending()

    def _fail_pending(self) -> None:
        """The connection dropped: every request in flight fails with an unknown outcome (the OMS queries)."""
        self.drops += 1
        err = VenueServerError(codes.DISCONNECTED, "WebSocket API connection lost: outcome unknown")
        for fut in self._pending.values():
            if not fut.done():
                fut.set_exception(err)
        self._pending.clear()

    def _on_message(self, data: bytes | str) -> None:
        """One answer frame: decoded and matched to its request; one that is not JSON is counted and skipped."""
        try:
            msg = orjson.loads(data)
        except orjson.JSONDecodeError:
            self._bad_answer(f"not JSON ({len(data)} bytes)")
            return
        self._answer(msg)

    def _answer(self, msg: Any, order: bool = False) -> None:
        """Match an answer to its request (``order``: an ``order.*`` one, whose result must be an object)."""
        if not isinstance(msg, dict):
            self._bad_answer(f"a JSON {type(msg).__name__}, not an object")
            return
        self._rate_limits(msg.get("rateLimits"))
        rid = msg.get("id")
        if type(rid) is not int:
            self._bad_answer(f"its id is {type(rid).__name__}, not an integer")
            return
        fut = self._pending.pop(rid, None)
        if fut is None or fut.done():
            return
        problem = _malformed(msg, order)
        if problem is not None:
            self._bad_answer(f"request {rid}: {problem}")
            fut.set_exception(VenueServerError(codes.UNEXPECTED_RESP, f"malformed answer ({problem}): outcome "
                                                                      "unknown"))
        elif msg["status"] == 200:
            fut.set_result(msg.get("result"))
        else:
            fut.set_exception(self._error(msg["status"], msg.get("error") or {}))

    def _error(self, status: int, err: dict) -> VenueClientError | VenueServerError:
        """The exception for an error answer (checked by ``_malformed``); a -1021 or a 418/429 acts first."""
        code, text = err.get("code", codes.UNKNOWN), err.get("msg", "")
        if code == codes.INVALID_TIMESTAMP and self.on_clock_error is not None:
            self.on_clock_error()
        if status in (418, 429):
            data = err.get("data")
            retry = data.get("retryAfter") if isinstance(data, dict) else None
            retry = retry if type(retry) is int else None
            self.limiter.back_off(max(1.0, (retry - self.now_ms()) / 1000) if retry else 1.0)
        cls = VenueServerError if status >= 500 else VenueClientError
        return cls(code, text, status)

    def _rate_limits(self, limits: Any) -> None:
        """Keep the limiter in step with an answer's ``rateLimits``; entries of the wrong shape are ignored."""
        if not isinstance(limits, list):
            return
        for rl in limits:
            if not isinstance(rl, dict) or type(rl.get("count")) is not int:
                continue
            header = _LIMIT_HEADERS.get((rl.get("rateLimitType"), rl.get("interval"), rl.get("intervalNum")))
            if header:
                self.limiter.update_from_headers({header: str(rl["count"])})

    def _bad_answer(self, reason: str) -> None:
        """Count and log one malformed answer; the reason never holds the frame itself."""
        self.bad_answers += 1
        log.warning("WebSocket API: malformed answer skipped (%s); %d so far", reason, self.bad_answers)

    def signed(self, params: dict[str, Any]) -> dict[str, Any]:
        """Add apiKey, recvWindow, timestamp and the signature (params sorted by name)."""
        p = {k: v for k, v in params.items() if v is not None}
        p["apiKey"] = self.creds.api_key
        p["recvWindow"] = self.recv_window_ms
        p["timestamp"] = self.now_ms()
        p["signature"] = self.creds.sign(ws_payload(p))
        return p

    async def send(self, method: str, params: dict[str, Any], *, weight: int = 1, orders: int = 0,
                   max_wait_ms: int | None = None, on_sent: Callable[[], None] | None = None) -> asyncio.Future:
        """Sign and write one request; returns the future of its answer (bytes are on the socket on return).

        The limiter's wait (bounded by ``max_wait_ms``: ``RiskRefused("deadline")`` beyond it, nothing sent) and
        any connect come first; the request is signed after them. ``on_sent`` is called right before the write."""
        await self.limiter.acquire(weight, orders, max_wait_ms)
        if self._ws is None or self._ws.closed:
            await self.connect()
        rid = next(self._ids)
        fut = asyncio.get_running_loop().create_future()
        self._pending[rid] = fut
        frame = orjson.dumps({"id": rid, "method": method, "params": self.signed(params)}).decode()
        if on_sent is not None:
            on_sent()
        try:
            await self._ws.send_str(frame)
        except (ConnectionResetError, aiohttp.ClientError, RuntimeError) as exc:
            self._pending.pop(rid, None)
            raise VenueServerError(codes.DISCONNECTED, f"WebSocket API send failed: {type(exc).__name__}") from None
        return fut

    async def call(self, method: str, params: dict[str, Any], *, weight: int = 1, orders: int = 0,
                   max_wait_ms: int | None = None, on_sent: Callable[[], None] | None = None) -> Any:
        """``send`` and wait for the answer (``VenueServerError(TIMEOUT)`` after ``timeout_s``)."""
        fut = await self.send(method, params, weight=weight, orders=orders, max_wait_ms=max_wait_ms,
                              on_sent=on_sent)
        try:
            return await asyncio.wait_for(fut, self.timeout_s)
        except TimeoutError:
            raise VenueServerError(codes.TIMEOUT,
                                   f"{method}: no answer in {self.timeout_s}s: outcome unknown") from None

    async def place_order(self, *, max_wait_ms: int | None = None, on_sent: Callable[[], None] | None = None,
                          **params: Any) -> dict:
        """``order.place`` with Binance's parameters as keywords; ``max_wait_ms`` and ``on_sent`` as in ``send``."""
        return await self.call("order.place", params, weight=0, orders=1, max_wait_ms=max_wait_ms, on_sent=on_sent)

    async def cancel_order(self, symbol: str, order_id: int | None = None, client_order_id: str | None = None) -> dict:
        return await self.call("order.cancel", {"symbol": symbol, "orderId": order_id,
                                                "origClientOrderId": client_order_id})

    async def query_order(self, symbol: str, order_id: int | None = None, client_order_id: str | None = None) -> dict:
        return await self.call("order.status", {"symbol": symbol, "orderId": order_id,
                                                "origClientOrderId": client_order_id})

    async def close(self) -> None:
        if self._ws is not None:
            with contextlib.suppress(Exception):
                await self._ws.close()
        if self._reader is not None:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._reader


_ORDER_FIELDS = {"orderId": int, "status": str, "executedQty": str, "clientOrderId": str}


def _malformed(msg: dict, order: bool) -> str | None:
    """What is wrong with an answer's status, error or result (an object for an ``order.*`` request; the order
    fields of any object typed as Binance sends them); None if nothing."""
    status = msg.get("status")
    if type(status) is not int:
        return f"status is {type(status).__name__}, not an integer"
    if status != 200:
        err = msg.get("error") or {}
        if not isinstance(err, dict):
            return f"error is {type(err).__name__}, not an object"
        if type(err.get("code", 0)) is not int or not isinstance(err.get("msg", ""), str):
            return "error code or msg of the wrong type"
        return None
    result = msg.get("result")
    if order and not isinstance(result, dict):
        return f"an order's result is {type(result).__name__}, not an object"
    if not isinstance(result, dict):
        return None
    for key, kind in _ORDER_FIELDS.items():
        if key in result and type(result[key]) is not kind:
            return f"result.{key} is {type(result[key]).__name__}, not {kind.__name__}"
    return None
