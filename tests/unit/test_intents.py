"""The intent grammar on real traders' phrasings, and clear errors for everything it cannot read."""

from __future__ import annotations

import contextlib
import re
from decimal import Decimal

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engine.intents import MAX_INTENT_CHARS, Intent, IntentError, IntentKind, _split_rationale, parse
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
        "LONG 0.5 BTC of BTCUSDT within 30s, max 8 bps, auto, complete at deadline"
    assert parse("flat eth").describe() == "EXIT all of ETHUSDT within 10s, max 10 bps"
    assert parse("close btc 0.2").describe() == "EXIT 0.2 BTC of BTCUSDT within 10s, max 10 bps"


@given(st.text(max_size=60))
def test_any_text_parses_or_fails_cleanly(text):
    with contextlib.suppress(IntentError):
        parse(text)


# ---- hostile input: every refusal names the value and the accepted range; reading is linear -------------------

RANGE = "from 0.00000001 to 1000000000 with at most 8 decimals"


@pytest.mark.parametrize("text, needles", [
    ("long btc 1e30 10s", ["'1e30'", RANGE]),
    ("long btc 0.1 limit 1e999999", ["'1e999999'", "a limit price", RANGE]),
    ("tp btc 9e30", ["'9e30'", "a price", RANGE]),
    ("sl btc 1E-5", ["'1e-5'", RANGE]),
    ("long btc NaN", ["'nan'", RANGE]),
    ("long btc Infinity", ["'infinity'", RANGE]),
    ("long btc inf", ["'inf'", RANGE]),
    ("long btc -0.5", ["must be positive, got '-0.5'", RANGE]),
    ("long btc 0.1 @-5", ["must be positive, got '-5'", RANGE]),
    ("long btc 1000000001", ["'1000000001' is too large", RANGE]),
    ("long btc 0.000000001", ["9 decimals", RANGE]),
    ("long btc 1_000", ["'1_000'", RANGE]),
    ("long btc +1", ["'+1'", RANGE]),
    ("long btc \u0661\u0662", ["'\u0661\u0662'", RANGE]),              # Arabic-Indic digits are not ours
    ("long btc $2000000k", ["'2000000' is too large", "to 1000000 with"]),
    ("long btc " + "9" * 33, ["(33 characters) is too long", RANGE]),
    ("long btc 0.1 max 1e2", ["'1e2'", "0-500"]),
    ("long btc 0.1 max nan", ["'nan'", "0-500"]),
    ("long btc 0.1 max " + "9" * 25 + "bps", ["is outside 0-500"]),
    ("long btc 0.1 " + "9" * 25 + "s", ["is outside 5-60 s"]),
    ("long " + "b" * 21 + " 1", ["not a symbol", "at most 20"]),
])
def test_hostile_numbers_are_clear_errors(text, needles):
    with pytest.raises(IntentError) as exc:
        parse(text)
    for needle in needles:
        assert needle in str(exc.value), (needle, str(exc.value))


def test_the_largest_accepted_values_parse():
    it = parse("long btc 1000000000 60s max 500bps limit 999999999.99999999")
    assert (it.qty, it.limit_price, it.window_s, it.max_slippage_bps) == (
        Decimal(1_000_000_000), Decimal("999999999.99999999"), 60, 500)
    assert parse("long btc $1000000k").notional == Decimal(1_000_000_000)
    assert parse("tp btc 0.00000001").price == Decimal("0.00000001")


def test_an_intent_over_telegrams_limit_is_refused_before_it_is_read():
    at_limit = "long btc 0.5 -- " + "x" * (MAX_INTENT_CHARS - 16)
    assert len(at_limit) == MAX_INTENT_CHARS and parse(at_limit).qty == Decimal("0.5")
    for text in (at_limit + "x", " \u201c" * 20000, "long btc " + "9" * 1_000_001):
        with pytest.raises(IntentError, match=f"intent too long: {len(text)} characters, at most 4096"):
            parse(text)


def test_too_many_words_are_refused():
    with pytest.raises(IntentError, match="more than 40 words"):
        parse("long btc 0.5 " + "a " * 2000)


def test_text_must_be_a_string():
    with pytest.raises(IntentError, match="an intent is text, not bytes"):
        parse(b"long btc 1")  # type: ignore[arg-type]


# A rationale as a backtracking regex: the reference for what a rationale is (a '#' before a letter is a tag).
_OLD_RATIONALE = re.compile(r"""\s(?:--|(?-i:\#(?![A-Za-z]))|because\b|why:|why\b)\s*(.*)$|\s["“](.*)["”]\s*$""",
                            re.IGNORECASE | re.DOTALL)


def _old_split(text: str) -> tuple[str, str]:
    m = _OLD_RATIONALE.search(text)
    if not m:
        return text, ""
    return text[: m.start()], (m.group(1) or m.group(2) or "").strip()


