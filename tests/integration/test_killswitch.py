"""The KillSwitch with the real engine on the sim venue: every automatic trigger, the action (HALTED, cancel-all
confirmed, flatten, report to journal, bus and metrics), the way out while halted or reducing, and a kill that
reaches the venue while the event loop is blocked (the watchdog thread, against a ``tapeshot sim`` process)."""

from __future__ import annotations

import asyncio
import contextlib
import http.client
import threading
import time
from decimal import Decimal

import orjson
import pytest

from engine.config import Config, EngineConfig, FeedConfig, VenueConfig
from engine.control import ControlClient
from engine.errors import RiskRefused
from engine.loop import run
from engine.metrics import KILLS
from engine.node import Node
from engine.risk import RiskConfig, TradingState
from engine.venues.binance.signing import query_string
from tests.integration.conftest import CREDS, node_with_control, wait_for
from tests.integration.test_crash import free_port
from tests.integration.test_crash import start as start_process

QUIET = {"kill_book_unhealthy_ms": 0, "kill_reject_streak": 0, "kill_unreachable_s": 0.0, "kill_loop_stall_ms": 0}


@contextlib.asynccontextmanager
async def engine(tmp_path, speed: float = 4.0, rest_url: str = "", feed: FeedConfig | None = None, **risk):
    cfg = Config(venue=VenueConfig(speed=speed, rest_url=rest_url), engine=EngineConfig(home=str(tmp_path)),
                 risk=RiskConfig(**{**QUIET, **risk}), feed=feed or FeedConfig())
    async with node_with_control(cfg) as pair:
        yield pair


async def intent(client: ControlClient, text: str) -> list[dict]:
    return [line async for line in client.intent(text)]


async def first_line(client: ControlClient, text: str) -> dict:
    async for line in client.intent(text):
        if line.get("kind") != "submitted":
            return line
    raise AssertionError("no answer")


def mid(node: Node) -> Decimal:
    return Decimal(repr(node.feed["BTCUSDT"].book.mid)) / 10


async def resting(node: Node, client: ControlClient) -> str:
    """A ladder bid resting below the market (limit 0.4 % under the mid), working for 30 s."""
    limit = (mid(node) * Decimal("0.996")).quantize(Decimal("0.1"))
    task = asyncio.create_task(intent(client, f"long btc 0.01 30s ladder cancel limit {limit}"))
    await wait_for(lambda: any(o.state.open for o in node.oms.orders.values()), 20)
    node._bg = task                                             # kept alive until the test ends
    return next(o.client_order_id for o in node.oms.orders.values() if o.state.open)


async def fault(node: Node, url: str | None = None, **kw) -> None:
    async with node.session.post(f"{url or node.venue.rest_url}/sim/faults", json=kw) as r:
        assert r.status == 200, await r.text()


def kills(node: Node) -> list[dict]:
    return [orjson.loads(r["data"]) for r in node.journal.query("SELECT data FROM decisions WHERE kind='kill'")]


async def killed(node: Node, trigger: str, timeout: float = 20.0) -> dict:
    """Waits for a journalled kill by ``trigger``; checks the action's invariants; returns its report."""
    await node.journal.sync()
    await wait_for(lambda: any(k["trigger"] == trigger for k in kills(node)), timeout)
    report = next(k for k in kills(node) if k["trigger"] == trigger)
    assert node.risk.state is TradingState.HALTED and node.risk.core.state == 2
    assert [o for o in await node.rest.open_orders("BTCUSDT") if o["type"] == "LIMIT"] == []
    assert KILLS.get(trigger, 0) >= 1
    return report


def test_a_stale_book_while_orders_work_kills(tmp_path):
    async def main():
        async with engine(tmp_path, feed=FeedConfig(stale_ms=500), kill_book_unhealthy_ms=1000) as (node, client):
            said = []
            node.subscribe(lambda p: said.append(p) if p.kind == "risk" else None)
            cid = await resting(node, client)
            await fault(node, stall_market_ms=6000)
            report = await killed(node, "book")
            assert "stale" in report["reason"] and any(cid in c for c in report["cancelled"])
            assert node.oms.orders[cid].state.value == "CANCELED"
            await wait_for(lambda: any("KILL SWITCH (book)" in p.text and "cancelled" in p.text for p in said), 5)

    run(main())


