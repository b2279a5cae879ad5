"""Live market data: a WebSocket market stream feeding ``ext.feed.Feed``, and Binance's snapshot procedure.

Every (re)connect resyncs every book: diffs buffer in the feed while the REST snapshot is fetched (after a short
delay, so the buffer already brackets it); a snapshot older than the buffer is fetched again with backoff. One
fetch per symbol is in flight at a time; counts go to ``stats`` for metrics. A failed fetch is routine at first
(a venue, or the sim before its tape has a snapshot, answers 503): logged at INFO, a WARNING only once it
persists (failing for ``WARN_AFTER_S`` seconds); the last failure per symbol is kept in ``last_error``.

Mark prices: ``<symbol>@markPrice@1s`` is subscribed too. Each markPriceUpdate sets, on the symbol's feed object
(``ext.feed.SymbolFeed``, plain Python attributes off the book path): ``mark_price``, ``index_price`` and
``funding_rate`` (``Decimal``), ``next_funding_ms`` and ``mark_time_ms`` (``int``, ms since the epoch); all None
before the first update.

Measuring (``on_raw``): one message in ``SAMPLE`` is timed from its bytes to the algorithms' decision
(``tapeshot_msg_to_decision_seconds{symbol}``) and its feed latency taken: the exchange clock (``clock``) minus the
event time the feed has just kept for it (``tapeshot_feed_latency_seconds{symbol,stream}``); every markPriceUpdate's
latency is taken too. Between samples the cost is one countdown. ``metrics=False`` (the bench's
reference) takes the same path without any of it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from decimal import Decimal, InvalidOperation
from time import perf_counter_ns

import aiohttp
import orjson

from engine.errors import VenueError
from engine.metrics import HISTOGRAMS, Histogram
from engine.venues.binance.rest import BinanceRest
from engine.venues.binance.streams import MarketStream

log = logging.getLogger(__name__)
SAMPLE = 64
MS = 1_000_000
# ext.feed.Feed.on_message's kinds (1 depth applied, 2 bookTicker, 3 trade, 4 aggTrade) -> the stream label
KIND_STREAM = {1: "depth", 2: "ticker", 3: "trade", 4: "trade"}

DEFAULT_STREAMS = ("depth@0ms", "bookTicker", "trade", "markPrice@1s")
WARN_AFTER_S = 10.0            # a snapshot failing for this long is logged as a WARNING (before: INFO)


class MarketData:
    """Owns the market stream for a feed's symbols and keeps every book synced."""

    def __init__(self, feed, rest: BinanceRest, ws_base: str, session: aiohttp.ClientSession,
                 on_update: Callable[[int, object], None] | None = None, kinds: tuple[str, ...] = DEFAULT_STREAMS,
                 snapshot_limit: int = 1000, snapshot_delay_s: float = 0.05, max_retry_s: float = 5.0,
                 stream_cls: type | None = None, clock: Callable[[], int] | None = None,
                 metrics: bool = True) -> None:
        self.feed = feed
        self.rest = rest
        self.on_update = on_update
        self.clock = clock if metrics else None   # the exchange clock (ns) for feed latency; None: not measured
        self._timers = {sf.symbol: _timers(sf.symbol) for sf in feed.symbols}
        if not metrics:
            self.on_raw = self.on_raw_plain     # type: ignore[method-assign]
        self.snapshot_limit = snapshot_limit
        self.snapshot_delay_s = snapshot_delay_s
        self.max_retry_s = max_retry_s
        streams = [f"{sf.symbol.lower()}@{k}" for sf in feed.symbols for k in kinds]
        self.stream = (stream_cls or MarketStream)(ws_base, streams, session, self.on_raw, self.on_connect)
        self._fetching: set[str] = set()
        self._tasks: set[asyncio.Task] = set()
        self.stats = {"snapshots": 0, "snapshot_errors": 0, "reconnects": 0, "mark_prices": 0}
        self.last_error: dict[str, str] = {}             # symbol -> the last snapshot failure ("" after a success)
        self._left = SAMPLE                 # messages until the next sampled one (on_raw)

    def on_raw(self, data: bytes) -> None:
        """The hot path: one raw message into the feed, then whoever acts on book/signal updates. Every
        ``SAMPLE``-th message goes through ``_on_raw_timed`` instead (a countdown: the cheapest test we found)."""
        left = self._left - 1
        if left:
            self._left = left
            r = self.feed.on_message(data)
            if r > 0:
                if self.on_update is not None:
                    self.on_update(r, self.feed.last)
            elif r == 0:
                self._idle(data)
            return
        self._left = SAMPLE
        self._on_raw_timed(data)

    def _on_raw_timed(self, data: bytes) -> None:
        """``on_raw`` for a sampled message: timed end to end and its feed latency taken (``_observe``)."""
        t0 = perf_counter_ns()
        r = self.feed.on_message(data)
        if r > 0:
            if self.on_update is not None:
                self.on_update(r, self.feed.last)
            self._observe(r, t0)
        elif r == 0:
            self._idle(data)

    def on_raw_plain(self, data: bytes) -> None:
        """``on_raw`` without any measuring (``metrics=False``): what the instrumentation is measured against."""
        r = self.feed.on_message(data)
        if r > 0:
            if self.on_update is not None:
                self.on_update(r, self.feed.last)
        elif r == 0:
            self._idle(data)

    def _idle(self, data: bytes) -> None:
        """A message that changed no book: a markPriceUpdate, or a diff buffered while the book waits for a
        snapshot (one is fetched unless a fetch is in flight)."""
        if b"markPriceUpdate" in data:
            self.on_mark(data)
            return
        sf = self.feed.last
        if sf is not None and sf.needs_snapshot and sf.symbol not in self._fetching:
            self._spawn(self._snapshot(sf.symbol))

    def _observe(self, r: int, t0: int) -> None:
        """A sampled message of kind ``r`` (``perf_counter_ns`` ``t0`` at its arrival): bytes to decision, and
        the exchange clock minus its event time (a depth diff's is the book's time, the others the feed's newest
        event time, which they have just set)."""
        t1 = perf_counter_ns()
        sf = self.feed.last
        timers = self._timers.get(sf.symbol)
        if timers is None:
            return
        timers["decision"].observe((t1 - t0) / 1e9)
        stream = KIND_STREAM.get(r)
        if stream is not None and self.clock is not None:
            event_ns = sf.last_book_ns if r == 1 else sf.last_event_ns
            timers[stream].observe((self.clock() - event_ns) / 1e9)

    def on_mark(self, data: bytes) -> None:
        """A markPriceUpdate (off the hot path): its values onto the symbol's feed object."""
        try:
            obj = orjson.loads(data)
            d = obj.get("data", obj)
            sf = self.feed[d["s"]]
            mark, index, rate = Decimal(d["p"]), Decimal(d["i"]), Decimal(d["r"])
        except (orjson.JSONDecodeError, KeyError, TypeError, AttributeError, InvalidOperation):
            log.debug("unreadable markPriceUpdate: %r", data[:120])
            return
        sf.mark_price, sf.index_price, sf.funding_rate = mark, index, rate
        sf.next_funding_ms = d.get("T") if isinstance(d.get("T"), int) else None
        sf.mark_time_ms = d.get("E") if isinstance(d.get("E"), int) else None
        self.stats["mark_prices"] += 1
        timers = self._timers.get(sf.symbol)
        if sf.mark_time_ms is not None and self.clock is not None and timers is not None:
            timers["mark"].observe((self.clock() - sf.mark_time_ms * MS) / 1e9)

    async def on_connect(self) -> None:
        if self.stream.connects > 1:
            self.stats["reconnects"] += 1
        for sf in self.feed.symbols:
            if sf.unavailable:                    # no more market data for it (e.g. the sim's tape has ended)
                continue
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
        failures = 0
        first_failure = 0.0
        loop = asyncio.get_running_loop()
        try:
            while sf.needs_snapshot and not sf.unavailable:
                await asyncio.sleep(delay)
                try:
                    raw = await self.rest.depth_raw(symbol, self.snapshot_limit)
                except VenueError as exc:
                    failures += 1
                    first_failure = first_failure or loop.time()
                    self.stats["snapshot_errors"] += 1
                    self.last_error[symbol] = str(exc)
                    persists = loop.time() - first_failure >= WARN_AFTER_S
                    log.log(logging.WARNING if persists else logging.INFO,
                            "%s: depth snapshot failed (%d in a row; retrying): %s", symbol, failures, exc)
                else:
                    self.feed.on_snapshot(symbol, raw)
                    self.stats["snapshots"] += 1
                    self.last_error[symbol] = ""
                    if failures and loop.time() - first_failure >= WARN_AFTER_S:
                        log.warning("%s: depth snapshot loaded after %d failures", symbol, failures)
                delay = min(max(delay * 2, 0.1), self.max_retry_s)
        finally:
            self._fetching.discard(symbol)

    def not_ready(self) -> list[str]:
        """Why the books are not all synced yet, one line per symbol that is not (empty when all are)."""
        out = []
        for sf in self.feed.symbols:
            if sf.synced:
                continue
            why = sf.unavailable or self.last_error.get(sf.symbol) or \
                ("no market stream connection" if not self.stream.connected.is_set() else
                 f"waiting for a depth snapshot that fits ({sf.n_pending} diffs buffered)")
            out.append(f"{sf.symbol} book {sf.state_name}: {why}")
        return out

    async def run(self) -> None:
        await self.stream.run()

    async def close(self) -> None:
        await self.stream.close()
        for t in list(self._tasks):
            t.cancel()


def _timers(symbol: str) -> dict[str, Histogram]:
    """A symbol's histograms: bytes to decision, and feed latency per stream (depth, trade, ticker, mark)."""
    lat = HISTOGRAMS["feed_latency"]
    return {"decision": HISTOGRAMS["msg_to_decision"].labels(symbol),
            **{stream: lat.labels(symbol, stream) for stream in ("depth", "trade", "ticker", "mark")}}
