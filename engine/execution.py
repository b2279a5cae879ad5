"""From an intent to an algorithm and back to an execution report; shared by the live node and the eval harness.

Arrival state is stamped when the intent arrives (mid, spread, touch, signal snapshot, exchange time); the price
cap is the arrival mid moved by the trader's max slippage, rounded inward to the tick grid. Prices never round
toward a worse fill: an off-tick limit rounds down for a buy and up for a sell (and the acceptance says so); a
limit that rounds below one tick is the risk check's to refuse (``engine.risk``), never a MARKET order. A size
rounds down to the step, and the acceptance says that too (``Sizing.notes``). The report gives the
filled size, average price, implementation shortfall against the arrival mid (fees in), the best and worst
prices the far side offered inside the window, markouts at +1/+5/+30 s, and the orders it took.
"""

from __future__ import annotations

import contextlib
import math
from array import array
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import ROUND_CEILING, ROUND_DOWN, ROUND_FLOOR, Decimal

import numpy as np
import orjson

from engine.errors import ConfigError
from engine.intents import Intent, IntentKind
from engine.model import Instrument, Side
from strategies import auto
from strategies.base import BUY, SELL, Algo, Spec
from strategies.baselines import Immediate, PassiveChase, Twap
from strategies.hybrid import Hybrid, KernelPredictor
from strategies.ladder import Ladder
from strategies.sniper import FireRule, Sniper

ALGORITHMS: dict[str, type[Algo]] = {"sniper": Sniper, "ladder": Ladder, "immediate": Immediate, "twap": Twap,
                                     "passive_chase": PassiveChase, "hybrid": Hybrid}
MARKOUTS_S = (1, 5, 30)
SEC = 1_000_000_000
TOUCH_STEP_NS = 20_000_000           # at most one touch sample per 20 ms (the step doubles at each decimation)
TOUCH_CAP = 5_000                    # touch samples kept per intent; at the cap every other one is dropped
_NO_BID, _NO_ASK = -(2**63), 2**63 - 1  # ext.book's empty-side sentinels


def lots_for(intent: Intent, inst: Instrument, mid_ticks: float, position_lots: int = 0) -> int:
    """The intent's size in lots: base quantity, quote notional at the arrival mid, or the whole position."""
    if intent.qty is not None:
        lots = int((intent.qty / inst.step_size).to_integral_value(ROUND_DOWN))
    elif intent.notional is not None:
        mid = Decimal(repr(mid_ticks)) * inst.tick_size
        lots = int((intent.notional / mid / inst.step_size).to_integral_value(ROUND_DOWN))
    else:
        lots = abs(position_lots)
    if lots <= 0:
        raise ConfigError(f"{intent.symbol}: size rounds to zero at step {inst.step_size}")
    return lots


@dataclass(frozen=True)
class Sizing:
    """What an intent asks for on the instrument's grids: its side, size in lots (down to the step), limit in
    ticks (toward the better price; None: no limit; it may be < 1 when the trader's limit is below one tick),
    and what rounded, in words, for the acceptance."""

    side: int
    lots: int
    limit: int | None
    reduce_only: bool
    notes: tuple[str, ...] = ()


def size_intent(intent: Intent, inst: Instrument, arrival: Arrival, position_lots: int = 0) -> Sizing:
    """The intent on the grids (``Sizing``): ENTER or EXIT (the whole position or less, reduce-only)."""
    if intent.kind is IntentKind.ENTER:
        side, reduce_only = (BUY if intent.side is Side.BUY else SELL), False
    elif intent.kind is IntentKind.EXIT:
        if position_lots == 0:
            raise ConfigError(f"{intent.symbol}: no position to exit")
        side, reduce_only = (SELL if position_lots > 0 else BUY), True
    else:
        raise ConfigError(f"{intent.kind} is not an execution")
    lots = lots_for(intent, inst, arrival.mid_ticks, position_lots)
    notes = [*_size_notes(intent, inst, lots, arrival.mid_ticks)]
    if reduce_only and lots > abs(position_lots):
        lots = abs(position_lots)
        notes.append(f"size capped at the position {inst.lots_to_qty(lots)}")
    limit = None
    if intent.limit_price is not None:
        limit, note = limit_ticks(intent.limit_price, side, inst)
        notes += [note] if note else []
    return Sizing(side, lots, limit, reduce_only, tuple(notes))


def limit_ticks(price: Decimal, side: int, inst: Instrument) -> tuple[int, str]:
    """A limit price in ticks, rounded toward the better fill (a buy down, a sell up), and a note when it moved."""
    ticks = int((price / inst.tick_size).to_integral_value(ROUND_FLOOR if side == BUY else ROUND_CEILING))
    if ticks * inst.tick_size == price:
        return ticks, ""
    way = "down for a buy" if side == BUY else "up for a sell"
    return ticks, f"limit {price:f} is off the {inst.tick_size:f} tick: {inst.fmt_price(ticks)} (rounded {way})"


