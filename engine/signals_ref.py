"""Micro-timing signals: the parameters and a plain pure-Python reference of ``ext.timing.Timing``.

``RefTiming`` mirrors the Cython kernel operation for operation (same float operations in the same order, the
same libm ``exp``/``tanh`` through :mod:`math`), so the two agree bit for bit; property tests hold the kernel
to it. Everything is driven by exchange time in integer nanoseconds; prices are ticks and sizes lots
(integers).

Decay. Every accumulator belongs to one *decay group* with its own time constant ``tau`` and its own clock
(the exchange time it was last decayed to). An event at ``ts`` decays only the groups it touches, once, by
``f = exp(-(ts - clock) / tau)`` (``dt`` clamped at 0: an out-of-order event never grows a sum and never moves
a clock back); reads (``snapshot``/``score``) decay to ``now`` without mutating. Two kinds of decayed state:

* decayed sums ``S <- S*f + x``: the exponentially weighted sum of event contributions ``x``;
* time-weighted averages of a piecewise-constant quantity ``c``: ``A <- A*f + c*(1-f)`` where ``c`` is the
  value that held over the elapsed interval (so an instantaneous spike with no duration carries no weight).

A rate is a decayed sum of changes divided by ``tau`` in seconds: a steady rate ``r`` gives ``S -> r*tau``.

Signals (name in ``snapshot()``: formula; units; time constant):

1. ``ofi``: Cont-Kukanov-Stoikov order-flow imbalance at the touch, decayed sum of per-touch-change
   ``e = 1{Pb>=Pb'}qb - 1{Pb<=Pb'}qb' - 1{Pa<=Pa'}qa + 1{Pa>=Pa'}qa'`` (primed: previous touch); lots;
   tau_ofi. ``ofi_norm = ofi / touch_depth_avg`` (dimensionless), ``touch_depth_avg`` the time-weighted
   average of ``(qb + qa)/2`` (lots, tau_ofi). ``mlofi``: multi-level OFI (Xu, Gould & Howison), the same
   ``e`` at each of the top ``mlofi_levels`` levels of consecutive depth diffs, summed over levels; lots;
   tau_ofi.
   ``mlofi_norm = mlofi / mlofi_depth_avg``, the time-weighted average of (top-N bid lots + top-N ask lots)/2.
2. ``depth_vel_bid/ask``: rate of change of the resting depth within ``band_bps`` of the touch (touch
   included), decayed sum of per-diff band-depth changes / tau_vel; lots/s; tau_vel.
3. ``vacuum_bid/ask``: decayed sum ``V`` of in-band depth decreases not explained by trades (lots, tau_vac,
   ``vacuum_acc_*``), reported as ``V / (V + band_depth)``: the fraction of recent band liquidity that
   vanished without trading, in [0, 1). "In band" for a decrease at ``p``: bid ``p >= best_bid - band``, ask
   ``p <= best_ask + band`` (touch after the diff, so a level at the old touch counts).
4. ``pulled_bid/ask``: decayed sum ``P`` of unexplained removals of *large* levels (resting ``>= pull_k`` x
   the average level size, within ``pull_ticks`` of the touch) where the unexplained part is at least
   ``pull_frac`` of what rested; ``P / (P + band_depth)``; tau_pull. ``level_size_avg``: time-weighted average
   of the mean level size over the top ``mlofi_levels`` levels of both sides (lots, tau_level).
5. ``absorption_bid/ask``: at the current touch price of a side, market volume traded there (decayed, tau_abs,
   ``absorbed_*``, lots) over the peak displayed size there since that price became the touch
   (``absorb_peak_*``); resets when the touch price moves. > 1 means more traded than was ever shown
   (iceberg).
6. ``run_count``/``run_volume``: signed length (prints) and volume (lots) of the current run of same-aggressor
   prints (+ buy, - sell); a gap > ``run_gap_ns`` or an opposite print ends it (0 once stale).
   ``tape_imb_fast/slow = (B - S) / (B + S)`` of decayed aggressor buy/sell volume (``buy_vol_*``,
   ``sell_vol_*``, lots) at tau_flow_fast and tau_flow_slow.
7. ``spread`` (ticks, current) and ``spread_avg`` (time-weighted, tau_spread); ``micro_tilt`` = microprice -
   mid (ticks); ``micro_drift``: decayed sum of microprice changes / tau_micro (ticks/s).

Trade/depth reconciliation (3 and 4): trades and depth diffs come on separate streams, either may come first.
A trade consumes the maker side (aggressor buy consumes asks). A depth decrease first takes matching unmatched
trade volume (same side and price, ``|dt| <= match_tol_ns``) from a ring; the rest is unexplained, added to
the sums and remembered in a ring. A trade that arrives later takes matching remembered decreases and removes
the explained lots from the sums exactly as decayed since they were added:
``S -= m * exp(-(clock - t_add)/tau)``. Both rings hold ``RING`` entries (oldest dropped when full) and drop
entries older than ``match_tol_ns``.

Entry score: see :func:`score_from_view`.
"""

