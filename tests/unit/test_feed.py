"""Depth sync and the bookTicker oracle on real recordings, including gaps, resyncs and corrupt input."""

from __future__ import annotations

import orjson
import pytest

from engine.feed.recording import read_messages
from engine.feed.reference import ASK, BID, RefBook, parse_message, reference_verify
from engine.model import KNOWN_INSTRUMENTS, Instrument
from ext.feed import Feed
from ext.parse import ERR_GRID as E_GRID
from ext.parse import ERR_SYMBOL as E_SYMBOL
from tests.conftest import SETS, SHARED, shared_set

BTC = KNOWN_INSTRUMENTS["BTCUSDT"]


def run(messages: list[bytes], instruments=(BTC,)) -> Feed:
    feed = Feed(list(instruments))
    for m in messages:
        feed.on_message(m)
    feed.finish()
    return feed


def kinds(messages: list[bytes]) -> list[str]:
    return [parse_message(m)["kind"] for m in messages]


def snapshot_of(book: RefBook, inst: Instrument, last_id: int) -> bytes:
    """A REST depth snapshot (Binance's shape) of a reference book."""
    return orjson.dumps({
        "lastUpdateId": last_id, "E": 0, "T": 0,
        "bids": [[inst.fmt_price(p), inst.fmt_qty(q)] for p, q in book.levels(BID)],
        "asks": [[inst.fmt_price(p), inst.fmt_qty(q)] for p, q in book.levels(ASK)],
    })


def reference_book_until(messages: list[bytes], inst: Instrument, stop: int) -> tuple[RefBook, int]:
    """RefBook rebuilt from the recording's snapshot and diffs up to message index ``stop`` (exclusive)."""
    book, last, started = RefBook(), None, False
    parsed = [parse_message(m) for m in messages[:stop]]
    snap = next(d for d in parsed if d["kind"] == "snapshot")
    for side, key in ((BID, "bids"), (ASK, "asks")):
        for p, q in snap[key]:
            book.set(side, inst.price_to_ticks(p), inst.qty_to_lots(q))
    last = snap["u"]
    for d in parsed:
        if d["kind"] != "depthUpdate" or d["u"] < snap["u"]:
            continue
        assert started or d["U"] <= snap["u"]
        assert not started or d["pu"] == last
        started = True
        for side, key in ((BID, "bids"), (ASK, "asks")):
            for p, q in d[key]:
                book.set(side, inst.price_to_ticks(p), inst.qty_to_lots(q))
        last = d["u"]
    return book, last


def test_bundled_sample_book_matches_every_checkable_ticker(sample):
    msgs = read_messages([sample])
    sf = run(msgs)["BTCUSDT"]
    ref = reference_verify(msgs, BTC)
    print(f"bundled sample: checked {sf.ticker_checks} bookTickers, {sf.ticker_mismatches} mismatches")
    assert sf.ticker_mismatches == 0 and ref["mismatches"] == 0
    assert sf.ticker_checks == ref["checks"] > 400
    assert sf.ticker_checks + sf.ticker_unchecked == sf.n_tickers
    assert sf.n_gaps == 0 and sf.synced and sf.n_bad == 0 and sf.n_crossed == 0


@pytest.mark.parametrize("name", list(SETS))
def test_shared_recordings_book_matches_every_checkable_ticker(name):
    msgs = read_messages(shared_set(name))
    inst = KNOWN_INSTRUMENTS[name.split("_")[0].upper()]
    sf = run(msgs, [inst])[inst.symbol]
    ref = reference_verify(msgs, inst)
    print(f"{name}: checked {sf.ticker_checks} bookTickers, {sf.ticker_mismatches} mismatches, {sf.n_gaps} gaps")
    assert (sf.ticker_checks, sf.ticker_mismatches, sf.n_gaps) == (ref["checks"], 0, 0)
    assert sf.n_diffs == ref["diffs"]


