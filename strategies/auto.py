"""Auto: choose the execution from the book and the predictions at arrival.

In order:

1. **Sniper** when the entry score says waiting already costs (``score >= urgent_score``), or when the hybrid's
   predictor (the kernels, or the configured model) says waiting would cost at least ``cross_bps`` more than taking
   (the hybrid would cross at once: the sniper times that take instead).
2. **Multi-level ladder** when the size is large against what the opposite touch shows (``size > size_vs_touch x
   touch quantity``: one IOC would walk the book): as many rungs as the opposite side needs levels to cover the size
   (at most ``deep_rungs``), so the passive quantity rests spread over the levels the size would have taken.
3. **Ladder** when the spread is wide (``>= wide_spread`` ticks: a passive rung earns it).
4. Otherwise the ``patient`` algorithm: ``ladder`` (one rung walking toward the far touch as the deadline nears) or
   ``hybrid`` (rests while its prediction says waiting is cheaper than taking, crosses when it turns).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from strategies.base import BID, BUY, Algo, Spec
from strategies.hybrid import Hybrid, Predictor
from strategies.ladder import Ladder
from strategies.sniper import Sniper

PATIENT: dict[str, type[Algo]] = {"ladder": Ladder, "hybrid": Hybrid}
RUNG_WEIGHTS = (0.5, 0.3, 0.2, 0.15, 0.1)


def decide(spec: Spec, sf, now: int, wide_spread: int = 3, size_vs_touch: float = 2.0, urgent_score: float = 0.6,
           patient: str = "ladder", deep_rungs: int = 3, predictor: Predictor | None = None,
           cross_bps: float | None = None) -> tuple[type[Algo], str, dict[str, Any]]:
    """(algorithm class, why, constructor overrides) for this spec on this book (``predictor``/``cross_bps``:
    the hybrid's, for rule 1)."""
    bid, ask = sf.book.best(BID), sf.book.best(1)
    if bid is None or ask is None:
        return Sniper, "one side of the book is empty", {}
    score = sf.timing.py_score(spec.side, now)
    if score >= urgent_score:
        return Sniper, f"urgent: score {score:+.2f}", {}
    if predictor is not None and cross_bps is not None:
        extra = waiting_extra_bps(predictor, sf, now, spec.side, bid[0], ask[0])
        if extra >= cross_bps:
            return Sniper, f"predicted: waiting costs {extra:+.2f} bps more than taking", {}
    spread = ask[0] - bid[0]
    touch_qty = ask[1] if spec.side == BUY else bid[1]
    if size_vs_touch > 0 and spec.qty > size_vs_touch * touch_qty:
        rungs = levels_to_cover(sf, spec, deep_rungs)
        over = {"rungs": rungs, "weights": RUNG_WEIGHTS[:rungs]} if deep_rungs > 1 else {}
        return Ladder, (f"the size is {spec.qty / touch_qty:.2g}x what the touch shows: "
                        f"{over.get('rungs', 'one')} rung{'s' if over.get('rungs', 1) > 1 else ''}"), over
    if spread >= wide_spread:
        return Ladder, f"wide spread: {spread} ticks", {}
    cls = PATIENT.get(patient)
    if cls is None:
        raise ValueError(f"auto: patient must be one of {', '.join(PATIENT)}, got {patient!r}")
    return cls, f"tight book: spread {spread} tick{'s' if spread != 1 else ''}, the touch shows " \
                f"{touch_qty / spec.qty:.1f}x the size; {cls.name} waits for it", {}


def waiting_extra_bps(predictor: Predictor, sf, now: int, side: int, bid: int, ask: int,
                      taker_fee_bps: float = 5.0, maker_fee_bps: float = 2.0) -> float:
    """What waiting at the touch is predicted to cost beyond taking now (bps), by the hybrid's formula:
    ``(1 - p) x move - p x (2 x half_spread + taker_fee - maker_fee)``."""
    move, p = predictor(sf, now, side)
    half = (ask - bid) / 2 / ((ask + bid) / 2) * 1e4
    return (1 - p) * move - p * (2 * half + taker_fee_bps - maker_fee_bps)


def levels_to_cover(sf, spec: Spec, most: int) -> int:
    """How many opposite-side levels the size would walk (1..``most``): the ladder's rungs."""
    far = sf.book.top(1 if spec.side == BUY else BID, most)
    left, n = spec.qty, 0
    for _, qty in far:
        n += 1
        left -= qty
        if left <= 0:
            break
    return max(1, min(most, n))


def choose(spec: Spec, sf, now: int, **params: Any) -> tuple[type[Algo], str]:
    """(algorithm class, why) for this spec on this book (``decide`` without the overrides)."""
    cls, why, _ = decide(spec, sf, now, **params)
    return cls, why


def make(spec: Spec, sf, now: int, new_id: Callable[[], str], **kw) -> tuple[Algo, str]:
    cls, why, over = decide(spec, sf, now)
    algo = cls(spec, new_id, **{**kw, **over})
    algo.note(now, f"auto chose {algo.name}: {why}")
    return algo, why
