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

    def __post_init__(self) -> None:
        self._max_order = float(self.cfg.max_order_notional)
        self._max_position = float(self.cfg.max_position_notional)

    def _refuse(self, reason: str, detail: str) -> None:
        self.refused[reason] = self.refused.get(reason, 0) + 1
        raise RiskRefused(reason, detail)

    def check(self, o: OrderCheck, book_health: dict | None = None, now_s: float | None = None) -> None:
        """Raise RiskRefused unless this order may go now; on success count it against the order rate."""
        h = book_health or {}
        self.check_fast(o.symbol, o.side == "BUY", float(o.qty), None if o.price is None else float(o.price),
                        None if o.mid is None else float(o.mid), float(o.position), o.reduce_only,
                        h.get("synced", True), h.get("stale", False), h.get("crossed", False), now_s)

    def check_fast(self, symbol: str, buy: bool, qty: float, price: float | None, mid: float | None,
                   position: float, reduce_only: bool, synced: bool = True, stale: bool = False,
                   crossed: bool = False, now_s: float | None = None) -> None:
        """``check`` on plain floats, for the order path: thresholds need no exact decimals (the OMS keeps the
        accounting exact), and Decimal arithmetic was a fifth of the decision-to-wire time."""
        cfg = self.cfg
        reduces = reduce_only or (position > 0 and not buy and qty <= position) or \
            (position < 0 and buy and qty <= -position)
        if self.state is TradingState.HALTED:
            self._refuse("halted", "trading is halted (kill switch); /resume to trade again")
        if self.state is TradingState.REDUCING and not reduces:
            self._refuse("reducing", "only position-reducing orders are allowed now")
        if not synced:
            self._refuse("book_unsynced", f"{symbol} book is resyncing")
        if stale:
            self._refuse("book_stale", f"{symbol} book has not updated for {cfg.stale_ms} ms")
        if crossed:
            self._refuse("book_crossed", f"{symbol} book is crossed")
        ref = price if price is not None else mid
        if ref is None:
            self._refuse("no_price", f"{symbol}: no price to value the order")
        notional = qty * ref
        if notional > self._max_order:
            self._refuse("order_notional", f"{notional:.0f} USDT > {cfg.max_order_notional} per order")
        after = position + (qty if buy else -qty)
        if not reduces and abs(after) * ref > self._max_position:
            self._refuse("position_notional", f"position would be {abs(after) * ref:.0f} USDT "
                                              f"> {cfg.max_position_notional}")
        if price is not None and mid:
            band = abs(price - mid) / mid * 10_000
            if band > cfg.price_band_bps:
                self._refuse("price_band", f"price {price} is {band:.0f} bps from the mid {mid}")
        if self.open_orders >= cfg.max_open_orders:
            self._refuse("open_orders", f"{self.open_orders} open orders")
        now = time.monotonic() if now_s is None else now_s
        while self._sent and now - self._sent[0] > 10:
            self._sent.popleft()
        if len(self._sent) >= cfg.max_orders_per_10s:
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
