"""``tapeshot bench``: the hot path measured on real recordings on this machine.

Every figure comes from real recorded messages (the bundled sample by default). Per-message latencies are taken
with CLOCK_MONOTONIC inside a Cython loop, so the timer costs ~20 ns and no Python loop overhead is counted.
Medians and tails, never means: the machines are shared and noisy.
"""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from engine.feed import instruments as inst
from engine.feed.recording import sample_path
from engine.feed.verify import _symbols_and_snapshots, merged_lines
from ext.book import Book, time_apply
from ext.feed import Feed
from ext.parse import parse

# Issue #2 targets (medians on a 2-core machine), printed beside each figure.
TARGETS = {
    "book_update_ns": ("<=", 10.0),
    "msg_to_book_us.p50": ("<=", 1.0),
    "msg_to_book_us.p99": ("<=", 3.0),
    "msg_to_decision_us.p50": ("<=", 3.0),
    "msg_to_decision_us.p99": ("<=", 10.0),
    "msg_to_decision_model_us.p99": ("<=", 10.0),
    "replay_events_per_s": (">=", 1_000_000.0),
    "sim_replay.x_real_time": (">=", 50.0),
    "wire_to_decision_us.p50": ("<=", 25.0),
    "wire_to_decision_us.p99": ("<=", 60.0),
    "order_path_us.p99": ("<=", 50.0),
}


@dataclass
class Tape:
    """A recording loaded in memory for measurement: its raw messages and instruments."""

    paths: list[Path]
    messages: list[bytes]
    instruments: list


def load_tape(paths: list[str | Path] | None) -> Tape:
    ps = [Path(p) for p in paths] if paths else [sample_path()]
    lines = merged_lines(ps)
    symbols, snapshots = _symbols_and_snapshots(lines)
    return Tape(ps, [ln.raw for ln in lines], inst.resolve(symbols, None, snapshots))


def _pcts(ns: np.ndarray) -> dict[str, float]:
    return {"p50": round(float(np.percentile(ns, 50)) / 1e3, 3), "p99": round(float(np.percentile(ns, 99)) / 1e3, 3)}


def _sync_point(tape: Tape) -> int:
    """Index of the first message after which every symbol's book is synced."""
    feed = Feed(tape.instruments)
    for i, m in enumerate(tape.messages):
        feed.on_message(m)
        if all(sf.synced for sf in feed.symbols):
            return i + 1
    raise RuntimeError("the recording never syncs a book (no snapshot bracketed by its diffs?)")


def book_update_ns(tape: Tape, repeats: int = 7) -> float:
    """Median over repeats of ns per level update, applying every recorded diff's levels to a book."""
    sym = tape.instruments[0]
    sides, prices, qtys = [], [], []
    snapshot = None
    for m in tape.messages:
        try:
            d = parse(m)
        except ValueError:
            continue
        if d["kind"] == "snapshot" and snapshot is None:
            snapshot = d
        elif d["kind"] == "depthUpdate" and d["s"] == sym.symbol and snapshot is not None:
            for side, key in ((0, "bids"), (1, "asks")):
                for p, q in d[key]:
                    sides.append(side)
                    prices.append(sym.price_to_ticks(p))
                    qtys.append(sym.qty_to_lots(q))
    if snapshot is None or not sides:
        raise RuntimeError("no snapshot or diffs to apply")
    s, p, q = (np.asarray(a, dtype=np.int64) for a in (sides, prices, qtys))
    per_level = []
    for _ in range(repeats):
        book = Book()
        for side, key in ((0, "bids"), (1, "asks")):
            book.apply(side, [sym.price_to_ticks(x) for x, _ in snapshot[key]],
                       [sym.qty_to_lots(y) for _, y in snapshot[key]])
        per_level.append(time_apply(book, s, p, q) / len(s))
    return round(statistics.median(per_level), 2)


def _depth_mask(messages: list[bytes]) -> np.ndarray:
    kinds = []
    for m in messages:
        try:
            kinds.append(parse(m)["kind"] == "depthUpdate")
        except ValueError:
            kinds.append(False)
    return np.asarray(kinds, dtype=bool)


def msg_to_book(tape: Tape) -> dict[str, float]:
    """Raw depth-message bytes to an updated book (scan, chain check, convert, apply), signals off."""
    start = _sync_point(tape)
    feed = Feed(tape.instruments)
    for sf in feed.symbols:
        sf.signals_on = False
    feed.replay(tape.messages[:start])
    rest = tape.messages[start:]
    ns = feed.time_each(rest)
    return _pcts(ns[_depth_mask(rest)])


def msg_to_decision(tape: Tape) -> dict[str, float]:
    """Raw depth-message bytes to updated book, updated signals and a sniper fire/hold decision for one intent."""
    from strategies.sniper import SniperTrigger

    start = _sync_point(tape)
    feed = Feed(tape.instruments)
    feed.replay(tape.messages[:start])
    sf = feed.symbols[0]
    horizon = 10**15  # one intent whose window spans the whole tape: every event is a live decision
    trigger = SniperTrigger(0, sf.last_event_ns, sf.last_event_ns + horizon)
    rest = tape.messages[start:]
    ns = feed.time_each(rest, trigger.decide)
    return _pcts(ns[_depth_mask(rest)])


