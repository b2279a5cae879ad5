"""The order path's pieces, warm: HMAC-SHA256 of an order payload (C with SHA extensions, portable C, the
standard library), the whole ``order.place`` frame from integer units (``ext.orders.OrderWire``) against the
general path (params dict, sort, join, hmac, orjson), and the pre-trade risk check.

The cold end-to-end figure (decision to bytes on a real socket, 1 ms between orders) is ``tapeshot bench``'s
``order_path_us``. Run: ``python -m pytest bench --benchmark-only``.
"""

from __future__ import annotations

import hashlib
import hmac

import orjson
import pytest

from engine.keys import Credentials, Secret
from engine.venues.binance.signing import ws_payload
from ext.orders import Hmac, OrderWire, RiskCore, use_sha_extensions

KEY = "vmPUZE6mv9SD5VNHk4HlWFsOr6aKE2zvsw0MuIgwCIPy6utIco14y7Ju91duEh8A"
SECRET = b"NhqPtmdSJYdKjVHjA7PZj4Mge3R5YNiP1e3UZjInClVN65XAbvqqM6A7H5fATj0j"
PAYLOAD = (f"apiKey={KEY}&newClientOrderId=i7-3&price=67000.1&quantity=0.010&recvWindow=5000&side=BUY"
           "&symbol=BTCUSDT&timeInForce=IOC&timestamp=1700000000000&type=LIMIT").encode()


@pytest.mark.parametrize("impl", ["sha-ni", "portable"])
def test_hmac_c(benchmark, impl):
    if impl == "sha-ni" and not use_sha_extensions(True):
        pytest.skip("no SHA extensions on this CPU")
    use_sha_extensions(impl == "sha-ni")
    try:
        h = Hmac(SECRET)
        benchmark(h.hexdigest, PAYLOAD)
    finally:
        use_sha_extensions(None)


def test_hmac_stdlib(benchmark):
    benchmark(hmac.digest, SECRET, PAYLOAD, hashlib.sha256)


def test_order_frame_c(benchmark):
    wire = OrderWire(KEY, SECRET)
    sym = wire.add_symbol("BTCUSDT", 1, 1, 1, 3)
    benchmark(wire.frame, sym, True, 10, 670001, "IOC", False, "i7-3", 42, 1_700_000_000_000)


def test_order_frame_general_path(benchmark):
    """What the C frame replaced: OrderManager.params' dict, WsApi.signed, orjson."""
    creds = Credentials(KEY, Secret(SECRET))

    def frame():
        p = {"symbol": "BTCUSDT", "side": "BUY", "type": "LIMIT", "newClientOrderId": "i7-3", "quantity": "0.010",
             "price": "67000.1", "timeInForce": "IOC", "apiKey": KEY, "recvWindow": 5000,
             "timestamp": 1_700_000_000_000}
        p["signature"] = creds.sign(ws_payload(p))
        return orjson.dumps({"id": 42, "method": "order.place", "params": p})

    benchmark(frame)


def test_risk_check(benchmark):
    core = RiskCore(250_000.0, 500_000.0, 50, 300.0, 10**9)
    benchmark(core.check, True, 0.01, 67000.1, 67000.0, 0.0, False, True, False, False, 1.0)
