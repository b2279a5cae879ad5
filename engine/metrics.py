"""Prometheus metrics, collected at scrape time: the hot path only bumps plain counters it already keeps.

Every name, label and unit is in ``docs/metrics.md`` (the catalogue ops and ``deploy/`` build on). Three kinds of
sources, none of them a ``prometheus_client`` object on the engine's paths:

- counters the components keep anyway (the feed's per-symbol counts in C, the OMS's results and fills, the risk
  gateway's refusals, the intent runner's outcomes), read by ``NodeCollector`` when Prometheus scrapes;
- fixed-bucket histograms (``Histogram``; labelled ones are a ``HistogramFamily``, a small dict of them keyed by
  the label tuple): ``observe`` is one bisect into a plain list and two additions, no lock (one writer, the event
  loop); the market-data path times one message in ``engine.feed.live.SAMPLE`` only;
- gauges computed from the node's state at scrape time (positions, PnL, equity, readiness).

PnL convention, everywhere (these gauges, the console, Telegram): realised PnL is NET of fees (realised trading PnL
minus every fee paid); unrealised is the open position marked to the book's mid against its average entry; equity
is realised net + unrealised, the kill switch's own measure.

The exporter (``engine.exporter``: /metrics, /healthz, /readyz) runs in its own thread and only reads. No secret or
API key ever becomes a label; labels are symbols from the configuration and small fixed sets.
"""

from __future__ import annotations

import bisect
from collections.abc import Callable, Iterator
from decimal import Decimal
from typing import Any

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily

# seconds, 1 µs .. 10 s: our own stages are microseconds, exchange round trips milliseconds, a sick venue seconds
BUCKETS = (1e-6, 2.5e-6, 5e-6, 1e-5, 2.5e-5, 5e-5, 1e-4, 2.5e-4, 5e-4, 1e-3, 2.5e-3, 5e-3, 1e-2, 2.5e-2, 5e-2,
           0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)

STREAMS = ("depth", "trade", "ticker", "mark")                       # tapeshot_feed_latency_seconds{stream}
ORDER_TYPES = ("limit_ioc", "limit_gtx", "limit_gtc", "market", "stop", "take_profit")
ORDER_RESULTS = ("accepted", "rejected", "filled", "partially_filled", "cancelled", "expired")
INTENT_OUTCOMES = ("filled", "partial", "cancelled", "expired", "refused", "failed")
RECONCILE_KINDS = ("order", "position", "fill")
KILL_TRIGGERS = ("manual", "drawdown", "daily_loss", "session_loss", "book", "latency", "rejects", "unreachable",
                 "loop_stall", "signal")
TELEGRAM_OUTCOMES = ("ok", "forbidden", "stranger")
SOCKETS = ("market", "user", "rest")                                  # tapeshot_venue_connected{socket}
TRADING_STATES = ("ACTIVE", "REDUCING", "HALTED")


class Histogram:
    """A fixed-bucket latency histogram: ``observe`` is a bisect and two additions (no lock: one writer)."""

    def __init__(self, name: str, doc: str, buckets: tuple[float, ...] = BUCKETS) -> None:
        self.name, self.doc, self.buckets = name, doc, buckets
        self.counts = [0] * (len(buckets) + 1)
        self.total = 0.0

    def observe(self, seconds: float) -> None:
        """One sample (s); a negative one (clocks apart) counts as 0."""
        if seconds < 0.0:
            seconds = 0.0
        self.counts[bisect.bisect_left(self.buckets, seconds)] += 1
        self.total += seconds

    def add_to(self, family: HistogramMetricFamily, label_values: list[str]) -> None:
        """This histogram's cumulative buckets as one sample set of ``family``."""
        cum, out = 0, []
        counts = list(self.counts)                     # one snapshot: +Inf always equals _count
        for b, c in zip(self.buckets, counts, strict=False):
            cum += c
            out.append((repr(b), cum))
        out.append(("+Inf", cum + counts[-1]))
        family.add_metric(label_values, out, self.total)

    def family(self, labels: dict[str, str] | None = None) -> HistogramMetricFamily:
        h = HistogramMetricFamily(self.name, self.doc, labels=list(labels or {}))
        self.add_to(h, list((labels or {}).values()))
        return h


