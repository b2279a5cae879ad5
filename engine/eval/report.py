"""Terminal tables and the JSON document of an evaluation; every block names the data set it came from."""

from __future__ import annotations

from engine.eval.experiments import Settings, ablation_label, goal, pooled


def _f(x: float | None, nd: int = 2, width: int = 7) -> str:
    return f"{'-':>{width}}" if x is None else f"{x:>{width}.{nd}f}"


def _ci(ci: list | None) -> str:
    if not ci or ci[0] is None:
        return f"{'-':>16}"
    return f"{f'[{ci[0]:.2f}, {ci[1]:.2f}]':>16}"


def algo_table(label: str, algos: dict[str, dict]) -> list[str]:
    head = (f"{'algorithm':<14}{'n':>4}{'mean':>7}{'median':>7}{'95% CI (mean)':>16}{'all-in':>7}{'compl':>7}"
            f"{'filled':>7}{'ttf p50':>8}{'maker':>7}{'mk+1s':>7}{'mk+5s':>7}{'mk+30s':>7}{'edge':>7}")
    lines = [f"[{label}] uninformed cost in bps vs arrival mid, fees in (positive = cost); n, completion, fill "
             "time, maker share and markouts over all intents; edge kept over informed intents", head]
    for name, a in algos.items():
        mk = a["markouts_bps"]
        lines.append(f"{name:<14}{a['n_intents']:>4}{_f(a['mean_cost_bps'])}{_f(a['median_cost_bps'])}"
                     f"{_ci(a['ci95_bps'])}{_f(a['mean_all_in_bps'])}{_f(a['completion_rate'], 3)}"
                     f"{_f(a['fill_rate'], 3)}{_f(a['time_to_fill_s']['median'], 2, 8)}{_f(a['maker_share'], 2)}"
                     f"{_f(mk['+1s'])}{_f(mk['+5s'])}{_f(mk['+30s'])}{_f(a['edge_kept'], 2)}")
    return lines


def latency_table(label: str, sweep: dict[str, list[dict]]) -> list[str]:
    lats = [p["latency_ms"] for p in next(iter(sweep.values()))]
    lines = [f"[{label}] latency sweep (feed = entry = ack = L): mean all-in cost of uninformed intents, bps "
             "(edge kept of informed intents)",
             f"{'algorithm':<14}" + "".join(f"{f'{lat:g} ms':>18}" for lat in lats)]
    for name, pts in sweep.items():
        cells = "".join(f"{_f(p['mean_all_in_bps'], 2, 8)} ({_f(p['edge_kept'], 2, 5)})  " for p in pts)
        lines.append(f"{name:<14}{cells}")
    return lines


def ablation_table(label: str, abl: dict, cost: dict | None) -> list[str]:
    shared = f"{cost['signals_ns_per_event']:.0f} ns/event (shared)" if cost else "not measured"
    lines = [f"[{label}] ablation of {abl['algo']}: one score weight set to 0 at a time (Δ cost > 0: the signal "
             f"was saving that much); compute cost of the signal kernel: {shared}",
             f"{'removed':<14}{'all-in':>8}{'Δ cost':>8}{'edge':>8}{'Δ edge':>8}",
             f"{'(none)':<14}{_f(abl['full']['mean_all_in_bps'], 3, 8)}{'':>8}{_f(abl['full']['edge_kept'], 3, 8)}"]
    for r in abl["rows"]:
        lines.append(f"{ablation_label(r['removed']):<14}{_f(r['mean_all_in_bps'], 3, 8)}"
                     f"{_f(r['delta_cost_bps'], 3, 8)}{_f(r['edge_kept'], 3, 8)}{_f(r['delta_edge_kept'], 3, 8)}")
    if cost:
        lines.append(f"kernel: feed {cost['feed_ns_per_event_signals_on']:.0f} ns/event with signals, "
                     f"{cost['feed_ns_per_event_signals_off']:.0f} without; reads: score "
                     f"{cost['score_read_ns']:.0f} ns, snapshot {cost['snapshot_read_ns']:.0f} ns. {cost['note']}")
    return lines


def bars_table(label: str, bars: dict) -> list[str]:
    lines = [f"[{label}] sniper with signals per event vs on fixed bars (book live)",
             f"{'signals':<10}{'all-in':>8}{'95% CI':>18}{'edge':>8}"]
    for k, b in bars.items():
        lines.append(f"{k:<10}{_f(b['mean_all_in_bps'], 3, 8)}{_ci(b['ci95_all_in_bps']):>18}"
                     f"{_f(b['edge_kept'], 3, 8)}")
    return lines


