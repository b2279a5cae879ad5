"""The fault catalogue of the drill: what each kind does to the engine or the venue, drawn from a seeded RNG."""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Any

from engine.crashpoints import POINTS

PROCESS = "process"     # the drill kills / terminates the engine
CRASH = "crash"         # the engine kills itself at a named point (TAPESHOT_CRASH_AT)
SIM = "sim"             # POST /sim/faults
SUBMIT = "submit"       # several control-socket submits at once


@dataclass(frozen=True)
class FaultKind:
    """One kind of fault. ``sim(rng)`` gives the /sim/faults setting; ``early``: set before the intent is sent
    (order-path faults hit its first orders), else at a random instant inside its window."""

    name: str
    how: str
    sim_setting: Any = None
    early: bool = True
    algo: str | None = None          # the algorithm the fault needs (mid_ladder: a ladder)
    notes: tuple[str, ...] = field(default_factory=tuple)

    def sim(self, rng: random.Random) -> dict[str, Any]:
        return self.sim_setting(rng) if self.sim_setting else {}


def _k(n: int, m: int):
    return lambda rng: rng.randint(n, m)


CATALOGUE: tuple[FaultKind, ...] = (
    FaultKind("kill9", PROCESS),
    *(FaultKind(f"crash_{p}", CRASH, algo="ladder" if p == "mid_ladder" else None) for p in POINTS),
    FaultKind("sigterm", PROCESS, algo="ladder"),        # a ladder: orders rest when the signal comes
    FaultKind("drop_market", SIM, lambda r: {"drop_market": True}, early=False),
    FaultKind("skip_diffs", SIM, lambda r: {"skip_diffs": _k(1, 5)(r)}, early=False),
    FaultKind("stall_market", SIM, lambda r: {"stall_market_ms": _k(1000, 4000)(r)}, early=False),
    FaultKind("lose_acks", SIM, lambda r: {"lose_acks": _k(1, 2)(r)}),
    FaultKind("duplicate_user", SIM, lambda r: {"duplicate_user": _k(2, 10)(r)}),
    FaultKind("reorder_user", SIM, lambda r: {"reorder_user": _k(2, 10)(r)}),
    FaultKind("http_5xx", SIM, lambda r: {"http_5xx": _k(1, 3)(r)}),
    FaultKind("ban", SIM, lambda r: {"http_429": _k(1, 2)(r), "ban_s": _k(2, 4)(r)}),
    FaultKind("reject_orders", SIM, lambda r: {"reject_orders": _k(1, 3)(r)}),
    FaultKind("concurrent_submits", SUBMIT),
)
RESET = {"skip_diffs": 0, "duplicate_user": 0, "reorder_user": 0, "lose_acks": 0, "http_5xx": 0, "http_429": 0,
         "reject_orders": 0}
BY_NAME = {f.name: f for f in CATALOGUE}


class Rotation:
    """Fault kinds in seeded shuffled rounds (every kind once per round), so short drills still cover them all;
    a kind the sim refuses is taken out."""

    def __init__(self, rng: random.Random, kinds: tuple[FaultKind, ...] = CATALOGUE) -> None:
        self.rng = rng
        self.kinds = list(kinds)
        self._round: list[FaultKind] = []

    def next(self) -> FaultKind:
        if not self._round:
            self._round = list(self.kinds)
            self.rng.shuffle(self._round)
        return self._round.pop()

    def drop(self, kind: FaultKind) -> None:
        self.kinds = [k for k in self.kinds if k.name != kind.name] or self.kinds
        self._round = [k for k in self._round if k.name != kind.name]