def test_dropped_diff_is_a_gap_then_a_fresh_snapshot_resyncs(sample):
    msgs = read_messages([sample])
    ks = kinds(msgs)
    depth_idx = [i for i, k in enumerate(ks) if k == "depthUpdate"]
    drop = depth_idx[len(depth_idx) // 3]
    feed = Feed([BTC])
    sf = feed["BTCUSDT"]
    for m in msgs[:drop]:
        feed.on_message(m)
    assert sf.synced
    for m in msgs[drop + 1: drop + 400]:          # the diff at `drop` is lost
        feed.on_message(m)
    assert sf.n_gaps == 1 and not sf.synced and sf.needs_snapshot and sf.state_name == "wait_snapshot"
    assert sf.n_pending > 0                         # diffs after the gap are buffered, not applied
    # A new REST snapshot taken at diff `resume` (as a live resync would fetch) restores the book.
    resume = depth_idx[depth_idx.index(drop) + 5]
    book, last = reference_book_until(msgs, BTC, resume + 1)
    assert feed.on_snapshot("BTCUSDT", snapshot_of(book, BTC, last)) == 5
    assert sf.synced and not sf.needs_snapshot
    checks_before = sf.ticker_checks
    for m in msgs[drop + 400:]:
        feed.on_message(m)
    assert sf.ticker_mismatches == 0 and sf.n_gaps == 1 and sf.n_resyncs == 1
    assert sf.ticker_checks > checks_before + 100
    assert sf.book.top(BID, 20) == reference_book_until(msgs, BTC, len(msgs))[0].top(BID, 20)


def test_snapshot_older_than_buffered_diffs_asks_for_another(sample):
    msgs = read_messages([sample])
    ks = kinds(msgs)
    snap_at = ks.index("snapshot")
    depth_after = [i for i, k in enumerate(ks) if k == "depthUpdate" and i > snap_at]
    feed = Feed([BTC])
    sf = feed["BTCUSDT"]
    # diffs from well after the snapshot arrive first; then the (too old) recorded snapshot
    for i in depth_after[50:60]:
        feed.on_message(msgs[i])
    feed.on_message(msgs[snap_at])
    assert sf.n_snapshot_too_old == 1 and sf.needs_snapshot and not sf.synced


def test_duplicated_diffs_and_trades_are_ignored(sample):
    msgs = read_messages([sample])
    doubled = [m for m in msgs for _ in (0, 1)]
    sf = run(doubled)["BTCUSDT"]
    ref = run(msgs)["BTCUSDT"]
    assert sf.n_gaps == 0 and sf.ticker_mismatches == 0
    assert sf.n_diffs == ref.n_diffs and sf.n_trades == ref.n_trades
    assert sf.n_duplicates >= ref.n_diffs + ref.n_trades
    assert sf.book.top(BID, 50) == ref.book.top(BID, 50) and sf.book.top(ASK, 50) == ref.book.top(ASK, 50)


def test_corrupt_message_is_counted_and_the_chain_break_resyncs(sample):
    msgs = read_messages([sample])
    ks = kinds(msgs)
    i = [j for j, k in enumerate(ks) if k == "depthUpdate"][200]
    bad = [*msgs[:i], msgs[i][: len(msgs[i]) // 2], *msgs[i + 1:]]
    feed = run(bad)
    sf = feed["BTCUSDT"]
    assert feed.n_errors == 1 and "syntax" in feed.last_error
    assert sf.n_gaps == 1 and not sf.synced and sf.ticker_mismatches == 0


def test_off_grid_price_in_a_diff_is_refused_and_resyncs(sample):
    msgs = read_messages([sample])
    ks = kinds(msgs)
    i = [j for j, k in enumerate(ks) if k == "depthUpdate"][200]
    d = orjson.loads(msgs[i])
    d["data"]["b"].append(["28000.05", "1.000"])  # BTCUSDT ticks are 0.10
    feed = Feed([BTC])
    sf = feed["BTCUSDT"]
    for m in msgs[:i]:
        feed.on_message(m)
    top_before = sf.book.top(BID, 10)
    assert feed.on_message(orjson.dumps(d)) == E_GRID
    assert sf.n_bad == 1 and not sf.synced and sf.needs_snapshot
    assert sf.book.top(BID, 10) == top_before      # nothing of the refused diff was applied


def test_unknown_symbol_is_refused():
    feed = Feed([BTC])
    raw = b'{"e":"trade","E":1,"T":1,"s":"DOGEUSDT","t":1,"p":"0.1","q":"1","m":true}'
    assert feed.on_message(raw) == E_SYMBOL
    assert feed.n_unknown_symbol == 1


def test_spot_style_diffs_chain_on_U_equals_previous_u_plus_one():
    inst = Instrument.make("BTCUSDT", "0.01", "0.00001")
    feed = Feed([inst])
    sf = feed["BTCUSDT"]
    feed.on_snapshot("BTCUSDT", b'{"lastUpdateId":100,"bids":[["10.00","1"]],"asks":[["10.01","2"]]}')

    def diff(U, u, bid):
        return (b'{"e":"depthUpdate","E":1,"s":"BTCUSDT","U":%d,"u":%d,"b":[["%s","3"]],"a":[]}' % (U, u, bid))

    feed.on_message(diff(95, 101, b"10.00"))   # brackets lastUpdateId + 1
    feed.on_message(diff(102, 104, b"9.99"))
    assert sf.synced and sf.n_gaps == 0 and sf.book.top(BID, 2) == [(1000, 300000), (999, 300000)]
    feed.on_message(diff(106, 107, b"9.98"))    # 105 is missing
    assert sf.n_gaps == 1 and not sf.synced


def test_multi_symbol_recording_routes_every_symbol():
    ws = SHARED / "binance-usdm-multi" / "BINANCE_FUTURES.ws.1.0"
    if not ws.exists():
        pytest.skip("multi-symbol recording absent")
    from engine.feed.verify import verify

    result = verify([ws, ws.with_name("BINANCE_FUTURES.http.0.0")])
    assert {s.symbol for s in result.symbols} == {"SUSHIUSDT", "AKROUSDT", "KEEPUSDT", "CTKUSDT"}
    assert result.ok and all(s.checks > 0 and s.diffs > 100 for s in result.symbols)


def test_interleaved_btc_and_eth_books_stay_independent():
    btc = read_messages(shared_set("btcusdt_2024"))
    eth = read_messages(shared_set("ethusdt_2024"))
    mixed = [m for pair in zip((("BTCUSDT", m) for m in btc), (("ETHUSDT", m) for m in eth), strict=False)
             for m in pair]
    feed = Feed([BTC, KNOWN_INSTRUMENTS["ETHUSDT"]])
    for sym, m in mixed:   # a REST snapshot names no symbol: the caller that fetched it knows which
        assert (feed.on_snapshot(sym, m) if m.startswith(b'{"lastUpdateId"') else feed.on_message(m)) >= 0
    feed.finish()
    n = min(len(btc), len(eth))
    for inst, msgs in ((BTC, btc[:n]), (KNOWN_INSTRUMENTS["ETHUSDT"], eth[:n])):
        alone = run(msgs, [inst])[inst.symbol]
        sf = feed[inst.symbol]
        assert (sf.ticker_checks, sf.ticker_mismatches, sf.n_diffs) == (alone.ticker_checks, 0, alone.n_diffs)


def test_health_reports_stale_and_counters(sample):
    msgs = read_messages([sample])
    sf = run(msgs)["BTCUSDT"]
    now = sf.last_book_ns
    assert not sf.is_stale(now + 1_000_000_000, 5_000_000_000)
    assert sf.is_stale(now + 6_000_000_000, 5_000_000_000)
    h = sf.health(now, 5_000_000_000)
    assert h["synced"] and not h["stale"] and not h["crossed"] and h["gaps"] == 0
    assert h["ticker_checks"] == sf.ticker_checks and h["last_update_id"] == sf.last_u


def test_a_book_that_loses_its_touch_is_caught_by_the_oracle(sample):
    msgs = read_messages([sample])
    depth = [i for i, m in enumerate(msgs) if b"depthUpdate" in m]
    tampered = list(msgs)
    for i in depth[300:400]:       # our copy of these diffs deletes the touch Binance still has
        ticker = next(orjson.loads(x) for x in reversed(msgs[:i]) if b"bookTicker" in x)
        d = orjson.loads(msgs[i])
        best = ticker["data"]["b"]
        d["data"]["b"] = [lv for lv in d["data"]["b"] if lv[0] != best] + [[best, "0.000"]]
        tampered[i] = orjson.dumps(d)
    sf = run(tampered)["BTCUSDT"]
    assert sf.n_gaps == 0 and sf.ticker_mismatches >= 1
    feed = Feed([BTC])
    feed["BTCUSDT"].resync_on_mismatch = True      # live mode: a disagreeing book is rebuilt, not trusted
    for m in tampered:
        feed.on_message(m)
    assert feed["BTCUSDT"].n_resyncs >= 1 and feed["BTCUSDT"].needs_snapshot


def _depth_msg(raw: bytes) -> dict:
    """The depth event inside a recorded message (combined-stream envelope or bare)."""
    obj = orjson.loads(raw)
    return obj.get("data", obj)


def test_a_diff_whose_u_jumps_ahead_is_a_gap_not_a_frozen_book(sample):
    """A chained diff with a forged u far ahead made every later diff look like a replay: the book froze while
    it reported synced. The next diff, which continues past the jumped one, is now a broken chain: gap, resync."""
    msgs = read_messages([sample])
    ks = kinds(msgs)
    depth_idx = [i for i, k in enumerate(ks) if k == "depthUpdate"]
    at = depth_idx[len(depth_idx) // 3]
    feed = Feed([BTC])
    sf = feed["BTCUSDT"]
    for m in msgs[:at]:
        feed.on_message(m)
    assert sf.synced
    forged = _depth_msg(msgs[at])
    forged["u"] = forged["u"] + 10**12               # still chained (its pu is right), u far ahead
    feed.on_message(orjson.dumps(forged))
    assert sf.synced and sf.last_u == forged["u"]
    nxt = depth_idx[depth_idx.index(at) + 1]
    for m in msgs[at + 1: nxt + 1]:
        feed.on_message(m)
    assert sf.n_gaps == 1 and not sf.synced and sf.needs_snapshot
    assert sf.n_duplicates == 0                        # nothing was mistaken for a replay


def test_event_times_decades_ahead_are_refused(sample):
    msgs = read_messages([sample])
    feed = Feed([BTC])
    for m in msgs[:200]:
        feed.on_message(m)
    before = feed.exchange_ns
    ahead = _depth_msg(next(m for m, k in zip(msgs, kinds(msgs), strict=True) if k == "depthUpdate"))
    for field, value in (("E", 10**15), ("T", 10**15), ("E", 9 * 10**18)):   # year 33658, and past int64 ns
        feed.on_message(orjson.dumps({**ahead, field: value}))
        assert feed.exchange_ns == before and "ahead" in feed.last_error
    assert feed.n_future == 3 and feed["BTCUSDT"].synced
