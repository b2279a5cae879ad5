"""Live market data: a WebSocket market stream feeding ``ext.feed.Feed``, and Binance's snapshot procedure.

Every (re)connect resyncs every book: diffs buffer in the feed while the REST snapshot is fetched (after a short
delay, so the buffer already brackets it); a snapshot older than the buffer is fetched again with backoff. One
fetch per symbol is in flight at a time; counts go to ``stats`` for metrics.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from time import perf_counter_ns

import aiohttp

from engine.errors import VenueError
from engine.metrics import HISTOGRAMS
from engine.venues.binance.rest import BinanceRest
from engine.venues.binance.streams import MarketStream

log = logging.getLogger(__name__)
SAMPLE = 64
MSG_TO_DECISION = HISTOGRAMS["msg_to_decision"]

DEFAULT_STREAMS = ("depth@0ms", "bookTicker", "trade")


class MarketData:
    """Owns the market stream for a feed's symbols and keeps every book synced."""

    def __init__(self, feed, rest: BinanceRest, ws_base: str, session: aiohttp.ClientSession,
                 on_update: Callable[[int, object], None] | None = None, kinds: tuple[str, ...] = DEFAULT_STREAMS,
                 snapshot_limit: int = 1000, snapshot_delay_s: float = 0.05, max_retry_s: float = 5.0,
                 stream_cls: type | None = None) -> None:
        self.feed = feed
        self.rest = rest
        self.on_update = on_update
        self.snapshot_limit = snapshot_limit
        self.snapshot_delay_s = snapshot_delay_s
        self.max_retry_s = max_retry_s
        streams = [f"{sf.symbol.lower()}@{k}" for sf in feed.symbols for k in kinds]
        self.stream = (stream_cls or MarketStream)(ws_base, streams, session, self.on_raw, self.on_connect)
        self._fetching: set[str] = set()
        self._tasks: set[asyncio.Task] = set()
        self.stats = {"snapshots": 0, "snapshot_errors": 0, "reconnects": 0}
        self._n = 0

    def on_raw(self, data: bytes) -> None:
        """The hot path: one raw message into the feed, then whoever acts on book/signal updates. One message
        in ``SAMPLE`` is timed end to end for the msg_to_decision histogram."""
        self._n += 1
        timed = self._n % SAMPLE == 0
        if timed:
            t0 = perf_counter_ns()
        r = self.feed.on_message(data)
        if r > 0:
            if self.on_update is not None:
                self.on_update(r, self.feed.last)
            if timed:
                MSG_TO_DECISION.observe((perf_counter_ns() - t0) / 1e9)
        elif r == 0:
            sf = self.feed.last
            if sf is not None and sf.needs_snapshot and sf.symbol not in self._fetching:
                self._spawn(self._snapshot(sf.symbol))

    async def on_connect(self) -> None:
        if self.stream.connects > 1:
            self.stats["reconnects"] += 1
        for sf in self.feed.symbols:
            sf.request_resync()
            if sf.symbol not in self._fetching:
                self._spawn(self._snapshot(sf.symbol))

    def _spawn(self, coro) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _snapshot(self, symbol: str) -> None:
        self._fetching.add(symbol)
        sf = self.feed[symbol]
        delay = self.snapshot_delay_s
        try:
            while sf.needs_snapshot:
                await asyncio.sleep(delay)
                try:
                    raw = await self.rest.depth_raw(symbol, self.snapshot_limit)
                except VenueError as exc:
                    self.stats["snapshot_errors"] += 1
                    log.warning("%s: depth snapshot failed: %s", symbol, exc)
                else:
                    self.feed.on_snapshot(symbol, raw)
                    self.stats["snapshots"] += 1
                delay = min(max(delay * 2, 0.1), self.max_retry_s)
        finally:
            self._fetching.discard(symbol)

    async def run(self) -> None:
        await self.stream.run()

    async def close(self) -> None:
        await self.stream.close()
        for t in list(self._tasks):
            t.cancel()
