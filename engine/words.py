"""The trader's units: every text a trader reads (console, ``tapeshot intent``, Telegram) is worded here.

Sizes are base quantity with the asset (``0.500 BTC``), money is USDT with the unit (``27,815.40 USDT``; amounts
under 1 USDT keep 4 significant digits, ``0.01235 USDT``), prices are on the instrument's grid without thousands
separators (so a trader can copy one into ``tp btc 71250.5``), basis points carry their sign. Nothing here prints
``None``, a ``Decimal(...)`` repr, a dict, lots or ticks: a missing value is ``n/a`` or ``pending``.

Sign conventions, stated wherever they are printed: a shortfall is a cost (``+`` = you paid more than the arrival
mid; fees in); a markout is ``+`` when the price moved in your favour after the fill.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterable, Mapping
from decimal import Decimal, InvalidOperation
from typing import Any

QUOTES = ("USDT", "USDC", "BUSD")
MARKOUT_HORIZONS = ("+1s", "+5s", "+30s")
NA = "n/a"

Number = Decimal | float | int | str


def base_asset(symbol: str) -> str:
    """``BTCUSDT`` -> ``BTC`` (the symbol itself when it has no known quote asset)."""
    for q in QUOTES:
        if symbol.endswith(q) and len(symbol) > len(q):
            return symbol[: -len(q)]
    return symbol


def _dec(value: Number | None) -> Decimal | None:
    """``value`` as a finite Decimal, or None when it is missing or not a number."""
    if value is None or isinstance(value, bool):
        return None
    try:
        d = value if isinstance(value, Decimal) else Decimal(repr(value) if isinstance(value, float) else str(value))
    except (InvalidOperation, ValueError):
        return None
    return d if d.is_finite() else None


def _places(step: Number | None) -> int | None:
    """Decimals of a grid step (``0.001`` -> 3), None without a step."""
    d = _dec(step)
    if d is None or d <= 0:
        return None
    return max(0, -d.normalize().as_tuple().exponent)


def qty(value: Number | None, symbol: str, step: Number | None = None) -> str:
    """A size in base units with its asset: ``0.500 BTC``; on the step's grid when ``step`` is given."""
    d = _dec(value)
    if d is None:
        return NA
    places = _places(step)
    text = f"{d:.{places}f}" if places is not None else f"{d:f}"
    return f"{text} {base_asset(symbol)}"


def usdt(value: Number | None, *, signed: bool = False) -> str:
    """An amount of USDT with the unit: cents from 1 USDT up (``27,815.40 USDT``), 4 significant digits under
    (``0.01235 USDT``); ``signed`` puts ``+`` before a positive amount (PnL)."""
    d = _dec(value)
    if d is None:
        return NA
    size = abs(d)
    places = 2 if size >= 1 or size == 0 else min(8, 3 - math.floor(math.log10(size)))
    text = f"{d:,.{places}f}"
    if places > 2:                                    # significant digits only: 0.001 USDT, not 0.001000
        whole, _, frac = text.partition(".")
        text = f"{whole}.{frac.rstrip('0').ljust(2, '0')}"
    if text.lstrip("-").strip("0.,") == "":
        text = text.lstrip("-")                       # no "-0.00"
    return f"{'+' if signed and d > 0 and not text.startswith('-') else ''}{text} USDT"


def price(value: Number | None, tick: Number | None = None) -> str:
    """A price on the instrument's grid (``tick``), plain digits: ``71250.0``."""
    d = _dec(value)
    if d is None:
        return NA
    places = _places(tick)
    return f"{d:.{places}f}" if places is not None else f"{d:f}"


def avg_price(value: Number | None, tick: Number | None = None) -> str:
    """An average price (off the grid): the grid's decimals, at least 2: ``28145.05``."""
    places = _places(tick)
    return price(value, Decimal(1).scaleb(-max(2, places)) if places is not None else None)


def bps(value: Number | None, places: int = 2) -> str:
    """Basis points with their sign: ``+3.20 bps``, ``-0.75 bps``."""
    d = _dec(value)
    if d is None:
        return NA
    return f"{float(d):+.{places}f} bps"


def share(value: Number | None) -> str:
    """A fraction as a whole percentage: ``0.625`` -> ``62%``."""
    d = _dec(value)
    return NA if d is None else f"{float(d) * 100:.0f}%"