class HistogramFamily:
    """A labelled histogram: a small dict of ``Histogram`` keyed by the label values' tuple. Take a child once
    (``labels``) and keep it where it is observed; ``counts`` and ``total`` sum the children (for the guards and
    the views, which read the histogram as a whole)."""

    def __init__(self, name: str, doc: str, labelnames: tuple[str, ...], buckets: tuple[float, ...] = BUCKETS) -> None:
        self.name, self.doc, self.labelnames, self.buckets = name, doc, labelnames, buckets
        self.children: dict[tuple[str, ...], Histogram] = {}

    def labels(self, *values: str) -> Histogram:
        """The child for these label values (created at first use)."""
        h = self.children.get(values)
        if h is None:
            h = self.children[values] = Histogram(self.name, self.doc, self.buckets)
        return h

    @property
    def counts(self) -> list[int]:
        out = [0] * (len(self.buckets) + 1)
        for h in list(self.children.values()):
            for i, c in enumerate(h.counts):
                out[i] += c
        return out

    @property
    def total(self) -> float:
        return sum(h.total for h in list(self.children.values()))

    def family(self) -> HistogramMetricFamily:
        fam = HistogramMetricFamily(self.name, self.doc, labels=list(self.labelnames))
        for values, h in sorted(self.children.items()):
            h.add_to(fam, list(values))
        return fam


HISTOGRAMS: dict[str, Any] = {
    "feed_latency": HistogramFamily(
        "tapeshot_feed_latency_seconds", "Market event's exchange time (the feed's E/T) to our receipt, by symbol "
        "and stream (s; one message in engine.feed.live.SAMPLE; mark: every markPriceUpdate)", ("symbol", "stream")),
    "msg_to_decision": HistogramFamily(
        "tapeshot_msg_to_decision_seconds", "Market message bytes to book, signals and the algorithms' decision, by "
        "symbol (s; one message in engine.feed.live.SAMPLE)", ("symbol",)),
    "decision_to_send": Histogram("tapeshot_decision_to_send_seconds",
                                  "Algorithm decision to the order's bytes on the socket (s)"),
    "order_round_trip": HistogramFamily(
        "tapeshot_order_round_trip_seconds", "Order's bytes sent to the venue's answer (accepted or rejected), by "
        "order type (s)", ("type",)),
    "cancel_round_trip": Histogram("tapeshot_cancel_round_trip_seconds", "Cancel sent to the venue's answer (s)"),
    "loop_lag": Histogram("tapeshot_loop_lag_seconds", "How late the event loop woke a 50 ms timer (s)"),
}
for _t in ORDER_TYPES:
    HISTOGRAMS["order_round_trip"].labels(_t)

KILLS: dict[str, int] = {}       # kill switch trips by trigger (manual, drawdown, book, latency, loop_stall, ...)
TELEGRAM: dict[tuple[str, str], int] = {}   # Telegram updates by (command, outcome: ok, forbidden, stranger)


# ---- bounded label values ----------------------------------------------------------------------------------------

def order_kind(order_type: str, tif: str | None) -> str:
    """The ``type`` label of an order: limit_ioc (IOC and FOK), limit_gtx, limit_gtc, market, stop (STOP, STOP_MARKET,
    TRAILING_STOP_MARKET) or take_profit (TAKE_PROFIT, TAKE_PROFIT_MARKET)."""
    if order_type == "LIMIT":
        return "limit_ioc" if tif in ("IOC", "FOK") else "limit_gtx" if tif == "GTX" else "limit_gtc"
    if order_type.startswith("TAKE_PROFIT"):
        return "take_profit"
    if "STOP" in order_type:
        return "stop"
    return "market"


