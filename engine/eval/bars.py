"""Signals on fixed time bars: the same sniper fed by signals sampled every ``bar_ns`` instead of per event.

``BarFeed`` wraps the replay's ``ext.feed.Feed``: every message still goes through the real kernels (the book
stays live and exact), but what an algorithm reads from ``sf.timing`` (``py_score``, ``snapshot``) is the value
the kernel had at the last bar boundary of the engine's receive clock: the state after every message received
before the boundary, decayed to the boundary. Book reads (``sf.book``) stay live: this isolates what time-bucketing
the *signals* throws away, not what a bar-sampled book would add on top.
"""

from __future__ import annotations

from typing import Any


class BarTiming:
    """Read-only view of a ``Timing`` that only changes at bar boundaries."""

    def __init__(self, timing, bar_ns: int) -> None:
        self.timing = timing
        self.bar_ns = bar_ns
        self.bar = -1                      # index of the boundary the values below were sampled at
        self._score = (0.0, 0.0)
        self._snap: dict[str, float] = {}
        self.samples = 0

    def roll(self, now: int) -> None:
        """Call before the kernel absorbs anything received at ``now``: samples every boundary passed since."""
        bar = now // self.bar_ns
        if bar == self.bar:
            return
        edge = bar * self.bar_ns
        self._score = (self.timing.py_score(0, edge), self.timing.py_score(1, edge))
        self._snap = self.timing.snapshot(edge)
        self.bar = bar
        self.samples += 1

    def py_score(self, side: int, now: int) -> float:
        self.roll(now)
        return self._score[side]

    def snapshot(self, now: int) -> dict[str, float]:
        self.roll(now)
        return dict(self._snap)


class BarSymbolFeed:
    """A ``SymbolFeed`` whose ``timing`` is bar-sampled; everything else is the live feed's."""

    def __init__(self, sf, bar_ns: int) -> None:
        self._sf = sf
        self.timing = BarTiming(sf.timing, bar_ns)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._sf, name)


class BarFeed:
    """Wraps a ``Feed`` so that the replay hands algorithms ``BarSymbolFeed`` objects."""

    def __init__(self, feed, bar_ns: int) -> None:
        if bar_ns <= 0:
            raise ValueError("bar_ns must be > 0")
        self.feed = feed
        self.bar_ns = bar_ns
        self.by_symbol = {sf.symbol: BarSymbolFeed(sf, bar_ns) for sf in feed.symbols}

    def roll(self, now: int) -> None:
        """Close every bar that ended before ``now`` (call before feeding a message received at ``now``)."""
        for bsf in self.by_symbol.values():
            bsf.timing.roll(now)

    def on_message(self, raw: bytes) -> int:
        return self.feed.on_message(raw)

    def on_snapshot(self, symbol: str, raw: bytes) -> int:
        return self.feed.on_snapshot(symbol, raw)

    @property
    def last(self) -> BarSymbolFeed | None:
        sf = self.feed.last
        return None if sf is None else self.by_symbol[sf.symbol]

    @property
    def symbols(self) -> list[BarSymbolFeed]:
        return list(self.by_symbol.values())

    def __getitem__(self, symbol: str) -> BarSymbolFeed:
        return self.by_symbol[symbol]
