"""The KillSwitch's watchers (engine.guards), its day and its journal snapshot, and the config keys' validation."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from decimal import Decimal as D
from types import SimpleNamespace

import pytest

from engine import guards
from engine.config import load
from engine.errors import ConfigError
from engine.metrics import Histogram
from engine.risk import KillSwitch, RiskConfig, trading_day

DAY = 86_400 * 10**9
T0 = 1_700_000_000 * 10**9 - (1_700_000_000 * 10**9) % DAY      # a UTC midnight


def test_the_day_boundary_is_configurable():
    from zoneinfo import ZoneInfo

    utc = ZoneInfo("UTC")
    assert trading_day(T0 - 1, utc, 0) != trading_day(T0, utc, 0) == trading_day(T0 + DAY - 1, utc, 0)
    # a day that starts at 22:00 UTC: 23:00 already belongs to the next one
    assert trading_day(T0 - 3600 * 10**9, utc, 22 * 60) == trading_day(T0 + 3600 * 10**9, utc, 22 * 60)


def test_drawdown_and_loss_are_the_days():
    ks = KillSwitch(RiskConfig(max_drawdown=D(100), max_daily_loss=D(60), max_session_loss=D(10_000)))
    assert ks.update(D(0), T0) == "" and ks.update(D(90), T0 + 1) == ""
    assert ks.update(D(0), T0 + DAY) == ""                      # a new day: its open is 0 and its peak resets
    assert ks.peak == 0 and ks.day_open == 0
    assert "daily loss" in ks.update(D(-61), T0 + DAY + 1) and ks.trigger == "daily_loss"
    ks2 = KillSwitch(RiskConfig(max_drawdown=D(100), max_daily_loss=D(1000)))
    ks2.update(D(0), T0)
    ks2.update(D(500), T0 + 1)
    assert "day's peak" in ks2.update(D(399), T0 + 2) and ks2.trigger == "drawdown"


def test_the_days_peak_survives_a_restart():
    ks = KillSwitch(RiskConfig(max_drawdown=D(100), max_daily_loss=D(1000)))
    ks.update(D(0), T0)
    ks.update(D(300), T0 + 1)
    snap = ks.snapshot()
    again = KillSwitch(ks.cfg)
    again.restore(snap)
    assert again.update(D(250), T0 + 2) == ""                   # 50 off the kept peak
    assert "drawdown" in again.update(D(199), T0 + 3)          # 101 off the peak made before the restart
    fresh = KillSwitch(ks.cfg)
    fresh.restore(snap)
    assert fresh.update(D(199), T0 + DAY) == ""                 # the next day starts afresh
    fresh.restore({"nonsense": 1})                              # a malformed snapshot changes nothing


@pytest.mark.parametrize("key, value", [("day_timezone", "Mars/Olympus"), ("day_start", "25:00"),
                                        ("kill_flatten", "panic"), ("kill_reject_streak", -1),
                                        ("kill_watchdog_ms", 10), ("kill_flatten_cap_bps", 0.0),
                                        ("max_daily_loss", "0")])
def test_kill_keys_are_validated(tmp_path, key, value):
    path = tmp_path / "t.toml"
    path.write_text(f"[risk]\n{key} = {value!r}\n".replace("'", '"'))
    with pytest.raises(ConfigError, match=key):
        load(path, env={})


def test_kill_keys_load(tmp_path):
    path = tmp_path / "t.toml"
    path.write_text('[risk]\nkill_flatten = "ioc"\nday_start = "22:00"\nday_timezone = "Europe/Zurich"\n'
                    'kill_latency_ms = 250\n')
    cfg = load(path, env={"TAPESHOT_RISK__KILL_REJECT_STREAK": "3"})
    assert cfg.risk.kill_flatten == "ioc" and cfg.risk.kill_reject_streak == 3 and cfg.risk.kill_latency_ms == 250


@dataclass
class FakeBook:
    crossed: bool = False


@dataclass
class FakeSym:
    symbol: str = "BTCUSDT"
    synced: bool = True
    last_book_ns: int = 0
    book: FakeBook = field(default_factory=FakeBook)


def test_book_watch_needs_working_orders_and_time():
    sf = FakeSym()
    now = [0]
    working = [False]
    w = guards.BookWatch(SimpleNamespace(symbols=[sf]), lambda s: working[0], lambda: now[0], 5 * 10**9, 2.0)
    sf.synced = False
    assert w.check(0.0) == guards.OK and w.check(5.0) == guards.OK            # nothing works: no kill
    working[0] = True
    assert w.check(6.0) == guards.OK and w.check(7.9) == guards.OK
    trigger, reason = w.check(8.0)
    assert trigger == "book" and "unsynced" in reason
    sf.synced, now[0] = True, 6 * 10**9                                        # synced but 6 s without a diff
    w.reset()
    assert w.check(10.0) == guards.OK and "stale" in w.check(12.0)[1]
    sf.last_book_ns = now[0]
    assert w.check(13.0) == guards.OK


def test_latency_watch_is_sustained():
    h = Histogram("x", "x")
    lag = [0.0]
    w = guards.LatencyWatch(h, lambda: lag[0], 0.1, 1.0)
    h.observe(0.3)
    assert w.check(0.0) == guards.OK
    assert w.check(0.5) == guards.OK                              # no new sample: the last holds
    h.observe(0.01)
    assert w.check(0.9) == guards.OK                              # a fast one breaks the run
    h.observe(0.2)
    w.check(1.0)
    assert w.check(2.0)[0] == "latency"
    w.reset()
    lag[0] = 0.5
    w.check(3.0)
    assert "loop lag" in w.check(4.1)[1]


def test_latency_watch_sees_a_slow_feed():
    h = Histogram("y", "y")
    feed = [0.05]
    w = guards.LatencyWatch(h, lambda: 0.0, 0.1, 1.0, lambda: feed[0])
    assert w.check(0.0) == guards.OK
    feed[0] = 0.4                                                   # events arrive 400 ms after their time
    w.check(1.0)
    assert w.check(1.5) == guards.OK                               # not yet sustained
    trigger, reason = w.check(2.1)
    assert trigger == "latency" and "feed latency 400 ms" in reason


def test_reject_streak_counts_venue_rejects_in_a_row():
    w = guards.RejectStreak(3)
    seen = []
    cb = w.wrap(lambda o, f: seen.append(o.client_order_id))

    def order(cid, state, code=0):
        return SimpleNamespace(client_order_id=cid, state=SimpleNamespace(value=state), reject_code=code,
                               reason="rejected")
    cb(order("a", "REJECTED", -2010), None)
    cb(order("a", "REJECTED", -2010), None)                        # the same order twice counts once
    cb(order("b", "REJECTED", 0), None)                            # never reached the venue: not counted
    cb(order("c", "ACKNOWLEDGED"), None)                           # an ack ends the streak
    assert w.streak == 0 and seen == ["a", "a", "b", "c"]
    for cid in "def":
        cb(order(cid, "REJECTED", -2010), None)
    assert w.check(0)[0] == "rejects" and "-2010" in w.check(0)[1]


def test_reach_watch_retries_and_fires_after_the_limit():
    up = {"market stream": True, "order socket": False}
    retried = []
    w = guards.ReachWatch({k: (lambda k=k: up[k]) for k in up}, 2.0, {"order socket": lambda: retried.append(1)})
    assert w.check(0.0) == guards.OK and retried
    up["order socket"] = True
    assert w.check(3.0) == guards.OK                              # it came back in time
    up["market stream"] = False
    w.check(4.0)
    trigger, reason = w.check(6.5)
    assert trigger == "unreachable" and "market stream down for 2.5 s" in reason


def test_watch_triggers_kills_once_and_resets():
    w = guards.RejectStreak(1)
    w.streak = 1
    kills = []
    halted = [False]

    async def kill(trigger, reason):
        kills.append(trigger)
        halted[0] = True

    async def main():
        task = asyncio.create_task(guards.watch_triggers([w], kill, lambda: halted[0], period_s=0.01))
        await asyncio.sleep(0.1)
        task.cancel()

    asyncio.run(main())
    assert kills == ["rejects"] and w.streak == 0
