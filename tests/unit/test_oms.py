"""Order state machine, positions, and the journal surviving a hard kill."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from decimal import Decimal as D

import pytest

from engine.errors import StateError
from engine.oms.journal import Journal
from engine.oms.orders import STALE, TRANSITIONS, Fill, Order, OState, Trigger
from engine.oms.positions import Position


def order(qty="1") -> Order:
    return Order("c1", "BTCUSDT", "BUY", "LIMIT", D(qty), D("100"), "GTC")


def fill(tid, qty, price="100", fee="0.01") -> Fill:
    return Fill(tid, "c1", "BTCUSDT", "BUY", D(price), D(qty), D(fee), False, 1)


def test_happy_path_and_fill_before_ack():
    o = order()
    o.apply(Trigger.SUBMIT)
    assert o.add_fill(fill(1, "0.4")) and o.state is OState.PARTIALLY_FILLED   # the fill outran the ack
    assert not o.apply(Trigger.ACK)                                              # late ack: stale, no change
    assert o.state is OState.PARTIALLY_FILLED
    assert o.add_fill(fill(2, "0.6", "101")) and o.state is OState.FILLED
    assert o.avg_price == D("100.6") and o.fees == D("0.02")


def test_duplicate_fill_counts_once_and_overfill_is_an_error():
    o = order()
    o.apply(Trigger.SUBMIT)
    assert o.add_fill(fill(1, "0.5"))
    assert not o.add_fill(fill(1, "0.5"))
    assert o.filled == D("0.5")
    with pytest.raises(StateError):
        o.add_fill(fill(2, "0.6"))


def test_fill_reported_after_cancel_is_counted_without_reopening():
    o = order()
    o.apply(Trigger.SUBMIT)
    o.apply(Trigger.ACK)
    o.apply(Trigger.CANCEL)
    assert o.add_fill(fill(7, "0.3"))
    assert o.state is OState.CANCELED and o.filled == D("0.3")


def test_lost_ack_goes_unknown_then_resolves():
    o = order()
    o.apply(Trigger.SUBMIT)
    o.apply(Trigger.TIMEOUT)
    assert o.state is OState.UNKNOWN and not o.state.final
    o.apply(Trigger.ACK)
    assert o.state is OState.ACKNOWLEDGED


@pytest.mark.parametrize("state", list(OState))
@pytest.mark.parametrize("trigger", list(Trigger))
def test_every_transition_is_defined_or_refused(state, trigger):
    o = order()
    o.state = state
    nxt = TRANSITIONS.get((state, trigger))
    if nxt is None:
        with pytest.raises(StateError, match="impossible"):
            o.apply(trigger)
    elif nxt is STALE:
        assert o.apply(trigger) is False and o.state is state
    else:
        assert o.apply(trigger) is True and o.state is nxt
    if state.final and nxt is not None and nxt is not STALE:
        pytest.fail(f"a final state moved: {state} -{trigger}-> {nxt}")


def test_positions_average_cost_realised_and_flip():
    p = Position("BTCUSDT")
    p.apply("BUY", D(100), D(2), D("0.1"))
    p.apply("BUY", D(110), D(2))
    assert p.qty == 4 and p.entry == D(105)
    assert p.apply("SELL", D(120), D(1)) == D(15)
    assert p.apply("SELL", D(90), D(5)) == D(-45)           # closes 3 at a loss, opens short 2 at 90
    assert p.qty == -2 and p.entry == D(90) and p.realized == D(-30)
    assert p.unrealized(D(80)) == D(20)
    assert p.net_pnl(D(80)) == D(-30) - D("0.1") + D(20)


def test_journal_round_trip(tmp_path):
    j = Journal(tmp_path / "j.sqlite")
    j.start()
    o = order()
    o.intent_id = "i1"
    o.apply(Trigger.SUBMIT)
    j.intent("i1", 1, "console", "long btc 1", {"qty": D(1)}, "working")
    j.order(o)
    j.order_event("c1", 1, "submit", o.state.value)
    f = fill(11, "1")
    o.add_fill(f)
    j.fill(f)
    j.fill(f)                        # duplicated event: the primary key keeps one
    j.order(o)
    j.intent_state("i1", "done", 2, {"filled": "1"})
    j.kv_set("tp:BTCUSDT", "71250")
    j.sync_blocking()
    st = j.load()
    j.close()
    assert st.intents["i1"]["state"] == "done" and st.intents["i1"]["report"] == {"filled": "1"}
    assert st.orders["c1"].state is OState.FILLED and st.orders["c1"].trade_ids == {11}
    assert len(st.fills) == 1 and st.positions.get("BTCUSDT").qty == D(1)
    assert st.kv["tp:BTCUSDT"] == "71250"


WRITER = textwrap.dedent("""
    import sys, time
    from decimal import Decimal as D
    from engine.oms.journal import Journal
    from engine.oms.orders import Fill
    j = Journal(sys.argv[1]); j.start()
    for i in range(200):
        j.fill(Fill(i, "c", "BTCUSDT", "BUY", D("100"), D("0.001"), D("0"), True, i))
    j.sync_blocking()
    print("synced", flush=True)
    for i in range(200, 100000):                 # keeps writing until killed
        j.fill(Fill(i, "c", "BTCUSDT", "BUY", D("100"), D("0.001"), D("0"), True, i))
        if i % 500 == 0:
            time.sleep(0.001)
    time.sleep(60)
