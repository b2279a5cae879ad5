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
from dataclasses import dataclass, field
from decimal import Decimal
from enum import StrEnum

from engine.errors import ConfigError, RiskRefused
from ext.orders import RISK_REASONS, RiskCore


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


class RiskGateway:
    """The pre-trade gate every order passes; the checks themselves run in C (``ext.orders.RiskCore``).

    ``state`` and ``open_orders`` are read by the checks; ``refused`` counts refusals by reason."""

    def __init__(self, cfg: RiskConfig | None = None) -> None:
        self.cfg = cfg = cfg or RiskConfig()
        self.core = RiskCore(float(cfg.max_order_notional), float(cfg.max_position_notional), cfg.max_open_orders,
                             cfg.price_band_bps, cfg.max_orders_per_10s)
        self._state = TradingState.ACTIVE
        self.refused: dict[str, int] = {}

    @property
    def state(self) -> TradingState:
        return self._state

    @state.setter
    def state(self, value: TradingState) -> None:
        self._state = TradingState(value)
        self.core.state = _STATES.index(self._state)

    @property
    def open_orders(self) -> int:
        return self.core.open_orders

    @open_orders.setter
    def open_orders(self, value: int) -> None:
        self.core.open_orders = value

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
        accounting exact). A refusal raises ``RiskRefused`` with its reason and the numbers behind it."""
        code = self.core.check(buy, qty, _NAN if price is None else price, _NAN if mid is None else mid, position,
                               reduce_only, synced, stale, crossed, time.monotonic() if now_s is None else now_s)
        if code:
            raise self.refusal(code, symbol, buy, qty, price, mid, position)

    def refusal(self, code: int, symbol: str, buy: bool, qty: float, price: float | None, mid: float | None,
                position: float) -> RiskRefused:
        """The ``RiskRefused`` for a ``RiskCore`` code (counted in ``refused``), with the numbers behind it."""
        reason = RISK_REASONS[code]
        self.refused[reason] = self.refused.get(reason, 0) + 1
        return RiskRefused(reason, self._detail(reason, symbol, buy, qty, price, mid, position))

    def _detail(self, reason: str, symbol: str, buy: bool, qty: float, price: float | None, mid: float | None,
                position: float) -> str:
        cfg = self.cfg
        ref = price if price is not None else mid
        if reason == "halted":
            return "trading is halted (kill switch); /resume to trade again"
        if reason == "reducing":
            return "only position-reducing orders are allowed now"
        if reason == "book_unsynced":
            return f"{symbol} book is resyncing"
        if reason == "book_stale":
            return f"{symbol} book has not updated for {cfg.stale_ms} ms"
        if reason == "book_crossed":
            return f"{symbol} book is crossed"
        if reason == "no_price":
            return f"{symbol}: no price to value the order"
        if reason == "order_notional":
            return f"{qty * ref:.0f} USDT > {cfg.max_order_notional} per order"
        if reason == "position_notional":
            after = position + (qty if buy else -qty)
            return f"position would be {abs(after) * ref:.0f} USDT > {cfg.max_position_notional}"
        if reason == "price_band":
            return f"price {price} is {abs(price - mid) / mid * 10_000:.0f} bps from the mid {mid}"
        if reason == "open_orders":
            return f"{self.open_orders} open orders"
        return f"{self.core.orders_in_window} orders in 10 s"


_STATES = (TradingState.ACTIVE, TradingState.REDUCING, TradingState.HALTED)
_NAN = float("nan")


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
