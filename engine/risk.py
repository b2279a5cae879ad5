"""Pre-trade risk: one gateway every order passes, a trading state, and the KillSwitch.

- ``TradingState``: ACTIVE (anything allowed), REDUCING (only orders that shrink a position), HALTED (only
  reduce-only orders that close part of the position: ``flat`` and TP/SL; no new exposure).
- ``RiskGateway.check`` refuses with ``RiskRefused(reason)``: trading state, book health (synced, fresh, not
  crossed), then the limits of ``engine.limits`` per symbol and for the account (order quantity and notional,
  minimum notional, position quantity and notional after the order, a price band around the mid, open orders,
  our own order rate per second and per 10 s); a limit's refusal carries the limit, the value and the unit.
  ``check_intent`` applies them to an intent as a whole when it is accepted.
- ``KillSwitch``: drawdown measured from the *day's* peak of equity (realised + unrealised - fees), the day's
  loss and the session's; tripping it halts trading (``engine.kill`` then cancels everything, optionally
  flattens, and reports). Also tripped by hand and by the guards (``engine.guards``).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from enum import StrEnum
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from engine.errors import ConfigError, RiskRefused
from engine.limits import COUNT_KEYS, LIMIT_KEYS, LIMIT_REASONS, SymbolLimits, num, validate, validate_symbols
from engine.limits import refusal as limit_refusal
from ext.orders import RISK_ACCOUNT, RISK_REASONS, RiskCore


class TradingState(StrEnum):
    ACTIVE = "ACTIVE"
    REDUCING = "REDUCING"
    HALTED = "HALTED"


@dataclass(frozen=True)
class RiskConfig:
    """``[risk]``: the pre-trade limits (``engine.limits``: every symbol's defaults, the account's counts, and
    ``symbols``, a table of per-symbol limits), then the KillSwitch's."""

    max_order_qty: Decimal = Decimal("0")                # base asset per order (0: off; set it per symbol)
    max_order_notional: Decimal = Decimal("250000")      # USDT per order
    max_position_qty: Decimal = Decimal("0")             # base asset per symbol after the order (0: off)
    max_position_notional: Decimal = Decimal("500000")   # USDT per symbol after the order
    min_notional: Decimal = Decimal("0")                 # USDT per order; the venue's minimum is the floor
    max_open_orders: int = 50                            # the account's; a symbol's may be lower
    price_band_bps: float = 300.0                        # a limit price at most this far from the mid
    max_orders_per_s: int = 0                            # the account's, over a sliding second (0: off)
    max_orders_per_10s: int = 100                        # our own throttle, under the venue's 300
    symbols: dict[str, SymbolLimits] = field(default_factory=dict)   # [risk.symbols.BTCUSDT] ...
    max_drawdown: Decimal = Decimal("5000")              # USDT from the equity peak
    max_session_loss: Decimal = Decimal("10000")         # USDT below the starting equity
    stale_ms: int = 5000
    # ---- KillSwitch: automatic triggers (0 turns one off) and what a kill does ----
    max_daily_loss: Decimal = Decimal("10000")           # USDT below the day's starting equity
    day_start: str = "00:00"                             # when the trading day begins (HH:MM in day_timezone)
    day_timezone: str = "UTC"                            # an IANA zone name
    kill_book_unhealthy_ms: int = 3000                   # a book unsynced, stale or crossed this long while orders work
    kill_latency_ms: float = 0.0                         # order round trip, loop lag or feed latency over this ...
    kill_latency_s: float = 5.0                          # ... without a break for this long
    kill_reject_streak: int = 5                          # venue rejects in a row
    kill_unreachable_s: float = 10.0                     # market stream, user stream or order socket down this long
    kill_loop_stall_ms: int = 1000                       # the event loop blocked this long while orders work
    kill_watchdog_ms: int = 300                          # a kill the loop has not carried out by then: the thread does
    kill_flatten: str = "off"                            # off, ioc (one reduce-only IOC inside the cap) or timed
    kill_flatten_cap_bps: float = 30.0                   # how far from the mid a flatten may fill
    kill_flatten_window_s: float = 5.0                   # timed: the EXIT intent's window

    def __post_init__(self) -> None:
        for name in ("max_drawdown", "max_session_loss"):
            if getattr(self, name) <= 0:
                raise ConfigError(f"risk.{name} must be > 0")
        validate(self.limits(), "risk.")
        validate_symbols(self.limits(), self.symbols)
        self._check_kill()

    def limits(self, symbol: str | None = None) -> dict[str, Any]:
        """The limits in force for ``symbol`` (its own over the defaults), or the defaults (``engine.limits``)."""
        own = self.symbols.get(symbol or "")
        return {k: getattr(self, k) for k in LIMIT_KEYS} | (own.set() if own is not None else {})

    def _check_kill(self) -> None:
        """The KillSwitch keys: each a number in its range or a known word."""
        day_zone(self.day_start, self.day_timezone)
        if self.max_daily_loss <= 0:
            raise ConfigError("risk.max_daily_loss must be > 0")
        for name in ("kill_book_unhealthy_ms", "kill_latency_ms", "kill_reject_streak", "kill_unreachable_s",
                     "kill_loop_stall_ms"):
            if getattr(self, name) < 0:
                raise ConfigError(f"risk.{name} must be >= 0 (0: off)")
        if self.kill_latency_s <= 0 or not 50 <= self.kill_watchdog_ms <= 5000:
            raise ConfigError("risk.kill_latency_s must be > 0 and risk.kill_watchdog_ms within 50-5000")
        if self.kill_flatten not in ("off", "ioc", "timed"):
            raise ConfigError(f"risk.kill_flatten must be off, ioc or timed, got {self.kill_flatten!r}")
        if not 0 < self.kill_flatten_cap_bps <= 500 or not 5 <= self.kill_flatten_window_s <= 60:
            raise ConfigError("risk.kill_flatten_cap_bps must be within (0, 500] and kill_flatten_window_s 5-60")


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

    ``state`` and ``open_orders`` are read by the checks; ``refused`` counts refusals by reason and
    ``refused_levels`` by (reason, level): ``order`` for the order path's checks, ``intent`` for an intent
    refused as a whole when it arrives (the intent runner counts those, ``count_refusal``)."""

    def __init__(self, cfg: RiskConfig | None = None) -> None:
        self.cfg = cfg = cfg or RiskConfig()
        self.core = RiskCore(**_core_args(cfg.limits()))
        for symbol in cfg.symbols:
            self.core.add_symbol(symbol, **_core_args(cfg.limits(symbol)))
        self._state = TradingState.ACTIVE
        self.refused: dict[str, int] = {}
        self.refused_levels: dict[tuple[str, str], int] = {}

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

    def count_refusal(self, reason: str, level: str = "order") -> None:
        """One refusal (``level``: order or intent); a reason outside the known set counts as ``other``."""
        self.refused[reason] = self.refused.get(reason, 0) + 1
        key = (reason if reason in REFUSAL_REASONS else "other", level)
        self.refused_levels[key] = self.refused_levels.get(key, 0) + 1

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
                               reduce_only, synced, stale, crossed, time.monotonic() if now_s is None else now_s,
                               self.core.symbol(symbol))
        if code:
            raise self.refusal(code, symbol, buy, qty, price, mid, position)

    def limits(self, symbol: str, venue_min_notional: Decimal | float = 0) -> dict[str, float]:
        """The limits ``RiskCore`` enforces on ``symbol`` (the venue's minimum notional as the floor)."""
        return self.core.limits(self.core.symbol(symbol, float(venue_min_notional)))

    def check_intent(self, symbol: str, buy: bool, qty: float, limit: float | None, worst: float, mid: float,
                     position: float, reduce_only: bool, tick: float, venue_min_notional: float = 0) -> None:
        """The checks an intent as a whole must pass when it is accepted, before any order: its size as one order
        (the algorithms may send all of it at once), valued at its limit or the mid, the position after it, and
        the worst price it may send against the mid's band. Raises ``RiskRefused`` naming the limit, the value and
        the unit (not counted here: a preview asks too; the intent runner counts the refusals of intents);
        rates, open orders and the book are the orders' to pass."""
        lim = self.limits(symbol, venue_min_notional)
        exc = _intent_breach(lim, symbol, buy, qty, limit, worst, mid, position, reduce_only, tick)
        if exc is not None:
            raise exc

    def refusal(self, code: int, symbol: str, buy: bool, qty: float, price: float | None, mid: float | None,
                position: float) -> RiskRefused:
        """The ``RiskRefused`` for a ``RiskCore`` code (counted in ``refused``), with the numbers behind it."""
        reason = RISK_REASONS[code]
        self.count_refusal(reason, "order")
        if reason in LIMIT_REASONS:                  # the core kept the limit, the value and whose limit it was
            core = self.core
            scope = "the account" if core.last_sym == RISK_ACCOUNT else symbol
            extra = (f" (price {num(price, 'USDT')}, mid {num(mid, 'USDT')})"
                     if reason == "price_band" and price is not None and mid is not None else "")
            return limit_refusal(reason, symbol, core.last_limit, core.last_value, scope, extra)
        return RiskRefused(reason, self._detail(reason, symbol))

    def _detail(self, reason: str, symbol: str) -> str:
        cfg = self.cfg
        if reason == "halted":
            return "trading is halted (kill switch): only flat and TP/SL go out; /resume to trade again"
        if reason == "reducing":
            return "trading is reducing: only orders that shrink the position go out"
        if reason == "book_unsynced":
            return f"{symbol} book is resyncing"
        if reason == "book_stale":
            return f"{symbol} book has not updated for {cfg.stale_ms} ms"
        if reason == "book_crossed":
            return f"{symbol} book is crossed"
        return f"{symbol}: no price to value the order"


_STATES = (TradingState.ACTIVE, TradingState.REDUCING, TradingState.HALTED)
# every reason a refusal may carry (the order path's and the intent runner's), the metrics' bounded label set
REFUSAL_REASONS = frozenset(RISK_REASONS[1:]) | LIMIT_REASONS | {"shutdown", "busy", "deadline", "invalid"}
_NAN = float("nan")


def _core_args(limits: dict[str, Any]) -> dict[str, Any]:
    """``RiskCore``'s keyword arguments for a set of limits (``RiskConfig.limits``)."""
    return {k: (int(v) if k in COUNT_KEYS else float(v)) for k, v in limits.items()}


def _intent_breach(lim: dict[str, float], symbol: str, buy: bool, qty: float, limit: float | None, worst: float,
                   mid: float, position: float, reduce_only: bool, tick: float) -> RiskRefused | None:
    """The first limit an intent as a whole breaks (``RiskGateway.check_intent``), or None."""
    if limit is not None and limit < tick:
        return limit_refusal("price_tick", symbol, tick, limit)
    ref = mid if limit is None else limit
    after = abs(position + (qty if buy else -qty))
    reduces = reduce_only or (position > 0 and not buy and qty <= position) or \
        (position < 0 and buy and qty <= -position)                       # as RiskCore: shrinks, never flips
    for reason, key, value, skip in (
            ("order_qty", "max_order_qty", qty, reduce_only or not lim["max_order_qty"]),
            ("order_notional", "max_order_notional", qty * ref, reduce_only),
            ("min_notional", "min_notional", qty * ref, reduce_only),
            ("position_qty", "max_position_qty", after, reduces or not lim["max_position_qty"]),
            ("position_notional", "max_position_notional", after * ref, reduces)):
        bad = value < lim[key] if reason == "min_notional" else value > lim[key]
        if bad and not skip:
            return limit_refusal(reason, symbol, lim[key], value)
    bps = abs(worst - mid) / mid * 10_000
    if bps > lim["price_band_bps"]:
        return limit_refusal("price_band", symbol, lim["price_band_bps"], bps,
                             extra=f" (the intent may send {num(worst, 'USDT')}; mid {num(mid, 'USDT')})")
    return None


def day_zone(day_start: str, tz: str) -> tuple[ZoneInfo, int]:
    """The zone and the day's start in minutes after midnight, or a ``ConfigError`` naming the key."""
    try:
        zone = ZoneInfo(tz)
    except (ZoneInfoNotFoundError, ValueError):
        raise ConfigError(f"risk.day_timezone: unknown time zone {tz!r}") from None
    hh, _, mm = day_start.partition(":")
    if not (hh.isdigit() and mm.isdigit() and len(mm) == 2 and int(hh) < 24 and int(mm) < 60):
        raise ConfigError(f"risk.day_start must be HH:MM, got {day_start!r}")
    return zone, int(hh) * 60 + int(mm)


def trading_day(now_ns: int, zone: ZoneInfo, start_min: int) -> str:
    """The trading day ``now_ns`` (epoch ns) falls in: the calendar date of ``now - day_start`` in ``zone``."""
    t = datetime.fromtimestamp(now_ns // 1_000_000_000, zone) - timedelta(minutes=start_min)
    return t.date().isoformat()


@dataclass
class KillSwitch:
    """Trips on drawdown from the *day's* equity peak, on the day's loss, or on the session's loss; ``trip()`` by
    hand or by a guard. Equity is in USDT. The day's start and peak survive a restart (``snapshot``/``restore``,
    kept in the journal's kv under ``KV_KEY``); the day begins at ``day_start`` in ``day_timezone``."""

    cfg: RiskConfig = field(default_factory=RiskConfig)
    start: Decimal | None = None          # the session's starting equity
    peak: Decimal | None = None           # the day's peak
    day: str = ""
    day_open: Decimal | None = None       # the equity when the day began (or when we first saw it)
    tripped: str = ""
    trigger: str = ""                     # what tripped it: manual, drawdown, daily_loss, book, latency, ...

    KV_KEY = "killswitch/day"

    def update(self, equity: Decimal, now_ns: int | None = None) -> str:
        """Feed the current equity; returns the trip reason the first time a limit is crossed, else ''."""
        self._roll(equity, time.time_ns() if now_ns is None else now_ns)
        if self.start is None:
            self.start = equity
        self.peak = equity if self.peak is None else max(self.peak, equity)
        if self.tripped:
            return ""
        cfg = self.cfg
        if self.peak - equity >= cfg.max_drawdown:
            return self.trip(f"drawdown {self.peak - equity:.2f} USDT from the day's peak {self.peak:.2f}", "drawdown")
        if self.day_open - equity >= cfg.max_daily_loss:
            return self.trip(f"daily loss {self.day_open - equity:.2f} USDT (day {self.day})", "daily_loss")
        if self.start - equity >= cfg.max_session_loss:
            return self.trip(f"session loss {self.start - equity:.2f} USDT", "session_loss")
        return ""

    def _roll(self, equity: Decimal, now_ns: int) -> None:
        """A new trading day starts from the equity it opens at."""
        day = trading_day(now_ns, *day_zone(self.cfg.day_start, self.cfg.day_timezone))
        if day != self.day:
            self.day, self.day_open, self.peak = day, equity, equity

    def snapshot(self) -> dict[str, str]:
        """What the journal keeps so that a restart the same day keeps the day's start and peak."""
        return {"day": self.day, "open": str(self.day_open), "peak": str(self.peak)}

    def restore(self, saved: object) -> None:
        """Take back a ``snapshot`` (ignored unless well formed; a past day rolls over at the next update)."""
        if isinstance(saved, dict) and saved.get("day") and saved.get("peak") not in (None, "None"):
            self.day, self.day_open, self.peak = saved["day"], Decimal(saved["open"]), Decimal(saved["peak"])

    def trip(self, reason: str, trigger: str = "manual") -> str:
        self.tripped, self.trigger = reason, trigger
        return reason

    def reset(self) -> None:
        """Resume: the trip is cleared; the day's peak and open stay (they are the day's, not the trip's)."""
        self.tripped = self.trigger = ""
        self.start = None
