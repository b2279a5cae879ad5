"""ext.timing.Timing: bit-for-bit agreement with engine.signals_ref.RefTiming, and the signals' behaviour."""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engine.feed.reference import RefBook
from engine.signals_ref import MS, RING, SEC, SNAPSHOT_KEYS, RefTiming, TimingParams, apply_diff
from ext.book import Book
from ext.timing import Timing

BID, ASK = 0, 1
MID = 10_000          # ticks: 5 bps of the mid is 5 ticks


# ---- rig: one book + one kernel, driven through the Python API ---------------------------------------------


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


# ---- property test: Cython == reference, bit for bit -------------------------------------------------------

DT = st.one_of(st.just(0), st.integers(1, 5 * MS), st.integers(5 * MS, 300 * MS),
               st.integers(1 * SEC, 20 * SEC))
QTY = st.one_of(st.integers(1, 60), st.just(400))
OFF = st.one_of(st.integers(-2, 3), st.integers(-2, 25))
LEVEL = st.tuples(st.sampled_from([BID, ASK]), OFF, st.one_of(st.just(0), QTY))
DEPTH = st.tuples(st.just("depth"), DT, st.lists(LEVEL, max_size=12))
TICKER = st.tuples(st.just("ticker"), DT, st.integers(-3, 3), st.integers(-5, 5), st.integers(-20, 0))
TRADE = st.tuples(st.just("trade"), DT, st.booleans(), st.integers(0, 3), QTY, st.integers(-40, 5))
# a trade and a depth decrease at the same level, in either order, gap possibly beyond the tolerance
FILL = st.tuples(st.just("fill"), DT, st.booleans(), st.integers(0, 3), st.integers(1, 100),
                 st.integers(0, 120), st.booleans(), st.integers(0, 60))
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


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(params=PARAMS, events=EVENTS)
def test_cython_matches_reference_bit_for_bit(params: dict[str, Any], events: list[tuple]) -> None:
    pair = Pair(params)
    pair.run(("depth", 0, [(BID, i, 10 + i) for i in range(8)] + [(ASK, i, 12 + i) for i in range(8)]))
    pair.check()
    for ev in events:
        pair.run(ev)
        pair.check()


def test_rings_overflow_identically() -> None:
    """More unmatched trades / decreases than the rings hold: the oldest are dropped the same way."""
    pair = Pair({"pull_k": 1.0, "match_tol_ns": SEC})
    pair.run(("depth", 0, [(BID, i, 10) for i in range(40)] + [(ASK, i, 10) for i in range(40)]))
    for i in range(RING + 20):                          # trades at many prices, no depth change yet
        pair.run(("trade", MS, i % 2 == 0, i % 30, 3, 0))
        pair.check()
    pair.run(("depth", MS, [(s, off, 0) for off in range(25) for s in (BID, ASK)]))
    pair.check()
    for i in range(RING + 20):                          # late trades against the remembered decreases
        pair.run(("trade", MS, i % 2 == 0, (i * 7) % 5, 2, 0))
        pair.check()
    assert len(pair.rigs[1].sig.dring) <= RING and len(pair.rigs[1].sig.tring) <= RING


def test_band_depth_paths_match_reference() -> None:
    """Touch jumps small and large (incremental strips and the full fallback), over > 64 diffs."""
    rng = random.Random(11)
    pair = Pair({"band_bps": 100.0})                    # 100-tick band at MID
    pair.run(("depth", 0, [(side, i, 5 + i % 7) for side in (BID, ASK) for i in range(400)]))
    for _ in range(300):
        jump = rng.choice([0, 0, 1, 3, 40, 90, 150])
        side = rng.randrange(2)
        levels = [(side, i, 0) for i in range(jump)]    # sweep ``jump`` ticks away from the touch ...
        levels += [(1 - side, -rng.randint(0, min(jump, 5)), rng.randint(1, 30))]   # ... refill the other
        levels += [(rng.randrange(2), rng.randint(-2, 120), rng.randint(0, 30)) for _ in range(5)]
        pair.run(("depth", rng.randint(0, 200) * MS, levels))
        pair.check()
        cbook, snap = pair.rigs[0].book, pair.rigs[0].snap(pair.hi)
        bt = int(cbook.mid * 100.0 * 1e-4)
        assert snap["band_depth_bid"] == cbook.depth(BID, bt)
        assert snap["band_depth_ask"] == cbook.depth(ASK, bt)


