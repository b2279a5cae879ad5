"""Value types, configuration and the pluggable models of the simulated venue: queue position and latency.

Queue models (``SimConfig.queue_model``) estimate how much recorded liquidity rests *ahead* of one of our orders
(``queue_ahead``, in lots). Our order joins the back of the queue: at entry, queue_ahead is the recorded displayed
quantity at its price (recorded minus what our own takers consumed there). Both models then apply the same trade
rule (a recorded trade at our price whose aggressor is on the other side consumes queue_ahead first; the excess fills
us as maker) and differ on depth decreases that no trade explains (cancellations):

- ``conservative``: a cancellation never advances us, except that queue_ahead can never exceed the displayed
  quantity (if the level shrinks below queue_ahead, queue_ahead becomes the displayed quantity). Assumes every
  cancellation came from behind us: the latest possible fill.
- ``prob``: hftbacktest's probabilistic queue (``ProbQueueModel`` with a power function): a decrease ``chg`` not
  explained by trades since the level's last update is taken from ahead of us with probability
  ``f(ahead) / (f(ahead) + f(behind))``, ``f(x) = x ** n`` (``SimConfig.queue_power``, default 3), i.e.
  ahead -= chg * f(ahead) / (f(ahead) + f(behind)), plus whatever part attributed to "behind" exceeds what rests
  behind; then capped by the displayed quantity. Never later than ``conservative`` on the same tape.
- ``front``: no queue at all: our order joins at the *front* of its level (queue_ahead 0 at entry), so the first
  recorded trade at its price with the aggressor on the other side fills it. Not a model of any real venue: it is
  the queue model switched off, for measuring what queue position costs (``tapeshot eval --gap``).

Market impact (``SimConfig.impact``): by default liquidity our takers remove stays removed for the rest of the
level's life (see ``matching``); ``impact=False`` switches that off: our fills are booked but the displayed book is
served as recorded, as if our orders consumed nothing (again only for measuring what impact costs).

Latency models (``LatencyModel``) are descriptions only: the core never sleeps; callers add the drawn delays to
exchange time when scheduling. Each channel is ``fixed:<ms>``, ``uniform:<lo>:<hi>`` (ms, uniform draw) or, for the
feed only, ``recorded``: the tape's own receive-stamp minus exchange-time difference of each message, shifted so
that the tape's smallest difference equals ``SimConfig.recorded_floor_ms`` (recorders' clocks are offset, e.g. the
2024 files run ~1.4 s behind the exchange, so only the spread is meaningful). Every draw comes from its own
``random.Random`` seeded from ``SimConfig.seed``: the same seed gives the same delays in the same call order.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from engine.errors import ConfigError
from engine.model import Instrument, OrderStatus, OrderType, TimeInForce
from engine.venues.binance import codes

MS = 1_000_000
QUEUE_MODELS = ("conservative", "prob", "front")


# ---- errors ----------------------------------------------------------------------------------------------------

_FALLBACK_MESSAGES = {
    codes.INVALID_ORDER_TYPE: "Invalid orderType.",
    codes.INVALID_SIDE: "Invalid side.",
    codes.INVALID_PARAMETER: "Invalid data sent for a parameter.",
}
ORDER_WOULD_IMMEDIATELY_TRIGGER = codes.ORDER_WOULD_IMMEDIATELY_TRIGGER


def message(code: int, **fmt: Any) -> str:
    """Binance's message for ``code`` (from engine.venues.binance.codes, formatted with ``fmt``)."""
    text = codes.MESSAGES.get(code) or _FALLBACK_MESSAGES.get(code) or "Unknown error."
    return text.format(**fmt) if fmt else text


class SimReject(Exception):
    """The simulated venue refused a request: Binance's ``code`` and ``msg``."""

    def __init__(self, code: int, msg: str | None = None, **fmt: Any) -> None:
        self.code = code
        self.msg = msg if msg is not None else message(code, **fmt)
        super().__init__(f"{code}: {self.msg}")


class SimUnavailable(Exception):
    """The venue cannot answer yet (e.g. the recorded book is not synced): a 503 / -1001-style condition."""


