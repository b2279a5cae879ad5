"""What the market did after each intent: the mid at fixed horizons after its arrival and after its last fill.

For every intent the engine journals ten horizon rows (``outcomes`` table; ``docs/dataset.md``): 1, 5, 30, 60
and 300 s after the ``arrival`` and after the ``last_fill``. A row is ``pending`` until it comes due, then
``observed`` (the mid, and when it was read) or ``missing`` (why). Nothing is ever guessed:

- a horizon is read from the live, fresh book when it comes due (the runner's timer looks every ``timer_ms``),
  or, when it came due before anyone looked (the last fill's anchor is only known when the execution ends),
  from the feed's mid history (``SymbolFeed.mid_at``): the mid in force at the due time, as sampled at a book
  update (at most every 100 ms; ``observed_ms`` is the sample's time, never after the due time). A resync
  marks the history unknown from its start, and a sample older than the feed's stale limit does not count;
- a horizon that came due while the engine was down (found pending at start-up, due before it), while the
  symbol's book was not synced, or after the tape ended, is ``missing`` with the reason;
- the rows already resolved are in the journal: a restart keeps them, and carries on with the pending ones.

Derived values (move in bps, PnL of the executed size) are computed at export from these rows and the fills
(``engine.dataset.export``): the engine only records what it saw.
"""

from __future__ import annotations

import heapq
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

log = logging.getLogger(__name__)
MS = 1_000_000
SEC = 1_000_000_000
HORIZONS_S = (1, 5, 30, 60, 300)
ANCHORS = ("arrival", "last_fill")
LIVE_LAG_NS = 250 * MS         # read the live book up to this late; later, the mid history at the due time


@dataclass(order=True)
class Due:
    """One pending horizon."""

    due_ns: int
    intent_id: str = field(compare=False)
    anchor: str = field(compare=False)
    h_s: int = field(compare=False)
    symbol: str = field(compare=False)


class Outcomes:
    """The pending horizons of every intent, in due order, resolved by ``on_timer`` and journalled.

    ``journal``: the engine's journal; ``feed``: the feed (``feed[symbol]``); ``clock``: exchange ns;
    ``stale_ns``: a history sample older than this before the due time does not count (the book was quiet or
    unsynced)."""

    def __init__(self, journal: Any, feed: Any, clock: Callable[[], int], stale_ns: int = 5 * SEC) -> None:
        self.journal, self.feed, self.clock, self.stale_ns = journal, feed, clock, stale_ns
        self.started_ns = clock()
        self._heap: list[Due] = []
        self.observed = self.missing = 0

    @property
    def pending(self) -> int:
        return len(self._heap)

    def arm(self, intent_id: str, symbol: str, side: str, anchor: str, t0_ns: int, anchor_mid: Decimal | None) -> None:
        """Plan the five horizons after ``anchor`` at ``t0_ns`` (exchange time)."""
        rows = [(h, (t0_ns + h * SEC) // MS) for h in HORIZONS_S]
        self.journal.outcome_plan(intent_id, symbol, side, anchor, rows, _s(anchor_mid))
        for h in HORIZONS_S:
            heapq.heappush(self._heap, Due(t0_ns + h * SEC, intent_id, anchor, h, symbol))

    def not_applicable(self, intent_id: str, symbol: str, side: str, anchor: str, why: str,
                       status: str = "n/a") -> None:
        """The five rows of an anchor that never came (``n/a``: ``last_fill`` of an intent with no fill) or was
        not seen (``missing``: the intent ended while the engine was down)."""
        self.journal.outcome_plan(intent_id, symbol, side, anchor, [(h, None) for h in HORIZONS_S], None,
                                  status=status, reason=why)

    def restore(self, rows: list[dict]) -> int:
        """Pending rows from the journal at start-up: those already due passed while the engine was down
        (``missing``); the rest are watched again. Returns how many were marked missing."""
        now, lost = self.clock(), 0
        for r in rows:
            due_ns = r["due_ms"] * MS if r["due_ms"] is not None else None
            if due_ns is None or due_ns <= now:
                self.journal.outcome(r["intent_id"], r["anchor"], r["h_s"], "missing",
                                     reason="engine down when it came due")
                lost += 1
                continue
            heapq.heappush(self._heap, Due(due_ns, r["intent_id"], r["anchor"], r["h_s"], r["symbol"]))
        self.missing += lost
        return lost

    def on_timer(self, now: int) -> None:
        """Resolve every horizon due by ``now`` (the runner's timer; a heap peek when none is)."""
        heap = self._heap
        while heap and heap[0].due_ns <= now:
            self._resolve(heapq.heappop(heap), now)

    def market_over(self, symbol: str, why: str) -> int:
        """No more market data will come for ``symbol`` (the tape ended): its pending horizons are missing now,
        with ``why`` (they could never be observed). Returns how many."""
        keep, over = [], []
        for d in self._heap:
            (over if d.symbol == symbol else keep).append(d)
        heapq.heapify(keep)
        self._heap = keep
        for d in sorted(over):
            self._missing(d, why)
        return len(over)

    def _resolve(self, d: Due, now: int) -> None:
        try:
            sf = self.feed[d.symbol]
        except KeyError:
            return self._missing(d, f"{d.symbol} is not in the feed")
        if d.due_ns < self.started_ns:
            return self._missing(d, "engine down when it came due")
        fresh = sf.synced and not sf.unavailable and now - sf.last_book_ns <= self.stale_ns
        if now - d.due_ns <= LIVE_LAG_NS and fresh:
            mid = sf.book.mid
            if mid == mid:
                return self._observed(d, now, mid, sf)
        t, mid = sf.mid_at(d.due_ns)                    # the mid in force at the due time, sampled at t
        if t >= 0 and mid != mid:
            return self._missing(d, "book not synced when it came due")
        if t >= 0 and d.due_ns - t <= self.stale_ns and t >= self.started_ns:
            return self._observed(d, t, mid, sf)
        if sf.unavailable:
            why = sf.unavailable
        elif not sf.synced:
            why = "book not synced"
        else:
            why = f"no book update within {self.stale_ns / SEC:g} s before it"
        self._missing(d, why)

    def _observed(self, d: Due, at_ns: int, mid_ticks: float, sf: Any) -> None:
        mid = Decimal(repr(mid_ticks)) * sf.instrument.tick_size
        self.journal.outcome(d.intent_id, d.anchor, d.h_s, "observed", at_ns // MS, _s(mid))
        self.observed += 1

    def _missing(self, d: Due, why: str) -> None:
        self.journal.outcome(d.intent_id, d.anchor, d.h_s, "missing", reason=why)
        self.missing += 1


def _s(d: Decimal | None) -> str | None:
    return None if d is None else f"{d:f}"