def test_a_streak_of_venue_rejects_kills(tmp_path):
    async def main():
        async with engine(tmp_path, kill_reject_streak=3) as (node, client):
            await fault(node, reject_orders=10)
            for _ in range(3):
                if kills(node):
                    break
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(intent(client, "long btc 0.01 5s"), 15)
            report = await killed(node, "rejects")
            assert "venue rejects in a row" in report["reason"]

    run(main())


def test_the_market_stream_down_for_n_seconds_kills(tmp_path):
    async def main():
        async with engine(tmp_path, kill_unreachable_s=1.0) as (node, client):
            await resting(node, client)
            node.md.stream.ws_base = f"ws://127.0.0.1:{free_port()}"      # the venue's stream is out of reach
            t0 = time.monotonic()
            await fault(node, drop_market=True)
            report = await killed(node, "unreachable")
            assert "market stream down" in report["reason"] and time.monotonic() - t0 >= 1.0

    run(main())


def test_sustained_loop_lag_kills(tmp_path):
    async def main():
        async with engine(tmp_path, kill_latency_ms=100, kill_latency_s=0.5) as (node, client):
            await resting(node, client)
            loop, end = asyncio.get_running_loop(), time.monotonic() + 4

            def hog() -> None:                                   # a handler that holds the loop 200 ms at a time
                time.sleep(0.2)
                if time.monotonic() < end and not kills(node):
                    loop.call_later(0.01, hog)
            hog()
            report = await killed(node, "latency")
            assert "loop lag" in report["reason"]

    run(main())


def test_a_slow_order_round_trip_kills(tmp_path):
    async def main():
        async with engine(tmp_path, kill_latency_ms=100, kill_latency_s=0.3) as (node, client):
            await fault(node, stall_ms=300)                        # the venue answers every request 300 ms late
            task = asyncio.create_task(intent(client, "long btc 0.01 10s"))
            report = await killed(node, "latency")
            assert "order round trip" in report["reason"]
            await fault(node, stall_ms=0)
            await asyncio.wait_for(task, 20)

    run(main())


def test_the_days_loss_kills_and_flattens_with_one_ioc(tmp_path):
    async def main():
        async with engine(tmp_path, max_daily_loss=Decimal("0.5"), kill_flatten="ioc") as (node, client):
            await wait_for(lambda: node.killswitch.day_open == 0, 5)
            lines = await intent(client, "long btc 0.1 10s")
            assert lines[-1]["data"]["filled"] == "0.100"           # fees alone take the day below -0.5 USDT
            report = await killed(node, "daily_loss")
            assert report["flattened"] and "IOC" in report["flattened"][0] and not report["failed"]
            venue_pos = Decimal((await node.rest.position_risk("BTCUSDT"))[0]["positionAmt"])
            assert venue_pos == node.oms.positions.get("BTCUSDT").qty == 0
            saved = node.journal.query("SELECT value FROM kv WHERE key='killswitch/day'")
            assert saved and orjson.loads(saved[0]["value"])["day"] == node.killswitch.day

    run(main())


def test_a_kill_by_hand_flattens_through_the_timing_machinery(tmp_path):
    async def main():
        async with engine(tmp_path, kill_flatten="timed", kill_flatten_window_s=5) as (node, client):
            await intent(client, "long btc 0.05 10s")
            text = await client.call("POST", "/kill", {"reason": "news"})
            assert "KILL SWITCH (manual)" in text and "flattened: BTCUSDT SELL 0.050/0.050" in text
            assert Decimal((await node.rest.position_risk("BTCUSDT"))[0]["positionAmt"]) == 0

    run(main())


