"""The engine's side of a learned timing model: load one by configuration, predict per event.

``ModelRuntime(path, symbol)`` loads a model file with ``load_model`` (refusing another symbol, feature set or
format) and keeps the per-symbol feature state. Call ``observe(sf, now_ns)`` (or ``predict``) at every depth
update of that symbol so the 0.5 s history is sampled as in training; ``predict(sf, now_ns, side)`` returns every
target's prediction (``move_<h>s`` in bps in the side's favour, ``fill_2s`` a probability), all NaN while the
book is unusable. ``predictor(horizon_s)`` adapts it to ``strategies.hybrid.Predictor``.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from engine.errors import ConfigError
from engine.learn.features import FEATURES, fill_target, move_target, new_state
from engine.learn.modelfile import TimingModel, load_model
from ext import learn as _k


@functools.lru_cache(maxsize=16)
def _load(path: str, mtime_ns: int, symbol: str) -> TimingModel:
    return load_model(path, symbol)


def cached_model(path: str | Path, symbol: str) -> TimingModel:
    """``load_model``, read once per file version (its mtime) and symbol: an intent never waits for a disk read."""
    p = Path(path).expanduser()
    try:
        mtime = p.stat().st_mtime_ns
    except OSError as exc:
        raise ConfigError(f"cannot read the model file {p}: {exc.strerror}") from None
    return _load(str(p), mtime, symbol)


def model_predictor(path: str | Path, symbol: str, horizon_s: float = 2.0) -> Callable[[Any, int, int],
                                                                                           tuple[float, float]]:
    """A fresh runtime's ``predictor`` for one execution (its own feature history; the model itself cached)."""
    return ModelRuntime(path, symbol).predictor(horizon_s)


class ModelRuntime:
    """A loaded model for one symbol, its feature state and a preallocated output."""

    def __init__(self, path: str | Path, symbol: str) -> None:
        self.path = Path(path)
        self.symbol = symbol
        self.model: TimingModel = cached_model(path, symbol)
        self.targets: tuple[str, ...] = self.model.targets
        self.state = new_state(int(self.model.meta.get("step_ms", 100)), int(self.model.meta.get("lag_ms", 500)))
        self._kernels = self.model.kernels()
        self._out = np.empty(len(self.targets), dtype=np.float64)
        self._row = np.empty(len(FEATURES), dtype=np.float32)
        self._checked: set[int] = set()

    def _check(self, sf: Any) -> None:
        """Once per SymbolFeed: its symbol and its signal parameters are the model's."""
        if sf.symbol != self.symbol:
            raise ConfigError(f"{self.path}: a {self.symbol} model asked about {sf.symbol}")
        want = self.model.meta.get("signals")
        if want is not None:
            have = dataclasses.asdict(sf.timing.params)
            diff = sorted(k for k in set(want) | set(have) if want.get(k) != have.get(k))
            if diff:
                raise ConfigError(f"{self.path}: the model's features were computed with other [signals] "
                                  f"parameters ({', '.join(diff)} differ): retrain it with these")
        self._checked.add(id(sf))

    def check(self, sf: Any) -> None:
        """``ConfigError`` unless ``sf`` is this model's symbol with the signal parameters it was trained with
        (the engine calls it at start, so the hot path never meets the refusal)."""
        if id(sf) not in self._checked:
            self._check(sf)

    def observe(self, sf: Any, now_ns: int) -> None:
        """Advance the feature history at a depth update (no prediction)."""
        if id(sf) not in self._checked:
            self._check(sf)
        _k.features_into(sf, now_ns, 1, self.state, self._row)

    def predict(self, sf: Any, now_ns: int, side: int) -> dict[str, float]:
        """Every target's prediction for ``side`` (+1 buy, -1 sell) at exchange time ``now_ns``."""
        if id(sf) not in self._checked:
            self._check(sf)
        _k.predict_into(sf, now_ns, side, self.state, self._kernels, self._out)
        return dict(zip(self.targets, self._out.tolist(), strict=True))

    def predictor(self, horizon_s: float = 2.0) -> Callable[[Any, int, int], tuple[float, float]]:
        """``(sf, now, side 0 buy / 1 sell) -> (move bps over horizon_s, fill probability)`` for
        ``strategies.hybrid.Hybrid``; (0, 0) while the book is unusable."""
        move, fill = move_target(horizon_s), fill_target(float(self.model.meta.get("fill_t_s", 2.0)))
        if move not in self.targets or fill not in self.targets:
            raise ConfigError(f"{self.path}: no {move} or {fill} target (it has {', '.join(self.targets)})")
        i, j = self.targets.index(move), self.targets.index(fill)

        def predict(sf: Any, now: int, side: int) -> tuple[float, float]:
            if id(sf) not in self._checked:
                self._check(sf)
            _k.predict_into(sf, now, 1 if side == 0 else -1, self.state, self._kernels, self._out)
            m, p = float(self._out[i]), float(self._out[j])
            return (0.0, 0.0) if m != m or p != p else (m, p)

        return predict
