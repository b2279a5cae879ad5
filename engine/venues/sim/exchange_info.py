"""Binance-shaped answers built from the sim's state: exchangeInfo, positionRisk rows, balance rows; and the
instruments the sim lists for its tape's symbols (``tape_instruments``)."""

from __future__ import annotations

import time
from decimal import Decimal
from typing import Any

from engine.errors import ConfigError, DataError
from engine.feed.instruments import grid_of
from engine.model import KNOWN_INSTRUMENTS, Instrument
from engine.venues.sim.auth import Limits
from engine.venues.sim.params import price_precision

DEFAULT_MIN_NOTIONAL = "5"      # Binance USD-M's minimum order notional for most symbols (BTC and ETH: 100, 20)
_PRICE_KEYS = {"depthUpdate": (), "trade": ("p",), "aggTrade": ("p",), "bookTicker": ("b", "a")}
_QTY_KEYS = {"depthUpdate": (), "trade": ("q",), "aggTrade": ("q",), "bookTicker": ("B", "A")}


def tape_instruments(tape: Any, given: dict[str, Instrument] | None = None) -> dict[str, Instrument]:
    """An Instrument for every symbol of ``tape``: ``given``, else the table of real Binance values
    (``engine.model.KNOWN_INSTRUMENTS``), else inferred from every price and quantity the tape holds for it
    (``infer_instrument``)."""
    known = dict(KNOWN_INSTRUMENTS)
    known.update(given or {})
    if not tape.symbols:
        raise ConfigError("the tape names no symbol")
    return {s: known[s] if s in known else infer_instrument(tape, s) for s in tape.symbols}


def infer_instrument(tape: Any, symbol: str) -> Instrument:
    """Tick and step size of a symbol no table knows: the coarsest decimal grid every recorded price (and
    quantity) of it lies on, over its snapshots, diffs, trades and tickers. Exact for replaying the tape (every
    recorded price is on the grid); on a short tape it may be coarser than the venue's real grid for orders of
    ours between recorded prices. Minimum notional: Binance's usual 5 USDT; minimum quantity: one step."""
    prices: list[str] = []
    qtys: list[str] = []
    for ev in tape.events:
        if ev.symbol != symbol:
            continue
        d = ev.obj
        if ev.kind in ("snapshot", "depthUpdate"):
            for key in ("bids", "asks", "b", "a"):
                for level in d.get(key, ()) if isinstance(d.get(key), list) else ():
                    prices.append(level[0])
                    qtys.append(level[1])
        else:
            prices.extend(d[k] for k in _PRICE_KEYS.get(ev.kind, ()) if isinstance(d.get(k), str))
            qtys.extend(d[k] for k in _QTY_KEYS.get(ev.kind, ()) if isinstance(d.get(k), str))
    try:
        tick, step = grid_of(prices), grid_of(qtys)
    except DataError as exc:
        raise ConfigError(f"{symbol}: cannot infer its tick/step size from the tape ({exc}): pass instruments=") \
            from None
    return Instrument.make(symbol, str(tick), str(step), DEFAULT_MIN_NOTIONAL, str(step))


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