def test_band_depth_heals_after_book_edited_behind_its_back() -> None:
    rig = seeded("cython")
    rig.book.set(BID, MID - 2, 500)                     # not reported through on_depth
    for i in range(64):
        rig.depth([], (i + 1) * MS)
    assert rig.snap(SEC)["band_depth_bid"] == float(rig.book.depth(BID, 5))


# ---- behaviour (both implementations) ----------------------------------------------------------------------

BIG = MID - 8       # a bid 8 ticks behind the best bid (MID-1): outside the 5-tick band, inside 20 ticks


def with_big_bid(impl: str, **params: Any) -> Rig:
    """Ladder of 10-lot levels plus a 200-lot bid at BIG (> 5 x the 10-lot average level)."""
    rig = seeded(impl, **params)
    rig.depth([(BID, BIG, 200)], 50 * MS)
    return rig


@both
def test_large_level_removed_without_trade_is_pulled(impl: str) -> None:
    rig = with_big_bid(impl)
    base = with_big_bid(impl)
    rig.depth([(BID, BIG, 0)], 100 * MS)
    base.depth([(BID, MID - 30, 5)], 100 * MS)          # an unrelated change far from the touch
    s = rig.snap(100 * MS)
    assert s["pulled_acc_bid"] == 200.0 and s["pulled_acc_ask"] == 0.0
    assert s["pulled_bid"] == pytest.approx(200 / (200 + 60))   # band: 6 bids of 10 (touch + 5 ticks)
    assert s["vacuum_acc_bid"] == 0.0                   # outside the band: not a vacuum
    assert rig.sig.py_score(BID, 100 * MS) < base.sig.py_score(BID, 100 * MS)
    assert rig.sig.py_score(ASK, 100 * MS) > base.sig.py_score(ASK, 100 * MS)


@both
def test_small_level_removed_is_not_pulled(impl: str) -> None:
    rig = with_big_bid(impl)
    rig.depth([(BID, MID - 9, 0)], 100 * MS)            # a 10-lot level: not large
    assert rig.snap(100 * MS)["pulled_acc_bid"] == 0.0


@both
def test_removal_explained_by_earlier_trade_is_not_pulled(impl: str) -> None:
    rig = with_big_bid(impl)
    rig.trade(BIG, 200, True, 90 * MS)                  # aggressive sell consumes the bid
    rig.depth([(BID, BIG, 0)], 100 * MS)
    assert rig.snap(100 * MS)["pulled_acc_bid"] == 0.0


@both
def test_trade_on_the_other_side_does_not_explain(impl: str) -> None:
    rig = with_big_bid(impl)
    rig.trade(BIG, 200, False, 90 * MS)                 # an aggressive buy consumes asks, not this bid
    rig.depth([(BID, BIG, 0)], 100 * MS)
    assert rig.snap(100 * MS)["pulled_acc_bid"] == 200.0


@both
def test_removal_explained_by_late_trade_is_corrected(impl: str) -> None:
    rig = with_big_bid(impl)
    rig.depth([(BID, BIG, 0)], 100 * MS)
    rig.trade(BIG, 50, True, 120 * MS)                  # 150 of 200 still unexplained: >= half, still pulled
    assert rig.snap(100 * MS)["pulled_acc_bid"] == 150.0          # read at the pull clock: undecayed
    assert rig.snap(120 * MS)["pulled_acc_bid"] == pytest.approx(150.0 * math.exp(-20 / 2000))
    rig.trade(BIG, 100, True, 130 * MS)                 # 50 left < half of 200: no longer a pull at all
    assert rig.snap(130 * MS)["pulled_acc_bid"] == 0.0


@both
def test_late_trade_outside_tolerance_does_not_explain(impl: str) -> None:
    rig = with_big_bid(impl)
    rig.depth([(BID, BIG, 0)], 100 * MS)
    rig.trade(BIG, 200, True, 151 * MS)                 # 51 ms > 50 ms tolerance
    assert rig.snap(100 * MS)["pulled_acc_bid"] == 200.0


@both
def test_late_trade_correction_is_exact_after_decay(impl: str) -> None:
    """A trade 40 ms late removes what its decrease contributes now, decayed: the sum returns to the rest."""
    rig = seeded(impl)
    rig.depth([(ASK, MID + 2, 0), (ASK, MID + 3, 4)], 100 * MS)     # 10 + 6 lots vanish within the band
    rig.depth([(ASK, MID + 20, 11)], 130 * MS)                      # moves the vacuum clock on
    rig.trade(MID + 2, 10, False, 140 * MS)                          # explains the 10 at MID+2
    f = math.exp(-40 * MS / (300 * MS))
    assert rig.snap(140 * MS)["vacuum_acc_ask"] == pytest.approx(6 * f, rel=1e-12)


