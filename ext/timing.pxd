# Micro-timing signal kernels: event-driven, exchange-time-decayed state the sniper reads through score().
cimport cython
from libc.stdint cimport int32_t, int64_t
from ext.book cimport Book, LevelChange

cdef enum:
    NGROUPS = 11         # decay groups (one clock and one time constant each), see timing.pyx
    MAX_LEVELS = 16      # most levels multi-level OFI can track
    RING = 64            # capacity of each reconciliation ring (power of two)

cdef struct Cfg:
    double inv_tau[NGROUPS]   # 1/tau (1/ns) per decay group
    double vel_rate           # 1e9 / tau_vel_ns: decayed sum of lots -> lots/s
    double drift_rate         # 1e9 / tau_micro_ns: decayed sum of ticks -> ticks/s
    double band_bps, pull_k, pull_frac
    int64_t pull_ticks, match_tol_ns, run_gap_ns
    int n_levels
    double w_ofi, w_mlofi, w_vel, w_vac, w_pull, w_abs, w_imb, w_run, w_tilt, w_drift, w_spread
    double vel_scale_s, run_scale, drift_horizon_s, gain

cdef struct DecRec:       # an unexplained depth decrease that a later trade may still explain
    int64_t price, ts, t_add, left, old
    int32_t side
    bint in_band, is_pull

cdef struct TrdRec:       # trade volume not yet matched to a depth decrease
    int64_t price, ts, left
    int32_t side

cdef struct View:         # every signal decayed to one instant (what snapshot() and score() read)
    double ofi, ofi_norm, tdepth_avg, mlofi, mlofi_norm, mldepth_avg, level_avg
    double vel[2]
    double band[2]
    double vac_acc[2]
    double vac[2]
    double pull_acc[2]
    double pull[2]
    double abs_vol[2]
    double abs_peak[2]
    double absorb[2]
    double run_count, run_vol, buy_f, sell_f, buy_s, sell_s, imb_f, imb_s
    double spread, spread_avg, tilt, drift

@cython.final
cdef class Timing:
    cdef Cfg cfg
    cdef readonly object params
    cdef int64_t clock[NGROUPS]
    # touch (bookTicker or depth-derived, uid-monotone)
    cdef bint have_touch
    cdef int64_t touch_uid, t_bb, t_bq, t_ba, t_aq
    cdef double ofi, tdepth_avg, tdepth_cur, spread_avg, spread_cur, micro_acc, mp_cur
    # depth
    cdef bint have_depth, have_top
    cdef int64_t band_ticks, d_bb, d_ba, since_full
    cdef int64_t band_d[2]
    cdef double vel_acc[2]
    cdef double vac_acc[2]
    cdef double pull_acc[2]
    cdef double mlofi, mldepth_avg, mldepth_cur, level_avg, level_cur
    cdef int n_prev[2]
    cdef int64_t prev_px[2 * MAX_LEVELS]
    cdef int64_t prev_q[2 * MAX_LEVELS]
    # absorption at the touch
    cdef int64_t abs_px[2]
    cdef int64_t abs_peak[2]
    cdef double abs_vol[2]
    # tape
    cdef int run_sign
    cdef int64_t run_count, run_vol, run_last_ts
    cdef double flow[4]      # buy fast, sell fast, buy slow, sell slow (lots, decayed)
    # reconciliation rings (oldest first from head)
    cdef DecRec dring[RING]
    cdef TrdRec tring[RING]
    cdef int d_head, d_n, t_head, t_n

    cdef void on_depth(self, Book book, const LevelChange* ch, int n, int64_t ts_ns, int64_t uid) noexcept nogil
    cdef void on_ticker(self, int64_t bid_px, int64_t bid_qty, int64_t ask_px, int64_t ask_qty,
                        int64_t ts_ns, int64_t uid) noexcept nogil
    cdef void on_trade(self, int64_t price, int64_t qty, bint buyer_is_maker, int64_t ts_ns) noexcept nogil
    cdef double score(self, int side, int64_t now_ns) noexcept nogil
    cdef void reset_depth(self) noexcept nogil
    cdef void view(self, int64_t now_ns, View* v) noexcept nogil
    cdef double _adv(self, int g, int64_t ts) noexcept nogil
    cdef double _fac(self, int g, int64_t now) noexcept nogil
    cdef void _touch(self, int64_t bb, int64_t bq, int64_t ba, int64_t aq, int64_t ts) noexcept nogil
    cdef void _decrease(self, int side, int64_t price, int64_t old, int64_t qty, int64_t ts,
                        bint in_band, bint in_pull) noexcept nogil
    cdef void _band(self, Book book, int side, int64_t best, int64_t bt, int64_t lo, int64_t hi,
                    int64_t delta) noexcept nogil
    cdef int64_t _match_trades(self, int side, int64_t price, int64_t want, int64_t ts) noexcept nogil
    cdef void _reconcile_trade(self, int side, int64_t price, int64_t qty, int64_t ts) noexcept nogil
    cdef void _unexplain(self, DecRec* e, int64_t m) noexcept nogil
    cdef void _top(self, Book book) noexcept nogil
