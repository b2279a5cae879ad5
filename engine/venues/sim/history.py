"""Order and trade history queries of the sim venue: ``GET /fapi/v1/allOrders`` and ``GET /fapi/v1/userTrades``.

Binance's documented semantics, in the venue's exchange time (ms) (the tape's clock, as every time it reports):

- ``allOrders``: ``symbol`` mandatory; ``orderId``: orders with id >= it, the first ``limit`` of them; otherwise the
  most recent ``limit``. ``startTime``/``endTime`` filter on the order's creation time, at most 7 days apart
  (-1127); with neither and no ``orderId``, the last 7 days. CANCELED/EXPIRED orders without any fill are archived
  (no longer returned) 3 days after creation, and every order 90 days after creation.
- ``userTrades``: ``symbol`` mandatory; ``orderId``: that order's trades; ``fromId``: trades with id >= it, the
  first ``limit`` (it cannot be sent with ``startTime``/``endTime``: -1128); otherwise the most recent ``limit``.
  ``startTime``/``endTime`` at most 7 days apart (-1127); with neither (and no ``fromId``/``orderId``), the last
  7 days. Only the last 6 months are kept.
- ``limit``: default 500, at most 1000 (more is served as 1000); below 1: -1130. Results are oldest first.
- Either window bound alone spans 7 days from it; ``startTime`` > ``endTime``: -1023.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any, TypeVar

from engine.venues.binance import codes
from engine.venues.sim.params import as_int, bad

DAY_MS = 86_400_000
MAX_SPAN_MS = 7 * DAY_MS
ARCHIVE_UNFILLED_MS = 3 * DAY_MS
ARCHIVE_ALL_MS = 90 * DAY_MS
TRADES_KEPT_MS = 183 * DAY_MS
DEFAULT_LIMIT = 500
MAX_LIMIT = 1000

T = TypeVar("T")


def limit_of(params: dict[str, Any]) -> int:
    """The ``limit`` parameter: default 500, capped at 1000, at least 1."""
    limit = as_int(params, "limit", DEFAULT_LIMIT)
    if limit is None or limit < 1:
        raise bad(codes.INVALID_PARAMETER, "Invalid limit.")
    return min(limit, MAX_LIMIT)


def window_of(params: dict[str, Any], now_ms: int, default: bool) -> tuple[int, int] | None:
    """The (start, end) ms window from ``startTime``/``endTime``; None when neither was sent and ``default`` is
    False (no time filter), else the last 7 days."""
    start, end = as_int(params, "startTime"), as_int(params, "endTime")
    if start is None and end is None:
        return (now_ms - MAX_SPAN_MS, now_ms) if default else None
    if start is not None and end is not None:
        if start > end:
            raise bad(codes.START_TIME_GREATER_THAN_END_TIME, codes.MESSAGES[codes.START_TIME_GREATER_THAN_END_TIME])
        if end - start > MAX_SPAN_MS:
            raise bad(codes.MORE_THAN_XX_HOURS, codes.MESSAGES[codes.MORE_THAN_XX_HOURS].format(hours=7 * 24))
        return start, end
    if start is not None:
        return start, start + MAX_SPAN_MS
    return end - MAX_SPAN_MS, end  # type: ignore[operator]


def _page(items: list[T], key: Callable[[T], int], from_id: int | None, limit: int) -> list[T]:
    """From ``from_id`` on: the first ``limit``; else the last ``limit`` (oldest first either way)."""
    if from_id is not None:
        return [x for x in items if key(x) >= from_id][:limit]
    return items[-limit:]


def _archived(order: Any, now_ms: int) -> bool:
    created = order.time_ns // 1_000_000
    if now_ms - created > ARCHIVE_ALL_MS:
        return True
    unfilled_final = order.status.value in ("CANCELED", "EXPIRED") and order.filled_lots == 0
    return unfilled_final and now_ms - created > ARCHIVE_UNFILLED_MS


def select_orders(orders: Iterable[Any], params: dict[str, Any], now_ms: int) -> list[Any]:
    """``allOrders``: the ``SimOrder``s (of one account and symbol, by ascending id) the query returns."""
    limit = limit_of(params)
    from_id = as_int(params, "orderId")
    window = window_of(params, now_ms, default=from_id is None)
    kept = [o for o in orders if not _archived(o, now_ms)
            and (window is None or window[0] <= o.time_ns // 1_000_000 <= window[1])]
    return _page(kept, lambda o: o.order_id, from_id, limit)


def select_trades(fills: Iterable[Any], params: dict[str, Any], now_ms: int) -> list[Any]:
    """``userTrades``: the ``SimFill``s (of one account and symbol, oldest first) the query returns."""
    limit = limit_of(params)
    order_id, from_id = as_int(params, "orderId"), as_int(params, "fromId")
    if from_id is not None and (params.get("startTime") not in (None, "") or params.get("endTime") not in (None, "")):
        raise bad(codes.OPTIONAL_PARAMS_BAD_COMBO, codes.MESSAGES[codes.OPTIONAL_PARAMS_BAD_COMBO])
    window = window_of(params, now_ms, default=from_id is None and order_id is None)
    kept = [f for f in fills if now_ms - f.time_ns // 1_000_000 <= TRADES_KEPT_MS
            and (order_id is None or f.order_id == order_id)
            and (window is None or window[0] <= f.time_ns // 1_000_000 <= window[1])]
    return _page(kept, lambda f: f.trade_id, from_id, limit)
