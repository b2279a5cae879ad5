"""Pre-trade risk: one gateway every order passes, a trading state, and the KillSwitch.

- ``TradingState``: ACTIVE (anything allowed), REDUCING (only orders that shrink a position), HALTED (nothing).
- ``RiskGateway.check`` refuses with ``RiskRefused(reason)``: trading state, book health (synced, fresh, not
  crossed), order notional, position notional after the order, open-order count, a price band around the mid,
  and our own order rate.
- ``KillSwitch``: drawdown measured from the *peak* of equity (realised + unrealised - fees) since start, and a
  loss limit for the session; tripping it halts trading (the node then cancels everything). Also tripped by hand.
"""

from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass, field
from decimal import Decimal
from enum import StrEnum

from engine.errors import ConfigError, RiskRefused


class TradingState(StrEnum):
    ACTIVE = "ACTIVE"
    REDUCING = "REDUCING"
    HALTED = "HALTED"


@dataclass(frozen=True)
class RiskConfig:
    max_order_notional: Decimal = Decimal("250000")      # USDT per order
    max_position_notional: Decimal = Decimal("500000")   # USDT per symbol after the order
    max_open_orders: int = 50
    price_band_bps: float = 300.0                        # a limit price at most this far from the mid
    max_orders_per_10s: int = 100                        # our own throttle, under the venue's 300
    max_drawdown: Decimal = Decimal("5000")              # USDT from the equity peak
    max_session_loss: Decimal = Decimal("10000")         # USDT below the starting equity
    stale_ms: int = 5000

    def __post_init__(self) -> None:
        for name in ("max_order_notional", "max_position_notional", "max_drawdown", "max_session_loss"):
            if getattr(self, name) <= 0:
                raise ConfigError(f"risk.{name} must be > 0")
        if self.max_open_orders < 1 or self.max_orders_per_10s < 1 or self.price_band_bps <= 0:
            raise ConfigError("risk limits must be positive")


@dataclass
class OrderCheck:
    """What the gateway needs to know about one prospective order (prices and sizes in instrument units)."""

    symbol: str
    side: str                 # BUY / SELL
    qty: Decimal
    price: Decimal | None     # None: market
    mid: Decimal | None
    position: Decimal         # signed, before the order
    reduce_only: bool = False


@dataclass
class RiskGateway:
    cfg: RiskConfig = field(default_factory=RiskConfig)
    state: TradingState = TradingState.ACTIVE
    open_orders: int = 0
    refused: dict[str, int] = field(default_factory=dict)
    _sent: deque = field(default_factory=deque)

    def _refuse(self, reason: str, detail: str) -> None:
        self.refused[reason] = self.refused.get(reason, 0) + 1
        raise RiskRefused(reason, detail)

    def check(self, o: OrderCheck, book_health: dict | None = None, now_s: float | None = None) -> None:
        """Raise RiskRefused unless this order may go now; on success count it against the order rate."""
        reduces = o.reduce_only or (o.position > 0 and o.side == "SELL" and o.qty <= o.position) or \
            (o.position < 0 and o.side == "BUY" and o.qty <= -o.position)
        if self.state is TradingState.HALTED:
            self._refuse("halted", "trading is halted (kill switch); /resume to trade again")
        if self.state is TradingState.REDUCING and not reduces:
            self._refuse("reducing", "only position-reducing orders are allowed now")
        if book_health is not None:
            if not book_health.get("synced"):
                self._refuse("book_unsynced", f"{o.symbol} book is resyncing")
            if book_health.get("stale"):
                self._refuse("book_stale", f"{o.symbol} book has not updated for {self.cfg.stale_ms} ms")
            if book_health.get("crossed"):
                self._refuse("book_crossed", f"{o.symbol} book is crossed")
        ref = o.price if o.price is not None else o.mid
        if ref is None:
            self._refuse("no_price", f"{o.symbol}: no price to value the order")
        notional = o.qty * ref
        if notional > self.cfg.max_order_notional:
            self._refuse("order_notional", f"{notional:.0f} USDT > {self.cfg.max_order_notional} per order")
        after = o.position + (o.qty if o.side == "BUY" else -o.qty)
        if not reduces and abs(after) * ref > self.cfg.max_position_notional:
            self._refuse("position_notional", f"position would be {abs(after) * ref:.0f} USDT "
                                              f"> {self.cfg.max_position_notional}")
        if o.price is not None and o.mid is not None:
            band = abs(o.price - o.mid) / o.mid * Decimal(10_000)
            if band > Decimal(str(self.cfg.price_band_bps)):
                self._refuse("price_band", f"price {o.price} is {band:.0f} bps from the mid {o.mid}")
        if self.open_orders >= self.cfg.max_open_orders:
            self._refuse("open_orders", f"{self.open_orders} open orders")
        now = time.monotonic() if now_s is None else now_s
        while self._sent and now - self._sent[0] > 10:
            self._sent.popleft()
        if len(self._sent) >= self.cfg.max_orders_per_10s:
            self._refuse("order_rate", f"{len(self._sent)} orders in 10 s")
        self._sent.append(now)


@dataclass
class KillSwitch:
    """Trips on drawdown from the equity peak or on session loss; ``trip()`` by hand. Equity is in USDT."""

    cfg: RiskConfig = field(default_factory=RiskConfig)
    start: Decimal | None = None
    peak: Decimal | None = None
    tripped: str = ""

    def update(self, equity: Decimal) -> str:
        """Feed the current equity; returns the trip reason the first time a limit is crossed, else ''."""
        if self.start is None:
            self.start = self.peak = equity
        if equity > self.peak:
            self.peak = equity
        if self.tripped:
            return ""
        if self.peak - equity >= self.cfg.max_drawdown:
            return self.trip(f"drawdown {self.peak - equity:.2f} USDT from the peak {self.peak:.2f}")
        if self.start - equity >= self.cfg.max_session_loss:
            return self.trip(f"session loss {self.start - equity:.2f} USDT")
        return ""

    def trip(self, reason: str) -> str:
        self.tripped = reason
        return reason

    def reset(self) -> None:
        self.tripped = ""
        self.peak = None
        self.start = None
