"""Hostile input over real sockets changes nothing.

- The sim venue answers every malformed REST request with a Binance-shaped 4xx (``{"code", "msg"}``), never a
  500; malformed WebSocket API requests get an error answer (with their id when they have one) and the
  connection lives; a market ``SUBSCRIBE`` with non-list params gets an error and the connection lives.
- The engine's WebSocket API readers (aiohttp and picows) count and skip malformed answers and live on.
- The real engine on its embedded sim: malformed user-data frames sent down its user stream are counted and
  skipped, the stream lives (no reconnect) and still delivers the next intent's fills; ``/preview`` and
  ``/intent`` answer hostile intents with a clear JSON error and never hold the loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest
from aiohttp import web
from yarl import URL

from engine.errors import VenueClientError, VenueServerError
from engine.feed.recording import sample_path
from engine.keys import Credentials, Secret
from engine.loop import run
from engine.venues.binance import codes
from engine.venues.binance.fastws import PicowsWsApi
from engine.venues.binance.signing import ws_payload
from engine.venues.binance.wsapi import WsApi
from engine.venues.sim import SimExchange
from engine.venues.sim.auth import Limits
from engine.venues.sim.server import DEFAULT_API_KEY, DEFAULT_API_SECRET, SimVenue, SimVenueConfig
from tests.integration.conftest import wait_for
from tests.integration.test_idempotency import engine

UNLIMITED = Limits(weight_per_min=10**9, orders_per_10s=10**9, orders_per_min=10**9)
HEADERS = {"X-MBX-APIKEY": DEFAULT_API_KEY}


def _sign(payload: str) -> str:
    return hmac.new(DEFAULT_API_SECRET.encode(), payload.encode(), hashlib.sha256).hexdigest()


def signed_qs(qs: str) -> str:
    """``qs`` with a fresh timestamp and its HMAC signature, as the engine's REST client sends it."""
    qs = (qs + "&" if qs else "") + f"timestamp={time.time_ns() // 1_000_000}"
    return qs + "&signature=" + _sign(qs)


