"""The hybrid's rule on a book it is handed: rest at the touch while waiting is predicted cheaper than taking,
cancel and cross at once when the prediction turns, and the kernels-only predictor's units."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from strategies.base import BUY, SELL, Cancel, OrderUpdate, Place, Spec
from strategies.hybrid import Hybrid, KernelPredictor

MS = 1_000_000


@dataclass
class Book:
    bid: tuple[int, int] = (1000, 50)
    ask: tuple[int, int] = (1001, 40)

    def best(self, side: int):
        return self.bid if side == 0 else self.ask

    @property
    def mid(self) -> float:
        return (self.bid[0] + self.ask[0]) / 2


@dataclass
class Timing:
    snap: dict = field(default_factory=lambda: {"micro_drift": 0.0, "sell_vol_slow": 0.0, "buy_vol_slow": 0.0})

    def snapshot(self, now: int) -> dict:
        return self.snap


@dataclass
class Feed:
    book: Book = field(default_factory=Book)
    timing: Timing = field(default_factory=Timing)


def make(side: int = BUY, pred=(0.0, 0.9)) -> tuple[Hybrid, list]:
    state = {"pred": pred}
    ids = iter(range(1, 100))
    spec = Spec("BTCUSDT", side, 10, 0, 30_000 * MS, 1010 if side == BUY else 990)
    algo = Hybrid(spec, lambda: f"c{next(ids)}", predictor=lambda sf, now, s: state["pred"])
    return algo, [state]


def test_it_rests_post_only_at_the_touch_while_waiting_is_cheaper():
    algo, _ = make(pred=(0.0, 0.9))
    (p,) = algo.on_market(Feed(), 1 * MS)
    assert isinstance(p, Place) and (p.price, p.tif, p.qty) == (1000, "GTX", 10) and p.reason.startswith("rest")
    take, wait, _, _ = algo.last
    assert wait < take


def test_an_unlikely_fill_alone_is_no_reason_to_cross():
    """A resting order keeps the option to wait on: with no predicted move it rests whatever the fill chance; it
    crosses only once the predicted adverse move makes waiting cost ``cross_bps`` more than taking."""
    algo, [state] = make(pred=(0.0, 0.0))
    (p,) = algo.on_market(Feed(), 1 * MS)
    assert isinstance(p, Place) and p.tif == "GTX"
    state["pred"] = (algo.cross_bps * 0.9, 0.0)
    assert algo.on_market(Feed(), 30 * MS) == []
    state["pred"] = (algo.cross_bps * 1.1, 0.0)
    (c,) = algo.on_market(Feed(), 60 * MS)
    assert isinstance(c, Cancel) and "cross" in c.reason


def test_it_cancels_and_crosses_when_the_prediction_turns():
    algo, [state] = make(pred=(0.0, 0.9))
    sf = Feed()
    (rest,) = algo.on_market(sf, 1 * MS)
    state["pred"] = (8.0, 0.05)                                      # the price is about to run: take now
    (c,) = algo.on_market(sf, 30 * MS)
    assert isinstance(c, Cancel) and c.cid == rest.cid and "cross" in c.reason
    (ioc,) = algo.on_order(OrderUpdate(rest.cid, "CANCELED", final=True), sf, 31 * MS)
    assert isinstance(ioc, Place) and (ioc.price, ioc.tif, ioc.qty) == (1010, "IOC", 10)


def test_a_sell_rests_at_the_ask_and_reprices_with_it():
    algo, _ = make(side=SELL, pred=(0.0, 0.9))
    sf = Feed()
    (p,) = algo.on_market(sf, 1 * MS)
    assert p.price == 1001
    sf.book.ask = (1002, 40)
    (c,) = algo.on_market(sf, 40 * MS)
    assert isinstance(c, Cancel) and c.reason == "rest: the touch moved"


def test_the_kernel_predictor_reads_drift_and_the_opposite_flow():
    sf = Feed()
    sf.timing.snap = {"micro_drift": 0.5, "sell_vol_slow": 250.0, "buy_vol_slow": 0.0}     # ticks/s; lots / 5 s
    move, p = KernelPredictor(horizon_s=2.0)(sf, 0, BUY)
    assert math.isclose(move, 0.5 * 2.0 / 1000.5 * 1e4)              # ticks over the horizon, in bps of the mid
    assert math.isclose(p, 1 - math.exp(-(250 / 5) * 2.0 / 50))      # rate x horizon against the queue ahead
    move_s, p_s = KernelPredictor(horizon_s=2.0)(sf, 0, SELL)
    assert math.isclose(move_s, -move) and p_s == 0.0                # no buy aggressors: a resting sell never fills
