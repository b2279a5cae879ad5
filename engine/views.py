"""Read-only views of the engine for the trader: the preview of an intent (``Quote``), open orders, PnL, limits
and health. Every figure is in the trader's units (base asset, USDT, bps); nothing here changes state.

The cockpit (``engine.cockpit``) answers ``Commands.quote``/``orders``/``pnl``/``limits``/``health`` with these.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from engine.errors import TapeshotError
from engine.execution import Arrival, size_intent
from engine.intents import Intent, IntentKind
from engine.metrics import HISTOGRAMS
from engine.words import price, qty, usdt
from strategies.base import BUY

MS = 1_000_000
WALK_LEVELS = 200          # levels of the far side walked for the cost of an immediate fill


def signed_qty(x: Decimal, symbol: str) -> str:
    return ("+" if x > 0 else "") + qty(x, symbol)


@dataclass(frozen=True)
class Immediate:
    """What one marketable order for the whole size would cost now, walked on the live book's far side."""

    avg_price: Decimal | None       # the volume-weighted price of the levels it would take
    worst_price: Decimal | None     # the last level it would reach
    levels: int                     # how many price levels it would take
    cost_bps: float | None          # (avg - mid) / mid in the trade's direction, plus the taker fee, in bps
    short: bool                     # the walked depth could not fill the size


@dataclass(frozen=True)
class Quote:
    """What an intent would do now: the words understood, its size in base and USDT, the window and algorithm,
    the market (mid, spread), the immediate fill's expected cost, and the risk gateway's verdict ("" = accepted).

    ``notional`` is the USDT value at the mid; the Telegram front end asks for a confirmation above a threshold.
    """

    echo: str
    kind: IntentKind
    symbol: str
    side: str                       # BUY / SELL ("" for an exit of no position)
    qty: Decimal
    notional: Decimal
    window_s: float
    algo: str
    cap_bps: float
    mid: Decimal
    spread_bps: float
    immediate: Immediate
    verdict: str
    notes: tuple[str, ...] = ()

    def text(self) -> str:
        if not self.qty:
            return "\n".join((self.echo, f"{self.symbol} mid {price(self.mid)} · spread {self.spread_bps:.2f} bps",
                              f"risk: ⛔ would be refused: {self.verdict}" if self.verdict else "nothing to do"))
        im = self.immediate
        side = {"BUY": "BUY (long)", "SELL": "SELL (short)"}[self.side]
        lines = [self.echo,
                 f"{self.symbol} {side} {qty(self.qty, self.symbol)} ≈ {usdt(self.notional)}",
                 f"window {self.window_s:g} s · cap {self.cap_bps:g} bps · algorithm {self.algo}",
                 f"mid {price(self.mid)} · spread {self.spread_bps:.2f} bps"]
        if im.avg_price is None:
            lines.append("immediate fill: no liquidity on the far side")
        else:
            short = " (the book's depth is short of the size)" if im.short else ""
            lines.append(f"immediate fill now: avg {price(im.avg_price)} over {im.levels} level"
                         f"{'s' if im.levels != 1 else ''}, cost {im.cost_bps:+.2f} bps with the taker fee{short}")
        lines.extend(self.notes)
        lines.append("risk: ✅ would be accepted" if not self.verdict else f"risk: ⛔ would be refused: {self.verdict}")
        return "\n".join(lines)


def walk(book: Any, side: int, lots: int, mid_ticks: float, tick: Decimal, taker_fee_bps: float) -> Immediate:
    """Walk the far side (asks for a buy) for ``lots``: the average and worst price, the levels taken and the cost
    in bps against the mid (positive = paid) including the taker fee."""
    far = book.top(1 if side == BUY else 0, WALK_LEVELS)
    left, spent, n, worst = lots, 0, 0, None
    for px, q in far:
        if left <= 0:
            break
        take = min(left, q)
        spent += take * px
        left -= take
        n += 1
        worst = px
    filled = lots - left
    if not filled or mid_ticks != mid_ticks:
        return Immediate(None, None, 0, None, True)
    avg_ticks = spent / filled
    sign = 1 if side == BUY else -1
    cost = sign * (avg_ticks - mid_ticks) / mid_ticks * 1e4 + taker_fee_bps
    avg = (Decimal(spent) / Decimal(filled) * tick).quantize(tick / 100).normalize()
    return Immediate(avg, Decimal(worst) * tick, n, round(cost, 3), left > 0)