def signed_params(params: dict[str, Any]) -> dict[str, Any]:
    """WebSocket API params with apiKey, timestamp and signature."""
    p = {**params, "apiKey": DEFAULT_API_KEY, "timestamp": time.time_ns() // 1_000_000}
    p["signature"] = _sign(ws_payload(p))
    return p


@contextlib.asynccontextmanager
async def sim() -> AsyncIterator[tuple[SimVenue, aiohttp.ClientSession]]:
    venue = SimVenue(SimExchange([sample_path()]), SimVenueConfig(speed=10.0, limits=UNLIMITED))
    await venue.start()
    try:
        async with aiohttp.ClientSession() as session:
            while (await rest(session, venue, "GET", "/fapi/v1/depth", "symbol=BTCUSDT&limit=5"))[0] == 503:
                await asyncio.sleep(0.01)       # the recorded book syncs in its first ~0.16 s of tape
            yield venue, session
    finally:
        await venue.stop()


async def rest(session: aiohttp.ClientSession, venue: SimVenue, method: str, path: str, qs: str = "",
               body: bytes | None = None) -> tuple[int, Any]:
    url = URL(f"{venue.rest_url}{path}{'?' + qs if qs else ''}", encoded=True)    # the bytes as signed
    async with session.request(method, url, data=body, headers=HEADERS) as resp:
        return resp.status, orjson.loads(await resp.read())


def binance_4xx(status: int, body: Any) -> bool:
    return 400 <= status < 500 and isinstance(body, dict) and set(body) == {"code", "msg"} \
        and type(body["code"]) is int and body["code"] < 0 and isinstance(body["msg"], str)


# ---- the sim venue's REST ----------------------------------------------------------------------------------------

ORDER = "symbol=BTCUSDT&side=BUY&type=LIMIT&timeInForce=GTC&price=20000.0&quantity="


def hostile_rest() -> list[tuple[str, str, Callable[[], str], bytes | None, int]]:
    """(method, path, query maker, body, Binance code) for each hostile request of the issue."""
    ts = lambda: f"timestamp={time.time_ns() // 1_000_000}"  # noqa: E731
    return [
        ("GET", "/fapi/v1/depth", lambda: "symbol=BTCUSDT&limit=%C2%B2", None, codes.INVALID_PARAMETER),
        ("GET", "/fapi/v1/depth", lambda: "symbol=BTCUSDT&limit=" + "9" * 40, None, codes.INVALID_PARAMETER),
        ("GET", "/fapi/v1/openOrders", lambda: ts() + "&signature=%C3%A9", None, codes.INVALID_SIGNATURE),
        ("GET", "/fapi/v1/openOrders", lambda: ts() + "&signature=%FF%FE", None, codes.INVALID_SIGNATURE),
        ("POST", "/fapi/v1/order", lambda: "", b"symbol=BTCUSDT&side=\xff\xfe&" + ts().encode(), codes.ILLEGAL_CHARS),
        ("POST", "/fapi/v1/order", lambda: signed_qs(ORDER + "9" * 29), None,
         codes.MANDATORY_PARAM_EMPTY_OR_MALFORMED),
        ("POST", "/fapi/v1/order", lambda: signed_qs(ORDER.replace("20000.0", "9" * 29) + "0.010"), None,
         codes.MANDATORY_PARAM_EMPTY_OR_MALFORMED),
        ("POST", "/fapi/v1/order", lambda: signed_qs(ORDER + "1e3"), None, codes.MANDATORY_PARAM_EMPTY_OR_MALFORMED),
        ("POST", "/fapi/v1/order", lambda: signed_qs(ORDER + "%D9%A1"), None,
         codes.MANDATORY_PARAM_EMPTY_OR_MALFORMED),
        ("POST", "/fapi/v1/countdownCancelAll", lambda: signed_qs("symbol=BTCUSDT&countdownTime=-1"), None,
         codes.INVALID_PARAMETER),
        ("POST", "/fapi/v1/countdownCancelAll", lambda: signed_qs("symbol=BTCUSDT&countdownTime=" + "9" * 25), None,
         codes.MANDATORY_PARAM_EMPTY_OR_MALFORMED),
        ("POST", "/fapi/v1/countdownCancelAll", lambda: signed_qs("symbol=BTCUSDT&countdownTime=%C2%B2"), None,
         codes.MANDATORY_PARAM_EMPTY_OR_MALFORMED),
        ("GET", "/fapi/v1/allOrders", lambda: signed_qs("symbol=BTCUSDT&startTime=%C2%B2"), None,
         codes.MANDATORY_PARAM_EMPTY_OR_MALFORMED),
        ("GET", "/fapi/v1/order", lambda: signed_qs("symbol=BTCUSDT&orderId=1.5"), None,
         codes.MANDATORY_PARAM_EMPTY_OR_MALFORMED),
    ]


def test_hostile_rest_requests_answer_binance_shaped_4xx() -> None:
    async def main() -> None:
        async with sim() as (venue, session):
            for method, path, qs, body, code in hostile_rest():
                query = qs()
                status, answer = await rest(session, venue, method, path, query, body)
                assert binance_4xx(status, answer), (path, query, status, answer)
                assert answer["code"] == code, (path, query, answer)
            for _ in range(100):                                       # the venue serves on (once its book is up)
                status, answer = await rest(session, venue, "GET", "/fapi/v1/depth", "symbol=BTCUSDT&limit=5")
                if status != 503:
                    break
                await asyncio.sleep(0.1)
            assert status == 200 and len(answer["bids"]) == 5

    run(main())


def test_an_order_before_the_book_is_up_is_a_binance_503_not_a_crash() -> None:
    """A venue that cannot serve yet says so as Binance does (503, code -1000): a failure the client may retry."""
    async def main() -> None:
        venue = SimVenue(SimExchange([sample_path()]), SimVenueConfig(speed=0.001, limits=UNLIMITED))
        await venue.start()
        try:
            async with aiohttp.ClientSession() as session:
                status, answer = await rest(session, venue, "POST", "/fapi/v1/order",
                                            signed_qs(ORDER + "0.010"))
        finally:
            await venue.stop()
        assert status == 503 and answer == {"code": -1000, "msg": "Service Unavailable."}

    run(main())


ENDPOINTS = [("POST", "/fapi/v1/order"), ("DELETE", "/fapi/v1/order"), ("GET", "/fapi/v1/order"),
             ("GET", "/fapi/v1/openOrders"), ("GET", "/fapi/v1/openOrder"), ("DELETE", "/fapi/v1/allOpenOrders"),
             ("POST", "/fapi/v1/countdownCancelAll"), ("GET", "/fapi/v2/positionRisk"),
             ("GET", "/fapi/v3/positionRisk"), ("GET", "/fapi/v1/userTrades"), ("GET", "/fapi/v1/allOrders"),
             ("POST", "/fapi/v1/leverage"), ("GET", "/fapi/v1/commissionRate")]
PARAMS = ["symbol", "side", "type", "timeInForce", "price", "quantity", "stopPrice", "reduceOnly", "closePosition",
          "newClientOrderId", "orderId", "origClientOrderId", "countdownTime", "startTime", "endTime", "fromId",
          "limit", "leverage", "recvWindow"]
VALUES = ["%C2%B2", "-1", "9" * 29, "1e999999", "NaN", "%FF", "%00", "true", "", "0.1.2", "%D9%A1%D9%A2"]
BASE = "symbol=BTCUSDT&side=BUY&type=LIMIT&timeInForce=GTC&price=20000.0&quantity=0.010&orderId=1&countdownTime=0"


def test_every_signed_endpoint_answers_every_hostile_value_with_a_4xx_or_success() -> None:
    """Each endpoint, each parameter replaced by each hostile value, signed correctly: never a 500."""
    async def main() -> None:
        async with sim() as (venue, session):
            seen: dict[int, int] = {}
            for method, path in ENDPOINTS:
                for name in PARAMS:
                    for value in VALUES:
                        kept = "&".join(p for p in BASE.split("&") if not p.startswith(name + "="))
                        status, answer = await rest(session, venue, method, path, signed_qs(f"{kept}&{name}={value}"))
                        seen[status] = seen.get(status, 0) + 1
                        assert status < 500, (method, path, name, value, status, answer)
                        assert status == 200 or binance_4xx(status, answer), (path, name, value, answer)
            assert set(seen) >= {200, 400}

    run(main())


def test_a_wrongly_typed_fault_request_is_refused_and_changes_nothing() -> None:
    async def main() -> None:
        async with sim() as (venue, session):
            before = venue.faults.as_dict()
            for body in (b'{"drop_market": "false"}', b'{"skip_diffs": "3"}', b'{"skip_diffs": 1.5}',
                         b'{"skip_diffs": true}', b'{"stall_ms": -1}', b'{"nope": 1}', b"[1]", b"\xff", b"",
                         b'{"http_5xx": 1e400}', b'"drop_market"', b'{"ban_s": 99999999999}'):
                async with session.post(f"{venue.rest_url}/sim/faults", data=body) as resp:
                    answer = orjson.loads(await resp.read())
                assert binance_4xx(resp.status, answer), (body, resp.status, answer)
            assert venue.faults.as_dict() == before

    run(main())


# ---- the sim venue's WebSocket API and market streams ---------------------------------------------------------

def hostile_ws_api() -> list[tuple[str, Any, int]]:
    """(frame, the id the answer must carry, the status it must have)."""
    status = {"symbol": "BTCUSDT", "orderId": 1}
    bad_sig = {**signed_params(status), "signature": 12345}
    return [
        ("not json", None, 400),
        ("[1, 2]", None, 400),
        ('"order.status"', None, 400),
        ('{"method": "order.status", "params": {}}', None, 401),
        ('{"id": 3}', 3, 400),
        ('{"id": "x-4", "method": 5}', "x-4", 400),
        ('{"id": 5, "method": "order.status", "params": [1]}', 5, 400),
        ('{"id": 6, "method": "order.status", "params": "x"}', 6, 400),
        ('{"id": 7, "method": "no.such.method", "params": {}}', 7, 400),
        (orjson.dumps({"id": 8, "method": "order.status", "params": bad_sig}).decode(), 8, 400),
        (orjson.dumps({"id": 9, "method": "order.status", "params": {**signed_params(status), "signature": "é"}})
         .decode(), 9, 400),
        (orjson.dumps({"id": 10, "method": "order.place", "params": signed_params(
            {"symbol": "BTCUSDT", "side": "BUY", "type": "MARKET", "quantity": "9" * 29})}).decode(), 10, 400),
        (orjson.dumps({"id": 11, "method": "order.place", "params": signed_params(
            {"symbol": ["BTCUSDT"], "side": {}, "type": [], "quantity": 1})}).decode(), 11, 400),
        (orjson.dumps({"id": 12, "method": "order.cancel", "params": signed_params(
            {"symbol": "BTCUSDT", "origClientOrderId": ["x"]})}).decode(), 12, 400),
        (orjson.dumps({"id": 13, "method": "order.place", "params": signed_params(
            {"symbol": "BTCUSDT", "side": "BUY", "type": ["LIMIT"], "timeInForce": ["GTC"], "price": "1",
             "quantity": "1"})}).decode(), 13, 400),
        (orjson.dumps({"id": [14], "method": "order.status", "params": signed_params(status)}).decode(), [14], 400),
    ]


def test_malformed_ws_api_requests_get_an_answer_and_the_connection_lives() -> None:
    async def main() -> None:
        async with sim() as (venue, session), session.ws_connect(venue.ws_api_url) as ws:
            for frame, rid, status in hostile_ws_api():
                await ws.send_str(frame)
                answer = orjson.loads((await ws.receive(timeout=5)).data)
                assert (answer["id"], answer["status"]) == (rid, status), (frame, answer)
                assert type(answer["error"]["code"]) is int and isinstance(answer["error"]["msg"], str)
            await ws.send_str(orjson.dumps({"id": 99, "method": "account.balance",
                                            "params": signed_params({})}).decode())
            answer = orjson.loads((await ws.receive(timeout=5)).data)
            assert (answer["id"], answer["status"]) == (99, 200)              # the same connection serves on

    run(main())


def test_a_market_subscribe_with_non_list_params_is_answered_and_the_connection_lives() -> None:
    async def main() -> None:
        async with sim() as (venue, session), session.ws_connect(f"{venue.ws_url}/ws") as ws:
            for rid, params in enumerate([5, "btcusdt@depth", {"a": 1}, [1], [None], [["x"]], True]):
                await ws.send_str(orjson.dumps({"method": "SUBSCRIBE", "params": params, "id": rid}).decode())
                answer = orjson.loads((await ws.receive(timeout=5)).data)
                assert answer["id"] == rid and answer["error"]["code"] == 2, answer
            for frame in ("not json", "[]", "7", '{"params": []}'):
                await ws.send_str(frame)
                assert orjson.loads((await ws.receive(timeout=5)).data)["error"]["code"] == 3
            await ws.send_str('{"method": "SUBSCRIBE", "params": ["btcusdt@bookTicker"], "id": 50}')
            assert orjson.loads((await ws.receive(timeout=5)).data) == {"result": None, "id": 50}
            msg = orjson.loads((await ws.receive(timeout=30)).data)      # the stream flows on this connection
            assert msg["stream"] == "btcusdt@bookTicker"

    run(main())


# ---- the engine's WebSocket API readers against a venue that answers badly ------------------------------------

GARBAGE = [b"not json", b"[1]", b"7", b'{"id": "1"}', b'{"id": null, "status": 400}', b'{"id": [1]}',
           b'{"id": 987654, "status": 200, "result": {}}']           # an answer to nobody's request is not bad


async def _malicious(request: web.Request) -> web.WebSocketResponse:
    """Answers each request by its method: garbage first, then the answer the method names."""
    ws = web.WebSocketResponse()
    await ws.prepare(request)
    async for msg in ws:
        req = orjson.loads(msg.data)
        rid, method = req["id"], req["method"]
        for frame in GARBAGE:
            await ws.send_bytes(frame) if frame.startswith(b"\xff") else await ws.send_str(frame.decode())
        answers: dict[str, dict] = {
            "good": {"status": 200, "result": {"ok": True}, "rateLimits": [5, {"count": "²"}, {"count": None}]},
            "bad.status": {"status": "200", "result": {}},
            "bad.error": {"status": 400, "error": "nope"},
            "bad.code": {"status": 400, "error": {"code": "-2010", "msg": 5}},
            "bad.retry": {"status": 429, "error": {"code": -1003, "msg": "slow", "data": {"retryAfter": "soon"}}},
            "order.place": {"status": 200, "result": "FILLED"},
            "order.status": {"status": 200, "result": {"orderId": "abc", "status": "NEW"}},
        }
        await ws.send_str(orjson.dumps({"id": rid, **answers[method]}).decode())
    return ws


@pytest.mark.parametrize("cls", [WsApi, PicowsWsApi])
def test_ws_api_readers_count_and_skip_malformed_answers_and_live_on(cls: type[WsApi]) -> None:
    async def main() -> None:
        app = web.Application()
        app.router.add_get("/ws-fapi/v1", _malicious)
        runner = web.AppRunner(app)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        url = f"ws://127.0.0.1:{runner.addresses[0][1]}/ws-fapi/v1"
        async with aiohttp.ClientSession() as session:
            api = cls(url, session, Credentials(DEFAULT_API_KEY, Secret(DEFAULT_API_SECRET)),
                      lambda: time.time_ns() // 1_000_000, timeout_s=5.0)
            try:
                await _exercise(api)
            finally:
                await api.close()
        await runner.cleanup()

    run(main())


async def _outcome(call: Awaitable[Any]) -> Any:
    try:
        return await call
    except (VenueClientError, VenueServerError) as exc:
        return type(exc).__name__, exc.code


async def _exercise(api: WsApi) -> None:
    unknown = ("VenueServerError", codes.UNEXPECTED_RESP)
    assert await _outcome(api.call("good", {})) == {"ok": True}
    assert await _outcome(api.call("bad.status", {})) == unknown
    assert await _outcome(api.call("bad.error", {})) == unknown
    assert await _outcome(api.call("bad.code", {})) == unknown
    assert await _outcome(api.call("bad.retry", {})) == ("VenueClientError", -1003)
    api.limiter.banned_until_ms = 0
    assert await _outcome(api.call("order.status", {})) == unknown
    placed = await _outcome(api.call("order.place", {}))
    assert placed == (unknown if isinstance(api, PicowsWsApi) else "FILLED")   # only picows knows the method
    assert await _outcome(api.call("good", {})) == {"ok": True}                # the reader lives on
    per_request = len(GARBAGE) - 1
    malformed = {"bad.status", "bad.error", "bad.code", "order.status"} | ({"order.place"} if placed != "FILLED"
                                                                          else set())
    await wait_for(lambda: api.bad_answers == 8 * per_request + len(malformed), timeout=5)
    assert api.drops == 0


# ---- the real engine: its user stream and its control socket ---------------------------------------------------

USER_GARBAGE = [b"not json", b"[]", b'[{"e":"ORDER_TRADE_UPDATE"}]', b'{"e":"ORDER_TRADE_UPDATE"}',
                b'{"e":"ORDER_TRADE_UPDATE","o":[1]}',
                b'{"e":"ORDER_TRADE_UPDATE","o":{"c":"x","x":"TRADE","z":"abc"}}',
                b'{"e":"ORDER_TRADE_UPDATE","o":{"c":"x","x":"TRADE","z":"0","L":null,"l":"1","t":1}}', b"null"]

PREVIEW_HOSTILE = ["long btc 1e30 10s", "long btc 0.01 10s limit 1e999999", "tp btc 9e30", "long btc NaN 10s",
                   "long btc Infinity", "long btc -1 10s", "long btc 1E+5", "sl btc 1e-9", "long btc 1_0",
                   " \u201c" * 2000, ' "' * 20000, "long btc " + "9" * 4000, "x" * 5000, "long btc 0.5 " + "a " * 999]


async def _loop_lag(stop: asyncio.Event, worst: list[float]) -> None:
    """The longest the loop went without running this task (1 ms ticks)."""
    loop = asyncio.get_running_loop()
    last = loop.time()
    while not stop.is_set():
        await asyncio.sleep(0.001)
        now = loop.time()
        worst[0] = max(worst[0], now - last - 0.001)
        last = now


async def _post(sock: Path, path: str, body: dict) -> tuple[int, Any]:
    async with aiohttp.ClientSession(connector=aiohttp.UnixConnector(path=str(sock))) as s, \
            s.post(f"http://engine{path}", json=body) as resp:
        return resp.status, [orjson.loads(line) for line in (await resp.read()).splitlines() if line.strip()]


def test_the_engine_skips_hostile_user_frames_and_refuses_hostile_intents_cleanly(tmp_path: Path) -> None:
    async def main() -> None:
        async with engine(tmp_path) as (node, client):
            await _hostile_user_frames(node)
            await _hostile_previews(node)
            lines = [line async for line in client.intent("long btc 0.01 5s max 20bps")]
            assert lines[-1]["kind"] == "done" and node.user.connects == 1           # the stream lived
            assert node.oms.positions.get("BTCUSDT").qty != 0                          # its fills came in

    run(main())


async def _hostile_user_frames(node: Any) -> None:
    for frame in USER_GARBAGE:
        node.venue._send_to_account(node.venue.cfg.account, frame.decode())
    await wait_for(lambda: node.user.bad_events == len(USER_GARBAGE), timeout=10)
    assert node.user.connects == 1 and not any(t.done() for t in node._tasks)


async def _hostile_previews(node: Any) -> None:
    stop, worst = asyncio.Event(), [0.0]
    monitor = asyncio.create_task(_loop_lag(stop, worst))
    sock = node.paths()[1]
    for text in PREVIEW_HOSTILE:
        status, lines = await _post(sock, "/preview", {"text": text})
        assert status in (400, 413) and set(lines[0]) == {"error"}, (text[:40], status, lines)
        status, lines = await _post(sock, "/intent", {"text": text})
        assert status in (200, 413) and "error" in lines[-1], (text[:40], status, lines)
        assert set(lines[-1]) <= {"error", "refusal", "reason"}, lines      # what refused it: grammar, risk ...
    stop.set()
    await monitor
    assert worst[0] < 1.0, f"a hostile request held the loop {worst[0] * 1e3:.0f} ms"   # was 6.6 s at 40k chars
    assert not [i for i in node.runner.intents.values() if i.state.live]             # nothing was accepted


def test_the_engine_lives_through_garbage_on_its_user_stream(tmp_path):
    """Malformed frames on the real engine's user data stream (not JSON, an order event without its order, a bare
    list, wrong types inside): counted and skipped; the stream lives on and the intent's fills still arrive."""
    from decimal import Decimal

    from engine.config import Config, EngineConfig, VenueConfig
    from engine.node import Node

    async def main() -> None:
        node = Node(Config(venue=VenueConfig(speed=8.0), engine=EngineConfig(home=str(tmp_path))))
        await node.start()
        try:
            node.venue.set_faults({"garbage_user": 8})
            sub = await node.submit("long btc 0.02 10s ladder max 20bps", source="test", user="t")
            for _ in range(400):
                if node.runner.intents[sub.intent_id].state.final:
                    break
                await asyncio.sleep(0.05)
            li = node.runner.intents[sub.intent_id]
            assert li.state.value == "done" and li.report["filled"] == "0.020", li.report
            assert node.user.bad_events >= 4 and node.user.connected.is_set()
            venue = {p["symbol"]: Decimal(p["positionAmt"]) for p in await node.rest.position_risk()}
            assert node.oms.positions.get("BTCUSDT").qty == venue["BTCUSDT"] == Decimal("0.020")
        finally:
            await node.stop()
    run(main())