def _size_notes(intent: Intent, inst: Instrument, lots: int, mid_ticks: float) -> list[str]:
    qty = inst.lots_to_qty(lots)
    if intent.qty is not None and qty != intent.qty:
        return [f"size {intent.qty:f} rounded down to {qty} (step {inst.step_size:f})"]
    if intent.notional is not None:
        mid = Decimal(repr(mid_ticks)) * inst.tick_size
        return [f"{intent.notional:f} USDT is {qty} at the mid {mid} (step {inst.step_size:f})"]
    return []


def cap_ticks(side: int, mid_ticks: float, max_bps: float) -> int:
    """The worst acceptable price: arrival mid +/- max slippage, rounded inward onto the tick grid."""
    if side == BUY:
        return math.floor(mid_ticks * (1 + max_bps / 1e4))
    return math.ceil(mid_ticks * (1 - max_bps / 1e4))


@dataclass
class Arrival:
    """The market as the intent found it."""

    time_ns: int
    mid_ticks: float
    bid: tuple[int, int] | None
    ask: tuple[int, int] | None
    signals: dict[str, float]

    @classmethod
    def stamp(cls, sf, now: int) -> Arrival:
        bid, ask = sf.book.best(0), sf.book.best(1)
        if bid is None or ask is None:
            raise ConfigError(f"{sf.symbol}: the book has an empty side; cannot stamp an arrival mid")
        return cls(now, (bid[0] + ask[0]) / 2, bid, ask, sf.timing.snapshot(now))


def make_spec(intent: Intent, inst: Instrument, arrival: Arrival, position_lots: int = 0,
              round_trip_ns: int = 5_000_000, timer_ns: int = 20_000_000, sizing: Sizing | None = None) -> Spec:
    """The algorithm's ``Spec`` for an intent (``sizing``: ``size_intent``'s, when the caller has it). A limit
    below one tick is refused here too (``ConfigError``): it is no price."""
    sz = sizing or size_intent(intent, inst, arrival, position_lots)
    side, qty, limit, reduce_only = sz.side, sz.lots, sz.limit, sz.reduce_only
    if limit is not None and limit < 1:
        raise ConfigError(f"{intent.symbol}: limit {intent.limit_price:f} is below one tick ({inst.tick_size:f})")
    min_lots = min_order_lots(inst, arrival.mid_ticks)
    if qty < min_lots and not reduce_only:
        raise ConfigError(f"{intent.symbol}: {inst.lots_to_qty(qty)} is below the minimum order "
                          f"({inst.lots_to_qty(min_lots)} at {inst.min_notional} USDT notional)")
    return Spec(inst.symbol, side, qty, arrival.time_ns, arrival.time_ns + int(intent.window_s * SEC),
                cap_ticks(side, arrival.mid_ticks, intent.max_slippage_bps), intent.on_deadline == "complete",
                reduce_only, round_trip_ns, limit, min_lots, timer_ns)


def min_order_lots(inst: Instrument, mid_ticks: float, margin: float = 1.02) -> int:
    """The smallest order in lots: min qty, and min notional at the mid with a small margin for price moves."""
    by_notional = math.ceil(float(inst.min_notional) * margin / (mid_ticks * float(inst.tick_size))
                            / float(inst.step_size))
    by_qty = int(inst.min_qty / inst.step_size) if inst.min_qty else 1
    return max(1, by_notional, by_qty)


def algo_kwargs(name: str, params: dict[str, dict]) -> dict:
    """Constructor keywords of algorithm ``name`` from a parameter dict (the ``engine.eval.tuned`` layout)."""
    p = dict(params.get(name, {}))
    if name == "sniper" and ("start" in p or "end" in p):
        base = FireRule()
        p["rule"] = FireRule(p.pop("start", base.start), p.pop("end", base.end))
    if "weights" in p:
        p["weights"] = tuple(p["weights"])
    return p


def _with_model(name: str, kwargs: dict, spec: Spec) -> dict:
    """The hybrid's predictor from its ``model`` parameter (a model file, ``engine.learn``) when the model is
    for this symbol; the kernels-only predictor otherwise."""
    model = kwargs.pop("model", None) if name == "hybrid" else None
    if model:
        from engine.learn.runtime import model_predictor

        with contextlib.suppress(ConfigError):   # a model of another symbol: the kernels here (said at start)
            kwargs["predictor"] = model_predictor(model, spec.symbol, kwargs.get("horizon_s", 2.0))
    return kwargs