def quote(cockpit: Any, intent: Intent) -> Quote:
    """The ``Quote`` of an enter or exit intent against the live book and the risk gateway."""
    runner = cockpit.runner
    inst = runner.instrument(intent.symbol)
    sf = runner.feed[inst.symbol]
    now = runner.clock()
    arrival = Arrival.stamp(sf, now)
    try:
        verdict = runner.would_refuse(intent, arrival)
    except TapeshotError as exc:                       # e.g. an exit with no position
        return _empty_quote(intent, inst, arrival, str(exc))
    pos = cockpit.oms.positions.get(inst.symbol).qty
    pos_lots = inst.qty_to_lots(abs(pos)) * (1 if pos >= 0 else -1)
    try:
        sz = size_intent(intent, inst, arrival, pos_lots)
    except TapeshotError as exc:
        return _empty_quote(intent, inst, arrival, verdict or str(exc))
    tick = inst.tick_size
    mid = (Decimal(repr(arrival.mid_ticks)) * tick).normalize()
    size = inst.lots_to_qty(sz.lots)
    algo = intent.algo
    if algo == "auto" and sz.lots:
        from engine.execution import choose_algo, make_spec

        name, why = choose_algo(make_spec(intent, inst, arrival, pos_lots, sizing=sz), sf, now)
        algo = f"auto: {name} ({why})"
    fee = float(getattr(cockpit.cfg.execution, "taker_fee_bps", 5.0))
    im = walk(sf.book, sz.side, sz.lots, arrival.mid_ticks, tick, fee)
    spread = (arrival.ask[0] - arrival.bid[0]) / arrival.mid_ticks * 1e4
    return Quote(intent.describe(), intent.kind, inst.symbol, "BUY" if sz.side == BUY else "SELL", size,
                 (size * mid).quantize(Decimal("0.01")), intent.window_s, algo, intent.max_slippage_bps, mid,
                 spread, im, verdict, tuple(getattr(sz, "notes", ()) or ()))


def _empty_quote(intent: Intent, inst: Any, arrival: Arrival, why: str) -> Quote:
    mid = (Decimal(repr(arrival.mid_ticks)) * inst.tick_size).normalize()
    spread = (arrival.ask[0] - arrival.bid[0]) / arrival.mid_ticks * 1e4
    return Quote(intent.describe(), intent.kind, inst.symbol, "", Decimal(0), Decimal(0), intent.window_s,
                 intent.algo, intent.max_slippage_bps, mid, spread, Immediate(None, None, 0, None, True), why)


def mark_of(sf: Any) -> tuple[Decimal | None, str]:
    """(price, what it is): the venue's mark price when the feed has one, else the book's mid."""
    mark = getattr(sf, "mark_price", None)
    if mark:
        return Decimal(str(mark)), "mark"
    mid = sf.book.mid
    if mid != mid:
        return None, "mid"
    return (Decimal(repr(mid)) * sf.instrument.tick_size).normalize(), "mid"


def orders_text(cockpit: Any) -> str:
    """The open orders: symbol, side, remaining of the original size, price, type, age and intent."""
    now_ms = int(time.time() * 1000)
    lines = []
    for o in cockpit.oms.orders.values():
        if not o.state.open:
            continue
        left = o.qty - o.filled
        age = max(0, now_ms - o.created_ms) / 1000 if getattr(o, "created_ms", 0) else None
        lines.append(f"{o.symbol} {o.side} {qty(left, o.symbol)} of {qty(o.qty, o.symbol)} at {price(o.price)} "
                     f"{o.tif} ({o.state.value}{f', {age:.0f} s' if age is not None else ''}), "
                     f"intent {o.intent_id or '-'}")
    return "\n".join(lines) if lines else "no open orders"


def pnl_text(cockpit: Any) -> str:
    """Per symbol: position, entry, mark, unrealised at the mark, realised net of fees, fees, net (realised +
    unrealised); then the totals and the day's change in equity from the kill switch's day open (net of fees)."""
    lines, tot_real, tot_fees, tot_unreal = [], Decimal(0), Decimal(0), Decimal(0)
    feed = cockpit.runner.feed
    for sym, p in sorted(cockpit.oms.positions.positions.items()):
        if not (p.qty or p.realized or p.fees):
            continue
        try:
            mark, what = mark_of(feed[sym])
        except (KeyError, AttributeError):
            mark, what = None, "mid"
        unreal = (mark - p.entry) * p.qty if (mark is not None and p.qty) else Decimal(0)
        real = p.realized - p.fees                              # realised is net of fees, everywhere
        tot_real, tot_fees, tot_unreal = tot_real + real, tot_fees + p.fees, tot_unreal + unreal
        lines.append(f"{sym}: {signed_qty(p.qty, sym)}" + (f" @ {price(p.entry.quantize(Decimal('0.01')))}"
                                                           if p.qty else "")
                     + (f", {what} {price(mark)}" if mark is not None else "")
                     + f"\n  unrealised {usdt(unreal)} · realised {usdt(real)} · fees {usdt(p.fees)}"
                     f" · net {usdt(real + unreal, signed=True)}")
    if not lines:
        return "no trades yet: PnL 0.00 USDT"
    lines.append(f"total: unrealised {usdt(tot_unreal)} · realised {usdt(tot_real)} · fees {usdt(tot_fees)} · "
                 f"net {usdt(tot_real + tot_unreal)}")
    ks = cockpit.killswitch
    if getattr(ks, "day_open", None) is not None:
        from engine.guards import equity

        now = equity(cockpit.oms, feed, cockpit.runner.instruments)
        lines.append(f"today ({ks.day}): {usdt(now - ks.day_open)} net since the day opened")
    lines.append("realised is net of fees; net = realised + unrealised")
    return "\n".join(lines)


