"""The simulated venue's matching core on the bundled real BTCUSDT tape: replay fidelity, the bookTicker oracle on
the served stream, book walks, queue models, order semantics, rejections, fees, PnL, id chains, determinism.

Expected values are computed independently from the recorded bytes (``engine.feed.reference``), never from the
simulator's own state.
"""

from __future__ import annotations

from decimal import Decimal
from functools import cache

import orjson
import pytest

from engine.feed.recording import read_messages, sample_path
from engine.feed.reference import ASK, BID, RefBook, parse_message
from engine.model import KNOWN_INSTRUMENTS, Instrument, OrderStatus, OrderType, TimeInForce
from engine.venues.binance import codes
from engine.venues.sim import LatencyModel, MarketMsg, SimConfig, SimExchange, SimReject, SimUnavailable
from engine.venues.sim.models import ORDER_WOULD_IMMEDIATELY_TRIGGER
from ext.feed import Feed

BTC = KNOWN_INSTRUMENTS["BTCUSDT"]
SYM = "BTCUSDT"
S = 1_000_000_000
MS = 1_000_000
USDT = Decimal("1000000")


# ---- independent view of the recording -------------------------------------------------------------------------

@cache
def recorded() -> tuple[list[bytes], list[dict], list[int]]:
    """Raw messages, their reference parse, and their monotone exchange time (ns) computed from the bytes."""
    msgs = read_messages([sample_path()])
    parsed, times, last = [], [], 0
    for m in msgs:
        p = parse_message(m)
        obj = orjson.loads(m)
        d = obj.get("data", obj)
        t = d.get("T") if d.get("e") in ("depthUpdate", "trade", "bookTicker") or "lastUpdateId" in d else None
        t = t if isinstance(t, int) else d.get("E", 0)
        last = max(last, t * MS)
        parsed.append(p)
        times.append(last)
    return msgs, parsed, times


def applied_count(now_ns: int) -> int:
    """How many recorded messages a venue at ``now_ns`` has applied (all with time <= now)."""
    return sum(1 for t in recorded()[2] if t <= now_ns)


def ref_book(stop: int) -> RefBook:
    """The recorded book after messages [0, stop): snapshot plus chained diffs, by Binance's procedure."""
    _, parsed, _ = recorded()
    book = RefBook()
    snap_i = next(i for i, d in enumerate(parsed) if d["kind"] == "snapshot")
    assert snap_i < stop
    snap = parsed[snap_i]
    for side, key in ((BID, "bids"), (ASK, "asks")):
        for p, q in snap[key]:
            book.set(side, BTC.price_to_ticks(p), BTC.qty_to_lots(q))
    last = snap["u"]
    for d in parsed[:stop]:
        if d["kind"] != "depthUpdate" or d["u"] < snap["u"]:
            continue
        assert d["pu"] == last or d["U"] <= snap["u"] <= d["u"]
        for side, key in ((BID, "bids"), (ASK, "asks")):
            for p, q in d[key]:
                book.set(side, BTC.price_to_ticks(p), BTC.qty_to_lots(q))
        last = d["u"]
    return book


def recorded_trades(start: int) -> list[tuple[int, int, int, int, bool]]:
    """(index, time_ns, price_ticks, lots, buyer_is_maker) of the recorded trades from message ``start`` on."""
    _, parsed, times = recorded()
    return [(i, times[i], BTC.price_to_ticks(d["p"]), BTC.qty_to_lots(d["q"]), d["maker"])
            for i, d in enumerate(parsed) if i >= start and d["kind"] == "trade"]


# ---- helpers ---------------------------------------------------------------------------------------------------

def venue(cfg: SimConfig | None = None, **kw) -> SimExchange:
    return SimExchange([sample_path()], cfg=cfg, **kw)


def synced_venue(cfg: SimConfig | None = None, after_ns: int = 0, usdt: Decimal = USDT) -> SimExchange:
    """A venue advanced to the recorded book's sync (plus ``after_ns``), with account "a" open."""
    ex = venue(cfg)
    while not ex.synced(SYM):
        ex.advance(ex.next_time())
    if after_ns:
        ex.advance(ex.now_ns + after_ns)
    ex.open_account("a", usdt)
    return ex


class Client:
    """A market-data client rebuilding the book from the served stream by Binance's procedure."""

    def __init__(self) -> None:
        self.feed = Feed([BTC])
        self.sf = self.feed[SYM]
        self.sf.signals_on = False
        self.loaded = False
        self.msgs: list[MarketMsg] = []

    def take(self, ex: SimExchange, msgs: list[MarketMsg]) -> None:
        for m in msgs:
            assert self.feed.on_message(m.payload) >= 0, (self.feed.last_error, m)
            self.msgs.append(m)
        if not self.loaded and ex.synced(SYM):
            assert self.feed.on_snapshot(SYM, orjson.dumps(ex.depth_snapshot(SYM))) == 5
            self.loaded = True


