"""WebSocket connections: combined market streams and the user data stream, with reconnect and backoff.

Market messages go to ``on_raw(bytes)`` untouched (the scanner reads Binance's bytes directly). Every (re)connect
calls ``on_connect`` first, so the engine can mark its books unsynced and fetch fresh snapshots: a reconnect is
always a gap. Backoff doubles from ``backoff_s`` to ``max_backoff_s`` and resets after a healthy minute.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable

import aiohttp
import orjson

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


class UserStream(_Reconnecting):
    """The user data stream: a listenKey from REST, kept alive, renewed on expiry; events as dicts."""

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

    async def url(self) -> str:
        self.listen_key = await self.rest.new_listen_key()
        if self._keepalive is None:
            self._keepalive = asyncio.create_task(self._keep_alive())
        return f"{self.ws_base}/ws/{self.listen_key}"

    async def on_open(self) -> None:
        if self.on_connect is not None:
            await self.on_connect()

    async def handle(self, data: bytes) -> None:
        event = orjson.loads(data)
        if event.get("e") == "listenKeyExpired" and self._ws is not None:
            await self._ws.close()            # the loop reconnects with a new key
            return
        out = self.on_event(event)
        if asyncio.iscoroutine(out):
            await out

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
