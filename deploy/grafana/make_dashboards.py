"""Write Tapeshot's three Grafana boards (latency, trading, health) into ``deploy/grafana/dashboards/``.

The JSON files are what Grafana provisions; this script is where they are edited: change a panel here, run
``python deploy/grafana/make_dashboards.py`` and commit both (the deploy tests fail when the two disagree).
Every query reads only the metrics of ``docs/metrics.md``; every panel says what it shows and what is healthy,
and carries a Grafana unit id. ``python deploy/check_dashboards.py`` checks the result.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

OUT = Path(__file__).resolve().parent / "dashboards"
DS = {"type": "prometheus", "uid": "tapeshot-prom"}          # deploy/grafana/provisioning/datasources/prometheus.yml
USDT = "suffix: USDT"
SYM = 'symbol=~"$symbol"'
RI = "$__rate_interval"

# latency budgets (seconds), shown as threshold lines; the alert rules use the same numbers
BUDGET = {"feed": 0.1, "msg_to_decision": 250e-6, "decision_to_send": 250e-6, "order": 0.05, "cancel": 0.05,
          "loop": 0.02}


def q(expr: str, legend: str = "", ref: str = "A", fmt: str = "time_series") -> dict:
    """One Prometheus query."""
    t = {"refId": ref, "datasource": DS, "expr": expr, "legendFormat": legend or "__auto", "range": True,
         "instant": False, "format": fmt}
    if fmt == "heatmap":
        t["interval"] = ""
    return t


def _panel(kind: str, title: str, desc: str, targets: list[dict], unit: str, w: int, h: int, **extra) -> dict:
    """Any panel: its queries lettered A, B, ...; ``defaults`` and ``options`` go where Grafana reads them."""
    p = {"type": kind, "title": title, "description": desc, "datasource": DS,
         "gridPos": {"x": 0, "y": 0, "w": w, "h": h},
         "fieldConfig": {"defaults": {"unit": unit, **extra.pop("defaults", {})}, "overrides": []},
         "options": extra.pop("options", {}), "targets": [dict(t, refId=chr(65 + i)) for i, t in enumerate(targets)]}
    p.update(extra)
    return p


def _thresholds(*steps: tuple[float | None, str]) -> dict:
    """Absolute thresholds from (value, colour) steps, the first with value None (the base)."""
    return {"mode": "absolute", "steps": [{"value": v, "color": c} for v, c in steps]}


def ts(title: str, desc: str, targets: list[dict], unit: str, w: int = 12, h: int = 8, *, budget: float | None = None,
       bars: bool = False, stack: bool = False, minimum: float | None = None) -> dict:
    """A time series panel (a dashed red line at ``budget`` when given)."""
    custom = {"drawStyle": "bars" if bars else "line", "lineWidth": 1, "fillOpacity": 80 if bars else 10,
              "showPoints": "never", "spanNulls": False, "stacking": {"mode": "normal" if stack else "none"},
              "thresholdsStyle": {"mode": "dashed" if budget is not None else "off"}}
    defaults: dict = {"custom": custom, "color": {"mode": "palette-classic"}}
    defaults["thresholds"] = (_thresholds((None, "transparent"), (budget, "red")) if budget is not None
                              else _thresholds((None, "green")))
    if minimum is not None:
        defaults["min"] = minimum
    return _panel("timeseries", title, desc, targets, unit, w, h, defaults=defaults,
                  options={"legend": {"displayMode": "table", "placement": "right", "calcs": ["lastNotNull", "max"],
                                      "showLegend": True},
                           "tooltip": {"mode": "multi", "sort": "desc"}})


def quantiles(metric: str, by: str = "", selector: str = "") -> list[dict]:
    """p50, p90 and p99 of a histogram (per ``by`` label when given)."""
    labels = f"le, {by}" if by else "le"
    legend = f"{{{{{by}}}}} " if by else ""
    sel = f"{{{selector}}}" if selector else ""
    return [q(f"histogram_quantile({p}, sum by ({labels}) (rate({metric}_bucket{sel}[{RI}])))", f"{legend}p{n}")
            for p, n in ((0.5, 50), (0.9, 90), (0.99, 99))]


def new_or_increase(counter: str, by: str) -> str:
    """Events per interval of a counter whose series appear with their first event (label values not known in
    advance: reject codes, refusal reasons): a series born inside the interval counts in full, an older one by its
    increase (``increase`` alone would miss the event that created the series)."""
    return f"sum by ({by}) (({counter} unless {counter} offset {RI}) or increase({counter}[{RI}]))"


def heatmap(title: str, desc: str, metric: str, selector: str = "", w: int = 12, h: int = 8) -> dict:
    """A heatmap of a histogram's buckets (observations per bucket per interval)."""
    sel = f"{{{selector}}}" if selector else ""
    target = q(f"sum by (le) (increase({metric}_bucket{sel}[{RI}]))", "{{le}}", fmt="heatmap")
    return _panel("heatmap", title, desc, [target], "s", w, h, options={
        "calculate": False, "cellGap": 1, "cellValues": {"unit": "short"},
        "color": {"mode": "scheme", "scheme": "Oranges", "steps": 64, "exponent": 0.5, "fill": "dark-orange",
                  "reverse": False, "scale": "exponential"},
        "filterValues": {"le": 1e-9}, "legend": {"show": True}, "rowsFrame": {"layout": "auto"},
        "tooltip": {"mode": "single", "yHistogram": True, "showColorScale": False},
        "yAxis": {"axisPlacement": "left", "reverse": False, "unit": "s"}})


