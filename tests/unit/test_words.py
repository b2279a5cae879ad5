"""The trader's units: every text a trader reads has its units, and never None, a Decimal repr, a dict or lots."""

from __future__ import annotations

import re
from decimal import Decimal
from types import SimpleNamespace

import pytest

from engine import words
from engine.model import Instrument

BTC = Instrument.make("BTCUSDT", "0.1", "0.001")
EIGHT_DECIMALS = re.compile(r"\d\.\d{8}\b")


def report(**over) -> dict:
    """A finished intent's report as the intent runner publishes it (``Tracker.report`` plus the runner's keys)."""
    r = {"symbol": "BTCUSDT", "side": "BUY", "algo": "ladder", "requested": "0.500", "filled": "0.500",
         "complete": True, "avg_price": "27815.40", "arrival_mid": "27812.35", "shortfall_bps": 1.982,
         "fees": "5.56308000", "maker_share": 0.625, "cap": "27840.1", "best_in_window": "27811.0",
         "worst_in_window": "27820.5", "time_to_fill_s": 4.21, "markouts_bps": {"+1s": -0.338, "+5s": 1.2},
         "orders": ["i0001-1", "i0001-2", "i0001-3"], "fee_note": "", "intent_id": "i0001", "state": "done",
         "text": "long btc 0.5 30s", "notes": []}
    r.update(over)
    return r


def clean(text: str) -> None:
    """What a trader must never read."""
    assert "None" not in text and "Decimal(" not in text and "{" not in text and "}" not in text, text
    assert "lots" not in text and "ticks" not in text, text
    assert not EIGHT_DECIMALS.search(text), text


def test_the_full_report_in_the_traders_units():
    text = words.report_text(report(), "i0001")
    clean(text)
    for part in ("i0001 DONE BUY BTCUSDT with ladder", "filled 0.500 BTC of 0.500 BTC at 27815.40 avg",
                 "shortfall +1.98 bps vs the arrival mid 27812.35 (fees in; + = cost to you)",
                 "fees 5.56 USDT", "maker share 62%", "4.2 s", "window best 27811.0, worst 27820.5, cap 27840.1",
                 "orders: 3 (i0001-1, i0001-2, i0001-3)", "+1s -0.34 bps", "+5s +1.20 bps", "+30s pending",
                 "(+ = in your favour)"):
        assert part in text, (part, text)


def test_a_report_with_nothing_filled_says_so_without_none():
    text = words.report_text(report(filled="0.000", avg_price=None, shortfall_bps=None, maker_share=None,
                                    fees="0.00000000", markouts_bps={"+1s": None}, state="failed",
                                    why="the venue refused the order", orders=[]), "i0002")
    clean(text)
    assert "filled 0.000 BTC of 0.500 BTC (nothing filled)" in text
    assert "FAILED" in text and "why it ended: the venue refused the order" in text
    assert "markouts: n/a (nothing filled)" in text and "orders: none sent" in text and "shortfall" not in text


def test_reports_closed_from_venue_truth_and_missing_ones():
    text = words.report_text({"intent_id": "i3", "state": "done", "filled": "0.2", "note": "filled at the venue"})
    assert text == "i3 DONE: 0.2 executed (filled at the venue)"
    assert words.report_text(None, "i4") == "i4: no report (yet)"


@pytest.mark.parametrize("value, want", [
    (Decimal("27815.4"), "27,815.40 USDT"), ("5.56308000", "5.56 USDT"), (Decimal("0.0123456"), "0.01235 USDT"),
    (0.5, "0.50 USDT"), (Decimal("-0.00001"), "-0.00001 USDT"), (0, "0.00 USDT"), (None, "n/a"),
    ("-0.004", "-0.004 USDT"), ("1234567.891", "1,234,567.89 USDT"),
])
def test_usdt_amounts(value, want):
    assert words.usdt(value) == want


def test_sizes_prices_bps_and_pnl():
    assert words.qty(Decimal("0.5"), "BTCUSDT", BTC.step_size) == "0.500 BTC"
    assert words.qty("0.010", "ETHUSDT") == "0.010 ETH"
    assert words.price(Decimal("71250"), BTC.tick_size) == "71250.0"        # no separator: it can be typed back
    assert words.avg_price(Decimal("28145.05"), BTC.tick_size) == "28145.05"
    assert words.bps(3.2) == "+3.20 bps" and words.bps(-0.754) == "-0.75 bps" and words.bps(None) == "n/a"
    assert words.usdt(Decimal("12.5"), signed=True) == "+12.50 USDT"
    assert words.usdt(Decimal("-0.001"), signed=True) == "-0.001 USDT"
    assert words.levels_text({"tp": Decimal("71250"), "sl": Decimal("68900")}, BTC.tick_size) == \
        "TP 71250.0, SL 68900.0"
    assert words.levels_text({"tp": None}) == "no TP/SL" and words.levels_text(None) == "no TP/SL"
    assert words.clock(0) == "00:00:00 UTC" and words.base_asset("ETHUSDC") == "ETH"


def test_a_position_at_the_mark_with_realised_fees_and_net():
    pos = SimpleNamespace(qty=Decimal("-0.250"), entry=Decimal("28100.05"), realized=Decimal("12.5"),
                          fees=Decimal("0.7025"))
    text = words.position_of(BTC, pos, Decimal("28000.0"), "mark", {"sl": Decimal("28500")})
    clean(text)
    assert text.startswith("BTCUSDT: short 0.250 BTC @ 28100.05 entry, mark 28000.0")
    assert "unrealised +25.01 USDT at the mark" in text                       # short and the price fell
    assert "realised +11.80 USDT net of fees 0.7025 USDT" in text and "SL 28500.0" in text   # realised is net
    flat = words.position_of(BTC, SimpleNamespace(qty=Decimal(0), entry=Decimal(0), realized=Decimal("-3"),
                                                  fees=Decimal("1")), None, "mid")
    assert flat == "BTCUSDT: flat; realised -4.00 USDT net of fees 1.00 USDT; no TP/SL"
    no_mark = words.position_text("BTCUSDT", "0.1", "28000", 0, 0, None, "mid", BTC.tick_size, BTC.step_size)
    assert "no mid yet" in no_mark and "unrealised" not in no_mark


def test_a_working_intent_says_where_its_orders_rest():
    text = words.working_text("i0005", "working", "long btc 0.5 30s ladder", Decimal("0.1"), Decimal("0.5"),
                              "BTCUSDT", "ladder", [(Decimal("28000.0"), Decimal("0.2")), (Decimal("27999.9"),
                                                                                          Decimal("0.2"))],
                              BTC.step_size, BTC.tick_size)
    clean(text)
    assert text == ('i0005 [working] "long btc 0.5 30s ladder": 0.100 BTC of 0.500 BTC filled, ladder; '
                    'resting 0.200 BTC at 28000.0, 0.200 BTC at 27999.9')
    assert "nothing resting" in words.working_text("i6", "completing", "x", 0, 1, "BTCUSDT", "sniper")
