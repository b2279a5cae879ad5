"""The risk gateway and the KillSwitch."""

from __future__ import annotations

import re
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
    gw.check(order("SELL", "2", pos="2", reduce_only=True), HEALTHY, now_s=0)   # flat / SL: the way out is open
    gw.check(order("BUY", "1", pos="-2", reduce_only=True), HEALTHY, now_s=0)
    assert refused(gw, order("SELL", "1", pos="2")) == "halted"                 # not reduce-only: no
    assert refused(gw, order("BUY", "1", pos="2", reduce_only=True)) == "halted"    # the wrong side: no
    assert refused(gw, order("SELL", "1", pos="0", reduce_only=True)) == "halted"   # nothing to reduce: no
    assert refused(gw, order()) == "halted"


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


# ---- pre-trade limits: per symbol and for the account, and the words of a refusal ----------------------------------

def _limits_cfg(**symbol) -> RiskConfig:
    from engine.limits import SymbolLimits

    return RiskConfig(max_orders_per_s=3, symbols={"BTCUSDT": SymbolLimits(**symbol)} if symbol else {})


def test_an_intent_is_refused_with_the_limit_the_value_and_the_unit():
    gw = RiskGateway()
    with pytest.raises(RiskRefused) as exc:
        gw.check_intent("BTCUSDT", True, 1000.0, None, 28_179.4, 28_151.3, 0.0, False, 0.1, 5.0)
    e = exc.value
    assert (e.reason, e.limit, e.unit) == ("order_notional", 250_000, "USDT") and e.value == pytest.approx(28_151_300)
    assert str(e) == "risk refused (order_notional): order notional 28,151,300 USDT > 250,000 USDT per order"
    assert e.record() == {"reason": "order_notional", "detail": e.detail, "limit": 250_000.0, "value": e.value,
                          "unit": "USDT"}
    with pytest.raises(RiskRefused, match=r"order notional 2\.82 USDT < 5 USDT minimum"):   # the venue's floor
        gw.check_intent("BTCUSDT", True, 0.0001, None, 28_179.4, 28_151.3, 0.0, False, 0.1, 5.0)
    gw.check_intent("BTCUSDT", False, 0.0001, None, 28_123.1, 28_151.3, 0.001, True, 0.1, 5.0)   # reduce-only
    gw.check_intent("BTCUSDT", False, 20.0, None, 28_123.1, 28_151.3, 20.0, True, 0.1, 5.0)   # the way out: open
    with pytest.raises(RiskRefused, match=re.escape("limit price 0.05 USDT < 0.1 USDT")):
        gw.check_intent("BTCUSDT", True, 0.01, 0.05, 0.0, 28_151.3, 0.0, False, 0.1, 5.0)
    with pytest.raises(RiskRefused, match=r"off the mid by 500 bps > 300 bps price band"):
        gw.check_intent("BTCUSDT", True, 0.01, 26_743.7, 26_743.7, 28_151.3, 0.0, False, 0.1, 5.0)
    assert gw.refused == {}           # an intent's check counts nothing (a preview asks it too): the runner counts


def test_a_symbols_own_limits_apply_in_c_and_name_their_scope():
    gw = RiskGateway(_limits_cfg(max_order_qty=D(2), max_position_qty=D(3), max_open_orders=2))
    with pytest.raises(RiskRefused) as exc:
        gw.check(order(qty="2.5"), HEALTHY, now_s=0)
    assert str(exc.value) == "risk refused (order_qty): order quantity 2.5 BTC > 2 BTC per order"
    with pytest.raises(RiskRefused, match=re.escape("position after the order 3.5 BTC > 3 BTC on BTCUSDT")):
        gw.check(order(qty="1.5", pos="2"), HEALTHY, now_s=0)
    gw.check(OrderCheck("ETHUSDT", "BUY", D(50), D(100), D(100), D(0)), HEALTHY, now_s=0.5)   # ETH: defaults
    for t in (1.0, 1.1):
        gw.check(order(), HEALTHY, now_s=t)
    with pytest.raises(RiskRefused) as exc:                    # the account's 3 per second: ETH's order counts
        gw.check(order(), HEALTHY, now_s=1.2)
    assert exc.value.reason == "order_rate_1s" and "for the account" in exc.value.detail
    gw.check(order(), HEALTHY, now_s=2.5)                      # a second later it goes
    assert gw.limits("BTCUSDT", 5)["min_notional"] == 5.0 and gw.limits("BTCUSDT")["max_open_orders"] == 2


@pytest.mark.parametrize("toml, key", [
    ("[risk]\nmax_order_notional = 0", "risk.max_order_notional must be > 0"),
    ("[risk]\nmax_open_orders = 0", "risk.max_open_orders must be a whole number >= 1"),
    ("[risk]\nmax_orders_per_s = -1", "risk.max_orders_per_s must be >= 0"),
    ("[risk]\nprice_band_bps = 20000.0", "risk.price_band_bps must be at most 10000"),
    ("[risk]\nmin_notional = 300000", "risk.min_notional (300000) must be below max_order_notional"),
    ("[risk.symbols.BTCUSDT]\nmax_order_qty = -2", "risk.symbols.BTCUSDT.max_order_qty must be >= 0"),
    ("[risk.symbols.BTCUSDT]\nmax_orders_per_10s = 500", "risk.symbols.BTCUSDT.max_orders_per_10s = 500 is looser"),
    ("[risk.symbols.BTCUSDT]\nmax_order_notional = \"inf\"", "risk.symbols.BTCUSDT.max_order_notional must be "),
    ("[risk.symbols.BTCUSDT]\nmax_qty = 1", "unknown key risk.symbols.BTCUSDT.max_qty"),
    ("[risk.symbols.BTCUSDT]\nmax_order_qty = true", "risk.symbols.BTCUSDT.max_order_qty must be a decimal"),
    ("[risk.symbols.btcusdt]\nmax_order_qty = 1", "risk.symbols.btcusdt: a symbol is upper-case"),
    ("[risk]\nsymbols = 3", "risk.symbols must be a table of tables")])
def test_limit_config_errors_name_the_key(tmp_path, toml, key):
    from engine.config import load
    from engine.errors import ConfigError

    path = tmp_path / "t.toml"
    path.write_text(toml + "\n")
    with pytest.raises(ConfigError, match=re.escape(key)):
        load(path)


def test_limit_prices_never_round_toward_a_worse_fill():
    from engine.execution import limit_ticks
    from engine.model import Instrument
    from strategies.base import BUY, SELL

    inst = Instrument.make("BTCUSDT", "0.10", "0.001")
    assert limit_ticks(D("28150.05"), SELL, inst) == (281501, "limit 28150.05 is off the 0.1 tick: 28150.1 "
                                                               "(rounded up for a sell)")
    assert limit_ticks(D("28150.05"), BUY, inst)[0] == 281500
    assert limit_ticks(D("28150.1"), SELL, inst) == (281501, "")
    assert limit_ticks(D("0.05"), BUY, inst)[0] == 0                    # below one tick: the risk check refuses it


def test_numbers_read_as_a_trader_reads_them():
    from engine.limits import num, units

    assert num(28_151_300.000001, "USDT") == "28,151,300" and num(2.8151, "USDT") == "2.82"
    assert num(0.30000000000000004, "BTC") == "0.3" and num(1000, "BTC") == "1,000"
    assert num(301.4, "bps") == "301.4" and num(100, "orders") == "100"
    assert units("BTCUSDT") == ("BTC", "USDT") and units("ETHUSDC") == ("ETH", "USDC")