def stat(title: str, desc: str, targets: list[dict], unit: str, w: int = 4, h: int = 4, *,
         mappings: list | None = None, steps: tuple = ((None, "green"),), graph: bool = False) -> dict:
    """A single-number panel, coloured by ``steps`` (value, colour) or by its value mappings."""
    return _panel("stat", title, desc, targets, unit, w, h,
                  defaults={"mappings": mappings or [], "thresholds": _thresholds(*steps),
                            "color": {"mode": "thresholds"}},
                  options={"reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False},
                           "colorMode": "background" if mappings else "value", "graphMode": "area" if graph else "none",
                           "justifyMode": "auto", "textMode": "auto", "orientation": "auto"})


def bars(title: str, desc: str, targets: list[dict], unit: str, w: int = 12, h: int = 8) -> dict:
    """A bar gauge: one bar per series, its last value."""
    return _panel("bargauge", title, desc, targets, unit, w, h,
                  defaults={"thresholds": _thresholds((None, "blue")), "color": {"mode": "thresholds"}, "min": 0},
                  options={"reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False},
                           "orientation": "horizontal", "displayMode": "basic", "showUnfilled": True,
                           "valueMode": "color", "namePlacement": "auto"})


def timeline(title: str, desc: str, targets: list[dict], mappings: list, w: int = 12, h: int = 8) -> dict:
    """A state timeline: each series a band coloured by its value mapping."""
    return _panel("state-timeline", title, desc, targets, "none", w, h,
                  defaults={"mappings": mappings, "thresholds": _thresholds((None, "green")),
                            "color": {"mode": "thresholds"}, "custom": {"fillOpacity": 80, "lineWidth": 0}},
                  options={"showValue": "auto", "mergeValues": True, "rowHeight": 0.8, "alignValue": "left",
                           "legend": {"showLegend": False}, "tooltip": {"mode": "single"}})


def values(*pairs: tuple[str, str, str]) -> list[dict]:
    """A value mapping: (value, text, colour)..."""
    return [{"type": "value", "options": {v: {"text": t, "color": c, "index": i} for i, (v, t, c) in enumerate(pairs)}}]


STATE = values(("0", "ACTIVE", "green"), ("1", "REDUCING", "orange"), ("2", "HALTED", "red"))
YES_NO = values(("1", "yes", "green"), ("0", "NO", "red"))
SYNCED = values(("1", "synced", "green"), ("0", "UNSYNCED", "red"))
CONNECTED = values(("1", "connected", "green"), ("0", "DOWN", "red"))


