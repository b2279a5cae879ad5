"""Reliability: each fault the sim can inject, met by the engine's real client over real sockets."""

from __future__ import annotations

import asyncio
import socket

import aiohttp
import pytest

from engine.errors import VenueClientError, VenueServerError
from engine.loop import run
from engine.venues.binance import codes
from engine.venues.sim.auth import Limits
from tests.integration.conftest import stack, wait_for


async def fault(st, **changes) -> None:
    async with st.session.post(f"{st.venue.rest_url}/sim/faults", json=changes) as resp:
        assert resp.status == 200


def test_a_skipped_diff_is_a_gap_and_the_client_resyncs():
    async def main():
        async with stack(speed=10) as st:
            await st.start_market()
            sf = st.feed["BTCUSDT"]
            await wait_for(lambda: sf.synced, 20)
            await fault(st, skip_diffs=1)
            await wait_for(lambda: sf.n_gaps == 1, 20)
            await wait_for(lambda: sf.synced, 20)
            checks = sf.ticker_checks
            await wait_for(lambda: sf.ticker_checks > checks + 20, 30)
            assert sf.ticker_mismatches == 0 and st.md.stats["snapshots"] >= 2

    run(main())


def test_a_dropped_market_stream_reconnects_and_resyncs():
    async def main():
        async with stack(speed=10) as st:
            await st.start_market()
            sf = st.feed["BTCUSDT"]
            await wait_for(lambda: sf.synced, 20)
            await fault(st, drop_market=True)
            await wait_for(lambda: st.md.stream.connects >= 2, 20)
            await wait_for(lambda: sf.synced and sf.n_resyncs >= 2, 20)
            checks = sf.ticker_checks
            await wait_for(lambda: sf.ticker_checks > checks + 20, 30)
            assert sf.ticker_mismatches == 0 and st.md.stats["reconnects"] >= 1

    run(main())


def test_a_lost_ack_times_out_and_the_order_is_found_by_query():
    async def main():
        async with stack(speed=5) as st:
            await st.start_market()
            await wait_for(lambda: st.feed["BTCUSDT"].synced, 20)
            await fault(st, lose_acks=1)
            st.ws_api.timeout_s = 0.5
            with pytest.raises(VenueServerError) as exc:
                await st.ws_api.place_order(symbol="BTCUSDT", side="BUY", type="MARKET", quantity="0.010",
                                            newClientOrderId="lost-1")
            assert exc.value.code == codes.TIMEOUT
            found = await st.rest.query_order("BTCUSDT", client_order_id="lost-1")
            assert found["status"] == "FILLED"
            # over REST the same fault drops the connection: the outcome is unknown, the query knows
            await fault(st, lose_acks=1)
            with pytest.raises(VenueServerError):
                await st.rest.place_order(symbol="BTCUSDT", side="SELL", type="MARKET", quantity="0.010",
                                          newClientOrderId="lost-2")
            assert (await st.rest.query_order("BTCUSDT", client_order_id="lost-2"))["status"] == "FILLED"

    run(main())


def test_5xx_429_and_rejections_are_typed_errors():
    async def main():
        async with stack(speed=5) as st:
            await st.start_market()
            await wait_for(lambda: st.feed["BTCUSDT"].synced, 20)
            await fault(st, http_5xx=1)
            with pytest.raises(VenueServerError) as exc:
                await st.rest.balance()
            assert exc.value.status == 503
            assert (await st.rest.balance())[0]["asset"] == "USDT"        # the next one is served
            await fault(st, http_429=1)
            with pytest.raises(VenueClientError) as exc:
                await st.rest.balance()
            assert (exc.value.status, exc.value.code) == (429, codes.TOO_MANY_REQUESTS)
            assert st.rest.limiter.delay_ms(1) > 0                        # it backs off as told (Retry-After)
            st.rest.limiter.banned_until_ms = 0
            await fault(st, reject_orders=1)
            with pytest.raises(VenueClientError) as exc:
                await st.ws_api.place_order(symbol="BTCUSDT", side="BUY", type="MARKET", quantity="0.010")
            assert exc.value.code == codes.NEW_ORDER_REJECTED
            await fault(st, stall_ms=400)
            st.rest.timeout = aiohttp.ClientTimeout(total=0.1)
            with pytest.raises(VenueServerError) as exc:
                await st.rest.balance()
            assert exc.value.code == codes.TIMEOUT

    run(main())


async def _market_order_under(st, cid: str, **faults) -> list[dict]:
    """With the user stream and market data up, set ``faults`` and send a 0.010 market buy ``cid``; returns the
    list the user data events arrive in."""
    events: list[dict] = []
    user = st.start_user(events)
    await st.start_market()
    await wait_for(lambda: st.feed["BTCUSDT"].synced and user.connected.is_set(), 20)
    await fault(st, **faults)
    await st.ws_api.place_order(symbol="BTCUSDT", side="BUY", type="MARKET", quantity="0.010",
                                newClientOrderId=cid)
    return events


