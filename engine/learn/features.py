"""Features and labels of the learned timing models: one pass of the real ``Feed`` over a recording.

Sampling. The recording's raw messages go through ``ext.feed.Feed`` exactly as the engine reads them. At a
depth update applied while the book is synced (both sides present, not crossed), the first update at or after
the next grid instant takes a sample (at most one per ``step_ms`` of exchange time, default 100 ms): two rows,
one per side (``side`` +1 buy, -1 sell). Samples in the first ``warmup_s`` (5 s) after a book (re)sync and
samples whose 0.5 s history is missing are dropped; so are rows whose longest horizon passes the tape's end or a
resync.

The live path is the same kernel: ``features_now(sf, now_ns, side, state)`` (``ext.learn.FeatureState.fill``)
reads the ``SymbolFeed`` (the timing kernel's state decayed to ``now_ns``, the book's touch, the trades ring);
``featurize`` calls it at every synced depth update, so the engine must call it (or
``engine.learn.runtime.ModelRuntime.observe``) at every depth update too for its 0.5 s history to be the one
the model was trained on (other calls in between are harmless when they fall between grid instants; a call
that lands on a grid instant takes that sample).

Orientation. ``S`` features are computed for a buy and multiplied by ``side``: positive means "favourable for
this side" in the buy sense (a buy likes positive OFI). ``P`` features are pairs (own, opposite) where *own* is
the side of the book a passive order of this side rests on (bids for a buy) or, for flow, the aggressors
trading in this side's direction (buyers for a buy); a sell swaps the pair. ``N`` features do not depend on the
side. ``slog(x) = sign(x) log(1 + |x|)``. Signals come from ``Timing.view`` (the values ``timing.snapshot``
returns; definitions and time constants in ``engine.signals_ref``): tau_ofi 1 s, tau_flow fast 1 s / slow 5 s,
tau_micro 0.5 s, tau_vel 0.5 s, tau_vac 0.3 s, tau_pull 2 s, tau_abs 2 s, tau_spread 1 s by default.

====  ====================  ====  ======================================================================  =========
 #    name                  kind  formula                                                                  units
====  ====================  ====  ======================================================================  =========
 0    side                  --    +1 buy, -1 sell                                                          --
 1    ofi_norm              S     ``ofi_norm``: touch OFI / average touch depth (tau 1 s)                  --
 2    mlofi_norm            S     ``mlofi_norm``: multi-level OFI (top 5) / average depth (tau 1 s)        --
 3    tape_imb_fast         S     ``tape_imb_fast``: (B - S)/(B + S) of aggressor volume (tau 1 s)         [-1, 1]
 4    tape_imb_slow         S     ``tape_imb_slow``: the same at tau 5 s                                   [-1, 1]
 5    run_count_slog        S     slog(``run_count``): signed length of the current aggressor run          prints
 6    run_volume_slog       S     slog(``run_volume``): its signed volume                                  lots
 7    micro_tilt            S     ``micro_tilt``: microprice - mid                                         ticks
 8    micro_drift           S     ``micro_drift``: decayed microprice changes / tau (tau 0.5 s)            ticks/s
 9    queue_imb             S     (qb - qa) / (qb + qa), touch sizes from the book                         [-1, 1]
10    queue_own_log         P     log1p(touch size on the own side: bid for a buy)                         lots
11    queue_opp_log         P     log1p(touch size on the opposite side)                                   lots
12    band_own_log          P     log1p(``band_depth_*`` own side: depth within 5 bps of the touch)        lots
13    band_opp_log          P     log1p(``band_depth_*`` opposite side)                                    lots
14    depth_vel_own_slog    P     slog(``depth_vel_*`` own side) (tau 0.5 s)                               lots/s
15    depth_vel_opp_slog    P     slog(``depth_vel_*`` opposite side)                                      lots/s
16    vacuum_own            P     ``vacuum_*`` own side: V / (V + band depth) (tau 0.3 s)                  [0, 1)
17    vacuum_opp            P     ``vacuum_*`` opposite side                                               [0, 1)
18    pulled_own            P     ``pulled_*`` own side: P / (P + band depth) (tau 2 s)                    [0, 1)
19    pulled_opp            P     ``pulled_*`` opposite side                                               [0, 1)
20    absorption_own        P     a / (1 + a), a = ``absorption_*`` own side (tau 2 s)                     [0, 1)
21    absorption_opp        P     the same, opposite side                                                  [0, 1)
22    flow_with_log         P     log1p(``buy_vol_fast`` for a buy, ``sell_vol_fast`` for a sell) (1 s)   lots
23    flow_against_log      P     log1p(the other aggressors' fast volume)                                 lots
24    spread_ticks          N     best ask - best bid from the book                                        ticks
25    spread_avg            N     ``spread_avg`` (time-weighted, tau 1 s)                                  ticks
26    trade_age_s           N     now - the last market trade's exchange time, clipped to [0, 10]          s
27    mid_ret_bps           S     (mid - mid_past) / mid_past x 1e4                                        bps
28    d_ofi_norm            S     ofi_norm - its value at the past sample                                  --
29    d_mlofi_norm          S     mlofi_norm change                                                        --
30    d_tape_imb_fast       S     tape_imb_fast change                                                     --
31    d_micro_tilt          S     micro_tilt change                                                        ticks
32    d_queue_imb           S     queue_imb change                                                         --
33    d_queue_own_log       P     queue_own_log change                                                     log lots
34    d_queue_opp_log       P     queue_opp_log change                                                     log lots
====  ====================  ====  ======================================================================  =========

Dynamics (27-34): "the past sample" is the newest sample of the state's history taken at least 0.5 s before
now (so the look-back is 0.5 s plus at most one step plus any pause in depth updates); 0 when there is none.

Labels (from the same pass, looking ahead on the recorded book and trades):

* ``move_<h>s`` for h in 0.5, 1, 2, 5 s: ``side x (mid(t + h) - mid(t)) / mid(t) x 1e4`` (bps), mid(t + h) the
  mid after the first depth update at or after t + h (exchange time).
* ``fill_2s``: would a passive order of this side, resting at its own touch price P from t, have filled within
  T = 2 s? Yes when, over trades with exchange time in (t, t + T]: the opposite aggressors (sellers for a buy)
  traded at P more than the queue ahead Q (the own touch size at t), or any of them traded through P (below P
  for a buy), or the recorded opposite touch reached P (the ask at or below P for a buy).
  Approximations: the order joins the back of the queue (all of Q ahead) and cancellations ahead of it never
  move it forward (pessimistic); its own presence changes nobody's behaviour; trades in the same millisecond as
  t are not counted; trade and depth exchange times are compared as if on one clock.
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from engine.errors import ConfigError
from ext import learn as _k
from ext.feed import Feed

if TYPE_CHECKING:
    from engine.eval.cluster import Backend

FEATURE_TABLE: tuple[tuple[str, str], ...] = (
    ("side", "-"),
    ("ofi_norm", "S"), ("mlofi_norm", "S"), ("tape_imb_fast", "S"), ("tape_imb_slow", "S"),
    ("run_count_slog", "S"), ("run_volume_slog", "S"), ("micro_tilt", "S"), ("micro_drift", "S"),
    ("queue_imb", "S"),
    ("queue_own_log", "P"), ("queue_opp_log", "P"), ("band_own_log", "P"), ("band_opp_log", "P"),
    ("depth_vel_own_slog", "P"), ("depth_vel_opp_slog", "P"), ("vacuum_own", "P"), ("vacuum_opp", "P"),
    ("pulled_own", "P"), ("pulled_opp", "P"), ("absorption_own", "P"), ("absorption_opp", "P"),
    ("flow_with_log", "P"), ("flow_against_log", "P"),
    ("spread_ticks", "N"), ("spread_avg", "N"), ("trade_age_s", "N"),
    ("mid_ret_bps", "S"), ("d_ofi_norm", "S"), ("d_mlofi_norm", "S"), ("d_tape_imb_fast", "S"),
    ("d_micro_tilt", "S"), ("d_queue_imb", "S"), ("d_queue_own_log", "P"), ("d_queue_opp_log", "P"),
)
FEATURES: tuple[str, ...] = tuple(name for name, _ in FEATURE_TABLE)
KIND: dict[str, str] = dict(FEATURE_TABLE)
if tuple(_k.FEATURE_NAMES) != FEATURES:          # the kernel writes this order: they must never drift apart
    raise ImportError("engine.learn.features.FEATURES disagrees with ext.learn.FEATURE_NAMES: rebuild ext/learn")

HORIZONS_S: tuple[float, ...] = (0.5, 1.0, 2.0, 5.0)
FILL_T_S = 2.0
LAG_MS = 500
WARMUP_S = 5.0
MS = 1_000_000
SEC = 1_000_000_000


def feature_set_id(names: tuple[str, ...] = FEATURES) -> str:
    """Short sha256 (12 hex) of the feature names joined by commas: a model is only valid for this set."""
    return hashlib.sha256(",".join(names).encode()).hexdigest()[:12]


FEATURE_SET_ID = feature_set_id()


def move_target(h: float) -> str:
    """Target name of the mid move over ``h`` seconds, e.g. ``move_0.5s``, ``move_2s``."""
    return f"move_{h:g}s"


def fill_target(t_s: float = FILL_T_S) -> str:
    """Target name of the passive fill within ``t_s`` seconds, e.g. ``fill_2s``."""
    return f"fill_{t_s:g}s"


def targets(horizons: tuple[float, ...] = HORIZONS_S, fill_t_s: float = FILL_T_S) -> tuple[str, ...]:
    """Every target name, moves first then the fill."""
    return (*(move_target(h) for h in horizons), fill_target(fill_t_s))


def new_state(step_ms: int = 100, lag_ms: int = LAG_MS) -> _k.FeatureState:
    """A fresh per-symbol feature state (the 0.5 s history) for ``features_now``."""
    if step_ms <= 0:
        raise ConfigError(f"step_ms must be > 0, got {step_ms}")
    try:
        return _k.FeatureState(step_ms * MS, lag_ms * MS)
    except ValueError as exc:                        # the history cannot span the look-back at this step
        raise ConfigError(f"step {step_ms} ms is too fine for the {lag_ms} ms look-back: {exc}") from None


def features_now(sf, now_ns: int, side: int, state: _k.FeatureState) -> np.ndarray:
    """The feature row (float32, ``FEATURES`` order) for ``side`` (+1 buy, -1 sell) at exchange time ``now_ns``
    from a live ``SymbolFeed``; all NaN when the book is not synced, a side is empty or it is crossed."""
    out = np.empty(len(FEATURES), dtype=np.float32)
    _k.features_into(sf, now_ns, side, state, out)
    return out


@dataclass
class Series:
    """The recorded touch after every synced depth update (exchange time), with its book epoch (snapshots loaded:
    a resync starts a new epoch)."""

    t: np.ndarray
    bid: np.ndarray
    ask: np.ndarray
    bid_qty: np.ndarray
    ask_qty: np.ndarray
    epoch: np.ndarray

    @property
    def mid(self) -> np.ndarray:
        return (self.bid + self.ask) / 2.0


@dataclass
class Trades:
    """Every market trade the feed kept: exchange time, price (ticks), qty (lots), sell aggressor."""

    t: np.ndarray
    px: np.ndarray
    qty: np.ndarray
    sell: np.ndarray


@dataclass
class Featurized:
    """A recording's rows: ``X`` (float32, ``FEATURES``), ``y`` per target, each row's time, side and the index
    of its depth update in ``series``; the symbol; the recorded series the labels were read from."""

    X: np.ndarray
    y: dict[str, np.ndarray]
    t_ns: np.ndarray
    side: np.ndarray
    upd: np.ndarray
    symbol: str
    files: tuple[str, ...]
    step_ms: int
    series: Series
    trades: Trades
    stats: dict = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.t_ns)

    def subset(self, idx: np.ndarray) -> Featurized:
        """The rows ``idx`` (a boolean mask or indices), same series."""
        return Featurized(self.X[idx], {k: v[idx] for k, v in self.y.items()}, self.t_ns[idx], self.side[idx],
                          self.upd[idx], self.symbol, self.files, self.step_ms, self.series, self.trades,
                          self.stats)


@dataclass
class _Pass:
    """What one replay collects before labelling."""

    rows: list = field(default_factory=list)
    row_upd: list = field(default_factory=list)
    row_ok: list = field(default_factory=list)
    ser: list = field(default_factory=list)
    trades: list = field(default_factory=list)
    epoch_start: dict = field(default_factory=dict)


def _load(paths: list[str | Path], scan: Scan | None = None):
    """The recording as ``engine.bench.load_tape`` reads it; with ``scan`` (its symbols and snapshots, found by
    ``featurize_many``'s chunked scan) the scan is not redone: the same tape."""
    from engine.bench import Tape, load_tape
    from engine.feed import instruments as inst
    from engine.feed.verify import merged_lines

    for p in paths:
        if not Path(p).is_file():
            raise ConfigError(f"no such recording: {p}")
    if scan is None:
        tape = load_tape(list(paths))
    else:
        lines = _PRELOADED.get(tuple(str(p) for p in paths)) or merged_lines(list(paths))
        tape = Tape([Path(p) for p in paths], [ln.raw for ln in lines], inst.resolve(scan.symbols, None,
                                                                                      scan.snapshots))
    if len(tape.instruments) != 1:
        raise ConfigError(f"training needs one symbol per recording, {[str(p) for p in paths]} has "
                          f"{[i.symbol for i in tape.instruments]}")
    return tape


def _replay(messages: list[bytes], instruments: list, step_ms: int, warmup_s: float) -> _Pass:
    """Every message through a real Feed; at each synced depth update, the touch into the series and, at a sample
    instant, the buy and the sell row; every market trade the feed keeps."""
    feed = Feed(instruments)
    sf = feed.symbols[0]
    st = new_state(step_ms)
    out = _Pass()
    seen_trades = 0
    for m in messages:
        r = feed.on_message(m)
        if r == 1 and sf.synced:
            _on_depth(sf, st, out, round(warmup_s * SEC))
        elif r in (3, 4):
            while seen_trades < _k.trades_total(sf):
                tr = _k.trade_at(sf, seen_trades)
                if tr is not None:
                    out.trades.append(tr)
                seen_trades += 1
    return out


def _on_depth(sf, st: _k.FeatureState, out: _Pass, warm_ns: int) -> None:
    bid, ask = sf.book.best(0), sf.book.best(1)
    if bid is None or ask is None or bid[0] >= ask[0]:
        return
    t, ep = sf.last_book_ns, sf.n_snapshots
    out.epoch_start.setdefault(ep, t)
    out.ser.append((t, bid[0], ask[0], bid[1], ask[1], ep))
    buy = np.empty(len(FEATURES), dtype=np.float32)
    flags = _k.features_into(sf, t, 1, st, buy)
    if flags >= 0 and flags & _k.PUSHED:
        sell = np.empty(len(FEATURES), dtype=np.float32)
        _k.features_into(sf, t, -1, st, sell)
        out.rows.append(np.concatenate([buy, sell]))
        out.row_upd.append(len(out.ser) - 1)
        out.row_ok.append(bool(flags & _k.HAS_PAST) and t - out.epoch_start[ep] >= warm_ns)


def _series(p: _Pass) -> Series:
    a = np.array(p.ser, dtype=np.int64).reshape(-1, 6)
    return Series(a[:, 0], a[:, 1], a[:, 2], a[:, 3], a[:, 4], a[:, 5])


def _trades(p: _Pass) -> Trades:
    a = np.array([(t, px, q, int(s)) for t, px, q, s in p.trades], dtype=np.int64).reshape(-1, 4)
    order = np.argsort(a[:, 0], kind="stable")               # trade times are monotone in practice; be sure
    a = a[order]
    return Trades(a[:, 0], a[:, 1], a[:, 2], a[:, 3].astype(bool))


def move_labels(ser: Series, upd: np.ndarray, horizons: tuple[float, ...]) -> tuple[np.ndarray, np.ndarray]:
    """Buy-side mid moves (bps) from each sample's update ``upd`` over each horizon: shape (n, len(horizons)), and
    a validity mask (the horizon stays inside the tape and the sample's book epoch)."""
    mid = ser.mid
    t0 = ser.t[upd]
    moves = np.zeros((len(upd), len(horizons)))
    ok = np.ones(len(upd), dtype=bool)
    for k, h in enumerate(horizons):
        j = np.searchsorted(ser.t, t0 + round(h * SEC), side="left")
        inside = j < len(ser.t)
        jj = np.minimum(j, len(ser.t) - 1)
        ok &= inside & (ser.epoch[jj] == ser.epoch[upd])
        moves[:, k] = (mid[jj] - mid[upd]) / mid[upd] * 1e4
    return moves, ok


def fill_labels(ser: Series, tr: Trades, upd: np.ndarray, fill_t_s: float) -> tuple[np.ndarray, np.ndarray]:
    """Whether a passive buy at the bid and a passive sell at the ask, from each sample's update, fill within
    ``fill_t_s`` (see the module's docstring): two boolean arrays (buy, sell)."""
    horizon = round(fill_t_s * SEC)
    n = len(upd)
    fill_b = np.zeros(n, dtype=bool)
    fill_s = np.zeros(n, dtype=bool)
    for i, u in enumerate(upd):
        t = ser.t[u]
        a, b = np.searchsorted(tr.t, [t, t + horizon], side="right")
        ua, ub = np.searchsorted(ser.t, [t, t + horizon], side="right")
        px, q, sell = tr.px[a:b], tr.qty[a:b], tr.sell[a:b]
        pb, pa = ser.bid[u], ser.ask[u]
        hit = sell & (px <= pb)                         # sellers at or through the bid
        fill_b[i] = bool(np.any(px[hit] < pb)) or int(q[hit & (px == pb)].sum()) > ser.bid_qty[u] \
            or (ub > ua and int(ser.ask[ua:ub].min()) <= pb)
        lift = ~sell & (px >= pa)                       # buyers at or through the ask
        fill_s[i] = bool(np.any(px[lift] > pa)) or int(q[lift & (px == pa)].sum()) > ser.ask_qty[u] \
            or (ub > ua and int(ser.bid[ua:ub].max()) >= pa)
    return fill_b, fill_s


def featurize(paths: list[str | Path], step_ms: int = 100, horizons: tuple[float, ...] = HORIZONS_S,
              fill_t_s: float = FILL_T_S, warmup_s: float = WARMUP_S) -> Featurized:
    """Replay one recording (its files in order, one symbol) through the real feed and return its rows: two per
    sample (buy then sell), features and labels (see the module's docstring)."""
    return _featurize(paths, step_ms, horizons, fill_t_s, warmup_s)


def _featurize(paths: list[str | Path], step_ms: int, horizons: tuple[float, ...], fill_t_s: float,
               warmup_s: float, scan: Scan | None = None) -> Featurized:
    if step_ms <= 0:
        raise ConfigError(f"--step-ms must be > 0, got {step_ms}")
    tape = _load(paths, scan)
    t0 = time.perf_counter()
    p = _replay(tape.messages, tape.instruments, step_ms, warmup_s)
    replay_s = time.perf_counter() - t0
    if not p.ser or not p.rows:
        raise ConfigError(f"{[str(x) for x in paths]}: the book never synced, nothing to learn from")
    ser, tr = _series(p), _trades(p)
    upd = np.asarray(p.row_upd, dtype=np.int64)
    moves, ok = move_labels(ser, upd, horizons)
    keep = ok & (ser.t[upd] + round(fill_t_s * SEC) <= ser.t[-1]) & np.asarray(p.row_ok, dtype=bool)
    upd = upd[keep]
    X = np.ascontiguousarray(np.asarray(p.rows, dtype=np.float32)[keep].reshape(-1, len(FEATURES)))
    side = np.tile(np.array([1, -1], dtype=np.int8), len(upd))          # buy row, then sell row, per sample
    y = {move_target(h): np.repeat(moves[keep, k], 2) * side for k, h in enumerate(horizons)}
    y[fill_target(fill_t_s)] = np.column_stack(fill_labels(ser, tr, upd, fill_t_s)).reshape(-1).astype(np.float64)
    total_s = time.perf_counter() - t0
    stats = {"messages": len(tape.messages), "samples": len(p.rows), "rows": len(X), "replay_s": round(replay_s, 3),
             "featurize_s": round(total_s, 3), "rows_per_s": round(len(X) / total_s) if total_s > 0 else 0,
             "messages_per_s": round(len(tape.messages) / replay_s) if replay_s > 0 else 0}
    return Featurized(X, y, np.repeat(ser.t[upd], 2), side, np.repeat(upd, 2), tape.instruments[0].symbol,
                      tuple(str(x) for x in paths), step_ms, ser, tr, stats)


# ---- parallel featurization --------------------------------------------------------------------------------------
#
# One recording is one stream: the book, the timing kernel's decayed state, the trades ring and the 0.5 s feature
# history all carry across its files and across resyncs (a snapshot resets only the depth-derived signals), and
# fill labels look 2 s past any cut. A time chunk replayed on its own, even warmed up from a snapshot, would not
# reproduce those rows bit for bit, so the replay of a recording is never split. What is split, exactly:
#  * recordings: the training recording and every validation recording are featurized as parallel tasks;
#  * when there are fewer recordings than workers, the part of loading that dominates (parsing every message to
#    find the recording's symbols and first snapshots, ~75 % of the time) is cut into line chunks scanned in
#    parallel; their first-seen results combine in chunk order into exactly what one scan finds.
# Tasks carry paths and parameters only (every worker, local or on a cluster, reads the files itself), except that
# before a fork pool the caller reads a chunked recording once and the forked workers find it in ``_PRELOADED``.

_PRELOADED: dict[tuple[str, ...], list] = {}     # recording -> its merged lines, read before forking workers


@dataclass
class Scan:
    """What loading learns from a recording's messages: its symbols (first seen first), the first snapshot named
    per symbol, and the first bare (symbol-less) snapshot."""

    symbols: list[str] = field(default_factory=list)
    snapshots: dict[str, dict] = field(default_factory=dict)
    bare: dict | None = None


def scan_lines(lines: list) -> Scan:
    """Scan ``lines`` (``engine.feed.recording.Line``) as ``engine.feed.verify._symbols_and_snapshots`` does, keeping
    the first bare snapshot apart so that chunk scans combine (``combine_scans``) into the whole one."""
    from engine.feed.reference import parse_message

    symbols: dict[str, None] = {}
    out = Scan()
    for ln in lines:
        try:
            d = parse_message(ln.raw)
        except ValueError:
            continue
        if d["kind"] == "snapshot":
            if ln.symbol:
                out.snapshots.setdefault(ln.symbol, d)
            elif out.bare is None:
                out.bare = d
        elif "s" in d:
            symbols.setdefault(d["s"], None)
    out.symbols = list(symbols)
    return out


def combine_scans(scans: list[Scan]) -> Scan:
    """The scan of the chunks' concatenation (first seen wins, chunks in order); a bare snapshot is the symbol's
    when the recording has exactly one symbol and no named snapshot of it (``_symbols_and_snapshots``'s rule)."""
    symbols: dict[str, None] = {}
    snapshots: dict[str, dict] = {}
    bare = None
    for sc in scans:
        symbols.update((s, None) for s in sc.symbols if s not in symbols)
        for sym, d in sc.snapshots.items():
            snapshots.setdefault(sym, d)
        bare = bare if bare is not None else sc.bare
    if bare is not None and len(symbols) == 1:
        snapshots.setdefault(next(iter(symbols)), bare)
    return Scan(list(symbols), snapshots, None)


def _scan_task(item: tuple[tuple[str, ...], int, int]) -> Scan:
    """Chunk ``k`` of ``n`` (by line) of the recording ``paths``, scanned."""
    from engine.feed.verify import merged_lines

    paths, k, n = item
    lines = _PRELOADED.get(tuple(paths)) or merged_lines(list(paths))
    return scan_lines(lines[len(lines) * k // n:len(lines) * (k + 1) // n])


def _featurize_task(item: tuple) -> Featurized:
    """``featurize`` of one recording (``(paths, step_ms, horizons, fill_t_s, warmup_s, scan or None)``)."""
    paths, step_ms, horizons, fill_t_s, warmup_s, scan = item
    return _featurize(list(paths), step_ms, horizons, fill_t_s, warmup_s, scan)


def featurize_many(recordings: list[list[str | Path]], step_ms: int = 100, backend: Backend | None = None,
                   horizons: tuple[float, ...] = HORIZONS_S, fill_t_s: float = FILL_T_S,
                   warmup_s: float = WARMUP_S) -> list[Featurized]:
    """``[featurize(r, ...) for r in recordings]``, identical row for row, computed on ``backend``
    (``engine.eval.cluster``; default: the current one) when it has more than one worker: the recordings as
    parallel tasks, and, with fewer recordings than workers, each recording's load scanned in chunks first."""
    from engine.eval.cluster import current

    if step_ms <= 0:
        raise ConfigError(f"--step-ms must be > 0, got {step_ms}")
    backend = backend if backend is not None else current()
    recs = [tuple(str(p) for p in r) for r in recordings]
    for r in recs:                              # fail here, before any task is sent
        for p in r:
            if not Path(p).is_file():
                raise ConfigError(f"no such recording: {p}")
    if backend.workers <= 1 or not recs:
        return [_featurize(list(r), step_ms, horizons, fill_t_s, warmup_s) for r in recs]
    chunks = -(-backend.workers // len(recs))   # ceil: enough chunk tasks to keep every worker busy
    if chunks == 1:
        return backend.map(_featurize_task, [(r, step_ms, horizons, fill_t_s, warmup_s, None) for r in recs])
    if getattr(backend, "forks", False):        # read once here: the forked workers inherit the lines
        from engine.feed.verify import merged_lines

        _PRELOADED.update((r, merged_lines(list(r))) for r in recs)
    try:
        parts = backend.map(_scan_task, [(r, k, chunks) for r in recs for k in range(chunks)])
        scans = [combine_scans(parts[i * chunks:(i + 1) * chunks]) for i in range(len(recs))]
        return backend.map(_featurize_task, [(r, step_ms, horizons, fill_t_s, warmup_s, sc)
                                             for r, sc in zip(recs, scans, strict=True)])
    finally:
        for r in recs:
            _PRELOADED.pop(r, None)