def layout(panels: list[dict]) -> list[dict]:
    """Place panels left to right, top to bottom, on Grafana's 24 columns; number them."""
    x = y = row_h = 0
    for i, p in enumerate(panels, 1):
        g = p["gridPos"]
        if x + g["w"] > 24:
            x, y, row_h = 0, y + row_h, 0
        g["x"], g["y"] = x, y
        x, row_h = x + g["w"], max(row_h, g["h"])
        p["id"] = i
    return panels


def board(uid: str, title: str, description: str, panels: list[dict], links_to: list[str]) -> dict:
    """A board with the ``symbol`` variable and links to its siblings."""
    return {
        "uid": uid, "title": title, "description": description, "tags": ["tapeshot"], "editable": True,
        "schemaVersion": 39, "version": 1, "refresh": "10s", "time": {"from": "now-1h", "to": "now"},
        "timezone": "utc", "graphTooltip": 1, "fiscalYearStartMonth": 0, "liveNow": False,
        "annotations": {"list": [{"builtIn": 1, "datasource": {"type": "grafana", "uid": "-- Grafana --"},
                                  "enable": True, "hide": True, "iconColor": "rgba(0, 211, 255, 1)",
                                  "name": "Annotations & Alerts", "type": "dashboard"}]},
        "links": [{"type": "dashboards", "tags": ["tapeshot"], "asDropdown": False, "title": "Tapeshot boards",
                   "includeVars": True, "keepTime": True}] if links_to else [],
        "templating": {"list": [{
            "name": "symbol", "label": "Symbol", "type": "query", "datasource": DS,
            "definition": "label_values(tapeshot_book_age_seconds, symbol)",
            "query": {"query": "label_values(tapeshot_book_age_seconds, symbol)", "refId": "symbol"},
            "refresh": 2, "multi": True, "includeAll": True, "allValue": ".*", "sort": 1,
            "current": {"selected": True, "text": ["All"], "value": ["$__all"]}}]},
        "panels": layout(panels),
    }