def choose_algo(spec: Spec, sf, now: int, params: dict[str, dict] | None = None) -> tuple[str, str]:
    """(algorithm name, why) that ``auto`` picks now, with the same parameters ``make_algo`` uses."""
    from engine.eval.tuned import params as tuned

    params = tuned() if params is None else params
    cls, why, _ = _auto(spec, sf, now, params)
    return cls.name, why


def _auto(spec: Spec, sf, now: int, params: dict[str, dict]) -> tuple[type[Algo], str, dict]:
    """``auto.decide`` with its tuned parameters and the hybrid's predictor (the model when one is configured
    for this symbol, else the kernels) and crossing threshold: the same call for the preview and the run."""
    hyb = _with_model("hybrid", algo_kwargs("hybrid", params), spec)
    pred = hyb.get("predictor") or KernelPredictor(hyb.get("horizon_s", Hybrid.horizon_s))
    return auto.decide(spec, sf, now, **params.get("auto", {}), predictor=pred,
                       cross_bps=hyb.get("cross_bps", Hybrid.cross_bps))


def make_algo(name: str, spec: Spec, sf, now: int, new_id: Callable[[], str],
              params: dict[str, dict] | None = None) -> tuple[Algo, str]:
    """The algorithm ``name`` with ``params`` (default: the values tuned on the development set, see
    ``engine.eval.tuned``); ``auto`` chooses with its own parameters and builds the chosen one with its own."""
    from engine.eval.tuned import params as tuned

    params = tuned() if params is None else params
    if name == "auto":
        cls, why, over = _auto(spec, sf, now, params)
        algo = cls(spec, new_id, **{**_with_model(cls.name, algo_kwargs(cls.name, params), spec), **over})
        algo.note(now, f"auto chose {algo.name}: {why}")
        return algo, why
    cls = ALGORITHMS.get(name)
    if cls is None:
        raise ConfigError(f"unknown algorithm {name!r} (known: auto, {', '.join(ALGORITHMS)})")
    return cls(spec, new_id, **_with_model(name, algo_kwargs(name, params), spec)), name


