"""Replay: the engine's own feed, signals and algorithms against the sim venue's matching core, in process.

No sockets, one explicit clock: exchange time. Every crossing between venue and engine waits its modelled
latency (the sim's ``LatencyModel``): market messages reach the feed ``feed_ns`` after the venue publishes them,
orders reach the matching engine ``entry_ns`` after the algorithm decides, and order events come back ``ack_ns``
after they happen. The engine fetches its own depth snapshot the way it does live. Algorithms see only what has
reached them (no look-ahead). Deterministic for a given tape, intents and ``SimConfig.seed``.
"""

from __future__ import annotations

import contextlib
import heapq
import itertools
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path

from engine.config import Config
from engine.errors import ConfigError
from engine.execution import Arrival, Tracker, make_algo, make_spec
from engine.feed import make_feed
from engine.intents import Intent
from engine.venues.sim import SimConfig, SimExchange, SimReject, SimUnavailable
from strategies.base import BUY, Algo, Cancel, OrderUpdate, Place

ACCOUNT = "replay"
TIMER_NS = 20_000_000
MS = 1_000_000
FINAL = {"FILLED", "CANCELED", "EXPIRED", "REJECTED", "EXPIRED_IN_MATCH"}


@dataclass
class ReplayIntent:
    """An intent to run at exchange time ``time_ns`` with algorithm ``algo``."""

    time_ns: int
    intent: Intent
    algo: str
    key: str = ""


@dataclass
class Run:
    """One intent's execution inside a replay."""

    req: ReplayIntent
    algo: Algo | None = None
    tracker: Tracker | None = None
    chosen: str = ""
    error: str = ""
    report: dict | None = None
    cids: set[str] = field(default_factory=set)


