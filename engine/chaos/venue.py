"""The venue as the drill sees it: signed Binance REST (the documented endpoints only) and the sim's fault switch.

A black-box drill would use Binance's own client; this one uses ``BinanceRest`` with the sim's default sim-account
key, which is the same wire protocol. Reads retry transient answers (5xx, 429/418) a bounded number of times.
"""

from __future__ import annotations

import asyncio
from decimal import Decimal
from typing import Any

import aiohttp
import orjson

from engine.errors import VenueClientError, VenueServerError
from engine.keys import Credentials, Secret
from engine.venues.binance.rest import BinanceRest
from engine.venues.sim.server import DEFAULT_API_KEY, DEFAULT_API_SECRET

OPEN_STATUSES = ("NEW", "PARTIALLY_FILLED")
RETRIES = 8
PAGE = 1000


class FaultRefused(Exception):
    """POST /sim/faults refused a fault (unknown name or bad value): this sim does not support it."""


class VenueView:
    """Read-only REST access to the sim account plus ``/sim/faults``."""

    def __init__(self, base_url: str, session: aiohttp.ClientSession) -> None:
        self.base_url = base_url.rstrip("/")
        self.session = session
        self.rest = BinanceRest(self.base_url, session, Credentials(DEFAULT_API_KEY, Secret(DEFAULT_API_SECRET)))
        self.has_all_orders: bool | None = None

    # ---- the sim's admin endpoints ----------------------------------------------------------------------------

    async def set_faults(self, changes: dict[str, Any]) -> dict:
        """POST /sim/faults; ``FaultRefused`` when the sim does not take it."""
        async with self.session.post(f"{self.base_url}/sim/faults", data=orjson.dumps(changes),
                                     timeout=aiohttp.ClientTimeout(total=10)) as resp:
            body = await resp.read()
        data = orjson.loads(body) if body else {}
        if resp.status != 200:
            raise FaultRefused(f"{resp.status} {data.get('code', '')} {data.get('msg', '')}".strip())
        return data

    async def status(self) -> dict:
        """GET /sim/status: exchange time, whether the tape has ended, the faults."""
        async with self.session.get(f"{self.base_url}/sim/status", timeout=aiohttp.ClientTimeout(total=10)) as r:
            return orjson.loads(await r.read())

    # ---- signed reads -----------------------------------------------------------------------------------------

    async def _retry(self, method: str, path: str, params: dict[str, Any], weight: int = 5) -> Any:
        delay = 0.2
        for attempt in range(RETRIES):
            try:
                return await self.rest.request(method, path, params, signed=True, weight=weight)
            except VenueServerError:
                pass
            except VenueClientError as exc:
                if exc.status not in (418, 429) and exc.code != -1021:
                    raise
                if exc.code == -1021:
                    await self.rest.sync_time()
            if attempt < RETRIES - 1:
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)
        raise VenueServerError(-1000, f"{path}: no answer after {RETRIES} attempts")

    async def sync(self) -> None:
        """Measure the clock offset (signed requests carry the venue's time)."""
        await self.rest.sync_time()

    async def trades(self, symbol: str) -> list[dict]:
        """Every trade of the account on ``symbol`` (GET /fapi/v1/userTrades, paged by ``fromId``)."""
        return await self._pages("/fapi/v1/userTrades", symbol, "fromId", "id")

    async def _pages(self, path: str, symbol: str, cursor: str, key: str) -> list[dict]:
        """Every row of a history endpoint, oldest first, paged by ``cursor`` (ids >= it); bounded."""
        rows: list[dict] = []
        seen: set[int] = set()
        start = 0
        for _ in range(50):
            page = await self._retry("GET", path, {"symbol": symbol, "limit": PAGE, cursor: start})
            new = [r for r in page if int(r[key]) not in seen]
            rows += new
            seen.update(int(r[key]) for r in new)
            if len(page) < PAGE or not new:
                break
            start = max(seen) + 1
        return rows

    async def position(self, symbol: str) -> Decimal:
        """positionAmt from GET /fapi/v2/positionRisk (0 when the venue lists no row)."""
        rows = await self._retry("GET", "/fapi/v2/positionRisk", {"symbol": symbol})
        return sum((Decimal(r["positionAmt"]) for r in rows if r["symbol"] == symbol), Decimal(0))

    async def open_orders(self, symbol: str) -> list[dict]:
        return await self._retry("GET", "/fapi/v1/openOrders", {"symbol": symbol}, weight=1)

    async def all_orders(self, symbol: str) -> list[dict] | None:
        """GET /fapi/v1/allOrders (None when this venue has no such endpoint)."""
        if self.has_all_orders is False:
            return None
        try:
            rows = await self._pages("/fapi/v1/allOrders", symbol, "orderId", "orderId")
        except VenueClientError as exc:
            if exc.status in (404, 405):
                self.has_all_orders = False
                return None
            raise
        self.has_all_orders = True
        return rows

    async def query(self, symbol: str, *, order_id: int | None = None, client_id: str | None = None) -> dict | None:
        """GET /fapi/v1/order by id or client id (None: the venue does not know it)."""
        params = {"symbol": symbol, "orderId": order_id, "origClientOrderId": client_id}
        try:
            return await self._retry("GET", "/fapi/v1/order", params, weight=1)
        except VenueClientError as exc:
            if exc.code == -2013:
                return None
            raise

    async def orders(self, symbol: str, client_ids: set[str], intent_ids: set[str], trades: list[dict]) -> list[dict]:
        """Every order of ours the venue knows: allOrders, or, without it, the open orders, the orders of our
        trades, every client id the journal names and ``<intent>-1, -2, ...`` for each intent until two misses."""
        rows = await self.all_orders(symbol)
        if rows is not None:
            return rows
        found: dict[int, dict] = {o["orderId"]: o for o in await self.open_orders(symbol)}
        for oid in sorted({t["orderId"] for t in trades} - set(found)):
            if (o := await self.query(symbol, order_id=oid)) is not None:
                found[o["orderId"]] = o
        known = {o["clientOrderId"] for o in found.values()}
        for cid in sorted(client_ids - known):
            if (o := await self.query(symbol, client_id=cid)) is not None:
                found[o["orderId"]] = o
        for iid in sorted(intent_ids):
            await self._probe(symbol, iid, found)
        return list(found.values())

    async def _probe(self, symbol: str, iid: str, found: dict[int, dict]) -> None:
        known = {o["clientOrderId"] for o in found.values()}
        misses = 0
        for n in range(1, 200):
            cid = f"{iid}-{n}"
            if cid in known:
                misses = 0
                continue
            o = await self.query(symbol, client_id=cid)
            if o is None:
                misses += 1
                if misses >= 2:
                    return
                continue
            misses = 0
            found[o["orderId"]] = o
