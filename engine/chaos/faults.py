"""The fault catalogue of the drill: what each kind does to the engine or the venue, and the seeded schedule.

Times in a fault's setting are exchange time where the sim takes exchange time and wall time where it takes wall
time: the drill may serve the recording faster than real time (``speed``), and its intents' windows are in
exchange time, so a market stall is drawn in exchange time and handed to the sim in wall ms, and a ban (wall
seconds at the sim) asks for a window long enough that the engine's wall-clock waits cannot carry an order past
its deadline (see ``FaultKind.min_window_s``).
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from engine.crashpoints import POINTS

PROCESS = "process"     # the drill kills / terminates the engine
CRASH = "crash"         # the engine kills itself at a named point (TAPESHOT_CRASH_AT)
SIM = "sim"             # POST /sim/faults
SUBMIT = "submit"       # several control-socket submits at once

ALGOS = ("ladder", "sniper", "auto")
Setting = Callable[[random.Random, float], dict[str, Any]]


@dataclass(frozen=True)
class FaultKind:
    """One kind of fault. ``sim(rng, speed)`` gives the /sim/faults setting; ``early``: set before the intent is
    sent (order-path faults hit its first orders), else at a random instant inside its window."""

    name: str
    how: str
    sim_setting: Setting | None = None
    early: bool = True
    algos: tuple[str, ...] = ALGOS   # the algorithms the fault draws from (mid_ladder: a ladder)

    @property
    def kills(self) -> bool:
        """Whether this kind kills the engine with SIGKILL (kill -9 from outside, or a crash point)."""
        return self.how == CRASH or self.name == "kill9"

    @property
    def crash_point(self) -> str | None:
        return self.name.removeprefix("crash_") if self.how == CRASH else None

    def sim(self, rng: random.Random, speed: float) -> dict[str, Any]:
        return self.sim_setting(rng, speed) if self.sim_setting else {}


def min_window_s(setting: dict[str, Any], speed: float) -> int:
    """The shortest window (exchange s) a setting allows.

    A ban holds the engine's requests ``ban_s`` wall seconds and each injected 429 one more (its Retry-After),
    which the engine weighs against its time left in exchange time; the window must outlast those holds in
    exchange time, or an order waited out at ``speed`` > 1 lands after a deadline only the speed-up moved (at 1x
    such a wait would be refused). A market stall (set at most half-way through the window) ends a second before
    the deadline, so the engine's clock, which cannot advance faster than real time while the market is silent,
    has caught up again when the deadline rule fires."""
    need = 5
    if setting.get("ban_s"):
        need = max(need, math.ceil(speed * (setting["ban_s"] + setting.get("http_429", 0))) + 3)
    if setting.get("stall_market_ms"):
        need = max(need, math.ceil(2 * speed * setting["stall_market_ms"] / 1000) + 2)
    return need


def _count(key: str, lo: int, hi: int) -> Setting:
    return lambda rng, speed: {key: rng.randint(lo, hi)}


def _stall(rng: random.Random, speed: float) -> dict[str, Any]:
    """1-4 s of silence in exchange time, given to the sim in wall ms."""
    return {"stall_market_ms": max(1, round(rng.randint(1000, 4000) / speed))}


def _ban(rng: random.Random, speed: float) -> dict[str, Any]:
    return {"http_429": rng.randint(1, 2), "ban_s": rng.randint(1, 2)}


# after_send fires on the C write path, which an intent's first order on a fresh engine does not take: algorithms
# that send more than one order; mid_ladder needs a ladder with orders resting
_CRASH_ALGOS = {"after_send": ("ladder", "auto"), "mid_ladder": ("ladder",)}

CATALOGUE: tuple[FaultKind, ...] = (
    FaultKind("kill9", PROCESS),
    *(FaultKind(f"crash_{p}", CRASH, algos=_CRASH_ALGOS.get(p, ALGOS)) for p in POINTS),
    FaultKind("sigterm", PROCESS, algos=("ladder",)),    # a ladder: orders rest when the signal comes
    FaultKind("drop_market", SIM, lambda r, s: {"drop_market": True}, early=False),
    FaultKind("skip_diffs", SIM, _count("skip_diffs", 1, 5), early=False),
    FaultKind("stall_market", SIM, _stall, early=False),
    FaultKind("lose_acks", SIM, _count("lose_acks", 1, 2)),
    FaultKind("duplicate_user", SIM, _count("duplicate_user", 2, 10)),
    FaultKind("reorder_user", SIM, _count("reorder_user", 2, 10)),
    FaultKind("http_5xx", SIM, _count("http_5xx", 1, 3)),
    FaultKind("ban", SIM, _ban),
    FaultKind("reject_orders", SIM, _count("reject_orders", 1, 3)),
    FaultKind("concurrent_submits", SUBMIT),
)
RESET = {"skip_diffs": 0, "duplicate_user": 0, "reorder_user": 0, "lose_acks": 0, "http_5xx": 0, "http_429": 0,
         "reject_orders": 0}
BY_NAME = {f.name: f for f in CATALOGUE}
EXTRA_KILLS = 4          # kill9 runs added to each round of the whole catalogue: 10 of its 21 runs kill


class Schedule:
    """Fault kinds in seeded rounds: every kind once per round, plus ``extra`` kill9 runs (the cheapest kill),
    shuffled; a kind the sim refuses is taken out, and (with ``extra``) a crash point not reached is made up by
    one more kill9 run later in the round. Its own RNG, so the faults' draws never shift the runs' own (each run
    draws from an RNG of the seed and its number)."""

    def __init__(self, seed: int, kinds: tuple[FaultKind, ...] = CATALOGUE, extra: int = 0) -> None:
        self.rng = random.Random(f"chaos-faults/{seed}")
        self.kinds = list(kinds)
        self.extra = extra
        self._round: list[FaultKind] = []

    def next(self) -> FaultKind:
        if not self._round:
            self._round = self._new_round()
        return self._round.pop()

    def _new_round(self) -> list[FaultKind]:
        kill9 = [k for k in self.kinds if k.name == "kill9"]
        out = list(self.kinds) + kill9 * self.extra
        self.rng.shuffle(out)
        return out

    def make_up_kill(self) -> None:
        """One more kill9 run in this round (a crash point was not reached), when rounds carry extra kills."""
        kill9 = [k for k in self.kinds if k.name == "kill9"]
        if self.extra and kill9:
            self._round.insert(self.rng.randint(0, len(self._round)), kill9[0])

    def drop(self, kind: FaultKind) -> None:
        self.kinds = [k for k in self.kinds if k.name != kind.name] or self.kinds
        self._round = [k for k in self._round if k.name != kind.name]
