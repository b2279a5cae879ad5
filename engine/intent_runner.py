"""The intent runner: every execution intent's life, from acceptance to its report, as an explicit state machine.

It takes market updates, timer ticks and order events (from the feed and the OMS), asks the intent's algorithm
what to do, and routes each action through the pre-trade risk check to the OMS: the hot path. Each lifecycle
transition (``engine.lifecycle``) is journalled. Guarantees it keeps:

- one working intent per symbol: the check and the registration happen with no ``await`` between them;
- one intent per message: a submission's idempotency key is stored in the intent's own journal row, so the
  same key again (after a restart too) returns the first intent;
- no order leaves after its intent's deadline (an order the rate limiter would hold past it is not sent);
- client order ids are ``<intent id>-<seq>`` so every order is findable at the venue without the journal, and
  the fast path sends before the journal commits;
- transient venue refusals back off inside the window; a definitive one ends the intent as ``failed`` with the
  venue's code and message;
- on shutdown every working intent is cancelled, confirmed with the venue, and journalled ``cancelled``.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import time
from collections.abc import Callable
from decimal import Decimal
from typing import Any

from engine import crashpoints, words
from engine.bus import Bus
from engine.commands import Submitted
from engine.dataset.state import capture, journal_bytes
from engine.errors import ConfigError, RiskRefused, StateError, VenueError
from engine.execution import Arrival, Sizing, Tracker, cap_ticks, make_algo, make_spec, size_intent
from engine.intents import Intent, IntentKind
from engine.lifecycle import IState, LiveIntent
from engine.metrics import bump, intent_outcome
from engine.oms.orders import Fill, Order, OState
from engine.risk import TradingState
from engine.venues.binance import codes
from ext.orders import GATE_DUPLICATE, GATE_NOT_CONNECTED, GATE_SENT, RISK_REASONS
from ext.parse import DEPTH
from strategies.base import BUY, Cancel, OrderUpdate, Place

log = logging.getLogger(__name__)
MS = 1_000_000
SEC = 1_000_000_000
_CRASH = crashpoints.ARMED                # a crash point is armed (TAPESHOT_CRASH_AT): the drills only
TRANSIENT_RISK = frozenset({"book_unsynced", "book_stale", "book_crossed", "no_price", "order_rate", "order_rate_1s",
                            "open_orders"})


class IntentRunner:
    """Runs execution intents. Collaborators are handed in: the bus, the journal, the OMS, the risk gateway,
    the feed, the instruments and the exchange clock (ns)."""

    def __init__(self, cfg: Any, bus: Bus, journal: Any, oms: Any, risk: Any, feed: Any,
                 instruments: dict[str, Any], clock: Callable[[], int], run_id: str,
                 on_armed: Callable[[], None] = lambda: None) -> None:
        self.cfg, self.bus, self.journal, self.oms, self.risk, self.feed = cfg, bus, journal, oms, risk, feed
        self.instruments, self.clock, self.run_id, self.on_armed = instruments, clock, run_id, on_armed
        self.intents: dict[str, LiveIntent] = {}
        self.active: dict[str, list[LiveIntent]] = {}
        self.keys: dict[str, str] = {}                     # message key -> intent id (journalled in its row)
        self._pending: dict[str, asyncio.Future] = {}      # keys being accepted right now
        self._ids = itertools.count(1)
        self._stale_ns = cfg.feed.stale_ms * MS
        self.on_fill: Callable[[str], None] = lambda symbol: None   # the protections re-sync TP/SL
        self.closing = False                                # shutting down: nothing new is accepted
        self.params = algo_params(cfg)                      # the algorithms' parameters (and the hybrid's model)
        self.models: dict[str, Any] = {}                    # symbol -> engine.learn.runtime.ModelRuntime (node)
        self.outcomes: Any = None                           # engine.dataset.outcomes.Outcomes (set by the node)
        self.context_feed: Any = None                       # the context symbol's feed (engine.dataset.state)
        self.ended: dict[str, int] = {}                     # intents by outcome (engine.metrics.intent_outcome)

    # ---- acceptance ---------------------------------------------------------------------------------------

    def new_id(self) -> str:
        return f"i{self.run_id}{next(self._ids):04d}"

    async def accept(self, intent: Intent, source: str, user: str, key: str | None = None) -> Submitted:
        """Accept an ENTER/EXIT intent (idempotent per ``key``) and start it."""
        if key is not None:
            if key in self.keys:
                return self._duplicate(self.keys[key])
            if key in self._pending:
                return self._duplicate((await asyncio.shield(self._pending[key])).intent_id)
            fut = self._pending[key] = asyncio.get_running_loop().create_future()
            try:
                sub = await self._accept(intent, source, user, key)
            except BaseException as exc:
                fut.set_exception(exc)
                fut.exception()                             # retrieved: waiters re-raise it themselves
                raise
            finally:
                self._pending.pop(key, None)
            fut.set_result(sub)
            return sub
        return await self._accept(intent, source, user, None)

    def _duplicate(self, iid: str) -> Submitted:
        li = self.intents.get(iid)
        what = li.intent.describe() if li is not None else "an earlier intent"
        return Submitted(iid, f"already received as {iid}: {what}", duplicate=True)

    async def _accept(self, intent: Intent, source: str, user: str, key: str | None) -> Submitted:
        """``_admit``, with every refusal journalled (a "refused" decision naming the limit, value and unit)
        before the trader hears it."""
        try:
            return await self._admit(intent, source, user, key)
        except (RiskRefused, ConfigError) as exc:
            bump(self.ended, "refused")
            if isinstance(exc, RiskRefused):
                self.risk.count_refusal(exc.reason, "intent")
            self._journal_refusal(intent, source, user, exc)
            try:
                await self.journal.sync()
            except Exception as sync_exc:              # the refusal is still the answer; the journal says why not
                log.warning("refusal of %r not journalled: %s", intent.raw, sync_exc)
            raise

    def _journal_refusal(self, intent: Intent, source: str, user: str, exc: RiskRefused | ConfigError) -> None:
        record = exc.record() if isinstance(exc, RiskRefused) else {"reason": "invalid", "detail": str(exc)}
        self.journal.decision(None, self.clock() // MS, "refused", {
            "stage": "accept", "text": intent.raw or intent.describe(), "symbol": intent.symbol, "source": source,
            "user": user, **record})

    def _check_limits(self, intent: Intent, inst: Any, sz: Sizing, arrival: Arrival, pos_lots: int) -> None:
        """The pre-trade limits on the intent as a whole (``RiskGateway.check_intent``): refused at once, before
        anything is registered or sent, rather than order by order."""
        tick, step = float(inst.tick_size), float(inst.step_size)
        cap = cap_ticks(sz.side, arrival.mid_ticks, intent.max_slippage_bps)
        worst = cap if sz.limit is None else min(cap, sz.limit) if sz.side == BUY else max(cap, sz.limit)
        limit = None if sz.limit is None else sz.limit * tick if sz.limit >= 1 else float(intent.limit_price)
        self.risk.check_intent(inst.symbol, sz.side == BUY, sz.lots * step, limit, worst * tick,
                               arrival.mid_ticks * tick, pos_lots * step, sz.reduce_only, tick,
                               float(inst.min_notional))

    def would_refuse(self, intent: Intent, arrival: Arrival) -> str:
        """Why the pre-trade limits would refuse ``intent`` now ("" when they would not): for ``preview``."""
        inst = self.instrument(intent.symbol)
        position = self.oms.positions.get(inst.symbol)
        pos_lots = inst.qty_to_lots(abs(position.qty)) * (1 if position.qty >= 0 else -1)
        try:
            self._check_limits(intent, inst, size_intent(intent, inst, arrival, pos_lots), arrival, pos_lots)
        except RiskRefused as exc:
            return str(exc)
        return ""

    async def _admit(self, intent: Intent, source: str, user: str, key: str | None) -> Submitted:
        inst = self.instrument(intent.symbol)
        sf = self.feed[inst.symbol]
        if self.closing:
            raise RiskRefused("shutdown", "the engine is shutting down: nothing new is accepted")
        if self.risk.state is not TradingState.ACTIVE and intent.kind is IntentKind.ENTER:
            raise RiskRefused(self.risk.state.value.lower(), f"trading is {self.risk.state.value} (kill switch): "
                              "no new exposure; flat and TP/SL still go out; /resume to trade again")
        if any(li.state.live or li.state is IState.ACCEPTED for li in self.active.get(inst.symbol, [])):
            raise RiskRefused("busy", f"an intent is already working on {inst.symbol}: cancel it first")
        if sf.unavailable or not sf.synced:
            raise RiskRefused("book_unsynced", f"{inst.symbol}: no market data: {sf.unavailable}" if sf.unavailable
                              else f"{inst.symbol}: the book is resyncing ({sf.state_name}); try again in a moment")
        now = self.clock()
        self._check_feed(sf, now)
        arrival = Arrival.stamp(sf, now)
        position = self.oms.positions.get(inst.symbol)
        pos_lots = inst.qty_to_lots(abs(position.qty)) * (1 if position.qty >= 0 else -1)
        sizing = size_intent(intent, inst, arrival, pos_lots)
        self._check_limits(intent, inst, sizing, arrival, pos_lots)
        spec = make_spec(intent, inst, arrival, pos_lots, self._rtt(), self._timer_ns(), sizing)
        li = LiveIntent(self.new_id(), intent, source, user, inst=inst, sf=sf, position=position, key=key)
        seq = itertools.count(1)
        li.algo, why = make_algo(intent.algo, spec, sf, now, lambda: f"{li.id}-{next(seq)}",
                                 self._params_for(inst.symbol))
        li.tracker = Tracker(spec, arrival, li.algo.name)
        self.intents[li.id] = li
        self.active.setdefault(inst.symbol, []).append(li)       # registered before any await: atomic
        if key is not None:
            self.keys[key] = li.id
        self.journal.intent(li.id, now // MS, source, intent.raw, self._record(li, arrival, why), li.state.value)
        self.journal.decision(li.id, now // MS, "arrival", {"mid_ticks": arrival.mid_ticks, "bid": arrival.bid,
                                                            "ask": arrival.ask, "signals": arrival.signals,
                                                            "algo": li.algo.name, "why": why,
                                                            "rationale": intent.rationale,
                                                            "tags": list(intent.tags)})
        state = self._capture(li, sf, now, arrival)
        try:
            await self.journal.sync()                            # durable before anything is sent
        except BaseException:
            self._forget(li)
            raise
        echo = f"{intent.describe()} -> {li.algo.name} ({why}); cap {inst.fmt_price(spec.cap)}"
        echo += "".join(f"; {note}" for note in sizing.notes)
        self._start(li, echo)
        self._journal_state(li, now, state)              # after the first order: serializing it costs µs
        return Submitted(li.id, echo, {"mid": str(Decimal(repr(arrival.mid_ticks)) * inst.tick_size),
                                       "bid": arrival.bid, "ask": arrival.ask})

    def _capture(self, li: LiveIntent, sf: Any, now: int, arrival: Arrival) -> dict | None:
        """The decision dataset at the arrival: the market copied (``engine.dataset.state``: the book's top 20
        levels, the last 30 s of trades, the mark price, the context symbol) and the horizons to watch after it
        planned. Never in an execution's way: a failure here is logged and the intent goes on without it."""
        ctx = self.context_feed if self.context_feed is not None and self.context_feed is not sf else None
        try:
            state = capture(sf, now, arrival.signals, ctx)
            if self.outcomes is not None:
                mid = Decimal(repr(arrival.mid_ticks)) * li.inst.tick_size
                self.outcomes.arm(li.id, li.inst.symbol, _side(li), "arrival", now, mid)
        except Exception:                                  # the dataset never stops an execution
            log.exception("dataset: the arrival of %s was not recorded", li.id)
            return None
        return state

    def _journal_state(self, li: LiveIntent, now: int, state: dict | None) -> None:
        if state is None:
            return
        try:
            self.journal.decision(li.id, now // MS, "arrival_state", journal_bytes(state))
        except Exception:
            log.exception("dataset: the arrival state of %s was not journalled", li.id)

    def _check_feed(self, sf: Any, now: int) -> None:
        """An intent cannot work on a (synced) book that has had no market data for longer than the feed's stale
        limit: refused at once (``RiskRefused`` book_stale), not order by order."""
        if not sf.is_stale(now, self._stale_ns):
            return
        quiet_s = (now - sf.last_book_ns) / SEC
        raise RiskRefused("book_stale", f"no {sf.symbol} market data for {quiet_s:.1f} s (the feed's limit is "
                          f"{self._stale_ns / SEC:g} s): the feed is stale, nothing can work on it now")

    def _forget(self, li: LiveIntent) -> None:
        self.intents.pop(li.id, None)
        with contextlib.suppress(ValueError):
            self.active[li.inst.symbol].remove(li)
        if li.key is not None:
            self.keys.pop(li.key, None)

    def _start(self, li: LiveIntent, echo: str) -> None:
        self.move(li, "start", "accepted")
        self.on_armed()
        self.bus.emit(li.id, "accepted", echo, li.source, li.user)
        self.route(li, li.algo.on_market(li.sf, self.clock()))

    def _record(self, li: LiveIntent, arrival: Arrival, why: str) -> dict:
        s, it = li.algo.spec, li.intent
        return {"kind": it.kind.value, "symbol": s.symbol, "side": s.side, "qty_lots": s.qty, "cap": s.cap,
                "arrival_ns": s.arrival_ns, "deadline_ns": s.deadline_ns, "complete": s.complete,
                "reduce_only": s.reduce_only, "limit": s.limit, "algo": li.algo.name, "why": why,
                "window_s": it.window_s, "max_slippage_bps": it.max_slippage_bps, "rationale": it.rationale,
                "tags": list(it.tags),
                "source": li.source, "user": li.user, "mid_ticks": arrival.mid_ticks, "key": li.key,
                "min_lots": s.min_lots, "algo_requested": it.algo, "taker_fee_bps": self.cfg.execution.taker_fee_bps}

    def instrument(self, symbol: str | None) -> Any:
        """The traded instrument ``symbol`` names, or a ``ConfigError`` listing the traded ones."""
        inst = self.instruments.get(symbol or "")
        if inst is None:
            raise ConfigError(f"{symbol} is not traded here (symbols: {', '.join(self.instruments)})")
        return inst

    def _clock_scale(self) -> float:
        """Exchange time per wall second: a sim venue replays at ``venue.speed``, so every wall-clock delay of ours
        (a round trip, the timer) costs that much more of its time; the real venue runs at 1."""
        v = self.cfg.venue
        return v.speed if v.kind == "sim" else 1.0

    def _rtt(self) -> int:
        """The order round trip the deadline rule plans for, on the venue's clock."""
        return int(self.cfg.execution.round_trip_ms * MS * self._clock_scale())

    def _timer_ns(self) -> int:
        """The executor's timer period on the venue's clock."""
        return int(self.cfg.engine.timer_ms * MS * self._clock_scale())

    # ---- transitions --------------------------------------------------------------------------------------

    def move(self, li: LiveIntent, trigger: str, why: str = "") -> bool:
        """Take a lifecycle transition and journal it; False when it changed nothing."""
        before = li.state
        if li.move(trigger) is None:
            return False
        now_ms = self.clock() // MS
        self.journal.intent_state(li.id, li.state.value, now_ms)
        self.journal.decision(li.id, now_ms, "state", {"from": before.value, "to": li.state.value, "why": why})
        if li.state.final:
            tr = li.tracker
            filled = sum(f[1] for f in tr.fills) if tr is not None else 0
            bump(self.ended, intent_outcome(li.state.value, filled, tr.spec.qty if tr is not None else 1))
        return True

    def _params_for(self, symbol: str) -> dict[str, dict]:
        """The algorithms' parameters for an execution on ``symbol``: the hybrid predicts with the symbol's
        running model (its feature history kept at every depth update), else with the kernels."""
        hybrid = {k: v for k, v in self.params.get("hybrid", {}).items() if k != "model"}
        rt = self.models.get(symbol)
        if rt is not None:
            hybrid["predictor"] = rt.predictor(hybrid.get("horizon_s", 2.0))
        return {**self.params, "hybrid": hybrid}

    # ---- the hot path -------------------------------------------------------------------------------------

    def on_update_observing(self, kind: int, sf: Any) -> None:
        """``on_update`` when a learned model runs (the feed calls this one instead): the symbol's model
        samples its feature history at each depth update first, as in training (~0.5 µs a depth message)."""
        if kind == DEPTH:
            rt = self.models.get(sf.symbol)
            if rt is not None:
                rt.observe(sf, self.clock())
        self.on_update(kind, sf)

    def on_update(self, kind: int, sf: Any) -> None:
        lst = self.active.get(sf.symbol)
        if not lst:
            return
        now = self.clock()
        for li in list(lst):
            li.tracker.on_book(sf, now)
            if li.state is IState.WORKING or li.state is IState.COMPLETING:
                self.route(li, li.algo.on_market(sf, now))
            self.maybe_finish(li)

    def route(self, li: LiveIntent, actions: list) -> None:
        for act in actions:
            if isinstance(act, Place):
                self.place(li, act)
            elif isinstance(act, Cancel):
                self.bus.spawn(self.oms.cancel(act.cid))
                self.journal.decision(li.id, self.clock() // MS, "action", {"action": "cancel", "cid": act.cid,
                                                                            "reason": act.reason})
        if li.algo.deadline_fired and li.state is IState.WORKING:
            self.move(li, "deadline", "the deadline rule fired")

    def place(self, li: LiveIntent, act: Place) -> None:
        """Deadline, risk, then the order goes out synchronously: its bytes are on the socket when this returns.
        With the picows WebSocket API both are one C call (``ext.orders.OrderGate``, armed once per intent); the
        ``Order`` and its journal rows follow the write."""
        decision_ns = time.monotonic_ns()
        now = self.clock()
        left_ms = (li.algo.spec.deadline_ns - now) // MS
        if left_ms <= 0:
            li.algo.expire(act.cid, now, "its intent's deadline has passed")
            return
        gate = li.gate if li.gate is not None else self._arm(li)
        buy = act.side == BUY
        if _CRASH:
            crashpoints.reached("before_send")
        code = self._fire(li, act, gate, buy, now)
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
                                     intent_id=li.id, purpose=purpose, decision_ns=decision_ns, max_wait_ms=left_ms)
        fut.add_done_callback(_log_future)
        li.tracker.orders.append(act.cid)
        li.tracker.order_times[act.cid] = [now, 0]
        self.journal.decision(li.id, now // MS, "action", {"action": "place", "cid": act.cid, "tag": act.tag,
                                                           "reason": act.reason})
        if act.tag in ("snipe", "deadline", "now"):
            limit = "at market" if act.price is None else f"up to {li.inst.fmt_price(act.price)}"
            self.bus.emit(li.id, "fired", f"{act.tag}: {'BUY' if buy else 'SELL'} "
                                          f"{words.qty(li.inst.lots_to_qty(act.qty), li.inst.symbol)} {limit}",
                          li.source, li.user)

    def _fire(self, li: LiveIntent, act: Place, gate: Any, buy: bool, now: int) -> int:
        if not gate:
            return self.risk.core.check_order(li.sf, buy, act.qty, act.price, li.tick_f, li.step_f,
                                              li.position.qty_f, act.reduce_only, len(self.oms.live), now,
                                              self._stale_ns, self.oms.live, self.oms.orders)
        try:
            return gate.fire(buy, act.qty, act.price, act.tif, act.reduce_only, act.cid, now)   # price None: MARKET
        except ValueError:
            return GATE_NOT_CONNECTED                # not writable in C (nothing sent): the general path says why
        except (OSError, RuntimeError) as exc:       # the write failed part way: the outcome is the venue's to tell
            log.warning("order %s: WebSocket API write failed (%s): outcome unknown", act.cid, exc)
            return GATE_SENT

    def _arm(self, li: LiveIntent) -> Any:
        """The intent's ``OrderGate`` (risk and order in one C call), or False when the session has none."""
        li.gate = self.oms.gate(li.inst, li.sf, li.position, self.risk.core, self._stale_ns) or False
        return li.gate

    def _refuse(self, li: LiveIntent, act: Place, code: int, buy: bool, now: int) -> None:
        """Risk refused ``act``: journal and say why, and tell its algorithm (transient refusals back off)."""
        sf = li.sf
        exc = self.risk.refusal(code, li.inst.symbol, buy, act.qty * li.step_f,
                                None if act.price is None else act.price * li.tick_f, sf.book.mid * li.tick_f,
                                li.position.qty_f)
        self.journal.decision(li.id, now // MS, "refused", {"cid": act.cid, **exc.record()})
        self.bus.emit(li.id, "error", f"order refused: {exc}", li.source, li.user)
        up = OrderUpdate(act.cid, "REJECTED", final=True, reason=str(exc),
                         transient=RISK_REASONS[code] in TRANSIENT_RISK)
        self.route(li, li.algo.on_order(up, sf, now))

    # ---- order events -------------------------------------------------------------------------------------

    def on_order(self, o: Order, fill: Fill | None) -> bool:
        """An order of an intent moved: tell its algorithm (fills once, the final state once it is settled).
        Returns False when the order belongs to no running intent."""
        li = self.intents.get(o.intent_id or "")
        if li is None or li.algo is None:
            return False
        sf, now, inst = li.sf, self.clock(), li.inst
        if fill is not None:
            if _CRASH:
                crashpoints.reached("on_fill")
            li.tracker.fills.append((now, inst.qty_to_lots(fill.qty), inst.price_to_ticks(fill.price), fill.maker,
                                     fill.fee))
            li.tracker.last_fill_mid = sf.book.mid
            up = OrderUpdate(o.client_order_id, o.state.value, inst.qty_to_lots(fill.qty),
                             inst.price_to_ticks(fill.price), False)
            self.route(li, li.algo.on_order(up, sf, now))
            self.bus.emit(li.id, "fill", f"filled {words.qty(fill.qty, inst.symbol)} at {words.price(fill.price)} "
                                         f"({'maker' if fill.maker else 'taker'})", li.source, li.user)
            self.on_fill(o.symbol)
        elif _CRASH and o.state is OState.ACKNOWLEDGED and li.algo.name == "ladder":
            crashpoints.reached("mid_ladder")
        if o.state.final and not self.oms.needs_trades(o) and o.client_order_id not in li.finals_sent:
            li.finals_sent.add(o.client_order_id)
            if o.client_order_id in li.tracker.order_times:
                li.tracker.order_times[o.client_order_id][1] = now
            self.route(li, li.algo.on_order(self._final_update(o), sf, now))
        self.maybe_finish(li)
        return True

    @staticmethod
    def _final_update(o: Order) -> OrderUpdate:
        if o.state is not OState.REJECTED:
            return OrderUpdate(o.client_order_id, o.state.value, final=True)
        code = o.reject_code
        transient = codes.transient(code, 0, o.reason) if code else True    # never reached the venue: try again
        return OrderUpdate(o.client_order_id, "REJECTED", final=True, code=code, reason=o.reason, transient=transient)

    def on_timer(self) -> None:
        now = self.clock()
        if self.outcomes is not None:
            try:
                self.outcomes.on_timer(now)
            except Exception:                            # the dataset never stops the algorithms' timer
                log.exception("dataset: outcome horizons")
        for sym, lst in list(self.active.items()):
            sf = self.feed[sym]
            for li in list(lst):
                if li.state is IState.WORKING or li.state is IState.COMPLETING:
                    self.route(li, li.algo.on_timer(sf, now))
                li.tracker.on_book(sf, now)
                self.maybe_finish(li)

    async def run_timer(self) -> None:
        step = self.cfg.engine.timer_ms / 1000
        while True:
            await asyncio.sleep(step)
            self.on_timer()

    # ---- the end of an intent -----------------------------------------------------------------------------

    def maybe_finish(self, li: LiveIntent) -> None:
        """working/completing/cancelling -> done/cancelled/failed once the algorithm is finished and every order
        is settled; then, once the +30 s markout is in, publish the report again and stop watching."""
        if li.state.live:
            if not li.algo.finished or not self._settled(li):
                return
            li.tracker.end_ns = li.tracker.end_ns or self.clock()
            trigger = "fail" if li.algo.failure else "finish"
            li.why_ended = li.why_ended or li.algo.failure
            self.move(li, trigger, li.why_ended or "finished")
            self._arm_last_fill(li)
            li.report = {**li.tracker.report(li.inst), "intent_id": li.id, "state": li.state.value,
                         "text": li.intent.raw, "notes": [t for _, t in li.algo.log],
                         **({"why": li.why_ended} if li.why_ended else {})}
            self.bus.spawn(self._publish_report(li, "done"))
        elif li.tracker.markouts_done and li.report is not None and "markouts_final" not in li.report:
            li.report = {**li.report, **li.tracker.report(li.inst), "markouts_final": True}
            with contextlib.suppress(ValueError):
                self.active[li.inst.symbol].remove(li)
            self.bus.spawn(self._publish_report(li, "markouts"))

    def _arm_last_fill(self, li: LiveIntent) -> None:
        """The execution ended: the horizons after its last fill (or n/a, nothing filled). A resumed intent
        whose last fill came before the restart anchors at the venue's time of it, its mid unknown."""
        if self.outcomes is None:
            return
        tr = li.tracker
        try:
            if not tr.fills:
                self.outcomes.not_applicable(li.id, li.inst.symbol, _side(li), "last_fill", "nothing filled")
                return
            mid = tr.last_fill_mid
            if mid == mid:
                anchor_mid = Decimal(repr(mid)) * li.inst.tick_size
                self.outcomes.arm(li.id, li.inst.symbol, _side(li), "last_fill", max(f[0] for f in tr.fills),
                                  anchor_mid)
                return
            rows = self.journal.query("SELECT max(time_ms) AS t FROM fills WHERE client_order_id IN (SELECT "
                                      "client_order_id FROM orders WHERE intent_id=?)", (li.id,))
            t = rows[0]["t"] if rows and rows[0]["t"] is not None else max(f[0] for f in tr.fills) // MS
            self.outcomes.arm(li.id, li.inst.symbol, _side(li), "last_fill", t * MS, None)
        except Exception:
            log.exception("dataset: the last-fill horizons of %s", li.id)

    def _settled(self, li: LiveIntent) -> bool:
        orders = self.oms.orders
        return all(orders[c].state.final and not self.oms.needs_trades(orders[c])
                   for c in li.tracker.orders if c in orders)

    async def _publish_report(self, li: LiveIntent, kind: str) -> None:
        now_ms = self.clock() // MS
        self.journal.intent_state(li.id, li.state.value, now_ms, li.report)
        self.journal.decision(li.id, now_ms, kind, li.report)
        if kind == "markouts":                        # the touch to the last markout, for the chart (engine.plot)
            self.journal.decision(li.id, now_ms, "timeline", li.tracker.timeline(li.inst))
        await self.journal.sync()                     # durable before anyone is told it is done
        r = li.report
        self.bus.emit(li.id, kind, _report_line(li, kind, r), li.source, li.user, r)

    def armed(self) -> bool:
        """An intent is working, completing or cancelling: an order may have to go at the next event."""
        return any(li.state.live for lst in self.active.values() for li in lst)

    def cancel(self, symbol: str | None, why: str) -> list[str]:
        """Cancel every working intent (of ``symbol``): no completing order, the resting ones cancelled."""
        done = []
        for li in list(self.intents.values()):
            if li.state.live and li.state is not IState.CANCELLING and (symbol is None or li.inst.symbol == symbol):
                li.algo.deadline_fired = li.algo._completed = True      # no completing order: cancel the rest
                li.why_ended = why
                self.move(li, "cancel", why)
                self.route(li, li.algo.cancel_all(f"intent cancelled: {why}"))
                li.algo.finished = not li.algo.live
                done.append(li.id)
                self.bus.emit(li.id, "cancelled", f"cancelling the rest of the intent ({why})", li.source, li.user)
                self.maybe_finish(li)
        return done

    # ---- restart and shutdown -----------------------------------------------------------------------------

    def resume(self, iid: str, row: dict, left: Decimal, executed: Decimal, intent: Intent) -> None:
        """Carry on an intent interrupted by a restart for what the venue has not executed: the original
        deadline and cap, the trader's words as they were sent."""
        import dataclasses

        from engine.execution import ALGORITHMS
        from strategies.base import Spec

        d = row["data"]
        inst = self.instruments[d["symbol"]]
        sf = self.feed[inst.symbol]
        spec = Spec(inst.symbol, d["side"], inst.qty_to_lots(left), d["arrival_ns"], d["deadline_ns"], d["cap"],
                    d["complete"], d["reduce_only"], self._rtt(), d["limit"], d.get("min_lots", 1),
                    self._timer_ns())
        li = LiveIntent(iid, intent, d.get("source", ""), d.get("user", ""), inst=inst, sf=sf,
                        position=self.oms.positions.get(inst.symbol), key=d.get("key"), resumed=True)
        li.state = IState(row["state"]) if row["state"] in ("accepted", "working", "completing") else IState.WORKING
        if li.state is IState.ACCEPTED:
            self.move(li, "start", "resumed")
        seq = itertools.count(1)
        li.algo, _ = make_algo(d["algo"] if d["algo"] in ALGORITHMS else "sniper", spec, sf, self.clock(),
                               lambda: f"{iid}-r{self.run_id[-4:]}-{next(seq)}", self._params_for(inst.symbol))
        arrival = Arrival(d["arrival_ns"], d["mid_ticks"], None, None, {})
        li.tracker = Tracker(dataclasses.replace(spec, qty=d["qty_lots"]), arrival, li.algo.name)
        for o in self.oms.orders.values():          # what the interrupted run already executed counts in the report
            if o.intent_id == iid and o.filled:
                li.tracker.fills.append((o.updated_ms * MS, inst.qty_to_lots(o.filled),
                                         inst.price_to_ticks(o.avg_price.quantize(inst.tick_size)), False, o.fees))
        self.intents[iid] = li
        self.active.setdefault(inst.symbol, []).append(li)
        if li.key:
            self.keys[li.key] = iid
        self.on_armed()
        self.bus.emit(iid, "accepted", f"resumed after a restart: {executed} executed at the venue, {left} left",
                      li.source, li.user)
        self.route(li, li.algo.on_market(sf, self.clock()))

    def close(self, iid: str, state: str, executed: Decimal, note: str, row: dict | None = None) -> None:
        """Close an interrupted intent from venue truth (reconciliation's decision); ``row``: its journal row."""
        now_ms = self.clock() // MS
        report = {"intent_id": iid, "state": state, "filled": str(executed), "note": note}
        bump(self.ended, intent_outcome(state, 1, 1))          # closed from venue truth: done means all of it
        self.journal.intent_state(iid, state, now_ms, report)
        self.journal.decision(iid, now_ms, "state", {"to": state, "why": note})
        d = (row or {}).get("data") or {}
        if self.outcomes is not None and d.get("symbol"):    # it ended while we were down: no last-fill mid seen
            self.outcomes.not_applicable(iid, d["symbol"], "BUY" if d.get("side") == BUY else "SELL", "last_fill",
                                         "ended while the engine was down" if executed else "nothing filled",
                                         status="missing" if executed else "n/a")

    async def shutdown(self, rest: Any, timeout_s: float = 6.0) -> list[str]:
        """Cancel every working intent and its orders, confirm with the venue (a cancel-all per symbol, then the
        open-orders query), journal each interrupted intent ``cancelled (shutdown)``; returns what could not be
        cancelled (empty when all is clean)."""
        self.closing = True
        live = [li for li in self.intents.values() if li.state.live or li.state is IState.ACCEPTED]
        if live:
            self.cancel(None, "shutdown")
        loop = asyncio.get_running_loop()
        end = loop.time() + timeout_s / 2
        while loop.time() < end and any(li.state.live for li in live):
            await asyncio.sleep(0.02)
        problems = await self._cancel_all_at_venue(rest, {li.inst.symbol for li in live} | self._open_symbols())
        for li in live:
            if li.state.live:                            # the venue could not confirm in time
                li.algo.finished = True
                li.tracker.end_ns = li.tracker.end_ns or self.clock()
                self.move(li, "finish", "shutdown")
                self._arm_last_fill(li)
                li.report = {**li.tracker.report(li.inst), "intent_id": li.id, "state": li.state.value,
                             "text": li.intent.raw, "why": "shutdown", "notes": [t for _, t in li.algo.log]}
                self.journal.intent_state(li.id, li.state.value, self.clock() // MS, li.report)
        for li in [li for lst in self.active.values() for li in lst if li.tracker is not None]:
            self.journal.decision(li.id, self.clock() // MS, "timeline", li.tracker.timeline(li.inst))
        await self.journal.sync()
        return problems

    def _open_symbols(self) -> set[str]:
        return {o.symbol for o in self.oms.orders.values() if o.state.open and o.purpose in ("entry", "exit")}

    async def _cancel_all_at_venue(self, rest: Any, symbols: set[str]) -> list[str]:
        problems: list[str] = []
        for sym in sorted(symbols):
            try:
                await asyncio.wait_for(rest.cancel_all(sym), 2.0)
                still = [o for o in await asyncio.wait_for(rest.open_orders(sym), 2.0)
                         if (o.get("clientOrderId") or "").startswith("i")]
            except (VenueError, TimeoutError) as exc:
                problems.append(f"{sym}: could not confirm the cancel-all with the venue ({exc or 'timeout'})")
                continue
            problems += [f"{sym}: order {o.get('clientOrderId')} still open at the venue" for o in still]
            for o in self.oms.orders.values():
                if o.symbol == sym and o.state.open and o.purpose in ("entry", "exit"):
                    with contextlib.suppress(VenueError, TimeoutError):
                        await asyncio.wait_for(self.oms.resolve(o, attempts=1), 2.0)
        return problems


def _report_line(li: LiveIntent, kind: str, r: dict) -> str:
    """The one line a ``done`` / ``markouts`` progress event carries, in the trader's units (the full report is
    ``engine.words.report_text`` of its data)."""
    sym = li.inst.symbol
    if kind == "markouts":
        return words.markouts_text(r.get("markouts_bps"), bool(li.tracker.fills))
    filled = f"{r['side']} {words.qty(r['filled'], sym)} of {words.qty(r['requested'], sym)} {sym}"
    if li.tracker.fills:
        filled += (f" at {words.price(r['avg_price'])} avg, shortfall {words.bps(r['shortfall_bps'])} "
                   f"(fees in), fees {words.usdt(r['fees'])}")
    text = f"{filled}, {r['algo']}, {words.seconds(r['time_to_fill_s'])}"
    if li.state is not IState.DONE:
        text = f"{li.state.value.upper()}: {text}" + (f" ({li.why_ended})" if li.why_ended else "")
    return text


def algo_params(cfg: Any) -> dict[str, dict]:
    """The tuned parameters (``engine.eval.tuned``), with ``[model] path`` given to the hybrid."""
    from engine.eval.tuned import params

    out = params()
    path = getattr(getattr(cfg, "model", None), "path", "")
    if path:
        out = {**out, "hybrid": {**out.get("hybrid", {}), "model": path}}
    return out


def _side(li: LiveIntent) -> str:
    return "BUY" if li.algo.spec.side == BUY else "SELL"


def _log_future(fut: asyncio.Future) -> None:
    if fut.cancelled():
        return
    exc = fut.exception()
    if exc is not None:
        log.warning("order: %s", exc)
