"""Binance-shaped answers built from the sim's state: exchangeInfo, positionRisk rows, balance rows."""

from __future__ import annotations

import time
from decimal import Decimal
from typing import Any

from engine.model import Instrument
from engine.venues.sim.auth import Limits
from engine.venues.sim.params import price_precision


def _fmt(d: Decimal | int | float, places: int = 8) -> str:
    return f"{Decimal(d):.{places}f}"


def symbol_info(inst: Instrument) -> dict[str, Any]:
    _, qty_dec = Instrument.grid(inst.step_size)
    quote = "USDT" if inst.symbol.endswith("USDT") else inst.symbol[-4:]
    min_qty = inst.min_qty or inst.step_size
    return {
        "symbol": inst.symbol, "pair": inst.symbol, "contractType": "PERPETUAL", "status": "TRADING",
        "baseAsset": inst.symbol[: -len(quote)], "quoteAsset": quote, "marginAsset": quote,
        "pricePrecision": price_precision(inst), "quantityPrecision": qty_dec, "baseAssetPrecision": 8,
        "quotePrecision": 8, "underlyingType": "COIN", "settlePlan": 0, "triggerProtect": "0.0500",
        "filters": [
            {"filterType": "PRICE_FILTER", "minPrice": str(inst.tick_size), "maxPrice": "4529764",
             "tickSize": str(inst.tick_size)},
            {"filterType": "LOT_SIZE", "minQty": str(min_qty), "maxQty": "1000", "stepSize": str(inst.step_size)},
            {"filterType": "MARKET_LOT_SIZE", "minQty": str(min_qty), "maxQty": "120",
             "stepSize": str(inst.step_size)},
            {"filterType": "MAX_NUM_ORDERS", "limit": 200},
            {"filterType": "MIN_NOTIONAL", "notional": str(inst.min_notional)},
            {"filterType": "PERCENT_PRICE", "multiplierUp": "1.0500", "multiplierDown": "0.9500",
             "multiplierDecimal": "4"},
        ],
        "orderTypes": ["LIMIT", "MARKET", "STOP_MARKET", "TAKE_PROFIT_MARKET"],
        "timeInForce": ["GTC", "IOC", "FOK", "GTX"],
    }


def build(instruments: dict[str, Instrument], limits: Limits) -> dict[str, Any]:
    return {
        "timezone": "UTC", "serverTime": time.time_ns() // 1_000_000, "futuresType": "U_MARGINED",
        "rateLimits": [
            {"rateLimitType": "REQUEST_WEIGHT", "interval": "MINUTE", "intervalNum": 1,
             "limit": limits.weight_per_min},
            {"rateLimitType": "ORDERS", "interval": "MINUTE", "intervalNum": 1, "limit": limits.orders_per_min},
            {"rateLimitType": "ORDERS", "interval": "SECOND", "intervalNum": 10, "limit": limits.orders_per_10s},
        ],
        "exchangeFilters": [],
        "assets": [{"asset": "USDT", "marginAvailable": True, "autoAssetExchange": "0"}],
        "symbols": [symbol_info(i) for i in instruments.values()],
    }
