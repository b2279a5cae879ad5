"""The sim venue's server: Binance USD-M's protocol over real sockets, around the deterministic ``SimExchange``.

Endpoints (loopback only): REST ``/fapi/v1/...`` and ``/fapi/v2/...``; combined market streams
``/stream?streams=a/b``, raw streams ``/ws/<stream>`` and ``SUBSCRIBE`` over ``/ws``; the user data stream
``/ws/<listenKey>``; the WebSocket API ``/ws-fapi/v1``. A driver task replays the tape in exchange time at
``speed`` x real time; market messages reach subscribers after the feed-latency model's delay, orders are matched
after the entry latency and answered after the ack latency (all scaled by ``speed``). Auth timestamps are checked
against the wall clock, which ``/fapi/v1/time`` reports; event times in the streams are the tape's, and so are the
times of orders and trades (``allOrders`` and ``userTrades`` windows are in that exchange time: see ``history``).
Switchable faults (``faults.Faults``) are set with ``POST /sim/faults`` and shown, with how often each acted, by
``GET /sim/status``.

Malformed requests get Binance's answers, never an internal error: a body that is not UTF-8 or a query that is
not a form is -1100 (400); a parameter of the wrong form is -1102/-1130 (``params``); a market-stream request
that is not ``{"method", "params": [names], "id"}`` gets Binance's ``{"error": {"code", "msg"}, "id"}`` and the
connection stays open; the WebSocket API answers every request (``wsapi_server``).
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import logging
import secrets
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any
from urllib.parse import parse_qsl

import orjson
from aiohttp import WSMsgType, web

from engine.keys import Secret
from engine.venues.binance import codes
from engine.venues.binance.rest import depth_weight
from engine.venues.sim import exchange_info
from engine.venues.sim.auth import (
    ApiAccount,
    Limits,
    RateCounter,
    SimHttpError,
    check_signature,
    check_timestamp,
    strip_signature,
)
from engine.venues.sim.faults import FaultError, Faults
from engine.venues.sim.history import select_orders, select_trades
from engine.venues.sim.params import as_int, bad, instrument_of, order_ref, parse_order

log = logging.getLogger(__name__)

# what the garbage_user fault sends: not JSON, an order event without its order, a bare list, wrong types inside
GARBAGE_USER = ("not json", '{"e":"ORDER_TRADE_UPDATE"}', "[1,2,3]",
                '{"e":"ORDER_TRADE_UPDATE","E":1,"o":{"c":7,"x":"TRADE","z":"abc","L":null}}')
DEFAULT_API_KEY = "tapeshot-sim-key"
DEFAULT_API_SECRET = "tapeshot-sim-secret"
LISTEN_KEY_TTL_S = 60 * 60
REORDER_RELEASE_S = 1.0        # a held-back user event with no successor goes out after this long anyway
__all__ = ["DEFAULT_API_KEY", "DEFAULT_API_SECRET", "Faults", "SimVenue", "SimVenueConfig", "user_trade"]


@dataclass
class SimVenueConfig:
    host: str = "127.0.0.1"
    port: int = 0
    speed: float = 1.0
    api_key: str = DEFAULT_API_KEY
    api_secret: str = DEFAULT_API_SECRET
    account: str = "main"
    usdt: Decimal = Decimal("100000")
    leverage: int = 20
    limits: Limits = field(default_factory=Limits)
    loop_on_end: bool = False      # when the tape ends, replay it again (a new lap: times and ids moved on);
                                   # False: ``finished`` is set, nothing more is published, the state is kept
    ed25519_api_key: str = "tapeshot-sim-ed25519"
    ed25519_public_pem: bytes = b""  # also accept this Ed25519 key (same account) when set
    start_s: float = 0.0           # serve from this far (exchange seconds) into the tape; earlier events are applied
                                   # silently at start (the book, trades, marks are as recorded at that instant)


@dataclass
class _Sub:
    ws: web.WebSocketResponse
    streams: set[str]
    combined: bool


class SimVenue:
    """The server. ``await start()`` binds it; ``rest_url``, ``ws_url`` and ``ws_api_url`` are then set."""

    def __init__(self, exchange: Any, cfg: SimVenueConfig | None = None) -> None:
        self.ex = exchange
        self.cfg = cfg or SimVenueConfig()
        self.faults = Faults()
        self.fault_counts: dict[str, int] = dict.fromkeys(self.faults.as_dict(), 0)   # how often each acted
        self.banned_until_ms = 0                                   # an injected IP ban (wall ms), see ``ban_s``
        self._market_stall_until = 0.0                             # monotonic s; see ``stall_market_ms``
        self._held_user: dict[str, str] = {}                       # account -> a user event held back (reorder)
        self.accounts = {self.cfg.api_key: ApiAccount(self.cfg.api_key, Secret(self.cfg.api_secret), self.cfg.account)}
        if self.cfg.ed25519_public_pem:
            key = self.cfg.ed25519_api_key
            self.accounts[key] = ApiAccount(key, None, self.cfg.account, self.cfg.ed25519_public_pem)
        self.ex.open_account(self.cfg.account, self.cfg.usdt, self.cfg.leverage)
        self.counters: dict[str, RateCounter] = {}
        self.subs: list[_Sub] = []
        self.listen_keys: dict[str, tuple[str, float]] = {}      # key -> (account, expiry monotonic)
        self.user_sockets: dict[str, list[web.WebSocketResponse]] = {}
        self._heap: list[tuple[int, int, Any]] = []              # (deliver at exchange ns, seq, MarketMsg)
        self._seq = 0
        self._runner: web.AppRunner | None = None
        self._driver: asyncio.Task | None = None
        self._wall0 = 0.0
        self._exch0 = 0
        self.published = 0
        self.finished = asyncio.Event()
        self.on_tape_end: Callable[[int], None] | None = None    # called with the next lap's number (0: no more)
        self.rest_url = self.ws_url = self.ws_api_url = ""

    # ---- lifecycle --------------------------------------------------------------------------------------------

    async def start(self) -> None:
        app = web.Application(middlewares=[self._errors])
        app.add_routes([
            web.get("/fapi/v1/ping", self._ping), web.get("/fapi/v1/time", self._time),
            web.get("/fapi/v1/exchangeInfo", self._exchange_info), web.get("/fapi/v1/depth", self._depth),
            web.post("/fapi/v1/order", self._order_new), web.delete("/fapi/v1/order", self._order_cancel),
            web.get("/fapi/v1/order", self._order_query), web.get("/fapi/v1/openOrders", self._open_orders),
            web.delete("/fapi/v1/allOpenOrders", self._cancel_all),
            web.post("/fapi/v1/countdownCancelAll", self._countdown),
            web.get("/fapi/v2/positionRisk", self._position_risk), web.get("/fapi/v2/balance", self._balance),
            web.get("/fapi/v1/userTrades", self._user_trades), web.get("/fapi/v1/allOrders", self._all_orders),
            web.get("/fapi/v3/positionRisk", self._position_risk_v3), web.get("/fapi/v3/balance", self._balance),
            web.get("/fapi/v2/account", self._account), web.get("/fapi/v3/account", self._account),
            web.post("/fapi/v1/leverage", self._leverage), web.get("/fapi/v1/commissionRate", self._commission),
            web.get("/fapi/v1/openOrder", self._open_order),
            web.post("/fapi/v1/listenKey", self._listen_key_new), web.put("/fapi/v1/listenKey", self._listen_key_keep),
            web.delete("/fapi/v1/listenKey", self._listen_key_close),
            web.get("/stream", self._ws_market), web.get("/ws", self._ws_market),
            web.get("/ws/{name}", self._ws_named), web.get("/ws-fapi/v1", self._ws_api),
            web.get("/sim/status", self._status), web.post("/sim/faults", self._set_faults),
        ])
        self._runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.cfg.host, self.cfg.port)
        await site.start()
        port = self._runner.addresses[0][1]
        self.rest_url = f"http://{self.cfg.host}:{port}"
        self.ws_url = f"ws://{self.cfg.host}:{port}"
        self.ws_api_url = f"ws://{self.cfg.host}:{port}/ws-fapi/v1"
        first = self.ex.next_time()
        self._exch0 = first if first is not None else 0
        if self.cfg.start_s > 0 and first is not None:
            self._exch0 = first + int(self.cfg.start_s * 1e9)
            self.ex.advance(self._exch0)              # applied, never published: the served tape starts here
            self.ex.drain_user_events()
        self._wall0 = time.monotonic()
        self._driver = asyncio.create_task(self._drive())

    async def stop(self) -> None:
        if self._driver is not None:
            self._driver.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._driver
        for s in list(self.subs):
            with contextlib.suppress(Exception):
                await s.ws.close()
        for socks in self.user_sockets.values():
            for ws in list(socks):
                with contextlib.suppress(Exception):
                    await ws.close()
        if self._runner is not None:
            await self._runner.cleanup()

    # ---- time and the replay ----------------------------------------------------------------------------------

    def exchange_now(self) -> int:
        """The replay's exchange time (ns) at this wall instant."""
        return self._exch0 + int((time.monotonic() - self._wall0) * 1e9 * self.cfg.speed)

    async def sleep_exchange(self, ns: int) -> None:
        if ns > 0:
            await asyncio.sleep(ns / 1e9 / self.cfg.speed)

    def _advance(self) -> None:
        """Apply every recorded event up to now; queue its messages for delivery after the feed latency."""
        for msg in self.ex.advance(self.exchange_now()):
            delay = self.ex.latency.feed_ns(msg)
            self._seq += 1
            heapq.heappush(self._heap, (msg.time_ns + delay, self._seq, msg))
        self._flush_user_events()

    async def _drive(self) -> None:
        try:
            while True:
                self._advance()
                if self.faults.drop_market:
                    await self._drop_market()
                if self._market_stalled():
                    await asyncio.sleep(0.005)          # the tape goes on; what it publishes waits in the heap
                    continue
                now = self.exchange_now()
                while self._heap and self._heap[0][0] <= now:
                    await self._publish(heapq.heappop(self._heap)[2])
                nxt = self.ex.next_time()
                if self.ex.done and not self._heap:       # the tape has ended (countdown timers may still run)
                    if self.cfg.loop_on_end:
                        await self._next_lap()
                        continue
                    self._tape_ended()
                    if nxt is None:
                        await asyncio.sleep(0.05)
                        continue
                due = min(x for x in (nxt, self._heap[0][0] if self._heap else None) if x is not None)
                await asyncio.sleep(min(max(due - self.exchange_now(), 0) / 1e9 / self.cfg.speed, 0.005))
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("sim venue driver failed")
            raise

    def _tape_ended(self) -> None:
        if self.finished.is_set():
            return
        self.finished.set()
        log.info("the recorded tape has ended (lap %d): nothing more is published", self.ex.lap)
        if self.on_tape_end is not None:
            self.on_tape_end(0)

    async def _next_lap(self) -> None:
        """``loop_on_end``: the tape again, starting 1 s (exchange time) from now; built off the event loop."""
        n = self.ex.lap + 1
        log.info("the recorded tape has ended: replaying it again (lap %d)", n)
        if self.on_tape_end is not None:
            self.on_tape_end(n)
        tape = await asyncio.to_thread(self.ex.build_lap, n, self.exchange_now() + 1_000_000_000)
        self.ex.next_lap(tape)

    def _market_stalled(self) -> bool:
        """Whether a market stall (``stall_market_ms``) is on; ends it (the field back to 0) when its time is up."""
        if not self._market_stall_until:
            return False
        if time.monotonic() < self._market_stall_until:
            return True
        self._market_stall_until = 0.0
        self.faults.stall_market_ms = 0
        return False

    async def _publish(self, msg: Any) -> None:
        if msg.stream.endswith(("@depth", "@depth@0ms", "@depth@100ms", "@depth@500ms")) and self.faults.skip_diffs:
            self.faults.skip_diffs -= 1
            self._count("skip_diffs")
            return
        self.published += 1
        combined = None
        alias = _mark_alias(msg.stream)
        for sub in list(self.subs):
            if msg.stream not in sub.streams and (alias is None or alias not in sub.streams):
                continue
            if sub.combined:
                if combined is None:
                    combined = b'{"stream":"' + msg.stream.encode() + b'","data":' + msg.payload + b"}"
                data = combined
            else:
                data = msg.payload
            try:
                await sub.ws.send_str(data.decode())
            except (ConnectionResetError, RuntimeError):
                self._drop_sub(sub)

    async def _drop_market(self) -> None:
        """``drop_market``: close every market-stream connection (once)."""
        self.faults.drop_market = False
        self._count("drop_market")
        for sub in list(self.subs):
            self._drop_sub(sub)
            with contextlib.suppress(Exception):
                await sub.ws.close()

    def _drop_sub(self, sub: _Sub) -> None:
        with contextlib.suppress(ValueError):
            self.subs.remove(sub)

    def _count(self, fault: str) -> None:
        self.fault_counts[fault] = self.fault_counts.get(fault, 0) + 1

    def _flush_user_events(self) -> None:
        for account, event in self.ex.drain_user_events():
            self._deliver_user(account, orjson.dumps(event).decode())

    def _deliver_user(self, account: str, data: str) -> None:
        """One user data event to the account's sockets, through ``reorder_user`` (hold one back, send it after
        the next), ``duplicate_user`` and ``delay_user_ms``."""
        if self.faults.garbage_user > 0 and self.user_sockets.get(account):
            self.faults.garbage_user -= 1
            self._count("garbage_user")
            self._send_to_account(account, GARBAGE_USER[self.faults.garbage_user % len(GARBAGE_USER)])
        held = self._held_user.pop(account, None)
        if held is None and self.faults.reorder_user > 0 and self.user_sockets.get(account):
            self.faults.reorder_user -= 1
            self._count("reorder_user")
            self._held_user[account] = data
            asyncio.get_running_loop().call_later(REORDER_RELEASE_S, self._release_held, account, data)
            return
        self._send_to_account(account, data)
        if held is not None:
            self._send_to_account(account, held)

    def _release_held(self, account: str, data: str) -> None:
        """A held-back event that no later event overtook in time: send it now."""
        if self._held_user.get(account) is data:
            del self._held_user[account]
            self._send_to_account(account, data)

    def _send_to_account(self, account: str, data: str) -> None:
        socks = list(self.user_sockets.get(account, ()))
        copies = 2 if self.faults.duplicate_user > 0 and socks else 1
        if copies == 2:
            self.faults.duplicate_user -= 1
            self._count("duplicate_user")
        delay_ms = self.faults.delay_user_ms
        if delay_ms and socks:
            self._count("delay_user_ms")
        for ws in socks:
            for _ in range(copies):
                asyncio.get_running_loop().create_task(self._send_user(ws, data, delay_ms))

    @staticmethod
    async def _send_user(ws: web.WebSocketResponse, data: str, delay_ms: int) -> None:
        if delay_ms:
            await asyncio.sleep(delay_ms / 1000)
        with contextlib.suppress(ConnectionResetError, RuntimeError):
            await ws.send_str(data)

    # ---- HTTP plumbing ----------------------------------------------------------------------------------------

    @web.middleware
    async def _errors(self, request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]):
        try:
            if not request.path.startswith("/sim/"):
                await self._request_faults(request.path.startswith("/fapi"))
            return await handler(request)
        except SimHttpError as exc:
            return web.json_response({"code": exc.code, "msg": exc.msg}, status=exc.status, headers=exc.headers,
                                     dumps=_dumps)
        except web.HTTPException as exc:
            if exc.status == 404:
                return web.json_response({"code": -5000, "msg": f"Path {request.path}, Method {request.method} is "
                                                               "invalid"}, status=404, dumps=_dumps)
            if exc.status == 405:
                return web.json_response({"code": -5000, "msg": f"Method {request.method} not allowed"},
                                         status=405, dumps=_dumps)
            raise
        except Exception:
            log.exception("sim venue: internal error on %s %s", request.method, request.path)
            return web.json_response({"code": codes.UNKNOWN, "msg": "An unknown error occured while processing the "
                                                                    "request."}, status=500, dumps=_dumps)

    async def _request_faults(self, rest: bool) -> None:
        """The faults a request meets before it is handled: a REST one the ban, then any request a stall, then a
        REST one a 5xx or a 429."""
        if rest:
            self.check_ban()
        if self.faults.stall_ms:
            self._count("stall_ms")
            await asyncio.sleep(self.faults.stall_ms / 1000)
        if not rest:
            return
        if self.faults.http_5xx > 0:
            self.faults.http_5xx -= 1
            self._count("http_5xx")
            raise SimHttpError(503, codes.UNKNOWN, "Service Unavailable.")
        if self.faults.http_429 > 0:
            self.faults.http_429 -= 1
            self._count("http_429")
            raise SimHttpError(429, codes.TOO_MANY_REQUESTS, "Too many requests (injected).", {"Retry-After": "1"})

    def check_ban(self) -> None:
        """The injected IP ban (``ban_s``): the first request after it is set starts it; while it lasts every
        request is answered 418 with -1003 and ``Retry-After`` (the seconds left), as Binance bans an IP."""
        now = time.time_ns() // 1_000_000
        if self.faults.ban_s > 0:
            self.banned_until_ms = now + self.faults.ban_s * 1000
            self.faults.ban_s = 0
        if now < self.banned_until_ms:
            self._count("ban_s")
            retry = max(1, (self.banned_until_ms - now + 999) // 1000)
            raise SimHttpError(418, codes.TOO_MANY_REQUESTS,
                               f"Way too many requests; IP banned until {self.banned_until_ms}. Please use the "
                               "websocket for live updates to avoid bans.", {"Retry-After": str(retry)})

    def _counter(self, key: str) -> RateCounter:
        c = self.counters.get(key)
        if c is None:
            c = self.counters[key] = RateCounter(self.cfg.limits)
        return c

    async def _params(self, request: web.Request, *, signed: bool, weight: int = 1, orders: int = 0,
                      key_only: bool = False) -> tuple[dict[str, str], ApiAccount | None, dict[str, str]]:
        """Parse, authenticate and charge one REST request; returns (params, account, rate headers)."""
        body = await self._body_text(request)
        raw_qs = request.rel_url.raw_query_string          # as sent: what the client signed (totalParams)
        client = request.remote or "?"
        api_key = request.headers.get("X-MBX-APIKEY")
        acct = None
        if signed or key_only:
            acct = self.accounts.get(api_key or "")
            if acct is None:
                raise SimHttpError(401, codes.REJECTED_MBX_KEY, codes.MESSAGES[codes.REJECTED_MBX_KEY])
            client = acct.api_key
        headers = self._counter(client).charge(weight, orders)
        try:
            params = dict(parse_qsl(raw_qs, keep_blank_values=True, strict_parsing=bool(raw_qs)))
            params.update(parse_qsl(body, keep_blank_values=True, strict_parsing=bool(body)))
        except ValueError:
            raise SimHttpError(400, codes.ILLEGAL_CHARS, "Illegal characters found in a parameter.",
                               headers) from None
        if signed:
            qs_wo, sig_q = strip_signature(raw_qs)
            body_wo, sig_b = strip_signature(body)
            try:
                check_signature(acct, qs_wo + body_wo, sig_q or sig_b)
                check_timestamp(params, time.time_ns() // 1_000_000)
            except SimHttpError as exc:
                exc.headers.update(headers)
                raise
            params.pop("signature", None)
        return params, acct, headers

    @staticmethod
    async def _body_text(request: web.Request) -> str:
        """The request body as text; one that is not UTF-8 is refused as Binance refuses illegal characters."""
        if not request.can_read_body:
            return ""
        try:
            return (await request.read()).decode()
        except UnicodeDecodeError:
            raise SimHttpError(400, codes.ILLEGAL_CHARS, "Illegal characters found in a parameter.") from None

    @staticmethod
    def _json(data: Any, headers: dict[str, str]) -> web.Response:
        return web.Response(body=orjson.dumps(data), headers=headers, content_type="application/json")

    # ---- public REST ------------------------------------------------------------------------------------------

    async def _ping(self, request: web.Request) -> web.Response:
        _, _, h = await self._params(request, signed=False)
        return self._json({}, h)

    async def _time(self, request: web.Request) -> web.Response:
        _, _, h = await self._params(request, signed=False)
        return self._json({"serverTime": time.time_ns() // 1_000_000}, h)

    async def _exchange_info(self, request: web.Request) -> web.Response:
        _, _, h = await self._params(request, signed=False)
        return self._json(exchange_info.build(self.ex.instruments, self.cfg.limits), h)

    async def _depth(self, request: web.Request) -> web.Response:
        limit_raw = request.query.get("limit", "500")
        limit = int(limit_raw) if limit_raw.isascii() and limit_raw.isdigit() and len(limit_raw) < 6 else -1
        if limit not in (5, 10, 20, 50, 100, 500, 1000):
            raise bad(codes.INVALID_PARAMETER, "Invalid limit; valid limits: 5, 10, 20, 50, 100, 500, 1000.")
        params, _, h = await self._params(request, signed=False, weight=depth_weight(limit))
        inst = instrument_of(params, self.ex.instruments)
        self._advance()
        try:
            snap = self.ex.depth_snapshot(inst.symbol, limit)
        except Exception as exc:
            if type(exc).__name__ == "SimUnavailable":
                raise SimHttpError(503, codes.UNKNOWN, "Service Unavailable: the book is not ready yet.", h) from None
            raise
        return self._json(snap, h)

    # ---- orders -----------------------------------------------------------------------------------------------

    async def _exec(self, fn: Callable[[], Any]) -> Any:
        """Run an order action at the replay's exchange time after the entry latency."""
        await self.sleep_exchange(self.ex.latency.entry_ns())
        self._advance()
        try:
            return fn()
        finally:
            self._flush_user_events()

    def _reject_injected(self) -> None:
        if self.faults.reject_orders > 0:
            self.faults.reject_orders -= 1
            self._count("reject_orders")
            raise bad(codes.NEW_ORDER_REJECTED, "Order rejected (injected fault).")

    async def place(self, account: str, params: dict[str, Any]) -> dict:
        """Validate and place one order (shared by REST and the WebSocket API)."""
        kwargs = parse_order(params, self.ex.instruments)
        self._reject_injected()
        order = await self._exec(lambda: self._core(self.ex.place, account, **kwargs))
        await self.sleep_exchange(self.ex.latency.ack_ns())
        return order.to_binance(self.ex.instruments[order.symbol])

    def _core(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except Exception as exc:
            if type(exc).__name__ == "SimReject":
                raise bad(exc.code, exc.msg) from None
            if type(exc).__name__ == "SimUnavailable":     # Binance's 503: the request failed, safe to retry
                raise SimHttpError(503, codes.UNKNOWN, "Service Unavailable.") from None
            raise

    async def cancel(self, account: str, params: dict[str, Any]) -> dict:
        inst = instrument_of(params, self.ex.instruments)
        oid, cid = order_ref(params)
        order = await self._exec(lambda: self._core(self.ex.cancel, account, inst.symbol, order_id=oid,
                                                    client_order_id=cid))
        return order.to_binance(inst)

    async def query(self, account: str, params: dict[str, Any]) -> dict:
        inst = instrument_of(params, self.ex.instruments)
        oid, cid = order_ref(params)
        self._advance()
        order = self._core(self.ex.query, account, inst.symbol, order_id=oid, client_order_id=cid)
        return order.to_binance(inst)

    async def _order_new(self, request: web.Request) -> web.Response:
        params, acct, h = await self._params(request, signed=True, weight=0, orders=1)
        if self.faults.lose_acks > 0:
            self.faults.lose_acks -= 1
            self._count("lose_acks")
            with contextlib.suppress(SimHttpError):
                await self.place(acct.account, params)
            if request.transport is not None:
                request.transport.close()                 # executed, never answered
            raise asyncio.CancelledError
        return self._json(await self.place(acct.account, params), h)

    async def _order_cancel(self, request: web.Request) -> web.Response:
        params, acct, h = await self._params(request, signed=True)
        return self._json(await self.cancel(acct.account, params), h)

    async def _order_query(self, request: web.Request) -> web.Response:
        params, acct, h = await self._params(request, signed=True)
        return self._json(await self.query(acct.account, params), h)

    async def _open_orders(self, request: web.Request) -> web.Response:
        symbol = request.query.get("symbol") or None              # empty: every symbol, as absent
        params, acct, h = await self._params(request, signed=True, weight=1 if symbol else 40)
        if symbol:
            instrument_of(params, self.ex.instruments)
        self._advance()
        orders = self._core(self.ex.open_orders, acct.account, symbol)
        return self._json([o.to_binance(self.ex.instruments[o.symbol]) for o in orders], h)

    async def _cancel_all(self, request: web.Request) -> web.Response:
        params, acct, h = await self._params(request, signed=True)
        inst = instrument_of(params, self.ex.instruments)
        await self._exec(lambda: self.ex.cancel_all(acct.account, inst.symbol))
        return self._json({"code": 200, "msg": "The operation of cancel all open order is done."}, h)

    async def _countdown(self, request: web.Request) -> web.Response:
        params, acct, h = await self._params(request, signed=True, weight=10)
        inst = instrument_of(params, self.ex.instruments)
        countdown = as_int(params, "countdownTime")
        if countdown is None:
            raise bad(codes.MANDATORY_PARAM_EMPTY_OR_MALFORMED,
                      codes.MESSAGES[codes.MANDATORY_PARAM_EMPTY_OR_MALFORMED].format(param="countdownTime"))
        self._advance()
        self._core(self.ex.countdown_cancel_all, acct.account, inst.symbol, countdown)
        return self._json({"symbol": inst.symbol, "countdownTime": str(countdown)}, h)

    async def _position_risk(self, request: web.Request) -> web.Response:
        params, acct, h = await self._params(request, signed=True, weight=5)
        symbol = params.get("symbol")
        if symbol:
            instrument_of(params, self.ex.instruments)
        self._advance()
        rows = [p.to_binance(self.ex.instruments[p.symbol])
                for p in self.ex.positions(acct.account) if not symbol or p.symbol == symbol]
        return self._json(rows, h)

    async def _balance(self, request: web.Request) -> web.Response:
        _, acct, h = await self._params(request, signed=True, weight=5)
        self._advance()
        return self._json([self.ex.balance(acct.account).to_binance(self.cfg.account)], h)

    async def _position_risk_v3(self, request: web.Request) -> web.Response:
        """v3: only symbols with a position or open orders, with v3's margin fields."""
        params, acct, h = await self._params(request, signed=True, weight=5)
        symbol = params.get("symbol")
        if symbol:
            instrument_of(params, self.ex.instruments)
        self._advance()
        with_orders = {o.symbol for o in self.ex.open_orders(acct.account)}
        rows = []
        for p in self.ex.positions(acct.account):
            if (symbol and p.symbol != symbol) or (p.qty_lots == 0 and p.symbol not in with_orders):
                continue
            row = p.to_binance(self.ex.instruments[p.symbol])
            for k in ("leverage", "maxNotionalValue", "marginType", "isAutoAddMargin"):
                row.pop(k, None)
            row.update(marginAsset="USDT", initialMargin=f"{p.initial_margin:.8f}", maintMargin="0",
                       positionInitialMargin=f"{p.initial_margin:.8f}", openOrderInitialMargin="0", adl=0,
                       bidNotional="0", askNotional="0")
            rows.append(row)
        return self._json(rows, h)

    async def _account(self, request: web.Request) -> web.Response:
        _, acct, h = await self._params(request, signed=True, weight=5)
        self._advance()
        b = self.ex.balance(acct.account)
        bal = b.to_binance(self.cfg.account)
        positions = [{"symbol": p.symbol, "positionSide": "BOTH",
                      "positionAmt": self.ex.instruments[p.symbol].fmt_qty(p.qty_lots),
                      "unrealizedProfit": f"{p.unrealized_pnl:.8f}", "isolatedMargin": "0",
                      "notional": f"{p.notional:.8f}", "isolatedWallet": "0",
                      "initialMargin": f"{p.initial_margin:.8f}", "maintMargin": "0",
                      "updateTime": p.update_ns // 10**6}
                     for p in self.ex.positions(acct.account) if p.qty_lots]
        return self._json({
            "totalWalletBalance": bal["balance"], "totalUnrealizedProfit": bal["crossUnPnl"],
            "totalMarginBalance": f"{b.margin_balance:.8f}", "totalPositionInitialMargin": f"{b.position_margin:.8f}",
            "totalOpenOrderInitialMargin": f"{b.order_margin:.8f}", "totalCrossWalletBalance": bal["balance"],
            "totalCrossUnPnl": bal["crossUnPnl"], "availableBalance": bal["availableBalance"],
            "maxWithdrawAmount": bal["maxWithdrawAmount"], "canTrade": True, "canDeposit": True,
            "canWithdraw": True, "assets": [{"asset": "USDT", "walletBalance": bal["balance"],
                                             "unrealizedProfit": bal["crossUnPnl"],
                                             "marginBalance": f"{b.margin_balance:.8f}",
                                             "availableBalance": bal["availableBalance"]}],
            "positions": positions}, h)

    async def _leverage(self, request: web.Request) -> web.Response:
        params, acct, h = await self._params(request, signed=True)
        inst = instrument_of(params, self.ex.instruments)
        lev = as_int(params, "leverage")
        if lev is None or not 1 <= lev <= 125:
            raise bad(-4028, "Leverage is not valid.")
        self.ex.set_leverage(acct.account, lev)
        return self._json({"leverage": lev, "maxNotionalValue": "1000000000", "symbol": inst.symbol}, h)

    async def _commission(self, request: web.Request) -> web.Response:
        params, _, h = await self._params(request, signed=True, weight=20)
        inst = instrument_of(params, self.ex.instruments)
        return self._json({"symbol": inst.symbol, "makerCommissionRate": str(self.ex.cfg.maker_fee),
                           "takerCommissionRate": str(self.ex.cfg.taker_fee)}, h)

    async def _open_order(self, request: web.Request) -> web.Response:
        params, acct, h = await self._params(request, signed=True)
        order = await self.query(acct.account, params)
        if order["status"] not in ("NEW", "PARTIALLY_FILLED"):
            raise bad(-2013, "Order does not exist.")
        return self._json(order, h)

    async def _user_trades(self, request: web.Request) -> web.Response:
        """``GET /fapi/v1/userTrades`` (weight 5): see ``history`` for the parameters' semantics."""
        params, acct, h = await self._params(request, signed=True, weight=5)
        inst = instrument_of(params, self.ex.instruments)
        self._advance()
        fills = select_trades(self.ex.fills(acct.account, inst.symbol), params, self.exchange_now() // 1_000_000)
        return self._json([user_trade(f, inst) for f in fills], h)

    async def _all_orders(self, request: web.Request) -> web.Response:
        """``GET /fapi/v1/allOrders`` (weight 5): every order, open or final, as ``GET /fapi/v1/order`` shows it."""
        params, acct, h = await self._params(request, signed=True, weight=5)
        inst = instrument_of(params, self.ex.instruments)
        self._advance()
        orders = select_orders(self.ex.orders(acct.account, inst.symbol), params, self.exchange_now() // 1_000_000)
        return self._json([o.to_binance(inst) for o in orders], h)

    # ---- user data stream -------------------------------------------------------------------------------------

    async def _listen_key_new(self, request: web.Request) -> web.Response:
        _, acct, h = await self._params(request, signed=False, key_only=True)
        for key, (account, _) in self.listen_keys.items():       # Binance returns the live key if there is one
            if account == acct.account:
                self.listen_keys[key] = (account, time.monotonic() + LISTEN_KEY_TTL_S)
                return self._json({"listenKey": key}, h)
        key = secrets.token_urlsafe(48)
        self.listen_keys[key] = (acct.account, time.monotonic() + LISTEN_KEY_TTL_S)
        return self._json({"listenKey": key}, h)

    async def _listen_key_keep(self, request: web.Request) -> web.Response:
        _, acct, h = await self._params(request, signed=False, key_only=True)
        for key, (account, _) in self.listen_keys.items():
            if account == acct.account:
                self.listen_keys[key] = (account, time.monotonic() + LISTEN_KEY_TTL_S)
                return self._json({"listenKey": key}, h)
        raise SimHttpError(400, codes.INVALID_LISTEN_KEY, codes.MESSAGES[codes.INVALID_LISTEN_KEY], h)

    async def _listen_key_close(self, request: web.Request) -> web.Response:
        _, acct, h = await self._params(request, signed=False, key_only=True)
        for key in [k for k, (a, _) in self.listen_keys.items() if a == acct.account]:
            del self.listen_keys[key]
        return self._json({}, h)

    # ---- WebSockets -------------------------------------------------------------------------------------------

    async def _ws_market(self, request: web.Request) -> web.WebSocketResponse:
        streams = {s for s in request.query.get("streams", "").split("/") if s}
        return await self._serve_market(request, streams, combined=request.path == "/stream")

    async def _ws_named(self, request: web.Request) -> web.WebSocketResponse:
        name = request.match_info["name"]
        if name in self.listen_keys:
            return await self._serve_user(request, name)
        return await self._serve_market(request, {name}, combined=False)

    async def _serve_market(self, request: web.Request, streams: set[str], combined: bool) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(heartbeat=None, max_msg_size=1 << 20)
        await ws.prepare(request)
        sub = _Sub(ws, streams, combined)
        self.subs.append(sub)
        try:
            async for msg in ws:
                if msg.type == WSMsgType.TEXT:
                    await self._subscription(sub, msg.data)
        finally:
            self._drop_sub(sub)
        return ws

    async def _subscription(self, sub: _Sub, text: str) -> None:
        """Binance's live subscribe/unsubscribe/list requests on a market connection; a malformed one is answered
        with Binance's error (3 invalid JSON, 2 invalid request, 1 unknown method) and changes nothing."""
        try:
            req = orjson.loads(text)
            method, rid = req["method"], req.get("id")
        except (orjson.JSONDecodeError, KeyError, TypeError, AttributeError):
            await sub.ws.send_str(orjson.dumps({"error": {"code": 3, "msg": "Invalid JSON"}}).decode())
            return
        params = req.get("params") or []
        if method in ("SUBSCRIBE", "UNSUBSCRIBE") and not _stream_names(params):
            await sub.ws.send_str(orjson.dumps({"error": {"code": 2, "msg": "Invalid request: params must be a "
                                                          "list of stream names"}, "id": rid}).decode())
            return
        if method == "SUBSCRIBE":
            sub.streams.update(params)
            result = None
        elif method == "UNSUBSCRIBE":
            sub.streams.difference_update(params)
            result = None
        elif method == "LIST_SUBSCRIPTIONS":
            result = sorted(sub.streams)
        else:
            await sub.ws.send_str(orjson.dumps({"error": {"code": 1, "msg": f"Unknown method {str(method)[:40]}"},
                                                "id": rid}).decode())
            return
        if method != "LIST_SUBSCRIPTIONS":
            sub.combined = True
        await sub.ws.send_str(orjson.dumps({"result": result, "id": rid}).decode())

    async def _serve_user(self, request: web.Request, key: str) -> web.WebSocketResponse:
        account, _ = self.listen_keys[key]
        ws = web.WebSocketResponse(heartbeat=None)
        await ws.prepare(request)
        socks = self.user_sockets.setdefault(account, [])
        socks.append(ws)
        try:
            async for _msg in ws:
                pass
        finally:
            with contextlib.suppress(ValueError):
                socks.remove(ws)
        return ws

    async def _ws_api(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(heartbeat=None)
        await ws.prepare(request)
        client = request.remote or "?"
        async for msg in ws:
            if msg.type != WSMsgType.TEXT:
                continue
            asyncio.get_running_loop().create_task(self._ws_api_request(ws, client, msg.data))
        return ws

    async def _ws_api_request(self, ws: web.WebSocketResponse, client: str, text: str) -> None:
        """Answer one WebSocket API request (``wsapi_server.handle`` answers every one, malformed ones too)."""
        from engine.venues.sim.wsapi_server import handle

        answer = await handle(self, client, text)
        if answer is not None:
            with contextlib.suppress(ConnectionResetError, RuntimeError):
                await ws.send_str(answer)

    # ---- admin (loopback tooling and tests) -------------------------------------------------------------------

    async def _status(self, request: web.Request) -> web.Response:
        return self._json({"exchange_time_ns": self.exchange_now(), "published": self.published,
                           "finished": self.finished.is_set(), "lap": self.ex.lap, "loop": self.cfg.loop_on_end,
                           "subscribers": len(self.subs),
                           "faults": self.faults_view(), "fault_counts": dict(self.fault_counts),
                           "banned_until_ms": self.banned_until_ms}, {})

    async def _set_faults(self, request: web.Request) -> web.Response:
        try:
            changes = orjson.loads(await request.read())
        except orjson.JSONDecodeError:
            raise bad(codes.INVALID_PARAMETER, "faults must be a JSON object") from None
        try:
            self.set_faults(changes)
        except FaultError as exc:
            raise bad(codes.INVALID_PARAMETER, str(exc)) from None
        return self._json(self.faults_view(), {})

    def faults_view(self) -> dict[str, Any]:
        """The faults as set, except ``ban_s`` while a ban is in force: the seconds it has left."""
        view = self.faults.as_dict()
        left_ms = self.banned_until_ms - time.time_ns() // 1_000_000
        if not view["ban_s"] and left_ms > 0:
            view["ban_s"] = (left_ms + 999) // 1000
        return view

    def set_faults(self, changes: Any) -> None:
        """Validate and apply fault settings (all or none: ``FaultError`` on any bad key or value). A positive
        ``stall_market_ms`` starts a market stall now (0 ends one); ``ban_s`` bans from the next request on."""
        applied = self.faults.update(changes)
        if "stall_market_ms" in applied:
            ms = applied["stall_market_ms"]
            self._market_stall_until = time.monotonic() + ms / 1000 if ms else 0.0
            if ms:
                self._count("stall_market_ms")
        if applied.get("ban_s", -1) == 0:
            self.banned_until_ms = 0                      # ban_s=0 also lifts a ban in force


def user_trade(f: Any, inst: Any) -> dict:
    """A fill as Binance's ``/fapi/v1/userTrades`` row."""
    price = inst.ticks_to_price(f.price_ticks)
    qty = inst.lots_to_qty(f.qty_lots)
    return {"buyer": f.side == "BUY", "commission": f"{f.commission:.8f}", "commissionAsset": "USDT",
            "id": f.trade_id, "maker": f.maker, "orderId": f.order_id, "price": inst.fmt_price(f.price_ticks),
            "qty": inst.fmt_qty(f.qty_lots),
            "quoteQty": f"{price * qty:.8f}", "realizedPnl": f"{f.realized_pnl:.8f}", "side": f.side,
            "positionSide": "BOTH", "symbol": f.symbol, "time": f.time_ns // 1_000_000}


def _mark_alias(stream: str) -> str | None:
    """``x@markPrice`` (3 s) and ``x@markPrice@1s`` name the same recorded mark prices: a subscriber to either
    gets the tape's; None for any other stream."""
    if stream.endswith("@markPrice"):
        return stream + "@1s"
    if stream.endswith("@markPrice@1s"):
        return stream[:-3]
    return None


def _stream_names(params: Any) -> bool:
    """Whether a SUBSCRIBE/UNSUBSCRIBE ``params`` is what Binance takes: a list of stream-name strings."""
    return isinstance(params, list) and all(isinstance(p, str) and 0 < len(p) <= 200 for p in params)


def _dumps(obj: Any) -> str:
    return orjson.dumps(obj).decode()