@dataclass
class Touch:
    """A bounded timeline of the touch (best bid and ask, ticks) from an intent's arrival to its last markout,
    for its chart (``engine.plot``). A sample is taken only when the touch changed and at most once per
    ``step_ns``; at ``TOUCH_CAP`` samples every other one is dropped and the step doubles, so a long intent
    keeps an even sampling in bounded memory. Times are ms from ``t0_ns`` (the arrival)."""

    t0_ns: int
    t_ms: array = field(default_factory=lambda: array("q"))
    bid: array = field(default_factory=lambda: array("q"))
    ask: array = field(default_factory=lambda: array("q"))
    step_ns: int = TOUCH_STEP_NS
    next_ns: int = 0                      # no sample before this time (exchange ns)
    last_bid: int = _NO_BID
    last_ask: int = _NO_ASK
    decimated: int = 0

    def add(self, now: int, bid: int, ask: int) -> None:
        """A touch (ticks) seen at ``now``: kept if it changed and both sides are priced."""
        self.next_ns = now + self.step_ns
        if bid == _NO_BID or ask == _NO_ASK or (bid == self.last_bid and ask == self.last_ask):
            return
        self.last_bid, self.last_ask = bid, ask
        self.t_ms.append((now - self.t0_ns) // 1_000_000)
        self.bid.append(bid)
        self.ask.append(ask)
        if len(self.t_ms) >= TOUCH_CAP:
            self._decimate()

    def _decimate(self) -> None:
        last = (self.t_ms[-1], self.bid[-1], self.ask[-1])
        self.t_ms, self.bid, self.ask = self.t_ms[::2], self.bid[::2], self.ask[::2]
        if self.t_ms[-1] != last[0]:                        # the newest touch stays the newest sample
            self.t_ms.append(last[0])
            self.bid.append(last[1])
            self.ask.append(last[2])
        self.step_ns *= 2
        self.decimated += 1

    def fragment(self) -> orjson.Fragment:
        """The samples as a JSON object ``{"t_ms": [...], "bid": [...], "ask": [...]}``, serialized from the
        arrays in one C call (a few tens of µs at the cap), ready to embed in a journal record."""
        return orjson.Fragment(orjson.dumps(
            {"t_ms": np.frombuffer(self.t_ms, np.int64), "bid": np.frombuffer(self.bid, np.int64),
             "ask": np.frombuffer(self.ask, np.int64), "decimated": self.decimated},
            option=orjson.OPT_SERIALIZE_NUMPY))


@dataclass
class Tracker:
    """Watches one execution: the far side inside the window, fills, the mid afterwards for markouts, and the
    touch from arrival to the last markout (``touch``, for the chart)."""

    spec: Spec
    arrival: Arrival
    algo_name: str
    best_far: int | None = None          # best price the far side offered in the window (ticks)
    worst_far: int | None = None
    fills: list[tuple[int, int, int, bool, Decimal]] = field(default_factory=list)  # (time, lots, px, maker, fee)
    orders: list[str] = field(default_factory=list)
    end_ns: int | None = None
    markout_mids: dict[int, float] = field(default_factory=dict)
    last_fill_mid: float = math.nan      # the mid (ticks) when the last fill arrived (the dataset's anchor)
    order_times: dict[str, list[int]] = field(default_factory=dict)   # cid -> [sent, final or 0] (exchange ns)
    touch: Touch = field(init=False)

    def __post_init__(self) -> None:
        self.touch = Touch(self.arrival.time_ns)
        a = self.arrival
        if a.bid is not None and a.ask is not None:
            self.touch.add(a.time_ns, a.bid[0], a.ask[0])

    def on_book(self, sf, now: int) -> None:
        touch = self.touch
        if now >= touch.next_ns:                       # the hot path's whole cost, most updates: one compare
            book = sf.book
            if book.best_bid != touch.last_bid or book.best_ask != touch.last_ask:
                touch.add(now, book.best_bid, book.best_ask)
        if self.end_ns is None:
            buy = self.spec.side == BUY
            far = sf.book.best(1 if buy else 0)
            if far is not None:
                p = far[0]
                if self.best_far is None or (p < self.best_far if buy else p > self.best_far):
                    self.best_far = p
                if self.worst_far is None or (p > self.worst_far if buy else p < self.worst_far):
                    self.worst_far = p
            return
        for h in MARKOUTS_S:
            if h not in self.markout_mids and now >= self.end_ns + h * SEC:
                mid = sf.book.mid
                if mid == mid:
                    self.markout_mids[h] = mid

    @property
    def markouts_done(self) -> bool:
        return self.end_ns is not None and len(self.markout_mids) == len(MARKOUTS_S)

    def timeline(self, inst: Instrument) -> dict:
        """What the chart needs beyond the journal's orders and fills: the touch samples, the tick size, the
        end of the execution, the markout mids (ticks), and when each order went out and was final (ms from
        arrival, on the intent's clock: the journal's order rows carry the OMS clock), for a ``timeline``
        decision row."""
        t0 = self.arrival.time_ns
        return {"tick": str(inst.tick_size), "arrival_ns": t0, "end_ns": self.end_ns,
                "markout_mids": {str(h): m for h, m in sorted(self.markout_mids.items())},
                "orders": {c: [(sent - t0) // 1_000_000, (end - t0) // 1_000_000 if end else None]
                           for c, (sent, end) in self.order_times.items()},
                "touch": self.touch.fragment()}

    def report(self, inst: Instrument, fee_note: str = "") -> dict:
        s, a = self.spec, self.arrival
        lots = sum(f[1] for f in self.fills)
        notional = sum(Decimal(f[1]) * inst.tick_size * inst.step_size * f[2] for f in self.fills)
        fees = sum((f[4] for f in self.fills), Decimal(0))
        qty = inst.lots_to_qty(lots)
        avg = notional / qty if lots else None
        mid = Decimal(repr(a.mid_ticks)) * inst.tick_size
        sign = 1 if s.side == BUY else -1
        shortfall = None
        if lots:
            shortfall = float((sign * (avg - mid) * qty + fees) / (mid * qty) * Decimal(10_000))
        marks = {f"+{h}s": (round(sign * (m - float(avg / inst.tick_size)) / float(avg / inst.tick_size) * 1e4, 3)
                            if avg is not None else None) for h, m in sorted(self.markout_mids.items())}
        return {
            "symbol": s.symbol, "side": "BUY" if s.side == BUY else "SELL", "algo": self.algo_name,
            "requested": str(inst.lots_to_qty(s.qty)), "filled": str(qty), "complete": lots == s.qty,
            "avg_price": None if avg is None else f"{avg:.{max(2, Instrument.grid(inst.tick_size)[1])}f}",
            "arrival_mid": str(mid), "shortfall_bps": None if shortfall is None else round(shortfall, 3),
            "fees": f"{fees:.8f}",
            "maker_share": round(sum(f[1] for f in self.fills if f[3]) / lots, 3) if lots else None,
            "cap": inst.fmt_price(s.cap),
            "best_in_window": None if self.best_far is None else inst.fmt_price(self.best_far),
            "worst_in_window": None if self.worst_far is None else inst.fmt_price(self.worst_far),
            "time_to_fill_s": None if self.end_ns is None else round((self.end_ns - s.arrival_ns) / SEC, 3),
            "markouts_bps": marks, "orders": list(self.orders), "fee_note": fee_note,
        }