class Replay:
    def __init__(self, paths: list[str | Path], sim_cfg: SimConfig | None = None, cfg: Config | None = None,
                 usdt: Decimal = Decimal("100000000"), leverage: int = 100, markouts: bool = True,
                 algo_factory=None) -> None:
        self.ex = SimExchange(paths, cfg=sim_cfg or SimConfig())
        self.ex.open_account(ACCOUNT, usdt, leverage)
        self.cfg = cfg or Config()
        self.feed = make_feed(list(self.ex.instruments.values()), self.cfg)
        self.lat = self.ex.latency
        self.markouts = markouts
        self.make_algo = algo_factory or make_algo
        self._q: list[tuple[int, int, str, object]] = []
        self._seq = itertools.count()
        self._ids = itertools.count(1)
        self._by_cid: dict[str, Run] = {}
        self._active: dict[str, list[Run]] = {}          # symbol -> runs deciding or observing markouts
        self._snap_pending: set[str] = set()
        self.now = 0
        self.runs: list[Run] = []

    # ---- scheduling ---------------------------------------------------------------------------------------

    def _at(self, t: int, kind: str, obj: object) -> None:
        heapq.heappush(self._q, (t, next(self._seq), kind, obj))

    def _new_id(self) -> str:
        return f"rp-{next(self._ids)}"

    def run(self, intents: list[ReplayIntent]) -> list[Run]:
        """Replay the whole tape with these intents; returns one ``Run`` per intent (reports filled in)."""
        for req in sorted(intents, key=lambda r: r.time_ns):
            run = Run(req)
            self.runs.append(run)
            self._at(req.time_ns, "intent", run)
        while True:
            t_md = self.ex.next_time()
            t_q = self._q[0][0] if self._q else None
            if t_md is None and t_q is None:
                break
            if t_md is not None and (t_q is None or t_md <= t_q):
                self._venue_until(t_md)
            else:
                t, _, kind, obj = heapq.heappop(self._q)
                self.now = t
                getattr(self, f"_on_{kind}")(t, obj)
        for run in self.runs:
            if run.report is None and run.tracker is not None:
                self._finish(run)
        return self.runs

    def _venue_until(self, t: int) -> None:
        """Advance the venue to ``t``; what it publishes travels to the engine with feed / ack latency."""
        self.now = max(self.now, t)
        for m in self.ex.advance(t):
            self._at(m.time_ns + self.lat.feed_ns(m), "md", m)
        for account, ev in self.ex.drain_user_events():
            if account == ACCOUNT:
                self._at(t + self.lat.ack_ns(), "ue", ev)

    # ---- market data --------------------------------------------------------------------------------------

    def _on_md(self, t: int, m) -> None:
        raw = b'{"stream":"' + m.stream.encode() + b'","data":' + m.payload + b"}"
        r = self.feed.on_message(raw)
        sf = self.feed.last
        if sf is None:
            return
        if r == 0 and sf.needs_snapshot and sf.symbol not in self._snap_pending:
            self._snap_pending.add(sf.symbol)
            self._at(t + self.lat.entry_ns(), "snapreq", sf.symbol)
        if r > 0:
            for run in list(self._active.get(sf.symbol, ())):
                run.tracker.on_book(sf, t)
                if run.algo.finished:
                    self._maybe_done(run)
                else:
                    self._route(run, run.algo.on_market(sf, t), t)

    def _on_snapreq(self, t: int, symbol: str) -> None:
        self._venue_until(t)
        try:
            snap = self.ex.depth_snapshot(symbol, 1000)
        except SimUnavailable:
            self._at(t + 100 * MS, "snapreq", symbol)
            return
        import orjson

        self._at(t + self.lat.ack_ns(), "snap", (symbol, orjson.dumps(snap)))

    def _on_snap(self, t: int, obj: tuple[str, bytes]) -> None:
        symbol, raw = obj
        self._snap_pending.discard(symbol)
        self.feed.on_snapshot(symbol, raw)

    # ---- intents and algorithms ---------------------------------------------------------------------------

    def _on_intent(self, t: int, run: Run) -> None:
        it = run.req.intent
        try:
            sf = self.feed[it.symbol]
        except KeyError:
            run.error = f"{it.symbol} is not on the tape"
            return
        if not sf.synced:
            if t - run.req.time_ns > 5_000 * MS:
                run.error = "book never synced"
                return
            self._at(t + 50 * MS, "intent", run)
            return
        try:
            arrival = Arrival.stamp(sf, t)
            inst = self.ex.instruments[it.symbol]
            rtt = self.lat.entry_ns() + self.lat.ack_ns()
            pos = next((p.qty_lots for p in self.ex.positions(ACCOUNT) if p.symbol == it.symbol), 0)
            spec = make_spec(it, inst, arrival, pos, round_trip_ns=max(rtt, 2 * MS), timer_ns=TIMER_NS)
            run.algo, _why = self.make_algo(run.req.algo, spec, sf, t, self._new_id)
            run.chosen = run.algo.name
        except ConfigError as exc:
            run.error = str(exc)
            return
        run.tracker = Tracker(spec, arrival, run.chosen)
        self._active.setdefault(it.symbol, []).append(run)
        self._route(run, run.algo.on_market(sf, t), t)
        self._at(t + TIMER_NS, "timer", run)

    def _on_timer(self, t: int, run: Run) -> None:
        if run.algo.finished:
            return
        sf = self.feed[run.req.intent.symbol]
        self._route(run, run.algo.on_timer(sf, t), t)
        if not run.algo.finished:
            self._at(t + TIMER_NS, "timer", run)

    def _route(self, run: Run, actions: list, t: int) -> None:
        for act in actions:
            if isinstance(act, Place):
                run.cids.add(act.cid)
                run.tracker.orders.append(act.cid)
                self._by_cid[act.cid] = run
            self._at(t + self.lat.entry_ns(), "act", (run, act))
        self._maybe_done(run)

    def _on_act(self, t: int, obj: tuple[Run, object]) -> None:
        run, act = obj
        self._venue_until(t)
        sym = run.req.intent.symbol
        if isinstance(act, Place):
            try:
                self.ex.place(ACCOUNT, sym, "BUY" if act.side == BUY else "SELL", "LIMIT" if act.price is not None
                              else "MARKET", act.qty, act.price, act.tif, reduce_only=act.reduce_only,
                              client_order_id=act.cid)
            except SimReject as exc:
                self._at(t + self.lat.ack_ns(), "up", (run, OrderUpdate(act.cid, "REJECTED", final=True), str(exc)))
        elif isinstance(act, Cancel):
            with contextlib.suppress(SimReject):   # already final: its final event is on its way
                self.ex.cancel(ACCOUNT, sym, client_order_id=act.cid)
        self._venue_until(t)

    def _on_ue(self, t: int, ev: dict) -> None:
        if ev.get("e") != "ORDER_TRADE_UPDATE":
            return
        o = ev["o"]
        run = self._by_cid.get(o["c"])
        if run is None:
            return
        inst = self.ex.instruments[o["s"]]
        filled = price = 0
        if o["x"] == "TRADE":
            filled = inst.qty_to_lots(o["l"])
            price = inst.price_to_ticks(o["L"])
            run.tracker.fills.append((t, filled, price, bool(o["m"]), Decimal(o.get("n") or "0")))
        self._on_up(t, (run, OrderUpdate(o["c"], o["X"], filled, price or None, o["X"] in FINAL), ""))

    def _on_up(self, t: int, obj: tuple[Run, OrderUpdate, str]) -> None:
        run, up, _why = obj
        sf = self.feed[run.req.intent.symbol]
        self._route(run, run.algo.on_order(up, sf, t), t)

    def _maybe_done(self, run: Run) -> None:
        tr = run.tracker
        if run.algo.finished and tr.end_ns is None:
            tr.end_ns = self.now
        if tr.end_ns is not None and (not self.markouts or tr.markouts_done):
            self._finish(run)

    def _finish(self, run: Run) -> None:
        if run.report is not None:
            return
        inst = self.ex.instruments[run.req.intent.symbol]
        run.report = run.tracker.report(inst)
        lst = self._active.get(run.req.intent.symbol, [])
        if run in lst:
            lst.remove(run)
