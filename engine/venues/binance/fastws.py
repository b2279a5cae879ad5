"""picows WebSocket connections: the market stream and the WebSocket API with the aiohttp classes' interfaces.

picows parses frames in Cython and calls a listener synchronously from ``data_received``, so a market message
reaches ``on_raw`` without a task switch or an intermediate message object; and ``WSTransport.send`` writes to the
socket with ``send(2)`` before it returns. ``PicowsWsApi.send_now`` uses that for order entry: it signs,
serialises and writes the request with no ``await`` before the write, so the bytes are on the socket before the
decision handler that asked for them returns.

Both classes keep the aiohttp versions' behaviour (``streams.MarketStream``, ``wsapi.WsApi``): reconnect with
backoff, ``on_connect`` before the first message of every connection, counters, answers matched by id,
``rateLimits`` fed to the limiter, every request in flight failed with ``VenueServerError`` on a drop and
``VenueServerError(sent=False)`` when no connection could be made. Frames: TEXT and BINARY payloads are delivered
as the same bytes; fragmented messages are reassembled; PINGs are answered by picows (``enable_auto_pong``), a
silent peer is pinged after 30 s idle and dropped 10 s later; a CLOSE from the peer is echoed and the connection
closed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

import orjson
import picows
from picows import WSCloseCode, WSFrame, WSListener, WSMsgType, WSTransport

from engine.errors import VenueServerError
from engine.keys import Credentials
from engine.metrics import HISTOGRAMS
from engine.model import Instrument
from engine.venues.binance import codes
from engine.venues.binance.limiter import RateLimiter
from engine.venues.binance.signing import encode_value
from engine.venues.binance.streams import reconnect_forever
from engine.venues.binance.wsapi import WsApi
from ext.orders import PLACE_SENT, Hmac, OrderGate, OrderWire

log = logging.getLogger(__name__)

_TEXT, _BINARY, _CONT, _CLOSE = WSMsgType.TEXT, WSMsgType.BINARY, WSMsgType.CONTINUATION, WSMsgType.CLOSE
_CONNECT_ERRORS = (picows.WSError, OSError, TimeoutError)
MAX_FRAME = 1 << 26                 # aiohttp ran unlimited (max_msg_size=0); Binance's largest frames are ~100 kB
_CONNECT_KW: dict[str, Any] = {"enable_auto_ping": True, "auto_ping_idle_timeout": 30,
                               "auto_ping_reply_timeout": 10, "max_frame_size": MAX_FRAME}


class _Listener(WSListener):
    """Hands each complete TEXT/BINARY message to ``deliver`` as bytes; reassembles fragments; answers CLOSE.

    ``deliver`` is an attribute so its owner can swap it (hold messages while ``on_connect`` runs, then go direct).
    """

    def __init__(self, deliver: Callable[[bytes], None], on_lost: Callable[[WSTransport], None]) -> None:
        super().__init__()
        self.deliver = deliver
        self.on_lost = on_lost
        self.count = 0
        self._parts: bytearray | None = None

    def on_ws_frame(self, transport: WSTransport, frame: WSFrame) -> None:
        mt = frame.msg_type
        if frame.fin and (mt is _TEXT or mt is _BINARY):          # the hot path: one frame, one message
            self.count += 1
            self.deliver(frame.get_payload_as_bytes())
        elif mt is _TEXT or mt is _BINARY:
            self._parts = bytearray(frame.get_payload_as_memoryview())
        elif mt is _CONT:
            self._continuation(frame)
        elif mt is _CLOSE:
            if not transport.is_close_frame_sent:
                transport.send_close(frame.get_close_code())
            transport.disconnect()

    def _continuation(self, frame: WSFrame) -> None:
        if self._parts is None:
            raise picows.WSProtocolError(WSCloseCode.PROTOCOL_ERROR, "continuation frame without a first frame")
        self._parts += frame.get_payload_as_memoryview()
        if frame.fin:
            data, self._parts = bytes(self._parts), None
            self.count += 1
            self.deliver(data)

    def on_ws_disconnected(self, transport: WSTransport) -> None:
        self._parts = None
        self.on_lost(transport)


class PicowsMarketStream:
    """A combined-stream connection (``/stream?streams=a/b/c``) delivering raw message bytes, over picows.

    Same constructor and attributes as ``streams.MarketStream``; ``session`` is accepted for that and not used.
    ``on_raw`` runs synchronously inside picows' frame callback; messages that arrive while ``on_connect`` is
    being awaited are held and delivered, in order, right after it returns.
    """

    def __init__(self, ws_base: str, streams: list[str], session: Any, on_raw: Callable[[bytes], None],
                 on_connect: Callable[[], Awaitable[None]] | None = None, backoff_s: float = 0.25,
                 max_backoff_s: float = 10.0) -> None:
        if not streams:
            raise ValueError("no streams to subscribe to")
        self.ws_base = ws_base.rstrip("/")
        self.streams = streams
        self.session = session
        self.on_raw = on_raw
        self.on_connect = on_connect
        self.backoff_s = backoff_s
        self.max_backoff_s = max_backoff_s
        self.connects = 0
        self.disconnects = 0
        self.connected = asyncio.Event()
        self._counted = 0                       # messages of connections already closed
        self._listener: _Listener | None = None
        self._transport: WSTransport | None = None
        self._stop = False

    @property
    def messages(self) -> int:
        """Messages delivered so far, over all connections."""
        return self._counted + (self._listener.count if self._listener is not None else 0)

    async def url(self) -> str:
        return f"{self.ws_base}/stream?streams={'/'.join(self.streams)}"

    async def run(self) -> None:
        """Connect, deliver, reconnect with backoff (doubling, reset after a healthy minute) until ``close``."""
        await reconnect_forever(self, self._connection, _CONNECT_ERRORS, lambda: setattr(self, "_transport", None))

    async def _connection(self) -> None:
        """One connection from connect to disconnect."""
        held: list[bytes] = []
        listener = _Listener(held.append, _ignore)
        transport, _ = await picows.ws_connect(lambda: listener, await self.url(), **_CONNECT_KW)
        if self._listener is not None:
            self._counted += self._listener.count
        self._listener, self._transport = listener, transport
        self.connects += 1
        try:
            if self.on_connect is not None:
                await self.on_connect()
            for data in held:                       # what arrived during on_connect, then straight through
                self.on_raw(data)
            listener.deliver = self.on_raw
            self.connected.set()
            await transport.wait_disconnected()
        finally:
            transport.disconnect()

    async def close(self) -> None:
        self._stop = True
        tr = self._transport
        if tr is not None and not tr.is_disconnected:
            with contextlib.suppress(Exception):
                tr.send_close(WSCloseCode.OK)
                tr.disconnect()


def _order_wire(creds: Credentials, recv_window_ms: int, limiter: RateLimiter) -> OrderWire | None:
    """The C order writer for these credentials, or None (with a warning) when the key cannot be written plainly."""
    try:
        if creds.ed25519:
            return OrderWire(creds.api_key, signer=creds.sign, recv_window_ms=recv_window_ms, limits=limiter.core)
        return OrderWire(creds.api_key, creds.secret.reveal(), recv_window_ms=recv_window_ms, limits=limiter.core)
    except ValueError as exc:
        log.warning("WebSocket API orders take the general path: %s", exc)
        return None


def _ignore(_transport: WSTransport) -> None:
    """The market stream learns of a drop from ``wait_disconnected``."""


class PicowsWsApi(WsApi):
    """One WebSocket API session over picows; ``WsApi``'s interface and error semantics, plus ``send_now``.

    ``session`` is accepted for the shared constructor and not used. ``send_now`` given a decision stamp records
    decision to bytes-on-the-socket in ``HISTOGRAMS["decision_to_send"]`` (the order round trip, by order type,
    is the OMS's to record: it knows the type).
    """

    def __init__(self, url: str, session: Any, creds: Credentials, now_ms: Callable[[], int],
                 limiter: RateLimiter | None = None, recv_window_ms: int = 5000, timeout_s: float = 10.0) -> None:
        super().__init__(url, session, creds, now_ms, limiter, recv_window_ms, timeout_s)
        self._transport: WSTransport | None = None
        self._sent_ns: dict[int, int] = {}
        self._mac = None if creds.ed25519 else Hmac(creds.secret.reveal())    # keyed once (midstates in C)
        self._key_order: dict[frozenset, tuple[str, ...]] = {}
        self._wire = _order_wire(creds, recv_window_ms, self.limiter)
        self._wire_syms: dict[str, int] = {}
        if self._wire is not None:
            self._ids = self._wire               # one id sequence for the C path and the general one
        # the object whose time_offset_ms now_ms adds (BinanceRest): read directly on the order path
        owner = getattr(now_ms, "__self__", None)
        self._offset_src = owner if isinstance(getattr(owner, "time_offset_ms", None), int) else None
        self.last_write_ns = 0                     # CLOCK_MONOTONIC right after the last request's write

    @property
    def connected(self) -> bool:
        tr = self._transport
        return tr is not None and not tr.is_disconnected and not tr.is_close_frame_sent

    async def connect(self) -> None:
        async with self._lock:
            if self.connected:
                return
            try:
                tr, _ = await picows.ws_connect(lambda: _Listener(self._on_message, self._on_lost), self.url,
                                                websocket_handshake_timeout=self.timeout_s, **_CONNECT_KW)
            except _CONNECT_ERRORS as exc:
                raise VenueServerError(codes.DISCONNECTED, f"WebSocket API: {type(exc).__name__}", sent=False) from None
            self._transport = tr
            if self._wire is not None:
                self._wire.transport = tr

    def _answer(self, msg: Any, order: bool = False) -> None:
        """``WsApi._answer`` (malformed answers counted and skipped); the results of ``order.*`` requests must
        be objects."""
        rid = msg.get("id") if isinstance(msg, dict) else None
        sent = self._sent_ns.pop(rid, 0) if type(rid) is int else 0
        super()._answer(msg, order or bool(sent))

    def _on_lost(self, transport: WSTransport) -> None:
        if transport is not self._transport and self._transport is not None:
            return
        self._transport = None
        if self._wire is not None:
            self._wire.transport = None
        self._fail_pending()
        self._sent_ns.clear()

    def signed(self, params: dict[str, Any]) -> dict[str, Any]:
        """``WsApi.signed`` with the HMAC keyed once (same params, same signature; ~15 µs less on a cold path)."""
        p = {k: v for k, v in params.items() if v is not None}
        p["apiKey"] = self.creds.api_key
        p["recvWindow"] = self.recv_window_ms
        p["timestamp"] = self.now_ms()
        keys = self._key_order.get(frozenset(p))            # the same few parameter sets recur: sort each once
        if keys is None:
            keys = self._key_order[frozenset(p)] = tuple(sorted(p))
        payload = "&".join([k + "=" + (v if type(v) is str else encode_value(v)) for k, v in zip(keys, map(p.get, keys),
                                                                                                    strict=True)])
        p["signature"] = self.creds.sign(payload) if self._mac is None else self._mac.hexdigest(payload.encode())
        return p

    def _write(self, method: str, params: dict[str, Any], decision_ns: int = 0,
               on_sent: Callable[[], None] | None = None) -> asyncio.Future:
        """Sign, serialise and write one request now; the future of its answer. Raises if not connected (before
        ``on_sent``, which is called right before the write)."""
        tr = self._transport
        if tr is None or tr.is_disconnected or tr.is_close_frame_sent:
            raise VenueServerError(codes.DISCONNECTED, "WebSocket API send failed: not connected")
        rid = next(self._ids)
        frame = orjson.dumps({"id": rid, "method": method, "params": self.signed(params)})
        if on_sent is not None:
            on_sent()
        try:
            tr.send(_TEXT, frame)
        except (OSError, RuntimeError) as exc:
            raise VenueServerError(codes.DISCONNECTED, f"WebSocket API send failed: {type(exc).__name__}") from None
        return self._written(rid, method, decision_ns)

    def _written(self, rid: int, method: str, decision_ns: int, sent_ns: int = 0) -> asyncio.Future:
        """Bookkeeping once request ``rid`` is on the socket (at ``sent_ns`` when the writer stamped it, else
        now): its answer's future (no answer can arrive before the loop runs again), the decision-to-send
        histogram, the round-trip stamp for orders."""
        self.last_write_ns = now = sent_ns or time.monotonic_ns()
        self._pending[rid] = fut = asyncio.get_running_loop().create_future()
        if decision_ns:
            HISTOGRAMS["decision_to_send"].observe((now - decision_ns) / 1e9)
        if method.startswith("order."):
            self._sent_ns[rid] = now
        return fut

    async def send(self, method: str, params: dict[str, Any], *, weight: int = 1, orders: int = 0,
                   max_wait_ms: int | None = None, on_sent: Callable[[], None] | None = None) -> asyncio.Future:
        """Sign and write one request; returns the future of its answer (bytes are on the socket on return).
        ``max_wait_ms`` bounds the limiter's wait (``RiskRefused("deadline")``, nothing sent); the request is
        signed after the wait and any connect; ``on_sent`` is called right before the write."""
        await self.limiter.acquire(weight, orders, max_wait_ms)
        if not self.connected:
            await self.connect()
        return self._write(method, params, on_sent=on_sent)

    def send_now(self, method: str, params: dict[str, Any], *, weight: int = 1, orders: int = 0,
                 decision_ns: int = 0, max_wait_ms: int | None = None,
                 on_sent: Callable[[], None] | None = None) -> asyncio.Future:
        """Write the request before returning when connected and within the rate limits, else as soon as it may
        go (connecting first, as ``send``). Returns the future of the answer, which fails as ``call`` would
        (``VenueServerError`` on a drop or after ``timeout_s``; ``sent=False`` when no connection could be made;
        ``RiskRefused("deadline")`` when the limiter would hold it over ``max_wait_ms``). ``decision_ns``: the
        decision's ``time.monotonic_ns()``, for the decision-to-send histogram. ``on_sent``: called right before
        the bytes are written (synchronously here when the request goes at once)."""
        late = max_wait_ms is not None and max_wait_ms < 0          # acquire refuses it with the reason
        if late or not self.connected or self.limiter.delay_ms(weight, orders) > 0:
            return asyncio.ensure_future(self.call(method, params, weight=weight, orders=orders,
                                                   max_wait_ms=max_wait_ms, on_sent=on_sent))
        try:
            fut = self._write(method, params, decision_ns, on_sent)
        except VenueServerError as exc:
            fut = asyncio.get_running_loop().create_future()
            fut.set_exception(exc)
            return fut
        self.limiter.charge(weight, orders)
        asyncio.get_running_loop().call_later(self.timeout_s, self._expire, fut, method)
        return fut

    def _expire(self, fut: asyncio.Future, method: str) -> None:
        if not fut.done():
            fut.set_exception(VenueServerError(codes.TIMEOUT, f"{method}: no answer in {self.timeout_s}s: "
                                                              "outcome unknown"))

    def place_order_now(self, params: dict[str, Any], decision_ns: int = 0, *, max_wait_ms: int | None = None,
                        on_sent: Callable[[], None] | None = None) -> asyncio.Future:
        """``order.place`` through ``send_now``: the order is on the wire when this returns (if it could go)."""
        return self.send_now("order.place", params, weight=0, orders=1, decision_ns=decision_ns,
                             max_wait_ms=max_wait_ms, on_sent=on_sent)

    def place_fast(self, inst: Instrument, buy: bool, lots: int, ticks: int | None, tif: str | None,
                   reduce_only: bool, cid: str, decision_ns: int = 0) -> asyncio.Future | None:
        """A LIMIT (``ticks``) or MARKET (``ticks`` None) ``order.place`` written, signed, rate-checked and sent in C
        (``ext.orders.OrderWire``) before this returns; the future of its answer, as ``place_order_now``'s. None
        when it cannot go at once (not connected, a rate window full, or an order the wire does not write): nothing
        was sent and the caller takes ``place_order_now``, which connects or waits."""
        wire = self._wire
        if wire is None:
            return None
        sym = self._wire_sym(inst)
        src = self._offset_src
        rid = next(self._ids)
        try:
            if wire.place(self._transport, sym, buy, lots, ticks, tif or "GTC", reduce_only, cid, rid,
                          src.time_offset_ms if src is not None else self._offset_ms()) != PLACE_SENT:
                return None
        except ValueError as exc:
            log.warning("order %s cannot take the fast path (%s): sending it the general way", cid, exc)
            return None
        except (OSError, RuntimeError) as exc:
            fut = asyncio.get_running_loop().create_future()
            fut.set_exception(VenueServerError(codes.DISCONNECTED,
                                               f"WebSocket API send failed: {type(exc).__name__}"))
            return fut
        fut = self._written(rid, "order.place", decision_ns)
        asyncio.get_running_loop().call_later(self.timeout_s, self._expire, fut, "order.place")
        return fut

    def _wire_sym(self, inst: Instrument) -> int:
        """The symbol's index in the C writer (registered with its grids on first use)."""
        sym = self._wire_syms.get(inst.symbol)
        if sym is None:
            sym = self._wire_syms[inst.symbol] = self._wire.add_symbol(
                inst.symbol, *Instrument.grid(inst.tick_size), *Instrument.grid(inst.step_size))
        return sym

    def gate(self, inst: Instrument, sf: Any, position: Any, risk: Any, live: set, orders: dict,
             stale_ns: int) -> OrderGate | None:
        """An ``ext.orders.OrderGate`` for ``inst`` on this session: risk (``risk``, an ``ext.orders.RiskCore``,
        on ``sf``'s book) and the ``order.place`` request in one C call; ``fired`` then registers its answer.
        None when this session has no C writer or no clock offset to read (the general path serves)."""
        if self._wire is None or self._offset_src is None:
            return None
        return OrderGate(risk, self._wire, sf, self._wire_sym(inst), float(inst.tick_size), float(inst.step_size),
                         position, live, orders, self._offset_src, stale_ns)

    def fired(self, rid: int, decision_ns: int = 0) -> asyncio.Future:
        """The future of the answer to ``order.place`` request ``rid``, which an ``OrderGate`` has just sent."""
        fut = self._written(rid, "order.place", decision_ns, self._wire.last_write_ns)
        asyncio.get_running_loop().call_later(self.timeout_s, self._expire, fut, "order.place")
        return fut

    def _offset_ms(self) -> int:
        """The venue's clock minus ours in ms, from ``now_ms`` (when it is not a ``BinanceRest``'s)."""
        return self.now_ms() - time.time_ns() // 1_000_000

    async def close(self) -> None:
        tr = self._transport
        if tr is not None and not tr.is_disconnected:
            with contextlib.suppress(Exception):
                tr.send_close(WSCloseCode.OK)
                tr.disconnect()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(tr.wait_disconnected(), 2.0)