def limits_text(cockpit: Any) -> str:
    """The pre-trade limits per traded symbol and the KillSwitch's thresholds, with the trading state."""
    risk = cockpit.cfg.risk
    lines = [f"trading {cockpit.risk.state.value}" + (f" (kill switch: {cockpit.killswitch.tripped})"
                                                      if cockpit.killswitch.tripped else "")]
    for sym in cockpit.runner.instruments:
        lim = risk.limits(sym)
        parts = [f"order ≤ {usdt(lim['max_order_notional'])}"]
        if lim.get("max_order_qty"):
            parts.append(f"≤ {qty(lim['max_order_qty'], sym)}")
        parts.append(f"position ≤ {usdt(lim['max_position_notional'])}")
        if lim.get("max_position_qty"):
            parts.append(f"≤ {qty(lim['max_position_qty'], sym)}")
        parts.append(f"limit price within {lim['price_band_bps']:g} bps of the mid")
        lines.append(f"{sym}: " + " · ".join(parts))
    lines.append(f"account: ≤ {risk.max_open_orders} open orders, ≤ {risk.max_orders_per_10s} orders per 10 s"
                 + (f", ≤ {risk.max_orders_per_s} per s" if risk.max_orders_per_s else ""))
    kill = [f"drawdown {usdt(risk.max_drawdown)}", f"daily loss {usdt(risk.max_daily_loss)}",
            f"session loss {usdt(risk.max_session_loss)}"]
    if risk.kill_reject_streak:
        kill.append(f"{risk.kill_reject_streak} rejects in a row")
    if risk.kill_latency_ms:
        kill.append(f"latency over {risk.kill_latency_ms:g} ms for {risk.kill_latency_s:g} s")
    lines.append("kill switch trips on: " + ", ".join(kill) + f"; flatten on kill: {risk.kill_flatten}")
    return "\n".join(lines)


def health_text(cockpit: Any, venue_state: dict[str, str] | None = None) -> str:
    """Venue connections and the order round trip's p99 (from the histogram's buckets); a book that is not live
    (stale, resyncing, or its tape ended) is named with the reason (``status`` shows each book's touch)."""
    lines = []
    if venue_state:
        lines.append("venue: " + " · ".join(f"{k} {v}" for k, v in venue_state.items()))
    now = cockpit.runner.clock()
    stale_ns = cockpit.cfg.feed.stale_ms * MS
    for sym in cockpit.runner.instruments:
        sf = cockpit.runner.feed[sym]
        h = sf.health(now, stale_ns)
        why = getattr(sf, "unavailable", "") or ("" if not h.get("stale") else
                                                  f"stale: no update for over {stale_ns / 1e9:g} s" if sf.synced
                                                  else sf.state_name.lower())
        if why:
            lines.append(f"{sym} book NOT LIVE: {why}")
    rt = HISTOGRAMS["order_round_trip"]
    p99 = quantile(rt.counts, rt.buckets, 0.99)
    n = sum(rt.counts)
    lines.append(f"order round trip p99 ≤ {p99 * 1000:g} ms over {n} orders" if p99 is not None
                 else "order round trip: no orders yet")
    return "\n".join(lines)


def quantile(counts: list[int], buckets: tuple[float, ...], q: float) -> float | None:
    """The upper bound of the histogram bucket holding quantile ``q`` (None when empty; inf above the last)."""
    n = sum(counts)
    if not n:
        return None
    need, cum = q * n, 0
    for i, c in enumerate(counts):
        cum += c
        if cum >= need:
            return buckets[i] if i < len(buckets) else float("inf")
    return float("inf")