def ids_chained(msgs: list[MarketMsg]) -> None:
    """Served depth ids chain (pu == previous u) and served trade ids are contiguous."""
    last_u = last_t = None
    for m in msgs:
        d = orjson.loads(m.payload)
        if d.get("e") == "depthUpdate":
            if last_u is not None:
                assert d["pu"] == last_u, m
            assert d["U"] <= d["u"]
            last_u = d["u"]
        elif d.get("e") == "trade":
            if last_t is not None:
                assert d["t"] == last_t + 1, m
            last_t = d["t"]


def walk(book: RefBook, side: int, lots: int) -> list[tuple[int, int]]:
    """(price, lots) of an independent book walk for ``lots`` on ``side``."""
    out = []
    for p, q in book.levels(side):
        n = min(q, lots)
        out.append((p, n))
        lots -= n
        if lots == 0:
            return out
    raise AssertionError("book too thin")


def avg_of(parts: list[tuple[int, int]]) -> Decimal:
    quote = sum(BTC.lots_to_qty(n) * BTC.ticks_to_price(p) for p, n in parts)
    return quote / BTC.lots_to_qty(sum(n for _, n in parts))


# ---- market replay ---------------------------------------------------------------------------------------------

def test_served_stream_without_orders_is_the_recording_and_the_oracle_holds():
    ex = venue()
    with pytest.raises(SimUnavailable):
        ex.depth_snapshot(SYM)
    client = Client()
    while ex.next_time() is not None:
        client.take(ex, ex.advance(ex.next_time()))
    msgs, parsed, times = recorded()
    expect = []
    for raw, d, t in zip(msgs, parsed, times, strict=True):
        if d["kind"] == "snapshot":
            continue
        env = orjson.loads(raw)
        expect.append((env["stream"], t, orjson.dumps(env["data"])))
    served = client.msgs
    assert [(m.stream, m.time_ns) for m in served] == [(s, t) for s, t, _ in expect]
    assert [orjson.loads(m.payload) for m in served] == [orjson.loads(b) for _, _, b in expect]
    raws = [raw for raw, d in zip(msgs, parsed, strict=True) if d["kind"] != "snapshot"]
    assert all(m.payload in raw and raw.endswith(m.payload + b"}") for m, raw in zip(served, raws, strict=True))
    assert not any(m.synthetic for m in served)
    h = client.sf.health(0, 1 << 62)
    assert h["gaps"] == 0 and h["bad_messages"] == 0 and h["resyncs"] == 0
    assert h["ticker_checks"] > 400 and h["ticker_mismatches"] == 0
    book = ref_book(len(msgs))
    for side in (BID, ASK):
        assert client.sf.book.levels(side) == book.levels(side) == ex.book(SYM, side, 5000)
    snap = ex.depth_snapshot(SYM, limit=5)
    assert snap["lastUpdateId"] == max(d["u"] for d in parsed if d["kind"] == "depthUpdate")
    assert snap["bids"][0] == [BTC.fmt_price(book.best(BID)[0]) + "0", BTC.fmt_qty(book.best(BID)[1])]


def test_marketable_order_walks_the_recorded_book_and_consumes_it():
    ex = synced_venue(after_ns=5 * S)
    book = ref_book(applied_count(ex.now_ns))
    asks = book.top(ASK, 3)
    lots = asks[0][1] + asks[1][1] + 3
    parts = walk(book, ASK, lots)
    assert len(parts) == 3
    o = ex.place("a", SYM, "BUY", OrderType.MARKET, lots)
    assert o.status is OrderStatus.FILLED and o.filled_lots == lots
    assert o.avg_price == avg_of(parts)
    assert o.cum_quote == sum(BTC.lots_to_qty(n) * BTC.ticks_to_price(p) for p, n in parts)
    assert [(f.price_ticks, f.qty_lots) for f in ex.fills("a")] == parts
    # the served book lost exactly that liquidity; the recorded one is untouched
    assert ex.book(SYM, ASK, 1, served=False) == [asks[0]]
    assert ex.book(SYM, ASK, 1) == [(asks[2][0], asks[2][1] - 3)]
    # the same order right after walks what is left: it pays more
    o2 = ex.place("a", SYM, "BUY", OrderType.MARKET, lots)
    rest = RefBook()
    for p, q in book.levels(ASK):
        rest.set(ASK, p, q)
    for p, n in parts:
        rest.set(ASK, p, rest.qty_at(ASK, p) - n)
    assert o2.avg_price == avg_of(walk(rest, ASK, lots)) > o.avg_price
    # our prints: contiguous ids after the last recorded trade, buyer is the taker
    prints = [orjson.loads(m.payload) for m in ex.drain_market() if m.stream == "btcusdt@trade"]
    last_id = max(d["id"] for d in recorded()[1][:applied_count(ex.now_ns)] if d["kind"] == "trade")
    assert [d["t"] for d in prints] == list(range(last_id + 1, last_id + 1 + len(prints)))
    assert all(d["m"] is False for d in prints)
    assert [BTC.qty_to_lots(d["q"]) for d in prints[:3]] == [n for _, n in parts]


