# cython: language_level=3
# distutils: extra_compile_args = -ffp-contract=off
"""Micro-timing signal kernels: event-driven state decayed in exchange time, read through ``score()``.

The definitions (formulas, units, time constants, the trade/depth reconciliation) are in the docstring of
``engine/signals_ref.py``, whose ``RefTiming`` is this kernel's operation-for-operation pure-Python mirror: both
must agree bit for bit, so change them together. Summary (snapshot names):

1. ``ofi``/``ofi_norm``: Cont-Kukanov-Stoikov touch OFI, decayed sum in lots (tau_ofi) and over the
   time-weighted average touch depth; ``mlofi``/``mlofi_norm``: multi-level OFI over the top N levels per diff.
2. ``depth_vel_*``: rate of change of depth within ``band_bps`` of the touch, lots/s (tau_vel).
3. ``vacuum_*``: unexplained in-band depth decreases V (lots, tau_vac) as V / (V + band depth).
4. ``pulled_*``: unexplained removals of large levels P (lots, tau_pull) as P / (P + band depth).
5. ``absorption_*``: volume traded at the current touch price (tau_abs) / peak size displayed there.
6. ``run_count``/``run_volume`` (signed current same-aggressor run), ``tape_imb_fast/slow`` = (B-S)/(B+S).
7. ``spread``/``spread_avg`` (ticks, tau_spread), ``micro_tilt`` (microprice - mid, ticks), ``micro_drift``
   (ticks/s, tau_micro).

Every decayed quantity belongs to one decay group (own tau and clock); an event decays only the groups it
touches, each once (one ``exp`` per group per event), with dt clamped at 0. The event paths are nogil-able C:
no Python objects, no allocation; all state lives in fixed arrays and rings inside the object.

Bit-for-bit agreement with the Python mirror needs IEEE double arithmetic exactly as written: hence
``-ffp-contract=off`` above (with ``-march=native`` GCC would otherwise fuse ``a*b + c`` into FMAs); never
build this module with ``-ffast-math``.
"""
from libc.math cimport exp, tanh, fabs, INFINITY
from libc.stdint cimport int64_t
from libc.stdlib cimport malloc, free
from ext.book cimport Book, LevelChange, BID, ASK, NO_BID, NO_ASK

cdef extern from "<stdint.h>":
    const int64_t INT64_MIN

cdef enum:
    G_OFI = 0
    G_SPREAD = 1
    G_MICRO = 2
    G_MLOFI = 3
    G_VEL = 4
    G_VAC = 5
    G_PULL = 6
    G_LEVEL = 7
    G_ABS = 8
    G_FLOW_F = 9
    G_FLOW_S = 10
    RMASK = RING - 1
    FULL_EVERY = 64          # band depth is recomputed from the book at least every this many diffs
    EDGE_MAX = 64            # widest band shift (ticks) still updated incrementally


cdef inline int64_t _absdiff(int64_t a, int64_t b) noexcept nogil:
    return a - b if a >= b else b - a


cdef inline int64_t _strip(Book book, int side, int64_t lo, int64_t hi) noexcept nogil:
    """Resting lots of one side at prices lo..hi (inclusive)."""
    cdef int64_t p, total = 0
    for p in range(lo, hi + 1):
        total += book.level_qty(side, p)
    return total


cdef inline double _softsign(double x) noexcept nogil:
    return x / (1.0 + fabs(x))


cdef inline double _ratio(double acc, double depth) noexcept nogil:
    cdef double s = acc + depth
    return acc / s if s > 0.0 else 0.0


cdef inline double _imbalance(double b, double s) noexcept nogil:
    cdef double t = b + s
    return (b - s) / t if t > 0.0 else 0.0


cdef inline int64_t _ofi_bid(int64_t p, int64_t q, int64_t p0, int64_t q0) noexcept nogil:
    return (q if p >= p0 else 0) - (q0 if p <= p0 else 0)


cdef inline int64_t _ofi_ask(int64_t p, int64_t q, int64_t p0, int64_t q0) noexcept nogil:
    return (q if p <= p0 else 0) - (q0 if p >= p0 else 0)


cdef inline double _microprice(int64_t bb, int64_t bq, int64_t ba, int64_t aq) noexcept nogil:
    cdef double bqd = <double>bq, aqd = <double>aq
    if bq + aq <= 0:
        return 0.5 * (<double>bb + <double>ba)
    return (<double>bb * aqd + <double>ba * bqd) / (bqd + aqd)