@both
def test_in_band_unexplained_fall_is_a_vacuum(impl: str) -> None:
    rig = seeded(impl)
    rig.depth([(BID, MID - 3, 0)], 100 * MS)            # 10 lots vanish inside the band
    s = rig.snap(100 * MS)
    assert s["vacuum_acc_bid"] == 10.0 and s["vacuum_acc_ask"] == 0.0
    assert s["vacuum_bid"] == pytest.approx(10 / (10 + 50))
    traded = seeded(impl)
    traded.trade(MID - 3, 10, True, 95 * MS)
    traded.depth([(BID, MID - 3, 0)], 100 * MS)
    assert traded.snap(100 * MS)["vacuum_acc_bid"] == 0.0


@both
def test_touch_level_consumed_counts_against_old_touch(impl: str) -> None:
    """The best bid swept by a trade is explained even though the new touch is a tick lower."""
    rig = seeded(impl)
    rig.trade(MID - 1, 10, True, 95 * MS)
    rig.depth([(BID, MID - 1, 0)], 100 * MS)
    assert rig.snap(100 * MS)["vacuum_acc_bid"] == 0.0
    pulled = seeded(impl)
    pulled.depth([(BID, MID - 1, 0)], 100 * MS)
    assert pulled.snap(100 * MS)["vacuum_acc_bid"] == 10.0


@both
def test_run_of_buys_then_opposite_print_then_gap(impl: str) -> None:
    rig = make_rig(impl)
    for i in range(5):
        rig.trade(MID + 1, i + 1, False, i * 10 * MS)
    s = rig.snap(40 * MS)
    assert s["run_count"] == 5.0 and s["run_volume"] == 15.0
    rig.trade(MID - 1, 7, True, 50 * MS)
    s = rig.snap(50 * MS)
    assert s["run_count"] == -1.0 and s["run_volume"] == -7.0
    assert rig.snap(50 * MS + 501 * MS)["run_count"] == 0.0         # stale run reads as none
    rig.trade(MID - 1, 2, True, 50 * MS + 501 * MS)                   # same side after a gap: a new run
    assert rig.snap(551 * MS)["run_count"] == -1.0


@both
def test_aggressor_imbalance(impl: str) -> None:
    rig = make_rig(impl)
    rig.trade(MID + 1, 30, False, 0)
    rig.trade(MID - 1, 10, True, 0)
    s = rig.snap(0)
    assert s["tape_imb_fast"] == pytest.approx(0.5) and s["tape_imb_slow"] == pytest.approx(0.5)
    s = rig.snap(3 * SEC)                               # ratios of equally decayed volumes do not change
    assert s["tape_imb_fast"] == pytest.approx(0.5) and s["buy_vol_fast"] < s["buy_vol_slow"]


def halflife(tau_ns: int) -> int:
    return round(tau_ns * math.log(2))


@both
def test_decays_halve_after_tau_ln2(impl: str) -> None:
    p = TimingParams()
    rig = seeded(impl)
    rig.ticker(MID - 1, 10, MID + 1, 10, SEC, uid=100)
    rig.ticker(MID - 1, 30, MID + 1, 10, SEC, uid=101)              # OFI +20
    rig.trade(MID + 5, 8, False, SEC)
    rig.depth([(BID, MID - 2, 0), (ASK, MID + 2, 40)], SEC, uid=50)  # vacuum 10 bid, velocity -10 / +30
    s0 = rig.snap(SEC)
    cases = [("ofi", p.tau_ofi_ns), ("buy_vol_fast", p.tau_flow_fast_ns),
             ("buy_vol_slow", p.tau_flow_slow_ns), ("vacuum_acc_bid", p.tau_vac_ns),
             ("depth_vel_bid", p.tau_vel_ns), ("depth_vel_ask", p.tau_vel_ns)]
    for key, tau in cases:
        assert s0[key] != 0.0
        assert rig.snap(SEC + halflife(tau))[key] == pytest.approx(s0[key] / 2, rel=1e-8), key


