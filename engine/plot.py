"""A picture of every execution: the touch, our orders, our fills and the mid afterwards, from the journal.

``chart_data`` reads one intent back from a journal file (read-only: it works while the engine runs and after
it stopped) into a ``ChartData`` of plain arrays in trader's units: prices in the quote currency (USDT),
quantities in the base asset, times in seconds from the intent's arrival. ``build_figure`` draws it with
matplotlib's object API on the Agg canvas (no pyplot, no screen); ``render_png`` returns the PNG bytes.

What is drawn:

- the touch (best bid and ask) and the mid over the window and on to the last markout, from the intent's
  ``timeline`` decision (``engine.execution.Touch``, written when the markouts are in or at shutdown);
- our orders from the journal's ``orders`` table: a resting order as its price level over its lifetime
  (placement to its final state; a move is a cancel and a new order, so a chase is a staircase), side-coloured;
  an IOC or MARKET shot as a triangle at the time it went out;
- our fills from the ``fills`` table: circles whose area is proportional to their quantity, filled for a taker
  fill and hollow for a maker one;
- the arrival mid, the slippage cap (and the trader's limit, if any) as horizontal lines, the deadline as a
  vertical one; after the last fill, a shaded band out to the last markout with the markout mids marked;
- below, the filled quantity over time against the requested quantity.

The event loop never renders: ``render_async`` and ``intent_chart`` run in one worker process (spawned, so
matplotlib's work never holds the engine's GIL, and niced, so it yields the CPU to the engine).
"""

from __future__ import annotations

import asyncio
import atexit
import concurrent.futures
import contextlib
import io
import multiprocessing
import os
import sqlite3
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

import numpy as np
import orjson

from engine.dataset.export import connect_ro
from engine.errors import ConfigError
from engine.execution import MARKOUTS_S

SEC = 1e9
BUY_COLOUR, SELL_COLOUR = "#1a9850", "#d73027"
BID_COLOUR, ASK_COLOUR, MID_COLOUR = "#4a7fb5", "#e08a2c", "#444444"
FIGSIZE_IN, DPI = (12.0, 6.75), 110            # 1320 x 742 px
FILL_AREA = 260.0                              # marker area (pt^2) of the largest fill; the others in proportion
QUOTES = ("USDT", "USDC", "BUSD")


class UnknownIntent(ConfigError):
    """The journal has no intent of that id."""


@dataclass
class OrderLine:
    """One of our orders: a resting level from ``start_s`` to ``end_s`` (None: still open when the journal was
    read), or an immediate shot (``ioc``: IOC, FOK or MARKET) at ``start_s``. ``price`` is None for a MARKET
    order (``avg`` then says where it filled)."""

    cid: str
    side: str
    price: float | None
    qty: float
    start_s: float
    end_s: float | None
    ioc: bool
    state: str
    filled: float = 0.0
    avg: float | None = None


@dataclass
class Fills:
    """Our fills in time order: seconds from arrival, price, base quantity, and whether we were the maker."""

    t_s: np.ndarray = field(default_factory=lambda: np.zeros(0))
    price: np.ndarray = field(default_factory=lambda: np.zeros(0))
    qty: np.ndarray = field(default_factory=lambda: np.zeros(0))
    maker: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=bool))

    def __len__(self) -> int:
        return len(self.t_s)


@dataclass
class Markouts:
    """The mid at each markout horizon after the end of the execution: seconds from arrival, the mid (NaN when
    not recorded), and the markout in bps of the average price (NaN when unknown)."""

    labels: list[str] = field(default_factory=list)
    t_s: np.ndarray = field(default_factory=lambda: np.zeros(0))
    mid: np.ndarray = field(default_factory=lambda: np.zeros(0))
    bps: np.ndarray = field(default_factory=lambda: np.zeros(0))


