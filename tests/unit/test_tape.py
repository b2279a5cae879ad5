"""Several symbols' recordings as one tape: merged by exchange time, each REST snapshot its own file's; instruments
for symbols no table knows; laps of a replayed tape; the bundled BTCUSDT + ETHUSDT pair."""

from __future__ import annotations

import gzip
from decimal import Decimal
from pathlib import Path

import orjson
import pytest

from engine.errors import DataError
from engine.feed import make_feed
from engine.feed.recording import file_lines, sample_paths
from engine.feed.verify import verify
from engine.model import KNOWN_INSTRUMENTS
from engine.venues.sim import SimExchange
from engine.venues.sim.exchange_info import build, infer_instrument
from engine.venues.sim.server import SimVenueConfig
from engine.venues.sim.tape import SNAPSHOT, load_tape
from tests.conftest import shared_set


def renamed_copy(src: Path, dst: Path, old: str, new: str, limit: int | None = None) -> Path:
    """A copy of a real recording with one symbol renamed (``ETHUSDT`` -> ``XYZUSDT``, stream names too)."""
    with gzip.open(src, "rb") as f:
        lines = f.readlines()[:limit]
    body = b"".join(lines).replace(old.encode(), new.encode()).replace(old.lower().encode(), new.lower().encode())
    dst.write_bytes(gzip.compress(body))
    return dst


def test_the_bundled_pair_is_btc_and_eth_for_the_same_minutes_each_with_its_snapshot():
    btc, eth = sample_paths()
    assert btc.stat().st_size < 1_500_000 and eth.stat().st_size < 1_500_000
    tape = load_tape([btc, eth])
    assert tape.symbols == ("BTCUSDT", "ETHUSDT")
    snaps = [ev.symbol for ev in tape.events if ev.kind == SNAPSHOT]
    assert sorted(snaps) == ["BTCUSDT", "ETHUSDT"]
    span = {s: [ev.exch_ns for ev in tape.events if ev.symbol == s and ev.exch_ns] for s in tape.symbols}
    assert abs(min(span["BTCUSDT"]) - min(span["ETHUSDT"])) < 1e9
    assert abs(max(span["BTCUSDT"]) - max(span["ETHUSDT"])) < 1e9
    assert max(span["BTCUSDT"]) - min(span["BTCUSDT"]) > 170e9                  # ~3 minutes of both
    times = [ev.time_ns for ev in tape.events]
    assert times == sorted(times)                                               # merged by exchange time


def test_the_bundled_pair_books_match_every_checkable_ticker():
    res = verify(sample_paths())
    by = {s.symbol: s for s in res.symbols}
    print(res.summary(), {s: (r.checks, r.mismatches) for s, r in by.items()})
    assert res.ok and res.mismatches == 0 and res.gaps == 0
    assert by["BTCUSDT"].checks > 150 and by["ETHUSDT"].checks > 250


def test_a_bare_snapshot_belongs_to_its_files_symbol():
    btc, eth = sample_paths()
    lines = file_lines(eth)
    snap = [ln for ln in lines if ln.raw.startswith(b'{"lastUpdateId"')]
    assert len(snap) == 1 and snap[0].symbol == "ETHUSDT"
    feed = make_feed([KNOWN_INSTRUMENTS["BTCUSDT"], KNOWN_INSTRUMENTS["ETHUSDT"]])
    for path in (btc, eth):
        for ln in file_lines(path):
            feed.on_snapshot(ln.symbol, ln.raw) if ln.symbol else feed.on_message(ln.raw)
    assert feed["BTCUSDT"].synced and feed["ETHUSDT"].synced


def test_a_bare_snapshot_in_a_file_of_two_symbols_is_refused_naming_the_file(tmp_path):
    btc, eth = sample_paths()
    with gzip.open(btc, "rb") as a, gzip.open(eth, "rb") as b:
        mixed = a.readlines()[:40] + b.readlines()[:40]
    path = tmp_path / "mixed.gz"
    path.write_bytes(gzip.compress(b"".join(mixed)))
    with pytest.raises(DataError, match=r"mixed\.gz:\d+: a bare REST snapshot line in a file of 2 symbols"):
        load_tape([path])