cdef class Timing:
    """Micro-timing signals for one instrument. ``Timing(params=None, **overrides)``.

    ``params`` is an ``engine.signals_ref.TimingParams`` (defaults documented there); keyword arguments override
    its fields. Feed it with the cdef ``on_depth``/``on_ticker``/``on_trade`` (or their ``py_`` twins) and read
    ``score(side, now_ns)`` or ``snapshot(now_ns)``.
    """

    def __init__(self, params=None, **overrides):
        cdef int g
        from engine.signals_ref import make_params
        p = make_params(params, **overrides)
        self.params = p
        taus = p.taus()
        for g in range(NGROUPS):
            self.cfg.inv_tau[g] = 1.0 / <double>taus[g]
            self.clock[g] = 0
        self.cfg.vel_rate = 1e9 / <double>p.tau_vel_ns
        self.cfg.drift_rate = 1e9 / <double>p.tau_micro_ns
        self.cfg.band_bps = p.band_bps
        self.cfg.pull_k = p.pull_k
        self.cfg.pull_frac = p.pull_frac
        self.cfg.pull_ticks = p.pull_ticks
        self.cfg.match_tol_ns = p.match_tol_ns
        self.cfg.run_gap_ns = p.run_gap_ns
        self.cfg.n_levels = p.mlofi_levels
        self.cfg.w_ofi, self.cfg.w_mlofi, self.cfg.w_vel = p.w_ofi, p.w_mlofi, p.w_vel
        self.cfg.w_vac, self.cfg.w_pull, self.cfg.w_abs = p.w_vac, p.w_pull, p.w_abs
        self.cfg.w_imb, self.cfg.w_run, self.cfg.w_tilt = p.w_imb, p.w_run, p.w_tilt
        self.cfg.w_drift, self.cfg.w_spread = p.w_drift, p.w_spread
        self.cfg.vel_scale_s, self.cfg.run_scale = p.vel_scale_s, p.run_scale
        self.cfg.drift_horizon_s, self.cfg.gain = p.drift_horizon_s, p.gain
        self.touch_uid = INT64_MIN
        self.abs_px[BID] = NO_BID
        self.abs_px[ASK] = NO_ASK
        # every other field starts at zero (cdef class memory is zeroed)

    # ---- decay -------------------------------------------------------------------------------------------------

    cdef double _adv(self, int g, int64_t ts) noexcept nogil:
        """Decay factor moving group ``g``'s clock forward to ``ts`` (1.0 when ``ts`` is not later)."""
        cdef int64_t dt = ts - self.clock[g]
        if dt <= 0:
            return 1.0
        self.clock[g] = ts
        return exp(-<double>dt * self.cfg.inv_tau[g])

    cdef double _fac(self, int g, int64_t now) noexcept nogil:
        cdef int64_t dt = now - self.clock[g]
        if dt <= 0:
            return 1.0
        return exp(-<double>dt * self.cfg.inv_tau[g])

    # ---- touch -------------------------------------------------------------------------------------------------

    cdef void on_ticker(self, int64_t bid_px, int64_t bid_qty, int64_t ask_px, int64_t ask_qty,
                        int64_t ts_ns, int64_t uid) noexcept nogil:
        """A bookTicker (ticks, lots); ignored unless ``uid`` is newer than the last touch update."""
        if uid <= self.touch_uid:
            return
        self.touch_uid = uid
        self._touch(bid_px, bid_qty, ask_px, ask_qty, ts_ns)

    cdef void _touch(self, int64_t bb, int64_t bq, int64_t ba, int64_t aq, int64_t ts) noexcept nogil:
        """Touch change: OFI e (lots), touch depth / spread averages, microprice drift, absorption reset."""
        cdef double mp, sp, td, f, fs, fm
        cdef int64_t e
        if self.have_touch and bb == self.t_bb and bq == self.t_bq and ba == self.t_ba and aq == self.t_aq:
            return
        mp = _microprice(bb, bq, ba, aq)
        sp = <double>(ba - bb)
        td = 0.5 * (<double>bq + <double>aq)
        f = self._adv(G_OFI, ts)
        fs = self._adv(G_SPREAD, ts)
        fm = self._adv(G_MICRO, ts)
        if self.have_touch:
            e = _ofi_bid(bb, bq, self.t_bb, self.t_bq) - _ofi_ask(ba, aq, self.t_ba, self.t_aq)
            self.ofi = self.ofi * f + <double>e
            self.tdepth_avg = self.tdepth_avg * f + self.tdepth_cur * (1.0 - f)
            self.spread_avg = self.spread_avg * fs + self.spread_cur * (1.0 - fs)
            self.micro_acc = self.micro_acc * fm + (mp - self.mp_cur)
        else:
            self.tdepth_avg = td
            self.spread_avg = sp
        self.tdepth_cur = td
        self.spread_cur = sp
        self.mp_cur = mp
        _abs_touch(self, BID, bb, bq)
        _abs_touch(self, ASK, ba, aq)
        self.t_bb = bb
        self.t_bq = bq
        self.t_ba = ba
        self.t_aq = aq
        self.have_touch = True

    # ---- trades ------------------------------------------------------------------------------------------------

    cdef void on_trade(self, int64_t price, int64_t qty, bint buyer_is_maker, int64_t ts_ns) noexcept nogil:
        """One print (ticks, lots): tape flows and run, absorption at the touch, depth reconciliation."""
        cdef int cs = BID if buyer_is_maker else ASK
        cdef int sign = -1 if buyer_is_maker else 1
        cdef int k = 1 if buyer_is_maker else 0
        cdef double q = <double>qty
        cdef double f1, f5, fa
        if qty <= 0:
            return
        f1 = self._adv(G_FLOW_F, ts_ns)
        f5 = self._adv(G_FLOW_S, ts_ns)
        self.flow[0] = self.flow[0] * f1
        self.flow[1] = self.flow[1] * f1
        self.flow[2] = self.flow[2] * f5
        self.flow[3] = self.flow[3] * f5
        self.flow[k] = self.flow[k] + q
        self.flow[k + 2] = self.flow[k + 2] + q
        if sign == self.run_sign and ts_ns - self.run_last_ts <= self.cfg.run_gap_ns:
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

    cdef void _reconcile_trade(self, int side, int64_t price, int64_t qty, int64_t ts) noexcept nogil:
        """Explain remembered decreases at (side, price) with this trade; keep the rest for later diffs."""
        cdef int64_t tol = self.cfg.match_tol_ns, left = qty, m
        cdef int k
        cdef DecRec* e
        cdef TrdRec* t
        while self.d_n > 0:
            e = &self.dring[self.d_head]
            if e.left == 0 or e.ts < ts - tol:
                self.d_head = (self.d_head + 1) & RMASK
                self.d_n -= 1
            else:
                break
        for k in range(self.d_n):
            e = &self.dring[(self.d_head + k) & RMASK]
            if e.price == price and e.side == side and e.left > 0 and e.ts - ts <= tol and ts - e.ts <= tol:
                m = left if left < e.left else e.left
                self._unexplain(e, m)
                left -= m
                if left == 0:
                    break
        if left > 0:
            if self.t_n == RING:
                self.t_head = (self.t_head + 1) & RMASK
                self.t_n -= 1
            t = &self.tring[(self.t_head + self.t_n) & RMASK]
            self.t_n += 1
            t.side = side
            t.price = price
            t.ts = ts
            t.left = left

    cdef void _unexplain(self, DecRec* e, int64_t m) noexcept nogil:
        """A trade explains ``m`` lots of decrease ``e``: remove them from the sums as decayed since added."""
        cdef int s = e.side
        cdef int64_t dt, rest
        cdef double f, x
        if e.in_band:
            dt = self.clock[G_VAC] - e.t_add
            f = exp(-<double>dt * self.cfg.inv_tau[G_VAC]) if dt > 0 else 1.0
            x = self.vac_acc[s] - <double>m * f
            self.vac_acc[s] = x if x > 0.0 else 0.0
        if e.is_pull:
            dt = self.clock[G_PULL] - e.t_add
            f = exp(-<double>dt * self.cfg.inv_tau[G_PULL]) if dt > 0 else 1.0
            rest = e.left - m
            if <double>rest >= self.cfg.pull_frac * <double>e.old:
                x = self.pull_acc[s] - <double>m * f
            else:
                x = self.pull_acc[s] - <double>e.left * f
                e.is_pull = False
            self.pull_acc[s] = x if x > 0.0 else 0.0
        e.left -= m

    # ---- depth -------------------------------------------------------------------------------------------------

    cdef void on_depth(self, Book book, const LevelChange* ch, int n, int64_t ts_ns, int64_t uid) noexcept nogil:
        """A whole depth diff already applied to ``book``: vacuum/pull, band depth velocity, MLOFI, touch."""
        cdef double fvel = self._adv(G_VEL, ts_ns)
        cdef double fvac = self._adv(G_VAC, ts_ns)
        cdef double fpull = self._adv(G_PULL, ts_ns)
        cdef double fml = self._adv(G_MLOFI, ts_ns)
        cdef double flvl = self._adv(G_LEVEL, ts_ns)
        cdef double thresh
        cdef int64_t bb = book.best_bid, ba = book.best_ask, bt, tol = self.cfg.match_tol_ns, p, dq
        cdef int64_t lo_band, hi_band, lo_pull, hi_pull, delta_b = 0, delta_a = 0
        cdef int64_t ob_lo = 1, ob_hi = 0, oa_lo = 1, oa_hi = 0      # old band ranges (empty unless usable)
        cdef bint inc, in_band, in_pull
        cdef int k, s
        cdef const LevelChange* c
        for s in range(2):
            self.vel_acc[s] = self.vel_acc[s] * fvel
            self.vac_acc[s] = self.vac_acc[s] * fvac
            self.pull_acc[s] = self.pull_acc[s] * fpull
        self.mlofi = self.mlofi * fml
        if self.have_top:
            self.mldepth_avg = self.mldepth_avg * fml + self.mldepth_cur * (1.0 - fml)
            self.level_avg = self.level_avg * flvl + self.level_cur * (1.0 - flvl)
        bt = book.bps_to_ticks(self.cfg.band_bps)
        thresh = self.cfg.pull_k * self.level_avg if self.have_top else -1.0
        if not thresh > 0.0:
            thresh = INFINITY                   # no baseline yet: nothing counts as a large level
        while self.t_n > 0 and (self.tring[self.t_head].left == 0 or self.tring[self.t_head].ts < ts_ns - tol):
            self.t_head = (self.t_head + 1) & RMASK
            self.t_n -= 1
        lo_band = NO_BID if bb == NO_BID else bb - bt
        lo_pull = NO_BID if bb == NO_BID else bb - self.cfg.pull_ticks
        hi_band = NO_ASK if ba == NO_ASK else ba + bt
        hi_pull = NO_ASK if ba == NO_ASK else ba + self.cfg.pull_ticks
        self.since_full += 1
        inc = self.have_depth and self.since_full < FULL_EVERY
        if inc and self.d_bb != NO_BID and bb != NO_BID:
            ob_lo = self.d_bb - self.band_ticks
            ob_hi = self.d_bb
        if inc and self.d_ba != NO_ASK and ba != NO_ASK:
            oa_lo = self.d_ba
            oa_hi = self.d_ba + self.band_ticks
        for k in range(n):
            c = &ch[k]
            p = c.price
            dq = c.qty - c.old_qty
            if c.side == BID:
                delta_b += dq * ((p >= ob_lo) & (p <= ob_hi))
                if dq >= 0:
                    continue
                in_band = p >= lo_band
                in_pull = p >= lo_pull
            else:
                delta_a += dq * ((p >= oa_lo) & (p <= oa_hi))
                if dq >= 0:
                    continue
                in_band = p <= hi_band
                in_pull = p <= hi_pull
            in_pull = in_pull & (<double>c.old_qty >= thresh)
            if in_band | in_pull:
                self._decrease(c.side, p, c.old_qty, c.qty, ts_ns, in_band, in_pull)
        self._band(book, BID, bb, bt, ob_lo, ob_hi, delta_b)
        self._band(book, ASK, ba, bt, oa_lo, oa_hi, delta_a)
        if not inc:
            self.since_full = 0
        self.have_depth = True
        self.band_ticks = bt
        self.d_bb = bb
        self.d_ba = ba
        self._top(book)
        if uid > self.touch_uid and bb != NO_BID and ba != NO_ASK:
            self.touch_uid = uid
            self._touch(bb, self.prev_q[0], ba, self.prev_q[MAX_LEVELS], ts_ns)

    cdef void _band(self, Book book, int side, int64_t best, int64_t bt, int64_t lo, int64_t hi,
                    int64_t delta) noexcept nogil:
        """New band depth of one side and its velocity term.

        Incremental when the old band range [lo, hi] is usable (lo <= hi): its depth after the diff is
        ``old + delta`` (the diff's changes inside it), and moving to the new range [lo2, hi2] adds the lots in
        the strips between the two ranges' ends (for any two ranges: S(lo2, hi2) - S(lo, hi) is the sum over
        [lo2, lo) or minus [lo, lo2), plus (hi, hi2] or minus (hi2, hi]). Falls back to ``depth_ticks`` when
        the strips are wide, and at least every FULL_EVERY diffs (self-healing if the book was edited behind
        our back; ``reset_depth()`` after a resync does the same at once).
        """
        cdef int64_t lo2, hi2, d
        if best == NO_BID or best == NO_ASK:
            d = 0
        else:
            lo2 = best - bt if side == BID else best
            hi2 = best if side == BID else best + bt
            if lo <= hi and _absdiff(lo2, lo) + _absdiff(hi2, hi) <= EDGE_MAX:
                d = self.band_d[side] + delta
                d += _strip(book, side, lo2, lo - 1) if lo2 < lo else -_strip(book, side, lo, lo2 - 1)
                d += _strip(book, side, hi + 1, hi2) if hi2 > hi else -_strip(book, side, hi2 + 1, hi)
            else:
                d = book.depth_ticks(side, bt)
        if self.have_depth:
            self.vel_acc[side] = self.vel_acc[side] + <double>(d - self.band_d[side])
        self.band_d[side] = d

    cdef void _decrease(self, int side, int64_t price, int64_t old, int64_t qty, int64_t ts,
                        bint in_band, bint in_pull) noexcept nogil:
        """A level fell from ``old`` to ``qty``: the part no trade explains feeds vacuum / pulled sums."""
        cdef int64_t u = (old - qty) - self._match_trades(side, price, old - qty, ts)
        cdef bint is_pull
        cdef DecRec* e
        if u <= 0:
            return
        is_pull = in_pull and <double>u >= self.cfg.pull_frac * <double>old
        if in_band:
            self.vac_acc[side] = self.vac_acc[side] + <double>u
        if is_pull:
            self.pull_acc[side] = self.pull_acc[side] + <double>u
        if in_band or is_pull:
            if self.d_n == RING:
                self.d_head = (self.d_head + 1) & RMASK
                self.d_n -= 1
            e = &self.dring[(self.d_head + self.d_n) & RMASK]
            self.d_n += 1
            e.side = side
            e.price = price
            e.ts = ts
            e.t_add = self.clock[G_VAC]
            e.left = u
            e.old = old
            e.in_band = in_band
            e.is_pull = is_pull

    cdef int64_t _match_trades(self, int side, int64_t price, int64_t want, int64_t ts) noexcept nogil:
        """Take up to ``want`` lots of unmatched trade volume at (side, price) within the tolerance."""
        cdef int64_t tol = self.cfg.match_tol_ns, got = 0, x
        cdef int k
        cdef TrdRec* t
        for k in range(self.t_n):
            t = &self.tring[(self.t_head + k) & RMASK]
            if t.price == price and t.side == side and t.left > 0 and t.ts - ts <= tol and ts - t.ts <= tol:
                x = want - got
                if t.left < x:
                    x = t.left
                t.left -= x
                got += x
                if got == want:
                    break
        return got

    cdef void _top(self, Book book) noexcept nogil:
        """Multi-level OFI against the previous diff's top N; level-size and top-N depth baselines."""
        cdef int nl = self.cfg.n_levels, nb, na, i
        cdef int64_t[MAX_LEVELS] px_b, q_b, px_a, q_a
        cdef int64_t e = 0, sb = 0, sa = 0
        nb = book.top_levels(BID, nl, px_b, q_b)
        na = book.top_levels(ASK, nl, px_a, q_a)
        if self.have_top:
            for i in range(nb if nb < self.n_prev[0] else self.n_prev[0]):
                e += _ofi_bid(px_b[i], q_b[i], self.prev_px[i], self.prev_q[i])
            for i in range(na if na < self.n_prev[1] else self.n_prev[1]):
                e -= _ofi_ask(px_a[i], q_a[i], self.prev_px[MAX_LEVELS + i], self.prev_q[MAX_LEVELS + i])
            self.mlofi = self.mlofi + <double>e
        for i in range(nb):
            sb += q_b[i]
            self.prev_px[i] = px_b[i]
            self.prev_q[i] = q_b[i]
        for i in range(na):
            sa += q_a[i]
            self.prev_px[MAX_LEVELS + i] = px_a[i]
            self.prev_q[MAX_LEVELS + i] = q_a[i]
        self.n_prev[0] = nb
        self.n_prev[1] = na
        self.mldepth_cur = 0.5 * (<double>sb + <double>sa)
        self.level_cur = <double>(sb + sa) / <double>(nb + na) if nb + na > 0 else 0.0
        if not self.have_top:
            self.mldepth_avg = self.mldepth_cur
            self.level_avg = self.level_cur
            self.have_top = True

    cdef void reset_depth(self) noexcept nogil:
        """Forget depth-derived history (call after the book is rebuilt from a snapshot)."""
        self.have_depth = False
        self.have_top = False
        self.t_n = 0

    # ---- reads -------------------------------------------------------------------------------------------------

    cdef void view(self, int64_t now, View* v) noexcept nogil:
        """Every signal decayed to ``now`` into ``v`` (state untouched)."""
        cdef double f, fvel, fvac, fpull, fabs_, peak
        cdef bint live
        cdef int s
        f = self._fac(G_OFI, now)
        v.ofi = self.ofi * f
        v.tdepth_avg = self.tdepth_avg * f + self.tdepth_cur * (1.0 - f)
        v.ofi_norm = v.ofi / v.tdepth_avg if v.tdepth_avg > 0.0 else 0.0
        f = self._fac(G_MLOFI, now)
        v.mlofi = self.mlofi * f
        v.mldepth_avg = self.mldepth_avg * f + self.mldepth_cur * (1.0 - f)
        v.mlofi_norm = v.mlofi / v.mldepth_avg if v.mldepth_avg > 0.0 else 0.0
        f = self._fac(G_LEVEL, now)
        v.level_avg = self.level_avg * f + self.level_cur * (1.0 - f)
        fvel = self._fac(G_VEL, now)
        fvac = self._fac(G_VAC, now)
        fpull = self._fac(G_PULL, now)
        fabs_ = self._fac(G_ABS, now)
        for s in range(2):
            v.band[s] = <double>self.band_d[s]
            v.vel[s] = self.vel_acc[s] * fvel * self.cfg.vel_rate
            v.vac_acc[s] = self.vac_acc[s] * fvac
            v.vac[s] = _ratio(v.vac_acc[s], v.band[s])
            v.pull_acc[s] = self.pull_acc[s] * fpull
            v.pull[s] = _ratio(v.pull_acc[s], v.band[s])
            v.abs_vol[s] = self.abs_vol[s] * fabs_
            peak = <double>self.abs_peak[s]
            v.abs_peak[s] = peak
            v.absorb[s] = v.abs_vol[s] / peak if peak > 0.0 else 0.0
        live = self.run_sign != 0 and now - self.run_last_ts <= self.cfg.run_gap_ns
        v.run_count = <double>(self.run_sign * self.run_count) if live else 0.0
        v.run_vol = <double>(self.run_sign * self.run_vol) if live else 0.0
        f = self._fac(G_FLOW_F, now)
        v.buy_f = self.flow[0] * f
        v.sell_f = self.flow[1] * f
        f = self._fac(G_FLOW_S, now)
        v.buy_s = self.flow[2] * f
        v.sell_s = self.flow[3] * f
        v.imb_f = _imbalance(v.buy_f, v.sell_f)
        v.imb_s = _imbalance(v.buy_s, v.sell_s)
        f = self._fac(G_SPREAD, now)
        v.spread = self.spread_cur
        v.spread_avg = self.spread_avg * f + self.spread_cur * (1.0 - f)
        v.tilt = self.mp_cur - 0.5 * (<double>self.t_bb + <double>self.t_ba) if self.have_touch else 0.0
        v.drift = self.micro_acc * self._fac(G_MICRO, now) * self.cfg.drift_rate

    cdef double score(self, int side, int64_t now_ns) noexcept nogil:
        """Entry score for side 0 buy / 1 sell, about [-1, 1]: see ``engine.signals_ref.score_from_view``."""
        cdef View v
        self.view(now_ns, &v)
        return _score(&self.cfg, &v, side)

    # ---- Python API --------------------------------------------------------------------------------------------

    def py_on_depth(self, Book book, changes, int64_t ts_ns, int64_t uid) -> None:
        """``changes``: [(side, price, qty_after, qty_before)] of a diff already applied to ``book``."""
        cdef Py_ssize_t k, n = len(changes)
        cdef LevelChange* ch = <LevelChange*>malloc((n if n > 0 else 1) * sizeof(LevelChange))
        if ch == NULL:
            raise MemoryError()
        try:
            for k in range(n):
                side, price, qty, old = changes[k]
                if side != BID and side != ASK:
                    raise ValueError(f"side must be 0 or 1, got {side}")
                ch[k].side = side
                ch[k].price = price
                ch[k].qty = qty
                ch[k].old_qty = old
            self.on_depth(book, ch, <int>n, ts_ns, uid)
        finally:
            free(ch)

    def py_on_ticker(self, int64_t bid_px, int64_t bid_qty, int64_t ask_px, int64_t ask_qty,
                     int64_t ts_ns, int64_t uid) -> None:
        self.on_ticker(bid_px, bid_qty, ask_px, ask_qty, ts_ns, uid)

    def py_on_trade(self, int64_t price, int64_t qty, bint buyer_is_maker, int64_t ts_ns) -> None:
        self.on_trade(price, qty, buyer_is_maker, ts_ns)

    def py_score(self, int side, int64_t now_ns) -> float:
        if side != BID and side != ASK:
            raise ValueError(f"side must be 0 (buy) or 1 (sell), got {side}")
        return self.score(side, now_ns)

    def py_reset_depth(self) -> None:
        self.reset_depth()

    def snapshot(self, int64_t now_ns) -> dict:
        """Every signal by name, decayed to ``now_ns`` (names and meanings: engine.signals_ref)."""
        cdef View v
        self.view(now_ns, &v)
        return {
            "ofi": v.ofi, "ofi_norm": v.ofi_norm, "touch_depth_avg": v.tdepth_avg,
            "mlofi": v.mlofi, "mlofi_norm": v.mlofi_norm, "mlofi_depth_avg": v.mldepth_avg,
            "level_size_avg": v.level_avg,
            "depth_vel_bid": v.vel[0], "depth_vel_ask": v.vel[1],
            "band_depth_bid": v.band[0], "band_depth_ask": v.band[1],
            "vacuum_acc_bid": v.vac_acc[0], "vacuum_acc_ask": v.vac_acc[1],
            "vacuum_bid": v.vac[0], "vacuum_ask": v.vac[1],
            "pulled_acc_bid": v.pull_acc[0], "pulled_acc_ask": v.pull_acc[1],
            "pulled_bid": v.pull[0], "pulled_ask": v.pull[1],
            "absorbed_bid": v.abs_vol[0], "absorbed_ask": v.abs_vol[1],
            "absorb_peak_bid": v.abs_peak[0], "absorb_peak_ask": v.abs_peak[1],
            "absorption_bid": v.absorb[0], "absorption_ask": v.absorb[1],
            "run_count": v.run_count, "run_volume": v.run_vol,
            "buy_vol_fast": v.buy_f, "sell_vol_fast": v.sell_f,
            "buy_vol_slow": v.buy_s, "sell_vol_slow": v.sell_s,
            "tape_imb_fast": v.imb_f, "tape_imb_slow": v.imb_s,
            "spread": v.spread, "spread_avg": v.spread_avg,
            "micro_tilt": v.tilt, "micro_drift": v.drift,
        }

    @property
    def touch_uid_last(self) -> int:
        """uid of the last touch update accepted (INT64_MIN before any)."""
        return self.touch_uid


