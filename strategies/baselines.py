"""What a trader would otherwise do, on exactly the same intents, for ``tapeshot eval``.

- ``Immediate``: a marketable IOC for the whole size at arrival, capped like ours (the hand-placed market order).
- ``Twap``: ``slices`` equal IOCs at even times across the window.
- ``PassiveChase``: join the own touch post-only for the window, re-join when it moves; the deadline rule takes
  the rest.
"""

from __future__ import annotations

from dataclasses import dataclass

from strategies.base import Action, Algo


@dataclass
class Immediate(Algo):
    name: str = "immediate"

    def decide(self, sf, now: int) -> list[Action]:
        if self.live or self.deadline_fired or self.free <= 0:
            return []
        return [self.place(self.free, self.spec.worst, "IOC", "now", "immediate: take at once up to the cap")]


@dataclass
class Twap(Algo):
    name: str = "twap"
    slices: int = 6
    _sent: int = 0

    def decide(self, sf, now: int) -> list[Action]:
        due = min(self.slices, int(self.frac(now) * self.slices) + 1)
        if self.live or self._sent >= due:
            return []
        self._sent = due
        left = self.slices - due + 1
        qty = max(self.spec.min_lots, self.free // left) if left > 1 else self.free
        if not self.split_ok(min(qty, self.free)):
            qty = self.free                       # a slice that would strand dust takes the rest
        return [self.place(min(qty, self.free), self.spec.worst, "IOC", f"slice{due}",
                           f"twap: slice {due} of {self.slices}")]


@dataclass
class PassiveChase(Algo):
    name: str = "passive_chase"

    def decide(self, sf, now: int) -> list[Action]:
        own, _ = self.touches(sf)
        if own is None:
            return []
        price = self.clamp(own[0])
        acts: list[Action] = []
        for cid, o in list(self.live.items()):
            if o.place.price != price and (c := self.cancel(cid, "chase: the touch moved")) is not None:
                acts.append(c)
        if not self.live and self.free > 0:
            acts.append(self.place(self.free, price, "GTX", "join", "join the touch (post-only)"))
        return acts
