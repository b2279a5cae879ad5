"""The risk gateway and the KillSwitch."""

from __future__ import annotations

from decimal import Decimal as D

import pytest

from engine.errors import RiskRefused
from engine.risk import KillSwitch, OrderCheck, RiskConfig, RiskGateway, TradingState

HEALTHY = {"synced": True, "stale": False, "crossed": False}


def order(side="BUY", qty="1", price="100", pos="0", reduce_only=False) -> OrderCheck:
    return OrderCheck("BTCUSDT", side, D(qty), D(price) if price else None, D("100"), D(pos), reduce_only)


def refused(gw: RiskGateway, o: OrderCheck, health=HEALTHY) -> str:
    with pytest.raises(RiskRefused) as exc:
        gw.check(o, health, now_s=0)
    return exc.value.reason


def test_trading_states():
    gw = RiskGateway()
    gw.check(order(), HEALTHY, now_s=0)
    gw.state = TradingState.REDUCING
    assert refused(gw, order()) == "reducing"
    gw.check(order("SELL", "1", pos="2"), HEALTHY, now_s=0)            # shrinks a long: allowed
    assert refused(gw, order("SELL", "3", pos="2")) == "reducing"        # would flip it: not
    gw.state = TradingState.HALTED
    assert refused(gw, order("SELL", "1", pos="2", reduce_only=True)) == "halted"


@pytest.mark.parametrize("health, reason", [
    ({**HEALTHY, "synced": False}, "book_unsynced"), ({**HEALTHY, "stale": True}, "book_stale"),
    ({**HEALTHY, "crossed": True}, "book_crossed")])
def test_book_health_is_required(health, reason):
    assert refused(RiskGateway(), order(), health) == reason


def test_limits():
    gw = RiskGateway(RiskConfig(max_order_notional=D(1000), max_position_notional=D(1500), price_band_bps=100,
                                max_orders_per_10s=3, max_open_orders=5))
    assert refused(gw, order(qty="11")) == "order_notional"
    assert refused(gw, order(qty="9", pos="7")) == "position_notional"
    gw.check(order("SELL", "9", pos="16"), HEALTHY, now_s=0)           # reducing a big position is fine
    assert refused(gw, order(price="102")) == "price_band"             # 200 bps from the mid
    assert refused(gw, OrderCheck("BTCUSDT", "BUY", D(1), None, None, D(0))) == "no_price"
    gw.check(order(), HEALTHY, now_s=1)
    gw.check(order(), HEALTHY, now_s=2)
    assert refused(gw, order()) == "order_rate"                        # 3 sent within 10 s
    gw.check(order(), HEALTHY, now_s=20)                               # the window moved on
    gw.open_orders = 5
    assert refused(gw, order()) == "open_orders"
    assert gw.refused["order_rate"] == 1


def test_kill_switch_measures_drawdown_from_the_peak():
    ks = KillSwitch(RiskConfig(max_drawdown=D(100), max_session_loss=D(1000)))
    assert ks.update(D(0)) == ""
    assert ks.update(D(500)) == ""                                      # a big gain: the peak rises
    assert ks.update(D(420)) == ""                                      # 80 off the peak, still +420 overall
    reason = ks.update(D(399))                                          # 101 off the peak: trips, though in profit
    assert "drawdown" in reason and ks.tripped
    assert ks.update(D(0)) == ""                                        # reported once
    ks.reset()
    ks2 = KillSwitch(RiskConfig(max_drawdown=D(10_000), max_session_loss=D(50)))
    ks2.update(D(0))
    assert "session loss" in ks2.update(D(-51))