def queue_reference(start: int, price: int, q0: int, lots: int) -> list[tuple[int, int, int]]:
    """Independent conservative-queue fills (time_ns, lots, trade id) of a bid at ``price`` entered before message
    ``start`` behind ``q0`` lots, from the recorded bytes: sell prints at our price eat the queue then fill us; the
    displayed quantity caps the queue; the recorded ask reaching our price fills the rest (a print of ours, with the
    next trade id). Asserts that no print went through our price first (a pure queue scenario)."""
    msgs, parsed, times = recorded()
    q, left, fills, last_id = q0, lots, [], None
    for i in range(start, len(msgs)):
        d = parsed[i]
        touch = False
        if d["kind"] == "depthUpdate":
            for p, qty in d["bids"]:
                if BTC.price_to_ticks(p) == price:
                    q = min(q, BTC.qty_to_lots(qty))
            touch = any(BTC.price_to_ticks(p) <= price for p, qty in d["asks"] if BTC.qty_to_lots(qty) > 0)
        elif d["kind"] == "bookTicker":
            touch = BTC.price_to_ticks(d["a"]) <= price
        elif d["kind"] == "trade":
            p, n = BTC.price_to_ticks(d["p"]), BTC.qty_to_lots(d["q"])
            last_id = d["id"]
            assert p > price or (p == price and d["maker"]), "a through-trade: not a pure queue scenario"
            if p == price:
                if n <= q:
                    q -= n
                else:
                    got = min(n - q, left)
                    q = 0
                    fills.append((times[i], got, d["id"]))
                    left -= got
        if touch:
            assert last_id is not None
            fills.append((times[i], left, last_id + 1))
            left = 0
        if left == 0:
            return fills
    raise AssertionError("never filled")


def test_resting_order_fills_only_after_trades_exhaust_its_queue():
    ex = synced_venue()
    start = applied_count(ex.now_ns)
    book = ref_book(start)
    price, q0 = book.best(BID)
    o = ex.place("a", SYM, "BUY", OrderType.LIMIT, 5, price)
    assert o.status is OrderStatus.NEW and o.queue_ahead == q0 == 3818
    expect = queue_reference(start, price, q0, 5)
    # the real tape: 28145.10 bid behind 3.818 BTC; sell prints exhaust the queue and fill 0.004 (trade 3535186096),
    # then the ask drops onto our price and the last 0.001 fills there (our own print, the next id)
    assert [(n, t) for _, n, t in expect] == [(4, 3535186096), (1, 3535186097)]
    first_t = expect[0][0]
    ex.advance(first_t - 1)
    assert ex.query("a", SYM, order_id=o.order_id).filled_lots == 0
    traded_before = sum(n for _, t, p, n, m in recorded_trades(start) if t < first_t and p == price and m)
    assert traded_before <= q0
    ex.advance(first_t)
    got = [(f.time_ns, f.qty_lots, f.trade_id) for f in ex.fills("a")]
    assert got == expect
    assert all(f.maker for f in ex.fills("a"))
    assert ex.query("a", SYM, order_id=o.order_id).status is OrderStatus.FILLED


def first_fill_ns(model: str, after_s: int, side: str) -> int | None:
    ex = synced_venue(SimConfig(queue_model=model), after_ns=after_s * S)
    price = ex.book(SYM, BID if side == "BUY" else ASK, 1)[0][0]
    ex.place("a", SYM, side, OrderType.LIMIT, 5, price)
    while not ex.done and not ex.fills("a"):
        ex.advance(ex.next_time())
    return ex.fills("a")[0].time_ns if ex.fills("a") else None


def test_prob_queue_model_fills_no_later_than_conservative():
    earlier = 0
    for after_s, side in ((0, "BUY"), (8, "BUY"), (100, "SELL"), (120, "BUY"), (52, "SELL")):
        cons, prob = first_fill_ns("conservative", after_s, side), first_fill_ns("prob", after_s, side)
        assert cons is not None and prob is not None
        assert prob <= cons
        earlier += prob < cons
    assert earlier >= 3


def test_front_queue_model_is_the_queue_switched_off():
    """``front`` puts our order ahead of the displayed queue: the first sell print at its price fills it, never
    later than the conservative model (for measuring what queue position costs)."""
    ex = synced_venue(SimConfig(queue_model="front"))
    start = applied_count(ex.now_ns)
    price, q0 = ref_book(start).best(BID)
    o = ex.place("a", SYM, "BUY", OrderType.LIMIT, 5, price)
    assert o.status is OrderStatus.NEW and o.queue_ahead == 0 < q0
    first_print = next(t for _, t, p, n, m in recorded_trades(start) if p == price and m)
    ex.advance(first_print)
    assert ex.fills("a") and ex.fills("a")[0].time_ns == first_print and ex.fills("a")[0].maker
    for after_s, side in ((0, "BUY"), (100, "SELL")):
        front, cons = first_fill_ns("front", after_s, side), first_fill_ns("conservative", after_s, side)
        assert front is not None and cons is not None and front <= cons


