"""The engine node on the embedded sim venue: intents through the control socket, journal, venue and risk agree."""

from __future__ import annotations

import asyncio
import contextlib
from decimal import Decimal

import pytest

from engine.config import Config, EngineConfig, ExecutionConfig, VenueConfig
from engine.control import ControlClient
from engine.errors import ConfigError, RiskRefused, TapeshotError, VenueClientError
from engine.loop import run
from engine.node import Node
from engine.oms.journal import Journal
from tests.integration.conftest import node_with_control


@contextlib.asynccontextmanager
async def engine(tmp_path, speed: float = 8.0, **exec_kw):
    cfg = Config(venue=VenueConfig(speed=speed), engine=EngineConfig(home=str(tmp_path)),
                 execution=ExecutionConfig(**exec_kw))
    async with node_with_control(cfg) as pair:
        yield pair


def test_the_loop_busy_polls_while_an_intent_works_and_sleeps_after(tmp_path):
    async def main():
        async with engine(tmp_path, speed=4.0) as (node, client):
            node.busy_poll = True
            await asyncio.sleep(0.05)
            assert node.spins == 0                               # nothing working: the loop sleeps
            lines = await intent(client, "long btc 0.01 10s")
            assert lines[-1]["kind"] == "done"
            assert node.spins > 1000                             # polled while the intent worked
            await asyncio.sleep(0.2)
            before = node.spins
            await asyncio.sleep(0.2)
            assert node.spins == before and not node._spinning   # and stopped once none works

    run(main())


async def intent(client: ControlClient, text: str) -> list[dict]:
    return [line async for line in client.intent(text)]


def test_intents_through_the_control_socket_and_everything_agrees(tmp_path):
    async def main():
        async with engine(tmp_path) as (node, client):
            lines = await intent(client, "long btc 0.3 15s max 8bps -- bid absorbing at the round number")
            kinds = [ln["kind"] for ln in lines]
            assert kinds[0] == "submitted" and kinds[1] == "accepted" and kinds[-1] == "done"
            report = lines[-1]["data"]
            assert report["filled"] == "0.300" and report["complete"] and report["shortfall_bps"] is not None
            iid = lines[0]["intent_id"]
            lines = await intent(client, "flat btc 10s")
            assert lines[-1]["data"]["filled"] == "0.300" and lines[-1]["data"]["side"] == "SELL"
            status = await client.call("GET", "/status")
            assert "BTCUSDT: flat;" in status
            await client.call("POST", "/rationale", {"intent_id": iid, "text": "tape was one-sided"})
            venue_pos = await node.rest.position_risk("BTCUSDT")
            venue_fills = await node.rest.user_trades("BTCUSDT")
        j = Journal(tmp_path / "sim" / "journal.sqlite")                  # the embedded venue's own
        st = j.load()
        assert Decimal(venue_pos[0]["positionAmt"]) == st.positions.get("BTCUSDT").qty == 0
        assert sorted(f.trade_id for f in st.fills) == sorted(int(f["id"]) for f in venue_fills)
        assert st.intents[iid]["state"] == "done" and st.intents[iid]["data"]["rationale"]
        kinds = [r["kind"] for r in j.query("SELECT kind FROM decisions WHERE intent_id=? ORDER BY seq", (iid,))]
        assert kinds[0] == "arrival" and "done" in kinds and "rationale" in kinds
        fees = sum((f.fee for f in st.fills), Decimal(0))
        assert fees == sum(Decimal(f["commission"]) for f in venue_fills)

    run(main())


def test_bad_intents_and_the_kill_switch(tmp_path):
    async def main():
        async with engine(tmp_path) as (node, client):
            assert "refused" not in str(await client.call("POST", "/preview", {"text": "long btc 0.5 20s"}))
            lines = await intent(client, "lng btc 1")
            assert "unknown action" in lines[0]["error"]
            lines = await intent(client, "long doge 100")
            assert "not traded here" in lines[0]["error"]
            lines = await intent(client, "long btc 900 20s")          # far over the per-order notional limit
            assert "order notional" in lines[0]["error"] and "250,000 USDT per order" in lines[0]["error"]
            assert node.risk.refused.get("order_notional", 0) == 1     # refused at once, not order by order
            assert "halted" in (await client.call("POST", "/kill", {"reason": "test"})).lower()
            with pytest.raises(RiskRefused):
                await node.submit("long btc 0.1 10s", source="test", user="t")
            await client.call("POST", "/resume")
            lines = await intent(client, "long btc 0.1 10s")
            assert lines[-1]["data"]["filled"] == "0.100"

    run(main())


