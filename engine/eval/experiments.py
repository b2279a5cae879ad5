"""One evaluation of one recording: the main comparison, the latency sweep, the signal ablation and the bars test.

Every experiment replays exactly the same intents (same times, sides, sizes, windows, caps), packed into passes
whose windows and markout tails never overlap, so intents of one algorithm never meet in the sim's book.
"""

from __future__ import annotations

import time
from collections import defaultdict
from dataclasses import dataclass, field, replace
from pathlib import Path

from engine.eval import tuned
from engine.eval.cost import signal_cost
from engine.eval.data import MS, DataSet, MarketPath, market_path
from engine.eval.intents import INFORMEDNESS_BPS, EvalIntent, generate, pack
from engine.eval.runner import EVAL_ALGOS, Job, run_jobs
from engine.eval.stats import measures, summarise
from engine.model import KNOWN_INSTRUMENTS

EXPERIMENTS = ("latency", "ablation", "bars", "cost")
SIGNAL_WEIGHTS = ("w_ofi", "w_mlofi", "w_vel", "w_vac", "w_pull", "w_abs", "w_imb", "w_run", "w_tilt", "w_drift",
                  "w_spread")
TIMING_ALGOS = ("sniper", "ladder", "auto", "hybrid")
BASELINES = ("immediate", "twap", "passive_chase")
NO_VACUUM = 2.0                  # a vacuum fraction is < 1: this vacuum_fire never fires


@dataclass(frozen=True)
class Settings:
    """What to run. ``latency`` is (feed, entry, ack) latency models of the main comparison."""

    n_intents: int = 40                        # per kind: this many uninformed and this many informed
    seed: int = 0
    latency: tuple[str, str, str] = ("fixed:1", "fixed:1", "fixed:1")
    horizon_s: float = 30.0
    workers: int = 2
    algos: tuple[str, ...] = EVAL_ALGOS
    latencies_ms: tuple[float, ...] = (0, 1, 5, 20, 100)
    bars_ms: tuple[int, ...] = (100, 1000)
    ablation_algo: str = "sniper"
    experiments: frozenset[str] = frozenset(EXPERIMENTS)
    params: dict[str, dict] = field(default_factory=tuned.params)
    taker_fee: float = 0.0005
    models: tuple[str, ...] = ()               # model files: the Pareto board's capacities beyond the kernels
    informedness: tuple[float, float] = INFORMEDNESS_BPS   # informed intents' edge range, bps (see intents)


def _jobs(ds: DataSet, passes: list[list[EvalIntent]], s: Settings) -> list[Job]:
    """Every pass of every experiment (deduplicated against the main comparison where identical)."""
    base = Job(ds.files, ds.symbol, "", (), s.latency, s.seed, s.params)
    specs: list[tuple[str, dict]] = [(f"main/{a}", {"algo": a}) for a in s.algos]
    if "latency" in s.experiments:
        for lat in s.latencies_ms:
            model = (f"fixed:{lat:g}",) * 3
            if model != s.latency:
                specs += [(f"latency/{lat:g}/{a}", {"algo": a, "latency": model}) for a in s.algos]
    if "ablation" in s.experiments:
        specs += [(f"ablation/{w}", _ablation(s, w)) for w in (*SIGNAL_WEIGHTS, "all")]
    if "bars" in s.experiments:
        specs += [(f"bars/{ms}", {"algo": "sniper", "bar_ns": ms * MS}) for ms in s.bars_ms]
    specs += _pareto_specs(s)
    return [replace(base, intents=tuple(p), tag=tag, **kw) for tag, kw in specs for p in passes]


def capacity_label(model: str) -> str:
    """How a model file is named on the Pareto board: its file name without ``.npz``."""
    return Path(model).name.removesuffix(".npz")


def _pareto_specs(s: Settings) -> list[tuple[str, dict]]:
    """The hybrid with each model (the kernels-only hybrid is ``main/hybrid``), at the main latency and, with the
    latency experiment, at every latency of the sweep."""
    out: list[tuple[str, dict]] = []
    for m in s.models:
        params = {**s.params, "hybrid": {**s.params.get("hybrid", {}), "model": m}}
        label = capacity_label(m)
        out.append((f"pareto/{label}", {"algo": "hybrid", "params": params}))
        if "latency" in s.experiments:
            out += [(f"pareto/{label}/latency/{lat:g}", {"algo": "hybrid", "params": params,
                                                         "latency": (f"fixed:{lat:g}",) * 3})
                    for lat in s.latencies_ms]
    return out