def test_without_impact_our_takers_leave_the_displayed_book_as_recorded():
    ex = synced_venue(SimConfig(impact=False), after_ns=5 * S)
    book = ref_book(applied_count(ex.now_ns))
    asks = book.top(ASK, 3)
    lots = asks[0][1] + asks[1][1] + 3
    o = ex.place("a", SYM, "BUY", OrderType.MARKET, lots)
    assert o.status is OrderStatus.FILLED and o.avg_price == avg_of(walk(book, ASK, lots))
    assert ex.book(SYM, ASK, 3) == asks                    # served = recorded: nothing consumed
    o2 = ex.place("a", SYM, "BUY", OrderType.MARKET, lots)
    assert o2.avg_price == o.avg_price                     # the same walk again, at the same prices


def test_fees_are_exact_decimals():
    ex = synced_venue(after_ns=3 * S)
    book = ref_book(applied_count(ex.now_ns))
    parts = walk(book, ASK, 2500)
    ex.place("a", SYM, "BUY", OrderType.MARKET, 2500)
    taker = sum(BTC.lots_to_qty(n) * BTC.ticks_to_price(p) * Decimal("0.0005") for p, n in parts)
    assert [f.commission for f in ex.fills("a")] == [
        BTC.lots_to_qty(n) * BTC.ticks_to_price(p) * Decimal("0.0005") for p, n in parts]
    assert ex.balance("a").wallet_balance == USDT - taker
    events = [e["o"] for _, e in ex.drain_user_events() if e["e"] == "ORDER_TRADE_UPDATE" and e["o"]["x"] == "TRADE"]
    assert [Decimal(e["n"]) for e in events] == [f.commission for f in ex.fills("a")]
    assert all(e["N"] == "USDT" and e["m"] is False for e in events)
    # a maker fill pays the maker rate
    bid = ex.book(SYM, BID, 1)[0][0]
    o = ex.place("a", SYM, "SELL", OrderType.LIMIT, 10, bid + 1)
    while ex.query("a", SYM, order_id=o.order_id).status is not OrderStatus.FILLED:
        ex.advance(ex.next_time())
    maker = [f for f in ex.fills("a") if f.order_id == o.order_id]
    assert all(f.maker and f.commission == BTC.lots_to_qty(f.qty_lots) * BTC.ticks_to_price(bid + 1)
               * Decimal("0.0002") for f in maker)
    assert sum(f.qty_lots for f in maker) == 10


def test_ioc_fok_gtx():
    ex = synced_venue(after_ns=10 * S)
    (ask, ask_q), (ask2, _) = ex.book(SYM, ASK, 2)
    bid = ex.book(SYM, BID, 1)[0][0]
    assert ask_q >= 4
    fok = ex.place("a", SYM, "BUY", OrderType.LIMIT, ask_q + 1, ask, TimeInForce.FOK)
    assert fok.status is OrderStatus.EXPIRED and fok.filled_lots == 0 and not ex.fills("a")
    assert ex.drain_market() == []                                   # nothing happened on the market
    ioc = ex.place("a", SYM, "BUY", OrderType.LIMIT, ask_q + 1, ask, TimeInForce.IOC)
    assert ioc.status is OrderStatus.EXPIRED and ioc.filled_lots == ask_q
    assert ex.open_orders("a") == []
    assert ex.book(SYM, ASK, 1)[0][0] == ask2                        # the IOC took the whole best level
    served = RefBook()
    for p, q in ex.book(SYM, ASK, 50):
        served.set(ASK, p, q)
    fok2 = ex.place("a", SYM, "BUY", OrderType.LIMIT, 8, ask2 + 20, TimeInForce.FOK)
    assert fok2.status is OrderStatus.FILLED and fok2.avg_price == avg_of(walk(served, ASK, 8))
    with pytest.raises(SimReject) as err:
        ex.place("a", SYM, "BUY", OrderType.LIMIT, 5, ask2 + 20, TimeInForce.GTX)
    assert err.value.code == codes.GTX_ORDER_REJECT == -5022
    gtx = ex.place("a", SYM, "BUY", OrderType.LIMIT, 20, bid, TimeInForce.GTX)
    assert gtx.status is OrderStatus.NEW and [o.order_id for o in ex.open_orders("a", SYM)] == [gtx.order_id]
    xs = [e["o"]["x"] for _, e in ex.drain_user_events() if e["e"] == "ORDER_TRADE_UPDATE"]
    assert xs[:2] == ["NEW", "EXPIRED"] and xs[-1] == "NEW"