def seconds(value: Number | None) -> str:
    """A duration: ``12.4 s``."""
    d = _dec(value)
    return NA if d is None else f"{float(d):.1f} s"


def clock(ms: int | None) -> str:
    """Exchange time (epoch ms) as ``14:03:21 UTC``."""
    if ms is None:
        return NA
    return time.strftime("%H:%M:%S UTC", time.gmtime(ms / 1000))


def levels_text(levels: Mapping[str, Number | None] | None, tick: Number | None = None) -> str:
    """TP/SL levels as prices: ``TP 71250.0, SL 68900.0``, or ``no TP/SL``."""
    parts = [f"{k.upper()} {price(v, tick)}" for k, v in sorted((levels or {}).items(), reverse=True)
             if _dec(v) is not None]
    return ", ".join(parts) if parts else "no TP/SL"


def markouts_text(marks: Mapping[str, Number | None] | None, filled: bool = True) -> str:
    """Markouts at +1/+5/+30 s with their sign convention; a horizon not reached yet is ``pending``."""
    if not filled:
        return "markouts: n/a (nothing filled)"
    marks = marks or {}
    parts = [f"{h} {bps(marks[h]) if h in marks else 'pending'}" for h in MARKOUT_HORIZONS]
    return "markouts " + ", ".join(parts) + " (+ = in your favour)"


def orders_text(orders: Iterable[str] | None) -> str:
    """The orders an intent took: their count and client ids (the first few)."""
    ids = list(orders or [])
    if not ids:
        return "orders: none sent"
    shown = ", ".join(ids[:6]) + (f", ... {len(ids) - 6} more" if len(ids) > 6 else "")
    return f"orders: {len(ids)} ({shown})"


def _head(r: Mapping[str, Any], intent_id: str) -> str:
    iid = intent_id or str(r.get("intent_id") or "")
    state = str(r.get("state") or ("done" if r.get("complete") else "partial"))
    what = " ".join(str(x) for x in (r.get("side"), r.get("symbol")) if x)
    algo = f" with {r['algo']}" if r.get("algo") else ""
    return " ".join(x for x in (iid, state.upper(), what) if x) + algo


def report_text(report: Mapping[str, Any] | None, intent_id: str = "") -> str:
    """The full execution report (``engine.execution.Tracker.report``'s dict, as the runner publishes it) in the
    trader's units: filled of requested, average price, shortfall against the arrival mid with fees in, fees,
    the window's best and worst, the cap, maker share, the orders, markouts (pending ones shown as pending)."""
    if not report:
        return f"{intent_id}: no report (yet)" if intent_id else "no report (yet)"
    r, sym = report, str(report.get("symbol") or "")
    if "requested" not in r:                                   # closed from venue truth after a restart
        return _short_report(r, intent_id, sym)
    filled = (_dec(r.get("filled")) or 0) > 0
    lines = [_head(r, intent_id),
             f"filled {qty(r.get('filled'), sym)} of {qty(r.get('requested'), sym)}"
             + (f" at {price(r.get('avg_price'))} avg" if filled else " (nothing filled)")]
    if filled:
        lines.append(f"shortfall {bps(r.get('shortfall_bps'))} vs the arrival mid {price(r.get('arrival_mid'))} "
                     f"(fees in; + = cost to you)")
    lines.append(f"fees {usdt(r.get('fees'))}" + (f", maker share {share(r.get('maker_share'))}" if filled else "")
                 + (f", {seconds(r['time_to_fill_s'])} to finish" if r.get("time_to_fill_s") is not None else ""))
    lines.append(f"window best {price(r.get('best_in_window'))}, worst {price(r.get('worst_in_window'))}, "
                 f"cap {price(r.get('cap'))}")
    lines.append(orders_text(r.get("orders")))
    lines.append(markouts_text(r.get("markouts_bps"), filled))
    lines += [f"why it ended: {r['why']}"] if r.get("why") else []
    lines += [str(r["fee_note"])] if r.get("fee_note") else []
    return "\n".join(lines)


def _short_report(r: Mapping[str, Any], intent_id: str, sym: str) -> str:
    """A report the runner closed from the venue's truth (``IntentRunner.close``): state, executed, note."""
    head = " ".join(x for x in (intent_id or str(r.get("intent_id") or ""), str(r.get("state") or "").upper()) if x)
    size = qty(r.get("filled"), sym) if sym else f"{r.get('filled') or 0}"
    return f"{head}: {size} executed" + (f" ({r['note']})" if r.get("note") else "")


