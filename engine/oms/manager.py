"""The order manager: every order's life from submit to its last fill, journaled, deduplicated, reconciled.

- ``submit``: NEW -> journaled -> SUBMITTED -> sent through the gateway. The answer moves it on; an error with a
  Binance code rejects it; an unknown outcome (timeout, dropped connection) makes it UNKNOWN and a query resolves
  it (an order the venue never saw becomes REJECTED "lost", one it has takes the venue's state).
- Fills come from the user data stream (with trade ids, so each counts once) or, when a stream event was missed,
  from ``/fapi/v1/userTrades`` during resolution and reconciliation. Positions follow the fills.
- Answers that say FILLED/PARTIALLY_FILLED do not move the state: the fills themselves do, so ``filled`` and the
  state never disagree. The venue's own executed quantity is kept as ``venue_filled`` to know when all fills of an
  order are in.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from decimal import Decimal
from typing import Any

from engine import crashpoints
from engine.errors import RiskRefused, StateError, VenueClientError, VenueError, VenueServerError
from engine.metrics import HISTOGRAMS, bump, order_kind, reject_code
from engine.model import Instrument
from engine.oms.journal import Journal
from engine.oms.orders import FINAL_STATES, VENUE_STATUS, Fill, Order, OState, Trigger
from engine.oms.positions import Book
from engine.venues.binance import codes
from engine.venues.binance.gateway import OrderGateway
from engine.venues.binance.streams import read_order_update

log = logging.getLogger(__name__)

OnOrder = Callable[[Order, Fill | None], None]
ROUND_TRIP = HISTOGRAMS["order_round_trip"]          # by order type
CANCEL_ROUND_TRIP = HISTOGRAMS["cancel_round_trip"]
RESULTS = {OState.ACKNOWLEDGED: "accepted", OState.PARTIALLY_FILLED: "partially_filled", OState.FILLED: "filled",
           OState.CANCELED: "cancelled", OState.EXPIRED: "expired", OState.REJECTED: "rejected"}


class OrderManager:
    def __init__(self, gateway: OrderGateway, journal: Journal, instruments: dict[str, Instrument],
                 on_order: OnOrder | None = None, clock_ms: Callable[[], int] | None = None) -> None:
        self.gateway = gateway
        self.journal = journal
        self.instruments = instruments
        self.on_order = on_order or (lambda o, f: None)
        self.clock_ms = clock_ms or (lambda: time.time_ns() // 1_000_000)
        self.orders: dict[str, Order] = {}
        self.venue_filled: dict[str, Decimal] = {}
        self.positions = Book()
        self.unknown_events = 0
        self.stale_events = 0
        self._tasks: set[asyncio.Task] = set()
        self.live: set[str] = set()                # orders sent and not final (pruned as they end; open_count)
        self._decimals: dict[Decimal, int] = {}
        # for the metrics: (type, result) -> orders that reached it; (symbol, maker|taker) -> fills; code -> rejects
        self.results: dict[tuple[str, str], int] = {}
        self.fill_counts: dict[tuple[str, str], int] = {}
        self.rejects: dict[str, int] = {}

    # ---- sending ------------------------------------------------------------------------------------------

    @property
    def open_count(self) -> int:
        """Orders sent and not final (one loop over the few live orders: it runs before every order)."""
        orders, n, done = self.orders, 0, None
        for cid in self.live:
            state = orders[cid].state
            if state in FINAL_STATES:
                done = [cid] if done is None else [*done, cid]
            elif state is not OState.NEW:
                n += 1
        if done:
            self.live.difference_update(done)
        return n

    def _fmt(self, value: Decimal, size: Decimal) -> str:
        """A value on the grid ``size`` as Binance's string (its decimals cached per grid)."""
        decimals = self._decimals.get(size)
        if decimals is None:
            decimals = self._decimals[size] = Instrument.grid(size)[1]
        return f"{value:.{decimals}f}"

    def params(self, o: Order) -> dict[str, Any]:
        inst = self.instruments[o.symbol]
        p: dict[str, Any] = {"symbol": o.symbol, "side": o.side, "type": o.type, "newClientOrderId": o.client_order_id}
        if not o.close_position:
            p["quantity"] = self._fmt(o.qty, inst.step_size)
        if o.price is not None:
            p["price"] = self._fmt(o.price, inst.tick_size)
        if o.tif is not None and o.type == "LIMIT":
            p["timeInForce"] = o.tif
        if o.stop_price is not None:
            p["stopPrice"] = self._fmt(o.stop_price, inst.tick_size)
        if o.reduce_only and not o.close_position:
            p["reduceOnly"] = "true"
        if o.close_position:
            p["closePosition"] = "true"
        return p

    async def submit(self, o: Order, max_wait_ms: int | None = None) -> Order:
        """Send a NEW order; returns when the venue answered (or the outcome became unknown). It is journalled
        NEW first and SUBMITTED when its bytes leave (after any rate-limit wait); an order the limiter would hold
        longer than ``max_wait_ms`` is never sent and ends REJECTED."""
        if o.client_order_id in self.orders:
            raise StateError(f"order {o.client_order_id} already exists")
        now = self.clock_ms()
        o.created_ms = o.updated_ms = now
        self.orders[o.client_order_id] = o
        self.live.add(o.client_order_id)
        self.journal.order(o)
        sent = [time.perf_counter_ns()]

        def on_sent() -> None:
            sent[0] = time.perf_counter_ns()          # the round trip starts when the bytes leave
            self._sent(o)

        try:
            answer = await self.gateway.place(self.params(o), max_wait_ms=max_wait_ms, on_sent=on_sent)
            self._round_trip(o, sent[0])
        except RiskRefused as exc:
            self._transition(o, Trigger.REJECT, "not sent", {"msg": exc.detail}, reason=exc.detail)
        except VenueClientError as exc:
            self._round_trip(o, sent[0])
            self._sent(o)
            self._rejected(o, exc)
        except VenueServerError as exc:
            if not exc.sent:
                self._transition(o, Trigger.REJECT, "not sent", {"msg": exc.msg}, reason=exc.msg)
            else:
                self._sent(o)
                self._transition(o, Trigger.TIMEOUT, "outcome unknown", {"msg": exc.msg})
                self._spawn(self.resolve(o))
        else:
            self._sent(o)
            self.apply_answer(o, answer)
        return o

    def _sent(self, o: Order) -> None:
        """The order's bytes left (or the venue answered, so they did): SUBMITTED, journalled and reported, once."""
        if o.state is OState.NEW:
            self._transition(o, Trigger.SUBMIT, "submit")

    @staticmethod
    def _round_trip(o: Order, t0: int) -> None:
        """The venue answered ``o`` (accepted or rejected): its round trip since ``t0`` (``perf_counter_ns``)."""
        ROUND_TRIP.labels(order_kind(o.type, o.tif)).observe((time.perf_counter_ns() - t0) / 1e9)

    def _rejected(self, o: Order, exc: VenueClientError) -> None:
        """The venue refused ``o``: REJECTED with its code, counted by code."""
        o.reject_code = exc.code
        bump(self.rejects, reject_code(exc.code))
        self._transition(o, Trigger.REJECT, "rejected", {"code": exc.code, "msg": exc.msg}, reason=exc.msg)

    def submit_now(self, o: Order, decision_ns: int = 0, max_wait_ms: int | None = None) -> asyncio.Future:
        """``submit`` with no task hop: the order goes on the wire at once when it can (``place_now``), else as
        soon as the limiter and the connection let it. It is journalled NEW first and SUBMITTED when its bytes
        leave. The future resolves to the order once the venue answered or the outcome became unknown."""
        if o.client_order_id in self.orders:
            raise StateError(f"order {o.client_order_id} already exists")
        o.created_ms = o.updated_ms = self.clock_ms()
        self.orders[o.client_order_id] = o
        self.live.add(o.client_order_id)
        self.journal.order(o)
        t0 = time.perf_counter_ns()
        answer = self.gateway.place_now(self.params(o), decision_ns, max_wait_ms=max_wait_ms,
                                        on_sent=lambda: self._sent(o))
        return self._sent_now(o, answer, t0, sent=False)

    def _sent_now(self, o: Order, answer: asyncio.Future, t0: int, sent: bool = True) -> asyncio.Future:
        """An order whose request is on the wire (``sent``; else ``on_sent`` says when): registered, SUBMITTED,
        journaled, reported; settles when ``answer`` does."""
        if o.client_order_id not in self.orders:
            o.created_ms = o.updated_ms = self.clock_ms()
            self.orders[o.client_order_id] = o
            self.live.add(o.client_order_id)
        if sent:
            if crashpoints.ARMED:                   # written by the C path, nothing of it journalled yet
                crashpoints.reached("after_send")
            self._sent(o)
        done = asyncio.get_running_loop().create_future()
        answer.add_done_callback(lambda f: self._settle(o, f, done, t0))
        return done

    def place_now(self, inst: Instrument, buy: bool, lots: int, ticks: int | None, tif: str | None,
                  reduce_only: bool, cid: str, *, intent_id: str | None = None, purpose: str = "entry",
                  decision_ns: int = 0, max_wait_ms: int | None = None) -> asyncio.Future:
        """``submit_now`` for a LIMIT (``ticks``) or MARKET (``ticks`` None) order given in integer lots and ticks:
        the gateway's C writer sends it first, and the ``Order`` is built, registered, journaled and reported
        after the write, all before the event loop can deliver an answer. When the fast writer cannot take it,
        the order goes through ``submit_now``. Returns the future of the settled order, as ``submit_now``."""
        if cid in self.orders:
            raise StateError(f"order {cid} already exists")
        answer = self.gateway.place_fast(inst, buy, lots, ticks, tif, reduce_only, cid, decision_ns)
        t0 = time.perf_counter_ns()
        o = _order(inst, buy, lots, ticks, tif, reduce_only, cid, intent_id, purpose)
        if answer is None:
            return self.submit_now(o, decision_ns, max_wait_ms)
        return self._sent_now(o, answer, t0)

    def gate(self, inst: Instrument, sf: Any, position: Any, risk: Any, stale_ns: int) -> Any:
        """An ``ext.orders.OrderGate`` for ``inst`` over this OMS's orders and open orders, or None when the
        gateway has no C order path: ``fire`` it, then hand the sent order to ``fired``."""
        return self.gateway.gate(inst, sf, position, risk, self.live, self.orders, stale_ns)

    def fired(self, inst: Instrument, buy: bool, lots: int, ticks: int | None, tif: str | None, reduce_only: bool,
              cid: str, rid: int, *, intent_id: str | None = None, purpose: str = "entry",
              decision_ns: int = 0) -> asyncio.Future:
        """An order an ``OrderGate`` has just sent as request ``rid``: built, registered, SUBMITTED, journaled and
        reported, all before the loop can deliver its answer; returns the future of the settled order, as
        ``submit_now``."""
        answer = self.gateway.fired(rid, decision_ns)
        t0 = time.perf_counter_ns()
        o = _order(inst, buy, lots, ticks, tif, reduce_only, cid, intent_id, purpose)
        return self._sent_now(o, answer, t0)

    def _settle(self, o: Order, answer: asyncio.Future, done: asyncio.Future, t0: int) -> None:
        """The tail of ``submit``: apply the answer or the error, then resolve ``done`` with the order."""
        if answer.cancelled():
            done.cancel()
            return
        exc = answer.exception()
        if exc is None or isinstance(exc, VenueClientError) or (isinstance(exc, VenueServerError) and exc.sent):
            self._sent(o)                                   # the venue answered, or bytes may have left
        if exc is None:
            self._round_trip(o, t0)
            self.apply_answer(o, answer.result())
        elif isinstance(exc, RiskRefused):                  # held past its deadline: never sent
            self._transition(o, Trigger.REJECT, "not sent", {"msg": exc.detail}, reason=exc.detail)
        elif isinstance(exc, VenueClientError):
            self._round_trip(o, t0)
            self._rejected(o, exc)
        elif isinstance(exc, VenueServerError) and not exc.sent:
            self._transition(o, Trigger.REJECT, "not sent", {"msg": exc.msg}, reason=exc.msg)
        elif isinstance(exc, VenueServerError):
            self._transition(o, Trigger.TIMEOUT, "outcome unknown", {"msg": exc.msg})
            self._spawn(self.resolve(o))
        else:
            done.set_exception(exc)
            return
        done.set_result(o)

    async def cancel(self, client_order_id: str) -> None:
        o = self.orders.get(client_order_id)
        if o is None or o.state.final:
            return
        t0 = time.perf_counter_ns()
        try:
            answer = await self.gateway.cancel(o.symbol, client_order_id)
            CANCEL_ROUND_TRIP.observe((time.perf_counter_ns() - t0) / 1e9)
        except VenueClientError as exc:
            CANCEL_ROUND_TRIP.observe((time.perf_counter_ns() - t0) / 1e9)
            if exc.code in (codes.CANCEL_REJECTED, codes.NO_SUCH_ORDER):
                await self.resolve(o)                  # already final at the venue (filled or expired): find out
            else:
                log.warning("cancel %s refused: %s", client_order_id, exc)
        except VenueServerError:
            self._spawn(self.resolve(o))
        else:
            self.apply_answer(o, answer)

    def _spawn(self, coro) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # ---- answers and events -------------------------------------------------------------------------------

    def apply_answer(self, o: Order, answer: dict, fetch: bool = True) -> None:
        """An order response (place, cancel or query): venue id, executed quantity, final states."""
        if answer.get("orderId") is not None:
            o.venue_order_id = int(answer["orderId"])
        executed = answer.get("executedQty")
        if executed is not None:
            self.venue_filled[o.client_order_id] = Decimal(executed)
        status = answer.get("status", "")
        trigger = VENUE_STATUS.get(status)
        if trigger in (Trigger.ACK, Trigger.CANCEL, Trigger.EXPIRE, Trigger.REJECT):
            self._transition(o, trigger, status.lower())
        elif trigger in (Trigger.FILL, Trigger.FILL_ALL) and o.state in (OState.SUBMITTED, OState.UNKNOWN):
            self._transition(o, Trigger.ACK, "ack (fills follow)")
        if fetch and self.needs_trades(o):
            self._spawn(self.fetch_fills(o, delay_s=1.0))

    def needs_trades(self, o: Order) -> bool:
        return self.venue_filled.get(o.client_order_id, Decimal(0)) > o.filled

    def on_user_event(self, ev: dict) -> None:
        """One user-data-stream event (``ORDER_TRADE_UPDATE``; others are ignored here). A malformed one raises
        ``DataError`` before anything changes (``read_order_update``); the user stream counts and skips it."""
        if not isinstance(ev, dict) or ev.get("e") != "ORDER_TRADE_UPDATE":
            return
        x = read_order_update(ev)
        o = self.orders.get(x.cid)
        if o is None:
            self.unknown_events += 1
            return
        if x.order_id is not None:
            o.venue_order_id = x.order_id
        self.venue_filled[o.client_order_id] = max(self.venue_filled.get(o.client_order_id, Decimal(0)),
                                                   x.executed)
        kind = x.kind
        if kind == "TRADE":
            self.add_fill(o, Fill(x.trade_id, o.client_order_id, o.symbol, o.side, x.price, x.qty, x.fee, x.maker,
                                  x.time_ms))
        elif kind == "NEW":
            self._transition(o, Trigger.ACK, "ack")
            crashpoints.reached("on_ack")
        elif kind in ("CANCELED", "EXPIRED"):
            self._transition(o, Trigger.CANCEL if kind == "CANCELED" else Trigger.EXPIRE, kind.lower())

    def add_fill(self, o: Order, fill: Fill) -> None:
        before = o.state
        try:
            fresh = o.add_fill(fill)
        except StateError as exc:
            log.error("fill refused: %s", exc)
            return
        if not fresh:
            self.stale_events += 1
            return
        self.positions.apply(o.symbol, o.side, fill.price, fill.qty, fill.fee)
        bump(self.fill_counts, (o.symbol, "maker" if fill.maker else "taker"))
        self._count(o, before)
        if o.state in FINAL_STATES:
            self.live.discard(o.client_order_id)
        self.journal.fill(fill)
        self.journal.order(o)
        self.journal.order_event(o.client_order_id, fill.time_ms, "fill", o.state.value,
                                 {"trade_id": fill.trade_id, "qty": fill.qty, "price": fill.price})
        self.on_order(o, fill)

    def _transition(self, o: Order, trigger: Trigger, event: str, detail: dict | None = None,
                    reason: str = "") -> None:
        before = o.state
        try:
            moved = o.apply(trigger, self.clock_ms(), reason)
        except StateError as exc:
            log.error("%s", exc)
            return
        if not moved:
            self.stale_events += 1
            return
        self._count(o, before)
        if o.state in FINAL_STATES:
            self.live.discard(o.client_order_id)
        self.journal.order(o)
        self.journal.order_event(o.client_order_id, o.updated_ms, event, o.state.value, detail)
        self.on_order(o, None)

    def _count(self, o: Order, before: OState) -> None:
        """For the metrics: ``o`` reached a state it was not in (accepted, partially filled, filled, ...)."""
        result = RESULTS.get(o.state)
        if result is not None and o.state is not before:
            bump(self.results, (order_kind(o.type, o.tif), result))

    # ---- resolution ---------------------------------------------------------------------------------------

    async def resolve(self, o: Order, attempts: int = 5, fetch: bool = True) -> None:
        """Ask the venue what became of an order whose answer we lost; fetch any fills we did not hear of."""
        delay = 0.2
        for _ in range(attempts):
            try:
                answer = await self.gateway.query(o.symbol, o.client_order_id)
            except VenueClientError as exc:
                if exc.code == codes.NO_SUCH_ORDER:
                    await self._unknown_to_venue(o)
                    return
                log.warning("query %s: %s", o.client_order_id, exc)
            except VenueServerError as exc:
                log.warning("query %s: %s", o.client_order_id, exc)
            else:
                self.apply_answer(o, answer, fetch=False)
                if fetch and self.needs_trades(o):
                    await self.fetch_fills(o)
                return
            await asyncio.sleep(delay)
            delay = min(delay * 2, 5.0)

    async def _unknown_to_venue(self, o: Order) -> None:
        """The venue says it has no such order. Never acknowledged: it never arrived (rejected). Acknowledged: the
        venue dropped it since (Binance archives cancelled/expired orders without fills; a testnet reset drops
        everything), so its fills are fetched by order id and it ends as expired."""
        if o.venue_order_id is None and o.state in (OState.SUBMITTED, OState.UNKNOWN):
            self._transition(o, Trigger.REJECT, "lost", {"msg": "the venue never received it"},
                             reason="lost before reaching the venue")
            return
        await self.fetch_fills(o, every=True)
        if not o.state.final:
            self._transition(o, Trigger.EXPIRE, "gone", {"msg": "the venue no longer knows this order"},
                             reason="no longer known to the venue")

    async def fetch_fills(self, o: Order, delay_s: float = 0.0, every: bool = False) -> None:
        """Fills of ``o`` that the stream has not delivered, from ``/fapi/v1/userTrades`` by its venue order id
        (after ``delay_s``); only when the venue reported more filled than we hold, unless ``every``."""
        if delay_s:
            await asyncio.sleep(delay_s)
        if not (every or self.needs_trades(o)) or o.venue_order_id is None:
            return
        try:
            trades = await self.gateway.rest.user_trades(o.symbol, order_id=o.venue_order_id)
        except VenueError as exc:
            log.warning("userTrades %s order %s: %s", o.symbol, o.venue_order_id, exc)
            return
        for t in trades:
            if int(t["orderId"]) == o.venue_order_id:
                self.add_fill(o, Fill(int(t["id"]), o.client_order_id, o.symbol, o.side, Decimal(t["price"]),
                                      Decimal(t["qty"]), Decimal(t["commission"]), bool(t["maker"]), int(t["time"])))

    async def resync_live(self) -> None:
        """After a lost connection: every live order takes the venue's state and its missed fills."""
        for cid in list(self.live):
            o = self.orders[cid]
            if not o.state.final and o.state is not OState.NEW:
                await self.resolve(o)

    def adopt(self, row: dict, intent_id: str, purpose: str) -> Order:
        """An order of ours the venue has and the journal never recorded (sent, then the engine died before
        its row was written): rebuilt from the venue's row, registered and journalled."""
        from engine.oms.reconcile import adopt_order

        o = adopt_order(row, intent_id, purpose)
        self.orders[o.client_order_id] = o
        self.live.add(o.client_order_id)
        self.journal.order(o)
        self.journal.order_event(o.client_order_id, o.updated_ms, "adopted", o.state.value,
                                 {"orderId": o.venue_order_id})
        return o

    def load(self, orders: dict[str, Order], fills: list[Fill]) -> None:
        """Resume from the journal: orders with their trade ids, positions rebuilt from the fills."""
        self.orders.update(orders)
        self.live.update(cid for cid, o in orders.items() if not o.state.final)
        for f in fills:
            self.positions.apply(f.symbol, f.side, f.price, f.qty, f.fee)


def _order(inst: Instrument, buy: bool, lots: int, ticks: int | None, tif: str | None, reduce_only: bool, cid: str,
           intent_id: str | None, purpose: str) -> Order:
    """A new LIMIT (``ticks``) or MARKET (``ticks`` None) ``Order`` from integer lots and ticks."""
    price = None if ticks is None else inst.ticks_to_price(ticks)
    return Order(cid, inst.symbol, "BUY" if buy else "SELL", "MARKET" if price is None else "LIMIT",
                 inst.lots_to_qty(lots), price, None if price is None else tif, reduce_only=reduce_only,
                 intent_id=intent_id, purpose=purpose)