from __future__ import annotations

import dataclasses
import math
from collections import deque
from collections.abc import Iterable, Sequence
from typing import Any, Protocol

BID, ASK = 0, 1
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
NO_BID, NO_ASK = INT64_MIN, INT64_MAX
MAX_LEVELS = 16
RING = 64

# Decay groups: one clock and one tau each (the order is shared with ext/timing.pyx).
G_OFI, G_SPREAD, G_MICRO, G_MLOFI, G_VEL, G_VAC, G_PULL, G_LEVEL, G_ABS, G_FLOW_F, G_FLOW_S = range(11)
NGROUPS = 11

SEC = 1_000_000_000
MS = 1_000_000


@dataclasses.dataclass(frozen=True)
class TimingParams:
    """Parameters of the micro-timing kernels (times in exchange-time ns, bands in bps / ticks).

    Score weights (hand-set, see :func:`score_from_view`); each feature is squashed into about [-1, 1] first.
    """

    tau_ofi_ns: int = SEC                 # OFI, multi-level OFI, their normalising depths
    tau_spread_ns: int = SEC              # average spread
    tau_micro_ns: int = 500 * MS          # microprice drift
    tau_vel_ns: int = 500 * MS            # depth velocity
    tau_vac_ns: int = 300 * MS            # liquidity vacuum
    tau_pull_ns: int = 2 * SEC            # pulled liquidity
    tau_level_ns: int = 5 * SEC           # average level size (pulled-liquidity baseline)
    tau_abs_ns: int = 2 * SEC             # absorption volume
    tau_flow_fast_ns: int = SEC           # aggressor volume, fast horizon
    tau_flow_slow_ns: int = 5 * SEC       # aggressor volume, slow horizon
    band_bps: float = 5.0                 # depth band around the touch (velocity, vacuum, normaliser)
    mlofi_levels: int = 5                 # levels in multi-level OFI and the level-size average
    pull_k: float = 5.0                   # "large level": resting >= pull_k x level_size_avg
    pull_ticks: int = 20                  # ... and within this many ticks of the touch
    pull_frac: float = 0.5                # counted when the unexplained cut is >= pull_frac x resting size
    match_tol_ns: int = 50 * MS           # trade <-> depth-decrease matching tolerance (exchange time)
    run_gap_ns: int = 500 * MS            # a longer pause between prints ends a run
    w_ofi: float = 0.30                   # softsign(ofi_norm)
    w_mlofi: float = 0.15                 # softsign(mlofi_norm)
    w_vel: float = 0.10                   # softsign((vel_bid - vel_ask) * vel_scale_s / (band depths + 1))
    w_vac: float = 0.20                   # vacuum_ask - vacuum_bid
    w_pull: float = 0.15                  # pulled_ask - pulled_bid
    w_abs: float = 0.10                   # a/(1+a) of bid absorption minus that of ask absorption
    w_imb: float = 0.20                   # mean of fast and slow tape imbalance
    w_run: float = 0.10                   # softsign(run_count / run_scale)
    w_tilt: float = 0.15                  # micro_tilt / (spread / 2)
    w_drift: float = 0.10                 # softsign(micro_drift * drift_horizon_s)
    w_spread: float = 0.10                # -softsign((spread - sa) / sa), sa = max(spread_avg, 1)
    # Feature scales, set so that |feature| has p90 ~ 0.4-0.7 on the bundled BTCUSDT sample (@trade prints:
    # one taker order fills as many prints, hence the long runs; a 1-tick spread makes the microprice jumpy).
    vel_scale_s: float = 2.0
    run_scale: float = 20.0
    drift_horizon_s: float = 0.05
    gain: float = 1.5                     # score = tanh(gain * z)

    def __post_init__(self) -> None:
        for name in ("tau_ofi_ns", "tau_spread_ns", "tau_micro_ns", "tau_vel_ns", "tau_vac_ns", "tau_pull_ns",
                     "tau_level_ns", "tau_abs_ns", "tau_flow_fast_ns", "tau_flow_slow_ns"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be > 0")
        if not 1 <= self.mlofi_levels <= MAX_LEVELS:
            raise ValueError(f"mlofi_levels must be in [1, {MAX_LEVELS}]")
        if self.band_bps < 0 or self.pull_ticks < 0 or self.match_tol_ns < 0 or self.run_gap_ns < 0:
            raise ValueError("band_bps, pull_ticks, match_tol_ns and run_gap_ns must be >= 0")
        if self.run_scale <= 0:
            raise ValueError("run_scale must be > 0")

    def taus(self) -> tuple[int, ...]:
        """Time constants (ns) in decay-group order."""
        return (self.tau_ofi_ns, self.tau_spread_ns, self.tau_micro_ns, self.tau_ofi_ns, self.tau_vel_ns,
                self.tau_vac_ns, self.tau_pull_ns, self.tau_level_ns, self.tau_abs_ns, self.tau_flow_fast_ns,
                self.tau_flow_slow_ns)


def make_params(params: TimingParams | None = None, **overrides: Any) -> TimingParams:
    """``params`` (default :class:`TimingParams`) with keyword overrides applied."""
    base = params if params is not None else TimingParams()
    return dataclasses.replace(base, **overrides) if overrides else base


class BookLike(Protocol):
    """The reads the reference needs (``RefBook`` and ``ext.book.Book`` both have them)."""

    def best(self, side: int) -> tuple[int, int] | None: ...
    def top(self, side: int, n: int = 10) -> list[tuple[int, int]]: ...
    def depth(self, side: int, n_ticks: int) -> int: ...
    @property
    def mid(self) -> float: ...


Change = tuple[int, int, int, int]      # (side, price_ticks, qty_lots_after, qty_lots_before)

SNAPSHOT_KEYS = (
    "ofi", "ofi_norm", "touch_depth_avg", "mlofi", "mlofi_norm", "mlofi_depth_avg", "level_size_avg",
    "depth_vel_bid", "depth_vel_ask", "band_depth_bid", "band_depth_ask",
    "vacuum_acc_bid", "vacuum_acc_ask", "vacuum_bid", "vacuum_ask",
    "pulled_acc_bid", "pulled_acc_ask", "pulled_bid", "pulled_ask",
    "absorbed_bid", "absorbed_ask", "absorb_peak_bid", "absorb_peak_ask", "absorption_bid", "absorption_ask",
    "run_count", "run_volume", "buy_vol_fast", "sell_vol_fast", "buy_vol_slow", "sell_vol_slow",
    "tape_imb_fast", "tape_imb_slow", "spread", "spread_avg", "micro_tilt", "micro_drift",
)


def softsign(x: float) -> float:
    """x / (1 + |x|): a cheap odd squashing into (-1, 1)."""
    return x / (1.0 + abs(x))


def score_from_view(v: dict[str, float], p: TimingParams, side: int) -> float:
    """Entry score for ``side`` (0 buy, 1 sell) from decayed signal values ``v``: about [-1, 1].

    Positive means waiting is likely to cost for that side. Buy-oriented features (each in about [-1, 1]):
    touch and multi-level OFI (buy pressure), bid depth growing / ask depth shrinking, ask-side vacuum minus
    bid-side vacuum, asks pulled minus bids pulled (pulled bids = fake support gone: negative for a buy), bid
    absorption minus ask absorption (bids soaking up sells), tape imbalance and the signed run, microprice
    tilt towards the ask and its drift. ``z = d * sum(w_i * x_i) - w_spread * x_spread`` with ``d = +1`` for
    buy and ``-1`` for sell (mirror symmetric); the spread term is side-neutral: a spread wider than its
    average lowers urgency for both sides. ``score = tanh(gain * z)``.
    """
    x = softsign(v["ofi_norm"])
    z = p.w_ofi * x
    x = softsign(v["mlofi_norm"])
    z = z + p.w_mlofi * x
    x = softsign((v["depth_vel_bid"] - v["depth_vel_ask"]) * p.vel_scale_s
                 / (v["band_depth_bid"] + v["band_depth_ask"] + 1.0))
    z = z + p.w_vel * x
    x = v["vacuum_ask"] - v["vacuum_bid"]
    z = z + p.w_vac * x
    x = v["pulled_ask"] - v["pulled_bid"]
    z = z + p.w_pull * x
    a, b = v["absorption_bid"], v["absorption_ask"]
    x = a / (1.0 + a) - b / (1.0 + b)
    z = z + p.w_abs * x
    x = 0.5 * (v["tape_imb_fast"] + v["tape_imb_slow"])
    z = z + p.w_imb * x
    x = softsign(v["run_count"] / p.run_scale)
    z = z + p.w_run * x
    x = v["micro_tilt"] / (0.5 * v["spread"]) if v["spread"] > 0.0 else 0.0
    z = z + p.w_tilt * x
    x = softsign(v["micro_drift"] * p.drift_horizon_s)
    z = z + p.w_drift * x
    sa = v["spread_avg"] if v["spread_avg"] > 1.0 else 1.0
    x = softsign((v["spread"] - sa) / sa) if v["spread"] > 0.0 else 0.0
    d = 1.0 if side == BID else -1.0
    z = d * z - p.w_spread * x
    return math.tanh(p.gain * z)


def _microprice(bb: int, bq: int, ba: int, aq: int) -> float:
    bqd, aqd = float(bq), float(aq)
    if bq + aq <= 0:
        return 0.5 * (float(bb) + float(ba))
    return (float(bb) * aqd + float(ba) * bqd) / (bqd + aqd)


def _ofi_bid(p: int, q: int, p0: int, q0: int) -> int:
    return (q if p >= p0 else 0) - (q0 if p <= p0 else 0)


def _ofi_ask(p: int, q: int, p0: int, q0: int) -> int:
    """The ask part subtracted from e: 1{Pa<=Pa'}qa - 1{Pa>=Pa'}qa'."""
    return (q if p <= p0 else 0) - (q0 if p >= p0 else 0)


def _ratio(acc: float, depth: float) -> float:
    s = acc + depth
    return acc / s if s > 0.0 else 0.0


class RefTiming:
    """Pure-Python micro-timing kernel with the Python API of ``ext.timing.Timing`` (see the module doc)."""

    def __init__(self, params: TimingParams | None = None, **overrides: Any) -> None:
        p = make_params(params, **overrides)
        self.params = p
        self.inv_tau = [1.0 / float(t) for t in p.taus()]
        self.vel_rate = 1e9 / float(p.tau_vel_ns)
        self.drift_rate = 1e9 / float(p.tau_micro_ns)
        self.clock = [0] * NGROUPS
        self.have_touch = False
        self.touch_uid = INT64_MIN
        self.t_bb = self.t_bq = self.t_ba = self.t_aq = 0
        self.ofi = self.tdepth_avg = self.tdepth_cur = self.spread_avg = self.spread_cur = 0.0
        self.micro_acc = self.mp_cur = 0.0
        self.have_depth = self.have_top = False
        self.band_d = [0, 0]
        self.vel_acc = [0.0, 0.0]
        self.vac_acc = [0.0, 0.0]
        self.pull_acc = [0.0, 0.0]
        self.mlofi = self.mldepth_avg = self.mldepth_cur = self.level_avg = self.level_cur = 0.0
        self.prev_top: list[list[tuple[int, int]]] = [[], []]
        self.abs_px = [NO_BID, NO_ASK]
        self.abs_peak = [0, 0]
        self.abs_vol = [0.0, 0.0]
        self.run_sign = 0
        self.run_count = self.run_vol = self.run_last_ts = 0
        self.flow = [0.0, 0.0, 0.0, 0.0]
        # [side, price, ts, t_add, left, old, in_band, is_pull] and [side, price, ts, left], oldest first
        self.dring: deque[list[int]] = deque(maxlen=RING)
        self.tring: deque[list[int]] = deque(maxlen=RING)

    # ---- decay ---------------------------------------------------------------------------------------------

    def _adv(self, g: int, ts: int) -> float:
        """Decay factor moving group ``g``'s clock forward to ``ts`` (1.0 when ``ts`` is not later)."""
        dt = ts - self.clock[g]
        if dt <= 0:
            return 1.0
        self.clock[g] = ts
        return math.exp(-float(dt) * self.inv_tau[g])

    def _fac(self, g: int, now: int) -> float:
        dt = now - self.clock[g]
        if dt <= 0:
            return 1.0
        return math.exp(-float(dt) * self.inv_tau[g])

    # ---- events --------------------------------------------------------------------------------------------

    def py_on_ticker(self, bid_px: int, bid_qty: int, ask_px: int, ask_qty: int, ts_ns: int,
                     uid: int) -> None:
        """A bookTicker: touch prices (ticks) and sizes (lots); ignored unless ``uid`` is newer."""
        if uid <= self.touch_uid:
            return
        self.touch_uid = uid
        self._touch(bid_px, bid_qty, ask_px, ask_qty, ts_ns)

    def _touch(self, bb: int, bq: int, ba: int, aq: int, ts: int) -> None:
        if self.have_touch and bb == self.t_bb and bq == self.t_bq and ba == self.t_ba and aq == self.t_aq:
            return
        mp = _microprice(bb, bq, ba, aq)
        sp = float(ba - bb)
        td = 0.5 * (float(bq) + float(aq))
        f = self._adv(G_OFI, ts)
        fs = self._adv(G_SPREAD, ts)
        fm = self._adv(G_MICRO, ts)
        if self.have_touch:
            e = (_ofi_bid(bb, bq, self.t_bb, self.t_bq) - _ofi_ask(ba, aq, self.t_ba, self.t_aq))
            self.ofi = self.ofi * f + float(e)
            self.tdepth_avg = self.tdepth_avg * f + self.tdepth_cur * (1.0 - f)
            self.spread_avg = self.spread_avg * fs + self.spread_cur * (1.0 - fs)
            self.micro_acc = self.micro_acc * fm + (mp - self.mp_cur)
        else:
            self.tdepth_avg = td
            self.spread_avg = sp
        self.tdepth_cur = td
        self.spread_cur = sp
        self.mp_cur = mp
        self._abs_touch(BID, bb, bq)
        self._abs_touch(ASK, ba, aq)
        self.t_bb, self.t_bq, self.t_ba, self.t_aq = bb, bq, ba, aq
        self.have_touch = True

    def _abs_touch(self, side: int, px: int, qty: int) -> None:
        if px != self.abs_px[side]:
            self.abs_px[side] = px
            self.abs_peak[side] = qty
            self.abs_vol[side] = 0.0
        elif qty > self.abs_peak[side]:
            self.abs_peak[side] = qty

    def py_on_trade(self, price: int, qty: int, buyer_is_maker: bool, ts_ns: int) -> None:
        """One print: price (ticks), qty (lots); ``buyer_is_maker`` means the aggressor sold."""
        if qty <= 0:
            return
        cs = BID if buyer_is_maker else ASK          # the side the aggressor consumed
        sign = -1 if buyer_is_maker else 1
        q = float(qty)
        f1 = self._adv(G_FLOW_F, ts_ns)
        f5 = self._adv(G_FLOW_S, ts_ns)
        fl = self.flow
        fl[0] = fl[0] * f1
        fl[1] = fl[1] * f1
        fl[2] = fl[2] * f5
        fl[3] = fl[3] * f5
        k = 1 if buyer_is_maker else 0
        fl[k] = fl[k] + q
        fl[k + 2] = fl[k + 2] + q
        if sign == self.run_sign and ts_ns - self.run_last_ts <= self.params.run_gap_ns:
            self.run_count += 1
            self.run_vol += qty
        else:
            self.run_sign = sign
            self.run_count = 1
            self.run_vol = qty
        if ts_ns > self.run_last_ts:
            self.run_last_ts = ts_ns
        if price == self.abs_px[cs]:
            fa = self._adv(G_ABS, ts_ns)
            self.abs_vol[0] = self.abs_vol[0] * fa
            self.abs_vol[1] = self.abs_vol[1] * fa
            self.abs_vol[cs] = self.abs_vol[cs] + q
        self._reconcile_trade(cs, price, qty, ts_ns)

    def _reconcile_trade(self, side: int, price: int, qty: int, ts: int) -> None:
        tol = self.params.match_tol_ns
        ring = self.dring
        while ring and (ring[0][4] == 0 or ring[0][2] < ts - tol):
            ring.popleft()
        left = qty
        for e in ring:
            if e[1] == price and e[0] == side and e[4] > 0 and e[2] - ts <= tol and ts - e[2] <= tol:
                m = left if left < e[4] else e[4]
                self._unexplain(e, m)
                left -= m
                if left == 0:
                    break
        if left > 0:
            self.tring.append([side, price, ts, left])

    def _unexplain(self, e: list[int], m: int) -> None:
        """A trade explains ``m`` lots of remembered decrease ``e``: take them out of the decayed sums."""
        s = e[0]
        if e[6]:
            dt = self.clock[G_VAC] - e[3]
            f = math.exp(-float(dt) * self.inv_tau[G_VAC]) if dt > 0 else 1.0
            x = self.vac_acc[s] - float(m) * f
            self.vac_acc[s] = x if x > 0.0 else 0.0
        if e[7]:
            dt = self.clock[G_PULL] - e[3]
            f = math.exp(-float(dt) * self.inv_tau[G_PULL]) if dt > 0 else 1.0
            rest = e[4] - m
            if float(rest) >= self.params.pull_frac * float(e[5]):
                x = self.pull_acc[s] - float(m) * f
            else:
                x = self.pull_acc[s] - float(e[4]) * f
                e[7] = 0
            self.pull_acc[s] = x if x > 0.0 else 0.0
        e[4] -= m

    def py_on_depth(self, book: BookLike, changes: Sequence[Change], ts_ns: int, uid: int) -> None:
        """A whole depth diff already applied to ``book``; changes: (side, price, qty_after, qty_before)."""
        p = self.params
        fvel = self._adv(G_VEL, ts_ns)
        fvac = self._adv(G_VAC, ts_ns)
        fpull = self._adv(G_PULL, ts_ns)
        fml = self._adv(G_MLOFI, ts_ns)
        flvl = self._adv(G_LEVEL, ts_ns)
        for s in (BID, ASK):
            self.vel_acc[s] = self.vel_acc[s] * fvel
            self.vac_acc[s] = self.vac_acc[s] * fvac
            self.pull_acc[s] = self.pull_acc[s] * fpull
        self.mlofi = self.mlofi * fml
        if self.have_top:
            self.mldepth_avg = self.mldepth_avg * fml + self.mldepth_cur * (1.0 - fml)
            self.level_avg = self.level_avg * flvl + self.level_cur * (1.0 - flvl)
        b, a = book.best(BID), book.best(ASK)
        mid = book.mid
        bt = 0 if (mid != mid or mid <= 0) else int(mid * p.band_bps * 1e-4)
        thresh = p.pull_k * self.level_avg if self.have_top else -1.0
        tol = p.match_tol_ns
        while self.tring and (self.tring[0][3] == 0 or self.tring[0][2] < ts_ns - tol):
            self.tring.popleft()
        for side, price, qty, old in changes:
            if qty >= old:
                continue
            best = b if side == BID else a
            if best is None:
                in_band = in_pull = True
            elif side == BID:
                in_band, in_pull = price >= best[0] - bt, price >= best[0] - p.pull_ticks
            else:
                in_band, in_pull = price <= best[0] + bt, price <= best[0] + p.pull_ticks
            in_pull = in_pull and thresh > 0.0 and float(old) >= thresh
            if in_band or in_pull:
                self._decrease(side, price, old, qty, ts_ns, in_band, in_pull)
        for s, best in ((BID, b), (ASK, a)):
            d = 0 if best is None else book.depth(s, bt)
            if self.have_depth:
                self.vel_acc[s] = self.vel_acc[s] + float(d - self.band_d[s])
            self.band_d[s] = d
        self.have_depth = True
        self._top(book)
        if uid > self.touch_uid and b is not None and a is not None:
            self.touch_uid = uid
            self._touch(b[0], b[1], a[0], a[1], ts_ns)

    def _decrease(self, side: int, price: int, old: int, qty: int, ts: int, in_band: bool,
                  in_pull: bool) -> None:
        u = (old - qty) - self._match_trades(side, price, old - qty, ts)
        if u <= 0:
            return
        is_pull = in_pull and float(u) >= self.params.pull_frac * float(old)
        if in_band:
            self.vac_acc[side] = self.vac_acc[side] + float(u)
        if is_pull:
            self.pull_acc[side] = self.pull_acc[side] + float(u)
        if in_band or is_pull:
            self.dring.append([side, price, ts, self.clock[G_VAC], u, old, int(in_band), int(is_pull)])

    def _match_trades(self, side: int, price: int, want: int, ts: int) -> int:
        tol = self.params.match_tol_ns
        got = 0
        for e in self.tring:
            if e[1] == price and e[0] == side and e[3] > 0 and e[2] - ts <= tol and ts - e[2] <= tol:
                x = want - got
                if e[3] < x:
                    x = e[3]
                e[3] -= x
                got += x
                if got == want:
                    break
        return got

    def _top(self, book: BookLike) -> None:
        n = self.params.mlofi_levels
        cur = [book.top(BID, n), book.top(ASK, n)]
        if self.have_top:
            e = 0
            for (pb, qb), (pb0, qb0) in zip(cur[BID], self.prev_top[BID], strict=False):
                e += _ofi_bid(pb, qb, pb0, qb0)
            for (pa, qa), (pa0, qa0) in zip(cur[ASK], self.prev_top[ASK], strict=False):
                e -= _ofi_ask(pa, qa, pa0, qa0)
            self.mlofi = self.mlofi + float(e)
        sb = sum(q for _, q in cur[BID])
        sa = sum(q for _, q in cur[ASK])
        cnt = len(cur[BID]) + len(cur[ASK])
        self.mldepth_cur = 0.5 * (float(sb) + float(sa))
        self.level_cur = float(sb + sa) / float(cnt) if cnt > 0 else 0.0
        if not self.have_top:
            self.mldepth_avg = self.mldepth_cur
            self.level_avg = self.level_cur
            self.have_top = True
        self.prev_top = cur

    def py_reset_depth(self) -> None:
        """Forget depth-derived history (call after the book is rebuilt from a snapshot)."""
        self.have_depth = False
        self.have_top = False
        self.tring.clear()

    reset_depth = py_reset_depth

    # ---- reads ---------------------------------------------------------------------------------------------

    def snapshot(self, now_ns: int) -> dict[str, float]:
        """Every signal by name, decayed to ``now_ns`` (state untouched)."""
        return self._view(now_ns)

    def py_score(self, side: int, now_ns: int) -> float:
        """Entry score for side 0 (buy) or 1 (sell) at ``now_ns``, see :func:`score_from_view`."""
        return score_from_view(self._view(now_ns), self.params, side)

    def _view(self, now: int) -> dict[str, float]:
        v: dict[str, float] = {}
        f = self._fac(G_OFI, now)
        v["ofi"] = self.ofi * f
        v["touch_depth_avg"] = self.tdepth_avg * f + self.tdepth_cur * (1.0 - f)
        v["ofi_norm"] = v["ofi"] / v["touch_depth_avg"] if v["touch_depth_avg"] > 0.0 else 0.0
        f = self._fac(G_MLOFI, now)
        v["mlofi"] = self.mlofi * f
        v["mlofi_depth_avg"] = self.mldepth_avg * f + self.mldepth_cur * (1.0 - f)
        v["mlofi_norm"] = v["mlofi"] / v["mlofi_depth_avg"] if v["mlofi_depth_avg"] > 0.0 else 0.0
        f = self._fac(G_LEVEL, now)
        v["level_size_avg"] = self.level_avg * f + self.level_cur * (1.0 - f)
        fvel = self._fac(G_VEL, now)
        fvac = self._fac(G_VAC, now)
        fpull = self._fac(G_PULL, now)
        fabs = self._fac(G_ABS, now)
        for s, nm in ((BID, "bid"), (ASK, "ask")):
            band = float(self.band_d[s])
            v["depth_vel_" + nm] = self.vel_acc[s] * fvel * self.vel_rate
            v["band_depth_" + nm] = band
            v["vacuum_acc_" + nm] = self.vac_acc[s] * fvac
            v["vacuum_" + nm] = _ratio(v["vacuum_acc_" + nm], band)
            v["pulled_acc_" + nm] = self.pull_acc[s] * fpull
            v["pulled_" + nm] = _ratio(v["pulled_acc_" + nm], band)
            v["absorbed_" + nm] = self.abs_vol[s] * fabs
            peak = float(self.abs_peak[s])
            v["absorb_peak_" + nm] = peak
            v["absorption_" + nm] = v["absorbed_" + nm] / peak if peak > 0.0 else 0.0
        live = self.run_sign != 0 and now - self.run_last_ts <= self.params.run_gap_ns
        v["run_count"] = float(self.run_sign * self.run_count) if live else 0.0
        v["run_volume"] = float(self.run_sign * self.run_vol) if live else 0.0
        f1 = self._fac(G_FLOW_F, now)
        f5 = self._fac(G_FLOW_S, now)
        v["buy_vol_fast"], v["sell_vol_fast"] = self.flow[0] * f1, self.flow[1] * f1
        v["buy_vol_slow"], v["sell_vol_slow"] = self.flow[2] * f5, self.flow[3] * f5
        v["tape_imb_fast"] = _imbalance(v["buy_vol_fast"], v["sell_vol_fast"])
        v["tape_imb_slow"] = _imbalance(v["buy_vol_slow"], v["sell_vol_slow"])
        f = self._fac(G_SPREAD, now)
        v["spread"] = self.spread_cur
        v["spread_avg"] = self.spread_avg * f + self.spread_cur * (1.0 - f)
        mid = 0.5 * (float(self.t_bb) + float(self.t_ba))
        v["micro_tilt"] = self.mp_cur - mid if self.have_touch else 0.0
        v["micro_drift"] = self.micro_acc * self._fac(G_MICRO, now) * self.drift_rate
        return v


def _imbalance(b: float, s: float) -> float:
    t = b + s
    return (b - s) / t if t > 0.0 else 0.0


def apply_diff(book: Any, levels: Iterable[tuple[int, int, int]]) -> list[Change]:
    """Apply (side, price, qty) updates to ``book`` in order; returns the changes with old quantities."""
    return [(side, price, qty, book.set(side, price, qty)) for side, price, qty in levels]
