"""Pre-trade risk with the real engine on the sim venue: limits per symbol and for the account, checked when an
intent is accepted and again in C on every order; every refusal journalled with its limit, value and unit;
prices that never round toward a worse fill and never become a MARKET order."""

from __future__ import annotations

import asyncio
import contextlib
import json
from decimal import Decimal

import pytest

from engine.config import Config, EngineConfig, VenueConfig
from engine.limits import SymbolLimits
from engine.loop import run
from engine.node import Node
from engine.risk import RiskConfig
from strategies.base import BUY, Place
from tests.integration.conftest import node_with_control, refused, wait_for

TICK = Decimal("0.1")


@contextlib.asynccontextmanager
async def engine(tmp_path, risk: RiskConfig | None = None):
    cfg = Config(venue=VenueConfig(speed=8.0), engine=EngineConfig(home=str(tmp_path)), risk=risk or RiskConfig())
    async with node_with_control(cfg) as pair:
        yield pair


def refusals(node: Node, intent_id: str | None = None) -> list[dict]:
    """The journal's "refused" decisions (accept-time ones have no intent id)."""
    where = "intent_id IS NULL" if intent_id is None else "intent_id = ?"
    rows = node.journal.query(f"SELECT data FROM decisions WHERE kind='refused' AND {where} ORDER BY seq",
                              () if intent_id is None else (intent_id,))
    return [json.loads(r["data"]) for r in rows]


def mid(node: Node) -> Decimal:
    return Decimal(repr(node.feed["BTCUSDT"].book.mid)) * TICK


def test_an_intent_over_a_limit_is_refused_at_once_with_the_limit_the_value_and_the_unit(tmp_path):
    """`long btc 1000 30s` is refused when it arrives (not accepted and then refused order by order), in words
    and in numbers, journalled; the venue never hears of it. The same for a limit below one tick and a limit
    outside the price band."""
    async def main():
        async with engine(tmp_path) as (node, client):
            exc = await refused(node, "long btc 1000 30s")
            m = float(mid(node))
            assert exc.reason == "order_notional" and exc.limit == 250_000 and exc.unit == "USDT"
            assert exc.value == pytest.approx(1000 * m, rel=1e-3)
            assert "USDT > 250,000 USDT per order" in str(exc) and f"{1000 * m:,.0f}"[:6] in str(exc)
            lines = [ln async for ln in client.intent("long btc 1000 30s")]          # through the control socket
            assert len(lines) == 1 and "order notional" in lines[0]["error"] and "250,000 USDT" in lines[0]["error"]
            tick = await refused(node, "long btc 0.01 10s ladder limit 0.05")
            assert tick.reason == "price_tick" and (tick.value, tick.limit, tick.unit) == (0.05, 0.1, "USDT")
            low = (mid(node) * Decimal("0.95")).quantize(TICK)
            band = await refused(node, f"long btc 0.01 10s limit {low}")          # 500 bps under the mid
            assert band.reason == "price_band" and band.unit == "bps" and band.value == pytest.approx(500, abs=5)
            wide = await refused(node, "long btc 0.01 10s max 400bps")             # its cap is outside the band
            assert wide.reason == "price_band" and wide.limit == 300
            journal = refusals(node)
            assert [r["reason"] for r in journal] == ["order_notional"] * 2 + ["price_tick", "price_band",
                                                                                "price_band"]
            first = journal[0]
            assert first["text"] == "long btc 1000 30s" and first["stage"] == "accept"
            assert (first["limit"], first["unit"]) == (250_000, "USDT") and first["value"] == exc.value
            assert await node.rest.all_orders("BTCUSDT") == []                   # nothing reached the venue
            assert node.risk.refused["order_notional"] == 2
            lines = [ln async for ln in client.intent("long btc 0.1 10s")]         # a sane one goes through
            assert lines[-1]["data"]["filled"] == "0.100"

    run(main())


def test_limits_per_symbol_from_the_config(tmp_path):
    """[risk.symbols.BTCUSDT]: order quantity, position quantity and minimum notional of its own; a position
    limit does not stop the way out."""
    risk = RiskConfig(symbols={"BTCUSDT": SymbolLimits(max_order_qty=Decimal("0.05"),
                                                       max_position_qty=Decimal("0.08"),
                                                       min_notional=Decimal("100"))})

    async def main():
        async with engine(tmp_path, risk) as (node, client):
            qty = await refused(node, "long btc 0.06 10s")
            assert qty.reason == "order_qty" and (qty.limit, qty.value, qty.unit) == (0.05, 0.06, "BTC")
            assert "order quantity 0.06 BTC > 0.05 BTC per order" in str(qty)
            small = await refused(node, "long btc 0.001 10s")                      # ~64 USDT
            assert small.reason == "min_notional" and small.limit == 100 and small.unit == "USDT"
            lines = [ln async for ln in client.intent("long btc 0.05 10s")]
            assert lines[-1]["data"]["filled"] == "0.050"
            pos = await refused(node, "long btc 0.04 10s")
            assert pos.reason == "position_qty" and pos.value == pytest.approx(0.09) and pos.unit == "BTC"
            assert "position after the order 0.09 BTC > 0.08 BTC on BTCUSDT" in str(pos)
            lines = [ln async for ln in client.intent("flat btc 10s")]             # reducing: always allowed
            assert lines[-1]["data"]["filled"] == "0.050"
            assert [r["reason"] for r in refusals(node)] == ["order_qty", "min_notional", "position_qty"]

    run(main())