def test_rejections_carry_binance_codes():
    inst = Instrument.make("BTCUSDT", "0.10", "0.001", "100", "0.010")
    ex = SimExchange([sample_path()], instruments={SYM: inst})
    ex.open_account("a", USDT)
    ex.open_account("poor", Decimal("10"))
    with pytest.raises(SimUnavailable):
        ex.place("a", SYM, "BUY", OrderType.MARKET, 10)
    while not ex.synced(SYM):
        ex.advance(ex.next_time())
    bid = ex.book(SYM, BID, 1)[0][0]

    def code(account="a", symbol=SYM, side="BUY", type=OrderType.LIMIT, qty=10, price=bid - 50, **kw) -> int:
        with pytest.raises(SimReject) as err:
            ex.place(account, symbol, side, type, qty, price, **kw)
        assert err.value.msg
        return err.value.code

    assert code(symbol="ETHUSDT") == -1121
    assert code(qty=None) == -1102
    assert code(qty=0) == -4003
    assert code(price=None) == -1102
    assert code(qty=5) == -4005                                      # below min qty 0.010
    assert code(qty=10, price=50_000) == -4164                       # 0.010 x 5000.0 < 100
    assert code(account="poor", qty=100) == -2019                    # 0.1 BTC at 20x needs ~141 USDT
    assert code(side="SELL", reduce_only=True) == -2022              # nothing to reduce
    assert code(price=ex.book(SYM, ASK, 1)[0][0], tif=TimeInForce.GTX) == -5022
    assert code(type=OrderType.STOP_MARKET, price=None, stop_ticks=ex.last_price(SYM)) == \
        ORDER_WOULD_IMMEDIATELY_TRIGGER
    assert code(type=OrderType.STOP_MARKET, price=None) == -1102     # no stopPrice
    o = ex.place("a", SYM, "BUY", OrderType.LIMIT, 10, bid - 50, client_order_id="mine-1")
    assert code(client_order_id="mine-1") == -4116
    ex.cancel("a", SYM, client_order_id="mine-1")
    ex.place("a", SYM, "BUY", OrderType.LIMIT, 10, bid - 50, client_order_id="mine-1")   # free again
    for call in (lambda: ex.cancel("a", SYM, order_id=999), lambda: ex.cancel("a", SYM, order_id=o.order_id)):
        with pytest.raises(SimReject) as err:
            call()
        assert (err.value.code, err.value.msg) == (-2011, "Unknown order sent.")
    with pytest.raises(SimReject) as err:
        ex.query("a", SYM, order_id=999)
    assert (err.value.code, err.value.msg) == (-2013, "Order does not exist.")
    assert ex.query("a", SYM, order_id=o.order_id).status is OrderStatus.CANCELED   # final orders are remembered
    with pytest.raises(SimReject) as err:
        ex.place("a", SYM, "BUY", OrderType.LIMIT, 10, 50_000)
    assert err.value.msg == "Order's notional must be no smaller than 100 (unless you choose reduce only)."


def test_reduce_only():
    ex = synced_venue(after_ns=20 * S)
    ex.place("a", SYM, "BUY", OrderType.MARKET, 10)
    ask = ex.book(SYM, ASK, 1)[0][0]
    far = ex.place("a", SYM, "SELL", OrderType.LIMIT, 4, ask + 500, reduce_only=True)
    assert far.status is OrderStatus.NEW
    # a reduce-only MARKET larger than the position only closes it (no min-notional check on reduce-only)
    o = ex.place("a", SYM, "SELL", OrderType.MARKET, 15, reduce_only=True)
    assert o.filled_lots == 10 and o.status is OrderStatus.EXPIRED
    assert ex.positions("a")[0].qty_lots == 0
    # the resting reduce-only order can no longer reduce anything: Binance expires it
    assert ex.query("a", SYM, order_id=far.order_id).status is OrderStatus.EXPIRED
    assert ex.open_orders("a") == []
    served, rec = dict(ex.book(SYM, ASK, 5000)), dict(ex.book(SYM, ASK, 5000, served=False))
    assert served.get(ask + 500, 0) == rec.get(ask + 500, 0)        # and it left the served book