cdef inline void _abs_touch(Timing t, int side, int64_t px, int64_t qty) noexcept nogil:
    """Absorption: a new touch price restarts the tally; the same price keeps its peak displayed size."""
    if px != t.abs_px[side]:
        t.abs_px[side] = px
        t.abs_peak[side] = qty
        t.abs_vol[side] = 0.0
    elif qty > t.abs_peak[side]:
        t.abs_peak[side] = qty


cdef double _score(const Cfg* p, const View* v, int side) noexcept nogil:
    """Weighted buy-oriented features, mirrored for sell, plus the side-neutral spread term; tanh squashed.

    Mirror of ``engine.signals_ref.score_from_view`` (weights and features documented there).
    """
    cdef double x, z, a, b, sa, d
    x = _softsign(v.ofi_norm)
    z = p.w_ofi * x
    x = _softsign(v.mlofi_norm)
    z = z + p.w_mlofi * x
    x = _softsign((v.vel[0] - v.vel[1]) * p.vel_scale_s / (v.band[0] + v.band[1] + 1.0))
    z = z + p.w_vel * x
    x = v.vac[1] - v.vac[0]
    z = z + p.w_vac * x
    x = v.pull[1] - v.pull[0]
    z = z + p.w_pull * x
    a = v.absorb[0]
    b = v.absorb[1]
    x = a / (1.0 + a) - b / (1.0 + b)
    z = z + p.w_abs * x
    x = 0.5 * (v.imb_f + v.imb_s)
    z = z + p.w_imb * x
    x = _softsign(v.run_count / p.run_scale)
    z = z + p.w_run * x
    x = v.tilt / (0.5 * v.spread) if v.spread > 0.0 else 0.0
    z = z + p.w_tilt * x
    x = _softsign(v.drift * p.drift_horizon_s)
    z = z + p.w_drift * x
    sa = v.spread_avg if v.spread_avg > 1.0 else 1.0
    x = _softsign((v.spread - sa) / sa) if v.spread > 0.0 else 0.0
    d = 1.0 if side == BID else -1.0
    z = d * z - p.w_spread * x
    return tanh(p.gain * z)