def test_every_order_passes_the_symbols_limits_in_c_and_its_refusals_are_journalled(tmp_path):
    """BTCUSDT may have one open order, and its take-profit is one: the C check on the order path (the gate)
    counts the symbol's own open orders and refuses the next intent's orders, each refusal journalled with its
    numbers; once the take-profit is gone, orders go again."""
    risk = RiskConfig(symbols={"BTCUSDT": SymbolLimits(max_open_orders=1)})

    async def main():
        async with engine(tmp_path, risk) as (node, client):
            lines = [ln async for ln in client.intent("long btc 0.01 5s")]
            assert lines[-1]["data"]["filled"] == "0.010"
            await node.submit(f"tp btc {(mid(node) * Decimal('1.01')).quantize(TICK)}", source="test", user="t")
            await wait_for(lambda: any(o.state.open for o in node.oms.orders.values()))
            lines = [ln async for ln in client.intent("long btc 0.01 5s")]
            assert lines[-1]["data"]["filled"] == "0.000"
            rows = [r for r in refusals(node, lines[0]["intent_id"]) if r["reason"] == "open_orders"]
            assert rows and (rows[0]["limit"], rows[0]["value"], rows[0]["unit"]) == (1, 1, "orders")
            assert "open orders 1 orders >= 1 orders for BTCUSDT" in rows[0]["detail"]
            await node.submit("tp btc off", source="test", user="t")
            await wait_for(lambda: not any(o.state.open for o in node.oms.orders.values()))
            lines = [ln async for ln in client.intent("long btc 0.01 5s")]
            assert lines[-1]["data"]["filled"] == "0.010"

    run(main())


def test_prices_never_round_toward_a_worse_fill_and_never_become_a_market_order(tmp_path):
    """An off-tick limit rounds down for a buy and up for a sell, and the acceptance says so; a size that rounds
    to the step is said too. An order whose price is 0 ticks (a bug upstream) is refused on the order path as
    ``price_tick``; it never leaves as a MARKET order."""
    async def main():
        async with engine(tmp_path) as (node, _client):
            m = mid(node)
            sell = (m * Decimal("1.002")).quantize(TICK) + Decimal("0.05")
            sub = await node.submit(f"short btc 0.01 5s cancel limit {sell}", source="test", user="t")
            assert f"{(sell + Decimal('0.05')).quantize(TICK)} (rounded up for a sell)" in sub.echo
            assert node.runner.intents[sub.intent_id].algo.spec.limit == int((sell + Decimal("0.05")) / TICK)
            node.runner.cancel("BTCUSDT", "test")
            await wait_for(lambda: not node.runner.armed())
            buy = (m * Decimal("0.998")).quantize(TICK) + Decimal("0.05")
            sub = await node.submit(f"long btc 0.0105 5s cancel ladder limit {buy}", source="test", user="t")
            assert f"{(buy - Decimal('0.05')).quantize(TICK)} (rounded down for a buy)" in sub.echo
            assert "size 0.0105 rounded down to 0.010 (step 0.001)" in sub.echo
            li = node.runner.intents[sub.intent_id]
            node.runner.place(li, Place(f"{li.id}-zero", BUY, 10, 0, "IOC"))
            assert f"{li.id}-zero" not in node.oms.orders
            await node.journal.sync()
            rows = [r for r in refusals(node, li.id) if r["reason"] == "price_tick"]
            assert rows and rows[0]["cid"] == f"{li.id}-zero"
            node.runner.cancel("BTCUSDT", "test")
            await wait_for(lambda: not node.runner.armed())
            await asyncio.sleep(0.2)
            venue = await node.rest.all_orders("BTCUSDT")
            assert venue and all(o["type"] == "LIMIT" for o in venue)
            assert all(o["clientOrderId"] != f"{li.id}-zero" for o in venue)

    run(main())


def test_preview_says_what_the_limits_would_refuse(tmp_path):
    """``preview`` runs the same acceptance check as ``submit``: it says the limit, the value and the unit."""
    async def main() -> None:
        async with engine(tmp_path) as (node, _client):
            text = await node.preview("long btc 1000 30s")
            assert "would be refused" in text and "USDT > 250,000 USDT per order" in text, text
            ok = await node.preview("long btc 0.01 30s")
            assert "would be accepted" in ok and "0.010 BTC" in ok and "immediate fill now" in ok, ok
            assert not node.runner.intents and not node.oms.orders           # a preview sends nothing
    run(main())