_PIECES = st.sampled_from([" ", "  ", "\t", "\n", "\xa0", "\u2028", "\x1c", "-", "--", "#", "because", "BeCaUsE",
                           "becausex", "why:", "WHY:", "why", "whyx", "#a", "#K", '"', "“", "”", "x", "long btc 0.5",
                           ",", ":", "1"])


@given(st.lists(_PIECES, max_size=24).map("".join))
def test_rationale_split_agrees_with_the_old_regex(text):
    assert _split_rationale(text) == _old_split(text)


_HOSTILE = st.sampled_from([" \u201c", ' "', "\u201d", " --", " #", " because", " why:", " 1e30", " -1", " nan",
                            " 9" * 40, " long", " btc", " limit", " max", " 8bps", " 30s", " $5k", " @", ",", "\x00",
                            "\u0661", "²", " tp", " sl", " off", " cancel", " all"])


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(st.one_of(st.text(max_size=MAX_INTENT_CHARS + 8),
                 st.lists(_HOSTILE, max_size=1200).map("".join),
                 st.tuples(_HOSTILE, st.integers(1, 2100)).map(lambda t: t[0] * t[1])))
def test_hostile_text_only_ever_raises_the_grammars_error(text):
    """Arbitrary and adversarial text (bounded by the hypothesis deadline in time): an Intent or an IntentError."""
    try:
        it = parse(text)
    except IntentError as exc:
        assert str(exc) and len(str(exc)) < 400
        return
    for value in (it.qty, it.notional, it.limit_price, it.price):
        assert value is None or Decimal("0.00000001") <= value <= Decimal(1_000_000_000)


# ---- reasons, tags, exits and errors that point at the right word ---------------------------------------------

@pytest.mark.parametrize("text, rationale, tags", [
    ("long btc 0.5 30s why absorption at 70k", "absorption at 70k", ()),
    ("long btc 0.5 30s WHY: absorption at 70k", "absorption at 70k", ()),
    ("long btc 0.5 30s #absorption", "", ("absorption",)),
    ("long btc 0.5 30s #Absorption #spoof -- bid pulled at 70k #vacuum", "bid pulled at 70k",
     ("absorption", "spoof", "vacuum")),
    ("long btc 0.5 30s why absorption #absorption at 70k", "absorption at 70k", ("absorption",)),
    ("long btc 0.5 30s # spoof pulled at 64k", "spoof pulled at 64k", ()),        # '# ' still starts a reason
    ("long btc 0.5 30s #spoof #spoof", "", ("spoof",)),
    ("long btc 0.5 30s -- retest of #2", "retest of #2", ()),                     # a tag starts with a letter
])
def test_reasons_and_tags(text, rationale, tags):
    it = parse(text)
    assert (it.qty, it.window_s, it.rationale, it.tags) == (Decimal("0.5"), 30, rationale, tags)


def test_tags_are_bounded():
    with pytest.raises(IntentError, match="too many tags: 9, at most 8"):
        parse("long btc 0.5 " + " ".join(f"#t{i}" for i in range(9)))
    with pytest.raises(IntentError, match="is too long: at most 32"):
        parse("long btc 0.5 #" + "a" * 33)


def test_exit_is_an_exit_intent():
    assert parse("exit btc") == Intent(IntentKind.EXIT, "BTCUSDT", window_s=10.0)
    assert parse("exit eth 0.2 why done").rationale == "done"


@pytest.mark.parametrize("text, needles", [
    ("long btc 0.5 30s twap", ["unknown word 'twap'", "auto, sniper, ladder", "e.g. 'long btc"]),
    ("long btc 0.5 30s sniper ladder", ["conflicting words 'sniper' and 'ladder'", "the algorithm", "e.g."]),
    ("long btc 0.5 30s 20s", ["conflicting words '30s' and '20s'", "the window"]),
    ("long btc 0.5 max 8bps max 10bps", ["'max 8bps' and 'max 10bps'", "the slippage cap"]),
    ("long btc 0.5 complete cancel", ["'complete' and 'cancel'", "the deadline rule"]),
    ("long btc 0.5 limit 100 @90", ["'limit 100' and '@90'", "the limit price"]),
    ("long btc 0.5 30s big bid", ["unknown word 'big'", "after 'why' or '--'"]),
    ("flat btc soon", ["unknown word 'soon'"]),
    ("long btc 0.5 0.6", ["can't tell the size from '0.5 0.6'", "0.5 BTC or 5k USDT"]),
    ("status btc eth", ["status takes one symbol"]),
    ("exit", ["flat which symbol", "exit btc"]),
])
def test_errors_point_at_the_word(text, needles):
    with pytest.raises(IntentError) as exc:
        parse(text)
    for needle in needles:
        assert needle in str(exc.value), (needle, str(exc.value))
    assert len(str(exc.value)) < 400


def test_the_same_option_twice_with_the_same_value_is_fine():
    it = parse("sell btc 0.25 30s within 30s fill or cancel")
    assert (it.window_s, it.on_deadline) == (30, "cancel")