def ablation_label(weight: str) -> str:
    """How an ablation row is named in tables and charts (the vacuum rows also switch off the vacuum trigger)."""
    return {"w_vac": "w_vac+trigger", "all": "all signals"}.get(weight, weight)


def _ablation(s: Settings, weight: str) -> dict:
    """The ablation algorithm with one score weight zeroed (``all``: every weight, and the vacuum trigger off)."""
    timing = {w: 0.0 for w in SIGNAL_WEIGHTS} if weight == "all" else {weight: 0.0}
    params = {k: dict(v) for k, v in s.params.items()}
    if weight in ("w_vac", "all"):          # the sniper also fires on the vacuum signal directly
        params.setdefault("sniper", {})["vacuum_fire"] = NO_VACUUM
    return {"algo": s.ablation_algo, "timing": timing, "params": params}


def evaluate(ds: DataSet, s: Settings, intents: list[EvalIntent] | None = None,
             path: MarketPath | None = None) -> dict:
    """Run every experiment on one recording; returns results and per-intent measures, labelled with the set."""
    t0 = time.perf_counter()
    path = path or market_path(ds.files)
    intents = intents if intents is not None else generate(path, s.n_intents, s.n_intents, s.seed, s.horizon_s,
                                                                 informedness=s.informedness)
    passes = pack(intents)
    jobs = _jobs(ds, passes, s)
    results = run_jobs(jobs, s.workers)
    tick = (path.inst or KNOWN_INSTRUMENTS[ds.symbol]).tick_size
    by_tag: dict[str, list[dict]] = defaultdict(list)
    for job, outs in zip(jobs, results, strict=True):
        by_tag[job.tag] += [measures(o, path, tick, s.taker_fee) for o in outs]
    out = {"data": ds.as_json(), "seed": s.seed, "latency": "/".join(s.latency), "horizon_s": s.horizon_s,
           "informedness_bps": list(s.informedness),
           "n_passes": len(passes), "params": s.params, "tuned_on": tuned.TUNED["set"],
           "in_sample": ds.role == "development", "measures": {k: v for k, v in by_tag.items()}}
    out["algos"] = {a: summarise(by_tag[f"main/{a}"], s.seed) for a in s.algos}
    out.update(_sweeps(by_tag, s))
    if "cost" in s.experiments:
        out["signal_cost"] = signal_cost(ds.files)
    if s.models or "hybrid" in s.algos:
        out["pareto"] = pareto(ds, by_tag, s)
    out["goal"] = goal(out["algos"], out.get("pareto"))
    out["runtime_s"] = round(time.perf_counter() - t0, 1)
    return out


def _sweeps(by_tag: dict[str, list[dict]], s: Settings) -> dict:
    out: dict = {}
    if "latency" in s.experiments:
        main_ms = _fixed_ms(s.latency)
        curve: dict[str, list[dict]] = {}
        for a in s.algos:
            curve[a] = []
            for lat in s.latencies_ms:
                tag = f"main/{a}" if lat == main_ms else f"latency/{lat:g}/{a}"
                curve[a].append({"latency_ms": lat, **_brief(summarise(by_tag[tag], s.seed))})
        out["latency_sweep"] = curve
    if "ablation" in s.experiments:
        full = _brief(summarise(by_tag[f"main/{s.ablation_algo}"], s.seed))
        rows = []
        for w in (*SIGNAL_WEIGHTS, "all"):
            b = _brief(summarise(by_tag[f"ablation/{w}"], s.seed))
            rows.append({"removed": w, **b, "delta_cost_bps": _delta(b["mean_all_in_bps"], full["mean_all_in_bps"]),
                         "delta_edge_kept": _delta(b["edge_kept"], full["edge_kept"], 4)})
        out["ablation"] = {"algo": s.ablation_algo, "full": full, "rows": rows}
    if "bars" in s.experiments:
        bars = {"event": _brief(summarise(by_tag["main/sniper"], s.seed))} if "sniper" in s.algos else {}
        bars.update({f"{ms}ms": _brief(summarise(by_tag[f"bars/{ms}"], s.seed)) for ms in s.bars_ms})
        out["bars"] = bars
    return out