def latency() -> dict:
    """Percentiles and heatmaps of every latency histogram."""
    feed, m2d = "tapeshot_feed_latency_seconds", "tapeshot_msg_to_decision_seconds"
    d2s, rtt = "tapeshot_decision_to_send_seconds", "tapeshot_order_round_trip_seconds"
    crt, lag = "tapeshot_cancel_round_trip_seconds", "tapeshot_loop_lag_seconds"
    panels = [
        ts("Feed latency by symbol (p50 / p90 / p99)",
           "Exchange event time (the message's E/T field) to the moment the engine received it, per symbol, all "
           "streams. It is the network path plus the venue-to-host clock offset (see 'Venue clock offset' on the "
           "Health board: a drifting clock shows up here first). Healthy: p99 under 100 ms (red line) and flat on a "
           "host near the venue; single-digit ms there is normal. A rising p99 with a normal p50 is queueing; "
           "everything rising together is the network or the clock. Alert: TapeshotFeedLatencyOverBudget.",
           quantiles(feed, "symbol", SYM), "s", budget=BUDGET["feed"]),
        heatmap("Feed latency heatmap", "How many market messages arrived with each latency (buckets from 1 µs to "
                "10 s), per interval, for the selected symbols. Healthy: one tight band in the low milliseconds; a "
                "second band or a smear upwards means bursts are queued (venue side, network or our receive loop).",
                feed, SYM),
        ts("Feed latency p99 by stream", "p99 of the feed latency per stream (depth diffs, trades, bookTickers, mark "
           "price) over the selected symbols. Healthy: the streams close together, under 100 ms; one stream far "
           "above the others points at that stream's connection (Health board: venue connections).",
           [q(f"histogram_quantile(0.99, sum by (le, stream) (rate({feed}_bucket{{{SYM}}}[{RI}])))",
              "{{stream}} p99")], "s", w=24, h=7, budget=BUDGET["feed"]),
        ts("Message to decision (p50 / p90 / p99)", "Bytes received to the algorithm's decision: scan, depth sync, "
           "book update, signals and the strategy step, per symbol (sampled). This is the engine's own hot path. "
           "Healthy: tens of microseconds, p99 under 250 µs (red line); spikes here with a normal loop lag are "
           "heavy messages (snapshots, bursts), spikes with loop lag are the host (CPU contention, GC).",
           quantiles(m2d, "symbol", SYM), "s", budget=BUDGET["msg_to_decision"]),
        heatmap("Message to decision heatmap", "Hot-path time per message, by bucket, over the selected symbols. "
                "Healthy: one band in the tens of microseconds; a band in the milliseconds means the loop was "
                "interrupted (CPU, another process on the core).", m2d, SYM),
        ts("Decision to send (p50 / p90 / p99)", "Algorithm decision to the order's bytes on the socket: the C "
           "risk check, order framing and signing, the send call. Healthy: p99 under 250 µs (red line); more "
           "means the order socket is backed up or the host is contended.",
           quantiles(d2s), "s", budget=BUDGET["decision_to_send"]),
        heatmap("Decision to send heatmap", "Decision-to-wire time by bucket. Healthy: one narrow band in the tens "
                "of microseconds.", d2s),
        ts("Order round trip by type (p50 / p90 / p99)", "Order sent to the venue's answer (ack or reject), per "
           "order type (limit_gtx post-only, limit_ioc, limit_gtc, market, stop, take_profit). It is what the "
           "deadline rule budgets for (execution.round_trip_ms). Healthy: p99 under 50 ms (red line) near the venue; "
           "the kill switch trips when it stays over risk.kill_latency_ms for kill_latency_s. "
           "Alert: TapeshotOrderRoundTripOverBudget.",
           quantiles(rtt, "type"), "s", budget=BUDGET["order"]),
        heatmap("Order round trip heatmap", "Order round trips by bucket, all order types. Healthy: one band of a "
                "few milliseconds; a second band at hundreds of ms is the venue throttling or a slow path (retries, "
                "rate limits).", rtt),
        ts("Cancel round trip (p50 / p90 / p99)", "Cancel sent to the venue's answer. Ladders and the deadline rule "
           "cancel and replace, so a slow cancel leaves stale orders resting. Healthy: close to the order round "
           "trip, p99 under 50 ms (red line). Alert: TapeshotCancelRoundTripOverBudget.",
           quantiles(crt), "s", budget=BUDGET["cancel"]),
        heatmap("Cancel round trip heatmap", "Cancel round trips by bucket. Healthy: one band of a few "
                "milliseconds.", crt),
        ts("Event-loop lag (p50 / p90 / p99)", "How late the event loop woke a 50 ms timer: the time the engine "
           "could not react to anything. Healthy: p99 under 1 ms on a pinned core; over 20 ms (red line) the "
           "engine is starved (CPU contention, swapping, a blocking call) and every latency above suffers. "
           "Alert: TapeshotLoopLag; a blocked loop while orders work trips the kill switch (the watchdog).",
           quantiles(lag), "s", budget=BUDGET["loop"]),
        heatmap("Event-loop lag heatmap", "Loop wake-up lateness by bucket. Healthy: everything in the lowest "
                "buckets (microseconds); any cell at 100 ms and above is a stall worth a look in the log.", lag),
    ]
    return board("tapeshot-latency", "Tapeshot · Latency",
                 "Percentiles and heatmaps of every latency the engine measures, from the exchange's timestamp to "
                 "the venue's answer.", panels, ["trading", "health"])


