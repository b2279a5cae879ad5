"""Core value types: instruments with exact integer price/quantity grids, sides."""

from __future__ import annotations

import functools
from dataclasses import dataclass
from decimal import Decimal
from enum import IntEnum, StrEnum

from engine.errors import ConfigError, DataError


class Side(IntEnum):
    """Book side / order side. BUY rests on the bid side, SELL on the ask side."""

    BUY = 0
    SELL = 1

    @property
    def sign(self) -> int:
        return 1 if self is Side.BUY else -1

    @property
    def opposite(self) -> Side:
        return Side.SELL if self is Side.BUY else Side.BUY


def _dec(value: str | Decimal | float, what: str) -> Decimal:
    try:
        d = Decimal(str(value))
    except ArithmeticError as exc:
        raise ConfigError(f"{what}: not a decimal number: {value!r}") from exc
    if not d.is_finite() or d <= 0:
        raise ConfigError(f"{what} must be a positive decimal, got {value!r}")
    return d.normalize()


@dataclass(frozen=True, slots=True)
class Instrument:
    """A tradable symbol and its exact grids: prices are integer ticks, quantities integer lots.

    ``tick_size`` and ``step_size`` are Binance's PRICE_FILTER.tickSize and LOT_SIZE.stepSize as decimal strings.
    """

    symbol: str
    tick_size: Decimal
    step_size: Decimal
    min_notional: Decimal = Decimal("5")
    min_qty: Decimal | None = None

    @classmethod
    def make(cls, symbol: str, tick_size: str, step_size: str, min_notional: str = "5",
             min_qty: str | None = None) -> Instrument:
        if not symbol or not symbol.isalnum() or symbol.upper() != symbol:
            raise ConfigError(f"symbol must be upper-case alphanumeric, got {symbol!r}")
        return cls(symbol, _dec(tick_size, "tick_size"), _dec(step_size, "step_size"),
                   _dec(min_notional, "min_notional"),
                   _dec(min_qty, "min_qty") if min_qty is not None else None)

    @staticmethod
    def grid(size: Decimal) -> tuple[int, int]:
        """(mantissa, decimals) with size == mantissa * 10**-decimals, decimals >= 0."""
        _, digits, exp = size.normalize().as_tuple()
        mant = int("".join(map(str, digits)))
        if exp > 0:
            return mant * 10**exp, 0
        return mant, -exp

    def price_to_ticks(self, price: str | Decimal) -> int:
        return _to_units(price, self.tick_size, "price", self.symbol)

    def qty_to_lots(self, qty: str | Decimal) -> int:
        return _to_units(qty, self.step_size, "quantity", self.symbol)

    def ticks_to_price(self, ticks: int) -> Decimal:
        return ticks * self.tick_size

    def lots_to_qty(self, lots: int) -> Decimal:
        return lots * self.step_size

    def fmt_price(self, ticks: int) -> str:
        """Ticks as Binance's decimal string, by integer arithmetic (no Decimal on the order path)."""
        return _fmt_units(ticks, *_grid(self.tick_size))

    def fmt_qty(self, lots: int) -> str:
        return _fmt_units(lots, *_grid(self.step_size))


def _to_units(value: str | Decimal, size: Decimal, what: str, symbol: str) -> int:
    try:
        d = Decimal(value) if isinstance(value, str) else value
    except ArithmeticError as exc:
        raise DataError(f"{symbol}: {what} {value!r} is not a decimal") from exc
    units, rem = divmod(d, size)
    if rem != 0 or not d.is_finite():
        raise DataError(f"{symbol}: {what} {value} is not a multiple of {size}")
    return int(units)


@functools.cache
def _grid(size: Decimal) -> tuple[int, int]:
    return Instrument.grid(size)


def _fmt_units(units: int, mant: int, decimals: int) -> str:
    """``units`` x ``mant`` x 10**-decimals as a plain decimal string with exactly ``decimals`` places."""
    v = units * mant
    if decimals == 0:
        return str(v)
    sign = "-" if v < 0 else ""
    whole, frac = divmod(abs(v), 10**decimals)
    return f"{sign}{whole}.{frac:0{decimals}d}"


# Grids of the symbols in the bundled and shared recordings (Binance USD-M exchangeInfo). Live and sim runs take
# them from exchangeInfo instead; these let a bare recording be read without one.
KNOWN_INSTRUMENTS: dict[str, Instrument] = {
    "BTCUSDT": Instrument.make("BTCUSDT", "0.10", "0.001", "100", "0.001"),
    "ETHUSDT": Instrument.make("ETHUSDT", "0.01", "0.001", "20", "0.001"),
}


class OrderType(StrEnum):
    """Binance USD-M order types (the wire strings)."""

    LIMIT = "LIMIT"
    MARKET = "MARKET"
    STOP_MARKET = "STOP_MARKET"
    TAKE_PROFIT_MARKET = "TAKE_PROFIT_MARKET"


class TimeInForce(StrEnum):
    GTC = "GTC"
    IOC = "IOC"
    FOK = "FOK"
    GTX = "GTX"          # post-only: rejected (expired) if it would take


class OrderStatus(StrEnum):
    """Binance order statuses; UNKNOWN is ours (an ack was lost: resolve by querying the venue)."""

    NEW = "NEW"
    PARTIALLY_FILLED = "PARTIALLY_FILLED"
    FILLED = "FILLED"
    CANCELED = "CANCELED"
    REJECTED = "REJECTED"
    EXPIRED = "EXPIRED"
    EXPIRED_IN_MATCH = "EXPIRED_IN_MATCH"

    @property
    def final(self) -> bool:
        return self not in (OrderStatus.NEW, OrderStatus.PARTIALLY_FILLED)