def test_stop_orders_trigger_on_the_recorded_last_price():
    ex = synced_venue(after_ns=30 * S)
    start = applied_count(ex.now_ns)
    last = ex.last_price(SYM)
    trades = recorded_trades(start)
    down = next(t for t in trades if t[2] <= last - 5)               # first recorded print at or below last - 5
    up = next(t for t in trades if t[2] >= last + 10)                # first at or above last + 10
    assert down[1] < up[1]
    ex.place("a", SYM, "SELL", OrderType.MARKET, 20)
    tp = ex.place("a", SYM, "BUY", OrderType.TAKE_PROFIT_MARKET, None, stop_ticks=last - 5, close_position=True)
    stop = ex.place("a", SYM, "BUY", OrderType.STOP_MARKET, 30, stop_ticks=last + 10)
    assert tp.status is OrderStatus.NEW and tp.qty_lots == 0 and stop.status is OrderStatus.NEW
    assert {o.order_id for o in ex.open_orders("a", SYM)} == {tp.order_id, stop.order_id}
    ex.drain_user_events()
    ex.advance(down[1] - 1)
    assert ex.query("a", SYM, order_id=tp.order_id).status is OrderStatus.NEW
    ex.advance(down[1])
    q = ex.query("a", SYM, order_id=tp.order_id)
    assert q.status is OrderStatus.FILLED and q.filled_lots == 20 and q.update_ns == down[1]
    assert q.type is OrderType.MARKET and q.orig_type is OrderType.TAKE_PROFIT_MARKET and q.close_position
    assert ex.positions("a")[0].qty_lots == 0
    ex.advance(up[1] - 1)
    assert ex.query("a", SYM, order_id=stop.order_id).status is OrderStatus.NEW
    ex.advance(up[1])
    q = ex.query("a", SYM, order_id=stop.order_id)
    assert q.status is OrderStatus.FILLED and q.filled_lots == 30 and q.update_ns == up[1]
    assert all(f.time_ns == up[1] and not f.maker for f in ex.fills("a") if f.order_id == stop.order_id)
    assert ex.positions("a")[0].qty_lots == 30
    seq = [(e["o"]["x"], e["o"]["X"], e["o"]["o"], e["o"]["ot"]) for _, e in ex.drain_user_events()
           if e["e"] == "ORDER_TRADE_UPDATE" and e["o"]["i"] == stop.order_id]
    assert seq[:2] == [("EXPIRED", "EXPIRED", "STOP_MARKET", "STOP_MARKET"), ("NEW", "NEW", "MARKET", "STOP_MARKET")]
    assert all(x[0] == "TRADE" and x[2:] == ("MARKET", "STOP_MARKET") for x in seq[2:]) and seq[-1][1] == "FILLED"


def test_close_position_take_profit():
    ex = synced_venue(after_ns=30 * S)
    start = applied_count(ex.now_ns)
    last = ex.last_price(SYM)
    trades = recorded_trades(start)
    target = next(t for t in trades if t[2] >= last + 5)
    ex.place("a", SYM, "BUY", OrderType.MARKET, 25)
    tp = ex.place("a", SYM, "SELL", OrderType.TAKE_PROFIT_MARKET, None, stop_ticks=last + 5, close_position=True)
    ex.advance(target[1])
    q = ex.query("a", SYM, order_id=tp.order_id)
    assert q.status is OrderStatus.FILLED and q.filled_lots == 25 and q.update_ns == target[1]
    assert ex.positions("a")[0].qty_lots == 0


def test_positions_and_realised_pnl_after_round_trips():
    ex = synced_venue(after_ns=2 * S)
    buy = ex.place("a", SYM, "BUY", OrderType.MARKET, 200)
    ex.advance(ex.now_ns + 40 * S)
    sell = ex.place("a", SYM, "SELL", OrderType.MARKET, 300)          # closes 200, opens a 100 short
    pos = ex.positions("a")[0]
    assert pos.qty_lots == -100
    sell_fills = [f for f in ex.fills("a") if f.order_id == sell.order_id]
    expect_rp = Decimal(0)
    closing = 200
    for f in sell_fills:
        n = min(closing, f.qty_lots)
        expect_rp += BTC.lots_to_qty(n) * (BTC.ticks_to_price(f.price_ticks) - buy.avg_price)
        closing -= n
    assert sum(f.realized_pnl for f in sell_fills) == expect_rp == pos.realized_pnl
    fees = sum(f.commission for f in ex.fills("a"))
    assert ex.balance("a").wallet_balance == USDT + expect_rp - fees
    # the short's entry: the prices of the part that opened it
    opened, left = [], 100
    for f in reversed(sell_fills):
        n = min(left, f.qty_lots)
        opened.append((f.price_ticks, n))
        left -= n
        if left == 0:
            break
    assert pos.entry_price == avg_of(opened)
    mark = ex.mark_price(SYM)
    last_mark = [orjson.loads(m)["data"]["p"] for m, t in zip(recorded()[0], recorded()[2], strict=True)
                 if t <= ex.now_ns and b"markPriceUpdate" in m][-1]
    assert mark == Decimal(last_mark)
    assert pos.unrealized_pnl == BTC.lots_to_qty(-100) * (mark - pos.entry_price)
    ex.place("a", SYM, "BUY", OrderType.MARKET, 100)
    pos = ex.positions("a")[0]
    assert pos.qty_lots == 0 and pos.unrealized_pnl == 0
    total_rp = sum(f.realized_pnl for f in ex.fills("a"))
    assert ex.balance("a").wallet_balance == USDT + total_rp - sum(f.commission for f in ex.fills("a"))
    acc = [e for _, e in ex.drain_user_events() if e["e"] == "ACCOUNT_UPDATE"]
    assert len(acc) == len(ex.fills("a"))
    last = acc[-1]["a"]
    assert last["m"] == "ORDER" and last["P"][0]["pa"] == "0.000" and Decimal(last["P"][0]["cr"]) == \
        total_rp.quantize(Decimal("1E-8"))
    assert Decimal(last["B"][0]["wb"]) == ex.balance("a").wallet_balance.quantize(Decimal("1E-8"))


