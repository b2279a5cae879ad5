"""``tapeshot scorecard``: the human trader as a baseline, read off ``tapeshot.dataset/2`` intent records.

Two questions, kept apart: do the trader's calls carry information (the *direction*), and does the engine keep
it (the *execution*)?

- **Direction** (entries only: ``decision.kind == "enter"``; exits are counted, not scored). At each horizon the
  ``outcome.horizons`` row of the chosen anchor (``arrival`` by default) with status ``observed`` gives the call's
  edge, ``move_bps`` (> 0: the mid went the call's way). A *hit* is ``move_bps > 0``: a tie (no move) is not a
  hit. ``missing``, ``pending`` and every other status are excluded and counted.
- **Edge kept**: ``pnl_bps`` of the same row, the executed size marked to the mid at the horizon, fees in, in bps
  of the executed notional (intents with nothing executed by then have none).
- **Execution**: ``shortfall_bps`` against the arrival mid, ``immediate.cost_bps`` of taking the same size at once
  off the recorded arrival book, and ``saving_bps`` = immediate - shortfall (> 0: the engine did better), all
  three averaged over the entries that have a ``saving_bps``.
- **Control**: a random trader calling at the very same moments of the same market. The raw move of an intent is
  ``move_bps x side_sign`` (up is positive); a random call's edge is ``s x raw`` with ``s`` = +1 or -1 at even
  odds. ``draws`` sign vectors (seeded ``numpy.random.Generator``; one sign per entry and draw, shared by every
  horizon) give ``draws`` mean edges and hit rates over the same observed moves; the card reports their mean and
  2.5-97.5 % band, and the one-sided sign-flip p-value ``(1 + #{control mean >= trader mean}) / (1 + draws)``
  (``p_value_below``: the same for ``<=``, a trader reliably wrong).
- **Intervals**: percentile 95 % bootstrap of the mean (``draws`` seeded resamples, as
  ``engine.eval.stats.bootstrap``), null below 2 observations.
- **Splits** by ``rationale.tags`` (never ``tags_after``: a tag given after the outcome may be informed by it; an
  intent with several tags counts in each, ``(none)`` for none), symbol, window bucket and ``decision.algo``, all
  at ``pnl_horizon``.
- **Cumulative PnL** at ``pnl_horizon`` (always the arrival anchor), see :func:`pnl_split`.
"""

from __future__ import annotations

import gzip
import io
import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

import numpy as np
import orjson

from engine.errors import ConfigError

SCHEMA = "tapeshot.dataset/2"
CARD_SCHEMA = "tapeshot.scorecard/1"
HORIZONS = (1, 5, 30, 60, 300)
ANCHORS = ("arrival", "last_fill")
MIN_CI = 2                 # fewer observations: no interval ("too few")
MIN_VERDICT = 10           # fewer observed calls at a horizon: no verdict drawn there
ALPHA = 0.05               # split over the horizons judged (Bonferroni)
WINDOWS = ((10.0, "≤10 s"), (30.0, "≤30 s"), (60.0, "≤60 s"), (math.inf, ">60 s"))
TOP = 5                    # split entries in the text summary
USDT = Decimal("0.000001")
_SIGNS = {"BUY": 1, "SELL": -1}
_JSONL = (".jsonl", ".ndjson", ".json")
_CELLS = 2_000_000         # numbers a resampling chunk may hold

CONVENTIONS = {
    "edge": "move of the mid from the anchor to the horizon in bps of the anchor mid; > 0 when it went the "
            "call's way (up for a buy, down for a sell)",
    "hit": "edge > 0; a tie (no move) is not a hit",
    "edge_kept": "pnl_bps: the size executed by the horizon marked to the mid there, fees in, in bps of its "
                 "notional",
    "saving": "immediate.cost_bps - shortfall_bps; > 0 when the engine did better than taking the size at once "
              "off the arrival book",
    "pnl": "USDT; direction = side_sign x exec_qty x (mid_h - arrival_mid); execution = pnl_usdt - direction "
           "(< 0: a cost)",
    "ci": "95 % percentile bootstrap of the mean; null below 2 observations",
    "control": "random +1/-1 calls at the same moments; band = 2.5-97.5 % of the mean over the draws; p = "
               "(1 + #{control >= trader}) / (1 + draws)",
}


# ----------------------------------------------------------------------------------------------------------------
# loading