def goal_lines(label: str, g: dict) -> list[str]:
    if not g:
        return []
    return [f"[{label}] goal: best timing algorithm {g['best_timing_algo']} costs {g['cost_ratio_vs_immediate']:.3f}"
            f" x immediate (target <= 0.5: {'met' if g['cost_half_of_immediate'] else 'NOT met'}); every intent "
            f"completed in window: {'yes' if g['all_completed'] else 'NO'}; edge kept {g['best_edge_algo']} "
            f"{_f(g['best_edge_kept'], 3, 0)} vs best baseline {_f(g['best_baseline_edge_kept'], 3, 0)} "
            f"({'beats' if g['edge_beats_every_baseline'] else 'does NOT beat'} every baseline)"
            + (f"; bytes to decision p99 with {g['chosen_capacity']} {g['decision_p99_us']:.1f} µs (target <= 10: "
               f"{'met' if g['decision_within_10us'] else 'NOT met'}; tapeshot bench --model measures it alone)"
               if "decision_p99_us" in g else "")]


def set_header(r: dict) -> str:
    d = r["data"]
    tag = "IN-SAMPLE: the thresholds were tuned on this set" if r["in_sample"] else f"tuned on {r['tuned_on']}"
    return (f"== {d['label']}: {', '.join(d['files'])}; seed {r['seed']}; latency {r['latency']}; "
            f"horizon {r['horizon_s']:g} s; {_informed_rule(r)}; {r['n_passes']} passes; {r['runtime_s']} s; {tag}")


def _informed_rule(r: dict) -> str:
    lo, hi = r.get("informedness_bps", (0, 0))
    edge = next((a.get("informed_edge_bps") for a in r.get("algos", {}).values()
                 if a.get("informed_edge_bps") is not None), None)
    rule = f"informed on moves >= {lo:g}-{hi:g} bps" if hi else "informed on any move"
    return rule + (f" (mean {edge:.2f} bps)" if edge is not None else "")


def pareto_table(label: str, rows: list[dict]) -> list[str]:
    """Smart versus fast on one board: each capacity of the hybrid, its cost, edge kept, completion and the
    latency of its decision path, then what it loses at each latency of the sweep."""
    lines = [f"[{label}] smart vs fast (hybrid): mean all-in cost of uninformed intents, bps; edge kept of informed; "
             "completion; bytes-to-decision µs p50/p99",
             f"{'capacity':<16}{'all-in':>8}{'edge kept':>11}{'complete':>10}{'p50 µs':>9}{'p99 µs':>9}"]
    for r in rows:
        lat = f"{_f(r['decision_p50_us'], 2, 9)}{_f(r['decision_p99_us'], 2, 9)}"
        lines.append(f"{r['capacity']:<16}{_f(r['mean_all_in_bps'], 3, 8)}{_f(r['edge_kept'], 3, 11)}"
                     f"{_f(r['completion_rate'], 3, 10)}{lat}")
    if rows and rows[0].get("sweep"):
        lines += ["", *latency_table(f"{label}, by capacity", {r["capacity"]: r["sweep"] for r in rows
                                                                if r.get("sweep")})]
    return lines


def text(results: list[dict], s: Settings) -> str:
    out: list[str] = []
    for r in results:
        label = r["data"]["label"]
        out += ["", set_header(r), *algo_table(label, r["algos"])]
        if "latency_sweep" in r:
            out += ["", *latency_table(label, r["latency_sweep"])]
        if "ablation" in r:
            out += ["", *ablation_table(label, r["ablation"], r.get("signal_cost"))]
        if "bars" in r:
            out += ["", *bars_table(label, r["bars"])]
        if r.get("pareto"):
            out += ["", *pareto_table(label, r["pareto"])]
        out += ["", *goal_lines(label, r["goal"])]
    if len(results) > 1:
        label = " + ".join(r["data"]["label"] for r in results)
        algos = pooled(results, s)
        out += ["", f"== pooled: {label}", *algo_table(label, algos), "", *goal_lines(label, goal(algos))]
    return "\n".join(out).lstrip("\n")


def document(results: list[dict], s: Settings) -> dict:
    """The --json object: algorithm name -> statistics (pooled over the sets given), plus data, seed, per set."""
    algos = pooled(results, s) if len(results) > 1 else results[0]["algos"]
    doc: dict = dict(algos)
    doc["data"] = {"sets": [r["data"] for r in results], "seed": s.seed, "latency": "/".join(s.latency),
                   "horizon_s": s.horizon_s, "intents_per_kind": s.n_intents,
                   "pooled_over": [r["data"]["label"] for r in results]}
    doc["goal"] = goal(algos)
    doc["sets"] = {r["data"]["label"]: {k: v for k, v in r.items() if k != "measures"} for r in results}
    return doc