cdef class BenchDriver:
    """Benchmark helper: replays prepared events through the cdef paths in a C loop (no Python per event).

    ``diffs``: list of diffs, each a list of (side, price, qty) applied to ``book`` in order; ``trades``: list of
    (price, qty, buyer_is_maker); ``tickers``: list of (bid_px, bid_qty, ask_px, ask_qty). Each kind cycles
    through its list; its exchange time advances by its own step (``dt_*`` ns) per event and uids increase.
    """
    cdef Timing t
    cdef Book book
    cdef LevelChange* ch
    cdef int* off
    cdef int n_diffs, i_diff
    cdef int64_t* trd
    cdef int n_trd, i_trd
    cdef int64_t* tkr
    cdef int n_tkr, i_tkr
    cdef readonly int64_t ts, uid
    cdef int64_t dt_depth, dt_trade, dt_ticker

    def __init__(self, Timing t, Book book, diffs, trades, tickers, int64_t dt_depth=100_000_000,
                 int64_t dt_trade=1_000_000, int64_t dt_ticker=1_000_000, int64_t ts0=1_000_000_000):
        cdef int k = 0, i
        self.t, self.book = t, book
        self.n_diffs, self.n_trd, self.n_tkr = len(diffs), len(trades), len(tickers)
        self.ch = <LevelChange*>malloc((sum(len(d) for d in diffs) + 1) * sizeof(LevelChange))
        self.off = <int*>malloc((self.n_diffs + 1) * sizeof(int))
        self.trd = <int64_t*>malloc((3 * self.n_trd + 1) * sizeof(int64_t))
        self.tkr = <int64_t*>malloc((4 * self.n_tkr + 1) * sizeof(int64_t))
        if not (self.ch and self.off and self.trd and self.tkr):
            raise MemoryError()
        for i, d in enumerate(diffs):
            self.off[i] = k
            for side, price, qty in d:
                self.ch[k].side, self.ch[k].price, self.ch[k].qty, self.ch[k].old_qty = side, price, qty, 0
                k += 1
        self.off[self.n_diffs] = k
        for i, tr in enumerate(trades):
            self.trd[3 * i], self.trd[3 * i + 1], self.trd[3 * i + 2] = tr[0], tr[1], 1 if tr[2] else 0
        for i, tk in enumerate(tickers):
            for k in range(4):
                self.tkr[4 * i + k] = tk[k]
        self.ts, self.uid = ts0, 1
        self.dt_depth, self.dt_trade, self.dt_ticker = dt_depth, dt_trade, dt_ticker

    def __dealloc__(self):
        free(self.ch)
        free(self.off)
        free(self.trd)
        free(self.tkr)

    def depth(self, int n, bint kernel=True) -> None:
        """Apply ``n`` diffs to the book; with ``kernel`` also call ``on_depth`` after each."""
        cdef int j, k, a, b
        with nogil:
            for j in range(n):
                a = self.off[self.i_diff]
                b = self.off[self.i_diff + 1]
                for k in range(a, b):
                    self.ch[k].old_qty = self.book.set_level(self.ch[k].side, self.ch[k].price, self.ch[k].qty)
                self.book.recenter_if_needed()
                self.ts += self.dt_depth
                self.uid += 1
                if kernel:
                    self.t.on_depth(self.book, &self.ch[a], b - a, self.ts, self.uid)
                self.i_diff = self.i_diff + 1 if self.i_diff + 1 < self.n_diffs else 0

    def trades(self, int n) -> None:
        cdef int j
        cdef int64_t* r
        with nogil:
            for j in range(n):
                r = &self.trd[3 * self.i_trd]
                self.ts += self.dt_trade
                self.t.on_trade(r[0], r[1], r[2] != 0, self.ts)
                self.i_trd = self.i_trd + 1 if self.i_trd + 1 < self.n_trd else 0

    def tickers(self, int n) -> None:
        cdef int j
        cdef int64_t* r
        with nogil:
            for j in range(n):
                r = &self.tkr[4 * self.i_tkr]
                self.ts += self.dt_ticker
                self.uid += 1
                self.t.on_ticker(r[0], r[1], r[2], r[3], self.ts, self.uid)
                self.i_tkr = self.i_tkr + 1 if self.i_tkr + 1 < self.n_tkr else 0

    def mixed(self, int rounds, int per_round=20) -> None:
        """``rounds`` x (one diff with on_depth, then ``per_round`` trades and ``per_round`` tickers)."""
        cdef int j
        for j in range(rounds):
            self.depth(1, True)
            self.trades(per_round)
            self.tickers(per_round)

    def score(self, int n, bint advance=True) -> float:
        """``n`` score() calls alternating sides; ``advance``: now moves 1 ms per call (every decay is live)."""
        cdef int j
        cdef double acc = 0.0
        cdef int64_t now = self.ts
        with nogil:
            for j in range(n):
                if advance:
                    now += 1_000_000
                acc += self.t.score(j & 1, now)
        return acc
