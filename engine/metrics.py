"""Prometheus metrics, collected at scrape time: the hot path only bumps plain counters it already keeps.

The exporter (``prometheus_client``'s HTTP server, its own thread) reads the feed's per-symbol counters, the order
manager and risk state, and latency histograms recorded off the hot path (order round trip, decision to send).
No secret or API key ever becomes a label; labels are symbols, kinds and states.
"""

from __future__ import annotations

import bisect
import threading
from collections.abc import Callable

from prometheus_client import CollectorRegistry, start_http_server
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily

# seconds; exchange round trips are milliseconds, our own stages microseconds
BUCKETS = (5e-6, 1e-5, 2.5e-5, 5e-5, 1e-4, 2.5e-4, 5e-4, 1e-3, 2.5e-3, 5e-3, 1e-2, 2.5e-2, 5e-2, 0.1, 0.25, 0.5, 1.0)


class Histogram:
    """A fixed-bucket latency histogram: ``observe`` is a bisect and two additions (no lock: one writer)."""

    def __init__(self, name: str, doc: str, buckets: tuple[float, ...] = BUCKETS) -> None:
        self.name, self.doc, self.buckets = name, doc, buckets
        self.counts = [0] * (len(buckets) + 1)
        self.total = 0.0

    def observe(self, seconds: float) -> None:
        self.counts[bisect.bisect_left(self.buckets, seconds)] += 1
        self.total += seconds

    def family(self, labels: dict[str, str] | None = None) -> HistogramMetricFamily:
        h = HistogramMetricFamily(self.name, self.doc, labels=list(labels or {}))
        cum, out = 0, []
        for b, c in zip(self.buckets, self.counts, strict=False):
            cum += c
            out.append((repr(b), cum))
        cum += self.counts[-1]
        out.append(("+Inf", cum))
        h.add_metric(list((labels or {}).values()), out, self.total)
        return h


HISTOGRAMS = {
    "order_round_trip": Histogram("tapeshot_order_round_trip_seconds", "Order sent to the venue's answer"),
    "decision_to_send": Histogram("tapeshot_decision_to_send_seconds", "Algorithm decision to bytes on the socket"),
    "msg_to_decision": Histogram("tapeshot_msg_to_decision_seconds",
                                 "Market message bytes to book, signals and decision (sampled)"),
    "loop_lag": Histogram("tapeshot_loop_lag_seconds", "How late the event loop woke a 50 ms timer"),
}

KILLS: dict[str, int] = {}       # kill switch trips by trigger (manual, drawdown, book, latency, loop_stall, ...)
TELEGRAM: dict[tuple[str, str], int] = {}   # Telegram updates by (command, outcome: ok, forbidden, stranger)


class NodeCollector:
    def __init__(self, node) -> None:
        self.node = node

    def collect(self):
        n = self.node
        msgs = CounterMetricFamily("tapeshot_feed_messages", "Market messages by symbol and outcome",
                                   labels=["symbol", "kind"])
        gauges = GaugeMetricFamily("tapeshot_book_health", "1 when true", labels=["symbol", "check"])
        lag = GaugeMetricFamily("tapeshot_book_age_seconds", "Exchange time since the last applied diff",
                                labels=["symbol"])
        now = n.now()
        for sf in n.feed.symbols:
            for kind, v in (("diffs", sf.n_diffs), ("trades", sf.n_trades), ("tickers", sf.n_tickers),
                            ("gaps", sf.n_gaps), ("resyncs", sf.n_resyncs), ("bad", sf.n_bad),
                            ("ticker_checks", sf.ticker_checks), ("ticker_mismatches", sf.ticker_mismatches)):
                msgs.add_metric([sf.symbol, kind], v)
            gauges.add_metric([sf.symbol, "synced"], float(sf.synced))
            gauges.add_metric([sf.symbol, "crossed"], float(sf.book.crossed))
            lag.add_metric([sf.symbol], max(0.0, (now - sf.last_book_ns) / 1e9))
        yield msgs
        yield gauges
        yield lag
        orders = GaugeMetricFamily("tapeshot_orders", "Orders by state", labels=["state"])
        counts: dict[str, int] = {}
        for o in list(n.oms.orders.values()):
            counts[o.state.value] = counts.get(o.state.value, 0) + 1
        for state, c in counts.items():
            orders.add_metric([state], c)
        yield orders
        pos = GaugeMetricFamily("tapeshot_position", "Signed position (base units)", labels=["symbol"])
        pnl = GaugeMetricFamily("tapeshot_realised_pnl_usdt", "Realised PnL net of fees", labels=["symbol"])
        for sym, p in list(n.oms.positions.positions.items()):
            pos.add_metric([sym], float(p.qty))
            pnl.add_metric([sym], float(p.realized - p.fees))
        yield pos
        yield pnl
        yield GaugeMetricFamily("tapeshot_venue_clock_offset_ms", "Venue clock minus ours, as last measured",
                                value=n.rest.time_offset_ms)
        yield GaugeMetricFamily("tapeshot_trading_state", "0 active, 1 reducing, 2 halted",
                                value=["ACTIVE", "REDUCING", "HALTED"].index(n.risk.state.value))
        refused = CounterMetricFamily("tapeshot_risk_refused", "Orders refused by risk", labels=["reason"])
        for reason, c in n.risk.refused.items():
            refused.add_metric([reason], c)
        yield refused
        kills = CounterMetricFamily("tapeshot_kills", "Kill switch trips by trigger", labels=["trigger"])
        for trigger, c in list(KILLS.items()):
            kills.add_metric([trigger], c)
        yield kills
        tg = CounterMetricFamily("tapeshot_telegram_commands", "Telegram commands by command and outcome "
                                 "(ok: served; forbidden: a viewer asked to trade; stranger: not a registered user)",
                                 labels=["command", "outcome"])
        for (command, outcome), c in list(TELEGRAM.items()):
            tg.add_metric([command, outcome], c)
        yield tg
        for h in HISTOGRAMS.values():
            yield h.family()


async def serve_metrics(node, port: int, host: str = "127.0.0.1") -> Callable:
    """Start the exporter thread; returns an async stopper."""
    registry = CollectorRegistry()
    registry.register(NodeCollector(node))
    server, thread = start_http_server(port, addr=host, registry=registry)

    async def stop() -> None:
        server.shutdown()
        thread.join(timeout=5)

    return stop


__all__ = ["HISTOGRAMS", "KILLS", "TELEGRAM", "Histogram", "NodeCollector", "serve_metrics", "threading"]
