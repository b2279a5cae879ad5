"""The execution algorithms on real tape through the in-process replay (sim matching, latency both ways)."""

from __future__ import annotations

from decimal import Decimal

import pytest

from engine.feed.recording import sample_path
from engine.intents import parse
from engine.model import KNOWN_INSTRUMENTS
from engine.replay import Replay, ReplayIntent
from engine.venues.sim import SimConfig

SEC = 1_000_000_000
BTC = KNOWN_INSTRUMENTS["BTCUSDT"]
LAT = dict(feed_latency="fixed:1", entry_latency="fixed:2", ack_latency="fixed:2")


def replay(*reqs: tuple[float, str, str], seed: int = 0, **cfg):
    rp = Replay([sample_path()], SimConfig(seed=seed, **{**LAT, **cfg}))
    t0 = rp.ex.tape.events[0].time_ns
    runs = rp.run([ReplayIntent(t0 + int(at * SEC), parse(text), algo) for at, text, algo in reqs])
    return rp, runs


def check_common(rp, run, _label: str):
    r, spec, algo = run.report, run.tracker.spec, run.algo
    assert not run.error and r is not None
    lots = BTC.qty_to_lots(r["filled"])
    assert lots <= spec.qty                                         # never more than asked
    for _, _, px, _, _ in run.tracker.fills:                        # never worse than the cap
        assert (px <= spec.worst) if spec.side == 0 else (px >= spec.worst)
    rtt = spec.round_trip_ns
    assert run.tracker.end_ns <= spec.deadline_ns + rtt              # the window never overruns by > a round trip
    assert algo.finished and not algo.live
    return r


@pytest.mark.parametrize("algo", ["sniper", "ladder", "auto", "immediate", "twap", "passive_chase", "hybrid"])
def test_every_algorithm_completes_inside_window_and_cap(algo):
    rp, runs = replay((10, "long btc 0.5 20s max 8bps", algo), (50, "short btc 1.2 30s max 8bps", algo),
                      (95, "long btc 0.2 10s max 6bps", algo))
    for run in runs:
        r = check_common(rp, run, algo)
        assert r["complete"], (algo, r, run.algo.log)
        assert r["markouts_bps"].keys() == {"+1s", "+5s", "+30s"}


def test_the_cancel_rule_leaves_the_rest_unfilled():
    rp, [run] = replay((20, "short btc 3 10s max 1bps cancel", "passive_chase"))
    r = check_common(rp, run, "")
    assert not r["complete"] and Decimal(r["filled"]) < Decimal(3)
    assert not any("IOC" in text for _, text in run.algo.log)           # no completing order at the deadline


def test_a_limit_price_is_never_crossed():
    rp, [run] = replay((30, "long btc 0.5 15s max 50bps limit 28100", "sniper"))
    check_common(rp, run, "")
    assert run.tracker.spec.worst == BTC.price_to_ticks("28100")
    assert all(px <= BTC.price_to_ticks("28100") for _, _, px, _, _ in run.tracker.fills)


def test_ladder_earns_maker_fills_and_sniper_takes():
    _, runs = replay((10, "short btc 1 30s max 8bps", "ladder"), (60, "short btc 1 30s max 8bps", "sniper"))
    ladder, sniper = (r.report for r in runs)
    assert ladder["maker_share"] > 0.2 and sniper["maker_share"] == 0.0
    assert len(runs[1].tracker.orders) <= 3                         # a sniper fires few, whole-size IOCs


def test_exit_flattens_the_position_reduce_only():
    rp, runs = replay((10, "long btc 0.7 10s max 8bps", "immediate"), (40, "flat btc 10s", "sniper"))
    assert runs[1].tracker.spec.reduce_only and runs[1].tracker.spec.qty == 700
    assert all(p.qty_lots == 0 for p in rp.ex.positions("replay"))


def test_too_small_an_intent_is_refused_with_the_minimum():
    _, [run] = replay((10, "long btc 0.001 10s", "sniper"))
    assert "below the minimum order" in run.error


