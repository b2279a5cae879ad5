"""Signed REST client for Binance USD-M futures (also our sim venue: only the base URL differs).

Every answer that is not 2xx becomes a ``VenueClientError`` (4xx, with Binance's code and message) or a
``VenueServerError`` (5xx, timeouts, dropped connections: the outcome is unknown and the caller must query).
Timestamps use the server-time offset measured by ``sync_time``; request weights follow Binance's documentation.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import quote

import aiohttp
import orjson

from engine.errors import VenueClientError, VenueServerError
from engine.keys import Credentials
from engine.venues.binance import codes
from engine.venues.binance.limiter import RateLimiter
from engine.venues.binance.signing import query_string

MAINNET_REST = "https://fapi.binance.com"
TESTNET_REST = "https://testnet.binancefuture.com"


def depth_weight(limit: int) -> int:
    """REST /fapi/v1/depth weight by limit (Binance: 5/10/20/50 -> 2, 100 -> 5, 500 -> 10, 1000 -> 20)."""
    return 2 if limit <= 50 else 5 if limit <= 100 else 10 if limit <= 500 else 20


class BinanceRest:
    """One REST endpoint (base URL) with optional credentials, a shared rate limiter and a server-time offset."""

    def __init__(self, base_url: str, session: aiohttp.ClientSession, creds: Credentials | None = None,
                 limiter: RateLimiter | None = None, recv_window_ms: int = 5000, timeout_s: float = 10.0) -> None:
        self.base_url = base_url.rstrip("/")
        self.session = session
        self.creds = creds
        self.limiter = limiter or RateLimiter()
        self.recv_window_ms = recv_window_ms
        self.timeout = aiohttp.ClientTimeout(total=timeout_s)
        self.time_offset_ms = 0
        self.last_rtt_ms = 0.0
        self.clock_suspect = asyncio.Event()   # set by a -1021 (timestamp outside recvWindow): measure again
        self.last_answer_s = 0.0               # time.monotonic() of the last HTTP answer (any status) ...
        self.last_failure_s = 0.0              # ... and of the last request that got none (timeout, refused)

    # ---- plumbing ---------------------------------------------------------------------------------------------

    @property
    def answering(self) -> bool:
        """The venue's REST endpoint answered the last request sent to it (any HTTP status: it is reachable)."""
        return self.last_answer_s > 0 and self.last_answer_s >= self.last_failure_s

    def now_ms(self) -> int:
        """Our estimate of the venue's clock (ms)."""
        return time.time_ns() // 1_000_000 + self.time_offset_ms

    async def sync_time(self, samples: int = 3) -> int:
        """Measure the server-time offset from /fapi/v1/time: the midpoint of the round trip, taken from the
        fastest of ``samples`` requests (the least queueing, so the tightest bound); returns it in ms."""
        best: tuple[float, int] | None = None
        for _ in range(max(1, samples)):
            t0 = time.time_ns()
            data = await self.request("GET", "/fapi/v1/time", weight=1)
            t1 = time.time_ns()
            rtt, offset = (t1 - t0) / 1e6, int(data["serverTime"] - (t0 + t1) / 2e6)
            if best is None or rtt < best[0]:
                best = (rtt, offset)
        self.last_rtt_ms, self.time_offset_ms = best
        return self.time_offset_ms

    async def request(self, method: str, path: str, params: dict[str, Any] | None = None, *, signed: bool = False,
                      weight: int = 1, orders: int = 0, max_wait_ms: int | None = None,
                      on_sent: Callable[[], None] | None = None) -> Any:
        """Send one request and return its decoded answer (errors: see the module docstring).

        The limiter's wait comes first and the request is signed after it, so its ``timestamp`` is the moment it
        leaves however long the wait was. ``max_wait_ms``: refuse (``RiskRefused("deadline")``, nothing sent or
        charged) rather than wait longer. ``on_sent``: called synchronously right before the request is handed to
        the HTTP session (after any wait); not called when the request is refused before that."""
        headers = {}
        if signed or path.startswith("/fapi/v1/listenKey"):
            if self.creds is None:
                raise VenueClientError(codes.REJECTED_MBX_KEY, "no API credentials configured for a signed request")
            headers["X-MBX-APIKEY"] = self.creds.api_key
        await self.limiter.acquire(weight, orders, max_wait_ms)
        url = f"{self.base_url}{path}"
        qs = self._query(params, signed)
        if qs:
            url += f"?{qs}"
        if on_sent is not None:
            on_sent()
        try:
            async with self.session.request(method, url, headers=headers, timeout=self.timeout) as resp:
                self.limiter.update_from_headers(resp.headers)
                body = await resp.read()
                self.last_answer_s = time.monotonic()
                return self._answer(resp.status, resp.headers, body, path)
        except (TimeoutError, aiohttp.ClientError) as exc:
            self.last_failure_s = time.monotonic()
            raise VenueServerError(codes.DISCONNECTED if not isinstance(exc, asyncio.TimeoutError) else codes.TIMEOUT,
                                   f"{method} {path}: {type(exc).__name__}: outcome unknown") from None

    def _query(self, params: dict[str, Any] | None, signed: bool) -> str:
        """The query string; signed: with recvWindow, a timestamp taken now and the signature."""
        items = [(k, v) for k, v in (params or {}).items() if v is not None]
        if not signed:
            return query_string(items)
        items += [("recvWindow", self.recv_window_ms), ("timestamp", self.now_ms())]
        qs = query_string(items)
        return qs + "&signature=" + quote(self.creds.sign(qs), safe="")

    def _answer(self, status: int, headers: Any, body: bytes, path: str) -> Any:
        try:
            data = orjson.loads(body) if body else None
        except orjson.JSONDecodeError:
            data = None
        if 200 <= status < 300:
            if data is None and body:
                raise VenueServerError(codes.UNEXPECTED_RESP, f"{path}: unreadable answer", status)
            return data
        code = data.get("code", codes.UNKNOWN) if isinstance(data, dict) else codes.UNKNOWN
        msg = data.get("msg", "") if isinstance(data, dict) else body[:200].decode("utf-8", "replace")
        if status in (418, 429):
            self.limiter.back_off(float(headers.get("Retry-After", "1") or 1))
        if code == codes.INVALID_TIMESTAMP:
            self.clock_suspect.set()
        if status >= 500:
            raise VenueServerError(code, f"{path}: {msg}", status)
        raise VenueClientError(code, f"{path}: {msg}", status)

    # ---- market data ------------------------------------------------------------------------------------------

    async def exchange_info(self) -> dict:
        return await self.request("GET", "/fapi/v1/exchangeInfo", weight=1)

    async def depth_raw(self, symbol: str, limit: int = 1000) -> bytes:
        """The REST depth snapshot as raw bytes, for ``Feed.on_snapshot`` (the scanner reads it directly)."""
        url = f"{self.base_url}/fapi/v1/depth?symbol={symbol}&limit={limit}"
        await self.limiter.acquire(depth_weight(limit))
        try:
            async with self.session.get(url, timeout=self.timeout) as resp:
                self.limiter.update_from_headers(resp.headers)
                body = await resp.read()
                self.last_answer_s = time.monotonic()
                if resp.status != 200:
                    self._answer(resp.status, resp.headers, body, "/fapi/v1/depth")
                return body
        except (TimeoutError, aiohttp.ClientError) as exc:
            self.last_failure_s = time.monotonic()
            raise VenueServerError(codes.DISCONNECTED, f"/fapi/v1/depth: {type(exc).__name__}") from None

    # ---- orders (REST fallback; the WebSocket API is the fast path) --------------------------------------------

    async def place_order(self, *, max_wait_ms: int | None = None, on_sent: Callable[[], None] | None = None,
                          **params: Any) -> dict:
        """``POST /fapi/v1/order`` with Binance's parameters as keywords; ``max_wait_ms`` and ``on_sent`` as in
        ``request``."""
        return await self.request("POST", "/fapi/v1/order", params, signed=True, weight=0, orders=1,
                                  max_wait_ms=max_wait_ms, on_sent=on_sent)

    async def cancel_order(self, symbol: str, order_id: int | None = None, client_order_id: str | None = None) -> dict:
        return await self.request("DELETE", "/fapi/v1/order", {"symbol": symbol, "orderId": order_id,
                                                              "origClientOrderId": client_order_id},
                                  signed=True, weight=1)

    async def query_order(self, symbol: str, order_id: int | None = None, client_order_id: str | None = None) -> dict:
        return await self.request("GET", "/fapi/v1/order", {"symbol": symbol, "orderId": order_id,
                                                           "origClientOrderId": client_order_id},
                                  signed=True, weight=1)

    async def open_orders(self, symbol: str | None = None) -> list[dict]:
        return await self.request("GET", "/fapi/v1/openOrders", {"symbol": symbol}, signed=True,
                                  weight=1 if symbol else 40)

    async def cancel_all(self, symbol: str) -> dict:
        return await self.request("DELETE", "/fapi/v1/allOpenOrders", {"symbol": symbol}, signed=True, weight=1)

    async def countdown_cancel_all(self, symbol: str, countdown_ms: int) -> dict:
        return await self.request("POST", "/fapi/v1/countdownCancelAll",
                                  {"symbol": symbol, "countdownTime": countdown_ms}, signed=True, weight=10)

    async def position_risk(self, symbol: str | None = None) -> list[dict]:
        return await self.request("GET", "/fapi/v2/positionRisk", {"symbol": symbol}, signed=True, weight=5)

    async def balance(self) -> list[dict]:
        return await self.request("GET", "/fapi/v2/balance", signed=True, weight=5)

    async def user_trades(self, symbol: str, start_ms: int | None = None, limit: int = 500, *,
                          order_id: int | None = None, from_id: int | None = None,
                          end_ms: int | None = None) -> list[dict]:
        """``GET /fapi/v1/userTrades`` (weight 5): our trades in ``symbol``, oldest first.

        ``order_id``: that order's trades. ``from_id``: trades with id >= it (not with ``start_ms``/``end_ms``:
        Binance refuses the combination). ``start_ms``/``end_ms``: a window in the venue's time, at most 7 days;
        with neither (and no ``from_id``) Binance answers the last 7 days. ``limit``: default 500, max 1000."""
        return await self.request("GET", "/fapi/v1/userTrades",
                                  {"symbol": symbol, "orderId": order_id, "fromId": from_id, "startTime": start_ms,
                                   "endTime": end_ms, "limit": limit}, signed=True, weight=5)

    async def all_orders(self, symbol: str, *, order_id: int | None = None, start_ms: int | None = None,
                         end_ms: int | None = None, limit: int = 500) -> list[dict]:
        """``GET /fapi/v1/allOrders`` (weight 5): our orders in ``symbol``, open or final, oldest first, each as
        ``query_order`` answers it. ``order_id``: orders with id >= it; else the most recent. ``start_ms``/
        ``end_ms``: a window on the order's creation time (venue time, at most 7 days). Binance no longer returns
        CANCELED/EXPIRED orders without fills 3 days after creation, nor any order after 90 days."""
        return await self.request("GET", "/fapi/v1/allOrders",
                                  {"symbol": symbol, "orderId": order_id, "startTime": start_ms, "endTime": end_ms,
                                   "limit": limit}, signed=True, weight=5)

    # ---- user data stream -------------------------------------------------------------------------------------

    async def new_listen_key(self) -> str:
        return (await self.request("POST", "/fapi/v1/listenKey", weight=1))["listenKey"]

    async def keepalive_listen_key(self) -> None:
        await self.request("PUT", "/fapi/v1/listenKey", weight=1)

    async def close_listen_key(self) -> None:
        await self.request("DELETE", "/fapi/v1/listenKey", weight=1)
