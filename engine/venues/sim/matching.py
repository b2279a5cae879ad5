"""The deterministic matching core of the simulated Binance USD-M venue: replays a recorded tape and matches our
orders against the recorded book, in-process, with time advanced explicitly in exchange nanoseconds.

Market replay
    The recorded book of each symbol is kept exactly by ``ext.feed.Feed`` fed the recorded bytes. Our orders only
    ever *adjust* it: per price, ``served qty = max(0, recorded - consumed) + ours``, where ``consumed`` is
    recorded liquidity our takers removed (it stays removed for the rest of that level's life: until the recorded
    level is deleted, and never more than the recorded quantity) and ``ours`` is the quantity of our resting orders.
    The served streams are the recorded events byte-for-byte while nothing is adjusted; otherwise:

    - a synthetic depthUpdate is published as soon as an action of ours changes a level (U = u = last served u + 1,
      pu = last served u); later recorded diffs get every id shifted by the number of synthetic diffs so far
      (so pu stays chained) and their levels at prices we affect rewritten to the served quantity; levels our fills
      changed while processing a recorded diff are added to that diff;
    - served bookTicker ``u`` = recorded u + that offset; its values are the recorded ones unless our adjustments
      touch the top, in which case they come from the adjusted book (a synthetic bookTicker follows a synthetic
      diff that changed the top);
    - our taker fills (and our maker fills that no recorded trade explains) print as trades with the next trade ids;
      recorded trade ids are shifted by the number of synthetic prints so far, so ids stay contiguous.

Matching (one-way mode, all at ``now_ns``; callers advance time first to model latency)
    - A marketable order walks the served book from the best opposite price, level by level, up to its limit price
      (MARKET: ``market_protect_bps`` from the best opposite price); each level is one price. Within a level the
      queue is FIFO: recorded lots ahead of one of our resting orders (its queue_ahead), that order, the rest.
      Our own accounts can trade with each other (self-trade prevention NONE, Binance's default).
    - A resting order is filled as maker (see ``models`` for the queue models) by: a recorded trade at its price with
      the aggressor on the other side, for the volume beyond queue_ahead (no extra print: the recorded print is that
      volume); a recorded trade through its price (a sell print below our bid, or a buy print at our bid), or the
      recorded opposite touch (book or bookTicker) reaching its price: filled entirely at its own price, with a
      print. Liquidity such a fill would have taken from the recorded opposite side is not removed.
    - STOP_MARKET / TAKE_PROFIT_MARKET trigger on the last recorded trade price (workingType CONTRACT_PRICE),
      then execute as MARKET (Binance's events: EXPIRED as the stop type, then NEW/TRADE as MARKET, same orderId).
    - Margin is checked at entry (cross, no liquidation); stop orders reserve none and are not checked at trigger.
"""

from __future__ import annotations

import dataclasses
import random
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path

import orjson

from engine.errors import ConfigError
from engine.model import Instrument, OrderStatus, OrderType, TimeInForce
from engine.venues.binance import codes
from engine.venues.sim.account import ZERO, Account, Position
from engine.venues.sim.exchange_info import tape_instruments
from engine.venues.sim.models import (
    MS,
    ORDER_WOULD_IMMEDIATELY_TRIGGER,
    LatencyModel,
    MarketMsg,
    SimBalance,
    SimConfig,
    SimFill,
    SimOrder,
    SimPosition,
    SimReject,
    SimUnavailable,
    fmt_amount,
    queue_after_depth,
    queue_after_trade,
)
from engine.venues.sim.tape import (
    AGG_TRADE,
    BOOK_TICKER,
    DEPTH,
    MARK_PRICE,
    SNAPSHOT,
    TRADE,
    SymbolStreams,
    Tape,
    TapeEvent,
    lap_of,
    load_tape,
    shifted,
)
from ext.feed import Feed

BID, ASK = 0, 1
K_DEPTH_APPLIED = 1
FUNDING_MS = 8 * 3600 * 1000          # Binance USD-M funds every 8 h (00, 08, 16 UTC)
STOP_TYPES = (OrderType.STOP_MARKET, OrderType.TAKE_PROFIT_MARKET)
_ID_CHARS = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"


def _better(side: int, a: int, b: int) -> bool:
    """True when price ``a`` is strictly better than ``b`` on ``side`` (higher bid, lower ask)."""
    return a > b if side == BID else a < b


@dataclass(slots=True)
class _Batch:
    """What one action (an order request or one recorded event) changed: served levels and trade prints."""

    dirty: set[tuple[int, int]] = field(default_factory=set)
    prints: list[MarketMsg] = field(default_factory=list)
    accounts: set[str] = field(default_factory=set)


@dataclass(slots=True)
class _Seg:
    """One slice of a taker walk: ``lots`` at ``price`` from recorded liquidity (maker None) or one of ours."""

    price: int
    lots: int
    maker: SimOrder | None