@dataclass
class ChartData:
    """Everything one execution's chart shows, as plain numbers (prices in USDT, quantities in the base asset,
    times in seconds from arrival)."""

    intent_id: str
    symbol: str
    side: str                                  # BUY or SELL
    algo: str
    state: str
    text: str
    requested: float
    times: np.ndarray                          # touch samples
    bid: np.ndarray
    ask: np.ndarray
    mid: np.ndarray
    orders: list[OrderLine]
    fills: Fills
    arrival_mid: float | None
    cap: float | None
    limit: float | None
    deadline_s: float
    end_s: float | None                        # the execution ended (its last order settled)
    last_fill_s: float | None
    markouts: Markouts
    avg_price: float | None = None
    shortfall_bps: float | None = None
    price_places: int = 2
    decimated: int = 0                         # the touch was halved this many times to stay bounded

    @property
    def base(self) -> str:
        """The base asset (BTC for BTCUSDT)."""
        return next((self.symbol[: -len(q)] for q in QUOTES if self.symbol.endswith(q) and self.symbol != q),
                    self.symbol)

    @property
    def empty(self) -> bool:
        """Nothing to draw: no touch, no order, no fill."""
        return not len(self.times) and not self.orders and not len(self.fills)

    @property
    def span_s(self) -> float:
        """The right edge of the chart: the last thing recorded (touch, order, fill, markout) or the deadline."""
        ends = [self.deadline_s, *self.times[-1:], *self.fills.t_s[-1:], *self.markouts.t_s[~np.isnan(
            self.markouts.mid)]] + [o.end_s if o.end_s is not None else o.start_s for o in self.orders]
        return float(max(ends))


# ---- reading the journal -------------------------------------------------------------------------------------


def journal_file(journal: Any) -> Path:
    """The file of ``journal``: an ``engine.oms.journal.Journal`` (its ``path``) or a path."""
    return Path(getattr(journal, "path", journal)).expanduser()


def chart_data(journal: Any, intent_id: str) -> ChartData:
    """Intent ``intent_id``'s chart data from a journal (a ``Journal`` or the path of its file), read-only;
    a ``ConfigError`` when the journal has no such intent."""
    with contextlib.closing(connect_ro(journal_file(journal))) as conn:
        row = conn.execute("SELECT * FROM intents WHERE id=?", (intent_id,)).fetchone()
        if row is None:
            raise UnknownIntent(f"no intent {intent_id} in the journal {journal_file(journal)}")
        orders = conn.execute("SELECT * FROM orders WHERE intent_id=? ORDER BY created_ms, client_order_id",
                              (intent_id,)).fetchall()
        fills = conn.execute("SELECT f.* FROM fills f JOIN orders o ON o.client_order_id = f.client_order_id "
                             "WHERE o.intent_id=? ORDER BY f.time_ms, f.trade_id", (intent_id,)).fetchall()
        timeline = _last_decision(conn, intent_id, "timeline")
        arrival = _last_decision(conn, intent_id, "arrival")
    return _assemble(row, orders, fills, timeline, arrival)


def _last_decision(conn: sqlite3.Connection, intent_id: str, kind: str) -> dict | None:
    r = conn.execute("SELECT data FROM decisions WHERE intent_id=? AND kind=? ORDER BY seq DESC LIMIT 1",
                     (intent_id, kind)).fetchone()
    return orjson.loads(r["data"]) if r is not None else None


def _dec(text: Any) -> Decimal | None:
    try:
        return None if text is None else Decimal(str(text))
    except InvalidOperation:
        return None


def _tick(data: dict, report: dict, timeline: dict | None, orders: list) -> Decimal | None:
    """The tick size: the timeline's, else the report's cap over the cap in ticks, else the finest order price."""
    if timeline and _dec(timeline.get("tick")):
        return _dec(timeline["tick"])
    cap = _dec(report.get("cap"))
    if cap is not None and data.get("cap"):
        return cap / Decimal(data["cap"])
    places = [-p.as_tuple().exponent for o in orders if (p := _dec(o["price"])) is not None]
    return Decimal(1).scaleb(-max(places)) if places else None