# ---- configuration ---------------------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class SimConfig:
    """Knobs of the simulated venue. Fees are fractions of quote notional; latencies are model descriptions."""

    maker_fee: Decimal = Decimal("0.0002")
    taker_fee: Decimal = Decimal("0.0005")
    queue_model: str = "conservative"          # or "prob"
    queue_power: float = 3.0                   # n of f(x) = x**n in the "prob" model
    market_protect_bps: int = 500              # MARKET orders walk at most this far from the best opposite price
    leverage: int = 20                         # default leverage of new accounts
    seed: int = 0
    feed_latency: str = "fixed:0"              # exchange event -> our receipt
    entry_latency: str = "fixed:0"             # our send -> matching engine
    ack_latency: str = "fixed:0"               # matching engine -> our receipt of the response
    recorded_floor_ms: float = 0.0             # "recorded" feed latency: the tape's minimum maps to this
    impact: bool = True                        # False: our taker fills leave the displayed book as recorded

    def __post_init__(self) -> None:
        if self.queue_model not in QUEUE_MODELS:
            raise ConfigError(f"queue_model must be one of {QUEUE_MODELS}, got {self.queue_model!r}")
        if self.queue_power <= 0:
            raise ConfigError("queue_power must be > 0")
        if self.market_protect_bps <= 0:
            raise ConfigError("market_protect_bps must be > 0")
        if self.leverage < 1:
            raise ConfigError("leverage must be >= 1")
        for name in ("maker_fee", "taker_fee"):
            if not isinstance(getattr(self, name), Decimal):
                raise ConfigError(f"{name} must be a Decimal")
        for name in ("feed_latency", "entry_latency", "ack_latency"):
            parse_latency(getattr(self, name), allow_recorded=name == "feed_latency")


# ---- market messages -------------------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class MarketMsg:
    """One message the venue publishes on a market stream: Binance's stream name and the event JSON (the
    ``data`` part of the combined-stream envelope). ``seq`` is the tape index of the recorded event it is, or that
    caused it; ``synthetic`` is True for messages our orders created."""

    stream: str
    symbol: str
    time_ns: int
    payload: bytes
    seq: int = -1
    synthetic: bool = False


# ---- orders, positions, balances -------------------------------------------------------------------------------

def fmt_decimal(value: Decimal, places: int) -> str:
    """Fixed-point string with at least ``places`` decimals, more only if the value needs them (never rounds)."""
    exp = value.as_tuple().exponent
    need = -exp if isinstance(exp, int) and exp < 0 else 0
    return f"{value:.{max(places, need)}f}"


def fmt_round(value: Decimal, places: int) -> str:
    """Fixed-point string rounded (half-even) to exactly ``places`` decimals."""
    return f"{value.quantize(Decimal(1).scaleb(-places)):f}"


def fmt_amount(value: Decimal, places: int = 8) -> str:
    """Binance-style amount: "0" for zero, otherwise fixed-point with ``places`` decimals (never rounds)."""
    return "0" if value == 0 else fmt_decimal(value, places)


