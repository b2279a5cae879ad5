"""Guards: small watchers that run beside the hot path and report to the risk gateway or keep the venue honest.

- ``watch_equity``: the KillSwitch's drawdown check every 0.5 s (equity from the positions at the mid); a trip
  calls the kill callable handed in.
- ``watch_loop_lag``: how late the event loop wakes a timer (a late loop delays every order: nautilus #917).
- ``keep_clock``: the venue-clock offset, re-measured every ``venue.time_sync_s`` and at once after a -1021.
- ``dead_mans_switch``: Binance's countdownCancelAll, renewed at a third of its period, so the venue cancels our
  orders by itself if this process dies or hangs.

KillSwitch triggers: each a small class handed what it reads, with ``check(now_s) -> (trigger, reason)`` (an
empty trigger while all is well), run by ``watch_triggers`` every period, which calls the kill callable once:

- ``BookWatch``: a book unsynced, stale or crossed for ``limit_s`` while orders work on its symbol;
- ``LatencyWatch``: the order round trip (mean of the new samples) or the loop lag over a limit for a sustained
  period (the last measure holds while no new one comes);
- ``RejectStreak``: the venue rejected this many orders in a row (an ack or a fill breaks the streak);
- ``ReachWatch``: the market stream, the user stream or the order socket down for ``limit_s``;
- ``watch_equity``: the KillSwitch's drawdown from the day's peak and the day's loss (the day's open and peak
  kept in the journal's kv, so a restart the same day keeps them).

The loop stall and the kill that must work while the loop is blocked are the watchdog thread's
(``engine.kill.Watchdog``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
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


async def watch_equity(killswitch: Any, value: Callable[[], Decimal], kill: Callable[[str, str], Awaitable[Any]],
                       period_s: float = 0.5, clock: Callable[[], int] = time.time_ns,
                       save: Callable[[dict], None] = lambda snap: None) -> None:
    """Every ``period_s``: the equity to the KillSwitch (``clock``: epoch ns, for the trading day); ``save``
    gets its snapshot whenever the day's open or peak moved; a trip calls ``kill(trigger, reason)``."""
    saved: dict = {}
    while True:                                   # the first look at once: the day opens at the session's equity
        reason = killswitch.update(value(), clock())
        snap = killswitch.snapshot()
        if snap != saved:
            save(snap)
            saved = snap
        if reason:
            await kill(killswitch.trigger, reason)
        await asyncio.sleep(period_s)


Verdict = tuple[str, str]          # (trigger, reason); ("", "") while all is well
OK: Verdict = ("", "")


class Sustained:
    """Since when a condition has held without a break (None while it does not)."""

    def __init__(self) -> None:
        self.since: float | None = None

    def held(self, true: bool, now_s: float) -> float:
        """Feed the condition now; returns for how long it has held (0 when it does not)."""
        if not true:
            self.since = None
            return 0.0
        if self.since is None:
            self.since = now_s
        return now_s - self.since


class BookWatch:
    """A symbol's book unsynced, stale (no diff for ``stale_ns`` of exchange time) or crossed for ``limit_s``
    while orders work on it (``working(symbol)``)."""

    def __init__(self, feed: Any, working: Callable[[str], bool], clock: Callable[[], int], stale_ns: int,
                 limit_s: float) -> None:
        self.feed, self.working, self.clock, self.stale_ns, self.limit_s = feed, working, clock, stale_ns, limit_s
        self._bad: dict[str, Sustained] = {}

    def reset(self) -> None:
        self._bad.clear()

    def problem(self, sf: Any, now_ns: int) -> str:
        """What is wrong with ``sf``'s book now ('' when healthy)."""
        if not sf.synced:
            return "unsynced"
        if sf.book.crossed:
            return "crossed"
        if now_ns - sf.last_book_ns > self.stale_ns:
            return f"stale ({(now_ns - sf.last_book_ns) / 1e9:.1f} s without a diff)"
        return ""

    def check(self, now_s: float) -> Verdict:
        now_ns = self.clock()
        for sf in self.feed.symbols:
            what = self.problem(sf, now_ns) if self.working(sf.symbol) else ""
            held = self._bad.setdefault(sf.symbol, Sustained()).held(bool(what), now_s)
            if what and held >= self.limit_s:
                return "book", f"{sf.symbol} book {what} for {held:.1f} s while orders work"
        return OK


