"""Evaluation intents: when, which side, how much, how long; and packing them into non-interfering passes.

Uninformed intents have random times and sides. Informed intents take the side of the recorded mid's move over
the next ``horizon_s`` seconds (a stand-in for a trader with an edge); that oracle picks the side only and is never
visible to an algorithm. How informed: each informed intent draws an edge ``e`` log-uniform in ``informedness``
(bps, default [3, 12]: a trader acts on a move they expect to be worth more than the 5 bps taker fee, as the
trader in the brief does) and its time is redrawn until the recorded move over the horizon is at least ``e`` (after
200 draws, the largest move seen is taken); ``(0, 0)`` takes any non-zero move (the first evaluations' rule). The
move is kept in ``edge_bps`` (for the tables by informedness; never visible to an algorithm). Sizes are a
log-uniform fraction of the far side's top-5 depth at the intent's time; windows are whole seconds in [5, 60]
(informed: [5, horizon] so the execution is over by the horizon).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from decimal import ROUND_DOWN, Decimal
from pathlib import Path

import numpy as np
import orjson

from engine.errors import ConfigError
from engine.eval.data import SEC, MarketPath
from engine.execution import min_order_lots
from engine.intents import Intent, parse
from engine.model import KNOWN_INSTRUMENTS

UNINFORMED, INFORMED = "uninformed", "informed"
MIN_WINDOW_S, MAX_WINDOW_S = 5, 60
MARKOUT_TAIL_S = 31                  # +30 s markouts, plus a second of slack
LEAD_S = 10                          # skip the tape's first seconds (the engine's book syncs there)
SIZE_FRACTION = (0.01, 0.5)          # of the far side's top-5 depth, log-uniform
MAX_BPS = (8, 10, 15, 20)            # the trader's slippage cap
INFORMEDNESS_BPS = (3.0, 12.0)       # informed intents' edge: the recorded move over the horizon, log-uniform
TRIES = 200


@dataclass(frozen=True)
class EvalIntent:
    """One intent, identical for every algorithm. ``time_ns`` is exchange time at the venue."""

    id: int
    kind: str
    time_ns: int
    side: str                        # "long" / "short"
    qty: str                         # base quantity (exact decimal string)
    window_s: int
    max_bps: float
    horizon_s: float
    edge_bps: float = 0.0            # informed: the recorded mid's move over the horizon in the intent's favour

    def text(self, symbol: str) -> str:
        """The intent as the trader would type it (read by the engine's own grammar)."""
        return f"{self.side} {symbol} {self.qty} {self.window_s}s max {self.max_bps:g}bps"

    def intent(self, symbol: str) -> Intent:
        return parse(self.text(symbol))

    @property
    def sign(self) -> int:
        return 1 if self.side == "long" else -1

    @property
    def busy_until_ns(self) -> int:
        """End of the window plus the markout tail: no other intent of the same pass may start before this."""
        return self.time_ns + (self.window_s + MARKOUT_TAIL_S) * SEC


def generate(path: MarketPath, n_uninformed: int, n_informed: int, seed: int, horizon_s: float = 30.0,
             first_id: int = 0, informedness: tuple[float, float] = INFORMEDNESS_BPS) -> list[EvalIntent]:
    """Draw the intents for one recording (deterministic for ``seed`` and ``informedness``)."""
    lo, hi = informedness
    if not 0 <= lo <= hi:
        raise ConfigError(f"informedness must be 0 <= lo <= hi bps, got {lo}:{hi}")
    rng = np.random.default_rng(seed)
    inst = path.inst or KNOWN_INSTRUMENTS[path.symbol]
    out: list[EvalIntent] = []
    for k in range(n_uninformed + n_informed):
        kind = UNINFORMED if k < n_uninformed else INFORMED
        out.append(_draw(rng, path, inst, kind, horizon_s, first_id + k, informedness))
    return out


def _draw(rng: np.random.Generator, path: MarketPath, inst, kind: str, horizon_s: float, iid: int,
          informedness: tuple[float, float] = (0.0, 0.0)) -> EvalIntent:
    top_window = MAX_WINDOW_S if kind == UNINFORMED else max(MIN_WINDOW_S, int(horizon_s))
    window = int(rng.integers(MIN_WINDOW_S, top_window + 1))
    need_s = max(window + MARKOUT_TAIL_S, horizon_s + 1)
    lo, hi = int(path.t[0]) + LEAD_S * SEC, path.end_ns - int(need_s * SEC)
    if hi <= lo:
        raise ConfigError(f"{path.symbol}: the recording is too short for a {window}s window and markouts")
    if kind == UNINFORMED:
        t = int(rng.integers(lo, hi))
        sign = 1 if rng.random() < 0.5 else -1
        edge = 0.0
    else:
        t, sign, edge = _informed_time(rng, path, lo, hi, horizon_s, informedness)
    qty = _size(rng, path, inst, t, sign > 0)
    bps = float(rng.choice(MAX_BPS))
    return EvalIntent(iid, kind, t, "long" if sign > 0 else "short", qty, window, bps, horizon_s, round(edge, 3))


def _informed_time(rng: np.random.Generator, path: MarketPath, lo: int, hi: int, horizon_s: float,
                   informedness: tuple[float, float]) -> tuple[int, int, float]:
    """A time whose recorded move over the horizon is at least a drawn edge (bps): (time, side sign, move bps)."""
    e_lo, e_hi = informedness
    want = math.exp(rng.uniform(math.log(e_lo), math.log(e_hi))) if e_lo > 0 else 0.0
    best: tuple[int, int, float] | None = None
    for _ in range(TRIES):
        t = int(rng.integers(lo, hi))
        m0 = path.mid_at(t)
        move = (path.mid_at(t + int(horizon_s * SEC)) - m0) / m0 * 1e4
        if move == 0:
            continue                             # no edge to have: draw another time
        cand = (t, 1 if move > 0 else -1, abs(move))
        if cand[2] >= want:
            return cand
        if best is None or cand[2] > best[2]:
            best = cand
    if best is None:
        raise ConfigError(f"{path.symbol}: could not find a time with a mid move over {horizon_s}s")
    return best


def _size(rng: np.random.Generator, path: MarketPath, inst, t: int, buy: bool) -> str:
    lo, hi = SIZE_FRACTION
    frac = math.exp(rng.uniform(math.log(lo), math.log(hi)))
    mid_ticks = path.mid_at(t)
    lots = max(int(frac * path.far_depth(t, buy)), 2 * min_order_lots(inst, mid_ticks))
    qty = (Decimal(lots) * inst.step_size).quantize(inst.step_size, rounding=ROUND_DOWN)
    return format(qty.normalize(), "f")


def pack(intents: list[EvalIntent]) -> list[list[EvalIntent]]:
    """Split intents into passes (one replay each) whose windows and markout tails never overlap (first fit)."""
    passes: list[list[EvalIntent]] = []
    ends: list[int] = []
    for it in sorted(intents, key=lambda x: (x.time_ns, x.id)):
        for k, end in enumerate(ends):
            if end <= it.time_ns:
                passes[k].append(it)
                ends[k] = it.busy_until_ns
                break
        else:
            passes.append([it])
            ends.append(it.busy_until_ns)
    return passes


def save(intents: list[EvalIntent], path: str | Path) -> None:
    Path(path).write_bytes(orjson.dumps([asdict(i) for i in intents], option=orjson.OPT_INDENT_2))


def load(path: str | Path) -> list[EvalIntent]:
    """Intents written by :func:`save` (``tapeshot eval --save-intents``)."""
    try:
        rows = orjson.loads(Path(path).read_bytes())
        return [EvalIntent(**r) for r in rows]
    except (OSError, orjson.JSONDecodeError, TypeError) as exc:
        raise ConfigError(f"cannot read intents from {path}: {exc}") from exc
