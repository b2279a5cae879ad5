"""Running algorithms on evaluation intents: one in-process replay per pass, passes spread over worker processes.

``EvalReplay`` is ``engine.replay.Replay`` with two additions: algorithms come from a factory (so tuned parameters
and test probes reach the same algorithm classes that run live) and, optionally, the feed handed to algorithms
is bar-sampled (``engine.eval.bars``). Everything else (sim matching with queue and latency models, the engine's
own feed and snapshot fetch, the deadline rule, the ``Tracker`` report) is the replay's, unchanged.
"""

from __future__ import annotations

import multiprocessing as mp
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from engine.config import Config
from engine.errors import ConfigError
from engine.eval.bars import BarFeed
from engine.eval.intents import EvalIntent
from engine.execution import ALGORITHMS, Arrival, Tracker, make_spec
from engine.replay import MS, TIMER_NS, Replay, ReplayIntent, Run
from engine.signals_ref import TimingParams
from engine.venues.sim import SimConfig
from engine.venues.sim.tape import Tape, load_tape
from strategies import auto
from strategies.base import Algo, Spec
from strategies.sniper import FireRule

EVAL_ALGOS = ("immediate", "twap", "passive_chase", "sniper", "ladder", "auto")
Factory = Callable[[str, Spec, Any, int, Callable[[], str]], tuple[Algo, str]]


def algo_kwargs(name: str, params: dict[str, dict]) -> dict[str, Any]:
    """Constructor keywords of algorithm ``name`` from a parameter dict (``engine.eval.tuned`` layout)."""
    p = dict(params.get(name, {}))
    if name == "sniper" and ("start" in p or "end" in p):
        base = FireRule()
        p["rule"] = FireRule(p.pop("start", base.start), p.pop("end", base.end))
    if "weights" in p:
        p["weights"] = tuple(p["weights"])
    return p


def make_factory(params: dict[str, dict]) -> Factory:
    """An algorithm factory with the given parameters; ``auto`` chooses with its own and builds with the chosen's."""
    def factory(name: str, spec: Spec, sf, now: int, new_id: Callable[[], str]) -> tuple[Algo, str]:
        if name == "auto":
            cls, why = auto.choose(spec, sf, now, **params.get("auto", {}))
            algo = cls(spec, new_id, **algo_kwargs(cls.name, params))
            algo.note(now, f"auto chose {algo.name}: {why}")
            return algo, why
        cls = ALGORITHMS.get(name)
        if cls is None:
            raise ConfigError(f"unknown algorithm {name!r}")
        return cls(spec, new_id, **algo_kwargs(name, params)), name
    return factory


class EvalReplay(Replay):
    """``Replay`` with an algorithm factory and optional bar-sampled signals (``bar_ns`` > 0)."""

    def __init__(self, tape: Tape, sim_cfg: SimConfig, cfg: Config, factory: Factory, bar_ns: int = 0) -> None:
        super().__init__(tape, sim_cfg, cfg)        # SimExchange takes a Tape as well as paths
        self.factory = factory
        self.bars: BarFeed | None = None
        if bar_ns:
            self.bars = self.feed = BarFeed(self.feed, bar_ns)

    def _on_md(self, t: int, m) -> None:
        if self.bars is not None:
            self.bars.roll(t)                           # close bars before this message is absorbed
        super()._on_md(t, m)

    def _on_intent(self, t: int, run: Run) -> None:
        """As ``Replay._on_intent``, with the algorithm built by ``self.factory``."""
        it = run.req.intent
        try:
            sf = self.feed[it.symbol]
        except KeyError:
            run.error = f"{it.symbol} is not on the tape"
            return
        if not sf.synced:
            if t - run.req.time_ns > 5_000 * MS:
                run.error = "book never synced"
                return
            self._at(t + 50 * MS, "intent", run)
            return
        try:
            arrival = Arrival.stamp(sf, t)
            inst = self.ex.instruments[it.symbol]
            rtt = self.lat.entry_ns() + self.lat.ack_ns()
            spec = make_spec(it, inst, arrival, 0, round_trip_ns=max(rtt, 2 * MS))
            run.algo, _why = self.factory(run.req.algo, spec, sf, t, self._new_id)
            run.chosen = run.algo.name
        except ConfigError as exc:
            run.error = str(exc)
            return
        run.tracker = Tracker(spec, arrival, run.chosen)
        self._active.setdefault(it.symbol, []).append(run)
        self._route(run, run.algo.on_market(sf, t), t)
        self._at(t + TIMER_NS, "timer", run)


@dataclass(frozen=True)
class Job:
    """One replay pass: these intents, one algorithm, one venue / signal configuration."""

    files: tuple[str, ...]
    symbol: str
    algo: str
    intents: tuple[EvalIntent, ...]
    latency: tuple[str, str, str] = ("fixed:1", "fixed:1", "fixed:1")   # feed, entry, ack
    seed: int = 0
    params: dict[str, dict] = field(default_factory=dict)
    timing: dict[str, float] = field(default_factory=dict)            # TimingParams overrides (ablation)
    bar_ns: int = 0
    tag: str = ""                                                      # which experiment this pass belongs to


def truncated(tape: Tape, end_ns: int) -> Tape:
    """The tape up to ``end_ns`` (a pass need not replay past its last markout)."""
    n = next((i for i, ev in enumerate(tape.events) if ev.time_ns > end_ns), len(tape.events))
    return Tape(tape.events[:n], tape.symbols, tape.streams)


def run_job(job: Job, factory: Factory | None = None) -> list[dict]:
    """Replay one pass; one outcome per intent: the execution report plus what the statistics need."""
    feed, entry, ack = job.latency
    sim = SimConfig(seed=job.seed, feed_latency=feed, entry_latency=entry, ack_latency=ack)
    cfg = Config(signals=TimingParams(**job.timing)) if job.timing else Config()
    end = max(i.busy_until_ns for i in job.intents)
    tape = truncated(load_tape(list(job.files)), end)
    rp = EvalReplay(tape, sim, cfg, factory or make_factory(job.params), job.bar_ns)
    runs = rp.run([ReplayIntent(i.time_ns, i.intent(job.symbol), job.algo, key=str(i.id)) for i in job.intents])
    by_id = {int(r.req.key): r for r in runs}
    return [outcome(i, by_id[i.id], job) for i in job.intents]


def outcome(it: EvalIntent, run: Run, job: Job) -> dict:
    """The report of one run, tagged with its intent, algorithm and experiment."""
    rtt = run.tracker.spec.round_trip_ns if run.tracker is not None else 0
    maker = taker = Decimal(0)
    for _, _, _, is_maker, fee in (run.tracker.fills if run.tracker is not None else ()):
        maker, taker = (maker + fee, taker) if is_maker else (maker, taker + fee)
    return {"id": it.id, "kind": it.kind, "algo": job.algo, "chosen": run.chosen, "tag": job.tag,
            "error": run.error, "report": run.report, "window_s": it.window_s, "round_trip_s": rtt / 1e9,
            "time_ns": it.time_ns, "sign": it.sign, "horizon_s": it.horizon_s}


def run_jobs(jobs: list[Job], workers: int = 1) -> list[list[dict]]:
    """Run every job (in worker processes when ``workers`` > 1); results in job order, deterministic."""
    if workers <= 1 or len(jobs) <= 1:
        return [run_job(j) for j in jobs]
    ctx = mp.get_context("fork")
    with ctx.Pool(min(workers, len(jobs))) as pool:
        return pool.map(run_job, jobs, chunksize=1)