@dataclass(slots=True)
class SimOrder:
    """An order of ours at the simulated venue (one-way mode, positionSide BOTH). Prices in ticks, sizes in lots.

    ``type`` is the current type (a triggered STOP_MARKET becomes MARKET), ``orig_type`` the type as placed.
    ``queue_ahead`` is the queue model's estimate of recorded lots ahead of a resting order.
    """

    order_id: int
    client_order_id: str
    account: str
    symbol: str
    side: str
    type: OrderType
    orig_type: OrderType
    tif: TimeInForce
    price_ticks: int | None
    stop_ticks: int | None
    qty_lots: int
    filled_lots: int = 0
    cum_quote: Decimal = Decimal(0)
    avg_price: Decimal = Decimal(0)
    status: OrderStatus = OrderStatus.NEW
    reduce_only: bool = False
    close_position: bool = False
    time_ns: int = 0
    update_ns: int = 0
    queue_ahead: int = 0
    queue_pos: float = field(default=0.0, repr=False)    # the model's exact (possibly fractional) queue_ahead
    resting: bool = field(default=False, repr=False)      # in the book (LIMIT remainder)
    triggered: bool = field(default=False, repr=False)    # a stop order that has triggered
    price_decimals: int | None = field(default=None, repr=False)   # how the venue prints this symbol's prices

    @property
    def remaining_lots(self) -> int:
        return self.qty_lots - self.filled_lots

    @property
    def is_buy(self) -> bool:
        return self.side == "BUY"

    @property
    def book_side(self) -> int:
        """0 bid (BUY), 1 ask (SELL)."""
        return 0 if self.side == "BUY" else 1

    def set_queue(self, q: float) -> None:
        self.queue_pos = max(0.0, q)
        self.queue_ahead = max(0, int(-(-self.queue_pos // 1))) if self.queue_pos > 1e-9 else 0

    def price_str(self, inst: Instrument, decimals: int | None = None) -> str:
        return _fmt_px(inst, self.price_ticks, decimals) if self.price_ticks else "0"

    def stop_str(self, inst: Instrument, decimals: int | None = None) -> str:
        return _fmt_px(inst, self.stop_ticks, decimals) if self.stop_ticks else "0"

    def avg_str(self, inst: Instrument, decimals: int | None = None) -> str:
        places = _price_places(inst, decimals) + 3
        return fmt_round(self.avg_price if self.filled_lots else Decimal(0), places)

    def cum_quote_str(self, inst: Instrument, decimals: int | None = None) -> str:
        return fmt_decimal(self.cum_quote, _price_places(inst, decimals) + 3)

    def to_binance(self, instrument: Instrument, price_decimals: int | None = None) -> dict:
        """Binance's REST order answer (POST/GET/DELETE /fapi/v1/order), decimals as strings."""
        inst = instrument
        if price_decimals is None:
            price_decimals = self.price_decimals
        return {
            "orderId": self.order_id,
            "symbol": self.symbol,
            "status": self.status.value,
            "clientOrderId": self.client_order_id,
            "price": self.price_str(inst, price_decimals),
            "avgPrice": self.avg_str(inst, price_decimals),
            "origQty": inst.fmt_qty(self.qty_lots),
            "executedQty": inst.fmt_qty(self.filled_lots),
            "cumQty": inst.fmt_qty(self.filled_lots),
            "cumQuote": self.cum_quote_str(inst, price_decimals),
            "timeInForce": self.tif.value,
            "type": self.type.value,
            "reduceOnly": self.reduce_only,
            "closePosition": self.close_position,
            "side": self.side,
            "positionSide": "BOTH",
            "stopPrice": self.stop_str(inst, price_decimals),
            "workingType": "CONTRACT_PRICE",
            "priceProtect": False,
            "origType": self.orig_type.value,
            "priceMatch": "NONE",
            "selfTradePreventionMode": "NONE",
            "goodTillDate": 0,
            "time": self.time_ns // MS,
            "updateTime": self.update_ns // MS,
        }


def _price_places(inst: Instrument, decimals: int | None) -> int:
    return decimals if decimals is not None else Instrument.grid(inst.tick_size)[1]


def _fmt_px(inst: Instrument, ticks: int | None, decimals: int | None) -> str:
    if ticks is None:
        return "0"
    return f"{inst.ticks_to_price(ticks):.{_price_places(inst, decimals)}f}"


@dataclass(frozen=True, slots=True)
class SimFill:
    """One execution of one of our orders."""

    account: str
    symbol: str
    order_id: int
    trade_id: int
    side: str
    price_ticks: int
    qty_lots: int
    quote: Decimal
    commission: Decimal
    realized_pnl: Decimal
    maker: bool
    time_ns: int


@dataclass(frozen=True, slots=True)
class SimPosition:
    """A position (one-way mode): signed size in lots, average entry, realised PnL so far, unrealised at mark."""

    symbol: str
    qty_lots: int
    entry_price: Decimal
    break_even_price: Decimal
    realized_pnl: Decimal
    unrealized_pnl: Decimal
    mark_price: Decimal
    leverage: int
    notional: Decimal
    initial_margin: Decimal
    update_ns: int

    def to_binance(self, instrument: Instrument) -> dict:
        """Binance's /fapi/v2/positionRisk entry (cross margin, one-way)."""
        return {
            "symbol": self.symbol, "positionAmt": instrument.fmt_qty(self.qty_lots),
            "entryPrice": fmt_round(self.entry_price, 8), "breakEvenPrice": fmt_round(self.break_even_price, 8),
            "markPrice": fmt_round(self.mark_price, 8), "unRealizedProfit": fmt_round(self.unrealized_pnl, 8),
            "liquidationPrice": "0", "leverage": str(self.leverage), "maxNotionalValue": "0",
            "marginType": "cross", "isolatedMargin": "0.00000000", "isAutoAddMargin": "false",
            "positionSide": "BOTH", "notional": fmt_round(self.notional, 8), "isolatedWallet": "0",
            "updateTime": self.update_ns // MS,
        }


@dataclass(frozen=True, slots=True)
class SimBalance:
    """The account's USDT balance (cross margin). available = wallet + unrealised - position and order margin."""

    asset: str
    wallet_balance: Decimal
    unrealized_pnl: Decimal
    position_margin: Decimal
    order_margin: Decimal
    available_balance: Decimal

    @property
    def margin_balance(self) -> Decimal:
        return self.wallet_balance + self.unrealized_pnl

    def to_binance(self, account_alias: str = "") -> dict:
        """Binance's /fapi/v2/balance entry."""
        return {
            "accountAlias": account_alias, "asset": self.asset,
            "balance": fmt_round(self.wallet_balance, 8), "crossWalletBalance": fmt_round(self.wallet_balance, 8),
            "crossUnPnl": fmt_round(self.unrealized_pnl, 8),
            "availableBalance": fmt_round(self.available_balance, 8),
            "maxWithdrawAmount": fmt_round(max(Decimal(0), self.available_balance), 8),
            "marginAvailable": True, "updateTime": 0,
        }


# ---- queue models ----------------------------------------------------------------------------------------------

def queue_after_trade(queue: float, traded: int) -> tuple[float, int]:
    """A recorded trade of ``traded`` lots at our price, aggressor on the other side: it consumes the queue ahead
    first. Returns (new queue_ahead, lots left over that reach our order)."""
    if traded <= queue:
        return queue - traded, 0
    return 0.0, int(traded - queue)        # a fractional queue estimate lets whole lots through only


def queue_after_depth(model: str, power: float, queue: float, prev_disp: int, new_disp: int,
                      traded_since: int) -> float:
    """Queue ahead after the displayed (recorded) quantity at our price went from ``prev_disp`` to ``new_disp``,
    ``traded_since`` lots having traded there since the level's previous update (already taken off the queue)."""
    if new_disp <= 0:
        return 0.0
    if model in ("conservative", "front"):
        return min(queue, float(new_disp))
    chg = prev_disp - new_disp - traded_since          # decrease not explained by trades
    if chg <= 0:
        return min(queue, float(new_disp))
    front = queue
    back = max(0.0, prev_disp - traded_since - front)
    ff, fb = front ** power, back ** power
    prob_back = fb / (ff + fb) if ff + fb > 0 else 1.0
    est = front - (1.0 - prob_back) * chg + min(back - prob_back * chg, 0.0)
    return max(0.0, min(est, float(new_disp)))


# ---- latency ---------------------------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class LatencySpec:
    kind: str                # "fixed", "uniform" or "recorded"
    lo_ns: int = 0
    hi_ns: int = 0


def parse_latency(text: str, allow_recorded: bool = False) -> LatencySpec:
    """``fixed:<ms>``, ``uniform:<lo>:<hi>`` (ms) or ``recorded`` (feed only)."""
    parts = str(text).strip().split(":")
    try:
        if parts[0] == "fixed" and len(parts) == 2:
            v = _ms_to_ns(parts[1])
            return LatencySpec("fixed", v, v)
        if parts[0] == "uniform" and len(parts) == 3:
            lo, hi = _ms_to_ns(parts[1]), _ms_to_ns(parts[2])
            if hi < lo:
                raise ConfigError(f"latency {text!r}: hi < lo")
            return LatencySpec("uniform", lo, hi)
    except ValueError as exc:
        raise ConfigError(f"latency {text!r}: {exc}") from exc
    if parts == ["recorded"]:
        if not allow_recorded:
            raise ConfigError(f"latency {text!r}: 'recorded' exists for the feed channel only")
        return LatencySpec("recorded")
    raise ConfigError(f"latency must be 'fixed:<ms>', 'uniform:<lo>:<hi>' or 'recorded', got {text!r}")


def _ms_to_ns(text: str) -> int:
    v = Decimal(text)
    if not v.is_finite() or v < 0:
        raise ValueError(f"{text!r} is not a non-negative number of ms")
    return int(v * MS)


class LatencyModel:
    """Deterministic latency draws for the three channels (see the module docstring)."""

    def __init__(self, feed: str = "fixed:0", entry: str = "fixed:0", ack: str = "fixed:0", seed: int = 0,
                 recorded_ns: Sequence[int] | None = None, recorded_floor_ms: float = 0.0) -> None:
        self.feed = parse_latency(feed, allow_recorded=True)
        self.entry = parse_latency(entry)
        self.ack = parse_latency(ack)
        self._rng = {name: random.Random(f"tapeshot-sim/{seed}/{name}") for name in ("feed", "entry", "ack")}
        self._recorded: list[int] = []
        if self.feed.kind == "recorded":
            if not recorded_ns:
                raise ConfigError("'recorded' feed latency needs a tape with receive stamps")
            floor = int(Decimal(str(recorded_floor_ms)) * MS)
            base = min(recorded_ns)
            self._recorded = [x - base + floor for x in recorded_ns]

    def _draw(self, spec: LatencySpec, name: str) -> int:
        if spec.kind == "fixed":
            return spec.lo_ns
        return self._rng[name].randint(spec.lo_ns, spec.hi_ns)

    def feed_ns(self, msg: MarketMsg) -> int:
        """Delay from the venue publishing ``msg`` to our receipt. "recorded": the delay the recorder saw for the
        tape event the message is (or was caused by)."""
        if self.feed.kind == "recorded":
            if 0 <= msg.seq < len(self._recorded):
                return self._recorded[msg.seq]
            return self._rng["feed"].choice(self._recorded)
        return self._draw(self.feed, "feed")

    def entry_ns(self) -> int:
        """Delay from our sending a request to the matching engine acting on it."""
        return self._draw(self.entry, "entry")

    def ack_ns(self) -> int:
        """Delay from the matching engine acting to our receipt of its response."""
        return self._draw(self.ack, "ack")
