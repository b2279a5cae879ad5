"""End to end over real sockets: the sim venue on real tape, the engine's own Binance client against it."""

from __future__ import annotations

import asyncio
from decimal import Decimal

import pytest

from engine.errors import VenueClientError
from engine.keys import Credentials, Secret
from engine.loop import run
from engine.venues.binance import codes
from engine.venues.binance.rest import BinanceRest
from tests.integration.conftest import stack, wait_for


def test_books_sync_through_the_sim_stream_and_match_every_checkable_ticker():
    async def main():
        async with stack(speed=25) as st:
            await st.start_market()
            sf = st.feed["BTCUSDT"]
            await wait_for(lambda: sf.synced, 20)
            await wait_for(lambda: st.venue.finished.is_set(), 60)
            await asyncio.sleep(0.2)
            print(f"through the sim: checked {sf.ticker_checks} bookTickers, {sf.ticker_mismatches} mismatches")
            assert sf.ticker_mismatches == 0 and sf.n_gaps == 0 and sf.n_bad == 0
            assert sf.ticker_checks > 300
            assert st.md.stats["snapshots"] >= 1

    run(main())


def test_orders_over_rest_and_websocket_api_with_user_events():
    async def main():
        async with stack(speed=5) as st:
            events: list[dict] = []
            user = st.start_user(events)
            await st.start_market()
            sf = st.feed["BTCUSDT"]
            await wait_for(lambda: sf.synced and user.connected.is_set(), 20)
            await st.rest.sync_time()
            inst = st.venue.ex.instruments["BTCUSDT"]
            bid = inst.fmt_price(sf.book.best(0)[0] - 500)          # 50 USDT under the touch: rests

            # REST: a resting limit order, found by query and in openOrders, then cancelled
            placed = await st.rest.place_order(symbol="BTCUSDT", side="BUY", type="LIMIT", timeInForce="GTC",
                                               quantity="0.010", price=bid, newClientOrderId="e2e-rest-1")
            assert placed["status"] == "NEW" and placed["clientOrderId"] == "e2e-rest-1"
            assert (await st.rest.query_order("BTCUSDT", client_order_id="e2e-rest-1"))["status"] == "NEW"
            assert [o["orderId"] for o in await st.rest.open_orders("BTCUSDT")] == [placed["orderId"]]
            cancelled = await st.rest.cancel_order("BTCUSDT", order_id=placed["orderId"])
            assert cancelled["status"] == "CANCELED"
            assert await st.rest.open_orders("BTCUSDT") == []

            # WebSocket API: a marketable order fills against the recorded book; a resting one is cancelled
            filled = await st.ws_api.place_order(symbol="BTCUSDT", side="BUY", type="MARKET", quantity="0.020",
                                                 newClientOrderId="e2e-ws-1")
            assert filled["status"] == "FILLED" and Decimal(filled["executedQty"]) == Decimal("0.020")
            resting = await st.ws_api.place_order(symbol="BTCUSDT", side="SELL", type="LIMIT", timeInForce="GTX",
                                                  quantity="0.010", price=inst.fmt_price(sf.book.best(1)[0] + 300))
            assert resting["status"] == "NEW"
            gone = await st.ws_api.cancel_order("BTCUSDT", order_id=resting["orderId"])
            assert gone["status"] == "CANCELED"

            pos = await st.rest.position_risk("BTCUSDT")
            assert Decimal(pos[0]["positionAmt"]) == Decimal("0.020")
            bal = (await st.rest.balance())[0]
            fee = Decimal(filled["cumQuote"]) * Decimal("0.0005")
            assert Decimal(bal["balance"]) == Decimal("100000") - fee

            def seen(cid, x):
                return any(e.get("e") == "ORDER_TRADE_UPDATE" and e["o"]["c"] == cid and e["o"]["x"] == x
                           for e in events)

            await wait_for(lambda: seen("e2e-rest-1", "CANCELED") and seen("e2e-ws-1", "TRADE"), 10)
            assert seen("e2e-rest-1", "NEW")
            trades = [e["o"] for e in events if e.get("e") == "ORDER_TRADE_UPDATE" and e["o"]["c"] == "e2e-ws-1"
                      and e["o"]["x"] == "TRADE"]
            assert sum(Decimal(t["l"]) for t in trades) == Decimal("0.020") and trades[-1]["X"] == "FILLED"
            assert any(e.get("e") == "ACCOUNT_UPDATE" for e in events)
            fills = await st.rest.user_trades("BTCUSDT")
            assert sorted(f["id"] for f in fills) == sorted(int(t["t"]) for t in trades)

    run(main())


