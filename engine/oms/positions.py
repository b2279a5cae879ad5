"""Positions and PnL per symbol, from fills alone (average-cost method, one-way mode, fees in USDT)."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

ZERO = Decimal(0)


@dataclass
class Position:
    """Signed quantity (long > 0), average entry price, realised PnL and fees paid, in USDT."""

    symbol: str
    qty: Decimal = ZERO
    entry: Decimal = ZERO
    realized: Decimal = ZERO
    fees: Decimal = ZERO
    qty_f: float = 0.0           # qty as a float, kept in step by ``apply``: the order path's risk check reads it

    def __post_init__(self) -> None:
        self.qty_f = float(self.qty)

    def apply(self, side: str, price: Decimal, qty: Decimal, fee: Decimal = ZERO) -> Decimal:
        """Add one fill; returns the PnL it realised (before fees)."""
        pnl = self._apply(side, price, qty, fee)
        self.qty_f = float(self.qty)
        return pnl

    def _apply(self, side: str, price: Decimal, qty: Decimal, fee: Decimal) -> Decimal:
        signed = qty if side == "BUY" else -qty
        self.fees += fee
        if self.qty == 0 or (self.qty > 0) == (signed > 0):
            total = abs(self.qty) + qty
            self.entry = (self.entry * abs(self.qty) + price * qty) / total
            self.qty += signed
            return ZERO
        closing = min(abs(self.qty), qty)
        pnl = (price - self.entry) * closing * (1 if self.qty > 0 else -1)
        self.realized += pnl
        self.qty += signed
        if self.qty == 0:
            self.entry = ZERO
        elif (self.qty > 0) == (signed > 0):       # flipped: the rest opens at this price
            self.entry = price
        return pnl

    def unrealized(self, mark: Decimal) -> Decimal:
        return (mark - self.entry) * self.qty if self.qty else ZERO

    def net_pnl(self, mark: Decimal | None = None) -> Decimal:
        return self.realized - self.fees + (self.unrealized(mark) if mark is not None else ZERO)


class Book:
    """All positions, keyed by symbol."""

    def __init__(self) -> None:
        self.positions: dict[str, Position] = {}

    def get(self, symbol: str) -> Position:
        pos = self.positions.get(symbol)
        if pos is None:
            pos = self.positions[symbol] = Position(symbol)
        return pos

    def apply(self, symbol: str, side: str, price: Decimal, qty: Decimal, fee: Decimal = ZERO) -> Decimal:
        return self.get(symbol).apply(side, price, qty, fee)
