"""The sim venue's WebSocket API (``/ws-fapi/v1``): ``order.place``, ``order.cancel``, ``order.status``,
``account.position``, ``account.balance``, with Binance's request/answer frames and signing rules.

Faults met here: the IP ban (``ban_s``: status 418, -1003 and ``retryAfter`` in the error's data), ``stall_ms``,
``lose_acks`` and ``reject_orders``.

Every request gets an answer (an injected lost ack aside), with its id when it has one: not JSON or not an object
(id null), no method, params not an object, an unknown method: 400 with Binance's code; a failure of the venue
itself: 500, -1000, logged."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import Any

import orjson

from engine.venues.binance import codes
from engine.venues.binance.signing import ws_payload
from engine.venues.sim.auth import SimHttpError, check_signature, check_timestamp

log = logging.getLogger(__name__)

# method -> (weight, orders)
METHODS = {"order.place": (0, 1), "order.cancel": (1, 0), "order.status": (1, 0), "account.position": (5, 0),
           "account.balance": (5, 0)}


def _frame(rid: Any, status: int, body: dict[str, Any], rate_limits: list | None) -> str:
    out = {"id": rid, "status": status, **body}
    if rate_limits is not None:
        out["rateLimits"] = rate_limits
    return orjson.dumps(out).decode()


def _malformed(rid: Any) -> str:
    return _frame(rid, 400, {"error": {"code": codes.MANDATORY_PARAM_EMPTY_OR_MALFORMED,
                                       "msg": "Malformed request: expected {id, method, params}."}}, None)


async def handle(venue: Any, client: str, text: str) -> str | None:
    """One request frame -> its answer frame (None: an injected lost ack). Never raises."""
    try:
        req = orjson.loads(text)
    except orjson.JSONDecodeError:
        return _malformed(None)
    if not isinstance(req, dict):
        return _malformed(None)
    if not isinstance(req.get("method"), str):
        return _malformed(req.get("id"))
    try:
        return await _request(venue, req)
    except Exception:
        log.exception("sim venue: WebSocket API request %s failed", str(req.get("method"))[:40])
        return _frame(req.get("id"), 500, {"error": {"code": codes.UNKNOWN, "msg": "An unknown error occured while "
                                                     "processing the request."}}, None)


async def _request(venue: Any, req: dict[str, Any]) -> str | None:
    """One well-formed request frame -> its answer frame."""
    rid, method = req.get("id"), req["method"]
    params = req.get("params") or {}
    counter = None
    try:
        venue.check_ban()                               # an injected IP ban refuses the WebSocket API too
        if method not in METHODS:
            raise SimHttpError(400, -1020, f"Unsupported method {method!r}.")
        if not isinstance(params, dict):
            raise SimHttpError(400, codes.MANDATORY_PARAM_EMPTY_OR_MALFORMED, "params must be an object")
        acct = venue.accounts.get(str(params.get("apiKey", "")))
        if acct is None:
            raise SimHttpError(401, codes.REJECTED_MBX_KEY, codes.MESSAGES[codes.REJECTED_MBX_KEY])
        counter = venue._counter(acct.api_key)
        weight, orders = METHODS[method]
        counter.charge(weight, orders)
        check_signature(acct, ws_payload(params), params.get("signature"))
        check_timestamp(params, time.time_ns() // 1_000_000)
        clean = {k: v for k, v in params.items() if k not in ("apiKey", "signature", "timestamp", "recvWindow")}
        if venue.faults.stall_ms:
            venue._count("stall_ms")
            await asyncio.sleep(venue.faults.stall_ms / 1000)
        result = await _dispatch(venue, acct.account, method, clean)
    except SimHttpError as exc:
        err: dict[str, Any] = {"code": exc.code, "msg": exc.msg}
        if exc.status in (418, 429) and "Retry-After" in exc.headers:
            err["data"] = {"retryAfter": time.time_ns() // 1_000_000 + int(exc.headers["Retry-After"]) * 1000}
        return _frame(rid, exc.status, {"error": err}, counter.rate_limits() if counter else None)
    if result is _LOST:
        return None
    return _frame(rid, 200, {"result": result}, counter.rate_limits())


_LOST = object()


async def _dispatch(venue: Any, account: str, method: str, params: dict[str, Any]) -> Any:
    if method == "order.place":
        if venue.faults.lose_acks > 0:
            venue.faults.lose_acks -= 1
            venue._count("lose_acks")
            with contextlib.suppress(SimHttpError):
                await venue.place(account, params)
            return _LOST
        return await venue.place(account, params)
    if method == "order.cancel":
        return await venue.cancel(account, params)
    if method == "order.status":
        return await venue.query(account, params)
    venue._advance()
    if method == "account.position":
        symbol = params.get("symbol")
        return [p.to_binance(venue.ex.instruments[p.symbol])
                for p in venue.ex.positions(account) if not symbol or p.symbol == symbol]
    return [venue.ex.balance(account).to_binance(account)]
