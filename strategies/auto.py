"""Auto: choose sniper or ladder from the book at arrival.

Ladder when patience pays: the spread is wide (>= ``wide_spread`` ticks: a passive rung earns it) or the size is
large against what the opposite touch shows (> ``size_vs_touch`` x touch quantity: one IOC would walk the book).
Sniper otherwise, and always when the entry score says waiting already costs (>= ``urgent_score``).
"""

from __future__ import annotations

from collections.abc import Callable

from strategies.base import BID, BUY, Algo, Spec
from strategies.ladder import Ladder
from strategies.sniper import Sniper


def choose(spec: Spec, sf, now: int, wide_spread: int = 3, size_vs_touch: float = 2.0,
           urgent_score: float = 0.6) -> tuple[type[Algo], str]:
    """(algorithm class, why) for this spec on this book."""
    bid, ask = sf.book.best(BID), sf.book.best(1)
    if bid is None or ask is None:
        return Sniper, "one side of the book is empty"
    score = sf.timing.py_score(spec.side, now)
    if score >= urgent_score:
        return Sniper, f"urgent: score {score:+.2f}"
    spread = ask[0] - bid[0]
    touch_qty = ask[1] if spec.side == BUY else bid[1]
    if spread >= wide_spread:
        return Ladder, f"wide spread: {spread} ticks"
    if spec.qty > size_vs_touch * touch_qty:
        return Ladder, f"the size is {spec.qty / touch_qty:.2g}x what the touch shows"
    return Sniper, f"tight book: spread {spread} tick{'s' if spread != 1 else ''}, the touch shows " \
                   f"{touch_qty / spec.qty:.1f}x the size"


def make(spec: Spec, sf, now: int, new_id: Callable[[], str], **kw) -> tuple[Algo, str]:
    cls, why = choose(spec, sf, now)
    algo = cls(spec, new_id, **kw)
    algo.note(now, f"auto chose {algo.name}: {why}")
    return algo, why