def test_replay_is_deterministic_for_a_seed():
    reqs = ((10, "long btc 0.5 20s max 8bps", "ladder"), (60, "short btc 0.8 20s", "auto"),
            (100, "long btc 0.3 10s", "immediate"))           # a taker: its fill time carries the entry latency

    def outcome(seed: int):
        rp, runs = replay(*reqs, seed=seed, entry_latency="uniform:1:9")
        return [r.report for r in runs], [(f.time_ns, f.price_ticks, f.qty_lots) for f in rp.ex.fills("replay")]

    (a, fills_a), (b, fills_b), (_, fills_c) = outcome(3), outcome(3), outcome(4)
    assert a == b and fills_a == fills_b                     # same seed: the same replay to the nanosecond
    assert [t for t, _, _ in fills_a] != [t for t, _, _ in fills_c]   # another seed draws other latencies


class _Book:
    def __init__(self, bids, asks):
        self.bids, self.asks = bids, asks

    def best(self, side):
        levels = self.bids if side == 0 else self.asks
        return levels[0] if levels else None

    def top(self, side, n=10):
        return (self.bids if side == 0 else self.asks)[:n]


class _Timing:
    def __init__(self, score=0.0):
        self.score = score

    def py_score(self, side, now):
        return self.score


class _Feed:
    def __init__(self, bids, asks, score=0.0):
        self.book, self.timing = _Book(bids, asks), _Timing(score)


def test_auto_builds_a_multi_level_ladder_when_the_size_needs_the_depth():
    """A size several times the opposite touch: as many rungs as opposite levels it would walk (at most
    ``deep_rungs``); a size the touch covers goes to the patient algorithm; an urgent score to the sniper."""
    from strategies import auto
    from strategies.base import BUY, Spec
    from strategies.hybrid import Hybrid
    from strategies.ladder import Ladder
    from strategies.sniper import Sniper

    asks = [(1001, 10), (1002, 10), (1003, 10), (1004, 50)]
    sf = _Feed([(1000, 30)], asks)
    spec = lambda qty: Spec("BTCUSDT", BUY, qty, 0, 30 * SEC, 1010)   # noqa: E731
    cls, why, over = auto.decide(spec(25), sf, 0, size_vs_touch=2.0, deep_rungs=3)
    assert cls is Ladder and over["rungs"] == 3 and len(over["weights"]) == 3 and "3 rungs" in why
    assert auto.decide(spec(25), sf, 0, size_vs_touch=2.0, deep_rungs=5)[2]["rungs"] == 3   # 3 levels cover 25
    assert auto.decide(spec(25), sf, 0, size_vs_touch=2.0, deep_rungs=1)[2] == {}          # one rung only
    assert auto.decide(spec(5), sf, 0, size_vs_touch=2.0, patient="hybrid")[0] is Hybrid
    assert auto.decide(spec(5), sf, 0, size_vs_touch=2.0, patient="ladder")[0] is Ladder
    assert auto.decide(spec(25), _Feed([(1000, 30)], asks, score=0.9), 0, urgent_score=0.6)[0] is Sniper
    with pytest.raises(ValueError, match="patient"):
        auto.decide(spec(5), sf, 0, patient="nope")
    # from the predictions: the hybrid would cross at once (waiting costs >= cross_bps more): the sniper takes
    run_away = lambda sf, now, side: (8.0, 0.0)                        # noqa: E731
    cls, why, _ = auto.decide(spec(5), sf, 0, patient="hybrid", predictor=run_away, cross_bps=5.0)
    assert cls is Sniper and why.startswith("predicted: waiting costs +8.00 bps")
    calm = lambda sf, now, side: (0.5, 0.3)                            # noqa: E731
    assert auto.decide(spec(5), sf, 0, patient="hybrid", predictor=calm, cross_bps=5.0)[0] is Hybrid