def metrics_cost(tape: Tape, rounds: int = 5) -> dict[str, float]:
    """What measuring costs per message: the recorded messages after the sync point through
    ``engine.feed.live.MarketData.on_raw`` (bytes -> book -> signals -> a sniper decision, as ``msg_to_decision``)
    with the metrics instrumentation on, against the same path with it off (``metrics=False``), interleaved over
    ``rounds``; the median and p99 µs per depth message (timed around each call from Python, so both include the
    timer's ~0.1 µs) and the ratio of the medians. With metrics on, one message in ``SAMPLE`` also pays its
    timing and two histogram updates (in the p99)."""
    depth = _depth_mask(tape.messages[_sync_point(tape):])
    off, on = [], []
    for _ in range(rounds):
        for measured, out in ((False, off), (True, on)):
            out.append(_on_raw_ns(tape, measured)[depth])
    p50_off, p50_on = (statistics.median(float(np.percentile(ns, 50)) for ns in runs) / 1e3 for runs in (off, on))
    p99_off, p99_on = (statistics.median(float(np.percentile(ns, 99)) for ns in runs) / 1e3 for runs in (off, on))
    return {"p50_off_us": round(p50_off, 3), "p50_on_us": round(p50_on, 3), "ratio": round(p50_on / p50_off, 3),
            "p99_off_us": round(p99_off, 3), "p99_on_us": round(p99_on, 3)}


def _on_raw_ns(tape: Tape, measured: bool) -> np.ndarray:
    """ns per message through ``MarketData.on_raw`` (``measured``) or ``on_raw_plain``, the book synced first."""
    from engine.feed.live import MarketData
    from strategies.sniper import SniperTrigger

    start = _sync_point(tape)
    feed = Feed(tape.instruments)
    feed.replay(tape.messages[:start])
    sf = feed.symbols[0]
    decide = SniperTrigger(0, sf.last_event_ns, sf.last_event_ns + 10**15).decide
    md = MarketData(feed, None, "ws://127.0.0.1:1", None, lambda kind, s: decide(s), kinds=(),
                    stream_cls=_NoStream, clock=time.time_ns, metrics=measured)
    on_raw, clock, rest = md.on_raw, time.perf_counter_ns, tape.messages[start:]
    ns = np.empty(len(rest), dtype=np.int64)
    for i, m in enumerate(rest):
        t0 = clock()
        on_raw(m)
        ns[i] = clock() - t0
    return ns


class _NoStream:
    """``MarketData``'s stream, never connected (the bench hands it the messages itself)."""

    def __init__(self, *_args: object) -> None:
        pass