def test_served_stream_stays_chained_with_our_orders():
    ex = venue()
    ex.open_account("a", USDT)
    ex.open_account("b", USDT)
    client = Client()
    while not ex.synced(SYM):
        client.take(ex, ex.advance(ex.next_time()))
    resting = []
    step = 0
    while ex.next_time() is not None:
        client.take(ex, ex.advance(ex.now_ns + 250 * MS))
        step += 1
        (bid, _), (ask, _) = ex.book(SYM, BID, 1)[0], ex.book(SYM, ASK, 1)[0]
        if step % 20 == 1:
            ex.place("a", SYM, "BUY", OrderType.MARKET, 300)
        elif step % 20 == 5:
            resting.append(ex.place("b", SYM, "SELL", OrderType.LIMIT, 77, ask + 2))
            resting.append(ex.place("a", SYM, "BUY", OrderType.LIMIT, 55, bid))
        elif step % 20 == 9:
            ex.place("a", SYM, "SELL", OrderType.LIMIT, 400, bid - 3, TimeInForce.IOC)
        elif step % 20 == 13:
            if ex.open_orders("b"):
                ex.cancel_all("b", SYM)
            inside = ask - 1 if ask - bid > 1 else None
            if inside:
                resting.append(ex.place("b", SYM, "SELL", OrderType.LIMIT, 33, inside))
        client.take(ex, ex.drain_market())
        if step % 40 == 7:
            for o in ex.open_orders("a") + ex.open_orders("b"):
                rec = ex.book(SYM, o.book_side, 5000, served=False)
                served = dict(ex.book(SYM, o.book_side, 5000))
                assert served[o.price_ticks] >= o.remaining_lots
                assert client.sf.book.qty_at(o.book_side, o.price_ticks) == served[o.price_ticks]
                assert served[o.price_ticks] - dict(rec).get(o.price_ticks, 0) <= sum(
                    x.remaining_lots for x in ex.open_orders("a") + ex.open_orders("b")
                    if (x.book_side, x.price_ticks) == (o.book_side, o.price_ticks))
    h = client.sf.health(0, 1 << 62)
    assert h["gaps"] == 0 and h["resyncs"] == 0 and h["bad_messages"] == 0 and client.sf.n_trade_id_gaps == 0
    # a bookTicker Binance sent ahead of its diff cannot know about an action of ours taken before that diff:
    # rare disagreements remain possible (one on this tape with an action every 250 ms)
    assert h["ticker_checks"] > 400 and h["ticker_mismatches"] <= h["ticker_checks"] // 100
    synthetic = [m for m in client.msgs if m.synthetic]
    assert sum(m.stream == "btcusdt@depth@0ms" for m in synthetic) > 50
    assert sum(m.stream == "btcusdt@trade" for m in synthetic) > 50
    ids_chained(client.msgs)
    for side in (BID, ASK):
        assert client.sf.book.top(side, 1000) == ex.book(SYM, side, 1000)
    assert not client.sf.book.crossed
    assert len(ex.fills("a")) > 20 and any(f.maker for f in ex.fills("b"))


def test_countdown_cancel_all():
    ex = synced_venue(after_ns=S)
    bid = ex.book(SYM, BID, 1)[0][0]
    o = ex.place("a", SYM, "BUY", OrderType.LIMIT, 10, bid - 100)
    assert ex.countdown_cancel_all("a", SYM, 2000) == {"symbol": SYM, "countdownTime": "2000"}
    t0 = ex.now_ns
    ex.advance(t0 + S)
    ex.countdown_cancel_all("a", SYM, 2000)                          # renewed
    deadline = t0 + 3 * S
    assert ex.next_time() <= deadline
    ex.advance(deadline - 1)
    assert ex.query("a", SYM, order_id=o.order_id).status is OrderStatus.NEW
    msgs = ex.advance(deadline + 500 * MS)
    q = ex.query("a", SYM, order_id=o.order_id)
    assert q.status is OrderStatus.CANCELED and q.update_ns == deadline
    diff = [orjson.loads(m.payload) for m in msgs if m.synthetic and m.stream.endswith("@depth@0ms")]
    assert diff and diff[0]["E"] == deadline // MS
    o2 = ex.place("a", SYM, "BUY", OrderType.LIMIT, 10, bid - 100)
    ex.countdown_cancel_all("a", SYM, 1000)
    ex.countdown_cancel_all("a", SYM, 0)                             # disabled
    ex.advance(ex.now_ns + 5 * S)
    assert ex.query("a", SYM, order_id=o2.order_id).status is OrderStatus.NEW