def _known_codes() -> frozenset[int]:
    from engine.venues.binance import codes

    return frozenset(v for k, v in vars(codes).items() if k.isupper() and isinstance(v, int))


_CODES: frozenset[int] | None = None


def reject_code(code: int) -> str:
    """The ``code`` label of a venue reject: Binance's error code as a string (``"-2019"``), ``"other"`` for a code
    ``engine.venues.binance.codes`` does not name (the label set stays bounded)."""
    global _CODES
    if _CODES is None:
        _CODES = _known_codes()
    return str(code) if code in _CODES else "other"


def intent_outcome(state: str, filled_lots: int, requested_lots: int) -> str:
    """The ``outcome`` label of an intent that ended in ``state``: done -> filled (all of it), partial (some) or
    expired (nothing: the window ran out); cancelled; failed and interrupted -> failed."""
    if state == "done":
        return "filled" if filled_lots >= requested_lots else "partial" if filled_lots > 0 else "expired"
    return "cancelled" if state == "cancelled" else "failed"


def bump(counts: dict, key: Any, by: int = 1) -> None:
    """``counts[key] += by`` for a plain dict of counters."""
    counts[key] = counts.get(key, 0) + by


# ---- the collector -------------------------------------------------------------------------------------------------

class NodeCollector:
    """Every catalogue metric, read from a running ``Node`` when Prometheus scrapes (in the exporter's thread:
    reads only, on snapshots of the containers it walks). ``ready`` tells whether /readyz would answer 200."""

    def __init__(self, node: Any, ready: Callable[[], bool] | None = None) -> None:
        self.node = node
        self.ready = ready or (lambda: False)

    def collect(self) -> Iterator[Any]:
        from engine import __version__

        yield _gauge("tapeshot_metrics_info", "Build information (always 1)", [(("version",), (__version__,), 1)])
        yield GaugeMetricFamily("tapeshot_ready", "1 when /readyz would answer 200", value=float(self.ready()))
        n = self.node
        if not n.started.is_set():
            return
        yield from _feed(n)
        yield from _orders(n)
        yield from _positions(n)
        yield from _state(n)
        yield from _counters(n)
        for h in HISTOGRAMS.values():
            yield h.family()


def _gauge(name: str, doc: str, rows: list[tuple[tuple[str, ...], tuple[str, ...], float]]) -> GaugeMetricFamily:
    """A gauge family from (label names, label values, value) rows (every row the same names)."""
    fam = GaugeMetricFamily(name, doc, labels=list(rows[0][0]) if rows else [])
    for _, values, v in rows:
        fam.add_metric(list(values), float(v))
    return fam


def _counter(name: str, doc: str, labels: list[str], rows: dict) -> CounterMetricFamily:
    """A counter family (exposed as ``name_total``) from {label values tuple (or one value): count}."""
    fam = CounterMetricFamily(name, doc, labels=labels)
    for key, v in sorted(rows.items()):
        fam.add_metric(list(key) if isinstance(key, tuple) else [key], v)
    return fam


def _traded(n: Any) -> list[Any]:
    """The traded symbols' feeds (not the context symbol's)."""
    return [sf for sf in n.feed.symbols if sf.symbol in n.instruments]