def test_duplicated_user_events_arrive_twice():
    async def main():
        async with stack(speed=5) as st:
            events = await _market_order_under(st, "dup-1", duplicate_user=100)
            trades = lambda: [e for e in events if e.get("e") == "ORDER_TRADE_UPDATE"  # noqa: E731
                              and e["o"]["c"] == "dup-1" and e["o"]["x"] == "TRADE"]
            await wait_for(lambda: len(trades()) >= 2, 10)
            ids = [t["o"]["t"] for t in trades()]
            assert len(ids) == 2 * len(set(ids))                           # every fill event twice

    run(main())


def test_rate_limits_429_then_418_and_the_client_limiter_follows_the_headers():
    async def main():
        async with stack(speed=1, limits=Limits(weight_per_min=200, ban_s=5)) as st:
            # our client adopts the venue's published limits, reads its counts and waits rather than cross them
            st.rest.limiter.configure((await st.rest.exchange_info())["rateLimits"])
            await st.start_market()
            await wait_for(lambda: st.feed["BTCUSDT"].synced, 20)       # each depth snapshot: weight 20
            used = st.rest.limiter.used()["X-MBX-USED-WEIGHT-1M"]
            assert used >= 21 and used == st.venue.counters["127.0.0.1"].weight.count
            assert st.rest.limiter.delay_ms(200 - used) > 0              # 90% of the limit is the ceiling
            assert st.rest.limiter.delay_ms(1) == 0
            # a careless client hammering the same venue: 429 with Retry-After, then 418
            statuses = []
            async with aiohttp.ClientSession() as raw:
                for _ in range(250):
                    async with raw.get(f"{st.venue.rest_url}/fapi/v1/time") as resp:
                        statuses.append(resp.status)
                        if resp.status in (418, 429):
                            body = await resp.json()
                            assert body["code"] == codes.TOO_MANY_REQUESTS and "Retry-After" in resp.headers
                        if resp.status == 418:
                            break
            assert 429 in statuses and statuses[-1] == 418 and statuses[0] == 200

    run(main())


def test_the_venue_survives_clients_that_vanish_mid_request():
    async def main():
        async with stack(speed=5) as st:
            port = int(st.venue.rest_url.rsplit(":", 1)[1])
            half_post = b"POST /fapi/v1/order HTTP/1.1\r\nHost: x\r\nContent-Length: 400\r\n\r\nsym"
            for payload in (b"GET /fapi/v1/ti", half_post, b"\x16\x03\x01\x02\x00garbage"):
                s = socket.create_connection(("127.0.0.1", port))
                s.sendall(payload)
                s.close()
            await fault(st, stall_ms=300)
            task = asyncio.create_task(st.rest.balance())
            await asyncio.sleep(0.05)
            task.cancel()                                                  # gone before the answer
            await asyncio.sleep(0.4)
            await fault(st, stall_ms=0)
            assert (await st.rest.balance())[0]["asset"] == "USDT"
            async with st.session.get(f"{st.venue.rest_url}/fapi/v1/nowhere") as resp:
                assert resp.status == 404 and (await resp.json())["code"] == -5000

    run(main())


def test_orders_a_venue_no_longer_knows_end_cleanly_on_reconciliation(tmp_path, caplog):
    """A journal reloaded against a venue that lost its orders (a testnet reset, an archived order, a sim venue
    started afresh): an order it acknowledged ends EXPIRED, one it never acknowledged ends REJECTED, and every
    change is journaled; no invalid transition is attempted."""
    from decimal import Decimal

    from engine.oms.journal import Journal
    from engine.oms.manager import OrderManager
    from engine.oms.orders import Order, OState
    from engine.venues.binance.gateway import OrderGateway

    async def main():
        async with stack(speed=5) as st:
            await st.rest.sync_time()
            journal = Journal(tmp_path / "j.sqlite")
            journal.start()
            inst = st.venue.ex.instruments["BTCUSDT"]
            oms = OrderManager(OrderGateway(st.rest, None), journal, {"BTCUSDT": inst}, lambda o, f: None,
                               st.rest.now_ms)
            acked = Order("tp-old-1", "BTCUSDT", "SELL", "LIMIT", Decimal("0.010"), Decimal("99000.0"), "GTC",
                          reduce_only=True, purpose="tp", state=OState.ACKNOWLEDGED, venue_order_id=987654321)
            sent = Order("en-old-2", "BTCUSDT", "BUY", "LIMIT", Decimal("0.010"), Decimal("1000.0"), "GTC",
                         state=OState.SUBMITTED)
            oms.load({o.client_order_id: o for o in (acked, sent)}, [])
            for o in (acked, sent):
                await oms.resolve(o)
            await journal.sync()
            assert acked.state is OState.EXPIRED and "no longer known" in acked.reason
            assert sent.state is OState.REJECTED and not oms.live
            rows = {r["client_order_id"]: r["state"] for r in journal.query("SELECT * FROM orders")}
            assert rows == {"tp-old-1": "EXPIRED", "en-old-2": "REJECTED"}
            journal.close()

    with caplog.at_level("ERROR"):
        run(main())
    assert not [r for r in caplog.records if r.levelname == "ERROR"]


async def status(st) -> dict:
    async with st.session.get(f"{st.venue.rest_url}/sim/status") as resp:
        assert resp.status == 200
        return await resp.json()