def scripted(seed: int) -> tuple[list, list, list]:
    cfg = SimConfig(seed=seed, queue_model="prob", feed_latency="uniform:0.5:3", entry_latency="fixed:1.5")
    ex = synced_venue(cfg, after_ns=S)
    out, lat = [], []
    for k in range(30):
        msgs = ex.advance(ex.now_ns + 2 * S)
        lat.extend(ex.latency.feed_ns(m) for m in msgs[:5])
        ex.advance(ex.now_ns + ex.latency.entry_ns())
        bid, ask = ex.book(SYM, BID, 1)[0][0], ex.book(SYM, ASK, 1)[0][0]
        if k % 3 == 0:
            ex.place("a", SYM, "BUY", OrderType.LIMIT, 20, bid)
        elif k % 3 == 1:
            ex.place("a", SYM, "SELL", OrderType.MARKET, 15)
        else:
            ex.place("a", SYM, "SELL", OrderType.LIMIT, 10, ask + 1)
        out.extend(m.payload for m in msgs)
    out.extend(m.payload for m in ex.advance(ex.now_ns + 10 * S))
    return out, ex.drain_user_events(), lat


def test_determinism():
    a, b = scripted(7), scripted(7)
    assert a == b
    c = scripted(8)
    assert c[0] == a[0] and c[1] != a[1] and c[2] != a[2]            # only client ids and latency draws differ
    assert all(500_000 <= x <= 3_000_000 for x in a[2])


def test_latency_models():
    ex = venue(SimConfig(feed_latency="recorded", recorded_floor_ms=2, ack_latency="uniform:1:2", seed=3))
    msgs = ex.advance(ex.now_ns + 5 * S)
    lat = [ex.latency.feed_ns(m) for m in msgs]
    tape = ex.tape
    raw = [ev.local_ns - ev.exch_ns for ev in tape.events]
    assert min(ex.latency.feed_ns(MarketMsg("x", SYM, 0, b"", i)) for i in range(len(raw))) == 2 * MS
    assert lat == [raw[m.seq] - min(raw) + 2 * MS for m in msgs]
    acks = [ex.latency.ack_ns() for _ in range(50)]
    assert all(MS <= x <= 2 * MS for x in acks) and len(set(acks)) > 10
    again = venue(SimConfig(feed_latency="recorded", recorded_floor_ms=2, ack_latency="uniform:1:2", seed=3))
    assert [again.latency.ack_ns() for _ in range(50)] == acks
    assert LatencyModel(entry="fixed:0.25").entry_ns() == 250_000


def test_binance_shapes():
    ex = synced_venue(after_ns=S)
    o = ex.place("a", SYM, "BUY", OrderType.MARKET, 12)
    r = o.to_binance(BTC)
    for k in ("orderId", "symbol", "status", "clientOrderId", "price", "avgPrice", "origQty", "executedQty", "cumQty",
              "cumQuote", "timeInForce", "type", "reduceOnly", "closePosition", "side", "positionSide", "stopPrice",
              "workingType", "priceProtect", "origType", "updateTime"):
        assert k in r
    assert r["status"] == "FILLED" and r["executedQty"] == "0.012" and r["positionSide"] == "BOTH"
    assert r["workingType"] == "CONTRACT_PRICE" and r["priceProtect"] is False and r["updateTime"] == ex.now_ns // MS
    assert Decimal(r["avgPrice"]) == o.avg_price.quantize(Decimal("0.00001"))
    assert Decimal(r["cumQuote"]) == o.cum_quote and len(o.client_order_id) == 22
    events = ex.drain_user_events()
    assert {e["e"] for _, e in events} == {"ORDER_TRADE_UPDATE", "ACCOUNT_UPDATE"}
    keys = {"s", "c", "S", "o", "f", "q", "p", "ap", "sp", "x", "X", "i", "l", "z", "L", "N", "n", "T", "t", "b", "a",
            "m", "R", "wt", "ot", "ps", "cp", "rp", "pP", "si", "ss", "V", "pm", "gtd"}
    for acct, e in events:
        assert acct == "a" and set(e) == {"e", "E", "T", "o" if e["e"] == "ORDER_TRADE_UPDATE" else "a"}
        if e["e"] == "ORDER_TRADE_UPDATE":
            assert set(e["o"]) == keys and e["E"] == ex.now_ns // MS
        else:
            assert set(e["a"]) == {"m", "B", "P"}
            assert set(e["a"]["P"][0]) == {"s", "pa", "ep", "bep", "cr", "up", "mt", "iw", "ps"}
            assert set(e["a"]["B"][0]) == {"a", "wb", "cw", "bc"}
