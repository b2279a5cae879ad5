"""Pre-trade limits: the numbers of ``[risk]`` per symbol and for the account, and the words a refusal says.

``[risk]``'s limit keys are every symbol's defaults and, for the counts (open orders, orders per second and
per 10 s), the account's own limits, counted over all symbols. ``[risk.symbols.<SYMBOL>]`` gives one symbol its
own values (any subset of ``LIMIT_KEYS``); its counts may only be tighter than the account's. Quantities are in
the base asset (BTC for BTCUSDT), notionals in the quote asset (USDT), the band in bps of the mid; an optional
limit set to 0 is off. The venue's minimum notional (exchangeInfo's MIN_NOTIONAL) is always the floor of
``min_notional``. The checks themselves run in C on every order (``ext.orders.RiskCore``); this module
validates the configuration and words the refusals: each names the limit, the value and the unit.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields
from decimal import Decimal
from typing import Any

from engine.errors import ConfigError, RiskRefused

# key -> (kind, rule): rule "positive" (> 0), "optional" (>= 0, 0: off), "count" (an integer >= 1)
LIMIT_RULES: dict[str, str] = {
    "max_order_qty": "optional", "max_order_notional": "positive", "max_position_qty": "optional",
    "max_position_notional": "positive", "price_band_bps": "positive", "min_notional": "optional",
    "max_open_orders": "count", "max_orders_per_s": "optional", "max_orders_per_10s": "count",
}
LIMIT_KEYS = tuple(LIMIT_RULES)
COUNT_KEYS = ("max_open_orders", "max_orders_per_s", "max_orders_per_10s")
QUOTES = ("USDT", "USDC", "FDUSD", "BUSD")


@dataclass(frozen=True)
class SymbolLimits:
    """One symbol's own limits (``[risk.symbols.BTCUSDT]``); a key left out takes ``[risk]``'s value."""

    max_order_qty: Decimal | None = None          # base asset per order (0: off)
    max_order_notional: Decimal | None = None     # quote per order
    max_position_qty: Decimal | None = None       # base asset, the position after the order (0: off)
    max_position_notional: Decimal | None = None  # quote, the position after the order
    price_band_bps: float | None = None           # a limit price at most this far from the mid
    min_notional: Decimal | None = None           # quote per order; the venue's minimum is the floor
    max_open_orders: int | None = None
    max_orders_per_s: int | None = None           # 0: off
    max_orders_per_10s: int | None = None

    def set(self) -> dict[str, Any]:
        """The keys this symbol sets."""
        return {f.name: getattr(self, f.name) for f in fields(self) if getattr(self, f.name) is not None}


def validate(values: dict[str, Any], prefix: str) -> None:
    """Each limit in ``values`` (key -> number) in its range, else a ``ConfigError`` naming ``prefix + key``."""
    for key, value in values.items():
        rule = LIMIT_RULES[key]
        if isinstance(value, bool) or not isinstance(value, int | float | Decimal):
            raise ConfigError(f"{prefix}{key} must be a number, got {value!r}")
        if not _finite(value):
            raise ConfigError(f"{prefix}{key} must be a finite number, got {value}")
        if rule == "positive" and not value > 0:
            raise ConfigError(f"{prefix}{key} must be > 0, got {value}")
        if rule == "optional" and value < 0:
            raise ConfigError(f"{prefix}{key} must be >= 0 (0: off), got {value}")
        if rule == "count" and (value < 1 or value != int(value)):
            raise ConfigError(f"{prefix}{key} must be a whole number >= 1, got {value}")
    if values.get("price_band_bps", 0) > 10_000:
        raise ConfigError(f"{prefix}price_band_bps must be at most 10000 (100%), got {values['price_band_bps']}")


def validate_symbols(account: dict[str, Any], symbols: dict[str, SymbolLimits]) -> None:
    """Every ``[risk.symbols.X]`` table: a symbol name, limits in range, counts no looser than the account's,
    and a minimum notional below the order notional it must fit under."""
    validate_floor(account, "risk.")
    for symbol, own in symbols.items():
        prefix = f"risk.symbols.{symbol}."
        if not isinstance(own, SymbolLimits):
            raise ConfigError(f"risk.symbols.{symbol} must be a table of limits")
        if not symbol.isalnum() or symbol.upper() != symbol:
            raise ConfigError(f"risk.symbols.{symbol}: a symbol is upper-case letters and digits, like BTCUSDT")
        values = own.set()
        validate(values, prefix)
        for key in COUNT_KEYS:
            if key in values and account[key] and values[key] > account[key]:
                raise ConfigError(f"{prefix}{key} = {values[key]} is looser than the account's risk.{key} = "
                                  f"{account[key]}: a symbol's counts may only be tighter")
        validate_floor({**account, **values}, prefix)


def validate_floor(values: dict[str, Any], prefix: str) -> None:
    """The minimum notional must leave room under the per-order notional."""
    if values["min_notional"] >= values["max_order_notional"]:
        raise ConfigError(f"{prefix}min_notional ({values['min_notional']}) must be below max_order_notional "
                          f"({values['max_order_notional']}): no order could pass both")


def _finite(value: float | Decimal) -> bool:
    return value.is_finite() if isinstance(value, Decimal) else math.isfinite(value)


# ---- words --------------------------------------------------------------------------------------------------------

def units(symbol: str) -> tuple[str, str]:
    """(base asset, quote asset) of a USD-M symbol: BTCUSDT -> (BTC, USDT)."""
    for quote in QUOTES:
        if symbol.endswith(quote) and len(symbol) > len(quote):
            return symbol[: -len(quote)], quote
    return symbol, "USDT"


def num(value: float, unit: str) -> str:
    """A number as a trader reads it: thousands separated; money to the cent (whole above 1,000), quantities
    and prices to 8 decimals, trailing zeros dropped."""
    if unit in QUOTES and abs(value) >= 1000:
        return f"{value:,.0f}"
    places = 2 if unit in QUOTES else 1 if unit == "bps" else 0 if unit.startswith("order") else 8
    text = f"{value:,.{places}f}"
    return text.rstrip("0").rstrip(".") if "." in text else text


def refusal(reason: str, symbol: str, limit: float, value: float, scope: str = "", extra: str = "") -> RiskRefused:
    """The ``RiskRefused`` for a broken limit: ``"<what> <value> <unit> > <limit> <unit> <per what>"``.
    ``scope``: who the limit belongs to (a symbol, or "the account") for the counts."""
    base, quote = units(symbol)
    what, op, unit, per = _WORDS[reason]
    unit = {"base": base, "quote": quote}.get(unit, unit)
    per = per.format(scope=scope or symbol)
    detail = f"{what} {num(value, unit)} {unit} {op} {num(limit, unit)} {unit}{per}{extra}"
    return RiskRefused(reason, detail, limit=limit, value=value, unit=unit)


# reason -> (what, comparison, unit, per-what)
_WORDS: dict[str, tuple[str, str, str, str]] = {
    "order_qty": ("order quantity", ">", "base", " per order"),
    "order_notional": ("order notional", ">", "quote", " per order"),
    "min_notional": ("order notional", "<", "quote", " minimum per order"),
    "position_qty": ("position after the order", ">", "base", " on {scope}"),
    "position_notional": ("position notional after the order", ">", "quote", " on {scope}"),
    "price_band": ("limit price off the mid by", ">", "bps", " price band"),
    "price_tick": ("limit price", "<", "quote", " (one tick): a limit below one tick is no price"),
    "open_orders": ("open orders", ">=", "orders", " for {scope}"),
    "order_rate": ("orders in the last 10 s", ">=", "orders", " per 10 s for {scope}"),
    "order_rate_1s": ("orders in the last second", ">=", "orders", " per second for {scope}"),
}
LIMIT_REASONS = frozenset(_WORDS)