""")


def test_everything_synced_survives_kill_9(tmp_path):
    path = tmp_path / "k.sqlite"
    proc = subprocess.Popen([sys.executable, "-c", WRITER, str(path)], stdout=subprocess.PIPE, text=True,
                            cwd=os.getcwd())
    assert proc.stdout.readline().strip() == "synced"
    proc.send_signal(signal.SIGKILL)
    proc.wait(10)
    st = Journal(path).load()
    ids = sorted(f.trade_id for f in st.fills)
    assert ids[:200] == list(range(200))            # every synced fill is there
    assert ids == list(range(len(ids)))             # and nothing torn: a prefix, in order, no duplicates
    assert st.positions.get("BTCUSDT").qty == D("0.001") * len(ids)


SIM_SESSION = textwrap.dedent("""
    import sys, time
    from decimal import Decimal as D
    from engine.oms.journal import Journal, venue_id
    from engine.oms.orders import Fill
    j = Journal(sys.argv[1]); j.start()
    j.kv_set("venue", venue_id("", True, True))
    for i in range(50):
        j.fill(Fill(i, "c", "BTCUSDT", "BUY", D("100"), D("0.001"), D("0"), True, i))
    j.sync_blocking()
    print("synced", flush=True)
    time.sleep(60)
""")


def test_a_sim_session_journal_is_archived_whole_and_another_venues_is_refused(tmp_path):
    from engine.errors import ConfigError
    from engine.oms.journal import EMBEDDED_SIM, claim, venue_id

    path = tmp_path / "sim" / "journal.sqlite"
    assert claim(path, EMBEDDED_SIM) is None                     # nothing there yet
    proc = subprocess.Popen([sys.executable, "-c", SIM_SESSION, str(path)], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "synced"
    proc.send_signal(signal.SIGKILL)                             # the WAL still holds the session
    proc.wait(10)
    live = venue_id("https://fapi.binance.com/", False, False)
    with pytest.raises(ConfigError, match="embedded"):
        claim(path, live)                                        # a real account never loads a sim session
    moved = claim(path, EMBEDDED_SIM)                            # the next embedded session starts afresh
    assert moved is not None and not path.exists() and not path.with_name("journal.sqlite-wal").exists()
    st = Journal(moved).load()
    assert len(st.fills) == 50 and st.kv["venue"] == EMBEDDED_SIM
    assert claim(path, EMBEDDED_SIM) is None

    real = tmp_path / "journal.sqlite"
    j = Journal(real)
    j.start()
    j.kv_set("venue", live)
    j.fill(Fill(1, "c", "BTCUSDT", "BUY", D("100"), D("0.001"), D("0"), True, 1))
    j.sync_blocking()
    j.close()
    assert claim(real, live) is None                             # the same venue resumes its journal
    for other in (venue_id("https://testnet.binancefuture.com", False, False), EMBEDDED_SIM,
                  venue_id("http://127.0.0.1:9000", True, False)):
        with pytest.raises(ConfigError, match=r"fapi\.binance\.com"):
            claim(real, other)                                   # and nobody else touches it
    assert real.exists() and len(Journal(real).load().fills) == 1


def test_sim_venues_get_their_own_journal_path():
    import dataclasses
    from pathlib import Path

    from engine.config import Config, EngineConfig, VenueConfig, journal_path

    cfg = Config(engine=EngineConfig(home="/h"))
    assert journal_path(cfg) == Path("/h/sim/journal.sqlite")
    ext = dataclasses.replace(cfg, venue=VenueConfig(rest_url="http://127.0.0.1:9000"))
    assert journal_path(ext) == Path("/h/sim/journal.sqlite")
    assert journal_path(dataclasses.replace(cfg, venue=VenueConfig(kind="binance"))) == Path("/h/journal.sqlite")
    assert journal_path(dataclasses.replace(cfg, engine=EngineConfig(home="/h", journal="/j.sqlite"))) == \
        Path("/j.sqlite")


def test_one_engine_per_journal(tmp_path):
    import os

    from engine.errors import ConfigError
    from engine.oms.journal import lock

    path = tmp_path / "journal.sqlite"
    fd = lock(path)
    with pytest.raises(ConfigError, match="another engine"):
        lock(path)                                   # a second holder, even in the same process, is refused
    os.close(fd)                                     # as the kernel does when the holder dies, kill -9 included
    os.close(lock(path))


def test_a_cancelled_sync_does_not_kill_the_journal_writer(tmp_path):
    """A waiter that gives up on ``sync`` (asyncio cancels the wrapped future) left a cancelled future in the
    writer's queue; setting its result raised in the writer thread, which died and every later sync hung."""
    import asyncio

    j = Journal(tmp_path / "j.sqlite")
    j.start()
    try:
        for i in range(2000):
            j.kv_set(f"k{i}", i)
        given_up = j.flush_future()
        given_up.cancel()
        j.kv_set("after", 1)
        asyncio.run(asyncio.wait_for(j.sync(), 10))              # the writer is alive and answers
        assert j._thread is not None and j._thread.is_alive()
        assert j.query("SELECT value FROM kv WHERE key='after'") == [{"value": "1"}]
    finally:
        j.close()
