"""Accounts of the simulated venue: USDT wallet, one-way positions, fees and realised PnL (cross margin).

Assumptions:

- One asset (USDT), cross margin, one-way mode (positionSide BOTH). Fees are ``rate x quote notional`` of each fill,
  exact Decimals, deducted from the wallet in USDT (no BNB discount).
- A position is a signed size in lots with an average entry price. A fill in the position's direction re-averages
  the entry; a fill against it realises ``closed qty x (fill price - entry) x sign`` into the wallet; a fill larger
  than the position flips it, the excess opening at the fill price.
- Break-even price: the entry moved by the fees paid on the fills that opened the current position.
- Margin: initial margin of a position is ``|qty| x mark / leverage``; of an open LIMIT order that can increase the
  position, ``remaining qty x price / leverage``. Available balance = wallet + unrealised PnL - both margins. No
  maintenance margin and no liquidation are modelled.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal

from engine.model import Instrument

ZERO = Decimal(0)


@dataclass(slots=True)
class Position:
    """Mutable position state of one account in one symbol."""

    symbol: str
    qty_lots: int = 0
    entry_price: Decimal = ZERO
    realized_pnl: Decimal = ZERO            # cumulative, before fees (Binance's "cr")
    open_fees: Decimal = ZERO               # fees paid on the fills that built the current position
    update_ns: int = 0

    def apply_fill(self, inst: Instrument, signed_lots: int, price: Decimal, fee: Decimal, now_ns: int) -> Decimal:
        """Apply a fill of ``signed_lots`` (+ buy, - sell) at ``price``; returns the PnL it realised (before fees)."""
        old = self.qty_lots
        new = old + signed_lots
        realized = ZERO
        if old == 0 or (old > 0) == (signed_lots > 0):
            total = abs(old) + abs(signed_lots)
            self.entry_price = (abs(old) * self.entry_price + abs(signed_lots) * price) / total
            self.open_fees += fee
        else:
            closed = min(abs(old), abs(signed_lots))
            direction = 1 if old > 0 else -1
            realized = inst.lots_to_qty(closed) * (price - self.entry_price) * direction
            if new == 0:
                self.entry_price = ZERO
                self.open_fees = ZERO
            elif (new > 0) != (old > 0):                 # flipped: the excess opens at the fill price
                self.entry_price = price
                self.open_fees = fee * (abs(new)) / abs(signed_lots)
            else:
                self.open_fees = self.open_fees * abs(new) / abs(old)
        self.qty_lots = new
        self.realized_pnl += realized
        self.update_ns = now_ns
        return realized

    def unrealized(self, inst: Instrument, mark: Decimal) -> Decimal:
        if self.qty_lots == 0:
            return ZERO
        return inst.lots_to_qty(self.qty_lots) * (mark - self.entry_price)

    def break_even(self, inst: Instrument) -> Decimal:
        if self.qty_lots == 0:
            return ZERO
        per_unit = self.open_fees / inst.lots_to_qty(abs(self.qty_lots))
        return self.entry_price + per_unit if self.qty_lots > 0 else self.entry_price - per_unit


@dataclass(slots=True)
class Account:
    """One trading account: wallet (USDT), leverage, positions by symbol."""

    name: str
    wallet: Decimal
    leverage: int
    positions: dict[str, Position] = field(default_factory=dict)
    fees_paid: Decimal = ZERO

    def position(self, symbol: str) -> Position:
        pos = self.positions.get(symbol)
        if pos is None:
            pos = self.positions[symbol] = Position(symbol)
        return pos