def load_intents(path: str | Path) -> list[dict]:
    """The intent records at ``path``: a JSON-lines export (``.jsonl``/``.ndjson``/``.json``, optionally ``.gz``;
    lines of ``type`` "intent"), a Parquet dataset directory (``DIR/intents/date=.../symbol=.../*.parquet``, or
    the ``intents`` directory itself), a single ``.parquet`` file, or else a journal (SQLite, opened read-only).
    A ``ConfigError`` when the source cannot be read."""
    p = Path(path).expanduser()
    if not p.exists():
        raise ConfigError(f"no such file or directory: {p}")
    if p.is_dir():
        return _load_parquet(p / "intents" if (p / "intents").is_dir() else p)
    name = p.name.lower().removesuffix(".gz")
    if name.endswith(_JSONL):
        return _load_jsonl(p)
    if name.endswith(".parquet"):
        return _load_parquet(p)
    return _load_journal(p)


def _load_jsonl(path: Path) -> list[dict]:
    opener: Callable[..., Any] = gzip.open if path.name.lower().endswith(".gz") else open
    out = []
    try:
        with opener(path, "rb") as f:
            for n, line in enumerate(f, 1):
                if line.strip():
                    rec = _json_line(path, n, line)
                    if rec.get("type") == "intent":
                        rec["state"] = None            # the scorecard does not read it: a year fits in memory
                        out.append(rec)
    except (OSError, EOFError) as exc:
        raise ConfigError(f"cannot read {path}: {exc}") from None
    return out


def _json_line(path: Path, n: int, line: bytes) -> dict:
    try:
        rec = orjson.loads(line)
    except orjson.JSONDecodeError:
        raise ConfigError(f"{path}:{n}: not a JSON line") from None
    if not isinstance(rec, dict):
        raise ConfigError(f"{path}:{n}: not a JSON object")
    return rec


def _load_parquet(path: Path) -> list[dict]:
    try:
        import pyarrow as pa
        import pyarrow.dataset as ds
    except ImportError as exc:
        raise ConfigError("reading Parquet needs pyarrow: pip install pyarrow") from exc
    try:
        if path.is_dir():                 # a dataset of ours: partition columns restored, maps as dicts
            from engine.dataset.parquet import read_intents

            return read_intents(path.parent if path.name == "intents" else path, without=("state",))
        return ds.dataset(path).to_table().to_pylist()
    except (pa.ArrowException, OSError) as exc:
        raise ConfigError(f"cannot read the Parquet dataset {path}: {exc}") from None


def _load_journal(path: Path) -> list[dict]:
    import contextlib
    import sqlite3

    from engine.dataset.export import connect_ro, records

    with contextlib.closing(connect_ro(path)) as conn:
        try:
            conn.execute("BEGIN")
            try:
                return [{**r, "state": None} for r in records(conn) if r.get("type") == "intent"]
            finally:
                conn.execute("COMMIT")
        except sqlite3.DatabaseError as exc:
            raise ConfigError(f"cannot read the journal {path}: {exc}") from None


# ----------------------------------------------------------------------------------------------------------------
# one intent, normalised


@dataclass(frozen=True)
class _Intent:
    id: str
    created_ms: int
    symbol: str
    sign: int
    tags: tuple[str, ...]
    window: str
    algo: str
    saving: float | None
    shortfall: float | None
    immediate: float | None
    lower_bound: bool
    rows: dict[tuple[str, int], dict]

    def row(self, anchor: str, h: int) -> dict | None:
        return self.rows.get((anchor, h))

    def observed(self, anchor: str, h: int, name: str = "move_bps") -> float | None:
        """``name`` of the horizon row when it was observed, else None."""
        r = self.rows.get((anchor, h))
        return _float(r.get(name)) if r and r.get("status") == "observed" else None


def _parse(rec: dict) -> _Intent | None:
    sign = _SIGNS.get(str(rec.get("side") or "").upper())
    if sign is None:
        return None
    dec, rat, out = _struct(rec.get("decision")), _struct(rec.get("rationale")), _struct(rec.get("outcome"))
    imm = _struct(out.get("immediate"))
    rows = {}
    for r in out.get("horizons") or ():
        if isinstance(r, dict) and r.get("anchor") in ANCHORS and r.get("h_s") is not None:
            rows[(r["anchor"], int(r["h_s"]))] = r
    tags = sorted({str(t).lower() for t in rat.get("tags") or () if isinstance(t, str) and t})
    return _Intent(id=str(rec.get("id")), created_ms=int(rec.get("created_ms") or 0),
                   symbol=str(rec.get("symbol") or "(unknown)"), sign=sign, tags=tuple(tags) or ("(none)",),
                   window=window_bucket(_float(dec.get("window_s"))), algo=str(dec.get("algo") or "(unknown)"),
                   saving=_float(out.get("saving_bps")), shortfall=_float(out.get("shortfall_bps")),
                   immediate=_float(imm.get("cost_bps")), lower_bound=imm.get("enough_depth") is False,
                   rows=rows)


