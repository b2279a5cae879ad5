"""Binance's own Python connector (binance-futures-connector), unmodified, against ``tapeshot sim``.

It only needs the base URL: if the sim speaks Binance's protocol, a standard client just works.
"""

from __future__ import annotations

from decimal import Decimal

import pytest

from tests.integration.test_crash import free_port, start

um = pytest.importorskip("binance.um_futures")
error = pytest.importorskip("binance.error")


def test_binance_futures_connector_against_the_sim():
    port = free_port()
    sim = start(["sim", "--port", str(port), "--speed", "5"], "api secret")
    try:
        client = um.UMFutures(key="tapeshot-sim-key", secret="tapeshot-sim-secret", base_url=f"http://127.0.0.1:{port}")
        assert client.time()["serverTime"] > 0
        info = client.exchange_info()
        btc = next(s for s in info["symbols"] if s["symbol"] == "BTCUSDT")
        assert {f["filterType"] for f in btc["filters"]} >= {"PRICE_FILTER", "LOT_SIZE", "MIN_NOTIONAL"}
        for _ in range(50):                                # the tape's own snapshot syncs the sim's book first
            try:
                depth = client.depth("BTCUSDT", limit=5)
                break
            except error.ServerError:
                __import__("time").sleep(0.1)
        bid = Decimal(depth["bids"][0][0])
        resting = client.new_order(symbol="BTCUSDT", side="BUY", type="LIMIT", timeInForce="GTC", quantity=0.01,
                                   price=str(bid - 100), newClientOrderId="third-party-1")
        assert resting["status"] == "NEW"
        assert client.query_order("BTCUSDT", origClientOrderId="third-party-1")["status"] == "NEW"
        assert [o["orderId"] for o in client.get_orders(symbol="BTCUSDT")] == [resting["orderId"]]
        assert client.cancel_order("BTCUSDT", orderId=resting["orderId"])["status"] == "CANCELED"
        market = client.new_order(symbol="BTCUSDT", side="SELL", type="MARKET", quantity=0.02)
        assert market["status"] == "FILLED"
        pos = client.get_position_risk(symbol="BTCUSDT")
        assert Decimal(pos[0]["positionAmt"]) == Decimal("-0.020")
        assert any(b["asset"] == "USDT" for b in client.balance())
        assert client.new_listen_key()["listenKey"]
        with pytest.raises(error.ClientError) as exc:
            client.new_order(symbol="BTCUSDT", side="BUY", type="LIMIT", timeInForce="GTC", quantity=0.01,
                             price="1000.05")
        assert exc.value.error_code == -4014 and exc.value.status_code == 400
        bad = um.UMFutures(key="tapeshot-sim-key", secret="wrong", base_url=f"http://127.0.0.1:{port}")
        with pytest.raises(error.ClientError) as exc:
            bad.balance()
        assert exc.value.error_code == -1022
    finally:
        sim.terminate()
        sim.wait(10)
