"""The per-event cost of a learned timing model, measured like ``engine.bench``.

``inference_ns``: one ``predict_one`` call (a float32 row through the model's Cython kernel, Python call
included) timed alone, per row. ``decision_with_model_ns``: ``engine.bench.msg_to_decision`` with the model in
the loop: raw depth-message bytes to book, signals, a sniper decision, the feature row and every target's
prediction (``ext.learn.predict_into``, one call), timed inside ``Feed.time_each``'s Cython loop.
"""

from __future__ import annotations

import time

import numpy as np

from engine.bench import Tape, _depth_mask, _pcts, _sync_point, msg_to_decision
from engine.learn.features import new_state
from engine.learn.modelfile import TimingModel
from engine.learn.models import Model
from ext import learn as _k
from ext.feed import Feed


def _timer_floor(n: int = 2000) -> int:
    """Median ns between two back-to-back ``perf_counter_ns`` calls (subtracted from every sample)."""
    clock = time.perf_counter_ns
    out = np.empty(n, dtype=np.int64)
    for i in range(n):
        t0 = clock()
        out[i] = clock() - t0
    return int(np.median(out))


def inference_ns(model: Model, X: np.ndarray, limit: int = 20000) -> dict[str, float]:
    """``predict_one`` over the rows of ``X`` (at most ``limit``), timed one call at a time: median and p99 ns
    per call, the timer's own cost subtracted."""
    rows = [r for r in np.ascontiguousarray(X[:limit], dtype=np.float32)]
    if not rows:
        return {"p50": float("nan"), "p99": float("nan"), "n": 0}
    one = model.predict_one
    clock = time.perf_counter_ns
    for r in rows[:200]:                                  # warm the caches and the branch predictors
        one(r)
    floor = _timer_floor()
    ns = np.empty(len(rows), dtype=np.int64)
    for i, r in enumerate(rows):
        t0 = clock()
        one(r)
        ns[i] = clock() - t0
    ns = np.maximum(ns - floor, 0)
    return {"p50": float(np.percentile(ns, 50)), "p99": float(np.percentile(ns, 99)), "n": len(rows)}


def decision_with_model_ns(tape: Tape, model: TimingModel, side: int = 1) -> dict[str, float]:
    """Per depth message, µs: bytes -> book -> signals -> sniper decision -> features -> every target's
    prediction (p50/p99), beside the same path without the model (``base_p50``/``base_p99``,
    ``engine.bench.msg_to_decision``)."""
    from strategies.sniper import SniperTrigger

    start = _sync_point(tape)
    feed = Feed(tape.instruments)
    feed.replay(tape.messages[:start])
    sf = feed.symbols[0]
    trigger = SniperTrigger(0, sf.last_event_ns, sf.last_event_ns + 10**15)
    state = new_state(int(model.meta.get("step_ms", 100)), int(model.meta.get("lag_ms", 500)))
    kernels = model.kernels()
    out = np.empty(len(kernels), dtype=np.float64)
    decide, predict = trigger.decide, _k.predict_into

    def decide_and_predict(s) -> None:
        decide(s)
        predict(s, s.last_event_ns, side, state, kernels, out)

    rest = tape.messages[start:]
    ns = feed.time_each(rest, decide_and_predict)
    res = _pcts(ns[_depth_mask(rest)])
    base = msg_to_decision(tape)
    return {"p50": res["p50"], "p99": res["p99"], "base_p50": base["p50"], "base_p99": base["p99"]}