def window_bucket(window_s: float | None) -> str:
    """The window's bucket: ``≤10 s``, ``≤30 s``, ``≤60 s`` or ``>60 s`` (``(unknown)`` without one)."""
    if window_s is None:
        return "(unknown)"
    return next(label for top, label in WINDOWS if window_s <= top)


def _struct(x: Any) -> dict:
    return x if isinstance(x, dict) else {}


def _kind(rec: dict) -> str:
    kind = _struct(rec.get("decision")).get("kind")
    return kind if kind in ("enter", "exit") else "other"


def _float(x: Any) -> float | None:
    if x is None or isinstance(x, bool):
        return None
    try:
        v = float(x)
    except (TypeError, ValueError):
        return None
    return v if math.isfinite(v) else None


def _dec(x: Any) -> Decimal | None:
    if x is None or isinstance(x, bool):
        return None
    if isinstance(x, Decimal):
        return x if x.is_finite() else None
    try:
        d = Decimal(str(x))
    except InvalidOperation:
        return None
    return d if d.is_finite() else None


# ----------------------------------------------------------------------------------------------------------------
# statistics


def _mean_ci(values: Sequence[float], seed: int, draws: int) -> list[float] | None:
    """Percentile 95 % bootstrap interval of the mean (the method of ``engine.eval.stats.bootstrap``, resampled
    in chunks); None below ``MIN_CI`` values."""
    a = np.asarray(values, dtype=float)
    n = len(a)
    if n < MIN_CI:
        return None
    rng = np.random.default_rng(seed)
    means = np.empty(draws)
    step = max(1, _CELLS // n)
    for start in range(0, draws, step):
        k = min(step, draws - start)
        means[start:start + k] = a[rng.integers(0, n, size=(k, n))].mean(axis=1)
    lo, hi = np.percentile(means, [2.5, 97.5])
    return [float(lo), float(hi)]


def _sign_flips(raw: np.ndarray, cols: np.ndarray, n_all: int, seed: int, draws: int) -> tuple[np.ndarray, ...]:
    """Mean edge and hit rate of ``draws`` random traders over the moves ``raw`` of entries ``cols``. The sign
    matrix (draws x every entry) depends on ``seed`` and ``n_all`` only, so every horizon sees the same random
    calls at the same moments."""
    rng = np.random.default_rng(seed)
    edges, hits = np.empty(draws), np.empty(draws)
    step = max(1, _CELLS // max(n_all, 1))
    for start in range(0, draws, step):
        k = min(step, draws - start)
        signs = rng.integers(0, 2, size=(k, n_all), dtype=np.int8) * 2 - 1
        e = signs[:, cols] * raw
        edges[start:start + k] = e.mean(axis=1)
        hits[start:start + k] = (e > 0).mean(axis=1)
    return edges, hits


def _control(moves: np.ndarray, signs: np.ndarray, cols: np.ndarray, n_all: int, seed: int, draws: int) -> dict:
    edges, hits = _sign_flips(moves * signs, cols, n_all, seed, draws)
    trader = float(moves.mean())
    tol = 1e-9 * max(1.0, abs(trader))
    return {
        "edge_bps": _r(edges.mean()), "edge_band_bps": [_r(x) for x in np.percentile(edges, [2.5, 97.5])],
        "hit_rate": _r(hits.mean(), 4), "hit_rate_band": [_r(x, 4) for x in np.percentile(hits, [2.5, 97.5])],
        "p_value": _r((1 + int((edges >= trader - tol).sum())) / (1 + draws), 4),
        "p_value_below": _r((1 + int((edges <= trader + tol).sum())) / (1 + draws), 4),
    }


def _status_counts(intents: Iterable[_Intent], anchor: str, h: int) -> dict[str, int]:
    counts = {"missing": 0, "pending": 0, "other": 0}
    for it in intents:
        r = it.row(anchor, h)
        status = r.get("status") if r else None
        if status == "observed" and _float(r.get("move_bps")) is not None:
            continue
        counts[status if status in ("missing", "pending") else "other"] += 1
    return counts


def _horizon(entries: list[_Intent], anchor: str, h: int, seed: int, draws: int) -> dict:
    """Direction statistics of the entries at horizon ``h``."""
    obs = [(i, it, m) for i, it in enumerate(entries) if (m := it.observed(anchor, h)) is not None]
    moves = np.array([m for _, _, m in obs], dtype=float)
    hits = (moves > 0).astype(float)
    kept = [(p, m) for _, it, m in obs if (p := it.observed(anchor, h, "pnl_bps")) is not None]
    out = {"h_s": h, "n": len(obs), **_status_counts(entries, anchor, h),
           "hit_rate": _r(hits.mean(), 4) if len(obs) else None, "hit_rate_ci": _rl(_mean_ci(hits, seed, draws), 4),
           "edge_bps": _r(moves.mean()) if len(obs) else None, "edge_ci": _rl(_mean_ci(moves, seed, draws)),
           "n_kept": len(kept), "edge_kept_bps": _r(np.mean([p for p, _ in kept])) if kept else None,
           "edge_kept_ci": _rl(_mean_ci([p for p, _ in kept], seed, draws)),
           "edge_of_kept_bps": _r(np.mean([m for _, m in kept])) if kept else None, "control": None}
    if obs:
        signs = np.array([it.sign for _, it, _ in obs], dtype=float)
        cols = np.array([i for i, _, _ in obs], dtype=np.intp)
        out["control"] = _control(moves, signs, cols, len(entries), seed, draws)
    return out


def _execution(entries: list[_Intent], seed: int, draws: int) -> dict:
    """Shortfall, immediate cost and saving, over the entries with a saving."""
    rows = [it for it in entries if it.saving is not None]
    sav = [it.saving for it in rows]
    sf = [it.shortfall for it in rows if it.shortfall is not None]
    imm = [it.immediate for it in rows if it.immediate is not None]
    return {"n": len(rows), "shortfall_bps": _r(np.mean(sf)) if sf else None,
            "immediate_cost_bps": _r(np.mean(imm)) if imm else None,
            "saving_bps": _r(np.mean(sav)) if sav else None, "saving_ci": _rl(_mean_ci(sav, seed, draws)),
            "n_lower_bound": sum(it.lower_bound for it in rows)}


def _split(entries: list[_Intent], key: Callable[[_Intent], Iterable[str]], anchor: str, h: int, seed: int,
           draws: int, order: Sequence[str] | None = None) -> list[dict]:
    """One row per group (an intent in every group ``key`` names), largest first (or in ``order``)."""
    groups: dict[str, list[_Intent]] = {}
    for it in entries:
        for k in key(it):
            groups.setdefault(k, []).append(it)
    rows = [_group(k, g, anchor, h, seed, draws) for k, g in groups.items()]
    if order is not None:
        rank = {k: i for i, k in enumerate(order)}
        return sorted(rows, key=lambda r: (rank.get(r["key"], len(rank)), r["key"]))
    return sorted(rows, key=lambda r: (-r["n"], r["key"]))


def _group(name: str, group: list[_Intent], anchor: str, h: int, seed: int, draws: int) -> dict:
    moves = [m for it in group if (m := it.observed(anchor, h)) is not None]
    sav = [it.saving for it in group if it.saving is not None]
    return {"key": name, "n": len(group), "n_obs": len(moves),
            "hit_rate": _r(np.mean([m > 0 for m in moves]), 4) if moves else None,
            "edge_bps": _r(np.mean(moves)) if moves else None, "edge_ci": _rl(_mean_ci(moves, seed, draws)),
            "n_saving": len(sav), "saving_bps": _r(np.mean(sav)) if sav else None}


def pnl_split(side: str, row: dict) -> tuple[Decimal, Decimal, Decimal] | None:
    """``(pnl, direction, execution)`` in USDT of one observed arrival horizon row of an intent on ``side``:

    - direction = side_sign x exec_qty x (mid - anchor_mid): the executed size at the arrival mid, marked to the
      mid at the horizon (the call's edge on what was executed);
    - execution = pnl_usdt - direction = side_sign x sum(qty_i x (anchor_mid - price_i)) - fees: what the fills
      gained (> 0) or cost (< 0) against the arrival mid, fees in.

    None when the row was not observed or lacks one of ``exec_qty``, ``anchor_mid``, ``mid``, ``pnl_usdt``."""
    sign = _SIGNS.get(str(side).upper())
    if sign is None or row.get("status") != "observed":
        return None
    q, a, m, p = (_dec(row.get(k)) for k in ("exec_qty", "anchor_mid", "mid", "pnl_usdt"))
    if q is None or a is None or m is None or p is None:
        return None
    direction = sign * q * (m - a)
    return p, direction, p - direction


def _pnl(entries: list[_Intent], h: int) -> dict:
    """The cumulative PnL at ``h`` (arrival anchor) in time order, split into direction and execution; each
    running sum rounded to 1e-6 USDT, execution = pnl - direction exactly after rounding."""
    series, n_skipped = [], 0
    cum = [Decimal(0)] * 3
    for it in sorted(entries, key=lambda x: (x.created_ms, x.id)):
        row = it.row("arrival", h)
        parts = pnl_split("BUY" if it.sign > 0 else "SELL", row) if row else None
        if parts is None:
            n_skipped += 1
            continue
        cum = [c + x for c, x in zip(cum, parts, strict=True)]
        p, d = cum[0].quantize(USDT), cum[1].quantize(USDT)
        series.append({"id": it.id, "created_ms": it.created_ms, "pnl_usdt": _u(parts[0]),
                       "direction_usdt": _u(parts[1]), "execution_usdt": _u(parts[2]), "cum_pnl_usdt": float(p),
                       "cum_direction_usdt": float(d), "cum_execution_usdt": float(p - d)})
    last = series[-1] if series else {}
    return {"h_s": h, "anchor": "arrival", "n": len(series), "n_skipped": n_skipped,
            "total_usdt": last.get("cum_pnl_usdt", 0.0), "direction_usdt": last.get("cum_direction_usdt", 0.0),
            "execution_usdt": last.get("cum_execution_usdt", 0.0), "series": series}


def _u(d: Decimal) -> float:
    return float(d.quantize(USDT))


def _r(x: Any, nd: int = 3) -> float | None:
    if x is None:
        return None
    x = float(x)
    return round(x, nd) if math.isfinite(x) else None


def _rl(xs: Sequence[float] | None, nd: int = 3) -> list[float | None] | None:
    return None if xs is None else [_r(x, nd) for x in xs]


# ----------------------------------------------------------------------------------------------------------------
# the card


def scorecard(intents: Iterable[dict], *, seed: int = 0, draws: int = 2000, horizons: Sequence[int] = HORIZONS,
              anchor: str = "arrival", pnl_horizon: int = 60) -> dict:
    """The trader's scorecard over ``intents`` (``tapeshot.dataset/2`` intent records): a JSON-serialisable dict
    with ``counts``, ``horizons`` (direction and control per horizon), ``execution``, ``splits`` (tag, symbol,
    window, algo at ``pnl_horizon``), ``pnl`` (the cumulative split) and ``verdict``. Deterministic for a
    ``seed`` and independent of the records' order (entries are taken in ``(created_ms, id)`` order). Rounded:
    bps to 3 decimals, rates and p-values to 4, USDT to 6. Definitions: the module's docstring and the card's
    ``conventions``."""
    horizons = tuple(int(h) for h in horizons)
    if anchor not in ANCHORS:
        raise ConfigError(f"anchor must be one of {', '.join(ANCHORS)}, not {anchor!r}")
    if pnl_horizon not in horizons:
        raise ConfigError(f"the horizon must be one of {', '.join(f'{h} s' for h in horizons)}, not {pnl_horizon}")
    if draws < 1:
        raise ConfigError("draws must be at least 1")
    records = [r for r in intents if isinstance(r, dict)]
    entries = sorted((it for r in records if _kind(r) == "enter" and (it := _parse(r)) is not None),
                     key=lambda it: (it.created_ms, it.id))        # the same card whatever the source's order
    hs = [_horizon(entries, anchor, h, seed, draws) for h in horizons]
    execution = _execution(entries, seed, draws)
    pnl = _pnl(entries, pnl_horizon)
    card = {
        "schema": CARD_SCHEMA,
        "params": {"seed": seed, "draws": draws, "horizons": list(horizons), "anchor": anchor,
                   "pnl_horizon": pnl_horizon, "min_verdict_n": MIN_VERDICT, "alpha": ALPHA},
        "conventions": CONVENTIONS,
        "counts": _counts(records, entries),
        "horizons": hs, "execution": execution,
        "splits": _splits(entries, anchor, pnl_horizon, seed, draws),
        "pnl": pnl,
    }
    card["verdict"] = _verdict(hs, execution, anchor, pnl_horizon)
    return card


def _counts(records: list[dict], entries: list[_Intent]) -> dict:
    kinds = [_kind(r) for r in records]
    times = [it.created_ms for it in entries if it.created_ms]
    return {"intents": len(records), "enter": len(entries), "exit": kinds.count("exit"),
            "other": kinds.count("other"), "unreadable_side": kinds.count("enter") - len(entries),
            "not_v2": sum(r.get("schema") != SCHEMA for r in records),
            "first_ms": min(times, default=None), "last_ms": max(times, default=None),
            "symbols": sorted({it.symbol for it in entries})}


def _splits(entries: list[_Intent], anchor: str, h: int, seed: int, draws: int) -> dict:
    return {"h_s": h,
            "tag": _split(entries, lambda it: it.tags, anchor, h, seed, draws),
            "symbol": _split(entries, lambda it: (it.symbol,), anchor, h, seed, draws),
            "window": _split(entries, lambda it: (it.window,), anchor, h, seed, draws,
                             order=[label for _, label in WINDOWS]),
            "algo": _split(entries, lambda it: (it.algo,), anchor, h, seed, draws)}


def _verdict(hs: list[dict], execution: dict, anchor: str, pnl_h: int) -> dict:
    """Plain words, never more than the numbers allow: a horizon is judged only with ``MIN_VERDICT`` observed
    calls, and called informative only when its p-value is at most ``ALPHA`` split over the horizons judged."""
    judged = [h for h in hs if h["n"] >= MIN_VERDICT and h["control"]]
    alpha = ALPHA / len(judged) if judged else ALPHA
    up = sorted((h for h in judged if h["control"]["p_value"] <= alpha),
                key=lambda h: (h["control"]["p_value"], -_strength(h), h["h_s"]))
    down = sorted((h for h in judged if h["control"]["p_value_below"] <= alpha),
                  key=lambda h: (h["control"]["p_value_below"], _strength(h), h["h_s"]))
    direction = _direction_words(hs, judged, up, down, alpha)
    kept = next((h for h in hs if h["h_s"] == pnl_h), None)
    return {"direction": direction, "keeping": _keeping_words(kept, anchor), "execution": _saving_words(execution),
            "informative_h_s": sorted(h["h_s"] for h in up), "contrary_h_s": sorted(h["h_s"] for h in down),
            "alpha_per_horizon": _r(alpha, 4)}


def _direction_words(hs: list[dict], judged: list[dict], up: list[dict], down: list[dict], alpha: float) -> str:
    if not judged:
        most = max((h["n"] for h in hs), default=0)
        return (f"too few observed calls to judge the direction (at most {most} at a horizon; {MIN_VERDICT} "
                "needed)")
    if up:
        h = up[0]
        also = [f"{x['h_s']} s" for x in sorted(up[1:], key=lambda x: x["h_s"])]
        return (f"the calls carry information at {h['h_s']} s: edge {_b(h['edge_bps'])} bps vs control "
                f"±{_band_half(h)} bps (p{_peq(h['control']['p_value'])}, n={h['n']})"
                + (f"; also at {', '.join(also)}" if also else ""))
    if down:
        h = down[0]
        return (f"the calls point the wrong way at {h['h_s']} s: edge {_b(h['edge_bps'])} bps vs control "
                f"±{_band_half(h)} bps (p{_peq(h['control']['p_value_below'])}, n={h['n']})")
    best = min(judged, key=lambda h: h["control"]["p_value"])
    return (f"not distinguishable from random at any horizon (best {best['h_s']} s: edge {_b(best['edge_bps'])} "
            f"bps, p{_peq(best['control']['p_value'])}; p ≤ {alpha:.3g} needed)")


def _keeping_words(h: dict | None, anchor: str) -> str:
    if h is None or not h["n_kept"]:
        return "no executed size marked at the PnL horizon"
    if h["n_kept"] < MIN_CI:
        return f"too few executed calls at {h['h_s']} s to tell what the engine kept (n={h['n_kept']})"
    return (f"of the filled calls' edge at {h['h_s']} s ({_b(h['edge_of_kept_bps'])} bps from {anchor}), "
            f"{_b(h['edge_kept_bps'])} bps {_ci(h['edge_kept_ci'])} was kept, fees in (n={h['n_kept']})")


def _saving_words(e: dict) -> str:
    if e["n"] < MIN_CI:
        return f"too few executions to compare with an immediate fill (n={e['n']})"
    lo, hi = e["saving_ci"]
    how = ("better than" if lo > 0 else "worse than" if hi < 0 else "not distinguishable from")
    return (f"the execution was {how} an immediate fill on the arrival book: saving {_b(e['saving_bps'])} bps "
            f"{_ci(e['saving_ci'])} (n={e['n']})")


def _band_half(h: dict) -> str:
    lo, hi = h["control"]["edge_band_bps"]
    return f"{(hi - lo) / 2:.2f}"


def _strength(h: dict) -> float:
    """The edge over the half-width of the control's band (ranks horizons whose p-values tie at the floor)."""
    lo, hi = h["control"]["edge_band_bps"]
    return (h["edge_bps"] or 0.0) / max((hi - lo) / 2, 1e-9)


# ----------------------------------------------------------------------------------------------------------------
# words


def _b(x: float | None) -> str:
    return "–" if x is None else f"{x:+.2f}"


def _pct(x: float | None) -> str:
    return "–" if x is None else f"{100 * x:.1f}%"


def _ci(ci: Sequence[float | None] | None, fmt: Callable[[float | None], str] = _b) -> str:
    return "[too few]" if ci is None else f"[{fmt(ci[0])}, {fmt(ci[1])}]"


def _p(p: float | None) -> str:
    if p is None:
        return "–"
    return "<0.001" if p < 0.001 else f"{p:.3g}"


def _peq(p: float | None) -> str:
    s = _p(p)
    return s if s.startswith("<") else f"={s}"


def _ms(ms: int | None) -> str:
    return "?" if ms is None else datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%d %H:%M")


def summary_text(card: dict, top: int = TOP) -> str:
    """The card as compact plain text for the console and Telegram (well under 4096 characters)."""
    c, lines = card["counts"], []
    lines.append(f"Scorecard: {c['enter']} {'entry' if c['enter'] == 1 else 'entries'} scored, {c['exit']} exits "
                 "counted only"
                 + (f", {c['other']} other" if c["other"] else "")
                 + (f" ({', '.join(c['symbols'])}; {_ms(c['first_ms'])} to {_ms(c['last_ms'])} UTC)"
                    if c["enter"] else ""))
    lines.append("Signs: edge, PnL > 0 = the market went the call's way; saving > 0 = better than an immediate "
                 "fill. bps of the arrival mid, fees in; [95% bootstrap CI]; a hit is edge > 0 (ties miss).")
    lines.append("")
    lines.append(f"Direction from {card['params']['anchor']}: edge bps, hit rate, kept = edge kept bps (executed "
                 "size); random = 95% band of random calls at the same moments, p = their share >= the edge:")
    lines.extend(_horizon_lines(h) for h in card["horizons"])
    lines.append("")
    lines.append(_execution_line(card["execution"]))
    lines.append(_pnl_line(card["pnl"]))
    for name in ("tag", "symbol", "window", "algo"):
        lines.extend(_split_lines(name, card["splits"][name], card["splits"]["h_s"], top))
    v = card["verdict"]
    lines += ["", f"Verdict: {v['direction']}.", f"Kept: {v['keeping']}.", f"Execution: {v['execution']}."]
    return "\n".join(lines)


def _horizon_lines(h: dict) -> str:
    gone = ", ".join(f"{h[k]} {k}" for k in ("missing", "pending", "other") if h[k])
    head = f"  {h['h_s']:>3} s  n={h['n']}" + (f" ({gone})" if gone else "")
    if not h["n"]:
        return head + ": no observed move"
    ctl = h["control"]
    return (f"{head}: edge {_b(h['edge_bps'])} {_ci(h['edge_ci'])}, hit {_pct(h['hit_rate'])} "
            f"{_ci(h['hit_rate_ci'], _pct)}, kept {_b(h['edge_kept_bps'])}; "
            f"random ±{_band_half(h)}, p{_peq(ctl['p_value'])}")


def _execution_line(e: dict) -> str:
    if not e["n"]:
        return "Execution: no entry with a saving."
    low = f"; {e['n_lower_bound']} immediate costs are lower bounds" if e["n_lower_bound"] else ""
    return (f"Execution (n={e['n']}): saving {_b(e['saving_bps'])} bps {_ci(e['saving_ci'])} = immediate "
            f"{_b(e['immediate_cost_bps'])} - shortfall {_b(e['shortfall_bps'])} bps{low}.")


def _pnl_line(p: dict) -> str:
    return (f"PnL at {p['h_s']} s (n={p['n']}): {p['total_usdt']:+.2f} USDT = direction "
            f"{p['direction_usdt']:+.2f} + execution {p['execution_usdt']:+.2f} USDT.")


def _split_lines(name: str, rows: list[dict], h: int, top: int) -> list[str]:
    if not rows:
        return []
    shown = rows[:top]                                       # largest first (windows: at most 5, in order)
    out = ["", f"By {name} (at {h} s): n, hit, edge bps [95% CI], saving bps"]
    out += [f"  {r['key'][:20]:<20} {r['n']:>4}  {_pct(r['hit_rate']):>6}  {_b(r['edge_bps'])} "
            f"{_ci(r['edge_ci'])}  {_b(r['saving_bps'])}" for r in shown]
    if len(rows) > top:
        out.append(f"  … and {len(rows) - top} more")
    return out


# ----------------------------------------------------------------------------------------------------------------
# plots


def _figure(w: float, h: float):
    """A figure on the Agg canvas, outside pyplot (no global state, nothing to close)."""
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError as exc:
        raise ConfigError("--plot needs matplotlib: pip install 'tapeshot[eval]'") from exc
    fig = Figure(figsize=(w, h))
    FigureCanvasAgg(fig)
    return fig


def _edge_panel(ax, card: dict) -> None:
    hs = [h for h in card["horizons"] if h["n"]]
    if not hs:
        ax.text(0.5, 0.5, "no observed move", ha="center", va="center", transform=ax.transAxes)
        return
    xs = np.arange(len(hs))
    mean = [h["edge_bps"] for h in hs]
    err = [[m - (h["edge_ci"] or [m, m])[0] for m, h in zip(mean, hs, strict=True)],
           [(h["edge_ci"] or [m, m])[1] - m for m, h in zip(mean, hs, strict=True)]]
    ax.errorbar(xs - 0.1, mean, yerr=err, fmt="o", capsize=4, label="trader: mean edge (95% CI)")
    ctl = [h["control"]["edge_bps"] for h in hs]
    band = [[c - h["control"]["edge_band_bps"][0] for c, h in zip(ctl, hs, strict=True)],
            [h["control"]["edge_band_bps"][1] - c for c, h in zip(ctl, hs, strict=True)]]
    ax.errorbar(xs + 0.1, ctl, yerr=band, fmt="x", color="grey", elinewidth=6, alpha=0.6,
                label="random calls, same moments: mean, 95% band")
    kept = [(x, h["edge_kept_bps"]) for x, h in zip(xs, hs, strict=True) if h["edge_kept_bps"] is not None]
    if kept:
        ax.plot([x for x, _ in kept], [y for _, y in kept], "s--", color="tab:green",
                label="edge kept: executed size, fees in")
    ax.axhline(0, color="black", lw=0.5)
    ax.set_xticks(xs, [f"{h['h_s']} s\nn={h['n']}" for h in hs])
    ax.set_xlabel(f"horizon after {card['params']['anchor']}")
    ax.set_ylabel("bps (> 0: the call's way)")
    ax.set_title("Edge against horizon", fontsize=10)
    ax.legend(fontsize=7)


def _pnl_panel(ax, card: dict) -> None:
    p = card["pnl"]
    if not p["series"]:
        ax.text(0.5, 0.5, "no executed size marked", ha="center", va="center", transform=ax.transAxes)
        return
    xs = [datetime.fromtimestamp(s["created_ms"] / 1000, UTC) for s in p["series"]]
    for key, label in (("cum_pnl_usdt", "total"), ("cum_direction_usdt", "direction edge"),
                       ("cum_execution_usdt", "execution (< 0: cost)")):
        ax.plot(xs, [s[key] for s in p["series"]], drawstyle="steps-post", marker=".", label=label)
    ax.axhline(0, color="black", lw=0.5)
    ax.set_ylabel("cumulative USDT")
    ax.set_title(f"Cumulative PnL at {p['h_s']} s (n={p['n']}), fees in", fontsize=10)
    ax.tick_params(axis="x", labelrotation=30, labelsize=7)
    ax.legend(fontsize=7)


def _save(fig, dest: Path | io.BytesIO) -> None:
    fig.tight_layout()
    fig.savefig(dest, dpi=110, format="png")


def plot_scorecard(card: dict, out_dir: str | Path) -> list[Path]:
    """Two PNGs into ``out_dir``: ``scorecard_edge.png`` (edge against horizon, the control beside it, the edge
    kept) and ``scorecard_pnl.png`` (cumulative PnL: total, direction, execution)."""
    out = Path(out_dir).expanduser()
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, panel in (("scorecard_edge.png", _edge_panel), ("scorecard_pnl.png", _pnl_panel)):
        fig = _figure(6.5, 4.5)
        panel(fig.add_subplot(), card)
        _save(fig, out / name)
        paths.append(out / name)
    return paths


def plot_png(card: dict) -> bytes:
    """Both panels side by side as one PNG (for Telegram)."""
    fig = _figure(12.0, 4.5)
    left, right = fig.subplots(1, 2)
    _edge_panel(left, card)
    _pnl_panel(right, card)
    buf = io.BytesIO()
    _save(fig, buf)
    return buf.getvalue()


def journal_scorecard(journal_path: str, seed: int = 0) -> tuple[str, bytes | None]:
    """The scorecard of a journal as (summary text, PNG of both panels or None when there is nothing to plot),
    for ``/scorecard``: meant for a worker process (``engine.plot.in_worker``), it reads the journal read-only."""
    try:
        card = scorecard(load_intents(journal_path), seed=seed)
    except ConfigError as exc:
        return f"no scorecard yet: {exc}", None
    png = plot_png(card) if card["counts"].get("enter") else None
    return summary_text(card), png