class LatencyWatch:
    """The order round trip (the mean of the samples new since the last check; the last value holds while none
    comes), the feed's latency (exchange event time to our receipt, ``feed_latency``) or the loop lag over
    ``limit_s`` for ``sustain_s`` without a break."""

    def __init__(self, round_trip: Any, loop_lag: Callable[[], float], limit_s: float, sustain_s: float,
                 feed_latency: Callable[[], float] = lambda: 0.0) -> None:
        self.hist, self.loop_lag, self.limit_s, self.sustain_s = round_trip, loop_lag, limit_s, sustain_s
        self.feed_latency = feed_latency
        self._n, self._total, self.rtt_s = sum(round_trip.counts), round_trip.total, 0.0
        self._rtt, self._lag, self._feed = Sustained(), Sustained(), Sustained()

    def reset(self) -> None:
        self._rtt, self._lag, self._feed, self.rtt_s = Sustained(), Sustained(), Sustained(), 0.0

    def _round_trip(self) -> float:
        n, total = sum(self.hist.counts), self.hist.total
        if n > self._n:
            self.rtt_s = (total - self._total) / (n - self._n)
        self._n, self._total = n, total
        return self.rtt_s

    def check(self, now_s: float) -> Verdict:
        rtt, lag, feed = self._round_trip(), self.loop_lag(), self.feed_latency()
        for what, value, sus in (("order round trip", rtt, self._rtt), ("loop lag", lag, self._lag),
                                 ("feed latency", feed, self._feed)):   # a blocked loop delays the feed too
            held = sus.held(value > self.limit_s, now_s)
            if value > self.limit_s and held >= self.sustain_s:
                return "latency", (f"{what} {value * 1000:.0f} ms over {self.limit_s * 1000:.0f} ms "
                                   f"for {held:.1f} s")
        return OK


class RejectStreak:
    """Venue rejects in a row (a local refusal never reaches the venue and does not count); an acknowledgement
    or a fill ends the streak. ``wrap`` puts it in front of the OMS's order callback."""

    def __init__(self, limit: int) -> None:
        self.limit, self.streak, self.last = limit, 0, ""
        self._seen: set[str] = set()

    def reset(self) -> None:
        self.streak = 0

    def on_order(self, o: Any, fill: Any) -> None:
        if o.state.value == "REJECTED" and o.reject_code and o.client_order_id not in self._seen:
            self._seen.add(o.client_order_id)
            self.streak += 1
            self.last = f"{o.reject_code} {o.reason}"
        elif fill is not None or o.state.value in ("ACKNOWLEDGED", "FILLED"):
            self.streak = 0

    def wrap(self, callback: Callable[[Any, Any], None]) -> Callable[[Any, Any], None]:
        def on_order(o: Any, fill: Any) -> None:
            self.on_order(o, fill)
            callback(o, fill)
        return on_order

    def check(self, now_s: float) -> Verdict:
        if self.streak >= self.limit:
            return "rejects", f"{self.streak} venue rejects in a row (last: {self.last})"
        return OK


class ReachWatch:
    """Each named connection (``up()`` -> bool) down for ``limit_s`` without a break; ``retry`` (optional, per
    name) is called while one is down, e.g. to reconnect the lazily connected order socket."""

    def __init__(self, probes: dict[str, Callable[[], bool]], limit_s: float,
                 retry: dict[str, Callable[[], None]] | None = None) -> None:
        self.probes, self.limit_s, self.retry = probes, limit_s, retry or {}
        self._down = {name: Sustained() for name in probes}
        self._retried: dict[str, float] = {}

    def reset(self) -> None:
        self._down = {name: Sustained() for name in self.probes}

    def check(self, now_s: float) -> Verdict:
        for name, up in self.probes.items():
            ok = up()
            held = self._down[name].held(not ok, now_s)
            if not ok and name in self.retry and now_s - self._retried.get(name, -1e9) >= 1.0:
                self._retried[name] = now_s                # at most one attempt a second
                self.retry[name]()
            if not ok and held >= self.limit_s:
                return "unreachable", f"venue unreachable: {name} down for {held:.1f} s"
        return OK


async def watch_triggers(watchers: list[Any], kill: Callable[[str, str], Awaitable[Any]], halted: Callable[[], bool],
                         period_s: float = 0.1) -> None:
    """Run every watcher's ``check`` each period; the first that fires calls ``kill(trigger, reason)`` (not while
    trading is already halted: one kill at a time)."""
    loop = asyncio.get_running_loop()
    while True:
        await asyncio.sleep(period_s)
        now = loop.time()
        for w in watchers:
            trigger, reason = w.check(now)
            if trigger and not halted():
                log.warning("kill switch trigger %s: %s", trigger, reason)
                await kill(trigger, reason)
                task = asyncio.current_task()
                if task is not None and task.cancelling():   # a stop during the kill: asyncio.wait_for (3.11)
                    raise asyncio.CancelledError           # can swallow it when the inner call ends at once
                for each in watchers:          # a condition that goes on counts afresh after a resume
                    each.reset()
                break


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