def pnl_text(realised: Number, fees: Number, unrealised: Number | None = None, mark_kind: str = "mark") -> str:
    """PnL with the engine's one convention (the metrics' too): realised NET of fees (``realised``, the trading
    PnL before fees, minus ``fees``), the fees paid, and unrealised at the mark (or the mid: ``mark_kind`` says
    which)."""
    r, f = _dec(realised) or Decimal(0), _dec(fees) or Decimal(0)
    text = f"realised {usdt(r - f, signed=True)} net of fees {usdt(f)}"
    if unrealised is not None:
        text += f"; unrealised {usdt(unrealised, signed=True)} at the {mark_kind}"
    return text


def position_text(symbol: str, qty_: Number, entry: Number, realised: Number, fees: Number,
                  mark: Number | None = None, mark_kind: str = "mark", tick: Number | None = None,
                  step: Number | None = None) -> str:
    """One position: side and size, entry, mark (or mid) and unrealised PnL, realised/fees/net."""
    q = _dec(qty_) or Decimal(0)
    if q == 0:
        return f"{symbol}: flat; {pnl_text(realised, fees)}"
    side = "long" if q > 0 else "short"
    e, m = _dec(entry), _dec(mark)
    unreal = (m - e) * q if m is not None and e is not None else None
    at = f", {mark_kind} {price(m, tick)}" if m is not None else f", no {mark_kind} yet"
    return (f"{symbol}: {side} {qty(abs(q), symbol, step)} @ {avg_price(e, tick)} entry{at}; "
            f"{pnl_text(realised, fees, unreal, mark_kind)}")


def working_text(intent_id: str, state: str, said: str, filled: Number, requested: Number, symbol: str,
                 algo: str, resting: Iterable[tuple[Number, Number]] = (), step: Number | None = None,
                 tick: Number | None = None) -> str:
    """A working intent: what the trader said, filled of requested, its algorithm, and where its resting orders
    rest (``resting``: (price, open qty) pairs)."""
    rest = list(resting)
    where = ("; resting " + ", ".join(f"{qty(q, symbol, step)} at {price(p, tick)}" for p, q in rest)
             if rest else "; nothing resting")
    return (f"{intent_id} [{state}] \"{said}\": {qty(filled, symbol, step)} of {qty(requested, symbol, step)} "
            f"filled, {algo}{where}")


# ---- engine objects in words (duck-typed: an instrument, a symbol feed, a position, a live intent) -----------

def position_of(inst: Any, pos: Any, mark: Decimal | None, mark_kind: str = "mark",
                levels: Mapping[str, Number | None] | None = None) -> str:
    """A position line from the engine's objects: size, entry, ``mark`` (the venue's mark price, or the mid:
    ``mark_kind`` says which) and unrealised PnL, realised, fees and net, and the TP/SL levels as prices."""
    line = position_text(inst.symbol, pos.qty, pos.entry, pos.realized, pos.fees, mark, mark_kind, inst.tick_size,
                         inst.step_size)
    return f"{line}; {levels_text(levels, inst.tick_size)}"


def book_of(inst: Any, sf: Any) -> str:
    """The book's health and touch: ``book synced, 28146.4 / 28146.5``."""
    bid, ask = sf.book.best(0), sf.book.best(1)
    touch = f"{inst.fmt_price(bid[0]) if bid else '-'} / {inst.fmt_price(ask[0]) if ask else '-'}"
    state = "synced" if sf.synced else f"OFF: {sf.unavailable}" if getattr(sf, "unavailable", "") else "RESYNCING"
    return f"  book {state}, bid / ask {touch}"


def working_of(li: Any, orders: Mapping[str, Any]) -> str:
    """A working intent from its ``LiveIntent`` and the OMS's orders: where its resting orders rest."""
    inst, a = li.inst, li.algo
    resting = [(o.price, o.remaining) for cid in li.tracker.orders
               if (o := orders.get(cid)) is not None and o.state.open and o.price is not None]
    state = li.state.value + (", resumed" if li.resumed else "")
    return working_text(li.id, state, li.intent.raw or li.intent.describe(), inst.lots_to_qty(a.filled),
                        inst.lots_to_qty(a.spec.qty), inst.symbol, a.name, resting, inst.step_size, inst.tick_size)