@pytest.mark.parametrize(
    ("new", "e"),
    [
        ((100, 15, 103, 10), 5),     # more bid size at the same price: buy pressure
        ((101, 7, 103, 10), 7),      # bid price up: the new bid size
        ((99, 20, 103, 10), -10),    # bid price down: the old bid size is gone
        ((100, 4, 103, 10), -6),     # bid size cancelled
        ((100, 10, 103, 14), -4),    # more ask size at the same price: sell pressure
        ((100, 10, 102, 6), -6),     # ask price down: new ask size
        ((100, 10, 104, 30), 10),    # ask price up: old ask size gone
        ((100, 10, 103, 3), 7),      # ask size cancelled
    ],
)
@both
def test_ofi_textbook_cases(impl: str, new: tuple[int, int, int, int], e: int) -> None:
    rig = make_rig(impl)
    rig.ticker(100, 10, 103, 10, 0)
    rig.ticker(*new, 0)
    s = rig.snap(0)
    assert s["ofi"] == float(e)
    assert math.copysign(1.0, s["ofi_norm"]) == math.copysign(1.0, e)


@both
def test_stale_touch_uid_is_ignored_but_depth_still_counts(impl: str) -> None:
    rig = seeded(impl)                                   # depth uid 1
    rig.ticker(MID - 1, 10, MID + 1, 10, 0, uid=10)
    rig.ticker(MID - 1, 50, MID + 1, 10, 0, uid=9)       # stale: ignored
    assert rig.snap(0)["ofi"] == 0.0
    rig.depth([(BID, MID - 1, 60), (BID, MID - 2, 40)], MS, uid=8)   # stale for the touch, not for depth
    s = rig.snap(MS)
    assert s["ofi"] == 0.0 and s["depth_vel_bid"] > 0.0 and s["mlofi"] == 80.0
    rig.depth([(BID, MID - 3, 11)], 2 * MS, uid=11)      # newer: touch read from the book (bid 60 vs 10)
    assert rig.snap(2 * MS)["ofi"] == 50.0
    assert rig.snap(2 * MS + halflife(SEC))["ofi"] == pytest.approx(25.0)


@both
def test_out_of_order_time_never_grows_a_decay(impl: str) -> None:
    rig = make_rig(impl)
    rig.trade(MID + 1, 10, False, SEC)
    rig.trade(MID + 1, 10, False, SEC - 30 * MS)         # trade stream behind: dt clamps to 0
    s = rig.snap(SEC)
    assert s["buy_vol_fast"] == 20.0
    assert rig.snap(SEC - 500 * MS) == s                 # reading in the past does not un-decay


@both
def test_absorption_at_held_touch_and_reset_on_move(impl: str) -> None:
    rig = make_rig(impl)
    rig.ticker(MID - 1, 10, MID + 1, 10, 0)
    for i in range(3):
        rig.trade(MID + 1, 10, False, i * MS)            # buys at the ask
        rig.ticker(MID - 1, 10, MID + 1, 10 - i, i * MS)  # the ask holds (refilled)
    s = rig.snap(2 * MS)
    ratio = sum(10 * math.exp(-k * MS / (2 * SEC)) for k in range(3)) / 10   # decayed volume / peak 10
    assert s["absorption_ask"] == pytest.approx(ratio, rel=1e-6) and s["absorption_bid"] == 0.0
    rig.ticker(MID, 10, MID + 2, 10, 3 * MS)             # ask moves away: tally restarts
    assert rig.snap(3 * MS)["absorption_ask"] == 0.0


@both
def test_multi_level_ofi_sees_depth_behind_the_touch(impl: str) -> None:
    rig = seeded(impl)
    rig.depth([(BID, MID - 3, 40)], MS)                  # level 3: +30 lots
    s = rig.snap(MS)
    assert s["mlofi"] == 30.0 and s["ofi"] == 0.0
    rig.depth([(ASK, MID + 2, 25)], MS)                  # ask level 2: +15 lots of sell pressure
    assert rig.snap(MS)["mlofi"] == 15.0


@both
def test_depth_velocity_in_lots_per_second(impl: str) -> None:
    rig = seeded(impl)
    rig.depth([(BID, MID - 2, 110)], SEC)                # +100 lots inside the band at once
    assert rig.snap(SEC)["depth_vel_bid"] == pytest.approx(100 / 0.5)
    rig.depth([(BID, MID - 40, 999)], SEC)               # outside the band: no velocity
    assert rig.snap(SEC)["depth_vel_bid"] == pytest.approx(100 / 0.5)


@both
def test_spread_and_microprice(impl: str) -> None:
    rig = make_rig(impl)
    rig.ticker(100, 30, 102, 10, 0)
    s = rig.snap(0)
    assert s["spread"] == 2.0 and s["spread_avg"] == 2.0
    assert s["micro_tilt"] == pytest.approx(0.5)         # (100*10 + 102*30)/40 - 101
    rig.ticker(100, 10, 104, 10, SEC)                    # microprice 101.5 -> 102
    s = rig.snap(SEC)
    assert s["spread"] == 4.0 and s["spread_avg"] == 2.0  # time-weighted: 4 has not lasted yet
    assert s["micro_drift"] == pytest.approx(0.5 / 0.5) and s["micro_tilt"] == 0.0
    assert rig.snap(2 * SEC)["spread_avg"] == pytest.approx(4.0 - 2.0 * math.exp(-1.0))


