"""The intent grammar on real traders' phrasings, and clear errors for everything it cannot read."""

from __future__ import annotations

import contextlib
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from engine.intents import Intent, IntentError, IntentKind, parse
from engine.model import Side


@pytest.mark.parametrize("text, want", [
    ("long btc 0.5 30s max 8bps", dict(side=Side.BUY, symbol="BTCUSDT", qty=Decimal("0.5"), window_s=30,
                                      max_slippage_bps=8)),
    ("long BTCUSDT 0.5 within 30s, max 8 bps", dict(side=Side.BUY, symbol="BTCUSDT", qty=Decimal("0.5"),
                                                    window_s=30, max_slippage_bps=8)),
    ("short eth 5k 1m sniper", dict(side=Side.SELL, symbol="ETHUSDT", notional=Decimal(5000), window_s=60,
                                    algo="sniper")),
    ("Buy SOL $2500 20s ladder cancel limit 142.5 -- reclaiming VWAP",
     dict(side=Side.BUY, symbol="SOLUSDT", notional=Decimal(2500), window_s=20, algo="ladder",
          on_deadline="cancel", limit_price=Decimal("142.5"), rationale="reclaiming VWAP")),
    ("sell btc 0.25 in 45sec slip 5 fill or cancel # spoof pulled at 64k",
     dict(side=Side.SELL, qty=Decimal("0.25"), window_s=45, max_slippage_bps=5, on_deadline="cancel",
          rationale="spoof pulled at 64k")),
    ('long eth 2 @3400 "absorption on the bid"', dict(qty=Decimal(2), limit_price=Decimal(3400),
                                                       rationale="absorption on the bid")),
    ("long btc 1500usdt because tape is one-sided", dict(notional=Decimal(1500), rationale="tape is one-sided")),
    ("long btc-usdt 0.01", dict(symbol="BTCUSDT", qty=Decimal("0.01"), window_s=30, algo="auto",
                                on_deadline="complete")),
])
def test_entries(text, want):
    it = parse(text)
    assert it.kind is IntentKind.ENTER
    for k, v in want.items():
        assert getattr(it, k) == v, k
    assert it.raw == text


def test_exits_levels_cancel_status():
    assert parse("flat btc") == Intent(IntentKind.EXIT, "BTCUSDT", window_s=10.0)
    part = parse("close eth 0.2 20s max 15bps")
    assert (part.kind, part.qty, part.window_s, part.max_slippage_bps) == (IntentKind.EXIT, Decimal("0.2"), 20, 15)
    assert parse("tp btc 71250") == Intent(IntentKind.TP, "BTCUSDT", price=Decimal(71250))
    assert parse("sl btc 68900.5").price == Decimal("68900.5")
    assert parse("tp btc off").price is None
    assert parse("cancel btc") == Intent(IntentKind.CANCEL, "BTCUSDT")
    assert parse("cancel all") == Intent(IntentKind.CANCEL, None)
    assert parse("status") == Intent(IntentKind.STATUS, None)


def test_defaults_can_be_configured():
    it = parse("long btc 0.1", {"window_s": 15, "max_slippage_bps": 4, "algo": "sniper"})
    assert (it.window_s, it.max_slippage_bps, it.algo) == (15, 4, "sniper")


@pytest.mark.parametrize("text, needle", [
    ("", "empty intent"),
    ("lng btc 0.5", "unknown action 'lng'"),
    ("long", "which symbol"),
    ("long btc", "how much BTCUSDT"),
    ("long btc 0.5 90s", "window 90s is outside 5-60 s"),
    ("long btc 0.5 2s", "outside 5-60"),
    ("short eth 2.5m", "USDT millions"),
    ("long btc 0.5 max 900bps", "outside 0-500"),
    ("long btc 0.5 max bps", "needs a number"),
    ("long btc 0.5 0.6", "can't tell the size"),
    ("long btc -1", "must be positive, got '-1'"),
    ("long btc 0", "must be positive"),
    ("long btc abc", "can't read 'abc'"),
    ("tp btc", "at what price"),
    ("sl btc 1 2", "one price"),
    ("long b@d 1", "not a symbol"),
])
def test_errors_are_clear(text, needle):
    with pytest.raises(IntentError) as exc:
        parse(text)
    assert needle in str(exc.value)


def test_describe_echoes_what_was_understood():
    assert parse("long btc 0.5 30s max 8bps").describe() == \
        "LONG 0.5 BTCUSDT within 30s, max 8 bps, auto, complete at deadline"
    assert parse("flat eth").describe() == "EXIT all ETHUSDT within 10s, max 10 bps"


@given(st.text(max_size=60))
def test_any_text_parses_or_fails_cleanly(text):
    with contextlib.suppress(IntentError):
        parse(text)
