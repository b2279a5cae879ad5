"""WebSocket connections: combined market streams and the user data stream, with reconnect and backoff.

Market messages go to ``on_raw(bytes)`` untouched (the scanner reads Binance's bytes directly). Every (re)connect
calls ``on_connect`` first, so the engine can mark its books unsynced and fetch fresh snapshots: a reconnect is
always a gap. Backoff doubles from ``backoff_s`` to ``max_backoff_s`` and resets after a healthy minute.

User data events are decoded here; one that is malformed (not JSON, not an object, an ``ORDER_TRADE_UPDATE``
without its order or with a field of the wrong type: ``read_order_update`` says which) is counted in
``UserStream.bad_events``, logged without its content (no listenKey reaches a log), and skipped: the stream
lives on.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import aiohttp
import orjson

from engine.errors import DataError
from engine.venues.binance.rest import BinanceRest

log = logging.getLogger(__name__)

MAINNET_WS = "wss://fstream.binance.com"
TESTNET_WS = "wss://stream.binancefuture.com"


async def reconnect_forever(stream, connect_once, errors: tuple[type[BaseException], ...],
                            on_down=None) -> None:
    """Run ``connect_once`` until ``stream._stop``; after each drop wait ``stream.backoff_s``, doubling to
    ``stream.max_backoff_s`` and back to the start after a connection that lived a healthy minute."""
    delay = stream.backoff_s
    while not stream._stop:
        started = time.monotonic()
        try:
            await connect_once()
        except errors as exc:
            log.warning("%s: connection failed: %s", type(stream).__name__, type(exc).__name__)
        finally:
            if on_down is not None:
                on_down()
            stream.connected.clear()
        if stream._stop:
            break
        stream.disconnects += 1
        if time.monotonic() - started > 60:
            delay = stream.backoff_s
        await asyncio.sleep(delay)
        delay = min(delay * 2, stream.max_backoff_s)


class _Reconnecting:
    """Shared connect/backoff loop; subclasses say what URL to open and what to do with each message."""

    def __init__(self, session: aiohttp.ClientSession, backoff_s: float = 0.25, max_backoff_s: float = 10.0) -> None:
        self.session = session
        self.backoff_s = backoff_s
        self.max_backoff_s = max_backoff_s
        self.connects = 0
        self.disconnects = 0
        self.connected = asyncio.Event()
        self._stop = False
        self._ws: aiohttp.ClientWebSocketResponse | None = None

    async def url(self) -> str:
        raise NotImplementedError

    async def handle(self, data: bytes) -> None:
        raise NotImplementedError

    async def on_open(self) -> None:
        """Called after each successful connect, before the first message is read."""

    async def run(self) -> None:
        await reconnect_forever(self, self._connection, (TimeoutError, aiohttp.ClientError, OSError),
                                lambda: setattr(self, "_ws", None))

    async def _connection(self) -> None:
        async with self.session.ws_connect(await self.url(), heartbeat=30, max_msg_size=0, autoping=True) as ws:
            self._ws = ws
            self.connects += 1
            await self.on_open()
            self.connected.set()
            await self._read(ws)

    async def _read(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        async for msg in ws:
            if msg.type == aiohttp.WSMsgType.TEXT:
                await self.handle(msg.data.encode())
            elif msg.type == aiohttp.WSMsgType.BINARY:
                await self.handle(msg.data)
            elif msg.type in (aiohttp.WSMsgType.ERROR, aiohttp.WSMsgType.CLOSE):
                break

    async def close(self) -> None:
        self._stop = True
        if self._ws is not None:
            with contextlib.suppress(Exception):
                await self._ws.close()


def _cut(value: Any, keep: int = 32) -> str:
    """A short printable form of an untrusted value, for a log line."""
    text = repr(value)
    return text if len(text) <= keep else text[:keep] + "..."


class MarketStream(_Reconnecting):
    """A combined-stream connection (``/stream?streams=a/b/c``) delivering raw message bytes."""

    def __init__(self, ws_base: str, streams: list[str], session: aiohttp.ClientSession,
                 on_raw: Callable[[bytes], None], on_connect: Callable[[], Awaitable[None]] | None = None,
                 **kw: float) -> None:
        super().__init__(session, **kw)
        if not streams:
            raise ValueError("no streams to subscribe to")
        self.ws_base = ws_base.rstrip("/")
        self.streams = streams
        self.on_raw = on_raw
        self.on_connect = on_connect
        self.messages = 0

    async def url(self) -> str:
        return f"{self.ws_base}/stream?streams={'/'.join(self.streams)}"

    async def on_open(self) -> None:
        if self.on_connect is not None:
            await self.on_connect()

    async def _read(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        on_raw = self.on_raw                      # bound once: this loop is the hot path
        text, binary = aiohttp.WSMsgType.TEXT, aiohttp.WSMsgType.BINARY
        async for msg in ws:
            if msg.type is text:
                self.messages += 1
                on_raw(msg.data.encode())
            elif msg.type is binary:
                self.messages += 1
                on_raw(msg.data)
            else:
                break


_DECIMAL = re.compile(r"-?[0-9]{1,20}(?:\.[0-9]{1,20})?")


@dataclass(frozen=True, slots=True)
class OrderUpdate:
    """An ``ORDER_TRADE_UPDATE``'s order (``o``) with every field the OMS reads checked and typed.

    The trade fields (``trade_id`` ... ``time_ms``) are set for ``kind == "TRADE"`` and zero otherwise."""

    cid: str
    order_id: int | None
    executed: Decimal
    kind: str | None
    trade_id: int = 0
    price: Decimal = Decimal(0)
    qty: Decimal = Decimal(0)
    fee: Decimal = Decimal(0)
    maker: bool = False
    time_ms: int = 0


def _field_error(key: str, value: Any, wanted: str) -> DataError:
    shown = repr(value) if len(repr(value)) <= 24 else repr(value)[:24] + "..."
    return DataError(f"ORDER_TRADE_UPDATE: o.{key} is {type(value).__name__} {shown}, not {wanted}")


def _dec_field(o: dict, key: str, default: str | None = None, *, positive: bool = False,
               signed: bool = False) -> Decimal:
    """A decimal-string field (Binance sends them as strings; a JSON integer is read too), absent or null:
    ``default``. Non-negative unless ``signed``; non-zero too when ``positive``."""
    value = o.get(key)
    if value is None:
        value = default
    if type(value) is int:
        value = str(value)
    if not isinstance(value, str) or not _DECIMAL.fullmatch(value):
        raise _field_error(key, value, "a decimal string")
    d = Decimal(value)
    if (d < 0 and not signed) or (positive and d <= 0):
        raise _field_error(key, value, "a positive decimal" if positive else "a non-negative decimal")
    return d


def _int_field(o: dict, key: str, optional: bool = False) -> int | None:
    """A non-negative JSON integer field (not a bool), or None when ``optional`` and absent."""
    value = o.get(key)
    if value is None and optional:
        return None
    if type(value) is not int or value < 0:
        raise _field_error(key, value, "a non-negative integer")
    return value


def read_order_update(ev: dict) -> OrderUpdate:
    """The order of an ``ORDER_TRADE_UPDATE`` event, checked; ``DataError`` names the first bad field."""
    o = ev.get("o")
    if not isinstance(o, dict):
        raise DataError(f"ORDER_TRADE_UPDATE without its order: o is {type(o).__name__}, not an object")
    cid, kind = o.get("c", ""), o.get("x")
    if not isinstance(cid, str):
        raise _field_error("c", cid, "a string")
    if kind is not None and not isinstance(kind, str):
        raise _field_error("x", kind, "a string")
    base = {"cid": cid, "order_id": _int_field(o, "i", optional=True), "executed": _dec_field(o, "z", "0"),
            "kind": kind}
    if kind != "TRADE":
        return OrderUpdate(**base)
    maker = o.get("m", False)
    if not isinstance(maker, bool):
        raise _field_error("m", maker, "a bool")
    event_time = o.get("T") or ev.get("T") or 0
    return OrderUpdate(**base, trade_id=_int_field(o, "t"), price=_dec_field(o, "L", positive=True),
                       qty=_dec_field(o, "l", positive=True), fee=_dec_field(o, "n", "0", signed=True),
                       maker=maker, time_ms=_int_field({"T": event_time}, "T"))


class UserStream(_Reconnecting):
    """The user data stream: a listenKey from REST, kept alive, renewed on expiry; events as dicts.

    ``bad_events`` counts the frames skipped as malformed: unreadable, not an object, or refused by
    ``on_event`` (a ``DataError`` or any other failure of the handler on that event)."""

    def __init__(self, ws_base: str, rest: BinanceRest, session: aiohttp.ClientSession,
                 on_event: Callable[[dict], Awaitable[None] | None], keepalive_s: float = 30 * 60,
                 on_connect: Callable[[], Awaitable[None]] | None = None, **kw: float) -> None:
        super().__init__(session, **kw)
        self.ws_base = ws_base.rstrip("/")
        self.rest = rest
        self.on_event = on_event
        self.on_connect = on_connect
        self.keepalive_s = keepalive_s
        self.listen_key: str | None = None
        self._keepalive: asyncio.Task | None = None
        self.bad_events = 0
        self.last_event_s = 0.0                   # time.monotonic() of the last frame received (/readyz says it)

    async def url(self) -> str:
        self.listen_key = await self.rest.new_listen_key()
        if self._keepalive is None:
            self._keepalive = asyncio.create_task(self._keep_alive())
        return f"{self.ws_base}/ws/{self.listen_key}"

    async def on_open(self) -> None:
        if self.on_connect is not None:
            await self.on_connect()

    async def handle(self, data: bytes) -> None:
        """One frame: decoded and given to ``on_event``; a malformed one is counted, logged and skipped."""
        self.last_event_s = time.monotonic()
        event = self._decode(data)
        if event is None:
            return
        kind = event.get("e")
        if kind == "listenKeyExpired":
            if self._ws is not None:
                await self._ws.close()            # the loop reconnects with a new key
            return
        try:
            out = self.on_event(event)
            if asyncio.iscoroutine(out):
                await out
        except DataError as exc:
            self._skip(str(exc))
        except Exception as exc:                  # one event the handler cannot take must not end the stream
            self._skip(f"{_cut(kind)} event failed in its handler: {type(exc).__name__}", exc)

    def _decode(self, data: bytes | str) -> dict | None:
        """The frame as a JSON object, or None (counted and logged) when it is not one."""
        try:
            event = orjson.loads(data)
        except orjson.JSONDecodeError:
            self._skip(f"not JSON ({len(data)} bytes)")
            return None
        if not isinstance(event, dict):
            self._skip(f"a JSON {type(event).__name__}, not an object")
            return None
        return event

    def _skip(self, reason: str, exc: BaseException | None = None) -> None:
        """Count and log one skipped event; the reason never holds the frame itself (nor the listenKey)."""
        self.bad_events += 1
        log.warning("user stream: malformed event skipped (%s); %d so far", reason, self.bad_events,
                    exc_info=exc)

    async def _keep_alive(self) -> None:
        while not self._stop:
            await asyncio.sleep(self.keepalive_s)
            try:
                await self.rest.keepalive_listen_key()
            except Exception as exc:
                log.warning("listenKey keepalive failed: %s", exc)

    async def close(self) -> None:
        await super().close()
        if self._keepalive is not None:
            self._keepalive.cancel()
        if self.listen_key is not None:
            with contextlib.suppress(Exception):
                await self.rest.close_listen_key()
