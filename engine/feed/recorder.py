"""``tapeshot record``: Binance's public streams plus REST depth snapshots, written as ``<ns stamp> <raw JSON>``.

One gzip file per symbol per rotation (``usdm_<symbol>_<UTC yyyymmdd_HHMMSS>.gz``), the exact format of the
shared recordings, so ``tapeshot verify-book`` and the sim replay anything recorded. A REST snapshot is written
after every (re)connect and at the start of every rotated file (a file can be verified on its own; read in
order, later snapshots are ignored while the book is synced). A reconnect is a real gap in the recording and
``verify-book`` will say so.
"""

from __future__ import annotations

import asyncio
import gzip
import logging
import time
from datetime import UTC, datetime
from pathlib import Path

import aiohttp

from engine.errors import VenueError
from engine.venues.binance.rest import BinanceRest
from engine.venues.binance.streams import MarketStream

log = logging.getLogger(__name__)

RECORD_KINDS = ("depth@0ms", "bookTicker", "trade", "markPrice@1s")


class _SymbolFile:
    def __init__(self, out_dir: Path, symbol: str) -> None:
        self.out_dir = out_dir
        self.symbol = symbol
        self.file: gzip.GzipFile | None = None
        self.path: Path | None = None
        self.opened_at = 0.0
        self.lines = 0

    def open(self) -> None:
        self.close()
        stamp = datetime.now(UTC).strftime("%Y%m%d_%H%M%S")
        path = self.out_dir / f"usdm_{self.symbol.lower()}_{stamp}.gz"
        n = 1
        while path.exists():
            path = self.out_dir / f"usdm_{self.symbol.lower()}_{stamp}_{n}.gz"
            n += 1
        self.path = path
        self.file = gzip.open(path, "wb", compresslevel=6)  # noqa: SIM115 - lives until rotation
        self.opened_at = time.monotonic()

    def write(self, stamp_ns: int, raw: bytes) -> None:
        if self.file is None:
            self.open()
        self.file.write(b"%d %s\n" % (stamp_ns, raw))
        self.lines += 1

    def close(self) -> None:
        if self.file is not None:
            self.file.close()
            self.file = None


class Recorder:
    """Records the given symbols until ``stop()``; ``files`` lists what it wrote."""

    def __init__(self, symbols: list[str], rest: BinanceRest, ws_base: str, out_dir: str | Path,
                 session: aiohttp.ClientSession, rotate_s: float = 3600.0, kinds: tuple[str, ...] = RECORD_KINDS,
                 snapshot_delay_s: float = 0.25) -> None:
        if not symbols:
            raise ValueError("nothing to record")
        self.rest = rest
        self.out_dir = Path(out_dir)
        self.out_dir.mkdir(parents=True, exist_ok=True)
        self.rotate_s = rotate_s
        self.snapshot_delay_s = snapshot_delay_s
        self.files = {s.upper(): _SymbolFile(self.out_dir, s.upper()) for s in symbols}
        self._by_prefix = {f'{{"stream":"{s.lower()}@'.encode(): s.upper() for s in symbols}
        streams = [f"{s.lower()}@{k}" for s in symbols for k in kinds]
        self.stream = MarketStream(ws_base, streams, session, self.on_raw, self.on_connect)
        self.written: list[Path] = []
        self.unrouted = 0
        self._tasks: set[asyncio.Task] = set()

    def on_raw(self, data: bytes) -> None:
        stamp = time.time_ns()
        head = data[: data.find(b"@") + 1]
        symbol = self._by_prefix.get(head)
        if symbol is None:
            self.unrouted += 1
            return
        f = self.files[symbol]
        if f.file is not None and time.monotonic() - f.opened_at >= self.rotate_s:
            f.open()
            self._remember(f)
            self._spawn(self._snapshot(symbol, 0.0))
        elif f.file is None:
            f.open()
            self._remember(f)
        f.write(stamp, data)

    def _remember(self, f: _SymbolFile) -> None:
        if f.path is not None and f.path not in self.written:
            self.written.append(f.path)

    async def on_connect(self) -> None:
        for symbol in self.files:
            self._spawn(self._snapshot(symbol, self.snapshot_delay_s))

    def _spawn(self, coro) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _snapshot(self, symbol: str, delay: float) -> None:
        await asyncio.sleep(delay)                      # let the stream buffer diffs that bracket it
        for attempt in range(5):
            try:
                raw = await self.rest.depth_raw(symbol, 1000)
                break
            except VenueError as exc:
                log.warning("%s: snapshot failed (%s), retrying", symbol, exc)
                await asyncio.sleep(0.2 * 2**attempt)
        else:
            return
        f = self.files[symbol]
        if f.file is None:
            f.open()
            self._remember(f)
        f.write(time.time_ns(), raw)

    async def run(self) -> None:
        await self.stream.run()

    async def stop(self) -> None:
        await self.stream.close()
        for t in list(self._tasks):
            t.cancel()
        for f in self.files.values():
            f.close()
