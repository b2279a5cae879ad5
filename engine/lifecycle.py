"""The intent lifecycle: one transition table, every transition explicit and journalled.

    accepted ─start─► working ─deadline─► completing ─finish─► done
        │                │  └──────────────finish──────────────► done
        │                ├─cancel─► cancelling ─finish─► cancelled        (the trader, a kill, a shutdown)
        └─fail─► failed  └─fail─► failed                                  (a definitive rejection)
    any unfinished state ─interrupt─► interrupted   (after a restart, the window gone: closed from venue truth)

An invalid trigger raises ``StateError``; a repeated one that changes nothing (a second cancel) is harmless.
The journal's ``intents.state`` holds the state's value; reconciliation resumes the unfinished ones.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from engine.errors import StateError
from engine.intents import Intent


class IState(StrEnum):
    ACCEPTED = "accepted"
    WORKING = "working"
    COMPLETING = "completing"
    CANCELLING = "cancelling"
    DONE = "done"
    CANCELLED = "cancelled"
    FAILED = "failed"
    INTERRUPTED = "interrupted"

    @property
    def final(self) -> bool:
        return self in FINAL

    @property
    def live(self) -> bool:
        """Its algorithm may still send orders or wait for them."""
        return self in (IState.WORKING, IState.COMPLETING, IState.CANCELLING)


FINAL = frozenset({IState.DONE, IState.CANCELLED, IState.FAILED, IState.INTERRUPTED})
UNFINISHED = tuple(s.value for s in IState if s not in FINAL)

_S = IState
TRANSITIONS: dict[tuple[IState, str], IState] = {
    (_S.ACCEPTED, "start"): _S.WORKING,
    (_S.ACCEPTED, "fail"): _S.FAILED,
    (_S.ACCEPTED, "cancel"): _S.CANCELLING,
    (_S.WORKING, "deadline"): _S.COMPLETING,
    (_S.WORKING, "finish"): _S.DONE,
    (_S.WORKING, "cancel"): _S.CANCELLING,
    (_S.WORKING, "fail"): _S.FAILED,
    (_S.COMPLETING, "finish"): _S.DONE,
    (_S.COMPLETING, "cancel"): _S.CANCELLING,
    (_S.COMPLETING, "fail"): _S.FAILED,
    (_S.CANCELLING, "finish"): _S.CANCELLED,
    (_S.CANCELLING, "fail"): _S.FAILED,
}
_HARMLESS = {(_S.COMPLETING, "deadline"), (_S.CANCELLING, "cancel"), (_S.CANCELLING, "deadline")}


@dataclass
class LiveIntent:
    """One intent as the engine runs it: the trader's words, its algorithm, its tracker and its state."""

    id: str
    intent: Intent
    source: str
    user: str
    state: IState = IState.ACCEPTED
    algo: Any = None                      # strategies.base.Algo
    tracker: Any = None                   # engine.execution.Tracker
    report: dict | None = None
    why_ended: str = ""                   # cancelled / failed / interrupted: the reason, shown to the trader
    finals_sent: set[str] = field(default_factory=set)
    inst: Any = None                      # engine.model.Instrument
    sf: Any = None                        # the symbol's ext.feed.SymbolFeed
    position: Any = None                  # the symbol's oms.positions.Position (the same object all along)
    tick_f: float = 0.0                   # tick and step as floats, for the order path's risk check
    step_f: float = 0.0
    gate: Any = None                      # its ext.orders.OrderGate once armed; False: the general path
    key: str | None = None                # the idempotency key of the message that asked for it
    resumed: bool = False

    def __post_init__(self) -> None:
        if self.inst is not None:
            self.tick_f, self.step_f = float(self.inst.tick_size), float(self.inst.step_size)

    def move(self, trigger: str) -> IState | None:
        """Apply ``trigger``; returns the new state, None when it changed nothing; raises on an invalid one."""
        nxt = TRANSITIONS.get((self.state, trigger))
        if nxt is None:
            if (self.state, trigger) in _HARMLESS:
                return None
            raise StateError(f"intent {self.id}: {trigger!r} is impossible in state {self.state.value}")
        self.state = nxt
        return nxt