def test_halted_and_reducing_let_the_trader_out_but_not_in(tmp_path):
    async def main():
        async with engine(tmp_path) as (node, client):
            await intent(client, "long btc 0.1 10s")
            sl = (mid(node) * Decimal("0.98")).quantize(Decimal("0.1"))
            await node.submit(f"sl btc {sl}", source="t", user="t")
            text = await client.call("POST", "/kill", {"reason": "test"})
            assert "cancelled:" in text
            # the cancel-all took the stop; it protects a position still open, so it is placed again
            await wait_for(lambda: any(o.purpose == "sl" and o.state.open for o in node.oms.orders.values()), 10)
            types = {o["type"] for o in await node.rest.open_orders("BTCUSDT")}
            assert types == {"STOP_MARKET"}
            with pytest.raises(RiskRefused, match="HALTED"):
                await node.submit("long btc 0.1 10s", source="t", user="t")
            tp = (mid(node) * Decimal("1.02")).quantize(Decimal("0.1"))
            assert "TP BTCUSDT at" in (await node.submit(f"tp btc {tp}", source="t", user="t")).echo
            lines = await intent(client, "flat btc 10s")                 # the way out is open while halted
            assert lines[-1]["kind"] == "done" and lines[-1]["data"]["filled"] == "0.100"
            await client.call("POST", "/resume")
            await intent(client, "long btc 0.05 10s")
            assert "REDUCING" in await client.call("POST", "/reduce", {"reason": "winding down"})
            assert node.risk.core.state == 1
            line = await first_line(client, "short btc 0.05 10s")
            assert "REDUCING" in line.get("error", "")
            lines = await intent(client, "flat btc 10s")
            assert lines[-1]["data"]["filled"] == "0.050"
            assert "trading REDUCING" in await client.call("GET", "/status")

    run(main())


# ---- a kill while the event loop is blocked ------------------------------------------------------------------


class VenuePoller(threading.Thread):
    """Watches the venue from a thread of its own: the wall time at which order ``cid`` left the open orders."""

    def __init__(self, url: str, cid: str) -> None:
        super().__init__(daemon=True)
        host, port = url.removeprefix("http://").split(":")
        self.host, self.port, self.cid = host, int(port), cid
        self.gone_at: float | None = None
        self.stop = False
        self.offset_ms = 0
        self.last: object = None

    def open_ids(self) -> list[str]:
        conn = http.client.HTTPConnection(self.host, self.port, timeout=2)
        try:
            qs = query_string([("symbol", "BTCUSDT"), ("timestamp", int(time.time() * 1000) + self.offset_ms)])
            qs += "&signature=" + CREDS.sign(qs)
            conn.request("GET", f"/fapi/v1/openOrders?{qs}", headers={"X-MBX-APIKEY": CREDS.api_key})
            answer = self.last = orjson.loads(conn.getresponse().read())
            return [o["clientOrderId"] for o in answer] if isinstance(answer, list) else [self.cid]
        finally:
            conn.close()

    def run(self) -> None:
        while not self.stop and self.gone_at is None:
            if self.cid not in self.open_ids():
                self.gone_at = time.monotonic()
            time.sleep(0.025)


@pytest.fixture
def sim_process():
    port = free_port()
    proc = start_process(["sim", "--port", str(port), "--speed", "1"], "api secret")
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(10)


async def blocked_kill(node: Node, client: ControlClient, url: str, request_kill_after: float | None) -> dict:
    """A resting order; the loop blocked 5 s by a handler; optionally a kill requested from another thread
    ``request_kill_after`` s into the block. Returns the timings (s) measured from the venue's side."""
    cid = await resting(node, client)
    await wait_for(lambda: node.watchdog.working, 2)          # the last heartbeat saw the order working
    poller = VenuePoller(url, cid)
    poller.offset_ms = node.rest.time_offset_ms
    poller.start()
    marks: dict[str, float] = {}
    if request_kill_after is not None:
        def from_thread() -> None:
            time.sleep(request_kill_after)
            marks["kill"] = time.monotonic()
            node.watchdog.request("manual", "kill from another thread while the loop is stuck")
        threading.Thread(target=from_thread, daemon=True).start()
    marks["block"] = time.monotonic()
    time.sleep(5)                                               # the stuck handler, on the loop itself
    marks["unblocked"] = time.monotonic()
    try:
        await wait_for(lambda: poller.gone_at is not None, 10)
    except AssertionError:
        raise AssertionError(f"not cancelled: watchdog {node.watchdog.fired} pending {node.watchdog.pending} "
                             f"kills {kills(node)} venue {poller.last}") from None
    poller.stop = True
    marks["gone"] = poller.gone_at
    return marks


