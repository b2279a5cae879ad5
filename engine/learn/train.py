"""Training a timing model on a development recording, scoring it on a held-out tail and on validation sets.

The rows of the training recording are split by time: the last ``tail_frac`` (20 %) of its samples are held out,
and the head stops ``max horizon`` (5 s) before the tail starts so that no head label looks into it. The model
stored is the one fitted on the head: the tail scores describe exactly what is shipped. Validation recordings
(``--validate``) are only ever scored, never fitted on; the validation sets themselves are refused as training
data, as ``tapeshot eval --tune`` refuses them.

Parallel (``--workers``, ``--cluster``): the training and validation recordings are featurized on the backend of
``engine.eval.cluster`` (``featurize_many``: whole recordings per task, never time chunks, so every row is the
single-process one), and the targets' fits run as parallel tasks for the capacities that cost more than a pool.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
from pathlib import Path
from typing import Any

import numpy as np

from engine import __version__
from engine.errors import ConfigError
from engine.eval.cluster import Backend, current
from engine.eval.data import file_role, refuse_validation, role_of
from engine.learn import metrics
from engine.learn.features import (
    FEATURE_SET_ID,
    FEATURES,
    FILL_T_S,
    HORIZONS_S,
    LAG_MS,
    Featurized,
    featurize,
    featurize_many,
)
from engine.learn.modelfile import FORMAT, TimingModel
from engine.learn.models import CLASSIFICATION, REGRESSION, Model, make, restore
from engine.signals_ref import TimingParams

SEC = 1_000_000_000
SERIAL_FIT = frozenset({"linear"})          # a closed-form fit in milliseconds: a worker pool would cost more


def sha256_of(path: str | Path) -> str:
    """The file's sha256 (hex)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def task_of(target: str) -> str:
    """``classification`` for a fill target, ``regression`` for a move."""
    return CLASSIFICATION if target.startswith("fill_") else REGRESSION


def split(fz: Featurized, tail_frac: float = 0.2, embargo_s: float = max(HORIZONS_S)) -> tuple[np.ndarray, ...]:
    """Boolean masks (head, tail): the tail is the last ``tail_frac`` of sample times, the head ends
    ``embargo_s`` before it."""
    times = np.unique(fz.t_ns)
    cut = times[min(len(times) - 1, int(len(times) * (1 - tail_frac)))]
    tail = fz.t_ns >= cut
    head = fz.t_ns < cut - round(embargo_s * SEC)
    if head.sum() < 50 or tail.sum() < 20:
        raise ConfigError(f"too few rows to train ({head.sum()} to fit, {tail.sum()} held out): a longer recording, "
                          "or a smaller --step-ms")
    return head, tail


def scores(models: dict[str, Model], X: np.ndarray, y: dict[str, np.ndarray]) -> dict[str, dict[str, float]]:
    """Per target: AUC (fill) or IC and hit rate (moves) of the models on rows ``X``."""
    out = {}
    for target, m in models.items():
        pred = m.predict(X)
        out[target] = metrics.score_fill(y[target], pred) if m.task == CLASSIFICATION \
            else metrics.score_move(y[target], pred)
    return out


def fit_all(capacity: str, X: np.ndarray, y: dict[str, np.ndarray], seed: int,
            backend: Backend | None = None) -> dict[str, Model]:
    """One model of ``capacity`` per target; on ``backend`` (one task per target) unless the capacity is in
    ``SERIAL_FIT`` or no backend is given. Every fit is a deterministic function of its rows and the seed."""
    if backend is None or backend.workers <= 1 or capacity in SERIAL_FIT:
        return {t: make(capacity, task_of(t), seed).fit(X, y[t]) for t in y}
    fitted = backend.map(_fit_task, [(capacity, task_of(t), seed, X, y[t]) for t in y])
    return {t: restore(name, task_of(t), arrays, params) for t, (name, arrays, params) in zip(y, fitted, strict=True)}


def _fit_task(item: tuple[str, str, int, np.ndarray, np.ndarray]) -> tuple[str, dict[str, np.ndarray], dict]:
    """One fit, returned as the model file stores it (kind, arrays, parameters): the compiled kernels a model
    holds do not pickle, and ``restore`` rebuilds exactly what ``load_model`` would."""
    capacity, task, seed, X, y = item
    m = make(capacity, task, seed).fit(X, y)
    return m.name, m.to_arrays(), m.params()


def validate(models: dict[str, Model], files: list[str], step_ms: int) -> dict[str, Any]:
    """Scores of ``models`` on one more recording (never fitted on): its label, symbol, role and per-target scores."""
    return validation_scores(models, featurize(files, step_ms))


def validation_scores(models: dict[str, Model], fz: Featurized) -> dict[str, Any]:
    """``validate`` on a recording already featurized."""
    names = tuple(Path(f).name for f in fz.files)
    return {"files": list(names), "symbol": fz.symbol, "role": role_of(names), "rows": len(fz),
            "scores": scores(models, fz.X, fz.y)}


def train(data: list[str], capacity: str = "linear", step_ms: int = 100, seed: int = 0,
          validate_sets: list[list[str]] | None = None,
          backend: Backend | None = None) -> tuple[TimingModel, Featurized, np.ndarray]:
    """Featurize ``data`` (one development recording), fit every target on its head, score the tail and every
    validation recording; returns the model (metadata filled, not yet written), the rows and the tail mask.
    ``backend`` (default: ``engine.eval.cluster.current()``, in-process outside a session) runs the
    featurization of every recording and the fits; the result does not depend on it."""
    refuse_validation(data, "train")
    backend = backend if backend is not None else current()
    fz, *vals = featurize_many([data, *(validate_sets or [])], step_ms, backend)
    head, tail = split(fz)
    models = fit_all(capacity, fz.X[head], {t: v[head] for t, v in fz.y.items()}, seed, backend)
    meta = _meta(fz, capacity, models, seed, head, tail)
    meta["scores"] = {"tail": scores(models, fz.X[tail], {t: v[tail] for t, v in fz.y.items()}),
                      "validation": [validation_scores(models, v) for v in vals]}
    return TimingModel(meta, models), fz, tail


def _meta(fz: Featurized, capacity: str, models: dict[str, Model], seed: int, head: np.ndarray,
          tail: np.ndarray) -> dict[str, Any]:
    names = tuple(Path(f).name for f in fz.files)
    return {
        "format": FORMAT, "capacity": capacity, "symbol": fz.symbol,
        "targets": {t: {"task": m.task, "kind": m.name, "params": m.params()} for t, m in models.items()},
        "feature_set_id": FEATURE_SET_ID, "features": list(FEATURES),
        "signals": dataclasses.asdict(TimingParams()),
        "step_ms": fz.step_ms, "lag_ms": LAG_MS, "horizons_s": list(HORIZONS_S), "fill_t_s": FILL_T_S,
        "training": {"files": [{"name": Path(f).name, "sha256": sha256_of(f), "role": file_role(Path(f).name)}
                               for f in fz.files],
                     "role": role_of(names), "rows": len(fz), "rows_fit": int(head.sum()),
                     "rows_tail": int(tail.sum()), "seed": seed, "featurize": fz.stats,
                     "start_ns": int(fz.t_ns[0]), "end_ns": int(fz.t_ns[-1])},
        "created_utc": dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "engine_version": __version__,
    }