def trading() -> dict:
    """Intents, fills, orders, PnL, position and the drawdown against the kill switch's limit."""
    dd_fraction = "tapeshot_drawdown_usdt / (tapeshot_drawdown_limit_usdt > 0)"
    panels = [
        stat("Trading state", "ACTIVE trades; REDUCING lets only flat and TP/SL out (the reduce command); HALTED: "
             "the kill switch tripped (by hand or by a trigger) and nothing new goes out until resume. Healthy: "
             "ACTIVE. Alert: TapeshotKillSwitchTripped.", [q("tapeshot_trading_state", "state")], "none",
             mappings=STATE),
        stat("Working intents", "Intents executing right now (each a sniper, ladder or hybrid working inside its "
             "window). Healthy: 0 when the trader is idle; one or two while trading; stuck above 0 long after "
             "windows end means an intent did not finish.", [q("tapeshot_working_intents", "working")], "none"),
        stat("Open orders", "Orders live at the venue, all symbols. Healthy: 0 when nothing works (TP/SL are "
             "close-position orders and count here); a count that stays up with no working intent is an order to "
             "check.", [q(f"sum(tapeshot_open_orders{{{SYM}}})", "open")], "none"),
        stat("Equity (session)", "The kill switch's equity measure: realised PnL net of fees plus unrealised, in "
             "USDT. Healthy: whatever the market gives; watch the drawdown next to it.",
             [q("tapeshot_equity_usdt", "equity")], USDT, graph=True),
        _panel("gauge", "Drawdown of its limit", "Drawdown from the equity peak as a share of the kill switch's "
               "limit (risk.max_drawdown). At 100 % the kill switch trips, cancels everything and halts. Healthy: "
               "under 50 %; at 80 % TapeshotDrawdownNearLimit warns. Empty when the limit is off (0).",
               [q(dd_fraction, "of limit")], "percentunit", 4, 4,
               defaults={"min": 0, "max": 1, "thresholds": _thresholds((None, "green"), (0.5, "orange"), (0.8, "red")),
                         "color": {"mode": "thresholds"}},
               options={"reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False},
                        "showThresholdMarkers": True, "showThresholdLabels": False}),
        stat("Net PnL (session)", "Realised PnL net of fees plus unrealised PnL, over all symbols, USDT: what the "
             "session made or lost so far, fees in. Red below zero.",
             [q("sum(tapeshot_realised_pnl_usdt) + sum(tapeshot_unrealised_pnl_usdt)", "net")], USDT,
             steps=((None, "red"), (0, "green")), graph=True),
        ts("Drawdown against its limit", "Drawdown from the equity peak (peak equity minus equity, >= 0) and the "
           "kill switch's drawdown limit, USDT. Healthy: the drawdown well below the limit line; when it reaches "
           "the limit the kill switch trips.",
           [q("tapeshot_drawdown_usdt", "drawdown"), q("tapeshot_drawdown_limit_usdt", "limit")], USDT, minimum=0),
        ts("Equity", "The kill switch's equity measure over time (realised net of fees + unrealised), USDT.",
           [q("tapeshot_equity_usdt", "equity")], USDT),
        ts("Realised PnL by symbol (net of fees)", "Realised PnL per symbol after fees, USDT: closing trades' "
           "profit minus every fee paid. A slope down with flat prices is fees (taker-heavy executions).",
           [q(f"tapeshot_realised_pnl_usdt{{{SYM}}}", "{{symbol}}")], USDT),
        ts("Unrealised PnL by symbol", "The open position marked to the mid against its average entry, USDT. "
           "Zero when flat.", [q(f"tapeshot_unrealised_pnl_usdt{{{SYM}}}", "{{symbol}}")], USDT),
        ts("Position by symbol", "Signed position in the base asset (BTC, ETH...): long above zero, short below. "
           "Healthy: what the trader asked for; a position with no intent behind it after a restart is a "
           "reconciliation to read (Health board).", [q(f"tapeshot_position{{{SYM}}}", "{{symbol}}")], "none"),
        ts("Notional by symbol", "|position| x mark (or mid), USDT: the exposure the risk limits "
           "(max_position_notional) cap.", [q(f"tapeshot_notional_usdt{{{SYM}}}", "{{symbol}}")], USDT, minimum=0),
        ts("Intents ended by outcome", "Intents that ended per interval, by outcome: filled, partial, cancelled, "
           "expired, refused (pre-trade risk, halted, a dead feed) and failed. Healthy: mostly filled; refused "
           "ones carry their reason on the Health board (risk refusals); failed ones are worth reading in the "
           "journal (tapeshot journal).",
           [q(f"sum by (outcome) (increase(tapeshot_intents_total[{RI}]))", "{{outcome}}")], "short",
           bars=True, stack=True, minimum=0),
        bars("Intents since start by outcome", "Every intent since the engine started, by outcome (counters reset "
             "when the engine restarts).", [q("sum by (outcome) (tapeshot_intents_total)", "{{outcome}}")], "short"),
        ts("Fills by liquidity", "Fills per interval, maker (our resting order was hit) and taker (we crossed). "
           "Ladders should be mostly maker, snipers and deadline completions taker; taker fills pay the higher "
           "fee.", [q(f"sum by (liquidity) (increase(tapeshot_fills_total{{{SYM}}}[{RI}]))", "{{liquidity}}")],
           "short", w=8, bars=True, stack=True, minimum=0),
        stat("Maker share of fills", "Maker fills as a share of all fills since the engine started, selected "
             "symbols. Higher is cheaper; what is healthy depends on the algorithms used (ladders: most; "
             "snipers: few).",
             [q(f'(sum(tapeshot_fills_total{{liquidity="maker",{SYM}}}) or vector(0)) '
                f"/ sum(tapeshot_fills_total{{{SYM}}})", "maker")], "percentunit", w=4, h=8),
        bars("Fills since start by symbol and liquidity", "Every fill since the engine started, per symbol and "
             "liquidity (counters reset when the engine restarts).",
             [q(f"sum by (symbol, liquidity) (tapeshot_fills_total{{{SYM}}})", "{{symbol}} {{liquidity}}")], "short"),
        ts("Orders by type and result", "Order events per interval by order type and result (accepted, filled, "
           "partially filled, cancelled, expired, rejected). Healthy: accepted and filled dominate; cancelled is "
           "normal for ladders (they move); rejected should be rare (next panel).",
           [q(f"sum by (type, result) (increase(tapeshot_orders_total[{RI}]))", "{{type}} {{result}}")], "short",
           bars=True, stack=True, minimum=0),
        ts("Rejected orders by type", "Orders the venue refused, per interval and order type; the error codes are "
           "on the Health board. Healthy: zero. A streak trips the kill switch (risk.kill_reject_streak); "
           "TapeshotRejectSpike warns before.",
           [q(f'sum by (type) (increase(tapeshot_orders_total{{result="rejected"}}[{RI}]))', "{{type}}")], "short",
           bars=True, minimum=0),
        ts("Open orders by symbol", "Orders live at the venue per symbol. Healthy: a few while intents work, TP/SL "
           "otherwise, 0 when flat; the account cap is risk.max_open_orders.",
           [q(f"tapeshot_open_orders{{{SYM}}}", "{{symbol}}")], "none", minimum=0),
        ts("Orders by state", "Every order the OMS knows, by state (new, partially filled, filled, cancelled, "
           "expired, rejected): a picture of the order book we hold, including finished orders.",
           [q("sum by (state) (tapeshot_orders)", "{{state}}")], "none", minimum=0),
        ts("Working intents", "Intents executing over time. Healthy: each rise comes back to 0 within the intent's "
           "window (5 to 60 s).", [q("tapeshot_working_intents", "working")], "none", minimum=0),
        timeline("Trading state over time", "ACTIVE, REDUCING or HALTED over time: when a kill happened and how "
                 "long trading stayed halted.", [q("tapeshot_trading_state", "state")], STATE),
    ]
    return board("tapeshot-trading", "Tapeshot · Trading",
                 "What the engine did for the trader: intents, fills, orders, PnL, position, and the drawdown "
                 "against the kill switch's limit. No shortfall metric is exported: implementation shortfall is "
                 "in each execution report and the journal (tapeshot scorecard).", panels, ["latency", "health"])


