"""The venue is the truth: the sim venue's order and trade history (``allOrders``, ``userTrades`` by order and by
trade id) as Binance documents them, read with the engine's own REST client over real sockets; and the sim's
faults set from the command line (``tapeshot sim --fault/--faults``)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from decimal import Decimal

import orjson
import pytest

from engine.errors import VenueClientError
from engine.loop import run
from engine.venues.binance import codes
from tests.integration.conftest import stack, wait_for


async def _orders(st) -> dict[str, dict]:
    """Three orders of ours (a market fill, a resting limit, a cancelled limit) and a refused one."""
    await st.start_market()
    sf = st.feed["BTCUSDT"]
    await wait_for(lambda: sf.synced, 20)
    await st.rest.sync_time()
    inst = st.venue.ex.instruments["BTCUSDT"]
    far = inst.fmt_price(sf.book.best(0)[0] - 500)
    out = {"filled": await st.rest.place_order(symbol="BTCUSDT", side="BUY", type="MARKET", quantity="0.030",
                                               newClientOrderId="truth-filled"),
           "resting": await st.rest.place_order(symbol="BTCUSDT", side="BUY", type="LIMIT", timeInForce="GTC",
                                                quantity="0.010", price=far, newClientOrderId="truth-resting")}
    cancelled = await st.rest.place_order(symbol="BTCUSDT", side="BUY", type="LIMIT", timeInForce="GTC",
                                          quantity="0.010", price=far, newClientOrderId="truth-cancelled")
    out["cancelled"] = await st.rest.cancel_order("BTCUSDT", order_id=cancelled["orderId"])
    with pytest.raises(VenueClientError) as exc:               # a post-only that would take: rejected, not stored
        await st.rest.place_order(symbol="BTCUSDT", side="BUY", type="LIMIT", timeInForce="GTX", quantity="0.010",
                                  price=inst.fmt_price(sf.book.best(1)[0] + 100), newClientOrderId="truth-gtx")
    assert exc.value.code == codes.GTX_ORDER_REJECT
    out["filled_2"] = await st.rest.place_order(symbol="BTCUSDT", side="SELL", type="MARKET", quantity="0.020",
                                                newClientOrderId="truth-filled-2")
    return out


def test_all_orders_returns_every_order_open_or_final_as_query_order_shows_it():
    async def main():
        async with stack(speed=5) as st:
            placed = await _orders(st)
            ids = [placed[k]["orderId"] for k in ("filled", "resting", "cancelled", "filled_2")]
            every = await st.rest.all_orders("BTCUSDT")
            assert [o["orderId"] for o in every] == ids
            assert [o["status"] for o in every] == ["FILLED", "NEW", "CANCELED", "FILLED"]
            for o in every:                                         # the same JSON as GET /fapi/v1/order
                assert o == await st.rest.query_order("BTCUSDT", order_id=o["orderId"])
            assert "truth-gtx" not in {o["clientOrderId"] for o in every}
            # orderId: that order and the ones after it; limit alone: the most recent
            assert [o["orderId"] for o in await st.rest.all_orders("BTCUSDT", order_id=ids[1])] == ids[1:]
            assert [o["orderId"] for o in await st.rest.all_orders("BTCUSDT", order_id=ids[1], limit=2)] == ids[1:3]
            assert [o["orderId"] for o in await st.rest.all_orders("BTCUSDT", limit=2)] == ids[2:]
            # windows are in the venue's time (the tape's), as the orders' own "time" fields
            t1, t3 = every[1]["time"], every[3]["time"]
            window = await st.rest.all_orders("BTCUSDT", start_ms=t1, end_ms=t3)
            assert [o["orderId"] for o in window] == [o["orderId"] for o in every if t1 <= o["time"] <= t3]
            local = time.time_ns() // 1_000_000                     # the local wall clock is not the venue's
            assert local - every[0]["time"] > 60_000
            assert await st.rest.all_orders("BTCUSDT", start_ms=local - 60_000) == []
            for kw, code in (({"start_ms": t1, "end_ms": t1 + 8 * 86_400_000}, codes.MORE_THAN_XX_HOURS),
                             ({"start_ms": t3, "end_ms": t1 - 1}, codes.START_TIME_GREATER_THAN_END_TIME)):
                with pytest.raises(VenueClientError) as exc:
                    await st.rest.all_orders("BTCUSDT", **kw)
                assert exc.value.code == code
            with pytest.raises(VenueClientError) as exc:
                await st.rest.request("GET", "/fapi/v1/allOrders", {}, signed=True, weight=5)
            assert exc.value.code == codes.MANDATORY_PARAM_EMPTY_OR_MALFORMED

    run(main())


def test_user_trades_by_order_id_and_from_id():
    async def main():
        async with stack(speed=5) as st:
            placed = await _orders(st)
            every = await st.rest.user_trades("BTCUSDT")
            assert every and [t["id"] for t in every] == sorted(t["id"] for t in every)
            for key in ("filled", "filled_2"):
                order = await st.rest.query_order("BTCUSDT", order_id=placed[key]["orderId"])
                mine = await st.rest.user_trades("BTCUSDT", order_id=order["orderId"])
                assert mine and {t["orderId"] for t in mine} == {order["orderId"]}
                assert sum(Decimal(t["qty"]) for t in mine) == Decimal(order["executedQty"])
                assert mine == [t for t in every if t["orderId"] == order["orderId"]]
            assert await st.rest.user_trades("BTCUSDT", order_id=placed["resting"]["orderId"]) == []
            mid = every[len(every) // 2]["id"]
            assert await st.rest.user_trades("BTCUSDT", from_id=mid) == [t for t in every if t["id"] >= mid]
            assert await st.rest.user_trades("BTCUSDT", from_id=every[0]["id"], limit=1) == every[:1]
            assert await st.rest.user_trades("BTCUSDT", limit=1) == every[-1:]
            with pytest.raises(VenueClientError) as exc:
                await st.rest.user_trades("BTCUSDT", start_ms=every[0]["time"], from_id=mid)
            assert exc.value.code == codes.OPTIONAL_PARAMS_BAD_COMBO
            # a window from the local wall clock finds nothing: the venue's times are its own
            assert await st.rest.user_trades("BTCUSDT", start_ms=time.time_ns() // 1_000_000 - 60_000) == []
            assert await st.rest.user_trades("BTCUSDT", start_ms=every[0]["time"]) == every

    run(main())


# ---- `tapeshot sim --fault / --faults` -----------------------------------------------------------------------------

def _tapeshot(*args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "engine.cli", *args], capture_output=True, text=True,
                          timeout=timeout, env={**os.environ, "PYTHONUNBUFFERED": "1"})


@pytest.mark.parametrize("args, words", [
    (["--fault", 'drop_market="false"'], ["drop_market", "true or false"]),
    (["--fault", "reject_orders=-1"], ["reject_orders", "between 0"]),
    (["--fault", "reject_orders=true"], ["reject_orders", "whole number"]),
    (["--fault", "nope=1"], ["unknown fault", "nope"]),
    (["--fault", "ban_s"], ["KEY=VALUE"]),
])
def test_tapeshot_sim_refuses_bad_faults_with_a_clear_message(args, words):
    proc = _tapeshot("sim", "--port", "0", *args)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert proc.stderr.startswith("tapeshot: ") and all(w in proc.stderr for w in words), proc.stderr


def test_tapeshot_sim_refuses_a_bad_faults_file(tmp_path):
    (tmp_path / "f.json").write_text('{"reject_orders": 1.5}')
    (tmp_path / "g.toml").write_text("reject_orders = ")
    for name, word in (("f.json", "whole number"), ("g.toml", "not valid TOML"), ("none.json", "cannot read")):
        proc = _tapeshot("sim", "--faults", str(tmp_path / name))
        assert proc.returncode == 2 and "Traceback" not in proc.stderr and word in proc.stderr, proc.stderr


def test_tapeshot_sim_sets_faults_at_start(tmp_path):
    import urllib.request

    (tmp_path / "f.toml").write_text("reject_orders = 1\nhttp_5xx = 4\n")
    proc = subprocess.Popen([sys.executable, "-m", "engine.cli", "sim", "--port", "0", "--faults",
                             str(tmp_path / "f.toml"), "--fault", "reject_orders=3", "--fault", "reorder_user=2"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONUNBUFFERED": "1"})
    try:
        url = None
        for line in proc.stdout:                                        # the banner names the REST address
            if line.strip().startswith("REST"):
                url = line.split()[-1]
            if line.strip().startswith("faults"):
                break
        assert url, proc.stderr.read() if proc.poll() is not None else "no REST line"
        with urllib.request.urlopen(f"{url}/sim/status", timeout=10) as resp:
            status = orjson.loads(resp.read())
        assert status["faults"]["reject_orders"] == 3 and status["faults"]["http_5xx"] == 4
        assert status["faults"]["reorder_user"] == 2 and status["fault_counts"]["reject_orders"] == 0
    finally:
        proc.terminate()
        proc.wait(timeout=20)
        proc.stdout.close()
        proc.stderr.close()
