"""The execution chart: the touch timeline the tracker keeps (bounded, only changes), and the picture drawn from
a ``ChartData`` (a valid PNG of a sensible size, with the data it was given on it)."""

from __future__ import annotations

import itertools

import numpy as np
import orjson
import pytest

from engine import bench
from engine.execution import TOUCH_CAP, TOUCH_STEP_NS, Arrival, Touch, Tracker
from engine.oms.journal import dumps
from engine.plot import ChartData, Fills, Markouts, OrderLine, _fill_sizes, build_figure, render_png
from ext.feed import Feed
from strategies.base import BUY, Spec

MS = 1_000_000
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def synthetic(n_fills: int = 4) -> ChartData:
    """A buy of 1.2 BTC: a touch drifting up, a chased bid (three resting orders), one IOC, fills of unequal
    size, the mid afterwards out to the +30 s markout."""
    rng = np.random.default_rng(7)
    times = np.arange(0.0, 50.0, 0.25)
    bid = 70_000.0 + np.cumsum(rng.integers(-1, 2, len(times))) * 0.1
    ask = bid + 0.1 * rng.integers(1, 3, len(times))
    qty = np.array([0.1, 0.2, 0.4, 0.5][:n_fills])
    t_fill = np.array([2.0, 4.5, 7.0, 9.5][:n_fills])
    orders = [OrderLine("i1-1", "BUY", 69_999.9, 0.6, 0.0, 3.0, False, "CANCELED", 0.1, 69_999.9),
              OrderLine("i1-2", "BUY", 70_000.2, 0.5, 3.0, 6.0, False, "CANCELED", 0.2, 70_000.2),
              OrderLine("i1-3", "BUY", 70_000.5, 0.3, 6.0, 7.0, False, "FILLED", 0.3, 70_000.5),
              OrderLine("i1-4", "BUY", 70_003.0, 0.5, 9.5, 9.5, True, "FILLED", 0.5, 70_001.0)]
    return ChartData(
        intent_id="i1", symbol="BTCUSDT", side="BUY", algo="ladder", state="done", text="long btc 1.2 20s max 8bps",
        requested=1.2, times=times, bid=bid, ask=ask, mid=(bid + ask) / 2, orders=orders,
        fills=Fills(t_fill, 70_000.0 + t_fill * 0.1, qty, np.array([True, True, False, False][:n_fills])),
        arrival_mid=70_000.05, cap=70_056.0, limit=None, deadline_s=20.0, end_s=9.6, last_fill_s=9.5,
        markouts=Markouts(["+1s", "+5s", "+30s"], np.array([10.6, 14.6, 39.6]), np.array([70_001.0, 70_002.5,
                                                                                          np.nan]),
                          np.array([0.4, 1.2, np.nan])),
        avg_price=70_000.8, shortfall_bps=1.9, price_places=1)


def _by_gid(fig, gid: str) -> list:
    return fig.findobj(lambda a: a.get_gid() == gid)


def test_render_png_is_a_png_of_a_sensible_size():
    png = render_png(synthetic())
    assert png.startswith(PNG_MAGIC) and png[12:16] == b"IHDR"
    width, height = int.from_bytes(png[16:20], "big"), int.from_bytes(png[20:24], "big")
    assert 800 <= width <= 2400 and 400 <= height <= width
    assert 10_000 <= len(png) <= 1_000_000


