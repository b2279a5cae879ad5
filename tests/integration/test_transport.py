"""Both WebSocket transports over real loopback sockets: the market stream, the WebSocket API, the synchronous
order path. No timed assertions: what is checked is what arrives, in what order, and what the venue answers."""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
from collections.abc import Callable
from decimal import Decimal

import aiohttp
import picows
import pytest
from picows import WSCloseCode, WSMsgType

from engine.bench import load_tape
from engine.errors import VenueClientError, VenueServerError
from engine.loop import run
from engine.oms.journal import Journal
from engine.oms.manager import OrderManager
from engine.oms.orders import Order, OState
from engine.venues.binance import codes
from engine.venues.binance.fastws import PicowsMarketStream, PicowsWsApi
from engine.venues.binance.gateway import OrderGateway
from engine.venues.binance.streams import MarketStream
from engine.venues.binance.transport import (
    market_stream_class,
    ws_api_class,
)
from engine.venues.binance.wsapi import WsApi
from ext.feed import Feed
from ext.orders import GATE_DUPLICATE, GATE_NOT_CONNECTED, GATE_SENT, RiskCore
from tests.integration.conftest import CREDS, stack, wait_for

KINDS = ["picows", "aiohttp"]


# ---- a scripted loopback server -------------------------------------------------------------------------------


class _Conn(picows.WSListener):
    def __init__(self, server: _Server) -> None:
        super().__init__()
        self.server = server

    def on_ws_connected(self, transport: picows.WSTransport) -> None:
        self.server.connections.append(transport)
        asyncio.get_running_loop().create_task(self.server.script(transport, len(self.server.connections)))


class _Server:
    """A picows server that runs ``script(transport, nth_connection)`` for every client."""

    def __init__(self, script: Callable) -> None:
        self.script = script
        self.connections: list[picows.WSTransport] = []
        self._server: asyncio.Server | None = None
        self.url = ""

    async def __aenter__(self) -> _Server:
        self._server = await picows.ws_create_server(lambda _req: _Conn(self), "127.0.0.1", 0)
        self.url = f"ws://127.0.0.1:{self._server.sockets[0].getsockname()[1]}"
        return self

    async def __aexit__(self, *exc: object) -> None:
        for tr in self.connections:
            tr.disconnect()
        self._server.close()


def _send(tr: picows.WSTransport, i: int, data: bytes) -> None:
    """Message ``i`` as Binance might frame it: mostly one TEXT frame, some BINARY, some in three fragments."""
    if i % 11 == 5 and len(data) > 3:
        a, b = len(data) // 3, 2 * len(data) // 3
        tr.send(WSMsgType.TEXT, data[:a], fin=False)
        tr.send(WSMsgType.CONTINUATION, data[a:b], fin=False)
        tr.send(WSMsgType.CONTINUATION, data[b:], fin=True)
    elif i % 7 == 3:
        tr.send(WSMsgType.BINARY, data)
    else:
        tr.send(WSMsgType.TEXT, data)
    if i % 500 == 0:
        tr.send_ping(b"hb")


async def _with_stream(kind: str, url: str, on_raw: Callable[[bytes], None], body: Callable, **kw) -> None:
    async with aiohttp.ClientSession() as session:
        stream = market_stream_class(kind)(url, ["btcusdt@depth@0ms"], session, on_raw, **kw)
        task = asyncio.create_task(stream.run())
        try:
            await body(stream)
        finally:
            await stream.close()
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task


