"""The running engine: builds the components for live Binance or the sim venue, starts and stops them.

Data path: market bytes -> ``Feed`` (scan, depth sync, book, signals) -> ``IntentRunner`` (the algorithms) ->
risk gateway -> ``OrderManager`` -> venue. Beside it: ``Protections`` (TP/SL), the guards (KillSwitch trigger,
loop lag, venue clock, dead man's switch), start-up reconciliation (``oms.reconcile``: decisions the runner
carries out), and the ``Cockpit``, the command surface the front ends call. Off the hot path: the journal
writer thread, progress to the trader through the ``Bus``, metrics.

The node does nothing else: every trading decision lives in those components. It answers the ``Commands``
methods by handing them to its cockpit (``node.submit`` is ``node.cockpit.submit``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

import aiohttp
import orjson

from engine import affinity, guards
from engine.bus import Bus
from engine.cockpit import Cockpit
from engine.config import Config, journal_path
from engine.errors import ConfigError, StateError, TapeshotError, VenueError
from engine.feed import make_feed
from engine.feed.instruments import from_exchange_info
from engine.feed.live import MarketData
from engine.intent_runner import IntentRunner
from engine.intents import Intent, IntentKind, parse
from engine.keys import Credentials, Secret, sim_credentials, verify_with_venue
from engine.kill import KillAction, Watchdog, kill_callable
from engine.model import Instrument, Side
from engine.oms.journal import Journal, claim, venue_id
from engine.oms.journal import lock as lock_journal
from engine.oms.manager import OrderManager
from engine.oms.orders import Fill, Order
from engine.oms.reconcile import reconcile
from engine.protect import Protections
from engine.risk import KillSwitch, RiskGateway, TradingState
from engine.venues.binance.gateway import OrderGateway
from engine.venues.binance.rest import MAINNET_REST, TESTNET_REST, BinanceRest
from engine.venues.binance.streams import MAINNET_WS, TESTNET_WS, UserStream
from engine.venues.binance.transport import market_stream_class, ws_api_class
from engine.venues.binance.wsapi import MAINNET_WS_API, TESTNET_WS_API

log = logging.getLogger(__name__)
MS = 1_000_000
COMMANDS = frozenset({"submit", "preview", "quote", "status", "positions", "orders", "pnl", "limits", "health", "kill",
                      "reduce", "resume", "add_rationale", "report", "chart", "scorecard", "seen",
                      "remember"})


class Node:
    """Owns the components and their lifecycle; ``start`` then ``stop`` (which cancels and confirms)."""

    def __init__(self, cfg: Config | None = None) -> None:
        self.cfg = cfg or Config()
        self.bus = Bus()
        self.session: aiohttp.ClientSession | None = None
        self.venue = None                      # the embedded SimVenue, when we run one
        self.instruments: dict[str, Instrument] = {}
        self.risk = RiskGateway(self.cfg.risk)
        self.killswitch = KillSwitch(self.cfg.risk)
        self.io_cpus: set[int] | None = None   # where the journal writer runs (engine.affinity; set by run_engine)
        self.busy_poll = False                 # poll while intents work (engine.busy_poll; set by run_engine)
        self._spinner = affinity.Spinner(lambda: self.busy_poll and self.runner is not None and self.runner.armed())
        self._tasks: list[asyncio.Task] = []
        self.run_id = f"{int(time.time() * 1000) % 10**10:010d}"
        self.clock: Callable[[], int] = time.time_ns
        self.started = asyncio.Event()
        self.tape_ended = asyncio.Event()      # a sim venue's tape has ended (no more market data; not with loop)
        self.reconciliation: list[str] = []
        self.reconcile_differences: dict[str, int] = {}   # by kind (order, position, fill), for the metrics
        self.shutdown_report: list[str] = []
        self.archived_journal: Path | None = None       # an earlier embedded-sim session's journal, moved aside
        self._journal_lock: int | None = None
        self.loop_lag = guards.LoopLag()
        self.runner: IntentRunner | None = None
        self.cockpit: Cockpit | None = None
        self.rest: Any = None
        self.ws_api: Any = None

    def __getattr__(self, name: str) -> Any:
        """The ``Commands`` methods are the cockpit's (built by ``start``)."""
        cockpit = self.__dict__.get("cockpit")
        if name in COMMANDS and cockpit is not None:
            return getattr(cockpit, name)
        raise AttributeError(f"{type(self).__name__!r} has no attribute {name!r}")

    def subscribe(self, callback: Any) -> Callable[[], None]:
        return self.bus.subscribe(callback)

    @property
    def intents(self) -> dict:
        return self.runner.intents if self.runner is not None else {}

    @property
    def loop_lag_s(self) -> float:
        return self.loop_lag.last_s

    @property
    def spins(self) -> int:
        """Event-loop iterations spent polling (``busy_poll``)."""
        return self._spinner.spins

    @property
    def _spinning(self) -> bool:
        return self._spinner.running

    def now(self) -> int:
        """Exchange time (ns): the replay's clock on the embedded sim, wall clock + server offset live."""
        return self.clock()

    def paths(self) -> tuple[Path, Path]:
        e = self.cfg.engine
        return (journal_path(self.cfg),
                Path(e.control_socket).expanduser() if e.control_socket else Path(e.home).expanduser() / "control.sock")

    # ---- start --------------------------------------------------------------------------------------------

    async def start(self) -> None:
        self._journal_lock = lock_journal(self.paths()[0])        # before anything reads or touches it
        self.session = aiohttp.ClientSession()
        rest_url, ws_url, ws_api_url, creds = await self._venue()
        self.rest = BinanceRest(rest_url, self.session, creds, recv_window_ms=self.cfg.venue.recv_window_ms)
        await self.rest.sync_time()
        await verify_with_venue(self.rest)                        # a refused key stops here, named, never shown
        info = await self.rest.exchange_info()
        self.rest.limiter.configure(info.get("rateLimits", []))
        available = from_exchange_info(info)
        self.instruments = self._pick_instruments(available)
        context = self._context_instruments(available)
        state = self._open_journal(rest_url)
        kind = self.cfg.venue.transport
        self.ws_api = ws_api_class(kind)(ws_api_url, self.session, creds, self.rest.now_ms, self.rest.limiter,
                                         self.cfg.venue.recv_window_ms) if self.cfg.venue.use_ws_api else None
        self.oms = OrderManager(OrderGateway(self.rest, self.ws_api), self.journal, self.instruments,
                                self._on_order, lambda: self.now() // MS)     # the exchange clock: the sim's tape too
        self.oms.load(state.orders, state.fills)
        self._check_model()
        self.feed = make_feed([*self.instruments.values(), *context], self.cfg)
        self._build(state)
        self.runner.models = getattr(self, "_models", {})
        for sym, rt in self.runner.models.items():
            rt.check(self.feed[sym])                  # other [signals] parameters than the model's: refused now
        on_update = self.runner.on_update_observing if self.runner.models else self.runner.on_update
        self.md = MarketData(self.feed, self.rest, ws_url, self.session, on_update,
                             stream_cls=market_stream_class(kind), clock=self.now)
        self.user = UserStream(ws_url, self.rest, self.session, self.oms.on_user_event,
                               on_connect=self._user_connected)
        self._tasks += [asyncio.create_task(self.md.run()), asyncio.create_task(self.user.run())]
        await self._wait_ready()
        self._start_outcomes(state)
        await self._reconcile(state)
        self._start_guards()
        if self.cfg.venue.kind == "sim" and self.venue is None:
            self._tasks.append(asyncio.create_task(self._watch_external_tape()))
        self.started.set()

    def _open_journal(self, rest_url: str) -> Any:
        path, _ = self.paths()
        venue = venue_id(rest_url, self.cfg.venue.kind == "sim", self.venue is not None)
        self.archived_journal = claim(path, venue)
        self.journal = Journal(path, cpus=self.io_cpus)
        state = self.journal.load()
        self.journal.start()
        if state.kv.get("venue") != venue:
            self.journal.kv_set("venue", venue)
        return state

    def _build(self, state: Any) -> None:
        """The runner, the protections and the cockpit, collaborators handed in."""
        self.runner = IntentRunner(self.cfg, self.bus, self.journal, self.oms, self.risk, self.feed,
                                   self.instruments, self.now, self.run_id, on_armed=self._spinner.start)
        self.runner.keys.update({k: v for k, v in state.keys.items() if v})
        self.protect = Protections(self.bus, self.journal, self.oms, self.feed, self.instruments, self.now,
                                   self.run_id, Protections.from_kv(state.kv))
        self.runner.on_fill = self.protect.sync
        self.cockpit = Cockpit(self.cfg, self.bus, self.runner, self.protect, self.oms, self.journal, self.risk,
                               self.killswitch, {k for k, v in state.keys.items() if not v})
        self.cockpit.venue_state = self.venue_state

    def _start_guards(self) -> None:
        """The timers and watchers beside the hot path: the algorithm timer, the KillSwitch's triggers
        (``engine.guards``) and its action with the watchdog thread (``engine.kill``), loop lag, the venue clock,
        the dead man's switch."""
        kill = kill_callable(self.cockpit.kill)
        self._tasks += [
            asyncio.create_task(self.runner.run_timer()),
            asyncio.create_task(guards.watch_equity(self.killswitch, self.equity, kill, clock=self.now,
                                                    save=lambda snap: self.journal.kv_set(KillSwitch.KV_KEY, snap))),
            asyncio.create_task(guards.watch_triggers(self._kill_watchers(), kill,
                                                      lambda: self.risk.state is TradingState.HALTED)),
            asyncio.create_task(self.loop_lag.run()),
            asyncio.create_task(guards.keep_clock(self.rest, self.cfg.venue.time_sync_s))]
        self._start_kill_action()
        if self.cfg.venue.countdown_cancel_ms:
            self._tasks.append(asyncio.create_task(
                guards.dead_mans_switch(self.rest, list(self.instruments), self.cfg.venue.countdown_cancel_ms)))
        if self.ws_api is not None:
            self.ws_api.on_clock_error = self.rest.clock_suspect.set

    def _kill_watchers(self) -> list[Any]:
        """The KillSwitch's automatic triggers, each handed what it reads (``risk.kill_*``; 0 turns one off)."""
        from engine.metrics import HISTOGRAMS

        r = self.cfg.risk
        rows = self.journal.query("SELECT value FROM kv WHERE key=?", (KillSwitch.KV_KEY,))
        if rows:
            self.killswitch.restore(orjson.loads(rows[0]["value"]))
        out: list[Any] = []
        if r.kill_book_unhealthy_ms:
            out.append(guards.BookWatch(self.feed, self._working_on, self.now, self.cfg.feed.stale_ms * MS,
                                        r.kill_book_unhealthy_ms / 1000))
        if r.kill_latency_ms:
            out.append(guards.LatencyWatch(HISTOGRAMS["order_round_trip"], lambda: self.loop_lag.last_s,
                                           r.kill_latency_ms / 1000, r.kill_latency_s, self.feed_latency_s))
        if r.kill_reject_streak:
            streak = guards.RejectStreak(r.kill_reject_streak)
            self.oms.on_order = streak.wrap(self.oms.on_order)
            out.append(streak)
        if r.kill_unreachable_s:
            out.append(self._reach_watch(r.kill_unreachable_s))
        return out

    def venue_state(self) -> dict[str, str]:
        """Each connection to the venue: ``up`` or ``down``."""
        up = {"market stream": self.md.stream.connected.is_set(), "user stream": self.user.connected.is_set()}
        if self.ws_api is not None:
            up["order socket"] = _socket_up(self.ws_api)
        return {k: "up" if v else "DOWN" for k, v in up.items()}

    def connections(self) -> dict[str, bool]:
        """Each connection to the venue, up or not, for the metrics and /readyz (read from any thread): the
        market stream, the user data stream, REST (its last request answered) and, when used, the WebSocket
        API's order socket."""
        up = {"market": self.md.stream.connected.is_set(), "user": self.user.connected.is_set(),
              "rest": self.rest.answering}
        if self.ws_api is not None:
            up["order"] = _socket_up(self.ws_api)
        return up

    def _reach_watch(self, limit_s: float) -> guards.ReachWatch:
        probes = {"market stream": self.md.stream.connected.is_set, "user stream": self.user.connected.is_set}
        retry = {}
        if self.ws_api is not None:
            api = self.ws_api
            probes["order socket"] = lambda: _socket_up(api)
            retry["order socket"] = lambda: self.bus.spawn(_quietly(api.connect()))
        return guards.ReachWatch(probes, limit_s, retry)

    def _working_on(self, symbol: str) -> bool:
        """Orders or an intent work on ``symbol`` (what the book and stall triggers guard)."""
        return any(li.state.live for li in self.runner.active.get(symbol, ())) or \
            any(o.symbol == symbol and o.state.open and o.purpose in ("entry", "exit")
                for o in (self.oms.orders.get(c) for c in list(self.oms.live)) if o is not None)

    def _start_kill_action(self) -> None:
        """The venue-side kill action and the watchdog thread that can do its cancel-all while the loop is
        blocked; the loop stamps its heartbeat every 20 ms."""
        r = self.cfg.risk
        wd = Watchdog(self.rest.base_url, self.rest.creds, list(self.instruments), self.rest.now_ms,
                                        self.risk.core, r.kill_watchdog_ms, r.kill_loop_stall_ms,
                                        self.cfg.venue.recv_window_ms)
        loop = asyncio.get_running_loop()
        wd.on_kill = lambda trigger, reason: loop.call_soon_threadsafe(self._kill_soon, trigger, reason)
        self.cockpit.killer = KillAction(r, self.rest, self.runner, self.oms, self.protect, self.feed,
                                         self.instruments, self.risk, wd)
        self.cockpit.watchdog = self.watchdog = wd
        wd.start()
        self._tasks.append(asyncio.create_task(self._heartbeat(wd)))

    def _kill_soon(self, trigger: str, reason: str) -> None:
        if not self.killswitch.tripped or self.risk.state is not TradingState.HALTED:
            self.bus.spawn(self.cockpit.kill(reason, user="watchdog", trigger=trigger))

    async def _heartbeat(self, wd: Watchdog) -> None:
        try:
            await wd.heartbeat(lambda: any(self._working_on(s) for s in self.instruments))
        finally:
            wd._stop.set()

    def feed_latency_s(self) -> float:
        """The newest market event's latency: our exchange-clock estimate when it arrived minus its event time
        (s). Live that is the wire and the venue's publishing; on an external sim, whose clock the feed sets, ~0."""
        f = self.feed
        if not f.exchange_ns:
            return 0.0
        received = self.now() - (time.monotonic_ns() - f.exchange_seen_ns)
        return max(0.0, (received - f.exchange_ns) / 1e9)

    def equity(self) -> Decimal:
        return guards.equity(self.oms, self.feed, self.instruments)

    async def _venue(self) -> tuple[str, str, str, Credentials]:
        v = self.cfg.venue
        if v.kind == "binance":
            rest = v.rest_url or (TESTNET_REST if v.testnet else MAINNET_REST)
            ws = v.ws_url or (TESTNET_WS if v.testnet else MAINNET_WS)
            api = v.ws_api_url or (TESTNET_WS_API if v.testnet else MAINNET_WS_API)
            self.clock = lambda: time.time_ns() + self.rest.time_offset_ms * MS
            return rest, ws, api, self._credentials()
        from engine.venues.sim.server import DEFAULT_API_KEY, DEFAULT_API_SECRET
        creds = Credentials(DEFAULT_API_KEY, Secret(DEFAULT_API_SECRET))
        if v.rest_url:                                   # an external sim venue (tapeshot sim): its tape's time
            creds = _external_sim_credentials(v.rest_url, self.cfg.engine.home) or creds
            ws = v.ws_url or v.rest_url.replace("http", "ws", 1)
            self.clock = self._market_clock(v.speed)
            return v.rest_url, ws, v.ws_api_url or f"{ws}/ws-fapi/v1", creds
        from engine.feed.recording import sample_paths
        from engine.venues.sim import SimExchange
        from engine.venues.sim.server import SimVenue, SimVenueConfig
        self.venue = SimVenue(SimExchange(list(v.data) or sample_paths()),
                              SimVenueConfig(speed=v.speed, loop_on_end=v.loop))
        self.venue.on_tape_end = self._tape_lap
        await self.venue.start()
        self.clock = self.venue.exchange_now                   # the replay's exchange time
        return self.venue.rest_url, self.venue.ws_url, self.venue.ws_api_url, creds

    def _market_clock(self, speed: float) -> Callable[[], int]:
        """An external sim's clock: the newest exchange time seen plus the time since, at its replay speed."""
        if speed == 1.0:
            return lambda: self.feed.market_now(time.monotonic_ns())

        def now() -> int:
            f = self.feed
            return f.exchange_ns + int((time.monotonic_ns() - f.exchange_seen_ns) * speed) if f.exchange_ns else 0
        return now

    def _credentials(self) -> Credentials:
        """The environment's key if it has one, else the profile from the encrypted key file."""
        from engine.keys import KeyStore

        if os.environ.get("TAPESHOT_API_KEY"):
            return Credentials.from_env()
        store = KeyStore(Path(self.cfg.engine.home).expanduser() / "keys.enc")
        phrase = os.environ.get("TAPESHOT_KEY_PASSPHRASE")
        if not store.path.exists() or not phrase:
            raise ConfigError("no API key: set TAPESHOT_API_KEY/SECRET, or store one with 'tapeshot keys add' and "
                              "set TAPESHOT_KEY_PASSPHRASE")
        return store.credentials(self.cfg.venue.key_profile, Secret(phrase))

    def _pick_instruments(self, available: dict[str, Instrument]) -> dict[str, Instrument]:
        """The traded instruments, from the venue's exchangeInfo: ``venue.symbols``, else every symbol a sim venue
        lists (its tape's), else BTCUSDT."""
        wanted = list(self.cfg.venue.symbols) or (list(available) if self.cfg.venue.kind == "sim" else ["BTCUSDT"])
        missing = [s for s in wanted if s not in available]
        if missing:
            raise ConfigError(f"the venue does not list {missing}")
        return {s: available[s] for s in wanted}

    def _check_model(self) -> None:
        """``[model] path``: the hybrid's learned model, loaded now for the symbols it was trained for (the others
        run the hybrid on the kernels); a file that fits no traded symbol, or none at all, stops the start."""
        path = self.cfg.model.path
        if not path:
            return
        from engine.learn.runtime import ModelRuntime, cached_model

        fits, why = [], []
        for sym in self.instruments:
            try:
                cached_model(path, sym)
                fits.append(sym)
            except ConfigError as exc:
                why.append(str(exc))
        self._models = {sym: ModelRuntime(path, sym) for sym in fits}
        if not fits:
            raise ConfigError(f"[model] path: no traded symbol can use it: {why[0] if why else path}")
        others = [s for s in self.instruments if s not in fits]
        log.info("model %s drives the hybrid on %s%s", path, ", ".join(fits),
                 f"; {', '.join(others)} use the kernels" if others else "")

    def _context_instruments(self, available: dict[str, Instrument]) -> list[Instrument]:
        """The context symbol (``dataset.context_symbol``), fed but not traded, when the engine trades others
        and the venue lists it (else nothing, said once in the log)."""
        sym = self.cfg.dataset.context_symbol
        if not sym or sym in self.instruments:
            return []
        if sym not in available:
            log.warning("dataset: the venue does not list %s: intents record no cross-symbol context", sym)
            return []
        return [available[sym]]

    def _start_outcomes(self, state: Any) -> None:
        """The decision dataset's horizons (``engine.dataset.outcomes``): those the journal left pending are
        watched again, or marked missing when they came due while the engine was down."""
        from engine.dataset.outcomes import Outcomes

        sym = self.cfg.dataset.context_symbol
        self.runner.context_feed = self.feed[sym] if sym and sym in {sf.symbol for sf in self.feed.symbols} else None
        self.runner.outcomes = Outcomes(self.journal, self.feed, self.now, self.cfg.feed.stale_ms * MS)
        lost = self.runner.outcomes.restore(state.outcomes_pending)
        if lost:
            log.warning("dataset: %d outcome horizons came due while the engine was down: marked missing", lost)

    async def _wait_ready(self, timeout: float = 30.0) -> None:
        loop = asyncio.get_running_loop()
        end = loop.time() + timeout
        traded = [sf for sf in self.feed.symbols if sf.symbol in self.instruments]   # not the context symbol
        while not (self.user.connected.is_set() and all(sf.synced for sf in traded)):
            if loop.time() > end or any(t.done() for t in self._tasks):
                raise StateError(f"not ready after {loop.time() - end + timeout:.0f} s: {'; '.join(self._not_ready())}")
            await asyncio.sleep(0.02)

    def _not_ready(self) -> list[str]:
        """What keeps the start-up waiting, named: a stream task that died (with its error), the user stream not
        connected, each book not synced and why (``MarketData.not_ready``)."""
        out = []
        for name, task in (("market data", self._tasks[0]), ("user stream", self._tasks[1])):
            if task.done() and not task.cancelled() and task.exception() is not None:
                out.append(f"{name} stopped: {task.exception()}")
        if not self.user.connected.is_set():
            out.append("user stream not connected (listenKey or WebSocket refused?)")
        return out + self.md.not_ready() or ["unknown"]

    def _tape_lap(self, lap: int) -> None:
        """The embedded sim venue's tape ended (``lap`` 0) or starts again (``loop``; lap n): said on every front
        end; at the end, every book is marked unsynced with the reason, so an intent is refused at once."""
        if lap:
            self.bus.emit_all("risk", f"the recorded tape has ended: replaying it again (lap {lap}); the books "
                                      "resync from its snapshot")
            return
        self._market_over("the recorded tape has ended")

    def _market_over(self, why: str) -> None:
        if self.tape_ended.is_set():
            return
        outcomes = self.runner.outcomes if self.runner is not None else None
        if outcomes is not None:
            outcomes.on_timer(self.now())                   # what came due until now is still observed, live
        for sf in self.feed.symbols:
            sf.unavailable = why
            sf.request_resync()
            if outcomes is not None:
                outcomes.market_over(sf.symbol, why)
        self.tape_ended.set()
        self.bus.emit_all("risk", f"{why}: no more market data; new intents are refused")

    async def _watch_external_tape(self, every_s: float = 1.0) -> None:
        """An external sim venue (``tapeshot sim``): its ``/sim/status`` says when its tape has ended."""
        url = self.rest.base_url.rstrip("/") + "/sim/status"
        while not self.tape_ended.is_set():
            await asyncio.sleep(every_s)
            try:
                async with self.session.get(url, timeout=aiohttp.ClientTimeout(total=2)) as r:
                    st = await r.json() if r.status == 200 else {}
            except (aiohttp.ClientError, TimeoutError, ValueError):
                continue
            if st.get("finished"):
                self._market_over("the sim venue's recorded tape has ended")

    # ---- events between the components --------------------------------------------------------------------

    def _on_order(self, o: Order, fill: Fill | None) -> None:
        """The OMS moved an order: the protections' or an intent's (fills also re-sync TP/SL)."""
        if o.purpose in ("tp", "sl"):
            self.protect.on_order(o, fill)
        elif not self.runner.on_order(o, fill) and fill is not None:
            self.protect.sync(o.symbol)

    async def _user_connected(self) -> None:
        """The user stream (re)connected: after a drop, events may be lost; live orders ask the venue."""
        if self.started.is_set():
            self.bus.spawn(self.oms.resync_live())

    # ---- reconciliation -----------------------------------------------------------------------------------

    async def _reconcile(self, state: Any) -> None:
        """After a restart: the venue's truth taken, interrupted intents resumed or closed, every difference
        reported (console, log, Telegram), nothing guessed."""
        margin = 4 * int(self.cfg.execution.round_trip_ms * MS)
        rec = await reconcile(self.rest, self.oms, state.intents, self.instruments, self.now(), margin)
        for c in rec.close:
            self.runner.close(c.intent_id, c.state, c.executed, c.note, state.intents.get(c.intent_id))
        await self.journal.sync()
        for r in rec.resume:
            self.runner.resume(r.intent_id, r.row, r.left, r.executed, self._as_sent(r.row))
        await self.protect.sync_all()
        await self.journal.sync()
        self.reconciliation = rec.notes
        for kind, n in rec.differences.items():
            self.reconcile_differences[kind] = self.reconcile_differences.get(kind, 0) + n
        for line in rec.notes:
            log.warning("reconcile: %s", line)
            self.bus.emit_all("risk", f"reconcile: {line}", event="reconcile")

    def _as_sent(self, row: dict) -> Intent:
        """The intent exactly as the trader sent it (its text parsed again), for status and the report."""
        d = row["data"]
        with contextlib.suppress(TapeshotError, ValueError):
            intent = parse(row.get("text") or "", {"window_s": d["window_s"], "algo": d["algo"],
                                                   "max_slippage_bps": d["max_slippage_bps"],
                                                   "on_deadline": "complete" if d["complete"] else "cancel"})
            if intent.kind in (IntentKind.ENTER, IntentKind.EXIT):
                return intent
        inst = self.instruments[d["symbol"]]
        return Intent(IntentKind.EXIT if d["kind"] == "exit" else IntentKind.ENTER, d["symbol"], Side(d["side"]),
                      inst.lots_to_qty(d["qty_lots"]), window_s=d["window_s"],
                      max_slippage_bps=d["max_slippage_bps"], algo=d["algo"],
                      on_deadline="complete" if d["complete"] else "cancel", rationale=d.get("rationale", ""),
                      raw=row.get("text") or "")

    # ---- stop ---------------------------------------------------------------------------------------------

    async def stop(self, timeout_s: float = 10.0) -> list[str]:
        """Cancel every working intent and order, confirm with the venue, then close everything; returns what
        could not be cancelled. Bounded by ``timeout_s`` (the dead man's switch stays armed until then)."""
        try:
            await self._stop(timeout_s)
        finally:
            if self._journal_lock is not None:
                os.close(self._journal_lock)
                self._journal_lock = None
        return self.shutdown_report

    async def _stop(self, timeout_s: float) -> None:
        self.busy_poll = False                        # the spinner stops at its next check
        if self.runner is not None and self.rest is not None:
            try:
                self.shutdown_report = await asyncio.wait_for(self.runner.shutdown(self.rest), timeout_s * 0.7)
            except TimeoutError:
                self.shutdown_report = ["shutdown: the venue did not confirm the cancels in time"]
            for line in self.shutdown_report:
                log.error("shutdown: %s", line)
                self.bus.emit_all("risk", f"shutdown: {line}")
        if self.cfg.venue.countdown_cancel_ms and self.rest is not None:
            for sym in self.instruments:
                with contextlib.suppress(VenueError, TimeoutError):
                    await asyncio.wait_for(self.rest.countdown_cancel_all(sym, 0), 1.0)
        await self._close()

    async def _close(self) -> None:
        oms_tasks = list(getattr(getattr(self, "oms", None), "_tasks", ()))   # resolutions would outlive the session
        for t in [*self._tasks, *oms_tasks]:
            t.cancel()
        if self._tasks:                     # never wait for ever: a task that swallowed its cancel is named
            done, stuck = await asyncio.wait(self._tasks, timeout=3.0)
            for t in done:                  # retrieved, so none is reported "never retrieved" later
                if not t.cancelled() and t.exception() is not None:
                    log.debug("shutdown: task %s had failed: %r", t.get_coro(), t.exception())
            for t in stuck:
                log.error("shutdown: task %s did not stop when cancelled", t.get_coro())
        for closer in (getattr(self, "md", None), getattr(self, "user", None), self.ws_api):
            if closer is not None:
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(closer.close(), 2.0)
        if hasattr(self, "journal"):
            self.journal.close()
        if self.session is not None:
            await self.session.close()
        if self.venue is not None:
            await self.venue.stop()


async def _quietly(coro: Any) -> None:
    """Run ``coro``; a venue or connection error is only logged (a reconnection attempt)."""
    try:
        await coro
    except (VenueError, OSError) as exc:
        log.debug("reconnect: %s", exc)


def _external_sim_credentials(rest_url: str, home: str) -> Credentials | None:
    """The key for an external sim venue: TAPESHOT_API_KEY / TAPESHOT_API_SECRET when set and the venue is on
    this machine (``tapeshot sim`` serves loopback only: the key never leaves it), else the key file's ``sim``
    profile, else None (the sim's default key)."""
    from urllib.parse import urlsplit

    host = urlsplit(rest_url).hostname or ""
    if os.environ.get("TAPESHOT_API_KEY") and (host == "localhost" or host == "::1" or host.startswith("127.")):
        return Credentials.from_env()
    return sim_credentials(home)


def _socket_up(api: Any) -> bool:
    """The WebSocket API connection is open (picows: ``connected``; aiohttp: an open ``_ws``)."""
    up = getattr(api, "connected", None)
    if isinstance(up, bool):
        return up
    ws = getattr(api, "_ws", None)
    return ws is not None and not ws.closed
