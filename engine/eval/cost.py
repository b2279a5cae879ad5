"""What the signals cost to compute, measured on the recording itself.

One kernel (``ext.timing.Timing``) updates every signal's state in the same per-event pass, so the cost of a single
signal cannot be separated by switching it off: the figures are the kernel's shared per-event cost (the feed with
signals on minus the feed with signals off, same messages, CLOCK_MONOTONIC per message inside a Cython loop) and
the cost of the reads an algorithm makes (``py_score``, ``snapshot``) from Python.
"""

from __future__ import annotations

import time

import numpy as np

from engine.bench import load_tape
from ext.feed import Feed


def _synced_at(feed: Feed, messages: list[bytes]) -> int:
    for i, m in enumerate(messages):
        feed.on_message(m)
        if all(sf.synced for sf in feed.symbols):
            return i + 1
    raise RuntimeError("the recording never syncs a book")


def _per_event_ns(tape, signals: bool, repeats: int) -> float:
    """Lowest (over repeats) mean ns per message after sync, with the signal kernel on or off."""
    best = float("inf")
    for _ in range(repeats):
        feed = Feed(tape.instruments)
        for sf in feed.symbols:
            sf.signals_on = signals
        start = _synced_at(feed, tape.messages)
        ns = feed.time_each(tape.messages[start:])
        best = min(best, float(np.mean(ns)))
    return best


def _read_ns(fn, now: int, n: int = 20_000) -> float:
    t0 = time.perf_counter_ns()
    for _ in range(n):
        fn(now)
    return (time.perf_counter_ns() - t0) / n


def signal_cost(files: tuple[str, ...], repeats: int = 3) -> dict:
    """Per-event kernel cost and per-read cost on this recording (ns, this machine)."""
    tape = load_tape(list(files))
    on, off = _per_event_ns(tape, True, repeats), _per_event_ns(tape, False, repeats)
    feed = Feed(tape.instruments)
    feed.replay(tape.messages)
    sf = feed.symbols[0]
    now = sf.last_event_ns
    return {
        "feed_ns_per_event_signals_on": round(on, 1),
        "feed_ns_per_event_signals_off": round(off, 1),
        "signals_ns_per_event": round(on - off, 1),
        "score_read_ns": round(_read_ns(lambda t: sf.timing.py_score(0, t), now), 1),
        "snapshot_read_ns": round(_read_ns(sf.timing.snapshot, now, 5000), 1),
        "note": "one kernel updates all signals in one pass per event: per-signal cost is not separable, "
                "the shared cost is shown for every signal",
    }