def pareto(ds: DataSet, by_tag: dict[str, list[dict]], s: Settings) -> list[dict]:
    """One row per capacity of the hybrid (the kernels only, then each model): mean all-in cost (uninformed),
    edge kept (informed), completion, the decision path's latency per depth message (p50/p99 µs, bytes to a
    decision with the model's features and predictions) and, with the latency experiment, what each loses at
    every latency of the sweep."""
    rows = []
    main_ms = _fixed_ms(s.latency)
    for label, model, tag in [("kernels", None, "main/hybrid"),
                              *((capacity_label(m), m, f"pareto/{capacity_label(m)}") for m in s.models)]:
        if not by_tag.get(tag):
            continue
        row = {"capacity": label, **_brief(summarise(by_tag[tag], s.seed)), **decision_latency(ds, model)}
        if "latency" in s.experiments:
            row["sweep"] = [{"latency_ms": lat, **_brief(summarise(by_tag[
                tag if lat == main_ms else (f"latency/{lat:g}/hybrid" if model is None else
                                            f"{tag}/latency/{lat:g}")], s.seed))} for lat in s.latencies_ms
                            if by_tag.get(tag if lat == main_ms else (f"latency/{lat:g}/hybrid" if model is None
                                                                      else f"{tag}/latency/{lat:g}"))]
        rows.append(row)
    return rows


def decision_latency(ds: DataSet, model: str | None, limit: int = 200_000) -> dict[str, float]:
    """Bytes to decision per depth message (µs, p50/p99) on the first ``limit`` messages of the recording:
    the kernels alone (``engine.bench.msg_to_decision``), or with the model's features and predictions."""
    from engine.bench import load_tape, msg_to_decision

    tape = load_tape(list(ds.files))
    tape = replace(tape, messages=tape.messages[:limit])
    if model is None:
        r = msg_to_decision(tape)
        return {"decision_p50_us": r["p50"], "decision_p99_us": r["p99"]}
    from engine.learn.bench import decision_with_model_ns
    from engine.learn.runtime import cached_model

    r = decision_with_model_ns(tape, cached_model(model, ds.symbol))
    return {"decision_p50_us": r["p50"], "decision_p99_us": r["p99"]}


def _fixed_ms(lat: tuple[str, str, str]) -> float | None:
    """The latency in ms when all three channels are the same fixed model, else None."""
    if len(set(lat)) == 1 and lat[0].startswith("fixed:"):
        return float(lat[0].split(":")[1])
    return None


def _brief(sm: dict) -> dict:
    keys = ("mean_all_in_bps", "ci95_all_in_bps", "mean_cost_bps", "completion_rate", "maker_share", "edge_kept",
            "informed_pnl_bps")
    return {k: sm[k] for k in keys}


def _delta(a: float | None, b: float | None, nd: int = 3) -> float | None:
    return None if a is None or b is None else round(a - b, nd)


def goal(algos: dict[str, dict], board: list[dict] | None = None) -> dict:
    """The issue's goal on this data: best timing algorithm vs the immediate order and vs every baseline, and
    (with the smart-vs-fast board) the decision path's p99 with the capacity that kept the most edge."""
    timing = {a: algos[a] for a in TIMING_ALGOS if a in algos and algos[a]["mean_all_in_bps"] is not None}
    if not timing or "immediate" not in algos:
        return {}
    best = min(timing, key=lambda a: timing[a]["mean_all_in_bps"])
    imm = algos["immediate"]["mean_all_in_bps"]
    ratio = timing[best]["mean_all_in_bps"] / imm if imm else float("nan")
    base_edge = max((algos[b]["edge_kept"] for b in BASELINES if b in algos and algos[b]["edge_kept"] is not None),
                    default=None)
    best_edge = max(timing, key=lambda a: timing[a]["edge_kept"] if timing[a]["edge_kept"] is not None else -1e9)
    latency: dict = {}
    rows = [r for r in board or () if r.get("edge_kept") is not None]
    if rows:
        chosen = max(rows, key=lambda r: r["edge_kept"])
        latency = {"chosen_capacity": chosen["capacity"], "decision_p99_us": chosen["decision_p99_us"],
                   "decision_within_10us": bool(chosen["decision_p99_us"] <= 10.0)}
    return {
        **latency,
        "best_timing_algo": best, "cost_ratio_vs_immediate": round(ratio, 3),
        "cost_half_of_immediate": bool(ratio <= 0.5),
        "all_completed": bool(timing[best]["completion_rate"] == 1.0),
        "best_edge_algo": best_edge, "best_edge_kept": timing[best_edge]["edge_kept"],
        "best_baseline_edge_kept": base_edge,
        "edge_beats_every_baseline": bool(base_edge is not None and timing[best_edge]["edge_kept"] is not None
                                          and timing[best_edge]["edge_kept"] > base_edge),
    }


def pooled(sets: list[dict], s: Settings) -> dict[str, dict]:
    """Per-algorithm statistics over the intents of several recordings together."""
    return {a: summarise([m for r in sets for m in r["measures"][f"main/{a}"]], s.seed) for a in s.algos}