# ---- the market stream ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", KINDS)
def test_the_recorded_stream_arrives_byte_for_byte_in_order_and_the_book_holds(kind):
    tape = load_tape(None)
    feed = Feed(tape.instruments)
    got: list[bytes] = []

    def on_raw(data: bytes) -> None:
        got.append(data)
        feed.on_message(data)

    async def script(tr: picows.WSTransport, _nth: int) -> None:
        for i, m in enumerate(tape.messages):
            _send(tr, i, m)
            if i % 200 == 0:
                await asyncio.sleep(0)

    async def main() -> None:
        async with _Server(script) as srv:
            async def body(stream):
                await wait_for(lambda: len(got) == len(tape.messages), 30)
                assert stream.messages == len(tape.messages)
            await _with_stream(kind, srv.url, on_raw, body)

    run(main())
    assert got == tape.messages
    sf = feed.symbols[0]
    assert sf.synced and sf.ticker_checks > 300
    assert sf.ticker_mismatches == 0 and sf.n_gaps == 0 and sf.n_bad == 0


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("drop", ["close_frame", "abort"])
def test_reconnects_after_the_server_drops_and_calls_on_connect_first_each_time(kind, drop):
    messages = load_tape(None).messages[:40]
    events: list[str] = []

    async def on_connect() -> None:
        events.append("connect")
        await asyncio.sleep(0.01)                 # messages arriving meanwhile wait for it

    async def script(tr: picows.WSTransport, nth: int) -> None:
        for i, m in enumerate(messages[:20] if nth == 1 else messages[20:]):
            _send(tr, i, m)
        if nth == 1:
            await asyncio.sleep(0.05)
            if drop == "close_frame":
                tr.send_close(WSCloseCode.GOING_AWAY, b"maintenance")
            else:
                tr.disconnect(graceful=False)

    async def main() -> None:
        async with _Server(script) as srv:
            async def body(stream):
                await wait_for(lambda: events.count("msg") == 40, 20)
                assert stream.connects == 2 and stream.disconnects == 1 and stream.connected.is_set()
            await _with_stream(kind, srv.url, lambda data: events.append("msg"), body, on_connect=on_connect,
                               backoff_s=0.01)

    run(main())
    assert events == ["connect"] + ["msg"] * 20 + ["connect"] + ["msg"] * 20


def test_selection_switch():
    assert market_stream_class("picows") is PicowsMarketStream and market_stream_class("aiohttp") is MarketStream
    assert ws_api_class("picows") is PicowsWsApi and ws_api_class("aiohttp") is WsApi
    with pytest.raises(ValueError, match=r"venue\.transport"):
        ws_api_class("websockets")


# ---- the WebSocket API ----------------------------------------------------------------------------------------


def test_signing_matches_the_aiohttp_client():
    params = {"symbol": "BTCUSDT", "side": "BUY", "type": "LIMIT", "quantity": "0.010", "price": "27000.0",
              "timeInForce": "IOC", "reduceOnly": True, "newClientOrderId": "x1", "stopPrice": None}
    a = WsApi("ws://127.0.0.1:1", None, CREDS, lambda: 1_700_000_000_000).signed(params)
    b = PicowsWsApi("ws://127.0.0.1:1", None, CREDS, lambda: 1_700_000_000_000).signed(params)
    assert a == b and "stopPrice" not in b


def _comparable(answer: dict) -> dict:
    return {k: v for k, v in answer.items() if k not in ("orderId", "clientOrderId", "time", "updateTime")}


async def _session_script(api: WsApi, price: str) -> list:
    """Place, query and cancel a resting order, then place a bad one: what each step returned or raised."""
    out: list = []
    placed = await api.place_order(symbol="BTCUSDT", side="SELL", type="LIMIT", timeInForce="GTX",
                                   quantity="0.010", price=price)
    out.append(_comparable(placed))
    out.append(_comparable(await api.query_order("BTCUSDT", order_id=placed["orderId"])))
    out.append(_comparable(await api.cancel_order("BTCUSDT", order_id=placed["orderId"])))
    try:
        await api.place_order(symbol="BTCUSDT", side="BUY", type="LIMIT", timeInForce="GTC", quantity="0.0101",
                              price=price)
    except VenueClientError as exc:
        out.append((exc.code, exc.status))
    await api.close()
    return out


def test_picows_ws_api_answers_exactly_as_the_aiohttp_one_on_the_sim_venue():
    async def main():
        async with stack(speed=20) as st:
            await st.start_market()
            sf = st.feed["BTCUSDT"]
            await wait_for(lambda: sf.synced, 20)
            await st.rest.sync_time()
            price = st.venue.ex.instruments["BTCUSDT"].fmt_price(sf.book.best(1)[0] + 500)
            fast = PicowsWsApi(st.venue.ws_api_url, None, CREDS, st.rest.now_ms, st.rest.limiter)
            ours = await _session_script(fast, price)
            theirs = await _session_script(st.ws_api, price)
            assert ours == theirs and len(ours) == 4 and ours[0]["status"] == "NEW"
            assert ours[2]["status"] == "CANCELED" and isinstance(ours[3], tuple) and ours[3][1] == 400
            assert fast.drops == 1                          # closed by us at the end of the script

    run(main())