@pytest.mark.parametrize("params, code", [
    ({"symbol": "DOGEUSDT", "side": "BUY", "type": "MARKET", "quantity": "1"}, codes.BAD_SYMBOL),
    ({"symbol": "BTCUSDT", "side": "BUY", "type": "LIMIT", "timeInForce": "GTC", "quantity": "0.01",
      "price": "20000.05"}, codes.PRICE_NOT_INCREASED_BY_TICK_SIZE),
    ({"symbol": "BTCUSDT", "side": "BUY", "type": "MARKET", "quantity": "0.0001"}, codes.BAD_PRECISION),
    ({"symbol": "BTCUSDT", "side": "BUY", "type": "LIMIT", "quantity": "0.01", "price": "20000"},
     codes.MANDATORY_PARAM_EMPTY_OR_MALFORMED),
    ({"symbol": "BTCUSDT", "side": "UP", "type": "MARKET", "quantity": "0.01"}, codes.INVALID_SIDE),
    ({"symbol": "BTCUSDT", "side": "BUY", "type": "MARKET", "quantity": "0.001"}, codes.MIN_NOTIONAL),
    ({"symbol": "BTCUSDT", "side": "BUY", "type": "MARKET", "quantity": "900"}, codes.MARGIN_NOT_SUFFICIEN),
])
def test_bad_orders_get_binance_errors(params, code):
    async def main():
        async with stack(speed=5) as st:
            await st.start_market()
            await wait_for(lambda: st.feed["BTCUSDT"].synced, 20)
            with pytest.raises(VenueClientError) as exc:
                await st.rest.place_order(**params)
            assert exc.value.code == code and exc.value.status == 400
            with pytest.raises(VenueClientError) as exc:
                await st.ws_api.place_order(**params)
            assert exc.value.code == code

    run(main())


def test_authentication_failures():
    async def main():
        async with stack(speed=1) as st:
            wrong_secret = BinanceRest(st.venue.rest_url, st.session, Credentials(st.rest.creds.api_key, Secret("x")))
            with pytest.raises(VenueClientError) as exc:
                await wrong_secret.balance()
            assert exc.value.code == codes.INVALID_SIGNATURE
            wrong_key = BinanceRest(st.venue.rest_url, st.session, Credentials("nope", Secret("x")))
            with pytest.raises(VenueClientError) as exc:
                await wrong_key.balance()
            assert (exc.value.code, exc.value.status) == (codes.REJECTED_MBX_KEY, 401)
            late = BinanceRest(st.venue.rest_url, st.session, st.rest.creds)
            late.time_offset_ms = -60_000                 # our clock a minute behind the venue's
            with pytest.raises(VenueClientError) as exc:
                await late.balance()
            assert exc.value.code == codes.INVALID_TIMESTAMP
            st.ws_api.now_ms = lambda: 0                  # a timestamp from 1970 over the WebSocket API too
            with pytest.raises(VenueClientError) as exc:
                await st.ws_api.query_order("BTCUSDT", order_id=1)
            assert exc.value.code == codes.INVALID_TIMESTAMP

    run(main())


def test_ed25519_keys_over_rest_and_the_websocket_api():
    from engine.venues.binance.wsapi import WsApi
    from tests.integration.conftest import ed25519_keypair

    pem, pub = ed25519_keypair()

    async def main():
        async with stack(speed=5, ed25519_public_pem=pub) as st:
            creds = Credentials("tapeshot-sim-ed25519", Secret(pem), ed25519=True)
            rest = BinanceRest(st.venue.rest_url, st.session, creds)
            await rest.sync_time()
            await st.start_market()
            await wait_for(lambda: st.feed["BTCUSDT"].synced, 20)
            assert (await rest.balance())[0]["asset"] == "USDT"
            ws = WsApi(st.venue.ws_api_url, st.session, creds, rest.now_ms)
            placed = await ws.place_order(symbol="BTCUSDT", side="BUY", type="MARKET", quantity="0.010")
            assert placed["status"] == "FILLED"
            assert (await rest.query_order("BTCUSDT", order_id=placed["orderId"]))["status"] == "FILLED"
            await ws.close()

    run(main())
