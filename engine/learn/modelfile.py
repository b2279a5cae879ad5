"""Versioned model files: one ``.npz`` holding every target's arrays and a JSON metadata string.

Layout: ``meta`` (a 0-d unicode array: the JSON below) and ``<target>__<array>`` for each target's model arrays
(``models.Model.to_arrays``). Read with ``allow_pickle=False``: a model file never runs code.

Metadata (``format: "tapeshot.model/1"``): ``capacity``; ``targets`` (per target: ``task``, ``kind`` (model
class), ``params``); ``symbol``; ``feature_set_id`` and ``features``; ``signals`` (the ``TimingParams`` the
features were computed with); ``step_ms``, ``lag_ms``, ``horizons_s``, ``fill_t_s``; ``training`` (files with
sha256 and role, rows fitted and held out, seed); ``scores`` (``tail``: the held-out tail of the training
recording, per target; ``validation``: per recording given to ``--validate``); ``inference_ns`` (per target,
``predict_one``: p50/p99); ``created_utc``; ``engine_version``.
"""

from __future__ import annotations

import json
import math
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from engine.errors import ConfigError
from engine.learn.features import FEATURE_SET_ID
from engine.learn.models import Model, restore

FORMAT = "tapeshot.model/1"
SEP = "__"


@dataclass
class TimingModel:
    """A loaded (or freshly trained) model file: its metadata and one model per target."""

    meta: dict[str, Any]
    models: dict[str, Model]

    @property
    def symbol(self) -> str:
        return str(self.meta["symbol"])

    @property
    def feature_set_id(self) -> str:
        return str(self.meta["feature_set_id"])

    @property
    def capacity(self) -> str:
        return str(self.meta["capacity"])

    @property
    def targets(self) -> tuple[str, ...]:
        return tuple(self.models)

    def kernels(self) -> tuple:
        """Every target's ``ext.learn`` kernel, in ``targets`` order (for ``ext.learn.predict_into``)."""
        return tuple(m.kernel for m in self.models.values())

    def predict_row(self, x: np.ndarray) -> dict[str, float]:
        """Every target's prediction for one float32 feature row (through the kernels)."""
        return {t: m.predict_one(x) for t, m in self.models.items()}


def _clean(obj: Any) -> Any:
    """JSON-safe: NaN and infinities as null, numpy scalars as Python numbers."""
    if isinstance(obj, dict):
        return {str(k): _clean(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_clean(v) for v in obj]
    if isinstance(obj, np.generic):
        obj = obj.item()
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return obj


def save(path: str | Path, tm: TimingModel) -> Path:
    """Write ``tm`` to ``path`` (``.npz`` is appended when missing); returns the path written."""
    p = Path(path)
    if p.suffix != ".npz":
        p = p.with_name(p.name + ".npz")
    meta = dict(tm.meta, format=FORMAT)
    arrays: dict[str, np.ndarray] = {"meta": np.array(json.dumps(_clean(meta)))}
    for target, model in tm.models.items():
        if SEP in target:
            raise ConfigError(f"target name {target!r} may not contain {SEP!r}")
        for name, arr in model.to_arrays().items():
            arrays[f"{target}{SEP}{name}"] = np.asarray(arr)
    p.parent.mkdir(parents=True, exist_ok=True)
    tmp = p.with_name(p.name + ".tmp.npz")
    np.savez(tmp, **arrays)
    tmp.replace(p)
    return p


def read(path: str | Path) -> TimingModel:
    """Read a model file whatever it was trained for (``load_model`` is the checked way in)."""
    p = Path(path)
    if p.is_file() and not zipfile.is_zipfile(p):       # numpy would read it as a pickle and advise unsafe loading
        raise ConfigError(f"{p}: not a readable model file (not the .npz zip archive tapeshot train writes)")
    try:
        with np.load(p, allow_pickle=False) as z:
            meta = json.loads(str(z["meta"][()]))
            arrays = {k: np.array(z[k]) for k in z.files if k != "meta"}
    except FileNotFoundError:
        raise ConfigError(f"model file not found: {p}") from None
    except (OSError, ValueError, KeyError, EOFError, json.JSONDecodeError) as exc:
        raise ConfigError(f"{p}: not a readable model file ({type(exc).__name__}: {exc})") from None
    if not isinstance(meta, dict):
        raise ConfigError(f"{p}: not a readable model file (its metadata is not an object)")
    fmt = meta.get("format")
    if fmt != FORMAT:
        raise ConfigError(f"{p}: unknown model format {fmt!r}; this engine reads {FORMAT!r} (retrain the model "
                          f"with this engine's tapeshot train)")
    return TimingModel(meta, _models(p, meta, arrays))


def _models(p: Path, meta: dict, arrays: dict[str, np.ndarray]) -> dict[str, Model]:
    out: dict[str, Model] = {}
    try:
        for target, spec in meta["targets"].items():
            mine = {k[len(target) + len(SEP):]: v for k, v in arrays.items() if k.startswith(target + SEP)}
            out[target] = restore(spec["kind"], spec["task"], mine, spec.get("params", {}))
    except (KeyError, TypeError, ValueError, IndexError, AttributeError) as exc:
        raise ConfigError(f"{p}: not a readable model file (target arrays: {type(exc).__name__}: {exc})") from None
    if not out:
        raise ConfigError(f"{p}: the model file holds no target")
    return out


def load_model(path: str | Path, symbol: str, feature_set_id: str = FEATURE_SET_ID) -> TimingModel:
    """Read a model file and check it is for ``symbol`` and this engine's feature set: ``ConfigError`` naming
    the file and the mismatch otherwise (wrong symbol, other feature set, unknown format, unreadable file)."""
    tm = read(path)
    if tm.meta.get("symbol") != symbol:
        raise ConfigError(f"{path}: the model was trained for {tm.meta.get('symbol')!r}, not {symbol!r}: train one "
                          f"on {symbol} recordings (tapeshot train --data ...)")
    if tm.meta.get("feature_set_id") != feature_set_id or tuple(tm.meta.get("features", ())) == ():
        raise ConfigError(f"{path}: the model uses feature set {tm.meta.get('feature_set_id')!r} and this engine "
                          f"computes {feature_set_id!r} (the features changed since it was trained): retrain it")
    n_in = len(tm.meta["features"])
    for target, m in tm.models.items():
        if m.kernel.n_in != n_in:
            raise ConfigError(f"{path}: target {target} takes {m.kernel.n_in} features, the file lists {n_in}")
    return tm
