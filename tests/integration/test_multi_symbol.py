"""Several symbols at once, and the end of the tape: the sim on BTCUSDT + ETHUSDT recordings, intents on both at
once, a symbol no table knows, the tape's end (said, refused with the reason, a clean stop) or its replay
(``--loop``), ``run --venue-url`` with a key against a separate ``tapeshot sim``, and mark prices on the feed."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import subprocess
import sys
from decimal import Decimal

import pytest

from engine.config import Config, EngineConfig, VenueConfig
from engine.errors import RiskRefused
from engine.feed.recording import sample_path, sample_paths
from engine.loop import run
from tests.conftest import shared_set
from tests.integration.conftest import node_with_control, stack, wait_for
from tests.integration.test_crash import free_port, start
from tests.unit.test_tape import renamed_copy


def cfg_for(tmp_path, speed: float, data=(), loop: bool = False) -> Config:
    return Config(venue=VenueConfig(speed=speed, data=tuple(str(p) for p in data), loop=loop),
                  engine=EngineConfig(home=str(tmp_path)))


async def both_books_match_their_tickers(paths, speed: float, min_checks: dict[str, int]) -> None:
    async with stack(speed=speed, paths=paths) as st:
        assert set(st.venue.ex.instruments) == {"BTCUSDT", "ETHUSDT"}
        await st.start_market()
        await wait_for(lambda: all(sf.synced for sf in st.feed.symbols), 20)
        await wait_for(lambda: st.venue.finished.is_set(), 120)
        await asyncio.sleep(0.3)
        for sf in st.feed.symbols:
            print(f"{sf.symbol}: checked {sf.ticker_checks} bookTickers, {sf.ticker_mismatches} mismatches")
            assert sf.ticker_mismatches == 0 and sf.n_gaps == 0 and sf.n_bad == 0
            assert sf.ticker_checks >= min_checks[sf.symbol]


def test_the_sim_on_the_bundled_pair_serves_both_books_matching_their_tickers():
    run(both_books_match_their_tickers(sample_paths(), 20, {"BTCUSDT": 150, "ETHUSDT": 250}))


def test_the_sim_on_shared_btc_and_eth_recordings_of_two_files_each_serves_both_books():
    paths = shared_set("btcusdt_2024") + shared_set("ethusdt_2024")
    run(both_books_match_their_tickers(paths, 60, {"BTCUSDT": 400, "ETHUSDT": 400}))


def test_intents_on_two_symbols_work_at_the_same_time_and_both_end_done(tmp_path):
    async def main():
        async with node_with_control(cfg_for(tmp_path, 4.0)) as (node, _client):
            assert list(node.instruments) == ["BTCUSDT", "ETHUSDT"]
            btc = await node.submit("long btc 0.05 15s max 8bps", source="test", user="t")
            eth = await node.submit("short eth 1 15s max 8bps", source="test", user="t")   # while BTC's works
            live = {s: [li.id for li in lst if li.state.live] for s, lst in node.runner.active.items()}
            assert live == {"BTCUSDT": [btc.intent_id], "ETHUSDT": [eth.intent_id]}
            await wait_for(lambda: all(node.intents[i].state.value == "done" for i in (btc.intent_id, eth.intent_id)),
                           60)
            assert node.oms.positions.get("BTCUSDT").qty == Decimal("0.05")
            assert node.oms.positions.get("ETHUSDT").qty == Decimal("-1")
            venue = {r["symbol"]: Decimal(r["positionAmt"]) for r in await node.rest.position_risk()}
            assert venue["BTCUSDT"] == Decimal("0.05") and venue["ETHUSDT"] == Decimal("-1")

    run(main())


def test_a_symbol_in_no_table_trades_end_to_end_on_the_venues_exchange_info(tmp_path):
    xyz = renamed_copy(sample_paths()[1], tmp_path / "usdm_xyzusdt.gz", "ETHUSDT", "XYZUSDT")

    async def main():
        async with node_with_control(cfg_for(tmp_path / "home", 4.0, [sample_paths()[0], xyz])) as (node, _c):
            info = await node.rest.exchange_info()
            row = next(s for s in info["symbols"] if s["symbol"] == "XYZUSDT")
            tick = next(f for f in row["filters"] if f["filterType"] == "PRICE_FILTER")["tickSize"]
            inst = node.instruments["XYZUSDT"]
            assert inst.tick_size == Decimal(tick) == Decimal("0.01") and inst.step_size == Decimal("0.001")
            sub = await node.submit("long xyz 1 10s max 8bps", source="test", user="t")
            await wait_for(lambda: node.intents[sub.intent_id].state.value == "done", 40)
            assert node.oms.positions.get("XYZUSDT").qty == Decimal(1)

    run(main())


def test_at_the_tapes_end_the_engine_says_so_and_refuses_intents_with_the_reason(tmp_path):
    async def main():
        async with node_with_control(cfg_for(tmp_path, 60.0)) as (node, _client):
            said = []
            node.subscribe(lambda p: said.append(p.text) if p.kind == "risk" else None)
            await wait_for(node.tape_ended.is_set, 30)
            assert any("the recorded tape has ended" in t for t in said)
            assert all(not sf.synced and sf.unavailable for sf in node.feed.symbols)
            with pytest.raises(RiskRefused, match="no market data: the recorded tape has ended"):
                await node.submit("long btc 0.01 10s", source="test", user="t")
            assert not node.intents                                   # refused at once: nothing was accepted

    run(main())


def test_tapeshot_run_stops_cleanly_at_the_tapes_end(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "engine.cli", "run", "--speed", "60", "--console", "off",
                           "--home", str(tmp_path)], capture_output=True, text=True, timeout=90)
    assert proc.returncode == 0, proc.stderr[-2000:]
    out = proc.stdout
    assert "tapeshot running on embedded sim venue: BTCUSDT, ETHUSDT" in out
    assert "front ends: console off; control socket" in out and "Telegram off" in out and "metrics off" in out
    assert "the recorded tape has ended" in out and "stopped: nothing left working at the venue" in out
    assert "WARNING" not in proc.stderr, proc.stderr[-2000:]


def test_with_loop_the_tape_replays_and_intents_trade_on_the_next_lap(tmp_path):
    async def main():
        # 20x: the tape's ~3 minutes pass in ~9 s, and a scheduling hiccup of 0.1 s stays 2 s of exchange time,
        # well inside the feed's 5 s staleness limit (at 60x it would be 6 s: a stale book, refused at once)
        async with node_with_control(cfg_for(tmp_path, 20.0, loop=True)) as (node, _client):
            said = []
            node.subscribe(lambda p: said.append(p.text) if p.kind == "risk" else None)
            await wait_for(lambda: node.venue.ex.lap >= 1, 30)
            await wait_for(lambda: all(sf.synced for sf in node.feed.symbols), 20)     # resynced on the new lap
            assert any("replaying it again (lap 1)" in t for t in said)
            assert not node.tape_ended.is_set() and not node.venue.finished.is_set()
            sub = await node.submit("long eth 0.5 5s", source="test", user="t")
            await wait_for(lambda: node.intents[sub.intent_id].state.value == "done", 30)
            for sf in node.feed.symbols:
                # Across the lap the oracle stays on: in about one run in three (already at this session's start,
                # 7db802c) one bookTicker of the new lap contradicts ETHUSDT's book and the feed resyncs on it
                # (resync_on_mismatch): caught and repaired, as designed; its cause is open (see the session note).
                assert sf.ticker_mismatches <= 1 and sf.n_resyncs >= 2 + sf.ticker_mismatches, sf.symbol
                assert sf.synced and sf.ticker_checks > 100

    run(main())


def test_tapeshot_sim_loop_replays_through_the_market_stream():
    async def main():
        async with stack(speed=60, paths=sample_paths(), loop_on_end=True) as st:
            await st.start_market()
            await wait_for(lambda: st.venue.ex.lap >= 1, 30)
            snapshots = st.md.stats["snapshots"]
            await wait_for(lambda: all(sf.synced for sf in st.feed.symbols) and st.md.stats["snapshots"] > snapshots,
                           20)
            assert not st.venue.finished.is_set()
            assert all(sf.ticker_mismatches == 0 and sf.n_resyncs >= 1 for sf in st.feed.symbols)

    run(main())


def test_run_venue_url_with_a_key_from_the_environment_against_a_tapeshot_sim(tmp_path):
    port = free_port()
    key, secret = "trader-key-7Hq2", "trader-secret-Zr81xK"
    sim = start(["sim", "--port", str(port), "--speed", "10", "--api-key", key, "--api-secret", secret],
                "api secret")
    url = f"http://127.0.0.1:{port}"
    try:
        env = {**os.environ, "TAPESHOT_API_KEY": key, "TAPESHOT_API_SECRET": secret}
        wrong = subprocess.run([sys.executable, "-m", "engine.cli", "run", "--venue-url", url, "--console", "off",
                                "--home", str(tmp_path / "wrong")], capture_output=True, text=True, timeout=60,
                               env={**env, "TAPESHOT_API_SECRET": "not-the-secret"})
        assert wrong.returncode == 2 and "the venue refused the API key" in wrong.stderr
        proc = subprocess.run([sys.executable, "-m", "engine.cli", "run", "--venue-url", url, "--console", "off",
                               "--home", str(tmp_path / "ok")], capture_output=True, text=True, timeout=90, env=env)
        assert proc.returncode == 0, proc.stderr[-2000:]
        assert f"tapeshot running on {url}: BTCUSDT, ETHUSDT" in proc.stdout
        assert "the recorded tape has ended" in proc.stdout
        assert secret not in proc.stdout + proc.stderr and "HTTP 503" not in proc.stderr
    finally:
        sim.send_signal(signal.SIGTERM)
        try:
            sim.wait(10)
        except subprocess.TimeoutExpired:
            sim.kill()


def test_mark_prices_reach_the_feed_derived_when_the_tape_has_none():
    async def main():
        async with stack(speed=2, paths=sample_paths()) as st:
            await st.start_market()
            await wait_for(lambda: all(sf.mark_price is not None and sf.synced for sf in st.feed.symbols), 30)
            for sf in st.feed.symbols:
                mid = Decimal(repr(sf.book.mid)) * sf.instrument.tick_size
                assert isinstance(sf.mark_price, Decimal) and abs(sf.mark_price - mid) / mid < Decimal("0.001")
                assert sf.funding_rate == Decimal("0.0001") and sf.next_funding_ms == 1721347200000

    run(main())


def test_recorded_mark_prices_reach_the_feed():
    async def main():
        async with stack(speed=2, paths=[sample_path()]) as st:
            await st.start_market()
            sf = st.feed["BTCUSDT"]
            await wait_for(lambda: sf.mark_price is not None, 30)
            assert Decimal(28000) < sf.mark_price < Decimal(28300) and sf.index_price is not None
            assert sf.funding_rate == Decimal("0.00002754") and sf.next_funding_ms == 1680652800000
            assert st.md.stats["mark_prices"] >= 1

    run(main())


def test_the_routine_snapshot_retry_is_not_a_warning(caplog):
    async def main():
        async with stack(speed=0.1, paths=sample_paths()) as st:       # the tape's snapshots come ~3 s in
            await st.start_market()
            await wait_for(lambda: all(sf.synced for sf in st.feed.symbols), 30)
            assert st.md.stats["snapshot_errors"] >= 1                 # the sim answered 503 first

    with caplog.at_level(logging.INFO, logger="engine.feed.live"):
        run(main())
    retries = [r for r in caplog.records if "depth snapshot failed" in r.getMessage()]
    assert retries and all(r.levelno == logging.INFO for r in retries)
