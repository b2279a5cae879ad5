"""``tapeshot eval --tune``: grid search of algorithm thresholds, on the development set only.

Sniper first, then ladder, then hybrid, then auto (which builds the sniper, ladder or hybrid with the values just
chosen); only the algorithms in ``--algos`` (default: all of them). Each
candidate runs the main comparison for that one algorithm on the same intents; the objective is
``engine.eval.tuned.objective``. Refuses validation recordings: nothing is tuned on the set it is reported on.
"""

from __future__ import annotations

from dataclasses import replace

from engine.errors import ConfigError
from engine.eval import tuned
from engine.eval.data import DataSet, market_path
from engine.eval.experiments import Settings, evaluate
from engine.eval.intents import generate

ORDER = ("sniper", "ladder", "hybrid", "auto")


def tune(ds: DataSet, s: Settings, log=print) -> dict[str, dict]:
    """Chosen parameters per algorithm (merged over ``s.params``); prints every candidate's score."""
    if ds.role == "validation":
        raise ConfigError(f"{ds.label} is a validation set: tune on the development set only")
    path = market_path(ds.files)
    intents = generate(path, s.n_intents, s.n_intents, s.seed, s.horizon_s, informedness=s.informedness)
    cur = replace(s, experiments=frozenset())
    for algo in (a for a in ORDER if a in s.algos):
        scored = []
        for p in tuned.candidates(algo):
            trial = replace(tuned.with_params(cur, algo, p), algos=(algo,))
            sm = evaluate(ds, trial, intents, path)["algos"][algo]
            scored.append((tuned.objective(sm), p, sm))
            log(f"{ds.label} {algo} {p}: all-in {sm['mean_all_in_bps']} bps, informed pnl "
                f"{sm['informed_pnl_bps']} bps, completion {sm['completion_rate']} -> {scored[-1][0]:.3f}")
        best = min(scored, key=lambda x: x[0])
        log(f"{ds.label} {algo}: chose {best[1]} (objective {best[0]:.3f})")
        cur = tuned.with_params(cur, algo, best[1])
    return cur.params
