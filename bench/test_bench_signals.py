"""Per-call cost of the micro-timing kernels (ext.timing) on a BTC-like book; no assertions on time.

Each benchmark runs a C loop of ``N`` events through ``ext.timing.BenchDriver`` (no Python per event), so a
round's median divided by ``N`` is the median per-call cost, stored as ``extra_info["ns_per_call"]``.
``on_depth`` is timed as (apply diff + on_depth) minus (apply diff only). Book: mid 600,000 ticks (BTC at
60,000 with a 0.1 tick), so the 5 bps band is 300 ticks; every tick within 1,000 of the mid holds a level.
Run: ``python -m pytest bench/test_bench_signals.py --benchmark-only -q``.
"""

from __future__ import annotations

import random
from typing import Any

import pytest

from ext.book import Book
from ext.timing import BenchDriver, Timing

BID, ASK = 0, 1
MID = 600_000
N_DEPTH = 2_000
N_FAST = 20_000
RESULTS: dict[str, float] = {}


def _qty(rng: random.Random) -> int:
    return max(1, int(rng.lognormvariate(4.0, 1.2)))


def _distance(rng: random.Random) -> int:
    r = rng.random()
    return rng.randint(1, 10) if r < 0.6 else rng.randint(11, 100) if r < 0.9 else rng.randint(101, 1000)


def make_diffs(rng: random.Random, n: int, changes: int = 30) -> list[list[tuple[int, int, int]]]:
    """Diffs of ``changes`` levels: mostly near the touch, 15% deletes (the touch moves now and then)."""
    # 60% of changes within 10 ticks of the mid, 30% within 100, 10% within 1000; random sizes
    out = []
    for _ in range(n):
        diff = []
        for _ in range(changes):
            side = rng.randrange(2)
            d = _distance(rng)
            price = MID - d if side == BID else MID + d
            diff.append((side, price, 0 if rng.random() < 0.15 else _qty(rng)))
        out.append(sorted(diff, key=lambda c: c[0]))         # a depthUpdate lists its bids, then its asks
    return out


@pytest.fixture(scope="module")
def data() -> dict[str, Any]:
    rng = random.Random(7)
    seed = [(s, MID - d if s == BID else MID + d, _qty(rng)) for s in (BID, ASK) for d in range(1, 1001)]
    trades = [(MID + rng.choice([-2, -1, 1, 2]), rng.randint(1, 50), rng.random() < 0.5) for _ in range(4096)]
    trades = [(p, q, p < MID) for p, q, _ in trades]          # sells hit bids, buys lift asks
    tickers = [(MID - rng.randint(1, 2), _qty(rng), MID + rng.randint(1, 2), _qty(rng)) for _ in range(4096)]
    return {"seed": seed, "diffs": make_diffs(rng, 1000), "trades": trades, "tickers": tickers}


def driver(data: dict[str, Any]) -> BenchDriver:
    """A fresh book and kernel, seeded and warmed with a mix of every event kind."""
    book, sig = Book(), Timing()
    for side, price, qty in data["seed"]:
        book.set(side, price, qty)
    drv = BenchDriver(sig, book, [data["seed"]] + data["diffs"], data["trades"], data["tickers"])
    drv.depth(1)
    for _ in range(20):
        drv.depth(5)
        drv.trades(50)
        drv.tickers(50)
    return drv


def per_call(benchmark: Any, name: str, n: int) -> float:
    if benchmark.stats is None:                             # --benchmark-disable: ran once, nothing measured
        return float("nan")
    ns = benchmark.stats.stats.median * 1e9 / n
    benchmark.extra_info["ns_per_call"] = round(ns, 1)
    RESULTS[name] = ns
    return ns


def test_bench_apply_diff_only(benchmark: Any, data: dict[str, Any]) -> None:
    drv = driver(data)
    benchmark(drv.depth, N_DEPTH, False)
    per_call(benchmark, "apply_only", N_DEPTH)


def test_bench_on_depth_30_changes(benchmark: Any, data: dict[str, Any]) -> None:
    drv = driver(data)
    benchmark(drv.depth, N_DEPTH, True)
    ns = per_call(benchmark, "apply+on_depth", N_DEPTH)
    if "apply_only" in RESULTS:
        benchmark.extra_info["on_depth_ns"] = round(ns - RESULTS["apply_only"], 1)


def test_bench_on_trade(benchmark: Any, data: dict[str, Any]) -> None:
    drv = driver(data)
    benchmark(drv.trades, N_FAST)
    per_call(benchmark, "on_trade", N_FAST)


def test_bench_on_ticker(benchmark: Any, data: dict[str, Any]) -> None:
    drv = driver(data)
    benchmark(drv.tickers, N_FAST)
    per_call(benchmark, "on_ticker", N_FAST)


def test_bench_score_all_decays_live(benchmark: Any, data: dict[str, Any]) -> None:
    """``now`` 1 ms further on every call: every decay group needs its exp (worst case)."""
    drv = driver(data)
    benchmark(drv.score, N_FAST, True)
    per_call(benchmark, "score_live", N_FAST)


def test_bench_score_at_last_event(benchmark: Any, data: dict[str, Any]) -> None:
    """``now`` = the last event's time: only groups that last moved earlier need an exp."""
    drv = driver(data)
    benchmark(drv.score, N_FAST, False)
    per_call(benchmark, "score_same_ts", N_FAST)


def test_bench_mixed_stream(benchmark: Any, data: dict[str, Any]) -> None:
    """Interleaved like a live feed: per 100 ms diff, 20 trades and 20 tickers (ns per event, book apply
    included). Trades here scan the decrease ring that real diffs fill, unlike the trade-only benchmark."""
    drv = driver(data)
    rounds = 200
    benchmark(drv.mixed, rounds, 20)
    per_call(benchmark, "mixed_per_event", rounds * 41)


def test_bench_py_api_trade(benchmark: Any) -> None:
    """For scale: one py_on_trade call from Python (the cdef path plus Python call overhead)."""
    sig = Timing()
    state = {"ts": 0}

    def one() -> None:
        state["ts"] += 1_000_000
        sig.py_on_trade(MID + 1, 5, False, state["ts"])

    benchmark(one)
    per_call(benchmark, "py_on_trade", 1)
