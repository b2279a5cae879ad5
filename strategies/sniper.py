"""Sniper: hold fire while waiting is cheaper, then take the remaining size in one marketable limit IOC.

Fire when the entry score (``ext.timing.Timing.score``, roughly [-1, 1], positive when price pressure is against
waiting) reaches a threshold that falls linearly from ``start`` at arrival to ``end`` at the deadline, or when the
far side's liquidity vacuum opens (``vacuum_fire`` of its band depth pulled in the last few hundred ms). The IOC is
priced at the cap (arrival mid +/- the trader's max slippage, tightened by any limit price), so it takes what the
book offers up to the cap and never worse. Unfilled remainder: wait and fire again. At the deadline the shared rule
applies (``strategies.base``).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from engine.errors import ConfigError
from strategies.base import BUY, Action, Algo


@dataclass(frozen=True, slots=True)
class FireRule:
    """Threshold schedule: ``start`` at arrival, ``end`` at the deadline, linear in elapsed window fraction."""

    start: float = 0.45
    end: float = -1.5

    def __post_init__(self) -> None:
        if self.end > self.start:
            raise ConfigError(f"fire threshold must not rise toward the deadline ({self.start} -> {self.end})")

    def threshold(self, frac_elapsed: float) -> float:
        f = 0.0 if frac_elapsed < 0.0 else 1.0 if frac_elapsed > 1.0 else frac_elapsed
        return self.start + (self.end - self.start) * f


class SniperTrigger:
    """Fire/hold decision for one active intent on one symbol (side 0 buy, 1 sell), in exchange time."""

    __slots__ = ("_inv_window", "arrival_ns", "deadline_ns", "fired_at_ns", "last_score", "rule", "side")

    def __init__(self, side: int, arrival_ns: int, deadline_ns: int, rule: FireRule | None = None) -> None:
        if side not in (0, 1):
            raise ConfigError(f"side must be 0 (buy) or 1 (sell), got {side}")
        if deadline_ns <= arrival_ns:
            raise ConfigError("deadline must come after arrival")
        self.side = side
        self.arrival_ns = arrival_ns
        self.deadline_ns = deadline_ns
        self.rule = rule or FireRule()
        self._inv_window = 1.0 / (deadline_ns - arrival_ns)
        self.fired_at_ns = -1
        self.last_score = 0.0

    def decide(self, sf) -> bool:
        """True when the sniper should fire now, given the symbol feed's book and signals (``SymbolFeed``)."""
        now = sf.last_event_ns
        self.last_score = score = sf.timing.py_score(self.side, now)
        if score >= self.rule.threshold((now - self.arrival_ns) * self._inv_window) or now >= self.deadline_ns:
            if self.fired_at_ns < 0:
                self.fired_at_ns = now
            return True
        return False


@dataclass
class Sniper(Algo):
    name: str = "sniper"
    rule: FireRule = field(default_factory=FireRule)
    vacuum_fire: float = 0.5           # far-side vacuum (fraction of band depth) that fires at once
    vacuum_check_ns: int = 20_000_000  # read the vacuum signal at most this often (a full snapshot costs ~µs)
    _next_vacuum_check: int = 0
    last_score: float = 0.0

    def decide(self, sf, now: int) -> list[Action]:
        if self.live or self.free <= 0:
            return []                                   # one IOC in flight at a time
        _, opp = self.touches(sf)
        if opp is None or not self.within_cap(opp[0]):
            return []                                   # nothing to take inside the cap: wait for the deadline rule
        self.last_score = score = sf.timing.py_score(self.spec.side, now)
        reason = ""
        if score >= self.rule.threshold(self.frac(now)):
            reason = f"score {score:+.2f}"
        elif now >= self._next_vacuum_check:
            self._next_vacuum_check = now + self.vacuum_check_ns
            snap = sf.timing.snapshot(now)
            vac = snap["vacuum_ask"] if self.spec.side == BUY else snap["vacuum_bid"]
            if vac >= self.vacuum_fire:
                reason = f"vacuum {vac:.2f}"
        if not reason:
            return []
        self.note(now, f"fire {self.free} at cap {self.spec.worst}: {reason}")
        return [self.place(self.free, self.spec.worst, "IOC", "snipe", f"fire: {reason}")]
