"""The Cython book against the plain reference book, on any sequence of updates, and on its own edge cases."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.feed.reference import RefBook
from ext.book import Book

BID, ASK = 0, 1
WINDOW = 64  # the smallest window, so re-centring and far levels happen constantly


def assert_same(book: Book, ref: RefBook) -> None:
    for side in (BID, ASK):
        assert book.best(side) == ref.best(side)
        assert book.levels(side) == ref.levels(side)
        assert book.count(side) == ref.count(side)
        assert book.top(side, 5) == ref.top(side, 5)
        for n in (0, 1, 3, 40, 200):
            assert book.depth(side, n) == ref.depth(side, n)
    assert book.crossed == ref.crossed
    assert book.spread == ref.spread
    if math.isnan(ref.mid):
        assert math.isnan(book.mid) and math.isnan(book.microprice)
    else:
        assert book.mid == ref.mid
        assert book.microprice == ref.microprice


# Prices cluster around a wandering centre (so the touch moves and forces re-centring), with occasional
# far-away levels and deletes of levels that were never there.
@st.composite
def updates(draw):
    centre = draw(st.integers(1_000, 100_000))
    ops = []
    for _ in range(draw(st.integers(1, 120))):
        centre += draw(st.integers(-40, 40))
        kind = draw(st.sampled_from(["near", "near", "near", "far", "delete"]))
        side = draw(st.sampled_from([BID, ASK]))
        if kind == "far":
            price = centre + draw(st.sampled_from([-1, 1])) * draw(st.integers(WINDOW, 50 * WINDOW))
        else:
            offset = draw(st.integers(0, 30))
            price = centre - 1 - offset if side == BID else centre + 1 + offset
        qty = 0 if kind == "delete" else draw(st.integers(0, 10_000))
        ops.append((side, max(price, 1), qty))
    return ops


@settings(max_examples=300, deadline=None)
@given(updates(), st.integers(0, 10))
def test_book_matches_reference_after_any_updates(ops, recenter_every):
    book, ref = Book(WINDOW), RefBook()
    for i, (side, price, qty) in enumerate(ops):
        assert book.set(side, price, qty) == ref.set(side, price, qty)
        if recenter_every and i % recenter_every == 0:
            book.maybe_recenter()
        assert book.best(BID) == ref.best(BID) and book.best(ASK) == ref.best(ASK)
    assert_same(book, ref)
    book.maybe_recenter()
    assert_same(book, ref)


@settings(max_examples=100, deadline=None)
@given(updates(), st.integers(-300, 300))
def test_forced_recentre_keeps_every_level(ops, shift):
    book, ref = Book(WINDOW), RefBook()
    for side, price, qty in ops:
        book.set(side, price, qty)
        ref.set(side, price, qty)
    if book.best(BID) or book.best(ASK):
        book.recenter_at(book.base + shift)
    assert_same(book, ref)


def test_delete_of_absent_level_is_harmless():
    book = Book(WINDOW)
    assert book.set(BID, 100, 0) == 0
    assert book.best(BID) is None
    book.set(BID, 100, 5)
    assert book.set(BID, 99, 0) == 0
    assert book.set(BID, 10_000_000, 0) == 0
    assert book.best(BID) == (100, 5)


def test_best_falls_back_to_far_levels_when_window_side_empties():
    book = Book(WINDOW)
    book.set(BID, 1000, 1)
    book.set(BID, 10, 7)          # far below the window
    book.set(ASK, 1001, 2)
    book.set(ASK, 90_000, 3)      # far above
    book.set(BID, 1000, 0)
    book.set(ASK, 1001, 0)
    assert book.best(BID) == (10, 7)
    assert book.best(ASK) == (90_000, 3)
    assert book.levels(BID) == [(10, 7)]


def test_crossed_detection_and_reads():
    book = Book(WINDOW)
    book.apply(BID, [100, 99, 98], [5, 6, 7])
    book.apply(ASK, [101, 102], [3, 4])
    assert not book.crossed and book.spread == 1
    assert book.mid == 100.5
    assert book.microprice == (100 * 3 + 101 * 5) / 8
    assert book.depth(BID, 1) == 11 and book.depth(ASK, 10) == 7
    assert book.top(BID, 2) == [(100, 5), (99, 6)]
    book.set(BID, 101, 1)
    assert book.crossed


def test_depth_bps_uses_mid():
    book = Book(4096)
    book.apply(BID, [100_000, 99_990, 99_950], [1, 2, 4])
    book.apply(ASK, [100_001], [1])
    # 5 bps of a 100000.5-tick mid is 50 ticks: bids in [99950, 100000]
    assert book.depth_bps(BID, 5.0) == 7
    assert book.depth_bps(BID, 1.0) == 3


def test_bad_input_is_refused():
    book = Book(WINDOW)
    with pytest.raises(ValueError):
        book.set(2, 100, 1)
    with pytest.raises(ValueError):
        book.set(BID, 100, -1)
    with pytest.raises(ValueError):
        Book(8)