def _assemble(row: sqlite3.Row, orders: list, fills: list, timeline: dict | None, arrival: dict | None) -> ChartData:
    data = orjson.loads(row["data"]) if row["data"] else {}
    report = (orjson.loads(row["report"]) if row["report"] else None) or {}
    t0 = int(data.get("arrival_ns") or (timeline or {}).get("arrival_ns") or row["created_ms"] * 1_000_000)
    tick = _tick(data, report, timeline, orders)
    tick_f = float(tick) if tick is not None else None
    times, bid, ask = _touch(timeline, tick_f)
    side = "BUY" if data.get("side") in (0, "BUY") else "SELL" if "side" in data else str(report.get("side", "?"))
    mid_ticks = data.get("mid_ticks", (arrival or {}).get("mid_ticks"))
    end_ns = (timeline or {}).get("end_ns")
    if end_ns is None and report.get("time_to_fill_s") is not None:
        end_ns = t0 + report["time_to_fill_s"] * SEC
    fl = _fills(fills, t0)
    return ChartData(
        intent_id=row["id"], symbol=str(data.get("symbol") or report.get("symbol") or "?"), side=side,
        algo=str(data.get("algo") or report.get("algo") or "?"), state=row["state"], text=row["text"] or "",
        requested=_float(report.get("requested")) or float("nan"), times=times, bid=bid, ask=ask, mid=(bid + ask) / 2,
        orders=[_order_line(o, t0, ((timeline or {}).get("orders") or {}).get(o["client_order_id"]),
                            (int(data.get("deadline_ns") or t0) - t0) / SEC) for o in orders], fills=fl,
        arrival_mid=_px(mid_ticks, tick_f) if mid_ticks is not None else _float(report.get("arrival_mid")),
        cap=_px(data.get("cap"), tick_f) if data.get("cap") is not None else _float(report.get("cap")),
        limit=_px(data.get("limit"), tick_f), deadline_s=(int(data.get("deadline_ns") or t0) - t0) / SEC,
        end_s=None if end_ns is None else (end_ns - t0) / SEC,
        last_fill_s=float(fl.t_s.max()) if len(fl) else None,
        markouts=_markouts(report, timeline, end_ns, t0, tick_f),
        avg_price=_float(report.get("avg_price")), shortfall_bps=report.get("shortfall_bps"),
        price_places=max(0, -tick.normalize().as_tuple().exponent) if tick is not None else 2,
        decimated=int(((timeline or {}).get("touch") or {}).get("decimated", 0)))


def _px(ticks: Any, tick: float | None) -> float | None:
    return None if ticks is None or tick is None else float(ticks) * tick


def _float(text: Any) -> float | None:
    d = _dec(text)
    return None if d is None else float(d)