def test_tp_and_sl_are_exchange_side_close_position_orders(tmp_path):
    async def main():
        async with engine(tmp_path) as (node, client):
            await intent(client, "long btc 0.2 10s max 8bps")
            mid = Decimal(repr(node.feed["BTCUSDT"].book.mid)) / 10
            tp, sl = (mid * Decimal("1.01")).quantize(Decimal("0.1")), (mid * Decimal("0.99")).quantize(Decimal("0.1"))
            with pytest.raises(TapeshotError, match="wrong side"):
                await node.submit(f"tp btc {sl}", source="t", user="t")
            await node.submit(f"tp btc {tp}", source="t", user="t")
            await node.submit(f"sl btc {sl}", source="t", user="t")
            open_orders = await node.rest.open_orders("BTCUSDT")
            by_type = {o["type"]: o for o in open_orders}
            assert by_type["TAKE_PROFIT_MARKET"]["stopPrice"].startswith(str(tp))
            assert by_type["STOP_MARKET"]["closePosition"] and by_type["STOP_MARKET"]["side"] == "SELL"
            await node.submit(f"tp btc {(tp + 10)}", source="t", user="t")    # changed: replaced, not added
            await asyncio.sleep(0.1)
            tps = [o for o in await node.rest.open_orders("BTCUSDT") if o["type"] == "TAKE_PROFIT_MARKET"]
            assert len(tps) == 1 and tps[0]["stopPrice"].startswith(str(tp + 10))
            await intent(client, "flat btc 10s")
            await asyncio.sleep(0.2)
            assert await node.rest.open_orders("BTCUSDT") == []              # position closed: levels gone

    run(main())


def test_a_drifted_clock_is_measured_again_after_a_minus_1021(tmp_path):
    """Our venue-clock estimate drifts 30 s behind: a signed request over REST, then one over the WebSocket API,
    is refused with -1021 (outside recvWindow); each time the engine re-measures the offset at once, and the next
    intent goes through."""
    async def main():
        async with engine(tmp_path) as (node, client):
            true_offset = node.rest.time_offset_ms

            async def corrected():
                loop = asyncio.get_running_loop()
                end = loop.time() + 10
                while abs(node.rest.time_offset_ms - true_offset) > 1_000 and loop.time() < end:
                    await asyncio.sleep(0.02)
                return abs(node.rest.time_offset_ms - true_offset) <= 1_000

            for send in (lambda: node.rest.open_orders(),
                         lambda: node.ws_api.call("order.status", {"symbol": "BTCUSDT", "origClientOrderId": "x"})):
                node.rest.time_offset_ms = true_offset - 30_000
                with pytest.raises(VenueClientError) as exc:
                    await send()
                assert exc.value.code == -1021
                assert await corrected()
            lines = await intent(client, "long btc 0.01 5s sniper")
            assert lines[-1]["data"]["filled"] == "0.010"

    run(main())


def test_a_second_engine_on_the_same_journal_is_refused_before_it_touches_anything(tmp_path):
    async def main():
        async with engine(tmp_path) as (node, client):
            second = Node(Config(venue=VenueConfig(speed=8.0), engine=EngineConfig(home=str(tmp_path))))
            with pytest.raises(ConfigError, match="another engine"):
                await second.start()
            assert second.venue is None and second.session is None   # no venue, no session, no reconciliation
            lines = await intent(client, "long btc 0.01 10s")
            assert lines[-1]["kind"] == "done"                       # the first one carries on
            assert str(node.oms.positions.get("BTCUSDT").qty) == lines[-1]["data"]["filled"] == "0.010"

    run(main())