class _Sym:
    """Per-symbol state: the recorded book, our adjustments to it, and the served streams' id offsets."""

    def __init__(self, inst: Instrument, feed: Feed, streams: SymbolStreams) -> None:
        self.inst = inst
        self.symbol = inst.symbol
        self.sf = feed[inst.symbol]
        self.sf.signals_on = False
        self.book = self.sf.book
        self.streams = streams
        self.pdp = streams.price_decimals if streams.price_decimals is not None else Instrument.grid(inst.tick_size)[1]
        self.qdp = streams.qty_decimals if streams.qty_decimals is not None else Instrument.grid(inst.step_size)[1]
        self.depth_stream = streams.depth or f"{inst.symbol.lower()}@depth@0ms"
        self.trade_stream = streams.trade or ("" if streams.agg_trade else f"{inst.symbol.lower()}@trade")
        self.consumed: tuple[dict[int, int], dict[int, int]] = ({}, {})
        self.resting: tuple[dict[int, list[SimOrder]], dict[int, list[SimOrder]]] = ({}, {})
        self.traded: tuple[dict[int, int], dict[int, int]] = ({}, {})   # trade lots at a level since its last diff
        self.stops: list[SimOrder] = []
        self.depth_off = 0
        self.trade_off = 0
        self.agg_off = 0
        first_t = streams.first_trade_id
        self.last_trade_id = first_t - 1 if first_t is not None else 0
        self.last_agg_id = streams.first_agg_id - 1 if streams.first_agg_id is not None else 0
        self.last_price: int | None = None
        self.mark: Decimal | None = None
        self.mark_stream = streams.mark_price or f"{inst.symbol.lower()}@markPrice@1s"
        self.synth_mark_ns = 0 if streams.mark_price else 1   # next synthetic markPriceUpdate (0: recorded ones)
        self._px: dict[str, int] = {}
        self._qty: dict[str, int] = {}

    # ---- conversions -----------------------------------------------------------------------------------------

    def px(self, s: str) -> int:
        v = self._px.get(s)
        if v is None:
            v = self._px[s] = self.inst.price_to_ticks(s)
        return v

    def qty(self, s: str) -> int:
        v = self._qty.get(s)
        if v is None:
            v = self._qty[s] = self.inst.qty_to_lots(s)
        return v

    def px_str(self, ticks: int) -> str:
        return f"{ticks * self.inst.tick_size:.{self.pdp}f}"

    def qty_str(self, lots: int) -> str:
        return f"{lots * self.inst.step_size:.{self.qdp}f}"

    # ---- the served (adjusted) book --------------------------------------------------------------------------

    @property
    def adjusted(self) -> bool:
        return bool(self.consumed[0] or self.consumed[1] or self.resting[0] or self.resting[1])

    def ours(self, side: int, price: int) -> int:
        orders = self.resting[side].get(price)
        return sum(o.remaining_lots for o in orders) if orders else 0

    def available(self, side: int, price: int) -> int:
        """Recorded quantity at a level not consumed by our takers."""
        return max(0, self.book.qty_at(side, price) - self.consumed[side].get(price, 0))

    def served_qty(self, side: int, price: int) -> int:
        return self.available(side, price) + self.ours(side, price)

    def levels(self, side: int, n: int) -> list[tuple[int, int]]:
        """The best ``n`` levels of the served book on one side, best first."""
        rec = self.book.top(side, n + len(self.consumed[side]))
        merged: dict[int, int] = {}
        cons = self.consumed[side]
        for p, q in rec:
            a = q - cons.get(p, 0)
            if a > 0:
                merged[p] = a
        worst = rec[-1][0] if len(rec) >= n + len(cons) and rec else None
        for p, orders in self.resting[side].items():
            if worst is not None and _better(side, worst, p):
                continue                                  # deeper than what we fetched: not among the best n
            merged[p] = merged.get(p, 0) + sum(o.remaining_lots for o in orders)
        prices = sorted(merged, reverse=side == BID)[:n]
        return [(p, merged[p]) for p in prices]

    def top(self) -> tuple[tuple[int, int] | None, tuple[int, int] | None]:
        b, a = self.levels(BID, 1), self.levels(ASK, 1)
        return (b[0] if b else None), (a[0] if a else None)

    def best_available(self, side: int) -> int | None:
        """Best recorded price on ``side`` with liquidity our takers have not consumed."""
        cons = self.consumed[side]
        n = 4
        while True:
            rec = self.book.top(side, n)
            for p, q in rec:
                if q > cons.get(p, 0):
                    return p
            if len(rec) < n:
                return None
            n *= 4

    def walk_levels(self, side: int, bound: int | None) -> list[tuple[int, int, list[SimOrder]]]:
        """Served levels of ``side`` from the best one up to ``bound`` (inclusive; None: all), as
        (price, recorded available, our resting orders there)."""
        n = 64
        while True:
            rec = self.book.top(side, n)
            if len(rec) < n or (bound is not None and rec and not _better(side, rec[-1][0], bound)):
                break
            n *= 4
        cons = self.consumed[side]
        avail = {p: q - cons.get(p, 0) for p, q in rec if bound is None or not _better(side, bound, p)}
        prices = {p for p, a in avail.items() if a > 0}
        prices.update(p for p in self.resting[side] if bound is None or not _better(side, bound, p))
        return [(p, max(0, avail.get(p, 0)), self.resting[side].get(p, []))
                for p in sorted(prices, reverse=side == BID)]

    def mark_price(self) -> Decimal | None:
        if self.mark is not None:
            return self.mark
        bb, ba = self.book.best(BID), self.book.best(ASK)
        if bb and ba:
            return (self.inst.ticks_to_price(bb[0]) + self.inst.ticks_to_price(ba[0])) / 2
        if self.last_price is not None:
            return self.inst.ticks_to_price(self.last_price)
        return None