def _feed(n: Any) -> Iterator[Any]:
    msgs = CounterMetricFamily("tapeshot_feed_messages", "Market messages by symbol and kind (diffs, trades, "
                               "tickers applied; gaps, resyncs, bad; bookTicker checks and mismatches)",
                               labels=["symbol", "kind"])
    health = GaugeMetricFamily("tapeshot_book_health", "1 when the check holds (synced: the diff chain is "
                               "unbroken; crossed: best bid >= best ask)", labels=["symbol", "check"])
    age = GaugeMetricFamily("tapeshot_book_age_seconds", "Exchange time since the last applied diff (s)",
                            labels=["symbol"])
    now = n.now()
    for sf in n.feed.symbols:
        for kind, v in (("diffs", sf.n_diffs), ("trades", sf.n_trades), ("tickers", sf.n_tickers),
                        ("gaps", sf.n_gaps), ("resyncs", sf.n_resyncs), ("bad", sf.n_bad),
                        ("ticker_checks", sf.ticker_checks), ("ticker_mismatches", sf.ticker_mismatches)):
            msgs.add_metric([sf.symbol, kind], v)
        health.add_metric([sf.symbol, "synced"], float(sf.synced))
        health.add_metric([sf.symbol, "crossed"], float(sf.book.crossed))
        age.add_metric([sf.symbol], max(0.0, (now - sf.last_book_ns) / 1e9))
    yield msgs
    yield health
    yield age


def _orders(n: Any) -> Iterator[Any]:
    by_state: dict[str, int] = {}
    open_by_symbol = {sym: 0 for sym in n.instruments}
    for o in list(n.oms.orders.values()):
        bump(by_state, o.state.value)
        if o.state.open and o.symbol in open_by_symbol:
            open_by_symbol[o.symbol] += 1
    yield _gauge("tapeshot_orders", "Orders by state (this session's and the journal's)",
                 [(("state",), (s,), c) for s, c in sorted(by_state.items())])
    yield _gauge("tapeshot_open_orders", "Orders live at the venue (sent, not final), by symbol",
                 [(("symbol",), (s,), c) for s, c in sorted(open_by_symbol.items())])
    working = sum(1 for li in list(n.runner.intents.values()) if li.state.live or li.state.value == "accepted")
    yield GaugeMetricFamily("tapeshot_working_intents", "Intents accepted and not yet ended", value=working)


def _mid(sf: Any, inst: Any) -> Decimal | None:
    mid = sf.book.mid
    return None if mid != mid else Decimal(repr(mid)) * inst.tick_size


def _positions(n: Any) -> Iterator[Any]:
    """Position, notional, realised (net of fees) and unrealised PnL per traded symbol; equity and drawdown."""
    rows: dict[str, list] = {"pos": [], "notional": [], "real": [], "unreal": []}
    equity = Decimal(0)
    positions = dict(n.oms.positions.positions)
    for sym, inst in n.instruments.items():
        p = positions.get(sym)
        qty, entry = (p.qty, p.entry) if p is not None else (Decimal(0), Decimal(0))
        real = p.realized - p.fees if p is not None else Decimal(0)
        sf = n.feed[sym]
        mid = _mid(sf, inst)
        mark = Decimal(str(sf.mark_price)) if sf.mark_price else mid
        unreal = (mid - entry) * qty if mid is not None and qty else Decimal(0)
        equity += real + unreal
        key = (("symbol",), (sym,))
        rows["pos"].append((*key, qty))
        rows["notional"].append((*key, abs(qty) * mark if mark is not None else 0))
        rows["real"].append((*key, real))
        rows["unreal"].append((*key, unreal))
    yield _gauge("tapeshot_position", "Signed position (base units; long > 0)", rows["pos"])
    yield _gauge("tapeshot_notional_usdt", "|position| x the venue's mark price (the mid before the first mark), "
                 "USDT", rows["notional"])
    yield _gauge("tapeshot_realised_pnl_usdt", "Realised PnL NET of fees (realised trading PnL minus every fee "
                 "paid), USDT; the console and Telegram use the same convention", rows["real"])
    yield _gauge("tapeshot_unrealised_pnl_usdt", "Open position marked to the book's mid against its average "
                 "entry, USDT", rows["unreal"])
    yield from _equity(n, equity)


