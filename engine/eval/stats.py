"""Per-intent measures and per-algorithm statistics (seeded bootstrap) from replay outcomes.

Costs are implementation shortfall against the arrival mid the engine stamped, in bps of the filled notional,
fees included (positive = cost). ``all_in`` also charges any unfilled remainder at the worst far-side price seen
inside the window plus the taker fee, so an algorithm cannot look cheap by not filling. Edge kept (informed
intents): PnL at the horizon (arrival + H) of what was executed, net of fees, over the PnL of a free instant fill
of the whole size at the arrival mid; aggregated as a ratio of sums over intents (both in bps of the requested
notional), which is robust to tiny denominators.

Completion inside the window: every lot filled and the last fill acknowledged no later than one order round trip
after the deadline (the promise of the shared deadline rule in ``strategies.base``); ``fill_rate`` counts every
intent filled at all, ``max_overrun_ms`` the largest lateness.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from decimal import Decimal

import numpy as np

from engine.eval.data import SEC, MarketPath
from engine.eval.intents import INFORMED, UNINFORMED

MARKOUTS = ("+1s", "+5s", "+30s")
BOOT = 2000


def measures(o: dict, path: MarketPath, tick: Decimal, taker_fee: float) -> dict:
    """Numbers of one outcome: cost (filled part), all-in cost, completion, fill time, maker lots, edge terms."""
    r = o["report"]
    m = {"id": o["id"], "kind": o["kind"], "ok": r is not None and not o["error"], "cost": None, "all_in": None,
         "complete": False, "filled_all": False, "overrun_ms": None, "ttf": None, "filled": 0.0, "maker": 0.0,
         "marks": {}, "edge_num": None, "edge_den": None}
    if not m["ok"]:
        return m
    sign, mid0 = o["sign"], float(r["arrival_mid"])
    req, filled, fees = float(r["requested"]), float(r["filled"]), float(r["fees"])
    avg = float(r["avg_price"]) if r["avg_price"] is not None else mid0
    worst = float(r["worst_in_window"]) if r["worst_in_window"] is not None else mid0
    spent = sign * (avg - mid0) * filled + fees
    rest = (req - filled) * (sign * (worst - mid0) + taker_fee * worst)
    ttf = r["time_to_fill_s"]
    overrun = None if ttf is None else max(0.0, ttf - o["window_s"]) * 1e3
    m.update(cost=r["shortfall_bps"], all_in=(spent + rest) / (mid0 * req) * 1e4, filled=filled,
             maker=(r["maker_share"] or 0.0) * filled, marks=r["markouts_bps"], ttf=ttf, overrun_ms=overrun,
             filled_all=bool(r["complete"]),
             complete=bool(r["complete"]) and overrun is not None and overrun <= o["round_trip_s"] * 1e3 + 1e-6)
    if o["kind"] == INFORMED:
        mid_h = path.mid_at(o["time_ns"] + int(o["horizon_s"] * SEC)) * float(tick)
        m["edge_num"] = (sign * (mid_h - avg) * filled - fees) / (mid0 * req) * 1e4
        m["edge_den"] = sign * (mid_h - mid0) / mid0 * 1e4
    return m


def bootstrap(values: Sequence[float], stat: Callable[[np.ndarray], float] = np.mean, seed: int = 0,
              n: int = BOOT) -> tuple[float, float]:
    """Percentile 95% interval of ``stat`` over ``n`` seeded resamples (rows of a 1-D or 2-D array)."""
    a = np.asarray(values, dtype=float)
    if len(a) == 0:
        return (float("nan"), float("nan"))
    idx = np.random.default_rng(seed).integers(0, len(a), size=(n, len(a)))
    stats = np.array([stat(a[i]) for i in idx])
    lo, hi = np.percentile(stats, [2.5, 97.5])
    return (float(lo), float(hi))


def _ratio(rows: np.ndarray) -> float:
    den = rows[:, 1].sum()
    return float(rows[:, 0].sum() / den) if den else float("nan")


def summarise(ms: list[dict], seed: int = 0) -> dict:
    """Statistics of one algorithm's measures (one row per intent, every intent of the evaluation)."""
    ok = [m for m in ms if m["ok"]]
    un = [m for m in ok if m["kind"] == UNINFORMED]
    inf = [m for m in ok if m["kind"] == INFORMED]
    cost = [m["cost"] for m in un if m["cost"] is not None]
    all_in = [m["all_in"] for m in un]
    filled = sum(m["filled"] for m in ok)
    out = {
        "n_intents": len(ms), "n_uninformed": sum(m["kind"] == UNINFORMED for m in ms),
        "n_informed": sum(m["kind"] == INFORMED for m in ms), "n_errors": len(ms) - len(ok),
        "mean_cost_bps": _r(np.mean(cost)) if cost else None,
        "median_cost_bps": _r(np.median(cost)) if cost else None,
        "ci95_bps": [_r(x) for x in bootstrap(cost, seed=seed)],
        "mean_all_in_bps": _r(np.mean(all_in)) if all_in else None,
        "ci95_all_in_bps": [_r(x) for x in bootstrap(all_in, seed=seed)],
        "completion_rate": _r(np.mean([m["complete"] for m in ms]) if ms else float("nan"), 4),
        "fill_rate": _r(np.mean([m["filled_all"] for m in ms]) if ms else float("nan"), 4),
        "max_overrun_ms": _r(max((m["overrun_ms"] for m in ok if m["overrun_ms"] is not None), default=0.0), 1),
        "time_to_fill_s": {"median": _r(np.median([m["ttf"] for m in ok if m["ttf"] is not None])) if ok else None,
                           "mean": _r(np.mean([m["ttf"] for m in ok if m["ttf"] is not None])) if ok else None},
        "maker_share": _r(sum(m["maker"] for m in ok) / filled, 4) if filled else None,
        "markouts_bps": {h: _r(np.mean(v)) if (v := [m["marks"][h] for m in ok if m["marks"].get(h) is not None])
                         else None for h in MARKOUTS},
    }
    out.update(_informed(inf, seed))
    return out


def _informed(inf: list[dict], seed: int) -> dict:
    rows = np.array([[m["edge_num"], m["edge_den"]] for m in inf], dtype=float).reshape(-1, 2)
    cost = [m["cost"] for m in inf if m["cost"] is not None]
    return {
        "edge_kept": _r(_ratio(rows), 4) if len(rows) else None,
        "edge_kept_ci95": [_r(x, 4) for x in bootstrap(rows, _ratio, seed=seed)] if len(rows) else None,
        "informed_edge_bps": _r(rows[:, 1].mean()) if len(rows) else None,
        "informed_pnl_bps": _r(rows[:, 0].mean()) if len(rows) else None,
        "informed_mean_cost_bps": _r(np.mean(cost)) if cost else None,
    }


def _r(x: float, nd: int = 3) -> float | None:
    x = float(x)
    return None if x != x else round(x, nd)
