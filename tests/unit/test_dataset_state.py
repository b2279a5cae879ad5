"""The feed's memory for the decision dataset against simple references: the recent-trades ring (wrapping past
its 16,384 trades), the mid history (sampled at most every 100 ms of exchange time) on the real tape, and the
tape's summary recomputed by hand."""

from __future__ import annotations

import math
from decimal import Decimal

import numpy as np
import orjson
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.dataset.state import capture, journal_bytes, state_record, summary_of, tape
from engine.feed.recording import read_messages, sample_paths
from engine.model import KNOWN_INSTRUMENTS
from ext.feed import Feed

BTC = KNOWN_INSTRUMENTS["BTCUSDT"]
RING = 16384


def trade_msg(i: int, t_ms: int, px_ticks: int, lots: int, sell: bool) -> bytes:
    return orjson.dumps({"stream": "btcusdt@trade", "data": {
        "e": "trade", "E": t_ms, "T": t_ms, "s": "BTCUSDT", "t": i, "p": f"{px_ticks / 10:.1f}",
        "q": f"{lots / 1000:.3f}", "X": "MARKET", "m": sell}})


@settings(max_examples=25, deadline=None)
@given(n=st.integers(0, RING + 3000), since_back=st.integers(0, RING + 4000), keep=st.integers(0, RING + 100),
       seed=st.integers(0, 2**32 - 1))
def test_recent_trades_equal_the_last_trades_of_the_tape_even_past_the_ring(n, since_back, keep, seed):
    """The kernel's ring against a list of every trade: the newest ``keep`` of the window, and the summary of
    all of the window equal, bit for bit, to ``summary_of`` (the pure-Python reference)."""
    rng = np.random.default_rng(seed)
    times = np.cumsum(rng.integers(0, 3, n)) + 1_000
    feed = Feed([BTC])
    ref = []
    sell = False
    for i in range(n):
        px, lots = int(rng.integers(600_000, 600_100)), int(rng.integers(1, 50))
        sell = sell if rng.random() < 0.7 else not sell         # runs of one side, as on a real tape
        feed.on_message(trade_msg(i + 1, int(times[i]), px, lots, sell))
        ref.append((int(times[i]) * 1_000_000, px, lots, i + 1, sell))
    since_ms = int(times[max(0, n - 1 - since_back)]) if n else 0
    got = feed.symbols[0].recent_trades(since_ms * 1_000_000, keep)
    held = ref[-RING:]
    window = [r for r in held if r[0] >= since_ms * 1_000_000]
    assert list(zip(got["t_ns"].tolist(), got["price"].tolist(), got["qty"].tolist(), got["trade_id"].tolist(),
                    got["sell"].tolist(), strict=True)) == (window[-keep:] if keep else [])
    assert got["covered_ns"] == (held[0][0] if held else -1)
    cols = list(zip(*window, strict=True)) if window else [[]] * 5
    assert got["summary"] == summary_of(*cols)


def test_the_mid_history_matches_a_reference_sampling_of_the_real_tape():
    msgs = read_messages([sample_paths()[0]])
    feed, probe = Feed([BTC]), Feed([BTC])
    samples: list[tuple[int, float]] = []
    next_ns, last_diffs = 0, 0
    for m in msgs:
        feed.on_message(m)
        probe.on_message(m)
        sf = probe.symbols[0]
        if sf.n_diffs != last_diffs and sf.synced:           # a diff was applied: the reference's sampling rule
            last_diffs = sf.n_diffs
            ts, book = sf.last_book_ns, sf.book
            if ts >= next_ns and book.best(0) is not None and book.best(1) is not None:
                samples.append((ts, (book.best(0)[0] + book.best(1)[0]) / 2))
                next_ns = ts + 100_000_000
        last_diffs = sf.n_diffs
    assert len(samples) > 500
    sf = feed.symbols[0]
    held = samples[-4096:]
    for t, mid in held[:: max(1, len(held) // 300)]:
        assert sf.mid_at(t) == (t, mid)
        assert sf.mid_at(t + 50_000_000)[0] == t or sf.mid_at(t + 50_000_000)[0] - t < 100_000_000
    t, mid = sf.mid_at(held[0][0] - 1)                       # before the history: said, never a guess
    assert t == -1 and math.isnan(mid)


def summary_by_hand(trades: list[tuple[int, int, int, int, bool]]) -> dict:
    buy = sum(q for _, _, q, _, s in trades if not s)
    runs, longest, prev, cur = 0, 0, None, 0
    for *_, s in trades:
        if s != prev:
            runs, cur, prev = runs + 1, 0, s
        cur += 1
        longest = max(longest, cur)
    return {"count": len(trades), "buy_qty": Decimal(buy) / 1000, "runs": runs, "longest_run": longest,
            "last_run": cur}


@settings(max_examples=40, deadline=None)
@given(st.lists(st.tuples(st.integers(1, 5000), st.booleans()), max_size=300))
def test_the_tape_summary_is_the_trades_own(rows):
    trades = [(1_000_000_000 * (k + 1), 600_000 + k % 7, lots, k + 1, sell) for k, (lots, sell) in enumerate(rows)]
    arrays = {"t_ns": np.array([t[0] for t in trades], np.int64), "price": np.array([t[1] for t in trades], np.int64),
              "qty": np.array([t[2] for t in trades], np.int64), "trade_id": np.array([t[3] for t in trades], np.int64),
              "sell": np.array([t[4] for t in trades], bool), "covered_ns": trades[0][0] if trades else -1}
    out = tape(BTC, arrays, 1_000_000_000 * (len(trades) + 1))
    s, want = out["tape"], summary_by_hand(trades)
    assert {k: Decimal(s[k]) if k == "buy_qty" else s[k] for k in want} == want
    if trades:
        value = sum(Decimal(p) / 10 * Decimal(q) / 1000 for _, p, q, _, sell in trades if sell)
        assert Decimal(s["sell_notional"]) == value
        assert Decimal(s["largest"]["qty"]) == Decimal(max(q for _, _, q, _, _ in trades)) / 1000
        assert s["covered_s"] == min(30.0, float(len(trades)))
    else:
        assert s["largest"] is None and s["vwap"] is None and s["covered_s"] is None
    assert len(out["trades"]) == len(trades)


def test_a_capture_survives_the_journal_and_comes_back_as_the_documented_state():
    feeds = []
    for path, inst in zip(sample_paths(), (BTC, KNOWN_INSTRUMENTS["ETHUSDT"]), strict=True):
        feed = Feed([inst])                                  # each symbol's file to three quarters
        msgs = read_messages([path])
        for m in msgs[: len(msgs) * 3 // 4]:
            feed.on_message(m)
        feeds.append(feed.symbols[0])
    btc, eth = feeds
    now = eth.last_event_ns
    raw = orjson.loads(orjson.dumps({"d": journal_bytes(capture(eth, now, eth.timing.snapshot(now), btc))}))["d"]
    st_ = state_record(raw)
    assert st_["context"]["symbol"] == "BTCUSDT" and st_["context"]["synced"]
    assert Decimal(st_["context"]["mid"]) == Decimal(repr(btc.book.mid)) * BTC.tick_size
    assert Decimal(st_["mid"]) == Decimal(repr(eth.book.mid)) * Decimal("0.01")
    assert len(st_["book"]["bids"]) == 20 and st_["tape"]["count"] == len(st_["trades"]) > 0