def _touch(timeline: dict | None, tick: float | None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    touch = (timeline or {}).get("touch") or {}
    if tick is None or not touch.get("t_ms"):
        return np.zeros(0), np.zeros(0), np.zeros(0)
    return (np.asarray(touch["t_ms"], dtype=float) / 1e3, np.asarray(touch["bid"], dtype=float) * tick,
            np.asarray(touch["ask"], dtype=float) * tick)


def _order_line(o: sqlite3.Row, t0: int, times: list | None, deadline_s: float) -> OrderLine:
    """An ``orders`` row as an ``OrderLine``. Its times are the intent's own (``times``: [sent, final] ms from
    arrival, from the timeline) when recorded; else the row's, which are the OMS clock's: on the embedded sim
    that is not the replay's clock, so a time outside the intent's span is pinned to the arrival."""
    filled = float(o["filled"] or 0)
    notional = float(o["notional"] or 0)
    final = o["state"] in ("FILLED", "CANCELED", "EXPIRED", "REJECTED")
    if times:
        start_s, end_s = times[0] / 1e3, None if times[1] is None else times[1] / 1e3
    else:
        start_s = _plausible((o["created_ms"] * 1_000_000 - t0) / SEC, deadline_s) or 0.0
        end_s = _plausible((o["updated_ms"] * 1_000_000 - t0) / SEC, deadline_s) if final and o["updated_ms"] \
            else None
        end_s = start_s if final and end_s is None else end_s
    return OrderLine(cid=o["client_order_id"], side=o["side"], price=_float(o["price"]), qty=float(o["qty"]),
                     start_s=start_s, end_s=end_s, ioc=o["type"] == "MARKET" or o["tif"] in ("IOC", "FOK"),
                     state=o["state"], filled=filled, avg=notional / filled if filled else None)


def _plausible(t_s: float, deadline_s: float) -> float | None:
    """``t_s`` if it can be a time of this intent's orders (from a little before arrival to well after its
    deadline), else None."""
    return t_s if -5.0 <= t_s <= deadline_s + 120.0 else None


def _fills(rows: list, t0: int) -> Fills:
    if not rows:
        return Fills()
    return Fills(t_s=np.array([(r["time_ms"] * 1_000_000 - t0) / SEC for r in rows]),
                 price=np.array([float(r["price"]) for r in rows]), qty=np.array([float(r["qty"]) for r in rows]),
                 maker=np.array([bool(r["maker"]) for r in rows], dtype=bool))


def _markouts(report: dict, timeline: dict | None, end_ns: float | None, t0: int, tick: float | None) -> Markouts:
    if end_ns is None:
        return Markouts()
    mids = (timeline or {}).get("markout_mids") or {}
    bps = report.get("markouts_bps") or {}
    labels = [f"+{h}s" for h in MARKOUTS_S]
    mid = [_px(mids.get(str(h)), tick) for h in MARKOUTS_S]
    return Markouts(labels=labels, t_s=np.array([(end_ns + h * SEC - t0) / SEC for h in MARKOUTS_S]),
                    mid=np.array([np.nan if m is None else m for m in mid]),
                    bps=np.array([np.nan if bps.get(k) is None else float(bps[k]) for k in labels]))


# ---- drawing --------------------------------------------------------------------------------------------------


def build_figure(data: ChartData) -> Any:
    """The chart as a matplotlib ``Figure`` on an Agg canvas (no pyplot, no display). Artists carry a ``gid``
    naming what they show: bid, ask, mid, orders, ioc, fills, arrival_mid, cap, limit, deadline, after_fill,
    markouts, filled, requested."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=FIGSIZE_IN, dpi=DPI, layout="constrained")
    FigureCanvasAgg(fig)
    ax, qx = fig.subplots(2, 1, sharex=True, gridspec_kw={"height_ratios": (3.2, 1)})
    right = data.span_s
    _draw_touch(ax, data, right)
    _draw_levels(ax, data)
    _draw_orders(ax, data, right)
    _draw_fills(ax, data)
    _draw_after(ax, data)
    _draw_filled(qx, data, right)
    _decorate(fig, ax, qx, data, right)
    return fig


def render_png(data: ChartData) -> bytes:
    """The chart as PNG bytes (pure: nothing but ``data`` goes in, no file, no display)."""
    fig = build_figure(data)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=DPI, metadata={"Software": None})
    return buf.getvalue()


def _extend(t: np.ndarray, y: np.ndarray, right: float) -> tuple[np.ndarray, np.ndarray]:
    """A step series held to the right edge (the last touch lasts until the next one or the end)."""
    if len(t) and t[-1] < right:
        return np.append(t, right), np.append(y, y[-1])
    return t, y


def _draw_touch(ax: Any, d: ChartData, right: float) -> None:
    if not len(d.times):
        return
    for y, gid, colour, lw, label in ((d.bid, "bid", BID_COLOUR, 1.1, "best bid"),
                                      (d.ask, "ask", ASK_COLOUR, 1.1, "best ask"),
                                      (d.mid, "mid", MID_COLOUR, 0.8, "mid")):
        t, yy = _extend(d.times, y, right)
        (line,) = ax.step(t, yy, where="post", color=colour, lw=lw, label=label,
                          ls=":" if gid == "mid" else "-", zorder=2)
        line.set_gid(gid)


def _draw_levels(ax: Any, d: ChartData) -> None:
    fmt = _fmt(d.price_places)
    if d.arrival_mid is not None:
        ax.axhline(d.arrival_mid, color="#777777", ls="--", lw=1, label=f"arrival mid {fmt(d.arrival_mid)}",
                   gid="arrival_mid", zorder=1)
    if d.cap is not None:
        ax.axhline(d.cap, color="#b2182b", ls="-.", lw=1.2, label=f"slippage cap {fmt(d.cap)}", gid="cap", zorder=1)
    if d.limit is not None:
        ax.axhline(d.limit, color="#762a83", ls="-.", lw=1, label=f"limit {fmt(d.limit)}", gid="limit", zorder=1)
    ax.axvline(d.deadline_s, color="#222222", ls="--", lw=1, label=f"deadline {d.deadline_s:g} s", gid="deadline",
               zorder=1)


def _colour(side: str) -> str:
    return BUY_COLOUR if side == "BUY" else SELL_COLOUR


def _draw_orders(ax: Any, d: ChartData, right: float) -> None:
    resting = [o for o in d.orders if not o.ioc and o.price is not None]
    if resting:
        ax.hlines([o.price for o in resting], [o.start_s for o in resting],
                  [right if o.end_s is None else max(o.end_s, o.start_s) for o in resting],
                  colors=[_colour(o.side) for o in resting], lw=3.2, alpha=0.75, label="our resting orders",
                  gid="orders", zorder=3)
    shots = [o for o in d.orders if o.ioc and (o.price is not None or o.avg is not None)]
    for side, mk in (("BUY", "^"), ("SELL", "v")):
        mine = [o for o in shots if o.side == side]
        if mine:
            ax.scatter([o.start_s for o in mine], [o.price if o.price is not None else o.avg for o in mine],
                       marker=mk, s=70, color=_colour(side), edgecolors="black", linewidths=0.6,
                       label=f"our IOC/market {side.lower()}s", gid="ioc", zorder=4)


def _fill_sizes(qty: np.ndarray) -> np.ndarray:
    """Marker areas proportional to quantity, the largest fill ``FILL_AREA``."""
    return FILL_AREA * qty / qty.max() if len(qty) and qty.max() > 0 else np.zeros(len(qty))


def _draw_fills(ax: Any, d: ChartData) -> None:
    f = d.fills
    if not len(f):
        return
    colour = _colour(d.side)
    faces = ["white" if m else colour for m in f.maker]
    ax.scatter(f.t_s, f.price, s=_fill_sizes(f.qty), facecolors=faces, edgecolors=colour, linewidths=1.4,
               label=f"our fills (area ~ qty {d.base}; hollow: maker)", gid="fills", zorder=5)


def _draw_after(ax: Any, d: ChartData) -> None:
    m = d.markouts
    start = d.last_fill_s if d.last_fill_s is not None else d.end_s
    if start is None or not len(m.t_s):
        return
    ax.axvspan(start, float(m.t_s[-1]), color="#999999", alpha=0.12, lw=0, label="after the last fill",
               gid="after_fill", zorder=0)
    ok = ~np.isnan(m.mid)
    if ok.any():
        ax.scatter(m.t_s[ok], m.mid[ok], marker="D", s=36, color=MID_COLOUR, label="mid at the markouts",
                   gid="markouts", zorder=5)
    last = len(m.labels) - 1
    for i, (label, t, mid, bps) in enumerate(zip(m.labels, m.t_s, m.mid, m.bps, strict=True)):
        if not np.isnan(mid):                         # the last one at the right edge: its words to its left
            text = label if np.isnan(bps) else f"{label}\n{bps:+.2f} bps"
            ax.annotate(text, (t, mid), xytext=(-6 if i == last else 4, 6), textcoords="offset points",
                        ha="right" if i == last else "left", fontsize=8, color=MID_COLOUR)


def _draw_filled(qx: Any, d: ChartData, right: float) -> None:
    f = d.fills
    t = np.concatenate(([0.0], f.t_s, [right]))
    q = np.concatenate(([0.0], np.cumsum(f.qty), [f.qty.sum() if len(f) else 0.0]))
    (line,) = qx.step(t, q, where="post", color=_colour(d.side), lw=1.5, label="filled")
    line.set_gid("filled")
    if not np.isnan(d.requested):
        qx.axhline(d.requested, color="#777777", ls="--", lw=1, label=f"requested {d.requested:g}", gid="requested")
    qx.axvline(d.deadline_s, color="#222222", ls="--", lw=1)
    qx.set_ylabel(f"filled ({d.base})")
    qx.set_ylim(bottom=0)
    qx.legend(loc="lower right", fontsize=8, frameon=False)


def _fmt(places: int):
    return lambda v: f"{v:,.{places}f}"


def _ylim(ax: Any, d: ChartData, fmt: Any) -> None:
    """The price axis around what happened (touch, orders, fills, arrival mid, markouts). The cap and the limit
    are in view when they are near it; a far one would flatten everything into a line, so it is named at the
    top or bottom edge instead."""
    seen = [d.bid, d.ask, d.fills.price, d.markouts.mid[~np.isnan(d.markouts.mid)],
            np.array([o.price if o.price is not None else o.avg for o in d.orders], dtype=float),
            np.array([] if d.arrival_mid is None else [d.arrival_mid])]
    values = np.concatenate([v[~np.isnan(v)] for v in seen if len(v)]) if any(len(v) for v in seen) else None
    if values is None or not len(values):
        return
    lo, hi = float(values.min()), float(values.max())
    span = max(hi - lo, 10.0 ** -d.price_places * 4)
    far = []
    for name, level in (("slippage cap", d.cap), ("limit", d.limit)):
        if level is None:
            continue
        if lo - span <= level <= hi + span:
            lo, hi = min(lo, level), max(hi, level)
        else:
            far.append((name, level))
    pad = (hi - lo) * 0.08 or span * 0.5
    ax.set_ylim(lo - pad, hi + pad)
    for i, (name, level) in enumerate(far):
        above = level > hi
        ax.annotate(f"{name} {fmt(level)} {'above' if above else 'below'} ({fmt(abs(level - (hi if above else lo)))} "
                    "USDT off the chart)", xy=(0.01, 0.97 - 0.05 * i if above else 0.03 + 0.05 * i),
                    xycoords="axes fraction", va="top" if above else "bottom", fontsize=8, color="#b2182b")


def _decorate(fig: Any, ax: Any, qx: Any, d: ChartData, right: float) -> None:
    from matplotlib.ticker import FuncFormatter

    fmt = _fmt(d.price_places)
    filled = float(d.fills.qty.sum()) if len(d.fills) else 0.0
    head = f"{d.intent_id}  {d.side} {filled:g}/{d.requested:g} {d.base} {d.symbol}  {d.algo}  {d.state}"
    if d.avg_price is not None:
        head += f"  avg {fmt(d.avg_price)} USDT"
    if d.shortfall_bps is not None:
        head += f"  shortfall {d.shortfall_bps:+.2f} bps (fees in)"
    fig.suptitle(head, fontsize=11, fontweight="bold")
    ax.set_title(d.text + (f"  [touch decimated x{2 ** d.decimated}]" if d.decimated else ""), fontsize=9,
                 color="#555555")
    ax.set_ylabel("price (USDT)")
    qx.set_xlabel("seconds from arrival")
    ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: fmt(v)))
    ax.set_xlim(min([0.0, *(o.start_s for o in d.orders)]) - 0.01 * right, right * 1.02 + 0.05)
    _ylim(ax, d, fmt)
    ax.grid(True, color="#eeeeee", lw=0.6)
    qx.grid(True, color="#eeeeee", lw=0.6)
    ax.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize=8, frameon=False)


# ---- off the event loop ----------------------------------------------------------------------------------------

_POOL: concurrent.futures.ProcessPoolExecutor | None = None


def _worker_init() -> None:
    """In the worker: yield the CPU to the engine, and import matplotlib once, before the first chart."""
    with contextlib.suppress(OSError):
        os.nice(10)
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.backends.backend_agg


def start_worker() -> concurrent.futures.ProcessPoolExecutor:
    """The chart worker: one spawned process (created on first use; call this at start-up to have it ready)."""
    global _POOL
    if _POOL is None:
        _POOL = concurrent.futures.ProcessPoolExecutor(1, multiprocessing.get_context("spawn"),
                                                       initializer=_worker_init)
        atexit.register(stop_worker, wait=True)        # joined before the interpreter tears its modules down
    return _POOL


def stop_worker(wait: bool = False) -> None:
    """Stop the chart worker (a later chart starts a new one); ``wait``: until its process has exited."""
    global _POOL
    pool, _POOL = _POOL, None
    if pool is not None:
        pool.shutdown(wait=wait, cancel_futures=True)


async def _in_worker(fn: Any, *args: Any) -> Any:
    loop = asyncio.get_running_loop()
    try:
        return await loop.run_in_executor(start_worker(), fn, *args)
    except concurrent.futures.process.BrokenProcessPool:
        stop_worker()                                   # the worker died: one more try in a fresh one
        return await loop.run_in_executor(start_worker(), fn, *args)


async def in_worker(fn: Any, *args: Any) -> Any:
    """``fn(*args)`` in the chart worker process (niced, spawned once): for any heavy reading or drawing a front
    end asks for, so that the event loop only awaits."""
    return await _in_worker(fn, *args)


async def render_async(data: ChartData) -> bytes:
    """``render_png`` in the worker process: the event loop only awaits."""
    return await _in_worker(render_png, data)


def chart_png(journal: Any, intent_id: str) -> bytes | None:
    """Intent ``intent_id``'s chart as PNG bytes, or None when the journal has no such intent or nothing of it to
    draw (a refused intent: no order, no touch)."""
    try:
        data = chart_data(journal, intent_id)
    except UnknownIntent:
        return None
    return None if data.empty else render_png(data)


async def intent_chart(journal: Any, intent_id: str) -> bytes | None:
    """Intent ``intent_id``'s chart (PNG bytes) from ``journal`` (a ``Journal`` or its path), read and drawn in
    the worker process; None when there is nothing to draw. The touch is in the journal once the intent's
    markouts are (its ``markouts`` report): asked for earlier, the chart has the orders and fills only."""
    return await _in_worker(chart_png, str(journal_file(journal)), intent_id)
