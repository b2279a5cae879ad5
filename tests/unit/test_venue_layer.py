"""The venue client layer without a venue: limiter deadlines, signing after the wait, ``on_sent``, the gateway's
fallback, ``codes.transient``, the sim's fault validation and history queries.

Waits are simulated: the limiter's clock is a list the patched ``asyncio.sleep`` advances, so a 6 s ban takes no
real time."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import ClassVar
from urllib.parse import parse_qsl, urlsplit

import orjson
import pytest

from engine.errors import RiskRefused, VenueServerError
from engine.keys import Credentials, Secret
from engine.venues.binance import codes
from engine.venues.binance.gateway import OrderGateway
from engine.venues.binance.limiter import RateLimit, RateLimiter
from engine.venues.binance.rest import BinanceRest
from engine.venues.binance.signing import query_string, sign, ws_payload
from engine.venues.binance.wsapi import WsApi
from engine.venues.sim.auth import SimHttpError
from engine.venues.sim.faults import FaultError, Faults, load_fault_file, parse_fault_arg, parse_faults
from engine.venues.sim.history import DAY_MS, select_orders, select_trades

CREDS = Credentials("k", Secret("s"))
T0 = 1_700_000_000_000


class Clock:
    """A millisecond clock that only moves when the code under test sleeps."""

    def __init__(self) -> None:
        self.ms = T0
        self.slept: list[float] = []

    def __call__(self) -> int:
        return self.ms

    async def sleep(self, seconds: float, *_a: object) -> None:
        self.slept.append(seconds)
        self.ms += int(seconds * 1000)


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    c = Clock()
    monkeypatch.setattr("engine.venues.binance.limiter.asyncio.sleep", c.sleep)
    return c


def _limiter(clock: Clock, weight_limit: int = 100) -> RateLimiter:
    return RateLimiter((RateLimit("weight", 60_000, weight_limit, "X-MBX-USED-WEIGHT-1M"),
                        RateLimit("orders", 10_000, 10, "X-MBX-ORDER-COUNT-10S")), safety=1.0, clock_ms=clock)


# ---- limiter deadlines ---------------------------------------------------------------------------------------------

def test_a_ban_longer_than_the_deadline_is_refused_and_nothing_is_charged(clock: Clock) -> None:
    lim = _limiter(clock)
    lim.back_off(5.0)
    with pytest.raises(RiskRefused) as exc:
        asyncio.run(lim.acquire(1, 1, max_wait_ms=1000))
    assert exc.value.reason == "deadline"
    assert "5000 ms" in exc.value.detail and "1000 ms" in exc.value.detail and "banned" in exc.value.detail
    assert lim.used() == {"X-MBX-USED-WEIGHT-1M": 0, "X-MBX-ORDER-COUNT-10S": 0} and clock.slept == []


def test_a_wait_within_the_deadline_is_waited_then_charged(clock: Clock) -> None:
    lim = _limiter(clock)
    lim.back_off(5.0)
    asyncio.run(lim.acquire(1, 1, max_wait_ms=5000))
    assert clock.ms == T0 + 5000 and lim.used()["X-MBX-ORDER-COUNT-10S"] == 1


def test_a_full_window_counts_toward_the_deadline(clock: Clock) -> None:
    clock.ms = T0 - T0 % 60_000 + 50_000                         # 10 s before the weight window rolls over
    lim = _limiter(clock, weight_limit=10)
    lim.charge(10)
    with pytest.raises(RiskRefused, match="10000 ms"):
        asyncio.run(lim.acquire(1, max_wait_ms=9_999))
    asyncio.run(lim.acquire(1, max_wait_ms=10_000))
    assert lim.used()["X-MBX-USED-WEIGHT-1M"] == 1


def test_without_a_deadline_the_limiter_waits_as_before_and_a_passed_deadline_refuses(clock: Clock) -> None:
    lim = _limiter(clock)
    lim.back_off(60.0)
    asyncio.run(lim.acquire(1))
    assert clock.ms == T0 + 60_000
    with pytest.raises(RiskRefused, match="passed"):
        asyncio.run(lim.acquire(1, max_wait_ms=-1))


# ---- REST: signed after the wait, on_sent right before sending -----------------------------------------------------

class _Resp:
    status = 200
    headers: ClassVar[dict[str, str]] = {}

    async def read(self) -> bytes:
        return b'{"orderId": 1}'

    async def __aenter__(self) -> _Resp:
        return self

    async def __aexit__(self, *_a: object) -> None:
        return None


class _Session:
    def __init__(self, log: list) -> None:
        self.log = log

    def request(self, method: str, url: str, **_kw: object) -> _Resp:
        self.log.append(("sent", method, url))
        return _Resp()


def _rest(clock: Clock, log: list) -> BinanceRest:
    rest = BinanceRest("http://venue", _Session(log), CREDS, _limiter(clock))  # type: ignore[arg-type]
    rest.now_ms = clock                                            # the venue clock estimate, on the fake clock
    return rest


def test_rest_signs_after_a_6s_wait_and_calls_on_sent_before_the_bytes(clock: Clock) -> None:
    log: list = []
    rest = _rest(clock, log)
    rest.limiter.back_off(6.0)
    answer = asyncio.run(rest.place_order(symbol="BTCUSDT", side="BUY", type="MARKET", quantity="0.010",
                                          on_sent=lambda: log.append(("on_sent", clock.ms))))
    assert answer == {"orderId": 1}
    assert log[0] == ("on_sent", T0 + 6000) and log[1][0] == "sent"
    qs = urlsplit(log[1][2]).query
    params = dict(parse_qsl(qs))
    assert int(params["timestamp"]) == T0 + 6000                   # taken after the wait, not before it
    unsigned = qs.rsplit("&signature=", 1)[0]
    assert params["signature"] == sign(CREDS.secret, unsigned)
    assert unsigned == query_string([("symbol", "BTCUSDT"), ("side", "BUY"), ("type", "MARKET"),
                                     ("quantity", "0.010"), ("recvWindow", 5000), ("timestamp", T0 + 6000)])


def test_rest_refused_by_the_deadline_sends_nothing(clock: Clock) -> None:
    log: list = []
    rest = _rest(clock, log)
    rest.limiter.back_off(6.0)
    with pytest.raises(RiskRefused):
        asyncio.run(rest.place_order(symbol="BTCUSDT", side="BUY", type="MARKET", quantity="0.010",
                                     max_wait_ms=5000, on_sent=lambda: log.append("on_sent")))
    assert log == []


def test_rest_history_queries_send_binance_parameters(clock: Clock) -> None:
    log: list = []
    rest = _rest(clock, log)
    asyncio.run(rest.user_trades("BTCUSDT", order_id=7, limit=100))
    asyncio.run(rest.user_trades("BTCUSDT", from_id=42))
    asyncio.run(rest.user_trades("BTCUSDT", 1000, 20))             # the old positional form: start_ms, limit
    asyncio.run(rest.all_orders("BTCUSDT", order_id=3, start_ms=1, end_ms=2, limit=10))
    got = [(urlsplit(u).path, {k: v for k, v in parse_qsl(urlsplit(u).query)
                               if k not in ("timestamp", "signature", "recvWindow")}) for _, _, u in log]
    assert got == [
        ("/fapi/v1/userTrades", {"symbol": "BTCUSDT", "orderId": "7", "limit": "100"}),
        ("/fapi/v1/userTrades", {"symbol": "BTCUSDT", "fromId": "42", "limit": "500"}),
        ("/fapi/v1/userTrades", {"symbol": "BTCUSDT", "startTime": "1000", "limit": "20"}),
        ("/fapi/v1/allOrders", {"symbol": "BTCUSDT", "orderId": "3", "startTime": "1", "endTime": "2",
                                "limit": "10"}),
    ]


# ---- WebSocket API: the same, over aiohttp's and picows' sessions --------------------------------------------------

class _AioWs:
    closed = False

    def __init__(self, log: list) -> None:
        self.log = log

    async def send_str(self, frame: str) -> None:
        self.log.append(("sent", orjson.loads(frame)))


def test_ws_api_signs_after_the_wait_and_refuses_past_the_deadline(clock: Clock) -> None:
    log: list = []
    api = WsApi("ws://venue", None, CREDS, clock, _limiter(clock))  # type: ignore[arg-type]
    api._ws = _AioWs(log)  # type: ignore[assignment]
    api.limiter.back_off(6.0)

    async def main() -> None:
        with pytest.raises(RiskRefused):
            await api.send("order.place", {"symbol": "BTCUSDT"}, weight=0, orders=1, max_wait_ms=2000,
                           on_sent=lambda: log.append("refused on_sent"))
        assert log == []
        await api.send("order.place", {"symbol": "BTCUSDT"}, weight=0, orders=1, max_wait_ms=6000,
                       on_sent=lambda: log.append(("on_sent", clock.ms)))

    asyncio.run(main())
    assert log[0] == ("on_sent", T0 + 6000)
    params = log[1][1]["params"]
    assert params["timestamp"] == T0 + 6000 and params["signature"] == sign(CREDS.secret, ws_payload(params))


class _PicowsTransport:
    is_disconnected = False
    is_close_frame_sent = False

    def __init__(self, log: list) -> None:
        self.log = log

    def send(self, _type: object, frame: bytes) -> None:
        self.log.append(("sent", orjson.loads(frame)))


def test_picows_send_now_waits_signs_after_and_honours_the_deadline(clock: Clock) -> None:
    from engine.venues.binance.fastws import PicowsWsApi

    log: list = []

    async def main() -> None:
        api = PicowsWsApi("ws://venue", None, CREDS, clock, _limiter(clock), timeout_s=0.05)
        api._transport = _PicowsTransport(log)  # type: ignore[assignment]
        now = api.send_now("order.status", {"symbol": "BTCUSDT"}, on_sent=lambda: log.append(("on_sent", 0)))
        assert log[0] == ("on_sent", 0) and log[1][1]["params"]["timestamp"] == T0     # written before returning
        api.limiter.back_off(6.0)
        refused = api.place_order_now({"symbol": "BTCUSDT"}, max_wait_ms=3000, on_sent=lambda: log.append("x"))
        with pytest.raises(RiskRefused):
            await refused
        waited = api.place_order_now({"symbol": "BTCUSDT"}, max_wait_ms=6000,
                                     on_sent=lambda: log.append(("on_sent", clock.ms)))
        for fut in (now, waited):
            with pytest.raises(VenueServerError):                  # nobody answers: timeouts
                await fut

    asyncio.run(main())
    assert "x" not in log
    assert log[2] == ("on_sent", T0 + 6000) and log[3][1]["params"]["timestamp"] == T0 + 6000


# ---- the gateway ---------------------------------------------------------------------------------------------------

class _FailingWs:
    """A WebSocket API that could not connect: nothing was sent."""

    async def place_order(self, **kw: object) -> dict:
        self.kw = kw
        raise VenueServerError(codes.DISCONNECTED, "no connection", sent=False)


class _RecordingRest:
    async def place_order(self, **kw: object) -> dict:
        self.kw = kw
        on_sent = kw.get("on_sent")
        if callable(on_sent):
            on_sent()
        return {"orderId": 9}


def test_the_gateway_threads_deadline_and_on_sent_through_the_fallback() -> None:
    ws, rest, sent = _FailingWs(), _RecordingRest(), []
    gw = OrderGateway(rest, ws)  # type: ignore[arg-type]
    params = {"symbol": "BTCUSDT", "side": "BUY", "type": "MARKET", "quantity": "0.010"}
    assert asyncio.run(gw.place(params, max_wait_ms=4000, on_sent=lambda: sent.append(1))) == {"orderId": 9}
    assert ws.kw["max_wait_ms"] == 4000 and 0 <= rest.kw["max_wait_ms"] <= 4000  # type: ignore[operator]
    assert sent == [1] and gw.fallbacks == 1
    assert {k: rest.kw[k] for k in params} == params
    out = asyncio.run(_place_now(gw, params))
    assert out == {"orderId": 9} and rest.kw["max_wait_ms"] is None


async def _place_now(gw: OrderGateway, params: dict) -> dict:
    return await gw.place_now(params, 0)


# ---- transient or definitive ---------------------------------------------------------------------------------------

@pytest.mark.parametrize(("code", "status", "msg"), [
    (codes.UNKNOWN, 500, ""), (codes.DISCONNECTED, 0, ""), (codes.UNEXPECTED_RESP, 0, ""), (codes.TIMEOUT, 0, ""),
    (codes.SERVER_BUSY, 400, ""), (codes.TOO_MANY_REQUESTS, 429, ""), (codes.TOO_MANY_REQUESTS, 418, ""),
    (codes.TOO_MANY_ORDERS, 429, ""), (codes.INVALID_TIMESTAMP, 400, ""), (codes.ME_INVALID_TIMESTAMP, 400, ""),
    (codes.NEW_ORDER_REJECTED, 400, "Order rejected (injected fault)."), (-9999, 503, ""),
])
def test_transient_answers(code: int, status: int, msg: str) -> None:
    assert codes.transient(code, status, msg)


@pytest.mark.parametrize(("code", "msg"), [
    (codes.MARGIN_NOT_SUFFICIEN, ""), (codes.BALANCE_NOT_SUFFICIENT, ""), (codes.INVALID_MESSAGE, ""),
    (codes.BAD_PRECISION, ""), (codes.QTY_LESS_THAN_ZERO, ""), (codes.QTY_LESS_THAN_MIN_QTY, ""),
    (codes.PRICE_LESS_THAN_MIN_PRICE, ""), (codes.PRICE_NOT_INCREASED_BY_TICK_SIZE, ""),
    (codes.QTY_NOT_INCREASED_BY_STEP_SIZE, ""), (codes.MIN_NOTIONAL, ""),
    (codes.MANDATORY_PARAM_EMPTY_OR_MALFORMED, ""),
    (codes.PARAM_NOT_REQUIRED, ""), (codes.INVALID_ORDER_TYPE, ""), (codes.INVALID_SIDE, ""), (codes.BAD_SYMBOL, ""),
    (codes.INVALID_CL_ORD_ID_LEN, ""), (codes.REDUCE_ONLY_REJECT, ""), (codes.ORDER_WOULD_IMMEDIATELY_TRIGGER, ""),
    (codes.BAD_API_KEY_FMT, ""), (codes.REJECTED_MBX_KEY, ""), (codes.INVALID_SIGNATURE, ""), (codes.UNAUTHORIZED, ""),
    (codes.GTX_ORDER_REJECT, ""), (codes.DUPLICATED_CLIENT_ORDER_ID, ""),
    (codes.NEW_ORDER_REJECTED, "Account has insufficient balance for requested action."),
    (codes.NEW_ORDER_REJECTED, "Order would immediately trigger."), (-9999, ""),
])
def test_definitive_answers(code: int, msg: str) -> None:
    assert not codes.transient(code, 400, msg)


# ---- sim fault settings --------------------------------------------------------------------------------------------

@pytest.mark.parametrize("bad", [
    [1], "x", None, {"drop_market": "false"}, {"drop_market": 0}, {"reject_orders": True}, {"reject_orders": -1},
    {"reject_orders": 1.0}, {"reject_orders": "2"}, {"reject_orders": 10**9}, {"ban_s": 3601}, {"nope": 1},
    {"reject_orders": 2, "drop_market": "no"},
])
def test_fault_settings_are_validated_strictly_and_all_or_nothing(bad: object) -> None:
    faults = Faults()
    with pytest.raises(FaultError):
        faults.update(bad)
    assert faults == Faults()


def test_fault_settings_from_the_command_line_and_files(tmp_path) -> None:
    assert parse_faults({"drop_market": True, "reject_orders": 3, "stall_market_ms": 0}) == {
        "drop_market": True, "reject_orders": 3, "stall_market_ms": 0}
    assert parse_fault_arg("ban_s=30") == ("ban_s", 30)
    assert parse_fault_arg(" drop_market = true") == ("drop_market", True)
    assert parse_fault_arg('drop_market="false"') == ("drop_market", "false")   # then refused by parse_faults
    for bad in ("ban_s", "=3", "ban_s=abc"):
        with pytest.raises(FaultError):
            parse_fault_arg(bad)
    (tmp_path / "f.toml").write_text("reorder_user = 2\ndrop_market = false\n")
    (tmp_path / "f.json").write_text('{"http_5xx": 1}')
    (tmp_path / "bad.json").write_text('{"http_5xx": ')
    assert load_fault_file(str(tmp_path / "f.toml")) == {"reorder_user": 2, "drop_market": False}
    assert load_fault_file(str(tmp_path / "f.json")) == {"http_5xx": 1}
    for name in ("bad.json", "missing.json"):
        with pytest.raises(FaultError):
            load_fault_file(str(tmp_path / name))


# ---- sim history queries -------------------------------------------------------------------------------------------

NOW = 1_000 * DAY_MS


def _order(oid: int, t_ms: int, status: str = "FILLED", filled: int = 1) -> SimpleNamespace:
    return SimpleNamespace(order_id=oid, time_ns=t_ms * 1_000_000, status=SimpleNamespace(value=status),
                           filled_lots=filled)


def _fill(tid: int, oid: int, t_ms: int) -> SimpleNamespace:
    return SimpleNamespace(trade_id=tid, order_id=oid, time_ns=t_ms * 1_000_000)


def test_all_orders_pages_windows_and_archive() -> None:
    orders = [_order(1, NOW - 4 * DAY_MS, "CANCELED", 0), _order(2, NOW - 4 * DAY_MS, "CANCELED", 1),
              _order(3, NOW - 2 * DAY_MS), _order(4, NOW - 1000, "NEW", 0), _order(5, NOW, "EXPIRED", 0)]

    def ids(**params: object) -> list[int]:
        return [o.order_id for o in select_orders(orders, {k: str(v) for k, v in params.items()}, NOW)]

    assert ids() == [2, 3, 4, 5]                     # 1: cancelled without fills 3+ days ago, archived
    assert ids(limit=2) == [4, 5]                    # the most recent
    assert ids(orderId=3, limit=2) == [3, 4]         # from that id on
    assert ids(startTime=NOW - 3 * DAY_MS, endTime=NOW - 1) == [3, 4]
    assert ids(endTime=NOW - 3 * DAY_MS) == [2]
    for params, code in (({"startTime": "0", "endTime": str(8 * DAY_MS)}, codes.MORE_THAN_XX_HOURS),
                         ({"startTime": "5", "endTime": "4"}, codes.START_TIME_GREATER_THAN_END_TIME),
                         ({"limit": "0"}, codes.INVALID_PARAMETER)):
        with pytest.raises(SimHttpError) as exc:
            select_orders(orders, params, NOW)
        assert exc.value.code == code


def test_user_trades_by_order_from_id_and_window() -> None:
    fills = [_fill(10, 1, NOW - 8 * DAY_MS), _fill(11, 2, NOW - 2000), _fill(11, 3, NOW - 2000),
             _fill(12, 2, NOW - 1000), _fill(13, 4, NOW)]

    def ids(**params: object) -> list[tuple[int, int]]:
        return [(f.trade_id, f.order_id) for f in select_trades(fills, {k: str(v) for k, v in params.items()}, NOW)]

    assert ids() == [(11, 2), (11, 3), (12, 2), (13, 4)]          # the last 7 days
    assert ids(orderId=2) == [(11, 2), (12, 2)]
    assert ids(orderId=1) == [(10, 1)]                             # an order's trades, however old (6 months kept)
    assert ids(fromId=11, limit=3) == [(11, 2), (11, 3), (12, 2)]
    assert ids(fromId=0) == [(10, 1), (11, 2), (11, 3), (12, 2), (13, 4)]
    assert ids(limit=1) == [(13, 4)]
    with pytest.raises(SimHttpError) as exc:
        select_trades(fills, {"fromId": "1", "startTime": "1"}, NOW)
    assert exc.value.code == codes.OPTIONAL_PARAMS_BAD_COMBO
