"""Running algorithms on evaluation intents: one in-process replay per pass, passes spread over worker processes
(or a Ray cluster: ``engine.eval.cluster``).

``EvalReplay`` is ``engine.replay.Replay`` with two additions: algorithms come from a factory (so tuned parameters
and test probes reach the same algorithm classes that run live) and, optionally, the feed handed to algorithms
is bar-sampled (``engine.eval.bars``). Everything else (sim matching with queue and latency models, the engine's
own feed and snapshot fetch, the deadline rule, the ``Tracker`` report) is the replay's, unchanged.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from engine.config import Config
from engine.eval.bars import BarFeed
from engine.eval.intents import EvalIntent
from engine.execution import make_algo
from engine.replay import Replay, ReplayIntent, Run
from engine.signals_ref import TimingParams
from engine.venues.sim import SimConfig
from engine.venues.sim.tape import Tape, load_tape
from strategies.base import Algo, Spec

EVAL_ALGOS = ("immediate", "twap", "passive_chase", "sniper", "ladder", "auto", "hybrid")
Factory = Callable[[str, Spec, Any, int, Callable[[], str]], tuple[Algo, str]]


def make_factory(params: dict[str, dict]) -> Factory:
    """An algorithm factory with the given parameters (``engine.execution.make_algo`` with them bound)."""
    def factory(name: str, spec: Spec, sf, now: int, new_id: Callable[[], str]) -> tuple[Algo, str]:
        return make_algo(name, spec, sf, now, new_id, params)
    return factory


class EvalReplay(Replay):
    """``Replay`` with an algorithm factory and optional bar-sampled signals (``bar_ns`` > 0)."""

    def __init__(self, tape: Tape, sim_cfg: SimConfig, cfg: Config, factory: Factory, bar_ns: int = 0) -> None:
        super().__init__(tape, sim_cfg, cfg, algo_factory=factory)   # SimExchange takes a Tape as well as paths
        self.bars: BarFeed | None = None
        if bar_ns:
            self.bars = self.feed = BarFeed(self.feed, bar_ns)

    def _on_md(self, t: int, m) -> None:
        if self.bars is not None:
            self.bars.roll(t)                           # close bars before this message is absorbed
        super()._on_md(t, m)


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
    sim: dict[str, Any] = field(default_factory=dict)                  # SimConfig overrides (queue_model, impact)


def truncated(tape: Tape, end_ns: int) -> Tape:
    """The tape up to ``end_ns`` (a pass need not replay past its last markout)."""
    n = next((i for i, ev in enumerate(tape.events) if ev.time_ns > end_ns), len(tape.events))
    return Tape(tape.events[:n], tape.symbols, tape.streams)


def run_job(job: Job, factory: Factory | None = None) -> list[dict]:
    """Replay one pass; one outcome per intent: the execution report plus what the statistics need."""
    feed, entry, ack = job.latency
    sim = SimConfig(seed=job.seed, feed_latency=feed, entry_latency=entry, ack_latency=ack, **job.sim)
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
    """Run every job on the current backend (``engine.eval.cluster``: a Ray cluster inside a ``--cluster``
    session, else worker processes when ``workers`` > 1); results in job order, deterministic."""
    from engine.eval.cluster import current

    return current(workers).map(run_job, jobs)
