"""The sniper's trigger: hold fire while waiting is cheaper, fire when the entry score says otherwise.

The entry score (``ext.timing.Timing.score``) is roughly in [-1, 1]; positive for a buy means pressure is up and
waiting is likely to cost. The trigger fires when the score reaches a threshold that falls linearly from
``start`` at the intent's arrival to ``end`` at its deadline, so the sniper grows less choosy as time runs out
and is certain to fire by the deadline (``end`` below any possible score).
"""

from __future__ import annotations

from dataclasses import dataclass

from engine.errors import ConfigError


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
