"""The running engine: builds the components for live Binance or the sim venue and runs them in one event loop.

Data path: market bytes -> ``Feed`` (scan, depth sync, book, signals) -> the intents' algorithms -> risk gateway ->
order manager -> venue. Off the hot path: the journal writer thread, progress to the trader (console, control
endpoint, Telegram), metrics. The node implements ``engine.commands.Commands``.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

import aiohttp

from engine import affinity
from engine.commands import Progress, ProgressCallback, Submitted
from engine.config import Config, journal_path
from engine.errors import ConfigError, RiskRefused, StateError, TapeshotError, VenueError
from engine.execution import Arrival, Tracker, make_algo, make_spec
from engine.feed import make_feed
from engine.feed.instruments import from_exchange_info
from engine.feed.live import MarketData
from engine.intents import Intent, IntentKind, parse
from engine.keys import Credentials, Secret
from engine.model import Instrument
from engine.oms.journal import Journal, claim, venue_id
from engine.oms.journal import lock as lock_journal
from engine.oms.manager import OrderManager
from engine.oms.orders import Fill, Order, OState
from engine.risk import KillSwitch, RiskGateway, TradingState
from engine.venues.binance.gateway import OrderGateway
from engine.venues.binance.rest import MAINNET_REST, TESTNET_REST, BinanceRest
from engine.venues.binance.streams import MAINNET_WS, TESTNET_WS, UserStream
from engine.venues.binance.transport import market_stream_class, ws_api_class
from engine.venues.binance.wsapi import MAINNET_WS_API, TESTNET_WS_API
from ext.orders import GATE_DUPLICATE, GATE_NOT_CONNECTED, GATE_SENT
from strategies.base import BUY, Algo, Cancel, OrderUpdate, Place

log = logging.getLogger(__name__)
MS = 1_000_000
SEC = 1_000_000_000


@dataclass
class LiveIntent:
    """One intent as the engine runs it."""

    id: str
    intent: Intent
    source: str
    user: str
    state: str = "working"             # working / cancelling / done / cancelled
    algo: Algo | None = None
    tracker: Tracker | None = None
    report: dict | None = None
    finals_sent: set[str] = field(default_factory=set)
    inst: Instrument | None = None
    sf: Any = None                        # the symbol's ext.feed.SymbolFeed
    position: Any = None                  # the symbol's oms.positions.Position (the same object all along)
    tick_f: float = 0.0                   # tick and step as floats, for the order path's risk check
    step_f: float = 0.0
    gate: Any = None                      # its ext.orders.OrderGate once armed; False: the general path

    def __post_init__(self) -> None:
        if self.inst is not None:
            self.tick_f, self.step_f = float(self.inst.tick_size), float(self.inst.step_size)


class Node:
    def __init__(self, cfg: Config | None = None) -> None:
        self.cfg = cfg or Config()
        self.session: aiohttp.ClientSession | None = None
        self.venue = None                      # the embedded SimVenue, when we run one
        self.instruments: dict[str, Instrument] = {}
        self.risk = RiskGateway(self.cfg.risk)
        self.io_cpus: set[int] | None = None   # where the journal writer runs (engine.affinity; set by run_engine)
        self.busy_poll = False                 # poll while intents work (engine.busy_poll; set by run_engine)
        self._spinner = affinity.Spinner(lambda: self.busy_poll and self._armed())
        self._stale_ns = self.cfg.feed.stale_ms * MS
        self.killswitch = KillSwitch(self.cfg.risk)
        self.intents: dict[str, LiveIntent] = {}
        self.active: dict[str, list[LiveIntent]] = {}
        self.levels: dict[str, dict[str, Decimal | None]] = {}       # symbol -> {"tp": price, "sl": price}
        self._level_pos: dict[str, Decimal] = {}                        # position the levels were last synced at
        self._subs: list[ProgressCallback] = []
        self._tasks: list[asyncio.Task] = []
        self._ids = itertools.count(1)
        self._run_id = f"{int(time.time() * 1000) % 10**10:010d}"
        self.clock: Callable[[], int] = time.time_ns
        self.started = asyncio.Event()
        self.reconciliation: list[str] = []
        self.archived_journal: Path | None = None       # an earlier embedded-sim session's journal, moved aside
        self._journal_lock: int | None = None
        self.loop_lag_s = 0.0

    # ---- lifecycle ----------------------------------------------------------------------------------------

    def paths(self) -> tuple[Path, Path]:
        e = self.cfg.engine
        return (journal_path(self.cfg),
                Path(e.control_socket).expanduser() if e.control_socket else Path(e.home).expanduser() / "control.sock")

    async def start(self) -> None:
        self._journal_lock = lock_journal(self.paths()[0])        # before anything reads or touches it
        self.session = aiohttp.ClientSession()
        rest_url, ws_url, ws_api_url, creds = await self._venue()
        self.rest = BinanceRest(rest_url, self.session, creds, recv_window_ms=self.cfg.venue.recv_window_ms)
        await self.rest.sync_time()
        info = await self.rest.exchange_info()
        self.rest.limiter.configure(info.get("rateLimits", []))
        self.instruments = self._pick_instruments(from_exchange_info(info))
        path, _ = self.paths()
        venue = venue_id(rest_url, self.cfg.venue.kind == "sim", self.venue is not None)
        self.archived_journal = claim(path, venue)
        self.journal = Journal(path, cpus=self.io_cpus)
        state = self.journal.load()
        self.journal.start()
        if state.kv.get("venue") != venue:
            self.journal.kv_set("venue", venue)
        kind = self.cfg.venue.transport
        self.ws_api = ws_api_class(kind)(ws_api_url, self.session, creds, self.rest.now_ms, self.rest.limiter,
                                         self.cfg.venue.recv_window_ms) if self.cfg.venue.use_ws_api else None
        self.oms = OrderManager(OrderGateway(self.rest, self.ws_api), self.journal, self.instruments,
                                self._on_order, self.rest.now_ms)
        self.oms.load(state.orders, state.fills)
        self.levels = {k[3:]: {kk: (Decimal(v) if v else None) for kk, v in val.items()}
                       for k, val in state.kv.items() if k.startswith("tp/") and isinstance(val, dict)}
        self.feed = make_feed(list(self.instruments.values()), self.cfg)
        self.md = MarketData(self.feed, self.rest, ws_url, self.session, self._on_update,
                             stream_cls=market_stream_class(kind))
        self.user = UserStream(ws_url, self.rest, self.session, self._on_user_event)
        self._tasks += [asyncio.create_task(self.md.run()), asyncio.create_task(self.user.run())]
        await self._wait_ready()
        await self._reconcile(state)
        self._tasks += [asyncio.create_task(self._timer()), asyncio.create_task(self._guard()),
                        asyncio.create_task(self._loop_lag())]
        if self.cfg.venue.countdown_cancel_ms:
            self._tasks.append(asyncio.create_task(self._dead_mans_switch()))
        if self.ws_api is not None:
            self.ws_api.on_clock_error = self.rest.clock_suspect.set
        self._tasks.append(asyncio.create_task(self._clock_sync()))
        self.started.set()

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
            ws = v.ws_url or v.rest_url.replace("http", "ws", 1)
            self.clock = lambda: self.feed.market_now(time.monotonic_ns())
            return v.rest_url, ws, v.ws_api_url or f"{ws}/ws-fapi/v1", creds
        from engine.feed.recording import sample_path
        from engine.venues.sim import SimExchange
        from engine.venues.sim.server import SimVenue, SimVenueConfig
        self.venue = SimVenue(SimExchange(list(v.data) or [sample_path()]), SimVenueConfig(speed=v.speed))
        await self.venue.start()
        self.clock = self.venue.exchange_now                   # the replay's exchange time
        return self.venue.rest_url, self.venue.ws_url, self.venue.ws_api_url, creds

    def _credentials(self) -> Credentials:
        """The environment's key if it has one, else the profile from the encrypted key file."""
        import os

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
        wanted = list(self.cfg.venue.symbols) or (list(self.venue.ex.instruments) if self.venue else ["BTCUSDT"])
        missing = [s for s in wanted if s not in available]
        if missing:
            raise ConfigError(f"the venue does not list {missing}")
        return {s: available[s] for s in wanted}

    async def _wait_ready(self, timeout: float = 30.0) -> None:
        loop = asyncio.get_running_loop()
        end = loop.time() + timeout
        while not (self.user.connected.is_set() and all(sf.synced for sf in self.feed.symbols)):
            if loop.time() > end:
                raise StateError("market data or user stream not ready after 30 s")
            await asyncio.sleep(0.02)

    async def stop(self) -> None:
        try:
            await self._stop()
        finally:
            if self._journal_lock is not None:
                os.close(self._journal_lock)
                self._journal_lock = None

    async def _stop(self) -> None:
        self.busy_poll = False                        # the spinner stops at its next check
        for li in list(self.intents.values()):
            if li.state == "working" and li.algo is not None:
                self._route(li, li.algo.cancel_all())
        await asyncio.sleep(0.05)
        if self.cfg.venue.countdown_cancel_ms:
            for sym in self.instruments:
                with contextlib.suppress(VenueError):
                    await self.rest.countdown_cancel_all(sym, 0)
        for t in self._tasks:
            t.cancel()
        for t in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await t
        await self.md.close()
        await self.user.close()
        if self.ws_api is not None:
            await self.ws_api.close()
        self.journal.close()
        if self.session is not None:
            await self.session.close()
        if self.venue is not None:
            await self.venue.stop()

    # ---- time ---------------------------------------------------------------------------------------------

    def now(self) -> int:
        """Exchange time (ns): the replay's clock on the embedded sim, wall clock + server offset live."""
        return self.clock()

    # ---- the hot path -------------------------------------------------------------------------------------

    def _on_update(self, kind: int, sf) -> None:
        lst = self.active.get(sf.symbol)
        if not lst:
            return
        now = self.now()
        for li in list(lst):
            li.tracker.on_book(sf, now)
            if li.state == "working":
                self._route(li, li.algo.on_market(sf, now))
            self._maybe_finish(li)

    def _route(self, li: LiveIntent, actions: list) -> None:
        for act in actions:
            if isinstance(act, Place):
                self._place(li, act)
            elif isinstance(act, Cancel):
                self._spawn(self.oms.cancel(act.cid))

    def _place(self, li: LiveIntent, act: Place) -> None:
        """Risk, then the order goes out synchronously: its bytes are on the socket when this returns. With the
        picows WebSocket API both are one C call (``ext.orders.OrderGate``, armed once per intent); the ``Order``
        and its journal rows follow the write."""
        decision_ns = time.monotonic_ns()
        gate = li.gate if li.gate is not None else self._arm(li)
        buy = act.side == BUY
        now = self.clock()
        if not gate:
            code = self._check(li, act, buy, now)
        else:
            try:
                code = gate.fire(buy, act.qty, act.price or 0, act.tif, act.reduce_only, act.cid, now)
            except ValueError:
                code = GATE_NOT_CONNECTED            # not writable in C (nothing sent): the general path says why
            except (OSError, RuntimeError) as exc:   # the write failed part way: the outcome is the venue's to tell
                log.warning("order %s: WebSocket API write failed (%s): outcome unknown", act.cid, exc)
                code = GATE_SENT
        if code > 0:
            self._refuse(li, act, code, buy, now)
            return
        if code == GATE_DUPLICATE:
            raise StateError(f"order {act.cid} already exists")
        tif = act.tif if act.price is not None else None
        purpose = "exit" if li.intent.kind is IntentKind.EXIT else "entry"
        if code == GATE_SENT and gate:
            fut = self.oms.fired(li.inst, buy, act.qty, act.price, tif, act.reduce_only, act.cid, gate.rid,
                                 intent_id=li.id, purpose=purpose, decision_ns=decision_ns)
        else:                                        # risk passed; not sent yet: this path sends, waits or connects
            fut = self.oms.place_now(li.inst, buy, act.qty, act.price, tif, act.reduce_only, act.cid,
                                     intent_id=li.id, purpose=purpose, decision_ns=decision_ns)
        fut.add_done_callback(_log_task_error)
        li.tracker.orders.append(act.cid)
        if act.tag in ("snipe", "deadline", "now"):
            self._emit(li, "fired", f"{act.tag}: {'BUY' if buy else 'SELL'} {li.inst.lots_to_qty(act.qty)} up to "
                                    f"{None if act.price is None else li.inst.ticks_to_price(act.price)}")

    def _arm(self, li: LiveIntent) -> Any:
        """The intent's ``OrderGate`` (risk and order in one C call), or False when the session has none."""
        li.gate = self.oms.gate(li.inst, li.sf, li.position, self.risk.core, self._stale_ns) or False
        return li.gate

    def _check(self, li: LiveIntent, act: Place, buy: bool, now: int) -> int:
        """The pre-trade risk check alone (in C), for the general order path: 0 or a ``RISK_REASONS`` index (a
        duplicate client id is the OMS's to refuse: ``place_now`` raises ``StateError``)."""
        return self.risk.core.check_order(li.sf, buy, act.qty, act.price or 0, li.tick_f, li.step_f,
                                          li.position.qty_f, act.reduce_only, len(self.oms.live), now, self._stale_ns)

    def _refuse(self, li: LiveIntent, act: Place, code: int, buy: bool, now: int) -> None:
        """Risk refused ``act``: say why, and tell its algorithm it was rejected."""
        sf = li.sf
        exc = self.risk.refusal(code, li.inst.symbol, buy, act.qty * li.step_f,
                                None if act.price is None else act.price * li.tick_f, sf.book.mid * li.tick_f,
                                li.position.qty_f)
        self._emit(li, "error", f"order refused: {exc}")
        self._route(li, li.algo.on_order(OrderUpdate(act.cid, "REJECTED", final=True), sf, now))

    def _spawn(self, coro) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        task.add_done_callback(_log_task_error)

    def _on_order(self, o: Order, fill: Fill | None) -> None:
        """The OMS moved an order: tell its algorithm (fills once, the final state once it is settled)."""
        if o.purpose in ("tp", "sl"):
            if fill is not None:
                self._emit_all("tp_sl", f"{o.purpose.upper()} {o.symbol} filled {fill.qty} at {fill.price}")
            return
        li = self.intents.get(o.intent_id or "")
        if li is None or li.algo is None:
            if fill is not None:
                self._sync_levels(o.symbol)
            return
        sf = self.feed[o.symbol]
        now = self.now()
        inst = li.inst
        if fill is not None:
            li.tracker.fills.append((now, inst.qty_to_lots(fill.qty), inst.price_to_ticks(fill.price), fill.maker,
                                     fill.fee))
            up = OrderUpdate(o.client_order_id, o.state.value, inst.qty_to_lots(fill.qty),
                             inst.price_to_ticks(fill.price), False)
            self._route(li, li.algo.on_order(up, sf, now))
            self._emit(li, "fill", f"filled {fill.qty} at {fill.price} ({'maker' if fill.maker else 'taker'})")
            self._sync_levels(o.symbol)
        if o.state.final and not self.oms.needs_trades(o) and o.client_order_id not in li.finals_sent:
            li.finals_sent.add(o.client_order_id)
            self._route(li, li.algo.on_order(OrderUpdate(o.client_order_id, o.state.value, final=True), sf, now))
        self._maybe_finish(li)

    def _on_user_event(self, ev: dict) -> None:
        self.oms.on_user_event(ev)

    # ---- intents ------------------------------------------------------------------------------------------

    def _new_intent_id(self) -> str:
        return f"i{self._run_id}{next(self._ids):04d}"

    def _defaults(self) -> dict:
        e = self.cfg.execution
        return {"window_s": e.window_s, "max_slippage_bps": e.max_slippage_bps, "algo": e.algo,
                "on_deadline": e.on_deadline}

    async def submit(self, text: str, *, source: str, user: str) -> Submitted:
        intent = parse(text, self._defaults())
        if intent.kind in (IntentKind.ENTER, IntentKind.EXIT):
            return await self._execute(intent, source, user)
        if intent.kind in (IntentKind.TP, IntentKind.SL):
            return await self._set_level(intent, source, user)
        if intent.kind is IntentKind.CANCEL:
            return Submitted("", await self._cancel(intent.symbol))
        return Submitted("", await self.status(intent.symbol))

    def _instrument(self, symbol: str | None) -> Instrument:
        inst = self.instruments.get(symbol or "")
        if inst is None:
            raise ConfigError(f"{symbol} is not traded here (symbols: {', '.join(self.instruments)})")
        return inst

    async def _execute(self, intent: Intent, source: str, user: str) -> Submitted:
        inst = self._instrument(intent.symbol)
        sf = self.feed[inst.symbol]
        if self.risk.state is TradingState.HALTED:
            raise RiskRefused("halted", "trading is halted (kill switch); /resume first")
        if any(li.state == "working" for li in self.active.get(inst.symbol, [])):
            raise RiskRefused("busy", f"an intent is already working on {inst.symbol}: cancel it first")
        now = self.now()
        arrival = Arrival.stamp(sf, now)
        pos_lots = inst.qty_to_lots(abs(self.oms.positions.get(inst.symbol).qty))
        if self.oms.positions.get(inst.symbol).qty < 0:
            pos_lots = -pos_lots
        rtt = int(self.cfg.execution.round_trip_ms * MS)
        spec = make_spec(intent, inst, arrival, pos_lots, rtt, self.cfg.engine.timer_ms * MS)
        li = LiveIntent(self._new_intent_id(), intent, source, user, inst=inst, sf=sf,
                        position=self.oms.positions.get(inst.symbol))
        seq = itertools.count(1)
        algo, why = make_algo(intent.algo, spec, sf, now, lambda: f"{li.id}-{next(seq)}")
        li.algo, li.tracker = algo, Tracker(spec, arrival, algo.name)
        self.intents[li.id] = li
        self.journal.intent(li.id, now // MS, source, intent.raw, self._intent_record(li, arrival, why), "working")
        self.journal.decision(li.id, now // MS, "arrival", {"mid_ticks": arrival.mid_ticks, "bid": arrival.bid,
                                                            "ask": arrival.ask, "signals": arrival.signals,
                                                            "algo": algo.name, "why": why,
                                                            "rationale": intent.rationale})
        await self.journal.sync()
        self.active.setdefault(inst.symbol, []).append(li)
        self._spin_while_armed()
        echo = f"{intent.describe()} -> {algo.name} ({why}); cap {inst.fmt_price(spec.cap)}"
        self._emit(li, "accepted", echo)
        self._route(li, algo.on_market(sf, now))
        return Submitted(li.id, echo, {"mid": str(Decimal(repr(arrival.mid_ticks)) * inst.tick_size),
                                       "bid": arrival.bid, "ask": arrival.ask})

    def _intent_record(self, li: LiveIntent, arrival: Arrival, why: str) -> dict:
        s = li.algo.spec
        it = li.intent
        return {"kind": it.kind.value, "symbol": s.symbol, "side": s.side, "qty_lots": s.qty, "cap": s.cap,
                "arrival_ns": s.arrival_ns, "deadline_ns": s.deadline_ns, "complete": s.complete,
                "reduce_only": s.reduce_only, "limit": s.limit, "algo": li.algo.name, "why": why,
                "window_s": it.window_s, "max_slippage_bps": it.max_slippage_bps, "rationale": it.rationale,
                "source": li.source, "user": li.user, "mid_ticks": arrival.mid_ticks}

    def _maybe_finish(self, li: LiveIntent) -> None:
        """working/cancelling -> done/cancelled once the algorithm is finished and every order is settled; then,
        once the +30 s markout is in, publish the report again and stop watching."""
        if li.state in ("working", "cancelling"):
            if not li.algo.finished or any(not self._settled(self.oms.orders[c]) for c in li.tracker.orders
                                           if c in self.oms.orders):
                return
            li.state = "cancelled" if li.state == "cancelling" else "done"
            li.tracker.end_ns = li.tracker.end_ns or self.now()
            li.report = {**li.tracker.report(li.inst), "intent_id": li.id, "state": li.state,
                         "notes": [t for _, t in li.algo.log]}
            self._spawn(self._publish_report(li, "done"))
        elif li.tracker.markouts_done and li.report is not None and "markouts_final" not in li.report:
            li.report = {**li.report, **li.tracker.report(li.inst), "markouts_final": True}
            with contextlib.suppress(ValueError):
                self.active[li.inst.symbol].remove(li)
            self._spawn(self._publish_report(li, "markouts"))

    def _armed(self) -> bool:
        """An intent is working (or cancelling): an order may have to go at the next event."""
        return any(li.state in ("working", "cancelling") for lst in self.active.values() for li in lst)

    def _spin_while_armed(self) -> None:
        """With ``busy_poll``: keep the event loop polling (``affinity.Spinner``) until no intent works. Measured
        here, the order path's p50 2 us lower and its tail over 50 us about halved. Costs that core's whole time
        while an intent works; nothing else changes."""
        self._spinner.start()

    @property
    def spins(self) -> int:
        """Event-loop iterations spent polling (``busy_poll``)."""
        return self._spinner.spins

    @property
    def _spinning(self) -> bool:
        return self._spinner.running

    def _settled(self, o: Order) -> bool:
        return o.state.final and not self.oms.needs_trades(o)

    async def _publish_report(self, li: LiveIntent, kind: str) -> None:
        self.journal.intent_state(li.id, li.state, self.now() // MS, li.report)
        self.journal.decision(li.id, self.now() // MS, kind, li.report)
        await self.journal.sync()                     # durable before anyone is told it is done
        r = li.report
        text = (f"{r['side']} {r['filled']}/{r['requested']} {r['symbol']} avg {r['avg_price']} "
                f"shortfall {r['shortfall_bps']} bps (fees in), {r['algo']}, {r['time_to_fill_s']} s")
        if kind == "markouts":
            text = f"markouts {r['markouts_bps']}"
        self._emit(li, kind, text, r)

    async def _cancel(self, symbol: str | None) -> str:
        done = []
        for li in list(self.intents.values()):
            if li.state == "working" and (symbol is None or li.intent.symbol == symbol):
                li.algo.deadline_fired = li.algo._completed = True      # no completing order: cancel the rest
                self._route(li, li.algo.cancel_all())
                li.algo.finished = not li.algo.live
                li.state = "cancelling"
                done.append(li.id)
                self._emit(li, "cancelled", "cancelling the rest of the intent")
        return f"cancelling {', '.join(done)}" if done else "nothing working to cancel"

    # ---- TP / SL ------------------------------------------------------------------------------------------

    async def _set_level(self, intent: Intent, source: str, user: str) -> Submitted:
        inst = self._instrument(intent.symbol)
        kind = intent.kind.value
        price = intent.price
        if price is not None and price % inst.tick_size != 0:
            raise ConfigError(f"{kind} {price} is not on the {inst.tick_size} tick")
        pos = self.oms.positions.get(inst.symbol).qty
        mid = self.feed[inst.symbol].book.mid
        if price is not None and pos != 0 and mid == mid:
            mark = Decimal(repr(mid)) * inst.tick_size
            above = price > mark
            if (kind == "tp") != (above == (pos > 0)):
                where = "above" if (kind == "tp") == (pos > 0) else "below"
                raise ConfigError(f"{kind} {price} is on the wrong side: for a {'long' if pos > 0 else 'short'} "
                                  f"it must be {where} the market ({mark})")
        self.levels.setdefault(inst.symbol, {})[kind] = price
        self.journal.kv_set(f"tp/{inst.symbol}", {k: (str(v) if v is not None else None)
                                                   for k, v in self.levels[inst.symbol].items()})
        self.journal.decision(None, self.now() // MS, kind, {"symbol": inst.symbol, "price": str(price),
                                                             "source": source, "user": user,
                                                             "rationale": intent.rationale})
        await self.journal.sync()
        await self._sync_levels_now(inst.symbol)
        text = f"{kind.upper()} {inst.symbol} " + (f"at {price}" if price is not None else "removed")
        self._emit_all("tp_sl", text)
        return Submitted("", text)

    def _sync_levels(self, symbol: str) -> None:
        if self.levels.get(symbol):
            self._spawn(self._sync_levels_now(symbol))

    async def _sync_levels_now(self, symbol: str) -> None:
        """Keep one exchange-side close-position order per TP/SL level on the side that closes the position.
        Levels belong to a position: when it closes they are cleared (set before an entry, they wait for it)."""
        pos = self.oms.positions.get(symbol).qty
        was = self._level_pos.get(symbol, Decimal(0))
        self._level_pos[symbol] = pos
        if was != 0 and (pos == 0 or (pos > 0) != (was > 0)) and any(self.levels.get(symbol, {}).values()):
            self.levels[symbol] = {}
            self.journal.kv_set(f"tp/{symbol}", {})
            self._emit_all("tp_sl", f"{symbol} position closed: TP/SL cleared")
        for kind, order_type in (("tp", "TAKE_PROFIT_MARKET"), ("sl", "STOP_MARKET")):
            want = self.levels.get(symbol, {}).get(kind)
            side = "SELL" if pos > 0 else "BUY"
            live = [o for o in self.oms.orders.values() if o.symbol == symbol and o.purpose == kind and o.state.open]
            keep = [o for o in live if want is not None and pos != 0 and o.stop_price == want and o.side == side]
            for o in live:
                if o not in keep:
                    await self.oms.cancel(o.client_order_id)
            if want is None or pos == 0 or keep:
                continue
            cid = f"{kind}{self._run_id}{next(self._ids):04d}"
            order = Order(cid, symbol, side, order_type, abs(pos), None, None, want, reduce_only=True,
                          close_position=True, purpose=kind)
            await self.oms.submit(order)
            if order.state is OState.REJECTED:
                self._emit_all("error", f"{kind.upper()} {symbol} at {want} refused: {order.reason}")

    # ---- the timer and the guards -------------------------------------------------------------------------

    async def _timer(self) -> None:
        step = self.cfg.engine.timer_ms / 1000
        while True:
            await asyncio.sleep(step)
            now = self.now()
            for sym, lst in list(self.active.items()):
                sf = self.feed[sym]
                for li in list(lst):
                    if li.state == "working":
                        self._route(li, li.algo.on_timer(sf, now))
                    li.tracker.on_book(sf, now)
                    self._maybe_finish(li)

    def equity(self) -> Decimal:
        total = Decimal(0)
        for sym, pos in self.oms.positions.positions.items():
            sf = self.feed[sym] if sym in self.instruments else None
            mark = None
            if sf is not None and sf.book.mid == sf.book.mid:
                mark = Decimal(repr(sf.book.mid)) * self.instruments[sym].tick_size
            total += pos.net_pnl(mark)
        return total

    async def _guard(self) -> None:
        while True:
            await asyncio.sleep(0.5)
            reason = self.killswitch.update(self.equity())
            if reason:
                await self.kill(reason, user="killswitch")

    async def _loop_lag(self, period: float = 0.05) -> None:
        """A late event loop delays every order (nautilus #917): measure how late a timer fires."""
        from engine.metrics import HISTOGRAMS

        hist = HISTOGRAMS["loop_lag"]
        loop = asyncio.get_running_loop()
        while True:
            t0 = loop.time()
            await asyncio.sleep(period)
            self.loop_lag_s = max(0.0, loop.time() - t0 - period)
            hist.observe(self.loop_lag_s)

    async def _clock_sync(self) -> None:
        """Keep the venue-clock offset current: every ``venue.time_sync_s``, and at once when the venue said a
        request's timestamp was outside its recvWindow (-1021)."""
        suspect = self.rest.clock_suspect
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(suspect.wait(), self.cfg.venue.time_sync_s)
            suspect.clear()
            before = self.rest.time_offset_ms
            try:
                after = await self.rest.sync_time()
            except VenueError as exc:
                log.warning("venue clock: could not measure the offset: %s", exc)
                continue
            if abs(after - before) >= 100:
                log.warning("venue clock: offset moved %+d ms (now %d ms)", after - before, after)

    async def _dead_mans_switch(self) -> None:
        ms = self.cfg.venue.countdown_cancel_ms
        while True:
            for sym in self.instruments:
                try:
                    await self.rest.countdown_cancel_all(sym, ms)
                except VenueError as exc:
                    log.warning("countdownCancelAll %s: %s", sym, exc)
            await asyncio.sleep(ms / 3000)

    # ---- reconciliation -----------------------------------------------------------------------------------

    async def _reconcile(self, state) -> None:
        """After a restart: resolve every order the journal left open, compare positions, resume or close
        interrupted intents; every difference is reported, nothing is guessed."""
        from engine.oms.reconcile import reconcile

        self.reconciliation = await reconcile(self, state)
        for line in self.reconciliation:
            log.warning("reconcile: %s", line)
            self._emit_all("risk", f"reconcile: {line}")

    async def resume_intent(self, iid: str, row: dict, left: Decimal) -> None:
        """Carry on an intent interrupted by a restart: the remaining size, the original deadline and cap."""
        import dataclasses

        from engine.execution import ALGORITHMS, min_order_lots
        from engine.oms.reconcile import resumed_intent
        from strategies.base import Spec

        d = row["data"]
        inst = self.instruments[d["symbol"]]
        sf = self.feed[inst.symbol]
        rtt = int(self.cfg.execution.round_trip_ms * MS)
        spec = Spec(inst.symbol, d["side"], inst.qty_to_lots(left), d["arrival_ns"], d["deadline_ns"], d["cap"],
                    d["complete"], d["reduce_only"], rtt, d["limit"], min_order_lots(inst, d["mid_ticks"]),
                    self.cfg.engine.timer_ms * MS)
        li = LiveIntent(iid, resumed_intent(row, left), d.get("source", ""), d.get("user", ""), inst=inst, sf=sf,
                        position=self.oms.positions.get(inst.symbol))
        seq = itertools.count(1)
        li.algo, _ = make_algo(d["algo"] if d["algo"] in ALGORITHMS else "sniper", spec, sf, self.now(),
                               lambda: f"{iid}-r{self._run_id[-4:]}-{next(seq)}")
        li.tracker = Tracker(dataclasses.replace(spec, qty=d["qty_lots"]), Arrival(d["arrival_ns"], d["mid_ticks"],
                                                                                   None, None, {}), li.algo.name)
        for o in self.oms.orders.values():          # what the interrupted run already executed counts in the report
            if o.intent_id == iid and o.filled:
                li.tracker.fills.append((o.updated_ms * MS, inst.qty_to_lots(o.filled),
                                         inst.price_to_ticks(o.avg_price.quantize(inst.tick_size)), False, o.fees))
        self.intents[iid] = li
        self.active.setdefault(inst.symbol, []).append(li)
        self._spin_while_armed()
        self._emit(li, "accepted", f"resumed after a restart: {left} left")
        self._route(li, li.algo.on_market(sf, self.now()))

    # ---- Commands -----------------------------------------------------------------------------------------

    async def preview(self, text: str) -> str:
        intent = parse(text, self._defaults())
        if intent.kind not in (IntentKind.ENTER, IntentKind.EXIT):
            return intent.describe()
        inst = self._instrument(intent.symbol)
        sf = self.feed[inst.symbol]
        now = self.now()
        arrival = Arrival.stamp(sf, now)
        pos = self.oms.positions.get(inst.symbol).qty
        spec = make_spec(intent, inst, arrival, inst.qty_to_lots(abs(pos)) * (1 if pos >= 0 else -1))
        from strategies import auto

        chosen = auto.choose(spec, sf, now)[0].__name__.lower() if intent.algo == "auto" else intent.algo
        return (f"{intent.describe()}\n  size {inst.lots_to_qty(spec.qty)} {inst.symbol}, cap "
                f"{inst.fmt_price(spec.cap)}, mid {Decimal(repr(arrival.mid_ticks)) * inst.tick_size}, spread "
                f"{arrival.ask[0] - arrival.bid[0]} ticks, algo {chosen}, score "
                f"{sf.timing.py_score(spec.side, now):+.2f}")

    async def status(self, symbol: str | None = None) -> str:
        lines = [f"trading {self.risk.state.value}" + (f" ({self.killswitch.tripped})" if self.killswitch.tripped
                                                       else "")]
        for sym, inst in self.instruments.items():
            if symbol and sym != symbol:
                continue
            sf = self.feed[sym]
            pos = self.oms.positions.get(sym)
            bid, ask = sf.book.best(0), sf.book.best(1)
            lines.append(f"{sym}: pos {pos.qty} @ {pos.entry:.2f}, realised {pos.realized:.2f}, fees {pos.fees:.4f}; "
                         f"book {'synced' if sf.synced else 'RESYNCING'} "
                         f"{inst.fmt_price(bid[0]) if bid else '-'} / {inst.fmt_price(ask[0]) if ask else '-'}; "
                         f"levels {self.levels.get(sym, {})}")
        for li in self.intents.values():
            if li.state in ("working", "cancelling"):
                lines.append(f"{li.id} {li.intent.describe()}: {li.algo.filled}/{li.algo.spec.qty} lots")
        return "\n".join(lines)

    async def positions(self) -> str:
        return "\n".join(f"{s}: {p.qty} @ {p.entry:.2f} realised {p.realized:.2f} fees {p.fees:.4f}"
                         for s, p in self.oms.positions.positions.items()) or "no positions"

    async def kill(self, reason: str, *, user: str) -> str:
        self.risk.state = TradingState.HALTED
        if not self.killswitch.tripped:
            self.killswitch.trip(reason)
        await self._cancel(None)
        for o in list(self.oms.orders.values()):
            if o.state.open:
                await self.oms.cancel(o.client_order_id)
        self.journal.decision(None, self.now() // MS, "kill", {"reason": reason, "user": user})
        await self.journal.sync()
        text = f"KILL SWITCH: trading halted, orders cancelled ({reason})"
        self._emit_all("risk", text)
        return text

    async def resume(self, *, user: str) -> str:
        self.killswitch.reset()
        self.risk.state = TradingState.ACTIVE
        self.journal.decision(None, self.now() // MS, "resume", {"user": user})
        await self.journal.sync()
        self._emit_all("risk", "trading resumed")
        return "trading resumed"

    async def add_rationale(self, intent_id: str, text: str, *, user: str) -> None:
        if intent_id not in self.intents and not self.journal.query("SELECT id FROM intents WHERE id=?",
                                                                     (intent_id,)):
            raise ConfigError(f"no intent {intent_id}")
        self.journal.decision(intent_id, self.now() // MS, "rationale", {"text": text, "user": user})
        await self.journal.sync()

    async def report(self, intent_id: str) -> dict | None:
        li = self.intents.get(intent_id)
        if li is not None:
            return li.report
        rows = self.journal.query("SELECT report FROM intents WHERE id=?", (intent_id,))
        import orjson

        return orjson.loads(rows[0]["report"]) if rows and rows[0]["report"] else None

    def subscribe(self, callback: ProgressCallback) -> Callable[[], None]:
        self._subs.append(callback)
        return lambda: self._subs.remove(callback) if callback in self._subs else None

    def _emit(self, li: LiveIntent, kind: str, text: str, data: dict | None = None) -> None:
        self._publish(Progress(li.id, kind, text, li.source, li.user, data or {}))

    def _emit_all(self, kind: str, text: str) -> None:
        self._publish(Progress("", kind, text))

    def _publish(self, p: Progress) -> None:
        for cb in list(self._subs):
            try:
                out = cb(p)
                if asyncio.iscoroutine(out):
                    self._spawn(out)
            except Exception:
                log.exception("progress subscriber failed")


def _log_task_error(task: asyncio.Task) -> None:
    if task.cancelled():
        return
    exc = task.exception()
    if exc is not None and not isinstance(exc, TapeshotError):
        log.error("background task failed", exc_info=exc)
    elif exc is not None:
        log.warning("%s", exc)
