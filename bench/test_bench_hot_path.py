"""The hot path on real recorded messages: scanner vs orjson, book level updates, bytes -> book, bytes -> decision,
and whole-tape replay. Each benchmark stores its per-message / per-level figure in ``extra_info``.

Run: ``python -m pytest bench --benchmark-only`` (``TAPESHOT_BENCH_DATA=a.gz:b.gz`` for another tape).
"""

from __future__ import annotations

import numpy as np
import orjson

from engine import bench
from ext.feed import Feed
from ext.parse import time_scan


def _median_s(benchmark) -> float:
    """The benchmark's median seconds, or NaN when run with --benchmark-disable (smoke runs)."""
    stats = getattr(benchmark, "stats", None)
    return stats.stats.median if stats is not None else float("nan")


def _depth(tape, synced):
    start, mask = synced
    return [m for m, d in zip(tape.messages[start:], mask, strict=True) if d]


def test_scan_depth_messages(benchmark, tape, synced):
    depth = _depth(tape, synced)
    benchmark(time_scan, depth, 1)
    benchmark.extra_info["ns_per_msg"] = _median_s(benchmark) * 1e9 / len(depth)
    benchmark.extra_info["bytes_per_msg"] = sum(map(len, depth)) / len(depth)


def test_orjson_loads_depth_messages(benchmark, tape, synced):
    """The alternative the scanner replaced: orjson.loads alone (no conversion to ticks, no book)."""
    depth = _depth(tape, synced)

    def loads_all():
        for m in depth:
            orjson.loads(m)

    benchmark(loads_all)
    benchmark.extra_info["ns_per_msg"] = _median_s(benchmark) * 1e9 / len(depth)


def test_book_level_update(benchmark, tape):
    benchmark.extra_info["ns_per_level"] = benchmark.pedantic(bench.book_update_ns, args=(tape, 3), rounds=3)


def test_bytes_to_book(benchmark, tape, synced):
    start, mask = synced
    rest = tape.messages[start:]

    def one_pass():
        feed = Feed(tape.instruments)
        for sf in feed.symbols:
            sf.signals_on = False
        feed.replay(tape.messages[:start])
        return feed.time_each(rest)[mask]

    ns = benchmark.pedantic(one_pass, rounds=5)
    benchmark.extra_info.update(p50_us=float(np.percentile(ns, 50)) / 1e3, p99_us=float(np.percentile(ns, 99)) / 1e3)


def test_bytes_to_decision(benchmark, tape):
    pct = benchmark.pedantic(bench.msg_to_decision, args=(tape,), rounds=5)
    benchmark.extra_info.update(p50_us=pct["p50"], p99_us=pct["p99"])


def test_replay_events(benchmark, tape):
    def replay():
        Feed(tape.instruments).replay(tape.messages)

    benchmark.pedantic(replay, rounds=5)
    benchmark.extra_info["events_per_s"] = len(tape.messages) / _median_s(benchmark)
