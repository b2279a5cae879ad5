"""Predictive quality of the timing models: AUC for a fill probability, information coefficient (Spearman) and
hit rate for a predicted move. numpy only; ties get average ranks."""

from __future__ import annotations

import numpy as np


def ranks(x: np.ndarray) -> np.ndarray:
    """1-based ranks with ties averaged."""
    x = np.asarray(x, dtype=np.float64)
    order = np.argsort(x, kind="mergesort")
    xs = x[order]
    r = np.empty(len(x))
    starts = np.r_[0, np.flatnonzero(np.diff(xs)) + 1]
    ends = np.r_[starts[1:], len(x)]
    avg = (starts + ends + 1) / 2.0                 # mean of ranks start+1 .. end
    r[order] = np.repeat(avg, ends - starts)
    return r


def auc(y: np.ndarray, p: np.ndarray) -> float:
    """Area under the ROC curve (Mann-Whitney); NaN when one class is absent."""
    y = np.asarray(y) > 0.5
    n1, n0 = int(y.sum()), int((~y).sum())
    if n1 == 0 or n0 == 0:
        return float("nan")
    r = ranks(p)
    return float((r[y].sum() - n1 * (n1 + 1) / 2.0) / (n1 * n0))


def spearman(a: np.ndarray, b: np.ndarray) -> float:
    """Spearman rank correlation (the information coefficient); NaN when either side is constant."""
    ra, rb = ranks(a), ranks(b)
    ra, rb = ra - ra.mean(), rb - rb.mean()
    den = float(np.sqrt((ra * ra).sum() * (rb * rb).sum()))
    return float((ra * rb).sum() / den) if den > 0 else float("nan")


def hit_rate(y: np.ndarray, pred: np.ndarray) -> float:
    """Share of rows where the predicted move has the realised move's sign, over rows where both are non-zero."""
    y, pred = np.asarray(y), np.asarray(pred)
    both = (y != 0) & (pred != 0)
    return float(np.mean(np.sign(y[both]) == np.sign(pred[both]))) if both.any() else float("nan")


def score_move(y: np.ndarray, pred: np.ndarray) -> dict[str, float]:
    """``ic`` (Spearman), ``hit`` (sign agreement where both move), ``n`` rows, ``moved``: share of non-zero y."""
    return {"ic": _r(spearman(pred, y)), "hit": _r(hit_rate(y, pred)), "n": len(y),
            "moved": _r(float(np.mean(np.asarray(y) != 0))) if len(y) else float("nan")}


def score_fill(y: np.ndarray, p: np.ndarray) -> dict[str, float]:
    """``auc``, ``base`` rate, ``mean_p`` (calibration at a glance), ``logloss``, ``n`` rows."""
    y = np.asarray(y, dtype=np.float64)
    pc = np.clip(np.asarray(p, dtype=np.float64), 1e-9, 1 - 1e-9)
    ll = float(-np.mean(y * np.log(pc) + (1 - y) * np.log(1 - pc))) if len(y) else float("nan")
    return {"auc": _r(auc(y, p)), "base": _r(float(y.mean())) if len(y) else float("nan"),
            "mean_p": _r(float(np.mean(p))) if len(y) else float("nan"), "logloss": _r(ll), "n": len(y)}


def _r(x: float) -> float:
    return round(x, 4) if x == x else x