def test_no_connection_is_a_not_sent_error():
    async def main():
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]                      # bound, not listening: connection refused
            api = PicowsWsApi(f"ws://127.0.0.1:{port}", None, CREDS, lambda: 0)
            with pytest.raises(VenueServerError) as err:
                await api.place_order(symbol="BTCUSDT", side="BUY", type="MARKET", quantity="0.001")
            assert err.value.sent is False and err.value.code == codes.DISCONNECTED
            fut = api.send_now("order.status", {"symbol": "BTCUSDT", "orderId": 1})
            with pytest.raises(VenueServerError) as err:
                await fut
            assert err.value.sent is False

    run(main())


def _peek_frame(sock: socket.socket) -> bytes:
    """The first client frame waiting in the server's receive buffer, unmasked, without consuming it."""
    raw = sock.recv(1 << 16, socket.MSG_PEEK | socket.MSG_DONTWAIT)
    n, at = raw[1] & 0x7F, 2
    if n == 126:
        n, at = int.from_bytes(raw[2:4], "big"), 4
    elif n == 127:
        n, at = int.from_bytes(raw[2:10], "big"), 10
    mask, body = raw[at:at + 4], raw[at + 4:at + 4 + n]
    return bytes(b ^ mask[i % 4] for i, b in enumerate(body))


def test_send_now_has_the_bytes_on_the_socket_before_it_returns():
    async def script(_tr: picows.WSTransport, _nth: int) -> None:
        """Nothing: the test reads the server's socket itself."""

    async def main():
        async with _Server(script) as srv:
            api = PicowsWsApi(srv.url, None, CREDS, lambda: 1_700_000_000_000)
            await api.connect()
            await wait_for(lambda: len(srv.connections) == 1, 5)
            server_sock = srv.connections[0].underlying_transport.get_extra_info("socket")
            with socket.socket(fileno=os.dup(server_sock.fileno())) as peek:
                fut = api.send_now("order.place", {"symbol": "BTCUSDT", "side": "BUY", "type": "MARKET",
                                                   "quantity": "0.001"}, weight=0, orders=1)
                frame = _peek_frame(peek)                  # no await since send_now: the loop has not run
            assert b'"method":"order.place"' in frame and b'"signature":"' in frame
            assert not fut.done()
            await api.close()
            with pytest.raises(VenueServerError):
                await fut                                  # the connection went with no answer: outcome unknown

    run(main())


# ---- the synchronous order path -------------------------------------------------------------------------------


async def _picows_oms(st, tmp_path, on_order) -> tuple:
    """The sim's BTCUSDT feed synced, a picows WebSocket API session and an OMS over it with a journal."""
    await st.start_market()
    sf = st.feed["BTCUSDT"]
    await wait_for(lambda: sf.synced, 20)
    await st.rest.sync_time()
    inst = st.venue.ex.instruments["BTCUSDT"]
    api = PicowsWsApi(st.venue.ws_api_url, None, CREDS, st.rest.now_ms, st.rest.limiter)
    await api.connect()
    journal = Journal(tmp_path / "j.sqlite")
    journal.start()
    oms = OrderManager(OrderGateway(st.rest, api), journal, {"BTCUSDT": inst}, on_order, st.rest.now_ms)
    return sf, inst, api, journal, oms