class SimExchange:
    """A simulated Binance USD-M venue replaying a recording (see the module docstring for the models).

    ``instruments`` default to ``engine.model.KNOWN_INSTRUMENTS`` for the tape's symbols, and for a symbol no table
    knows are inferred from the tape (``exchange_info.tape_instruments``). Nothing happens on its own:
    ``advance(until_ns)`` applies recorded events and returns the market messages the venue publishes; order
    methods act at ``now_ns``. User data events accumulate until ``drain_user_events()``.
    """

    def __init__(self, paths: list[str | Path] | Tape, instruments: dict[str, Instrument] | None = None,
                 cfg: SimConfig | None = None) -> None:
        self.cfg = cfg or SimConfig()
        self.tape = paths if isinstance(paths, Tape) else load_tape(paths)
        self.instruments = tape_instruments(self.tape, instruments)
        insts = list(self.instruments.values())
        self._feed = Feed(insts)
        self._syms = {i.symbol: _Sym(i, self._feed, self.tape.streams[i.symbol]) for i in insts}
        self.latency = LatencyModel(self.cfg.feed_latency, self.cfg.entry_latency, self.cfg.ack_latency,
                                    self.cfg.seed, self.tape.recorded_latencies_ns()
                                    if self.cfg.feed_latency == "recorded" else None, self.cfg.recorded_floor_ms)
        self.base_tape = self.tape
        self.lap = 0                                        # 0: the recording; n: its n-th replay (``next_lap``)
        events = self.tape.events
        self._next_depth = self._index_next_depth(events)
        self._cursor = 0
        self._now = events[0].time_ns - 1 if events else 0
        self._last_seq = -1
        self._outbox: list[MarketMsg] = []
        self._user_events: list[tuple[str, dict]] = []
        self._accounts: dict[str, Account] = {}
        self._open: dict[str, dict[int, SimOrder]] = {}
        self._orders: dict[str, dict[int, SimOrder]] = {}
        self._by_client: dict[str, dict[str, SimOrder]] = {}
        self._fills: dict[str, list[SimFill]] = {}
        self._timers: dict[tuple[str, str], int] = {}
        self._next_order_id = 1
        self._rng = random.Random(f"tapeshot-sim/{self.cfg.seed}/client-ids")

    @staticmethod
    def _index_next_depth(events: tuple[TapeEvent, ...]) -> list[int]:
        """For each event, the index of the next depthUpdate of the same symbol after it (-1: none)."""
        out = [-1] * len(events)
        nxt: dict[str, int] = {}
        for i in range(len(events) - 1, -1, -1):
            ev = events[i]
            out[i] = nxt.get(ev.symbol, -1)
            if ev.kind == DEPTH:
                nxt[ev.symbol] = i
        return out

    # ---- time and market data --------------------------------------------------------------------------------

    @property
    def now_ns(self) -> int:
        return self._now

    def next_time(self) -> int | None:
        """Exchange time of the next thing that will happen by itself (a recorded event or a countdown), or None."""
        t = self.tape.events[self._cursor].time_ns if self._cursor < len(self.tape.events) else None
        if self._timers:
            d = min(self._timers.values())
            t = d if t is None else min(t, d)
        return t

    def advance(self, until_ns: int) -> list[MarketMsg]:
        """Apply every recorded event with time <= ``until_ns`` in recorded order (and countdowns due), set
        ``now_ns = until_ns``, and return the market messages published (including any our orders caused since the
        previous call), in order. Time never goes back: an earlier ``until_ns`` only flushes pending messages."""
        out, self._outbox = self._outbox, []
        if until_ns < self._now:
            return out
        events = self.tape.events
        n = len(events)
        while self._cursor < n:
            ev = events[self._cursor]
            if ev.time_ns > until_ns:
                break
            if self._timers:
                self._fire_timers(ev.time_ns, out)
            if ev.time_ns > self._now:
                self._now = ev.time_ns
            self._cursor += 1
            self._last_seq = ev.seq
            self._apply(ev, out)
        if self._timers:
            self._fire_timers(until_ns, out)
        self._now = until_ns
        return out

    def drain_market(self) -> list[MarketMsg]:
        """Market messages our orders caused since the last ``advance``/``drain_market`` (without advancing)."""
        out, self._outbox = self._outbox, []
        return out

    @property
    def done(self) -> bool:
        """Every recorded event of the current lap has been applied (the tape has ended)."""
        return self._cursor >= len(self.tape.events)

    def next_lap(self, tape: Tape | None = None, start_ns: int | None = None) -> None:
        """Replay the recording again, as new market: its first event at ``start_ns`` (default: now + 1 s), every
        exchange time and update/trade id moved past the previous lap's (``tape.lap_of``). The recorded books
        resync from the tape's own snapshot; accounts, positions and resting orders carry over (consumed recorded
        liquidity is forgotten). ``tape``: the lap built beforehand (``build_lap``, e.g. in a thread)."""
        if tape is None:
            tape = self.build_lap(self.lap + 1, start_ns if start_ns is not None else self._now + 1_000_000_000)
        self.tape = tape
        self.lap += 1
        self._cursor = 0
        for st in self._syms.values():
            st.sf.request_resync()
            st.consumed[BID].clear()
            st.consumed[ASK].clear()
            st.traded[BID].clear()
            st.traded[ASK].clear()

    def build_lap(self, n: int, start_ns: int) -> Tape:
        """The tape of lap ``n`` starting at exchange time ``start_ns`` (pure: touches no state)."""
        return shifted(self.base_tape, lap_of(self.base_tape, n, start_ns))

    def synced(self, symbol: str) -> bool:
        return self._sym(symbol).sf.synced

    def book(self, symbol: str, side: int, n: int = 10, served: bool = True) -> list[tuple[int, int]]:
        """The best ``n`` levels (ticks, lots) of the served book (or of the recorded one, ``served=False``)."""
        st = self._sym(symbol)
        return st.levels(side, n) if served else st.book.top(side, n)

    def depth_snapshot(self, symbol: str, limit: int = 1000) -> dict:
        """The REST ``/fapi/v1/depth`` answer for the served book, consistent with the served diff stream."""
        st = self._sym(symbol)
        if not st.sf.synced:
            raise SimUnavailable(f"{symbol}: the recorded book is not synced yet")
        ms = self._now // MS
        return {
            "lastUpdateId": st.sf.last_u + st.depth_off, "E": ms, "T": ms,
            "bids": [[st.px_str(p), st.qty_str(q)] for p, q in st.levels(BID, limit)],
            "asks": [[st.px_str(p), st.qty_str(q)] for p, q in st.levels(ASK, limit)],
        }

    def last_price(self, symbol: str) -> int | None:
        """Last recorded (or our) trade price in ticks."""
        return self._sym(symbol).last_price

    def mark_price(self, symbol: str) -> Decimal | None:
        return self._sym(symbol).mark_price()

    # ---- accounts --------------------------------------------------------------------------------------------

    def open_account(self, name: str, usdt: Decimal, leverage: int | None = None) -> None:
        """Create an account with ``usdt`` in its wallet (leverage: ``cfg.leverage`` by default)."""
        if name in self._accounts:
            raise ConfigError(f"account {name!r} exists")
        lev = self.cfg.leverage if leverage is None else leverage
        if lev < 1:
            raise ConfigError("leverage must be >= 1")
        self._accounts[name] = Account(name, Decimal(usdt), lev)
        self._open[name] = {}
        self._orders[name] = {}
        self._by_client[name] = {}
        self._fills[name] = []

    @property
    def accounts(self) -> list[str]:
        return list(self._accounts)

    def set_leverage(self, account: str, leverage: int) -> None:
        if leverage < 1:
            raise SimReject(codes.INVALID_PARAMETER)
        self._account(account).leverage = leverage

    def positions(self, account: str) -> list[SimPosition]:
        """The account's position in every symbol of the venue (zero positions included)."""
        acct = self._account(account)
        return [self._position_view(acct, st) for st in self._syms.values()]

    def balance(self, account: str) -> SimBalance:
        acct = self._account(account)
        upnl, pos_margin = ZERO, ZERO
        for st in self._syms.values():
            pos = acct.positions.get(st.symbol)
            mark = st.mark_price()
            if pos is None or pos.qty_lots == 0 or mark is None:
                continue
            upnl += pos.unrealized(st.inst, mark)
            pos_margin += abs(st.inst.lots_to_qty(pos.qty_lots)) * mark / acct.leverage
        order_margin = self._order_margin(acct)
        return SimBalance("USDT", acct.wallet, upnl, pos_margin, order_margin,
                          acct.wallet + upnl - pos_margin - order_margin)

    def fills(self, account: str, symbol: str | None = None) -> list[SimFill]:
        """Every execution of the account's orders (oldest first)."""
        return [f for f in self._fills[self._check_account(account)] if symbol is None or f.symbol == symbol]

    def drain_user_events(self) -> list[tuple[str, dict]]:
        """(account, event) pairs in Binance's user data stream shapes, oldest first."""
        out, self._user_events = self._user_events, []
        return out

    # ---- orders ----------------------------------------------------------------------------------------------

    def place(self, account: str, symbol: str, side: str, type: OrderType | str, qty_lots: int | None,
              price_ticks: int | None = None, tif: TimeInForce | str = TimeInForce.GTC, stop_ticks: int | None = None,
              reduce_only: bool = False, close_position: bool = False,
              client_order_id: str | None = None) -> SimOrder:
        """Place an order at ``now_ns``; returns the order as it stands after matching (a copy).
        Raises ``SimReject`` with Binance's code, ``SimUnavailable`` before the recorded book is synced."""
        acct = self._account(account)
        st = self._syms.get(symbol)
        if st is None:
            raise SimReject(codes.BAD_SYMBOL)
        if side not in ("BUY", "SELL"):
            raise SimReject(codes.INVALID_SIDE)
        try:
            otype, tif = OrderType(type), TimeInForce(tif)
        except ValueError as exc:
            raise SimReject(codes.INVALID_ORDER_TYPE if "OrderType" in str(exc) else codes.INVALID_TIF,
                            "Invalid orderType." if "OrderType" in str(exc) else "Invalid timeInForce.") from exc
        if not st.sf.synced:
            raise SimUnavailable(f"{symbol}: the recorded book is not synced yet")
        if client_order_id is not None and any(o.client_order_id == client_order_id
                                               for o in self._open[account].values()):
            raise SimReject(codes.DUPLICATED_CLIENT_ORDER_ID)
        buy = side == "BUY"
        is_stop = otype in STOP_TYPES
        if close_position:
            if not is_stop:
                raise SimReject(codes.INVALID_PARAMETER, "closePosition is only for STOP_MARKET and "
                                "TAKE_PROFIT_MARKET orders.")
            qty_lots = 0
        elif qty_lots is None:
            raise SimReject(codes.MANDATORY_PARAM_EMPTY_OR_MALFORMED, param="quantity")
        elif qty_lots <= 0:
            raise SimReject(codes.QTY_LESS_THAN_ZERO)
        if otype is OrderType.LIMIT:
            if price_ticks is None:
                raise SimReject(codes.MANDATORY_PARAM_EMPTY_OR_MALFORMED, param="price")
            if price_ticks <= 0:
                raise SimReject(codes.PRICE_LESS_THAN_ZERO)
        else:
            price_ticks = None
        if is_stop:
            if stop_ticks is None:
                raise SimReject(codes.MANDATORY_PARAM_EMPTY_OR_MALFORMED, param="stopPrice")
            if stop_ticks <= 0:
                raise SimReject(codes.PRICE_LESS_THAN_ZERO)
        else:
            stop_ticks = None
        inst = st.inst
        if not close_position and inst.min_qty is not None and inst.lots_to_qty(qty_lots) < inst.min_qty:
            raise SimReject(codes.QTY_LESS_THAN_MIN_QTY)
        pos = acct.position(symbol).qty_lots
        if reduce_only and not is_stop and (pos == 0 or (pos > 0) == buy):
            raise SimReject(codes.REDUCE_ONLY_REJECT)       # (a reduce-only stop is judged when it triggers)
        top_bid, top_ask = st.top()
        opposite = top_ask if buy else top_bid
        ref_ticks = price_ticks if otype is OrderType.LIMIT else stop_ticks if is_stop else \
            (opposite[0] if opposite else st.last_price)
        if not (reduce_only or close_position) and ref_ticks is not None:
            notional = inst.lots_to_qty(qty_lots) * inst.ticks_to_price(ref_ticks)
            if notional < inst.min_notional:
                raise SimReject(codes.MIN_NOTIONAL, notional=f"{inst.min_notional.normalize():f}")
        if otype is OrderType.LIMIT and tif is TimeInForce.GTX and opposite is not None and price_ticks is not None \
                and (opposite[0] <= price_ticks if buy else opposite[0] >= price_ticks):
            raise SimReject(codes.GTX_ORDER_REJECT)
        if is_stop and st.last_price is not None and self._stop_hit(otype, buy, stop_ticks, st.last_price):
            raise SimReject(ORDER_WOULD_IMMEDIATELY_TRIGGER)
        if not (reduce_only or close_position or is_stop) and ref_ticks is not None:
            increase = qty_lots if pos == 0 or (pos > 0) == buy else max(0, qty_lots - abs(pos))
            need = inst.lots_to_qty(increase) * inst.ticks_to_price(ref_ticks) / acct.leverage
            if need > 0 and need > self.balance(account).available_balance:
                raise SimReject(codes.MARGIN_NOT_SUFFICIEN)

        o = SimOrder(order_id=self._next_order_id, client_order_id=client_order_id or self._new_client_id(),
                     account=account, symbol=symbol, side=side, type=otype, orig_type=otype, tif=tif,
                     price_ticks=price_ticks, stop_ticks=stop_ticks, qty_lots=qty_lots, reduce_only=reduce_only,
                     close_position=close_position, time_ns=self._now, update_ns=self._now,
                     price_decimals=st.pdp)
        self._next_order_id += 1
        self._orders[account][o.order_id] = o
        self._by_client[account][o.client_order_id] = o
        self._open[account][o.order_id] = o
        batch = _Batch()
        batch.accounts.add(account)
        before = st.top()
        self._order_event(st, o, "NEW")
        if is_stop:
            st.stops.append(o)
        elif otype is OrderType.MARKET:
            self._take(st, o, self._market_bound(st, buy, opposite), batch)
            self._expire_rest(st, o)
        else:
            self._limit(st, o, batch)
        if batch.prints:
            self._check_stops(st, batch)
        self._sweep_reduce_only(st, batch)
        self._finish(st, batch, before, self._outbox)
        return dataclasses.replace(o)

    def cancel(self, account: str, symbol: str, order_id: int | None = None,
               client_order_id: str | None = None) -> SimOrder:
        """Cancel an open order (-2011 when it is unknown or no longer open)."""
        st = self._sym_or_reject(symbol)
        o = self._find(account, symbol, order_id, client_order_id)
        if o is None or o.status.final:
            raise SimReject(codes.CANCEL_REJECTED)
        batch = _Batch()
        before = st.top()
        self._close_order(st, o, OrderStatus.CANCELED, batch)
        self._finish(st, batch, before, self._outbox)
        return dataclasses.replace(o)

    def cancel_all(self, account: str, symbol: str) -> list[SimOrder]:
        """Cancel every open order of the account in ``symbol`` (oldest first); returns them."""
        st = self._sym_or_reject(symbol)
        batch = _Batch()
        before = st.top()
        done = []
        for o in sorted(self._open[self._check_account(account)].values(), key=lambda x: x.order_id):
            if o.symbol == symbol:
                self._close_order(st, o, OrderStatus.CANCELED, batch)
                done.append(dataclasses.replace(o))
        self._finish(st, batch, before, self._outbox)
        return done

    def query(self, account: str, symbol: str, order_id: int | None = None,
              client_order_id: str | None = None) -> SimOrder:
        """An order of the account, open or final (-2013 when unknown)."""
        self._sym_or_reject(symbol)
        o = self._find(account, symbol, order_id, client_order_id)
        if o is None:
            raise SimReject(codes.NO_SUCH_ORDER)
        return dataclasses.replace(o)

    def open_orders(self, account: str, symbol: str | None = None) -> list[SimOrder]:
        """Open orders of the account (of one symbol, or all), oldest first."""
        if symbol is not None:
            self._sym_or_reject(symbol)
        return [dataclasses.replace(o) for o in sorted(self._open[self._check_account(account)].values(),
                                                       key=lambda x: x.order_id)
                if symbol is None or o.symbol == symbol]

    def orders(self, account: str, symbol: str) -> list[SimOrder]:
        """Every order of the account in ``symbol``, open or final (copies, by ascending id). Rejected orders
        were never created, as on Binance; archiving old ones is the history query's business."""
        self._sym_or_reject(symbol)
        return [dataclasses.replace(o) for o in sorted(self._orders[self._check_account(account)].values(),
                                                       key=lambda x: x.order_id) if o.symbol == symbol]

    def countdown_cancel_all(self, account: str, symbol: str, countdown_ms: int) -> dict:
        """Binance's dead man's switch: unless renewed, cancel all open orders of ``symbol`` ``countdown_ms`` from
        now (0 disables). Returns Binance's answer."""
        self._sym_or_reject(symbol)
        self._check_account(account)
        if countdown_ms < 0:
            raise SimReject(codes.INVALID_PARAMETER)
        if countdown_ms == 0:
            self._timers.pop((account, symbol), None)
        else:
            self._timers[(account, symbol)] = self._now + countdown_ms * MS
        return {"symbol": symbol, "countdownTime": str(countdown_ms)}

    # ---- recorded events -------------------------------------------------------------------------------------

    def _apply(self, ev: TapeEvent, out: list[MarketMsg]) -> None:
        st = self._syms.get(ev.symbol)
        kind = ev.kind
        if st is None:
            if kind != SNAPSHOT:
                out.append(MarketMsg(ev.stream, ev.symbol, ev.time_ns, ev.data, ev.seq))
            return
        if st.synth_mark_ns and ev.time_ns >= st.synth_mark_ns:
            self._synthetic_mark(st, ev, out)
        if kind == DEPTH:
            self._on_depth(st, ev, out)
        elif kind == TRADE:
            self._on_trade(st, ev, out)
        elif kind == BOOK_TICKER:
            self._on_ticker(st, ev, out)
        elif kind == AGG_TRADE:
            self._on_agg_trade(st, ev, out)
        elif kind == SNAPSHOT:
            self._feed.on_snapshot(st.symbol, ev.data)
        else:
            if kind == MARK_PRICE:
                p = ev.obj.get("p")
                if isinstance(p, str):
                    st.mark = Decimal(p)
            out.append(MarketMsg(ev.stream, ev.symbol, ev.time_ns, ev.data, ev.seq))

    def _synthetic_mark(self, st: _Sym, ev: TapeEvent, out: list[MarketMsg]) -> None:
        """A tape without a markPrice stream still has one, as Binance always does: once a second of exchange
        time a markPriceUpdate derived from the recorded book (mark, index and settle price: its mid; funding
        rate 0.01%, Binance's default; next funding: the next 00/08/16 h UTC)."""
        sec = ev.time_ns // 1_000_000_000
        st.synth_mark_ns = (sec + 1) * 1_000_000_000
        bb, ba = st.book.best(BID), st.book.best(ASK)
        if not (st.sf.synced and bb and ba):
            return
        mid = (st.inst.ticks_to_price(bb[0]) + st.inst.ticks_to_price(ba[0])) / 2
        mark = _plain8(mid)
        ms = sec * 1000
        payload = orjson.dumps({"e": "markPriceUpdate", "E": ms, "s": st.symbol, "p": mark, "P": mark, "i": mark,
                                "r": "0.00010000", "T": (ms // FUNDING_MS + 1) * FUNDING_MS})
        out.append(MarketMsg(st.mark_stream, st.symbol, sec * 1_000_000_000, payload, ev.seq, True))

    def _on_depth(self, st: _Sym, ev: TapeEvent, out: list[MarketMsg]) -> None:
        if not st.adjusted:
            self._feed.on_message(ev.raw)
            out.append(self._served_diff(st, ev, set()))
            return
        d = ev.obj
        watch: list[tuple[int, int, int]] = []
        for side, key in ((BID, "b"), (ASK, "a")):
            cons, rest = st.consumed[side], st.resting[side]
            if cons or rest:
                for ps, _ in d.get(key, ()):
                    p = st.px(ps)
                    if p in cons or p in rest:
                        watch.append((side, p, st.book.qty_at(side, p)))
        applied = self._feed.on_message(ev.raw) == K_DEPTH_APPLIED
        batch = _Batch()
        if applied:
            model, power = self.cfg.queue_model, self.cfg.queue_power
            for side, p, prev in watch:
                cons = st.consumed[side]
                new = st.book.qty_at(side, p)
                c_prev = cons.get(p, 0)
                c_new = min(c_prev, new)
                if c_new > 0:
                    cons[p] = c_new
                else:
                    cons.pop(p, None)
                traded = st.traded[side].pop(p, 0)
                for o in st.resting[side].get(p, ()):
                    o.set_queue(queue_after_depth(model, power, o.queue_pos, max(0, prev - c_prev), new - c_new,
                                                  traded))
                batch.dirty.add((side, p))
            self._touch_fills(st, st.best_available(ASK), st.best_available(BID), batch)
        self._sweep_reduce_only(st, batch)
        out.append(self._served_diff(st, ev, batch.dirty))
        out.extend(batch.prints)

    def _served_diff(self, st: _Sym, ev: TapeEvent, touched: set[tuple[int, int]]) -> MarketMsg:
        """The recorded diff as served: ids shifted, levels we affect rewritten, levels our fills changed added."""
        off = st.depth_off
        if off == 0 and not touched:
            return MarketMsg(ev.stream, st.symbol, ev.time_ns, ev.data, ev.seq)
        d = dict(ev.obj)
        for k in ("U", "u", "pu"):
            if isinstance(d.get(k), int):
                d[k] += off
        if touched:
            extra = set(touched)
            for side, key in ((BID, "b"), (ASK, "a")):
                levels = []
                for ps, qs in d.get(key, ()):
                    p = st.px(ps)
                    if (side, p) in touched:
                        extra.discard((side, p))
                        levels.append([ps, st.qty_str(st.served_qty(side, p))])
                    else:
                        levels.append([ps, qs])
                for side2, p in sorted(extra, key=lambda x: x[1], reverse=side == BID):
                    if side2 == side:
                        levels.append([st.px_str(p), st.qty_str(st.served_qty(side, p))])
                d[key] = levels
        return MarketMsg(ev.stream, st.symbol, ev.time_ns, orjson.dumps(d), ev.seq, synthetic=False)

    def _on_trade(self, st: _Sym, ev: TapeEvent, out: list[MarketMsg]) -> None:
        self._feed.on_message(ev.raw)
        d = ev.obj
        payload = ev.data
        if st.trade_off:
            nd = dict(d)
            nd["t"] = d["t"] + st.trade_off
            payload = orjson.dumps(nd)
        st.last_trade_id = d["t"] + st.trade_off
        out.append(MarketMsg(ev.stream, st.symbol, ev.time_ns, payload, ev.seq))
        price, lots = st.px(d["p"]), st.qty(d["q"])
        if d.get("X", "MARKET") == "MARKET":
            self._after_trade(st, price, lots, bool(d["m"]), st.last_trade_id, out)

    def _on_agg_trade(self, st: _Sym, ev: TapeEvent, out: list[MarketMsg]) -> None:
        self._feed.on_message(ev.raw)
        d = ev.obj
        payload = ev.data
        if st.agg_off or (st.trade_off and not st.streams.trade):
            nd = dict(d)
            nd["a"] = d["a"] + st.agg_off
            if not st.streams.trade:
                nd["f"] = d["f"] + st.trade_off
                nd["l"] = d["l"] + st.trade_off
            payload = orjson.dumps(nd)
        st.last_agg_id = d["a"] + st.agg_off
        out.append(MarketMsg(ev.stream, st.symbol, ev.time_ns, payload, ev.seq))
        if not st.streams.trade:                          # aggTrades are the only trades of this tape
            st.last_trade_id = d["l"] + st.trade_off
            self._after_trade(st, st.px(d["p"]), st.qty(d["q"]), bool(d["m"]), st.last_trade_id, out)

    def _after_trade(self, st: _Sym, price: int, lots: int, buyer_maker: bool, trade_id: int,
                     out: list[MarketMsg]) -> None:
        """A recorded trade: last price, queue progress and maker fills of our resting orders, stop triggers."""
        st.last_price = price
        if not (st.resting[BID] or st.resting[ASK] or st.stops):
            return
        batch = _Batch()
        before = st.top()
        maker_side = BID if buyer_maker else ASK
        orders = st.resting[maker_side].get(price)
        if orders:
            if self.cfg.queue_model == "prob":
                st.traded[maker_side][price] = st.traded[maker_side].get(price, 0) + lots
            vol = lots
            for o in sorted(orders, key=lambda x: (x.queue_pos, x.order_id)):
                q, excess = queue_after_trade(o.queue_pos, vol)
                o.set_queue(q)
                n = min(excess, self._fillable(o, o.remaining_lots))
                if n > 0:
                    self._fill(st, o, n, price, True, trade_id, batch)
                    vol -= n
        # through our price: a sell print below our bid / a buy print at or below it (and symmetrically for asks)
        for side in (BID, ASK):
            for p in list(st.resting[side]):
                through = (p > price or (p == price and not buyer_maker)) if side == BID else \
                    (p < price or (p == price and buyer_maker))
                if through:
                    self._fill_level(st, side, p, batch)
        st.last_price = price                             # our through-fill prints came first: the print is last
        self._check_stops(st, batch)
        self._sweep_reduce_only(st, batch)
        self._finish(st, batch, before, out)

    def _on_ticker(self, st: _Sym, ev: TapeEvent, out: list[MarketMsg]) -> None:
        self._feed.on_message(ev.raw)
        d = ev.obj
        if st.resting[BID] or st.resting[ASK]:
            batch = _Batch()
            before = st.top()
            a, b = st.px(d["a"]), st.px(d["b"])
            ask = a if st.qty(d["A"]) > st.consumed[ASK].get(a, 0) else None
            bid = b if st.qty(d["B"]) > st.consumed[BID].get(b, 0) else None
            self._touch_fills(st, ask, bid, batch)
            self._sweep_reduce_only(st, batch)
            self._finish(st, batch, before, out)
        out.append(MarketMsg(ev.stream, st.symbol, ev.time_ns, self._served_ticker(st, ev), ev.seq))

    def _ticker_u(self, st: _Sym, ev: TapeEvent) -> int:
        """Served ``u`` of a recorded bookTicker while our adjustments are live: recorded u + the current offset,
        refined so that it keeps naming the book state its values describe when synthetic diffs of ours are inserted
        after it was served but before the diffs it refers to (Binance often sends a bookTicker ahead of its diff):

        - a ticker of the current recorded state is served with the current state's served id (the last served u):
          a synthetic diff inserted later starts a new state after it instead of swallowing it;
        - a ticker inside a later diff's own id range is moved at most two ids further into that range, so that up
          to two synthetic diffs inserted before that diff cannot shift it out of the range (onto the state after our
          synthetic diff, which its values do not describe).

        A ticker of a later whole state keeps recorded u + offset: its values cannot know about an action of ours
        taken before that state is served, so no id makes it right then (see ``SimExchange`` notes).
        """
        u = ev.obj["u"]
        off = st.depth_off
        prev = st.sf.last_u if st.sf.synced else None
        i = self._next_depth[ev.seq]
        first = True
        for _ in range(8):
            if i < 0:
                break
            d = self.tape.events[i].obj
            lo, hi = d.get("U"), d.get("u")
            if not (isinstance(lo, int) and isinstance(hi, int)):
                break
            if u < lo:                                    # the closed state [prev, lo)
                if first and prev is not None and u >= prev:
                    return prev + off
                break
            if u < hi:                                    # inside that diff's own range
                return max(u, min(lo + 2, hi - 1)) + off
            prev, first = hi, False
            i = self._next_depth[i]
        return u + off

    def _served_ticker(self, st: _Sym, ev: TapeEvent) -> bytes:
        d = ev.obj
        if not st.adjusted:
            if st.depth_off == 0:
                return ev.data
            nd = dict(d)
            nd["u"] = self._ticker_u(st, ev)
            return orjson.dumps(nd)
        nd = dict(d)
        nd["u"] = self._ticker_u(st, ev)
        changed = nd["u"] != d["u"]
        for side, pk, qk in ((BID, "b", "B"), (ASK, "a", "A")):
            p, q = st.px(d[pk]), st.qty(d[qk])
            top = self._adjusted_touch(st, ev, side, p, q)
            if top is None:
                nd[pk], nd[qk] = st.px_str(0), st.qty_str(0)
                changed = True
            elif top != (p, q):
                if top[0] != p:
                    nd[pk] = st.px_str(top[0])
                nd[qk] = st.qty_str(top[1])
                changed = True
        return orjson.dumps(nd) if changed else ev.data

    def _adjusted_touch(self, st: _Sym, ev: TapeEvent, side: int, p: int, q: int) -> tuple[int, int] | None:
        """The served touch of ``side`` given the recorded ticker's touch (p, q) and our adjustments."""
        better = [x for x in st.resting[side] if p == 0 or _better(side, x, p)]
        if better:
            best = max(better) if side == BID else min(better)
            return best, st.ours(side, best)
        if p:
            adj = max(0, q - st.consumed[side].get(p, 0)) + st.ours(side, p)
            if adj > 0:
                return p, adj
        # the recorded touch is all ours to remove: the next served level of the book the ticker describes (the
        # current one, overlaid with the diffs still to come up to the ticker's id when it was sent ahead of them)
        levels = dict(st.book.top(side, 16 + len(st.consumed[side])))
        levels.update(self._pending_levels(st, ev, side))
        cons = st.consumed[side]
        prices = sorted(set(levels) | set(st.resting[side]), reverse=side == BID)
        for lp in prices:
            if p and not _better(side, p, lp):
                continue
            served = max(0, levels.get(lp, 0) - cons.get(lp, 0)) + st.ours(side, lp)
            if served > 0:
                return lp, served
        return None

    def _pending_levels(self, st: _Sym, ev: TapeEvent, side: int) -> dict[int, int]:
        """Levels of ``side`` set by the recorded diffs after ``ev`` whose ids the ticker ``ev`` already covers."""
        out: dict[int, int] = {}
        u = ev.obj["u"]
        key = "b" if side == BID else "a"
        i = self._next_depth[ev.seq]
        for _ in range(8):
            if i < 0:
                break
            d = self.tape.events[i].obj
            if not isinstance(d.get("u"), int) or d["u"] > u:
                break
            for ps, qs in d.get(key, ()):
                out[st.px(ps)] = st.qty(qs)
            i = self._next_depth[i]
        return out

    # ---- matching --------------------------------------------------------------------------------------------

    def _limit(self, st: _Sym, o: SimOrder, batch: _Batch) -> None:
        assert o.price_ticks is not None
        if o.tif is TimeInForce.FOK:
            segs = self._plan(st, o, o.remaining_lots, o.price_ticks)
            if sum(s.lots for s in segs) < o.remaining_lots:
                self._expire_rest(st, o)
                return
            self._execute(st, o, segs, batch)
            return
        if o.tif is not TimeInForce.GTX:
            self._take(st, o, o.price_ticks, batch)
        if o.remaining_lots == 0:
            return
        if o.tif is TimeInForce.IOC:
            self._expire_rest(st, o)
            return
        side, p = o.book_side, o.price_ticks
        o.resting = True
        st.resting[side].setdefault(p, []).append(o)
        st.traded[side].pop(p, None)
        o.set_queue(0.0 if self.cfg.queue_model == "front" else float(st.available(side, p)))
        batch.dirty.add((side, p))

    def _market_bound(self, st: _Sym, buy: bool, opposite: tuple[int, int] | None) -> int:
        if opposite is None:
            return 0 if buy else 1 << 62                   # nothing to walk
        best = opposite[0]
        off = best * self.cfg.market_protect_bps // 10_000
        return best + off if buy else best - off

    def _take(self, st: _Sym, o: SimOrder, bound: int, batch: _Batch) -> None:
        want = self._fillable(o, o.remaining_lots)
        if want > 0:
            self._execute(st, o, self._plan(st, o, want, bound), batch)

    def _plan(self, st: _Sym, o: SimOrder, want: int, bound: int) -> list[_Seg]:
        """Walk the served opposite book up to ``bound`` for ``want`` lots (FIFO within a level)."""
        segs: list[_Seg] = []
        side = 1 - o.book_side
        for p, avail, orders in st.walk_levels(side, bound):
            taken = 0
            for m in sorted(orders, key=lambda x: (x.queue_pos, x.order_id)):
                if want == 0:
                    break
                if m.account == o.account and m.order_id == o.order_id:
                    continue
                ahead = min(avail, int(-(-m.queue_pos // 1)))
                t = min(want, max(0, ahead - taken))
                if t:
                    segs.append(_Seg(p, t, None))
                    taken += t
                    want -= t
                n = min(want, self._fillable(m, m.remaining_lots))
                if n:
                    segs.append(_Seg(p, n, m))
                    want -= n
            t = min(want, avail - taken)
            if t > 0:
                segs.append(_Seg(p, t, None))
                want -= t
            if want == 0:
                break
        return segs

    def _execute(self, st: _Sym, o: SimOrder, segs: list[_Seg], batch: _Batch) -> None:
        side = 1 - o.book_side
        taken_at: dict[int, int] = {}
        for s in segs:
            tid = self._print(st, s.price, s.lots, buyer_maker=not o.is_buy, batch=batch)
            self._fill(st, o, s.lots, s.price, False, tid, batch)
            if s.maker is not None:
                self._fill(st, s.maker, s.lots, s.price, True, tid, batch)
            else:
                taken_at[s.price] = taken_at.get(s.price, 0) + s.lots
            batch.dirty.add((side, s.price))
        if not self.cfg.impact:
            return                             # impact switched off: the recorded liquidity stays displayed
        cons = st.consumed[side]
        for p, lots in taken_at.items():
            cons[p] = min(cons.get(p, 0) + lots, st.book.qty_at(side, p))
            for m in st.resting[side].get(p, ()):
                m.set_queue(m.queue_pos - lots)

    def _touch_fills(self, st: _Sym, ask: int | None, bid: int | None, batch: _Batch) -> None:
        """The recorded opposite touch reached our resting price: fill those orders entirely at their price."""
        if ask is not None:
            for p in [p for p in st.resting[BID] if p >= ask]:
                self._fill_level(st, BID, p, batch)
        if bid is not None:
            for p in [p for p in st.resting[ASK] if p <= bid]:
                self._fill_level(st, ASK, p, batch)

    def _fill_level(self, st: _Sym, side: int, price: int, batch: _Batch) -> None:
        """Fill every order of ours resting at (side, price) entirely as maker, each with its own print."""
        for o in sorted(st.resting[side].get(price, ()), key=lambda x: (x.queue_pos, x.order_id)):
            n = self._fillable(o, o.remaining_lots)
            if n > 0:
                tid = self._print(st, price, n, buyer_maker=side == BID, batch=batch)
                self._fill(st, o, n, price, True, tid, batch)

    def _fillable(self, o: SimOrder, lots: int) -> int:
        """How much of ``lots`` the order may execute now (reduce-only: never beyond the position)."""
        if not (o.reduce_only or o.close_position):
            return lots
        pos = self._accounts[o.account].position(o.symbol).qty_lots
        if pos == 0 or (pos > 0) == o.is_buy:
            return 0
        return min(lots, abs(pos))

    def _print(self, st: _Sym, price: int, lots: int, buyer_maker: bool, batch: _Batch) -> int:
        """A synthetic trade print (and aggTrade when the tape has that stream); returns its trade id."""
        st.trade_off += 1
        st.last_trade_id += 1
        tid = st.last_trade_id
        st.last_price = price
        ms = self._now // MS
        if st.trade_stream:
            payload = orjson.dumps({"e": "trade", "E": ms, "T": ms, "s": st.symbol, "t": tid, "p": st.px_str(price),
                                    "q": st.qty_str(lots), "X": "MARKET", "m": buyer_maker})
            batch.prints.append(MarketMsg(st.trade_stream, st.symbol, self._now, payload, self._last_seq, True))
        if st.streams.agg_trade:
            st.agg_off += 1
            st.last_agg_id += 1
            payload = orjson.dumps({"e": "aggTrade", "E": ms, "a": st.last_agg_id, "s": st.symbol,
                                    "p": st.px_str(price), "q": st.qty_str(lots), "f": tid, "l": tid, "T": ms,
                                    "m": buyer_maker})
            batch.prints.append(MarketMsg(st.streams.agg_trade, st.symbol, self._now, payload, self._last_seq, True))
        return tid

    def _fill(self, st: _Sym, o: SimOrder, lots: int, price_ticks: int, maker: bool, trade_id: int,
              batch: _Batch) -> None:
        inst = st.inst
        acct = self._accounts[o.account]
        qty = inst.lots_to_qty(lots)
        price = inst.ticks_to_price(price_ticks)
        quote = qty * price
        fee = quote * (self.cfg.maker_fee if maker else self.cfg.taker_fee)
        pos = acct.position(st.symbol)
        rp = pos.apply_fill(inst, lots if o.is_buy else -lots, price, fee, self._now)
        acct.wallet += rp - fee
        acct.fees_paid += fee
        o.filled_lots += lots
        o.cum_quote += quote
        o.avg_price = o.cum_quote / inst.lots_to_qty(o.filled_lots)
        o.status = OrderStatus.FILLED if o.remaining_lots == 0 else OrderStatus.PARTIALLY_FILLED
        o.update_ns = self._now
        batch.accounts.add(o.account)
        if o.resting:
            batch.dirty.add((o.book_side, o.price_ticks or 0))
            if o.remaining_lots == 0:
                self._unrest(st, o)
        if o.status.final:
            self._open[o.account].pop(o.order_id, None)
        self._fills[o.account].append(SimFill(o.account, st.symbol, o.order_id, trade_id, o.side, price_ticks, lots,
                                              quote, fee, rp, maker, self._now))
        self._order_event(st, o, "TRADE", lots, price_ticks, fee, trade_id, maker, rp)
        self._account_event(acct, st)

    def _unrest(self, st: _Sym, o: SimOrder) -> None:
        side, p = o.book_side, o.price_ticks
        orders = st.resting[side].get(p)  # type: ignore[arg-type]
        if orders is not None:
            orders.remove(o)
            if not orders:
                del st.resting[side][p]  # type: ignore[arg-type]
                st.traded[side].pop(p, None)  # type: ignore[arg-type]
        o.resting = False

    def _expire_rest(self, st: _Sym, o: SimOrder) -> None:
        """An order that cannot rest (MARKET, IOC, FOK, unfillable reduce-only) expires with what it did."""
        if o.remaining_lots > 0 and not o.status.final:
            o.status = OrderStatus.EXPIRED
            o.update_ns = self._now
            self._open[o.account].pop(o.order_id, None)
            self._order_event(st, o, "EXPIRED")

    def _close_order(self, st: _Sym, o: SimOrder, status: OrderStatus, batch: _Batch) -> None:
        if o.resting:
            batch.dirty.add((o.book_side, o.price_ticks or 0))
            self._unrest(st, o)
        if o in st.stops:
            st.stops.remove(o)
        o.status = status
        o.update_ns = self._now
        self._open[o.account].pop(o.order_id, None)
        self._order_event(st, o, "CANCELED" if status is OrderStatus.CANCELED else status.value)

    def _sweep_reduce_only(self, st: _Sym, batch: _Batch) -> None:
        """Reduce-only LIMIT orders that can no longer reduce the position (it closed or flipped) expire."""
        for name in sorted(batch.accounts):
            for o in sorted(self._open[name].values(), key=lambda x: x.order_id):
                if o.symbol == st.symbol and o.reduce_only and o.resting and self._fillable(o, 1) == 0:
                    self._close_order(st, o, OrderStatus.EXPIRED, batch)

    @staticmethod
    def _stop_hit(otype: OrderType, buy: bool, stop: int | None, last: int) -> bool:
        assert stop is not None
        if otype is OrderType.STOP_MARKET:
            return last >= stop if buy else last <= stop
        return last <= stop if buy else last >= stop

    def _check_stops(self, st: _Sym, batch: _Batch) -> None:
        """Trigger the stop orders the last trade price (recorded or ours) has reached, oldest first; a triggered
        stop's own prints can trigger further stops."""
        while st.stops and st.last_price is not None:
            last = st.last_price
            hit = next((o for o in st.stops if self._stop_hit(o.type, o.is_buy, o.stop_ticks, last)), None)
            if hit is None:
                return
            self._trigger(st, hit, batch)

    def _trigger(self, st: _Sym, o: SimOrder, batch: _Batch) -> None:
        st.stops.remove(o)
        o.status = OrderStatus.EXPIRED                      # Binance: the stop order expires ...
        o.update_ns = self._now
        self._order_event(st, o, "EXPIRED")
        o.type = OrderType.MARKET                           # ... and lives on as a MARKET order, same id
        o.status = OrderStatus.NEW
        o.triggered = True
        batch.accounts.add(o.account)
        if o.close_position:
            pos = self._accounts[o.account].position(st.symbol).qty_lots
            o.qty_lots = abs(pos) if pos != 0 and (pos > 0) != o.is_buy else 0
        self._order_event(st, o, "NEW")
        if o.qty_lots == 0:                                 # closePosition without a position to close
            o.status = OrderStatus.EXPIRED
            self._open[o.account].pop(o.order_id, None)
            self._order_event(st, o, "EXPIRED")
            return
        top_bid, top_ask = st.top()
        self._take(st, o, self._market_bound(st, o.is_buy, top_ask if o.is_buy else top_bid), batch)
        self._expire_rest(st, o)

    # ---- publishing ------------------------------------------------------------------------------------------

    def _finish(self, st: _Sym, batch: _Batch, before: tuple, out: list[MarketMsg]) -> None:
        """Publish what an action changed: its trade prints, one synthetic diff, a bookTicker if the top moved."""
        out.extend(batch.prints)
        batch.prints = []
        if not batch.dirty:
            return
        ms = self._now // MS
        last_u = st.sf.last_u + st.depth_off
        bids = sorted((p for s, p in batch.dirty if s == BID), reverse=True)
        asks = sorted(p for s, p in batch.dirty if s == ASK)
        payload = orjson.dumps({
            "e": "depthUpdate", "E": ms, "T": ms, "s": st.symbol, "U": last_u + 1, "u": last_u + 1, "pu": last_u,
            "b": [[st.px_str(p), st.qty_str(st.served_qty(BID, p))] for p in bids],
            "a": [[st.px_str(p), st.qty_str(st.served_qty(ASK, p))] for p in asks],
        })
        st.depth_off += 1
        batch.dirty = set()
        out.append(MarketMsg(st.depth_stream, st.symbol, self._now, payload, self._last_seq, True))
        after = st.top()
        if after != before and st.streams.book_ticker:
            (bp, bq), (ap, aq) = after[0] or (0, 0), after[1] or (0, 0)
            payload = orjson.dumps({"e": "bookTicker", "u": last_u + 1, "s": st.symbol, "b": st.px_str(bp),
                                    "B": st.qty_str(bq), "a": st.px_str(ap), "A": st.qty_str(aq), "T": ms, "E": ms})
            out.append(MarketMsg(st.streams.book_ticker, st.symbol, self._now, payload, self._last_seq, True))

    def _fire_timers(self, t: int, out: list[MarketMsg]) -> None:
        for (account, symbol), deadline in sorted(self._timers.items(), key=lambda kv: (kv[1], kv[0])):
            if deadline > t:
                continue
            del self._timers[(account, symbol)]
            self._now = max(self._now, deadline)
            st = self._syms[symbol]
            batch = _Batch()
            before = st.top()
            for o in sorted(self._open[account].values(), key=lambda x: x.order_id):
                if o.symbol == symbol:
                    self._close_order(st, o, OrderStatus.CANCELED, batch)
            self._finish(st, batch, before, out)

    # ---- user data events ------------------------------------------------------------------------------------

    def _order_event(self, st: _Sym, o: SimOrder, x: str, last_lots: int = 0, last_px: int = 0,
                     fee: Decimal = ZERO, trade_id: int = 0, maker: bool = False, rp: Decimal = ZERO) -> None:
        inst = st.inst
        ms = self._now // MS
        bids = asks = ZERO
        for oo in self._open[o.account].values():
            if oo.symbol == o.symbol and oo.type is OrderType.LIMIT and oo.price_ticks:
                v = inst.lots_to_qty(oo.remaining_lots) * inst.ticks_to_price(oo.price_ticks)
                if oo.is_buy:
                    bids += v
                else:
                    asks += v
        self._user_events.append((o.account, {
            "e": "ORDER_TRADE_UPDATE", "E": ms, "T": ms,
            "o": {
                "s": o.symbol, "c": o.client_order_id, "S": o.side, "o": o.type.value, "f": o.tif.value,
                "q": inst.fmt_qty(o.qty_lots), "p": o.price_str(inst, st.pdp), "ap": o.avg_str(inst, st.pdp),
                "sp": o.stop_str(inst, st.pdp), "x": x, "X": o.status.value, "i": o.order_id,
                "l": inst.fmt_qty(last_lots), "z": inst.fmt_qty(o.filled_lots),
                "L": st.px_str(last_px) if last_lots else "0", "N": "USDT", "n": fmt_amount(fee), "T": ms,
                "t": trade_id, "b": _plain(bids), "a": _plain(asks), "m": maker, "R": o.reduce_only,
                "wt": "CONTRACT_PRICE", "ot": o.orig_type.value, "ps": "BOTH", "cp": o.close_position,
                "rp": fmt_amount(rp), "pP": False, "si": 0, "ss": 0, "V": "NONE", "pm": "NONE", "gtd": 0,
            },
        }))

    def _account_event(self, acct: Account, st: _Sym) -> None:
        ms = self._now // MS
        pos = acct.position(st.symbol)
        mark = st.mark_price() or pos.entry_price
        wallet = _plain8(acct.wallet)
        self._user_events.append((acct.name, {
            "e": "ACCOUNT_UPDATE", "E": ms, "T": ms,
            "a": {
                "m": "ORDER",
                "B": [{"a": "USDT", "wb": wallet, "cw": wallet, "bc": "0"}],
                "P": [{"s": st.symbol, "pa": st.inst.fmt_qty(pos.qty_lots), "ep": _plain8(pos.entry_price),
                       "bep": _plain8(pos.break_even(st.inst)), "cr": _plain8(pos.realized_pnl),
                       "up": _plain8(pos.unrealized(st.inst, mark)), "mt": "cross", "iw": "0", "ps": "BOTH"}],
            },
        }))

    # ---- helpers ---------------------------------------------------------------------------------------------

    def _position_view(self, acct: Account, st: _Sym) -> SimPosition:
        pos = acct.positions.get(st.symbol) or Position(st.symbol)
        mark = st.mark_price() or pos.entry_price
        notional = st.inst.lots_to_qty(pos.qty_lots) * mark
        return SimPosition(st.symbol, pos.qty_lots, pos.entry_price, pos.break_even(st.inst), pos.realized_pnl,
                           pos.unrealized(st.inst, mark), mark, acct.leverage, notional,
                           abs(notional) / acct.leverage, pos.update_ns)

    def _order_margin(self, acct: Account) -> Decimal:
        total = ZERO
        for o in self._open[acct.name].values():
            if o.type is OrderType.LIMIT and not o.reduce_only and o.price_ticks:
                inst = self.instruments[o.symbol]
                total += inst.lots_to_qty(o.remaining_lots) * inst.ticks_to_price(o.price_ticks) / acct.leverage
        return total

    def _find(self, account: str, symbol: str, order_id: int | None, client_order_id: str | None) -> SimOrder | None:
        self._check_account(account)
        if order_id is None and client_order_id is None:
            raise SimReject(codes.MANDATORY_PARAM_EMPTY_OR_MALFORMED, param="orderId")
        o = self._orders[account].get(order_id) if order_id is not None else \
            self._by_client[account].get(client_order_id or "")
        if o is None or o.symbol != symbol:
            return None
        if client_order_id is not None and o.client_order_id != client_order_id:
            return None
        return o

    def _new_client_id(self) -> str:
        return "".join(self._rng.choice(_ID_CHARS) for _ in range(22))

    def _account(self, name: str) -> Account:
        acct = self._accounts.get(name)
        if acct is None:
            raise KeyError(f"no account {name!r}: open_account() first")
        return acct

    def _check_account(self, name: str) -> str:
        self._account(name)
        return name

    def _sym(self, symbol: str) -> _Sym:
        st = self._syms.get(symbol)
        if st is None:
            raise KeyError(f"{symbol} is not on this tape")
        return st

    def _sym_or_reject(self, symbol: str) -> _Sym:
        st = self._syms.get(symbol)
        if st is None:
            raise SimReject(codes.BAD_SYMBOL)
        return st


def _plain(d: Decimal) -> str:
    """Shortest plain decimal string ("0" for zero)."""
    return "0" if d == 0 else f"{d.normalize():f}"


def _plain8(d: Decimal) -> str:
    """Rounded to 8 decimals, shortest plain form."""
    return _plain(d.quantize(Decimal("1E-8")))

