"""Guards: small watchers that run beside the hot path and report to the risk gateway or keep the venue honest.

- ``watch_equity``: the KillSwitch's drawdown check every 0.5 s (equity from the positions at the mid); a trip
  calls the kill callable handed in.
- ``watch_loop_lag``: how late the event loop wakes a timer (a late loop delays every order: nautilus #917).
- ``keep_clock``: the venue-clock offset, re-measured every ``venue.time_sync_s`` and at once after a -1021.
- ``dead_mans_switch``: Binance's countdownCancelAll, renewed at a third of its period, so the venue cancels our
  orders by itself if this process dies or hangs.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from decimal import Decimal
from typing import Any

from engine.errors import VenueError

log = logging.getLogger(__name__)


def equity(oms: Any, feed: Any, instruments: dict[str, Any]) -> Decimal:
    """Net PnL over every position, marked at the book's mid (realised when no mid)."""
    total = Decimal(0)
    for sym, pos in oms.positions.positions.items():
        mark = None
        if sym in instruments:
            mid = feed[sym].book.mid
            if mid == mid:
                mark = Decimal(repr(mid)) * instruments[sym].tick_size
        total += pos.net_pnl(mark)
    return total


async def watch_equity(killswitch: Any, value: Callable[[], Decimal],
                       kill: Callable[[str], Awaitable[Any]], period_s: float = 0.5) -> None:
    while True:
        await asyncio.sleep(period_s)
        reason = killswitch.update(value())
        if reason:
            await kill(reason)


class LoopLag:
    """How late the event loop fires a ``period`` timer, in s (last value and the histogram)."""

    def __init__(self, period_s: float = 0.05) -> None:
        self.period_s = period_s
        self.last_s = 0.0

    async def run(self) -> None:
        from engine.metrics import HISTOGRAMS

        hist = HISTOGRAMS["loop_lag"]
        loop = asyncio.get_running_loop()
        while True:
            t0 = loop.time()
            await asyncio.sleep(self.period_s)
            self.last_s = max(0.0, loop.time() - t0 - self.period_s)
            hist.observe(self.last_s)


async def keep_clock(rest: Any, every_s: float) -> None:
    """Keep the venue-clock offset current: every ``every_s``, and at once when the venue said a request's
    timestamp was outside its recvWindow (-1021)."""
    suspect = rest.clock_suspect
    while True:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(suspect.wait(), every_s)
        suspect.clear()
        before = rest.time_offset_ms
        try:
            after = await rest.sync_time()
        except VenueError as exc:
            log.warning("venue clock: could not measure the offset: %s", exc)
            continue
        if abs(after - before) >= 100:
            log.warning("venue clock: offset moved %+d ms (now %d ms)", after - before, after)


async def dead_mans_switch(rest: Any, symbols: list[str], countdown_ms: int) -> None:
    while True:
        for sym in symbols:
            try:
                await rest.countdown_cancel_all(sym, countdown_ms)
            except VenueError as exc:
                log.warning("countdownCancelAll %s: %s", sym, exc)
        await asyncio.sleep(countdown_ms / 3000)