def test_submit_now_moves_orders_as_submit_does_and_falls_back_to_rest_when_nothing_was_sent(tmp_path):
    async def main():
        async with stack(speed=20) as st:
            seen: list[tuple[str, str]] = []
            sf, inst, api, journal, oms = await _picows_oms(
                st, tmp_path, lambda o, f: seen.append((o.client_order_id, o.state.value)))
            far = inst.ticks_to_price(sf.book.best(0)[0] - 2000)

            def order(cid: str, tif: str) -> Order:
                return Order(cid, "BTCUSDT", "BUY", "LIMIT", Decimal("0.010"), far, tif, purpose="entry")

            ioc = order("sn-ioc", "IOC")
            done = oms.submit_now(ioc)
            assert ioc.state is OState.SUBMITTED and api.last_write_ns > 0
            assert await done is ioc and ioc.state is OState.EXPIRED
            rest_ = order("sn-rest", "GTC")
            await oms.submit_now(rest_)
            assert rest_.state is OState.ACKNOWLEDGED and oms.open_count == 1
            await oms.cancel("sn-rest")
            assert rest_.state is OState.CANCELED and oms.open_count == 0
            assert seen[:3] == [("sn-ioc", "SUBMITTED"), ("sn-ioc", "EXPIRED"), ("sn-rest", "SUBMITTED")]

            dead = PicowsWsApi("ws://127.0.0.1:1/ws-fapi/v1", None, CREDS, st.rest.now_ms)
            oms.gateway = OrderGateway(st.rest, dead)
            via_rest = order("sn-fallback", "IOC")
            await oms.submit_now(via_rest)
            assert via_rest.state is OState.EXPIRED and oms.gateway.fallbacks == 1
            await api.close()
            journal.close()

    run(main())



def test_order_gate_sends_through_the_oms_and_yields_when_disconnected(tmp_path):
    """The node's one-call path: ``OrderGate.fire`` (risk + order.place in C) then ``OrderManager.fired``; the venue
    answers the request the gate sent; after a drop the gate sends nothing and the general path reconnects."""
    async def main():
        async with stack(speed=20) as st:
            sf, inst, api, journal, oms = await _picows_oms(st, tmp_path, lambda o, f: None)
            gate = oms.gate(inst, sf, oms.positions.get("BTCUSDT"), RiskCore(1e9, 1e9, 50, 300.0, 100), 10**12)
            far = sf.book.best(0)[0] - 2000
            lots = inst.qty_to_lots(Decimal("0.010"))
            assert gate.fire(True, lots, far, "IOC", False, "g-ioc", sf.last_book_ns) == GATE_SENT
            done = oms.fired(inst, True, lots, far, "IOC", False, "g-ioc", gate.rid)
            o = oms.orders["g-ioc"]
            assert o.state is OState.SUBMITTED and o.price == inst.ticks_to_price(far)
            assert api.last_write_ns > 0
            assert await asyncio.wait_for(done, 10) is o and o.state is OState.EXPIRED
            assert gate.fire(True, lots, far, "IOC", False, "g-ioc", sf.last_book_ns) == GATE_DUPLICATE
            await api.close()
            assert gate.fire(True, lots, far, "IOC", False, "g-late", sf.last_book_ns) == GATE_NOT_CONNECTED
            late = oms.place_now(inst, True, lots, far, "IOC", False, "g-late")
            assert (await asyncio.wait_for(late, 10)).state is OState.EXPIRED
            assert api.connected                            # the general path connected again
            await api.close()
            journal.close()

    run(main())



def test_picows_ws_api_signs_with_ed25519_keys_too():
    from engine.keys import Credentials, Secret
    from tests.integration.conftest import ed25519_keypair

    pem, pub = ed25519_keypair()

    async def main():
        async with stack(speed=5, ed25519_public_pem=pub) as st:
            await st.start_market()
            await wait_for(lambda: st.feed["BTCUSDT"].synced, 20)
            await st.rest.sync_time()
            api = PicowsWsApi(st.venue.ws_api_url, None, Credentials("tapeshot-sim-ed25519", Secret(pem), True),
                              st.rest.now_ms)
            await api.connect()
            placed = await api.place_order_now({"symbol": "BTCUSDT", "side": "BUY", "type": "MARKET",
                                                "quantity": "0.010"})
            assert placed["status"] == "FILLED"
            await api.close()

    run(main())


@pytest.mark.parametrize("kind", KINDS)
def test_the_wire_to_decision_harness_measures_every_depth_message_from_a_spawned_sender(kind):
    """``tapeshot bench``'s wire -> decision harness end to end, on a short stretch of the bundled tape: a sender
    spawned (not forked) on the engine's core, each message acked, every depth diff measured."""
    from engine.latency_bench import wire_to_decision

    tape = load_tape(None)
    for poll in (False, True):                        # the receiver sleeping, then polling as during an intent
        res = wire_to_decision(kind, tape.messages, 300, instruments=tape.instruments, poll=poll)
        assert 0 < res["p50"] <= res["p99"] < 1e6