@both
def test_buy_pressure_scores_positive_for_buy_negative_for_sell(impl: str) -> None:
    rig = seeded(impl)
    t = 100 * MS
    for i in range(6):
        t += 20 * MS
        rig.trade(MID + 1, 5, False, t)
        rig.depth([(BID, MID - 1, 10 + 5 * (i + 1)), (ASK, MID + 2, max(10 - 2 * i, 1))], t)
    assert rig.sig.py_score(BID, t) > 0.3
    assert rig.sig.py_score(ASK, t) < -0.3
    later = rig.snap(t + 60 * SEC)                      # flow signals decay away; book state (tilt) stays
    assert later["ofi"] == pytest.approx(0.0, abs=1e-9) and later["buy_vol_slow"] < 1e-3
    assert later["micro_tilt"] > 0.0 and 0.0 < rig.sig.py_score(BID, t + 60 * SEC) < rig.sig.py_score(BID, t)


def mirror_events(sell_first: bool) -> list[tuple]:
    """A fixed little scenario; mirrored: prices reflected about MID, sides and aggressors swapped."""
    ev = [("depth", 0, [(BID, MID - i, 10 + i) for i in range(1, 9)] + [(ASK, MID + i, 12 + 2 * i)
                                                                       for i in range(1, 9)])]
    ev += [("trade", 5 * MS, MID + 1, 7, False),
           ("depth", 10 * MS, [(ASK, MID + 1, 0), (BID, MID - 3, 40)]),
           ("ticker", 12 * MS, MID - 1, 11, MID + 2, 16), ("trade", 13 * MS, MID - 1, 3, True),
           ("depth", 40 * MS, [(BID, MID - 7, 0), (ASK, MID + 4, 200)]),
           ("trade", 45 * MS, MID + 2, 9, False)]
    return ev


def drive(rig: Rig, ev: list[tuple], mirror: bool) -> None:
    m = (lambda p: 2 * MID - p) if mirror else (lambda p: p)
    for e in ev:
        if e[0] == "depth":
            rig.depth([(1 - s if mirror else s, m(p), q) for s, p, q in e[2]], e[1])
        elif e[0] == "trade":
            rig.trade(m(e[2]), e[3], e[4] != mirror, e[1])
        else:
            _, ts, bb, bq, ba, aq = e
            rig.ticker(m(ba), aq, m(bb), bq, ts) if mirror else rig.ticker(bb, bq, ba, aq, ts)


@both
def test_score_is_mirror_symmetric(impl: str) -> None:
    a, b = make_rig(impl, band_bps=25.5), make_rig(impl, band_bps=25.5)     # 25 ticks both ways round
    drive(a, mirror_events(False), mirror=False)
    drive(b, mirror_events(False), mirror=True)
    for now in (45 * MS, 300 * MS):
        assert a.sig.py_score(BID, now) == pytest.approx(b.sig.py_score(ASK, now), abs=1e-12)
        assert a.sig.py_score(ASK, now) == pytest.approx(b.sig.py_score(BID, now), abs=1e-12)
        assert abs(a.sig.py_score(BID, now)) > 0.05


@both
def test_reset_depth_after_book_rebuild(impl: str) -> None:
    rig = seeded(impl)
    book_cls = IMPLS[impl][0]
    rig.book = book_cls()                                # resync: a fresh book from a snapshot
    rig.sig.py_reset_depth()
    rig.depth(ladder(qty=3), SEC)
    s = rig.snap(SEC)
    assert s["band_depth_bid"] == 3.0 * 6 and s["depth_vel_bid"] == 0.0


def test_params_keywords_and_validation() -> None:
    t = Timing(tau_ofi_ns=2 * SEC, band_bps=3.0)
    assert t.params.tau_ofi_ns == 2 * SEC and t.params.band_bps == 3.0
    t2 = Timing(TimingParams(pull_k=7.0), run_gap_ns=MS)
    assert (t2.params.pull_k, t2.params.run_gap_ns) == (7.0, MS)
    with pytest.raises(ValueError):
        Timing(tau_vac_ns=0)
    with pytest.raises(ValueError):
        RefTiming(mlofi_levels=17)
    with pytest.raises(ValueError):
        Timing().py_score(2, 0)
