"""Ladder: limit rungs that walk from passive toward taking as the deadline nears.

Aggression ``a = frac ** curve`` grows from 0 at arrival to 1 at the deadline. The top rung sits at
``own touch + round(a x (opposite touch - own touch + through))`` ticks (a buy: from the best bid up to
``through`` ticks past the best ask), capped by the price cap; the other rungs stand one tick apart behind it.
Sizes split the free quantity by ``weights`` (top rung largest). A rung whose target price moves is cancelled
and re-placed at the new price (at most once per ``min_reprice_ns``), so passive rungs rest at the touch and
collect the spread while the clock allows, and the ladder crosses the spread only as time runs out.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from strategies.base import Action, Algo


@dataclass
class Ladder(Algo):
    name: str = "ladder"
    rungs: int = 3
    weights: tuple[float, ...] = (0.5, 0.3, 0.2)
    through: int = 1                      # ticks past the opposite touch at full aggression
    curve: float = 1.5                    # a = frac ** curve: patient early, urgent late
    min_reprice_ns: int = 100_000_000
    _last_reprice: dict[int, int] = field(default_factory=dict)
    _rung_of: dict[str, int] = field(default_factory=dict)

    def targets(self, sf, now: int) -> list[int] | None:
        own, opp = self.touches(sf)
        if own is None or opp is None:
            return None
        a = self.frac(now) ** self.curve
        span = (opp[0] - own[0]) if self.spec.side == 0 else (own[0] - opp[0])
        top = self.toward(own[0], round(a * (span + self.through)))
        return [self.clamp(self.toward(top, -i)) for i in range(self.rungs)]

    def sizes(self, free: int, n: int) -> list[int]:
        """Split ``free`` over ``n`` rungs by weight; rungs below the venue's minimum merge into the one above."""
        if n <= 0:
            return []
        w = self.weights[:n] if len(self.weights) >= n else (1.0,) * n
        raw = [int(free * x / sum(w)) for x in w]
        raw[0] += free - sum(raw)
        floor = 1 if self.spec.reduce_only else self.spec.min_lots
        out, carry = [], 0
        for q in raw:
            q += carry
            if q >= floor:
                out.append(q)
                carry = 0
            else:
                carry = q
        if carry:
            if out:
                out[-1] += carry
            elif carry >= floor:
                out.append(carry)
        return out

    def decide(self, sf, now: int) -> list[Action]:
        prices = self.targets(sf, now)
        if prices is None:
            return []
        acts: list[Action] = []
        held = {}
        for cid, o in list(self.live.items()):
            rung = self._rung_of.get(cid)
            want = prices[rung] if rung is not None and rung < len(prices) else None
            if o.place.price == want:
                held[rung] = cid
            elif not o.cancel_sent and now - self._last_reprice.get(rung, -(10**18)) >= self.min_reprice_ns:
                self._last_reprice[rung] = now
                if (c := self.cancel(cid, f"reprice rung {rung}: its target moved")) is not None:
                    acts.append(c)
        free = self.free
        if free <= 0:
            return acts
        missing = [r for r in range(self.rungs) if r not in held and not self._busy(r)]
        for rung, qty in zip(missing, self.sizes(free, len(missing)), strict=False):
            p = self.place(qty, prices[rung], "GTC", f"rung{rung}", f"rest rung {rung} of {self.rungs}")
            self._rung_of[p.cid] = rung
            acts.append(p)
        return acts

    def _busy(self, rung: int) -> bool:
        """A rung whose cancel is still in flight: wait for it before re-placing."""
        return any(self._rung_of.get(cid) == rung for cid in self.live)