def health() -> dict:
    """Feed, books, venue connections, rejects, refusals, kills and the engine itself."""
    panels = [
        stat("Exporter up", "Prometheus reaches the engine's metrics endpoint (1) or not (0). Healthy: yes. "
             "Alert: TapeshotExporterDown.", [q('up{job="tapeshot"}', "{{instance}}")], "none", mappings=YES_NO),
        stat("Ready", "1 when /readyz answers 200: every book synced, the venue reachable, the user stream live, "
             "trading not halted. Healthy: yes. Alert: TapeshotNotReady.", [q("tapeshot_ready", "ready")], "none",
             mappings=YES_NO),
        stat("Trading state", "ACTIVE, REDUCING (only flat and TP/SL) or HALTED (the kill switch). Healthy: ACTIVE.",
             [q("tapeshot_trading_state", "state")], "none", mappings=STATE),
        stat("Venue connections", "Each socket to the venue: the market stream, the user data stream and the "
             "REST/order API. Healthy: all connected. Alert: TapeshotVenueDisconnected; down for "
             "risk.kill_unreachable_s trips the kill switch.",
             [q("tapeshot_venue_connected", "{{socket}}")], "none", w=6, mappings=CONNECTED),
        stat("Books synced", "Each symbol's order book: synced (the diff chain unbroken since the snapshot) or "
             "resyncing. Healthy: all synced; intents on an unsynced book are refused. Alert: TapeshotBookUnsynced.",
             [q(f'tapeshot_book_health{{check="synced",{SYM}}}', "{{symbol}}")], "none", w=6, mappings=SYNCED),
        ts("Market messages per second", "Depth diffs, trades and bookTickers received per second, per symbol. "
           "Healthy: steady with the market (Binance sends depth every 100 ms per symbol); a drop to zero is a "
           "dead stream even if the socket looks open.",
           [q(f'sum by (symbol, kind) (rate(tapeshot_feed_messages_total{{kind=~"diffs|trades|tickers",{SYM}}}[{RI}]))',
              "{{symbol}} {{kind}}")], "cps", minimum=0),
        ts("Book age by symbol", "Exchange time since the last depth diff applied to each book. Healthy: well under "
           "a second (diffs every 100 ms); over 5 s (red line) the book is stale: intents on it are refused and, "
           "with orders working, the kill switch trips (risk.kill_book_unhealthy_ms). Alert: TapeshotBookStale.",
           [q(f"tapeshot_book_age_seconds{{{SYM}}}", "{{symbol}}")], "s", budget=5.0, minimum=0),
        ts("Gaps, resyncs and bad messages", "Per interval: depth-chain gaps (a diff whose pu is not the previous "
           "u), the resyncs they caused (a new REST snapshot) and messages the scanner refused. Healthy: zero; "
           "a few gaps an hour on a flaky network; steady gaps mean the connection drops messages. "
           "Alert: TapeshotFeedGaps.",
           [q(f'sum by (symbol, kind) (increase(tapeshot_feed_messages_total{{kind=~"gaps|resyncs|bad",{SYM}}}[{RI}]))',
              "{{symbol}} {{kind}}")], "short", bars=True, minimum=0),
        ts("BookTicker checks and mismatches", "Per interval: bookTickers checked against our book, and those that "
           "contradicted it (each triggers a resync live). Healthy: many checks, zero mismatches. "
           "Alert: TapeshotBookDisagreesWithTicker.",
           [q(f'sum by (symbol, kind) (increase(tapeshot_feed_messages_total{{kind=~"ticker_checks|ticker_mismatches",'
              f"{SYM}}}[{RI}]))", "{{symbol}} {{kind}}")], "short", minimum=0),
        timeline("Book health over time", "Per symbol: synced (green) or resyncing (red), and crossed (best bid at or "
                 "above best ask: red). Healthy: all green; short red bands are resyncs after a gap.",
                 [q(f'tapeshot_book_health{{check="synced",{SYM}}}', "{{symbol}} synced"),
                  q(f'1 - tapeshot_book_health{{check="crossed",{SYM}}}', "{{symbol}} not crossed")], YES_NO),
        timeline("Venue connections over time", "Each socket connected (green) or down (red) over time: "
                 "reconnects show as short red bands.", [q("tapeshot_venue_connected", "{{socket}}")], CONNECTED),
        ts("Venue rejects by error code", "Orders the venue refused per interval, by Binance error code (e.g. -2010 "
           "would immediately trigger / insufficient balance, -2019 margin insufficient, -1021 timestamp outside "
           "the recv window: check the clock, -4164 notional too small; 'other': a code we do not know). Healthy: "
           "zero. Alert: TapeshotRejectSpike.",
           [q(new_or_increase("tapeshot_venue_rejects_total", "code"), "{{code}}")], "short",
           bars=True, minimum=0),
        ts("Risk refusals by reason", "Orders and intents our own pre-trade checks refused per interval, by reason "
           "and level (intent: refused when it arrived, e.g. halted or over a notional limit; order: refused in C "
           "on the order path). Healthy: rare and explained (a trader asking too much); a stream of order-level "
           "refusals is a limit set too tight.",
           [q(new_or_increase("tapeshot_risk_refused_total", "reason, level"), "{{level}} {{reason}}")],
           "short", bars=True, minimum=0),
        bars("Kill switch activations by trigger", "Kill switch trips since the engine started, by trigger (manual, "
             "drawdown, daily_loss, book, latency, rejects, unreachable, loop_stall, signal...). Healthy: none; "
             "each one has a report in the journal and in Telegram.",
             [q("sum by (trigger) (tapeshot_kills_total)", "{{trigger}}")], "short"),
        ts("Event-loop lag p99", "p99 of how late the event loop woke a 50 ms timer. Healthy: under 1 ms; over 20 ms "
           "(red line) the engine is starved. Alert: TapeshotLoopLag. Percentiles and heatmap: Latency board.",
           [q(f"histogram_quantile(0.99, sum by (le) (rate(tapeshot_loop_lag_seconds_bucket[{RI}])))", "p99")], "s",
           budget=BUDGET["loop"], minimum=0),
        ts("Telegram commands", "Telegram commands per interval by command and outcome: ok (served), forbidden (a "
           "viewer asked to trade), stranger (not a registered user: answered once, nothing about the account). "
           "Healthy: ok; strangers mean the bot's name is out, forbidden a role to review.",
           [q(f"sum by (command, outcome) (increase(tapeshot_telegram_commands_total[{RI}]))",
              "{{command}} {{outcome}}")], "short", bars=True, minimum=0),
        bars("Reconciliation differences since start", "Differences start-up reconciliation found between the "
             "journal and the venue, by kind (order, position, fill): each was resolved and reported at start "
             "(tapeshot status, the log). Healthy: none; any after a crash are expected and explained in the "
             "report. Alert: TapeshotReconcileDifferences.",
             [q("sum by (kind) (tapeshot_reconcile_differences_total)", "{{kind}}")], "short"),
        ts("Venue clock offset", "The venue's clock minus ours, as last measured (ms). Feed latency includes it and "
           "signed requests fail with -1021 when it passes the recv window. Healthy: within a few ms (run NTP/"
           "chrony).", [q("tapeshot_venue_clock_offset_ms", "offset")], "ms", w=16),
        stat("Engine version", "The running engine's version (the version label of tapeshot_metrics_info; the value "
             "is always 1). After a deploy, check it changed.", [q("tapeshot_metrics_info", "{{version}}")], "none",
             w=8, h=8),
    ]
    return board("tapeshot-health", "Tapeshot · Health",
                 "Is the engine able to trade: exporter and readiness, the feed and the books, the venue's "
                 "connections and answers, our own refusals, kill switch trips, the event loop.", panels,
                 ["latency", "trading"])


BOARDS = {"latency.json": latency, "trading.json": trading, "health.json": health}


def render() -> dict[str, str]:
    """Each board file's text."""
    return {name: json.dumps(make(), indent=2, ensure_ascii=False) + "\n" for name, make in BOARDS.items()}


def main() -> int:
    """Write the boards; with ``--check``, only say whether the files are up to date (exit 1 if not)."""
    check = "--check" in sys.argv[1:]
    stale = []
    for name, text in render().items():
        path = OUT / name
        if check:
            if not path.exists() or path.read_text() != text:
                stale.append(name)
        else:
            OUT.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
            print(f"wrote {path}")
    for name in stale:
        print(f"{OUT / name} is not what make_dashboards.py writes: run it")
    return 1 if stale else 0


if __name__ == "__main__":
    sys.exit(main())
