"""Where instrument grids come from: Binance exchangeInfo, the built-in table, or a recording's own snapshot."""

from __future__ import annotations

from decimal import Decimal
from math import gcd
from pathlib import Path

import orjson

from engine.errors import ConfigError, DataError
from engine.model import KNOWN_INSTRUMENTS, Instrument


def from_exchange_info(info: dict) -> dict[str, Instrument]:
    """Instruments from a ``/fapi/v1/exchangeInfo`` answer (PRICE_FILTER, LOT_SIZE, MIN_NOTIONAL filters)."""
    out: dict[str, Instrument] = {}
    for sym in info.get("symbols", []):
        filters = {f.get("filterType"): f for f in sym.get("filters", [])}
        try:
            tick = filters["PRICE_FILTER"]["tickSize"]
            lot = filters["LOT_SIZE"]
        except KeyError as exc:
            raise DataError(f"exchangeInfo: {sym.get('symbol')} lacks filter {exc}") from exc
        notional = filters.get("MIN_NOTIONAL", {}).get("notional", "5")
        out[sym["symbol"]] = Instrument.make(sym["symbol"], tick, lot["stepSize"], notional, lot.get("minQty"))
    return out


def load_exchange_info(path: str | Path) -> dict[str, Instrument]:
    try:
        return from_exchange_info(orjson.loads(Path(path).read_bytes()))
    except (OSError, orjson.JSONDecodeError) as exc:
        raise ConfigError(f"cannot read exchangeInfo {path}: {exc}") from exc


def grid_of(values: list[str]) -> Decimal:
    """The coarsest decimal grid every value lies on: gcd of the mantissas at the finest precision."""
    decimals = max((len(v.partition(".")[2]) for v in values), default=0)
    g = 0
    for v in values:
        whole, _, frac = v.partition(".")
        g = gcd(g, int(whole + frac.ljust(decimals, "0")))
    if g == 0:
        raise DataError("cannot infer a grid from all-zero values")
    return Decimal(g).scaleb(-decimals).normalize()


def infer_from_snapshot(symbol: str, snapshot: dict) -> Instrument:
    """Guess tick and step from a 1000-level REST snapshot (exact when the book spans many levels; a finer
    guess than the real grid is still exact for book rebuilding). Prefer exchangeInfo when there is one."""
    prices = [p for side in ("bids", "asks") for p, _ in snapshot.get(side, [])]
    qtys = [q for side in ("bids", "asks") for _, q in snapshot.get(side, [])]
    if len(prices) < 2:
        raise DataError(f"{symbol}: snapshot too small to infer the price grid")
    return Instrument.make(symbol, str(grid_of(prices)), str(grid_of(qtys)))


def resolve(symbols: list[str], table: dict[str, Instrument] | None = None,
            snapshots: dict[str, dict] | None = None) -> list[Instrument]:
    """An Instrument per symbol: from ``table`` (exchangeInfo), the built-in table, or the symbol's snapshot."""
    out = []
    for s in symbols:
        if table and s in table:
            out.append(table[s])
        elif s in KNOWN_INSTRUMENTS:
            out.append(KNOWN_INSTRUMENTS[s])
        elif snapshots and s in snapshots:
            out.append(infer_from_snapshot(s, snapshots[s]))
        else:
            raise ConfigError(f"no tick/step size known for {s}: pass --exchange-info FILE")
    return out