def test_a_market_stall_publishes_nothing_then_everything_queued_on_the_same_connection():
    async def main():
        async with stack(speed=5) as st:
            await st.start_market()
            sf = st.feed["BTCUSDT"]
            await wait_for(lambda: sf.synced and st.md.stream.messages > 50, 20)
            await fault(st, stall_market_ms=3000)
            await asyncio.sleep(0.2)                                  # what was already on its way lands
            published, received = st.venue.published, st.md.stream.messages
            await asyncio.sleep(0.5)
            still = (await status(st))["faults"]["stall_market_ms"]
            assert still == 3000                                       # sampled inside the stall ...
            assert (st.venue.published, st.md.stream.messages) == (published, received)   # ... nothing came
            await wait_for(lambda: st.md.stream.messages > received + 20, 20)
            assert (await status(st))["faults"]["stall_market_ms"] == 0
            assert st.md.stream.connects == 1 and sf.n_gaps == 0 and sf.synced      # the backlog, in order
            assert st.venue.fault_counts["stall_market_ms"] == 1

    run(main())


def test_reordered_user_events_arrive_swapped_with_the_next():
    async def main():
        async with stack(speed=5) as st:
            events = await _market_order_under(st, "swap-1", reorder_user=1)
            mine = lambda: [e["o"]["x"] for e in events if e.get("e") == "ORDER_TRADE_UPDATE"  # noqa: E731
                            and e["o"]["c"] == "swap-1"]
            await wait_for(lambda: "NEW" in mine() and "TRADE" in mine(), 10)
            assert mine()[:2] == ["TRADE", "NEW"]                     # the venue emitted NEW, then TRADE
            assert st.venue.fault_counts["reorder_user"] == 1 and st.venue.faults.reorder_user == 0

    run(main())


def test_an_ip_ban_answers_418_on_rest_and_the_websocket_api_and_the_limiter_honours_it():
    from engine.errors import RiskRefused

    async def main():
        async with stack(speed=5) as st:
            await st.start_market()
            await wait_for(lambda: st.feed["BTCUSDT"].synced, 20)
            await fault(st, ban_s=2)
            with pytest.raises(VenueClientError) as exc:
                await st.rest.balance()
            assert (exc.value.status, exc.value.code) == (418, codes.TOO_MANY_REQUESTS)
            assert "IP banned until" in exc.value.msg
            assert st.rest.limiter.delay_ms(1) > 1000                  # Retry-After: 2 s
            # an order with a deadline shorter than the ban is refused by our limiter, never sent
            with pytest.raises(RiskRefused) as refused:
                await st.ws_api.place_order(symbol="BTCUSDT", side="BUY", type="MARKET", quantity="0.010",
                                            max_wait_ms=500)
            assert refused.value.reason == "deadline"
            # a client that ignores it meets 418 too
            async with aiohttp.ClientSession() as raw, raw.get(f"{st.venue.rest_url}/fapi/v1/time") as resp:
                assert resp.status == 418 and int(resp.headers["Retry-After"]) >= 1
                assert (await resp.json())["code"] == codes.TOO_MANY_REQUESTS
            st.rest.limiter.banned_until_ms = 0                        # (pretend our limiter forgot) the WS API
            with pytest.raises(VenueClientError) as exc:
                await st.ws_api.place_order(symbol="BTCUSDT", side="BUY", type="MARKET", quantity="0.010")
            assert (exc.value.status, exc.value.code) == (418, codes.TOO_MANY_REQUESTS)
            assert st.rest.limiter.delay_ms(0, 1) > 0                  # its retryAfter reached the limiter
            assert st.venue.fault_counts["ban_s"] == 3
            assert 1 <= (await status(st))["faults"]["ban_s"] <= 2     # in force: the seconds it has left
            # after the ban everything is served again (the limiter waits out the rest of it)
            assert (await st.rest.balance())[0]["asset"] == "USDT"
            assert (await status(st))["banned_until_ms"] > 0

    run(main())


@pytest.mark.parametrize("body", [
    b'{"drop_market": "false"}', b'{"reject_orders": true}', b'{"reject_orders": -1}', b'{"reject_orders": 1.0}',
    b'{"reject_orders": 100000000}', b'{"nope": 1}', b"[1]", b'"x"', b"{", b'{"reject_orders": 2, "ban_s": "1"}',
])
def test_fault_settings_are_refused_whole_with_a_binance_shaped_400(body):
    async def main():
        async with stack(speed=5) as st:
            async with st.session.post(f"{st.venue.rest_url}/sim/faults", data=body) as resp:
                assert resp.status == 400
                answer = await resp.json()
            assert answer["code"] == codes.INVALID_PARAMETER and answer["msg"]
            shown = await status(st)
            assert not any(shown["faults"].values()) and not any(shown["fault_counts"].values())
            async with st.session.post(f"{st.venue.rest_url}/sim/faults",
                                       json={"reject_orders": 2, "drop_market": False}) as resp:
                assert resp.status == 200 and (await resp.json())["reject_orders"] == 2
            assert (await status(st))["faults"]["reject_orders"] == 2

    run(main())