def test_shared_2024_sets_of_two_symbols_merge_as_two_streams_of_two_files():
    paths = shared_set("btcusdt_2024") + shared_set("ethusdt_2024")
    tape = load_tape(paths)
    assert tape.symbols == ("BTCUSDT", "ETHUSDT")
    times = [ev.time_ns for ev in tape.events]
    assert times == sorted(times)
    for sym in tape.symbols:                           # each symbol's own order is its files' order
        seq = [ev.local_ns for ev in tape.events if ev.symbol == sym and ev.kind != SNAPSHOT]
        assert seq == sorted(seq)


def test_a_symbol_in_no_table_gets_its_grid_from_the_tape(tmp_path):
    xyz = renamed_copy(sample_paths()[1], tmp_path / "usdm_xyzusdt.gz", "ETHUSDT", "XYZUSDT")
    ex = SimExchange([sample_paths()[0], xyz])
    inst = ex.instruments["XYZUSDT"]
    assert "XYZUSDT" not in KNOWN_INSTRUMENTS
    assert (inst.tick_size, inst.step_size, inst.min_notional) == (Decimal("0.01"), Decimal("0.001"), Decimal(5))
    assert ex.instruments["BTCUSDT"] == KNOWN_INSTRUMENTS["BTCUSDT"]            # the table of real values first
    info = build(ex.instruments, SimVenueConfig().limits)
    row = next(s for s in info["symbols"] if s["symbol"] == "XYZUSDT")
    filters = {f["filterType"]: f for f in row["filters"]}
    assert filters["PRICE_FILTER"]["tickSize"] == "0.01" and filters["LOT_SIZE"]["stepSize"] == "0.001"
    # the inference reproduces the real grids of BTC and ETH from their tapes alone
    tape = load_tape(sample_paths())
    for sym in ("BTCUSDT", "ETHUSDT"):
        got, real = infer_instrument(tape, sym), KNOWN_INSTRUMENTS[sym]
        assert (got.tick_size, got.step_size) == (real.tick_size, real.step_size)


def test_a_lap_replays_the_tape_with_times_and_ids_moved_on_and_the_books_resync():
    ex = SimExchange(sample_paths())
    first = ex.next_time()
    served: dict[str, list[dict]] = {"BTCUSDT": [], "ETHUSDT": []}
    while not ex.done:
        for m in ex.advance(ex.next_time() + 10**9):
            if m.stream.endswith("@depth@0ms"):
                served[m.symbol].append(orjson.loads(m.payload))
    end = ex.now_ns
    last_u = {s: d[-1]["u"] for s, d in served.items()}
    ex.next_lap(start_ns=end + 10**9)
    assert ex.lap == 1 and not ex.done and ex.next_time() >= end + 10**9 > first
    assert not ex.synced("BTCUSDT") and not ex.synced("ETHUSDT")
    lap: dict[str, list[dict]] = {"BTCUSDT": [], "ETHUSDT": []}
    marks = []
    for m in ex.advance(ex.next_time() + 20 * 10**9):
        if m.stream.endswith("@depth@0ms"):
            lap[m.symbol].append(orjson.loads(m.payload))
        elif m.stream.endswith("@markPrice@1s"):
            marks.append(orjson.loads(m.payload))
    assert ex.synced("BTCUSDT") and ex.synced("ETHUSDT")
    for sym in lap:
        assert lap[sym][0]["U"] > last_u[sym]                                 # ids never go back
        assert lap[sym][0]["E"] * 10**6 >= end + 10**9                        # nor does exchange time
        assert all(b["pu"] == a["u"] for a, b in zip(lap[sym][1:], lap[sym][2:], strict=False))
    assert {m["s"] for m in marks} == {"BTCUSDT", "ETHUSDT"}
