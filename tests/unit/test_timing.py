"""ext.timing.Timing: bit-for-bit agreement with engine.signals_ref.RefTiming, and the signals' behaviour."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engine.feed.reference import RefBook
from engine.signals_ref import MS, RING, SEC, SNAPSHOT_KEYS, TimingParams, RefTiming, apply_diff
from ext.book import Book
from ext.timing import Timing

BID, ASK = 0, 1
MID = 10_000          # ticks: 5 bps of the mid is 5 ticks


# ---- rig: one book + one kernel, driven through the Python API ------------------------------------------------


@dataclass
class Rig:
    book: Any
    sig: Any
    uid: int = 0

    def depth(self, levels: list[tuple[int, int, int]], ts: int, uid: int | None = None) -> None:
        self.uid = self.uid + 1 if uid is None else uid
        self.sig.py_on_depth(self.book, apply_diff(self.book, levels), ts, self.uid)

    def ticker(self, bb: int, bq: int, ba: int, aq: int, ts: int, uid: int | None = None) -> None:
        self.uid = self.uid + 1 if uid is None else uid
        self.sig.py_on_ticker(bb, bq, ba, aq, ts, self.uid)

    def trade(self, price: int, qty: int, sell: bool, ts: int) -> None:
        self.sig.py_on_trade(price, qty, sell, ts)

    def snap(self, now: int) -> dict[str, float]:
        return self.sig.snapshot(now)


IMPLS = {"cython": (Book, Timing), "reference": (RefBook, RefTiming)}


def make_rig(impl: str, **params: Any) -> Rig:
    book_cls, sig_cls = IMPLS[impl]
    return Rig(book_cls(), sig_cls(TimingParams(**params)))


def ladder(qty: int = 10, n: int = 10) -> list[tuple[int, int, int]]:
    """Bids MID-1 .. MID-n and asks MID+1 .. MID+n, ``qty`` lots each (spread 2 ticks)."""
    return [(BID, MID - i, qty) for i in range(1, n + 1)] + [(ASK, MID + i, qty) for i in range(1, n + 1)]


def seeded(impl: str, levels: list[tuple[int, int, int]] | None = None, **params: Any) -> Rig:
    rig = make_rig(impl, **params)
    rig.depth(ladder() if levels is None else levels, 0)
    return rig


both = pytest.mark.parametrize("impl", list(IMPLS))


# ---- property test: Cython == reference, bit for bit ------------------------------------------------------------

DT = st.one_of(st.just(0), st.integers(1, 5 * MS), st.integers(5 * MS, 300 * MS), st.integers(1 * SEC, 20 * SEC))
QTY = st.one_of(st.integers(1, 60), st.just(400))
OFF = st.one_of(st.integers(-2, 3), st.integers(-2, 25))
LEVEL = st.tuples(st.sampled_from([BID, ASK]), OFF, st.one_of(st.just(0), QTY))
DEPTH = st.tuples(st.just("depth"), DT, st.lists(LEVEL, max_size=12))
TICKER = st.tuples(st.just("ticker"), DT, st.integers(-3, 3), st.integers(-5, 5), st.integers(-20, 0))
TRADE = st.tuples(st.just("trade"), DT, st.booleans(), st.integers(0, 3), QTY, st.integers(-40, 5))
# a trade and a depth decrease at the same level, in either order, gap possibly beyond the tolerance
FILL = st.tuples(st.just("fill"), DT, st.booleans(), st.integers(0, 3), st.integers(1, 100), st.integers(0, 120),
                 st.booleans(), st.integers(0, 60))
EVENTS = st.lists(st.one_of(DEPTH, DEPTH, TICKER, TRADE, FILL, FILL), min_size=8, max_size=60)
PARAMS = st.one_of(
    st.just({}),
    st.fixed_dictionaries({
        "pull_k": st.sampled_from([1.0, 1.5, 3.0]), "pull_frac": st.sampled_from([0.2, 0.5, 1.0]),
        "pull_ticks": st.integers(0, 30), "band_bps": st.sampled_from([0.0, 3.0, 5.0, 25.0]),
        "mlofi_levels": st.integers(1, 16), "match_tol_ns": st.sampled_from([0, 5 * MS, 50 * MS, 2 * SEC]),
        "run_gap_ns": st.sampled_from([0, 10 * MS, 500 * MS]), "tau_vac_ns": st.sampled_from([1, 300 * MS]),
    }),
)


def touch(book: Any, side: int) -> int:
    best = book.best(side)
    return best[0] if best is not None else (MID - 1 if side == BID else MID + 1)


def level_price(book: Any, side: int, off: int) -> int:
    """Offset ``off`` ticks behind the touch (negative: improving it), never crossing the other side."""
    if side == BID:
        return min(touch(book, BID) - off, touch(book, ASK) - 1)
    return max(touch(book, ASK) + off, touch(book, BID) + 1)


class Pair:
    """The Cython kernel on ext.book.Book and the reference on RefBook, driven identically."""

    def __init__(self, params: dict[str, Any]) -> None:
        self.rigs = (Rig(Book(), Timing(**params)), Rig(RefBook(), RefTiming(**params)))
        self.now = 0
        self.hi = 0
        self.uid = 0

    def run(self, ev: tuple) -> None:
        kind, dt = ev[0], ev[1]
        if kind == "fill":
            self._fill(ev)
            return
        self.now += dt
        ts = self.now
        cbook = self.rigs[0].book
        if kind == "depth":
            changes = []
            for side, off, qty in ev[2]:       # later offsets see earlier levels, as in a real diff
                price = level_price(cbook, side, off)
                changes.append((side, price, qty, cbook.set(side, price, qty)))
            ref_changes = apply_diff(self.rigs[1].book, [c[:3] for c in changes])
            assert ref_changes == changes
            self.uid += 1
            for rig in self.rigs:
                rig.sig.py_on_depth(rig.book, changes, ts, self.uid)
        elif kind == "ticker":
            _, _, duid, dq, jitter = ev
            bb, ba = cbook.best(BID), cbook.best(ASK)
            if bb is None or ba is None:
                return
            ts = max(ts + jitter * MS, 0)
            for rig in self.rigs:
                rig.ticker(bb[0], max(bb[1] + dq, 1), ba[0], max(ba[1] - dq, 1), ts, self.uid + duid)
        else:
            _, _, sell, off, qty, jitter = ev
            side = BID if sell else ASK
            price = touch(cbook, side) + (-off if side == BID else off)
            ts = max(ts + jitter * MS, 0)
            for rig in self.rigs:
                rig.trade(price, qty, sell, ts)
        self.hi = max(self.hi, ts)

    def _fill(self, ev: tuple) -> None:
        """Trade ``tpct``% of the level at offset ``off`` and cut it by ``dpct``%, ``gap`` ms apart."""
        _, dt, sell, off, tpct, dpct, trade_first, gap = ev
        side = BID if sell else ASK
        cbook = self.rigs[0].book
        levels = cbook.top(side, off + 1)
        if len(levels) <= off:
            return
        price, qty = levels[off]
        trade = ("trade", 0, sell, 0, max(qty * tpct // 100, 1), 0)
        cut = ("cut", side, price, max(qty - qty * dpct // 100, 0))
        first, second = (trade, cut) if trade_first else (cut, trade)
        for i, e in enumerate((first, second)):
            self.now += dt if i == 0 else gap * MS
            if e[0] == "cut":
                changes = [(side, price, e[3], cbook.set(side, price, e[3]))]
                apply_diff(self.rigs[1].book, [changes[0][:3]])
                self.uid += 1
                for rig in self.rigs:
                    rig.sig.py_on_depth(rig.book, changes, self.now, self.uid)
            else:
                for rig in self.rigs:
                    rig.trade(price, e[4], sell, self.now)
            self.hi = max(self.hi, self.now)

    def check(self) -> None:
        for now in (self.hi, self.hi + 137 * MS):
            a, b = self.rigs[0].snap(now), self.rigs[1].snap(now)
            assert set(a) == set(b) == set(SNAPSHOT_KEYS)
            bad = {k: (a[k], b[k]) for k in a if a[k] != b[k] or math.isnan(a[k])}
            assert not bad, bad
            for side in (BID, ASK):
                assert self.rigs[0].sig.py_score(side, now) == self.rigs[1].sig.py_score(side, now)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(params=PARAMS, events=EVENTS)
def test_cython_matches_reference_bit_for_bit(params: dict[str, Any], events: list[tuple]) -> None:
    pair = Pair(params)
    pair.run(("depth", 0, [(BID, i, 10 + i) for i in range(8)] + [(ASK, i, 12 + i) for i in range(8)]))
    pair.check()
    for ev in events:
        pair.run(ev)
        pair.check()
