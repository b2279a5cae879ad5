"""Hybrid: rest passive at the touch while waiting is cheaper than taking, cross when it is not.

At every book update (at most every ``check_ns``) it compares two expected costs, in bps of the mid, for the size
still to do (Lehalle & Mounjid's reading of the queue; Cartea & Jaimungal's order flow in execution):

- take now: ``half_spread + taker_fee``;
- wait at the own touch for up to ``horizon_s`` (and the time left): with probability ``p`` the order fills as a
  maker, costing ``-half_spread + maker_fee``; otherwise the price has moved by ``move`` (bps in the side's
  direction: up for a buy) and the rest is taken then, costing ``half_spread + taker_fee + move``.

It rests (post-only, re-pricing to the touch) while ``wait - take < cross_bps`` and crosses (cancel, then one IOC
at the cap) as soon as waiting is predicted to cost ``cross_bps`` more than taking: a resting order that has not
filled yet keeps its option to wait on, so an unfilled horizon alone is no reason to cross; a predicted adverse
move is. ``wait - take = (1 - p) x move - p x (2 x half_spread + taker_fee - maker_fee)``. The deadline rule of
``Algo`` completes or cancels what is left. ``p`` and
``move`` come from a predictor: ``KernelPredictor`` reads the kernels' signals (no model), and
``engine.learn.runtime`` supplies a learned one.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from strategies.base import BUY, Action, Algo

Predictor = Callable[[Any, int, int], tuple[float, float]]   # (sf, now ns, side) -> (move bps, fill probability)


@dataclass
class KernelPredictor:
    """Kernels only (no learned model), in ``horizon_s``: the move is the microprice drift (``micro_drift``,
    ticks/s, tau 0.5 s) carried over the horizon, in bps of the mid and signed for the side; the fill probability
    is ``1 - exp(-rate x horizon / queue)`` with ``rate`` the opposite aggressors' volume (``sell_vol_slow`` /
    ``buy_vol_slow``: lots decayed over 5 s, / 5 s = lots/s) and ``queue`` the own touch's size (lots): the
    chance that what trades against our side in the horizon exceeds the queue ahead."""

    horizon_s: float = 2.0
    max_move_bps: float = 20.0

    def __call__(self, sf: Any, now: int, side: int) -> tuple[float, float]:
        snap = sf.timing.snapshot(now)
        book = sf.book
        mid = book.mid
        if mid != mid or mid <= 0:
            return 0.0, 0.0
        sign = 1.0 if side == BUY else -1.0
        move = sign * snap["micro_drift"] * self.horizon_s / mid * 1e4
        move = max(-self.max_move_bps, min(self.max_move_bps, move))
        own = book.best(0 if side == BUY else 1)
        rate = (snap["sell_vol_slow"] if side == BUY else snap["buy_vol_slow"]) / 5.0
        if own is None or own[1] <= 0:
            return move, 0.0
        return move, 1.0 - math.exp(-max(rate, 0.0) * self.horizon_s / own[1])


@dataclass
class Hybrid(Algo):
    """Passive while the predictor says waiting is cheaper, aggressive when it turns (see the module)."""

    name: str = "hybrid"
    predictor: Predictor = field(default_factory=KernelPredictor)
    taker_fee_bps: float = 5.0
    maker_fee_bps: float = 2.0
    cross_bps: float = 0.5
    horizon_s: float = 2.0
    check_ns: int = 20_000_000
    _next_check: int = 0
    _crossing: bool = False
    last: tuple[float, float, float, float] = (0.0, 0.0, 0.0, 0.0)      # take, wait, move, p at the last check

    def __post_init__(self) -> None:
        if isinstance(self.predictor, KernelPredictor) and self.predictor.horizon_s != self.horizon_s:
            self.predictor = KernelPredictor(self.horizon_s, self.predictor.max_move_bps)   # one horizon for both

    def costs(self, sf: Any, now: int) -> tuple[float, float] | None:
        """(take, wait) in bps of the mid now, or None when a side of the book is empty."""
        own, far = self.touches(sf)
        if own is None or far is None:
            return None
        mid = (own[0] + far[0]) / 2
        half = abs(far[0] - own[0]) / 2 / mid * 1e4
        move, p = self.predictor(sf, now, self.spec.side)
        left_s = max(0.0, (self.spec.deadline_ns - now) / 1e9)
        p *= min(1.0, left_s / self.horizon_s) if self.horizon_s > 0 else 1.0
        take = half + self.taker_fee_bps
        wait = p * (-half + self.maker_fee_bps) + (1 - p) * (half + self.taker_fee_bps + move)
        self.last = (take, wait, move, p)
        return take, wait

    def decide(self, sf: Any, now: int) -> list[Action]:
        if self._crossing:
            return self._cross(now)
        if now < self._next_check and self.live:
            return []
        self._next_check = now + self.check_ns
        c = self.costs(sf, now)
        if c is None:
            return []
        take, wait = c
        if wait - take >= self.cross_bps and self.free + self.working > 0:
            self._crossing = True
            self.note(now, f"cross: waiting {wait:+.2f} bps >= taking {take:+.2f} bps "
                           f"(move {self.last[2]:+.2f} bps, fill p {self.last[3]:.2f})")
            return self._cross(now)
        return self._rest(sf, now, take, wait)

    def _rest(self, sf: Any, now: int, take: float, wait: float) -> list[Action]:
        own, _ = self.touches(sf)
        price = self.clamp(own[0])
        acts: list[Action] = []
        for cid, o in list(self.live.items()):
            if o.place.price != price and (c := self.cancel(cid, "rest: the touch moved")) is not None:
                acts.append(c)
        if not self.live and self.free > 0:
            acts.append(self.place(self.free, price, "GTX", "rest",
                                   f"rest at the touch: waiting {wait:+.2f} < taking {take:+.2f} bps"))
        return acts

    def _cross(self, now: int) -> list[Action]:
        """Cancel what rests, then take the rest with one IOC at the cap (once; the deadline rule follows)."""
        if self.live:
            return [c for cid in list(self.live) if (c := self.cancel(cid, "cross: waiting costs more")) is not None]
        if self.free <= 0 or (not self.split_ok(self.free) and not self.spec.reduce_only):
            return []
        self._crossing = False
        return [self.place(self.free, self.spec.worst, "IOC", "cross", "cross: take the rest at once up to the cap")]