def _equity(n: Any, equity: Decimal) -> Iterator[Any]:
    ks = n.killswitch
    peak = ks.peak if ks.peak is not None else equity
    yield GaugeMetricFamily("tapeshot_equity_usdt", "The kill switch's equity: realised PnL net of fees + "
                            "unrealised at the mid, summed over every position, USDT", value=float(equity))
    yield GaugeMetricFamily("tapeshot_drawdown_usdt", "The day's equity peak minus equity (>= 0), USDT",
                            value=float(max(Decimal(0), peak - equity)))
    yield GaugeMetricFamily("tapeshot_drawdown_limit_usdt", "The kill switch's drawdown limit (risk.max_drawdown), "
                            "USDT", value=float(n.cfg.risk.max_drawdown))


def _state(n: Any) -> Iterator[Any]:
    yield GaugeMetricFamily("tapeshot_trading_state", "0 active, 1 reducing, 2 halted",
                            value=TRADING_STATES.index(n.risk.state.value))
    yield GaugeMetricFamily("tapeshot_venue_clock_offset_ms", "Venue clock minus ours, as last measured (ms)",
                            value=n.rest.time_offset_ms)
    up = n.connections()
    yield _gauge("tapeshot_venue_connected", "1 when the connection to the venue is up: market stream, user data "
                 "stream, REST (its last request was answered)", [(("socket",), (s,), float(up[s])) for s in SOCKETS])


def _counters(n: Any) -> Iterator[Any]:
    oms, runner = n.oms, n.runner
    yield _counter("tapeshot_intents", "Intents by outcome, counted once when they end or are refused", ["outcome"],
                   {**dict.fromkeys(INTENT_OUTCOMES, 0), **runner.ended})
    yield _counter("tapeshot_orders", "Orders by type and each state they reached (accepted, partially_filled, "
                   "filled, cancelled, expired, rejected)", ["type", "result"],
                   {**{(t, r): 0 for t in ORDER_TYPES for r in ORDER_RESULTS}, **oms.results})
    yield _counter("tapeshot_fills", "Fills by symbol and liquidity (maker, taker)", ["symbol", "liquidity"],
                   {**{(s, liq): 0 for s in n.instruments for liq in ("maker", "taker")}, **oms.fill_counts})
    yield _counter("tapeshot_venue_rejects", "Orders the venue rejected, by Binance error code", ["code"],
                   {"other": 0, **oms.rejects})
    yield _counter("tapeshot_risk_refused", "Risk refusals by reason, of an order (the C gate) or of an intent as "
                   "a whole when it arrives (halted, limits, busy, book)", ["reason", "level"],
                   {("halted", "intent"): 0, ("halted", "order"): 0, **n.risk.refused_levels})
    yield _counter("tapeshot_kills", "Kill switch activations by trigger", ["trigger"],
                   {**dict.fromkeys(KILL_TRIGGERS, 0), **KILLS})
    yield _counter("tapeshot_telegram_commands", "Telegram commands by command and outcome (ok: served; "
                   "forbidden: a viewer asked to trade; stranger: not a registered user)", ["command", "outcome"],
                   {**{("intent", o): 0 for o in TELEGRAM_OUTCOMES}, **TELEGRAM})
    yield _counter("tapeshot_reconcile_differences", "Differences between the journal and the venue found by "
                   "reconciliation, by kind (order, position, fill)", ["kind"],
                   {**dict.fromkeys(RECONCILE_KINDS, 0), **n.reconcile_differences})


async def serve_metrics(node: Any, port: int, host: str = "127.0.0.1") -> Callable:
    """Start the exporter thread (/metrics, /healthz, /readyz: ``engine.exporter``); returns an async stopper."""
    from engine.exporter import Exporter

    exporter = Exporter(node, host, port)
    await exporter.start()
    return exporter.stop


__all__ = ["BUCKETS", "HISTOGRAMS", "KILLS", "TELEGRAM", "Histogram", "HistogramFamily", "NodeCollector",
           "intent_outcome", "order_kind", "reject_code", "serve_metrics"]