def test_the_figure_shows_the_data_it_was_given():
    data = synthetic()
    fig = build_figure(data)
    (fills,) = _by_gid(fig, "fills")
    assert len(fills.get_offsets()) == len(data.fills)
    assert np.allclose(fills.get_offsets(), np.column_stack([data.fills.t_s, data.fills.price]))
    sizes = fills.get_sizes()
    assert np.allclose(sizes / data.fills.qty, sizes[0] / data.fills.qty[0])       # area proportional to qty
    assert sizes.max() == pytest.approx(_fill_sizes(data.fills.qty).max())
    for gid in ("bid", "ask", "mid", "arrival_mid", "cap", "deadline", "after_fill", "markouts", "filled",
                "requested"):
        assert _by_gid(fig, gid), gid
    (bid,) = _by_gid(fig, "bid")
    assert np.allclose(bid.get_ydata()[: len(data.bid)], data.bid)
    (cap,) = _by_gid(fig, "cap")
    assert cap.get_ydata()[0] == data.cap
    (deadline,) = _by_gid(fig, "deadline")
    assert deadline.get_xdata()[0] == data.deadline_s
    (orders,) = _by_gid(fig, "orders")                                 # the three resting orders, as levels
    segs = orders.get_segments()
    assert [(s[0][0], s[1][0], s[0][1]) for s in segs] == [(o.start_s, o.end_s, o.price) for o in data.orders[:3]]
    (ioc,) = _by_gid(fig, "ioc")                                       # the IOC shot, a marker
    assert ioc.get_offsets().tolist() == [[9.5, 70_003.0]]
    (marks,) = _by_gid(fig, "markouts")                                # the +30 s mid was not recorded
    assert len(marks.get_offsets()) == 2
    (filled,) = _by_gid(fig, "filled")
    assert filled.get_ydata().max() == pytest.approx(data.fills.qty.sum())


def test_a_chart_without_touch_or_fills_still_draws():
    data = synthetic()
    data.times = data.bid = data.ask = data.mid = np.zeros(0)
    data.fills = Fills()
    data.markouts = Markouts()
    fig = build_figure(data)
    assert not _by_gid(fig, "bid") and not _by_gid(fig, "fills") and _by_gid(fig, "orders")
    assert render_png(data).startswith(PNG_MAGIC)


def test_touch_keeps_changes_only_at_most_every_step_and_stays_bounded():
    t = Touch(0)
    t.add(0, 100, 101)
    t.add(5 * MS, 99, 101)                    # the caller checks next_ns; add itself keeps any change
    t.add(30 * MS, 99, 101)                   # unchanged: not kept
    t.add(40 * MS, -(2**63), 101)             # an empty side: not a touch
    assert list(t.t_ms) == [0, 5] and list(t.bid) == [100, 99] and t.next_ns == 40 * MS + TOUCH_STEP_NS
    t = Touch(0)
    for i in range(3 * TOUCH_CAP):
        t.add(i * TOUCH_STEP_NS * 4, 1000 + i % 7, 1001 + i % 7)
    assert len(t.t_ms) < TOUCH_CAP and t.decimated >= 1 and t.step_ns == TOUCH_STEP_NS * 2 ** t.decimated
    assert t.t_ms[-1] == (3 * TOUCH_CAP - 1) * TOUCH_STEP_NS * 4 // MS        # the newest touch is kept
    assert list(t.t_ms) == sorted(t.t_ms)


def test_tracker_records_the_real_touch_and_journals_it(sample):
    tape = bench.load_tape([sample])
    start = bench._sync_point(tape)
    feed = Feed(tape.instruments)
    feed.replay(tape.messages[:start])
    sf = feed.symbols[0]
    t0 = sf.last_event_ns
    spec = Spec(sf.symbol, BUY, 100, t0, t0 + 10 * 10**9, 10**9, True, False, 5 * MS, None, 1, 20 * MS)
    tr = Tracker(spec, Arrival.stamp(sf, t0), "sniper")
    seen = {(sf.book.best_bid, sf.book.best_ask)}
    for m in tape.messages[start:]:
        if feed.on_message(m) > 0:
            tr.on_book(sf, sf.last_event_ns)
            seen.add((sf.book.best_bid, sf.book.best_ask))
    touch = tr.touch
    pairs = list(zip(touch.bid, touch.ask, strict=True))
    assert len(pairs) > 20 and set(pairs) <= seen
    assert all(a != b for a, b in itertools.pairwise(pairs))                      # changes only
    assert min(np.diff(touch.t_ms)) >= TOUCH_STEP_NS // MS                        # at most one per step
    row = orjson.loads(dumps(tr.timeline(feed.symbols[0].instrument)))           # as the journal stores it
    assert row["touch"]["t_ms"] == list(touch.t_ms) and row["touch"]["bid"] == list(touch.bid)
    assert row["tick"] == str(sf.instrument.tick_size) and row["arrival_ns"] == t0
