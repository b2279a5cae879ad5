"""``tapeshot eval --tune``: grid search of algorithm thresholds, on the development set only.

Sniper first, then ladder, then hybrid, then auto (which builds the sniper, ladder or hybrid with the values just
chosen); only the algorithms in ``--algos`` (default: all of them). Each
candidate runs the main comparison for that one algorithm on the same intents; the objective is
``engine.eval.tuned.objective``. Refuses validation recordings: nothing is tuned on the set it is reported on.

With ``--models``, the hybrid's grid is searched once per model file instead (``tune_models``, on top of the
tuned parameters of everything else): a learned predictor may want another threshold than the kernels, and the
board should not judge it at the kernels' one.
"""

from __future__ import annotations

from dataclasses import replace

from engine.eval import tuned
from engine.eval.data import DataSet, market_path, refuse_validation
from engine.eval.experiments import Settings, evaluate
from engine.eval.intents import generate

ORDER = ("sniper", "ladder", "hybrid", "auto")


def tune(ds: DataSet, s: Settings, log=print) -> dict[str, dict]:
    """Chosen parameters per algorithm (merged over ``s.params``); prints every candidate's score."""
    path, intents = _tuning_intents(ds, s)
    cur = replace(s, experiments=frozenset())
    for algo in (a for a in ORDER if a in s.algos):
        _, chosen, _, _ = _search(ds, cur, algo, tuned.candidates(algo), intents, path, log, algo)
        cur = tuned.with_params(cur, algo, chosen)
    return cur.params


def tune_models(ds: DataSet, s: Settings, log=print) -> dict[str, dict]:
    """The hybrid's grid searched with each of ``s.models`` (on top of ``s.params``): per capacity label, the
    chosen parameters, their objective, cost and kept pnl, beside ``kernels``: the hybrid in force without a model
    on the same intents (what the board compares each model with). The same intents as ``tune``; a tie keeps the
    parameters in force."""
    from engine.eval.experiments import capacity_label

    path, intents = _tuning_intents(ds, s)
    cur = replace(s, experiments=frozenset(), models=())
    base = evaluate(ds, replace(cur, algos=("hybrid",)), intents, path)["algos"]["hybrid"]
    log(f"{ds.label} hybrid[kernels] {cur.params.get('hybrid', {})}: all-in {base['mean_all_in_bps']} bps, "
        f"informed pnl {base['informed_pnl_bps']} bps -> {tuned.objective(base):.3f} (the board's reference)")
    out: dict[str, dict] = {"kernels": {"params": dict(cur.params.get("hybrid", {})),
                                        "objective": round(tuned.objective(base), 3), **_scores(base)}}
    for m in s.models:
        label = capacity_label(m)
        grid = [{**p, "model": m} for p in tuned.candidates("hybrid")]
        obj, p, sm, ties = _search(ds, cur, "hybrid", grid, intents, path, log, f"hybrid[{label}]")
        out[label] = {"params": {k: v for k, v in p.items() if k != "model"}, "objective": round(obj, 3),
                      **_scores(sm), "candidates_tied": ties}
    return out


def _tuning_intents(ds: DataSet, s: Settings) -> tuple:
    """The market path and the intents every candidate runs (refused on validation data)."""
    refuse_validation(ds.files, "tune")
    path = market_path(ds.files)
    return path, generate(path, s.n_intents, s.n_intents, s.seed, s.horizon_s, informedness=s.informedness)


def _scores(sm: dict) -> dict:
    return {k: sm[k] for k in ("mean_all_in_bps", "informed_pnl_bps", "edge_kept")}


def _search(ds: DataSet, cur: Settings, algo: str, grid: list[dict], intents, path, log, name: str) -> tuple:
    """Every candidate of ``grid`` for ``algo`` on the same intents; the best (objective, params, summary) and how
    many other candidates tie with it."""
    scored = []
    for p in grid:
        trial = replace(tuned.with_params(cur, algo, p), algos=(algo,))
        sm = evaluate(ds, trial, intents, path)["algos"][algo]
        scored.append((tuned.objective(sm), p, sm))
        shown = {k: v for k, v in p.items() if k != "model"}
        log(f"{ds.label} {name} {shown}: all-in {sm['mean_all_in_bps']} bps, informed pnl "
            f"{sm['informed_pnl_bps']} bps, completion {sm['completion_rate']} -> {scored[-1][0]:.3f}")
    best = min(scored, key=lambda x: x[0])
    tied = [x for x in scored if abs(x[0] - best[0]) < 1e-9]
    now = cur.params.get(algo, {})
    kept = [x for x in tied if all(now.get(k) == v for k, v in x[1].items() if k != "model")]
    best = kept[0] if kept else best       # a tie changes nothing: keep the parameters in force
    log(f"{ds.label} {name}: chose {({k: v for k, v in best[1].items() if k != 'model'})} "
        f"(objective {best[0]:.3f}" + (f"; {len(tied) - 1} other candidate(s) tie: "
                                       + ("the parameters in force are kept)" if kept else
                                          "the first in grid order wins)") if len(tied) > 1 else ")"))
    return (*best, len(tied) - 1)
