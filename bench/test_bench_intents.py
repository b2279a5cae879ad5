"""The intent grammar on Telegram-sized input: a 4,096-character intent (Telegram's message limit) is read in well
under a millisecond, whatever it holds, and the time grows linearly with the length (``' \u201c' * 20000`` took
seconds when the rationale regex backtracked).

Each case is the worst of its kind at the limit: the quote run that made the old regex quadratic, a word run that
makes the split work, one 4,000-digit number, a long quoted rationale, and a plain intent for scale.
Run: ``python -m pytest bench/test_bench_intents.py --benchmark-only``.
"""

from __future__ import annotations

import pytest

from engine.intents import MAX_INTENT_CHARS, IntentError, parse

BUDGET_S = 0.5e-3            # "well under a millisecond": half of one, for the median of every case

CASES = {
    "quote_run": (" \u201c" * MAX_INTENT_CHARS)[:MAX_INTENT_CHARS],
    "ascii_quote_run": (' "' * MAX_INTENT_CHARS)[:MAX_INTENT_CHARS],
    "dash_run": (" -" * MAX_INTENT_CHARS)[:MAX_INTENT_CHARS],
    "word_run": ("long btc 0.5 " + "a " * MAX_INTENT_CHARS)[:MAX_INTENT_CHARS],
    "long_number": ("long btc " + "9" * MAX_INTENT_CHARS)[:MAX_INTENT_CHARS],
    "long_rationale": "long btc 0.5 30s max 8bps \u201c" + "x" * (MAX_INTENT_CHARS - 28) + "\u201d",
    "marker_rationale": ("long btc 0.5 30s max 8bps -- " + "because why: # " * MAX_INTENT_CHARS)[:MAX_INTENT_CHARS],
    "plain": "long BTCUSDT 0.5 within 30s, max 8 bps -- reclaiming VWAP",
}


def _read(text: str) -> object:
    """Parse ``text``; the grammar's refusal is a result here, anything else fails the benchmark."""
    try:
        return parse(text)
    except IntentError as exc:
        return exc


@pytest.mark.parametrize("case", list(CASES))
def test_parse_at_telegram_limit(benchmark, case: str) -> None:
    text = CASES[case]
    assert len(text) <= MAX_INTENT_CHARS
    benchmark(_read, text)
    stats = getattr(benchmark, "stats", None)
    if stats is not None:                   # None under --benchmark-disable: nothing was timed
        assert stats.stats.median < BUDGET_S, f"{case}: median {stats.stats.median * 1e6:.0f} us"