def arrival_capture_us(tape: Tape, n: int = 300) -> float:
    """The decision dataset's copy of the market when an intent arrives (``engine.dataset.state``: the top 20
    levels a side, the last 30 s of trades, every signal, the context symbol), serialized for the journal: median
    µs. Once per intent, never per event; it runs before the intent's journal sync."""
    from engine.dataset.state import capture, journal_bytes
    from engine.feed.recording import read_messages, sample_paths
    from engine.model import KNOWN_INSTRUMENTS

    feed = Feed(tape.instruments[:1])
    feed.replay(tape.messages[: len(tape.messages) * 3 // 4])
    sf = feed.symbols[0]
    other = Feed([KNOWN_INSTRUMENTS["ETHUSDT"]])          # a context symbol's feed (the bundled ETHUSDT minutes)
    eth = read_messages([sample_paths()[1]])
    other.replay(eth[: len(eth) * 3 // 4])
    ctx = other.symbols[0]
    now = sf.last_event_ns
    ns = []
    for _ in range(n):
        t0 = time.perf_counter_ns()
        journal_bytes(capture(sf, now, sf.timing.snapshot(now), ctx))
        ns.append(time.perf_counter_ns() - t0)
    return round(statistics.median(ns) / 1e3, 1)


def replay_events_per_s(tape: Tape, repeats: int = 5) -> float:
    """Recorded events per second through parse, depth sync, book and signals (median of repeats)."""
    rates = []
    for _ in range(repeats):
        feed = Feed(tape.instruments)
        t0 = time.perf_counter()
        feed.replay(tape.messages)
        rates.append(len(tape.messages) / (time.perf_counter() - t0))
    return round(statistics.median(rates))


def orjson_depth_us(tape: Tape, limit: int = 3000) -> float:
    """For comparison: orjson.loads alone on depth messages, median µs (the parser we chose not to use)."""
    import orjson

    depth = [m for m, d in zip(tape.messages, _depth_mask(tape.messages), strict=True) if d][:limit]
    ns = []
    for m in depth:
        t0 = time.perf_counter_ns()
        orjson.loads(m)
        ns.append(time.perf_counter_ns() - t0)
    return round(statistics.median(ns) / 1e3, 3)


def run(paths: list[str | Path] | None = None, sockets: bool = True, model: str | None = None) -> dict:
    """Every measure on the recording ``paths`` (the bundled sample by default); ``model``: also bytes to a
    decision with that model's features and every target's prediction (``msg_to_decision_model_us``)."""
    from engine.latency_bench import latency

    tape = load_tape(paths)
    result = {
        "data": [str(p) for p in tape.paths],
        "messages": len(tape.messages),
        "book_update_ns": book_update_ns(tape),
        "msg_to_book_us": msg_to_book(tape),
        "msg_to_decision_us": msg_to_decision(tape),
        "metrics_cost": metrics_cost(tape),
        "replay_events_per_s": replay_events_per_s(tape),
        "arrival_capture_us": arrival_capture_us(tape),
        "orjson_loads_depth_us": orjson_depth_us(tape),
        "sim_replay": sim_replay_speed(tape.paths, speed=300.0),
    }
    if model:
        from engine.learn.bench import decision_with_model_ns
        from engine.learn.runtime import cached_model

        r = decision_with_model_ns(tape, cached_model(model, tape.instruments[0].symbol))
        result["msg_to_decision_model_us"] = {"p50": r["p50"], "p99": r["p99"]}
    if sockets:                      # loopback socket paths: wire -> decision, decision -> bytes on the order socket
        result["machine_stalls"] = machine_stalls()
        result.update(latency(tape))
    return result


def machine_stalls(seconds: float = 2.0) -> dict[str, float]:
    """How often the engine's core is taken away from a running thread (``ext.parse.clock_stalls`` on the core
    ``tapeshot run`` gives the event loop): the floor under every p99 below. A path of T µs is hit by one of
    these in about T x per_s_over_10us / 1e6 of its samples."""
    from engine.latency_bench import _engine_core, _pinned
    from ext.parse import clock_stalls

    with _pinned(_engine_core()):
        n10, n20, n40, longest = clock_stalls(int(seconds * 1e9))
    return {"per_s_over_10us": round(n10, 1), "per_s_over_20us": round(n20, 1), "per_s_over_40us": round(n40, 1),
            "longest_us": round(longest, 1)}


def _flat(result: dict) -> list[tuple[str, float]]:
    rows = []
    for k, v in result.items():
        if isinstance(v, dict):
            rows += [(f"{k}.{kk}", vv) for kk, vv in v.items()]
        elif isinstance(v, int | float):
            rows.append((k, v))
    return rows


def table(result: dict) -> str:
    """The result as an aligned text table with the targets beside the figures."""
    rows = [(name, value) for name, value in _flat(result) if name != "messages"]
    width = max([28, *(len(name) + 2 for name, _ in rows)])
    lines = [f"data: {', '.join(result['data'])} ({result['messages']} messages)", "",
             f"{'measure':<{width}}{'value':>14}   target     "]
    for name, value in rows:
        target = TARGETS.get(name)
        if target:
            op, lim = target
            ok = value <= lim if op == "<=" else value >= lim
            tgt = f"{op} {lim:g}  {'ok' if ok else 'MISSED'}"
        else:
            tgt = "(reference)"
        lines.append(f"{name:<{width}}{value:>14,.3f}   {tgt}")
    return "\n".join(lines)


def sim_replay_speed(paths: list[str | Path] | None = None, speed: float = 200.0) -> dict[str, float]:
    """The tape through the sim venue, real sockets and the engine's client and feed, no orders: how many times
    faster than real time it ran, with the client's book checked against every checkable bookTicker on the way."""
    import asyncio

    import aiohttp

    from engine.feed import make_feed
    from engine.feed.live import MarketData
    from engine.loop import run as run_loop
    from engine.venues.binance.rest import BinanceRest
    from engine.venues.sim import SimExchange
    from engine.venues.sim.server import SimVenue, SimVenueConfig

    ps = [Path(p) for p in paths] if paths else [sample_path()]

    async def main() -> dict[str, float]:
        ex = SimExchange(ps)
        first, last = ex.tape.events[0].time_ns, ex.tape.events[-1].time_ns
        venue = SimVenue(ex, SimVenueConfig(speed=speed))
        async with aiohttp.ClientSession() as session:
            feed = make_feed(list(ex.instruments.values()))
            md = MarketData(feed, BinanceRest("http://127.0.0.1:1", session), "ws://127.0.0.1:1", session)
            t0 = time.perf_counter()
            await venue.start()
            md.rest.base_url, md.stream.ws_base = venue.rest_url, venue.ws_url
            task = asyncio.create_task(md.run())
            await venue.finished.wait()
            await asyncio.sleep(0.05)
            wall = time.perf_counter() - t0
            await md.close()
            task.cancel()
            await venue.stop()
        checks = sum(sf.ticker_checks for sf in feed.symbols)
        bad = sum(sf.ticker_mismatches + sf.n_gaps for sf in feed.symbols)
        return {"x_real_time": round((last - first) / 1e9 / wall, 1), "tape_s": round((last - first) / 1e9, 1),
                "wall_s": round(wall, 3), "ticker_checks": checks, "mismatches_or_gaps": bad}

    return run_loop(main())