def test_a_loop_stall_while_orders_work_is_cancelled_from_the_watchdog_thread(tmp_path, sim_process):
    async def main():
        async with engine(tmp_path, speed=1.0, rest_url=sim_process, kill_loop_stall_ms=500,
                          kill_watchdog_ms=200) as (node, client):
            m = await blocked_kill(node, client, sim_process, None)
            stall_to_cancel = m["gone"] - (m["block"] + 0.5)
            print(f"\nloop blocked at 0; loop_stall kill at 0.5 s; order gone at the venue "
                  f"{m['gone'] - m['block']:.3f} s: {stall_to_cancel * 1000:.0f} ms after the kill")
            assert m["gone"] < m["unblocked"] and stall_to_cancel < 1.0
            report = await killed(node, "loop_stall")
            assert report["watchdog"] and report["watchdog"][0]["status"] == 200
            assert report["watchdog"][0]["open_after"] == 0

    run(main())


def test_a_kill_from_another_thread_reaches_the_venue_while_the_loop_is_blocked(tmp_path, sim_process):
    async def main():
        async with engine(tmp_path, speed=1.0, rest_url=sim_process, kill_watchdog_ms=300) as (node, client):
            m = await blocked_kill(node, client, sim_process, 1.0)
            took = m["gone"] - m["kill"]
            print(f"\nkill requested 1.0 s into a 5 s block; order gone at the venue {took * 1000:.0f} ms later")
            assert m["gone"] < m["unblocked"] and took < 1.0
            report = await killed(node, "manual")
            assert report["watchdog"][0]["ms"] < 1000

    run(main())


def test_the_days_peak_survives_a_restart(tmp_path, sim_process):
    async def main():
        async with engine(tmp_path, speed=1.0, rest_url=sim_process) as (node, _):
            await wait_for(lambda: node.killswitch.day != "", 5)
            node.killswitch.peak = Decimal("123.45")               # a peak made earlier today
            await wait_for(lambda: node.journal.query(
                "SELECT value FROM kv WHERE key='killswitch/day' AND value LIKE '%123.45%'"), 5)
            day = node.killswitch.day
        async with engine(tmp_path, speed=1.0, rest_url=sim_process) as (node, _):
            assert node.killswitch.day == day and node.killswitch.peak == Decimal("123.45")

    run(main())


def test_kills_are_counted_per_trigger_in_metrics(tmp_path):
    async def main():
        from prometheus_client import CollectorRegistry, generate_latest

        from engine.metrics import NodeCollector

        async with engine(tmp_path) as (node, client):
            await client.call("POST", "/kill", {"reason": "drill"})
            reg = CollectorRegistry()
            reg.register(NodeCollector(node))
            text = generate_latest(reg).decode()
            assert 'tapeshot_kills_total{trigger="manual"}' in text

    run(main())



def test_a_slow_feed_trips_the_latency_trigger(tmp_path, monkeypatch):
    """Market events reaching the engine 400 ms after their exchange time, sustained: the latency trigger kills.
    The embedded sim is given a 400 ms feed latency (its event times stay the recorded ones)."""
    import engine.venues.sim as sim
    from engine.config import Config, EngineConfig, VenueConfig
    from engine.loop import run as run_loop
    from engine.node import Node
    from engine.risk import RiskConfig, TradingState
    from engine.venues.sim import SimConfig

    real = sim.SimExchange
    monkeypatch.setattr(sim, "SimExchange", lambda files: real(files, cfg=SimConfig(feed_latency="fixed:400")))

    async def main() -> None:
        cfg = Config(venue=VenueConfig(speed=2.0), engine=EngineConfig(home=str(tmp_path)),
                     risk=RiskConfig(kill_latency_ms=200, kill_latency_s=1.0))
        node = Node(cfg)
        await node.start()
        try:
            assert 0.3 < node.feed_latency_s() < 1.5, node.feed_latency_s()
            for _ in range(100):
                if node.risk.state is TradingState.HALTED:
                    break
                await asyncio.sleep(0.05)
            assert node.risk.state is TradingState.HALTED and "feed latency" in (node.killswitch.tripped or "")
        finally:
            await node.stop()
    run_loop(main())
