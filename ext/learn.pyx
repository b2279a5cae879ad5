# cython: language_level=3
# distutils: extra_compile_args = -ffp-contract=off
"""Learned timing models: the live feature vector and the inference kernels, one call per event.

``FeatureState.fill`` reads a ``SymbolFeed`` directly (the timing kernel's ``view``, the book's touch, the
recent-trades ring): no dict, no allocation. The features' definitions (formulas, units, time constants, which
flip with the side) are in ``engine/learn/features.py``; ``FEATURE_NAMES`` here is the order this kernel writes
and that module checks it against its table at import.

The model kernels (``LinearKernel``, ``TreesKernel``, ``MLPKernel``) evaluate one float32 row in plain C loops.
``engine.learn.models`` mirrors each operation for operation in numpy (the same sums in the same order), so a
batch prediction and the kernel agree bit for bit on the raw score; the logistic link (libm ``exp``) and the MLP's
``tanh`` (libm) may differ from numpy's vectorised ones in the last place. Build with ``-ffp-contract=off``
(setup.py does) and never with ``-ffast-math``.
"""
from cpython.buffer cimport (
    PyBUF_C_CONTIGUOUS, PyBUF_FORMAT, PyBUF_WRITABLE, PyBuffer_Release, PyObject_GetBuffer,
)
from libc.math cimport NAN, exp, log1p, tanh
from libc.stdint cimport int32_t, int64_t
from libc.stdlib cimport free, malloc

from ext.book cimport ASK, BID, NO_ASK, NO_BID, Book
from ext.feed cimport S_SYNCED, TR_RING, SymbolFeed
from ext.timing cimport View

import numpy as np

FEATURE_NAMES = (
    "side",
    "ofi_norm", "mlofi_norm", "tape_imb_fast", "tape_imb_slow", "run_count_slog", "run_volume_slog",
    "micro_tilt", "micro_drift", "queue_imb",
    "queue_own_log", "queue_opp_log", "band_own_log", "band_opp_log",
    "depth_vel_own_slog", "depth_vel_opp_slog", "vacuum_own", "vacuum_opp", "pulled_own", "pulled_opp",
    "absorption_own", "absorption_opp", "flow_with_log", "flow_against_log",
    "spread_ticks", "spread_avg", "trade_age_s",
    "mid_ret_bps", "d_ofi_norm", "d_mlofi_norm", "d_tape_imb_fast", "d_micro_tilt", "d_queue_imb",
    "d_queue_own_log", "d_queue_opp_log",
)
assert len(FEATURE_NAMES) == NFEAT

# Return flags of FeatureState.fill / features_into.
PUSHED = 1            # this call took a sample into the history (a sample-grid instant)
HAS_PAST = 2          # a sample at least lag_ns old existed: the dynamics are real (else 0)
UNUSABLE = -1         # not synced, a side empty or the book crossed: the row is NaN

cdef int64_t SEC = 1000000000

# Features 1..9 are signed (x side), 10..23 pairs (own, opp) swapped for a sell, 24..26 side-neutral.
cdef int N_SIGNED_END = 10
cdef int PAIRS_END = 24
cdef int BASE_END = 27
# The dynamics: signed sources, then the queue pair.
cdef int[5] D_SRC = [1, 2, 3, 7, 9]


cdef inline double _slog(double x) noexcept nogil:
    """Signed log1p: sign(x) * log(1 + |x|)."""
    return log1p(x) if x >= 0.0 else -log1p(-x)


cdef inline double _link(int link, double z) noexcept nogil:
    return 1.0 / (1.0 + exp(-z)) if link == 1 else z


cdef class FeatureState:
    """Per-symbol memory of the live feature path: the last ``HIST`` samples (one per ``step_ns`` of exchange time
    at most, taken by the first call at or after the next grid instant) for the 0.5 s dynamics. A new book (the
    feed loaded another snapshot: a resync) starts a new history."""

    def __init__(self, int64_t step_ns=100_000_000, int64_t lag_ns=500_000_000, double age_cap_s=10.0):
        if step_ns <= 0 or lag_ns <= 0 or age_cap_s <= 0:
            raise ValueError("step_ns, lag_ns and age_cap_s must be > 0")
        if lag_ns > (HIST - 8) * step_ns:
            raise ValueError(f"lag_ns must be <= {HIST - 8} x step_ns (the history holds {HIST} samples)")
        self.step_ns = step_ns
        self.lag_ns = lag_ns
        self.age_cap_s = age_cap_s
        self.reset()

    def reset(self) -> None:
        """Forget the history (a resync, a new session)."""
        self.next_ns = -(2**62)
        self.n_pushed = 0
        self.epoch = -1

    cdef int _base(self, SymbolFeed sf, int64_t now) noexcept:
        """Side-independent values at ``now`` into ``cur``: the mid, then features 1..26 oriented for a buy."""
        cdef View v
        cdef Book bk = sf.book
        cdef int64_t bb = bk.best_bid, ba = bk.best_ask, qb, qa, tl
        cdef double* c = self.cur
        cdef double age, a
        if sf.state != S_SYNCED or bb == NO_BID or ba == NO_ASK or bb >= ba:
            return UNUSABLE
        qb = bk.best_qty(BID)
        qa = bk.best_qty(ASK)
        sf.timing.view(now, &v)
        c[0] = 0.5 * (<double>bb + <double>ba)
        c[1] = v.ofi_norm
        c[2] = v.mlofi_norm
        c[3] = v.imb_f
        c[4] = v.imb_s
        c[5] = _slog(v.run_count)
        c[6] = _slog(v.run_vol)
        c[7] = v.tilt
        c[8] = v.drift
        c[9] = <double>(qb - qa) / <double>(qb + qa) if qb + qa > 0 else 0.0
        c[10] = log1p(<double>qb)
        c[11] = log1p(<double>qa)
        c[12] = log1p(v.band[0])
        c[13] = log1p(v.band[1])
        c[14] = _slog(v.vel[0])
        c[15] = _slog(v.vel[1])
        c[16] = v.vac[0]
        c[17] = v.vac[1]
        c[18] = v.pull[0]
        c[19] = v.pull[1]
        a = v.absorb[0]
        c[20] = a / (1.0 + a)
        a = v.absorb[1]
        c[21] = a / (1.0 + a)
        c[22] = log1p(v.buy_f)
        c[23] = log1p(v.sell_f)
        c[24] = <double>(ba - bb)
        c[25] = v.spread_avg
        age = self.age_cap_s
        if sf.tr_total > 0:
            tl = sf.tr_t[(sf.tr_total - 1) & (TR_RING - 1)]
            age = <double>(now - tl) / <double>SEC
            if age < 0.0:
                age = 0.0
            elif age > self.age_cap_s:
                age = self.age_cap_s
        c[26] = age
        return 0

    cdef int fill(self, SymbolFeed sf, int64_t now, int side, float* out) noexcept:
        """The feature row for ``side`` (+1 buy, -1 sell) at ``now`` into ``out`` (NFEAT floats)."""
        cdef int j, k, flags = 0, past = -1
        cdef int64_t i, n
        cdef double sd = 1.0 if side > 0 else -1.0
        cdef double* c = self.cur
        cdef double* p
        if self._base(sf, now) != 0:
            for j in range(NFEAT):
                out[j] = <float>float("nan")
            return UNUSABLE
        if sf.n_snapshots != self.epoch:                # a new book (first sync or a resync): a new history
            self.next_ns = -(2**62)
            self.n_pushed = 0
            self.epoch = sf.n_snapshots
        if now >= self.next_ns:
            k = self.n_pushed & (HIST - 1)
            self.hist_t[k] = now
            for j in range(NBASE):
                self.hist[k][j] = c[j]
            self.n_pushed += 1
            self.next_ns = now + self.step_ns
            flags |= PUSHED
        n = self.n_pushed if self.n_pushed < HIST else HIST
        for i in range(n):
            k = (self.n_pushed - 1 - i) & (HIST - 1)
            if self.hist_t[k] <= now - self.lag_ns:
                past = k
                break
        out[0] = <float>sd
        for j in range(1, N_SIGNED_END):
            out[j] = <float>(sd * c[j])
        for j in range(N_SIGNED_END, PAIRS_END, 2):
            out[j] = <float>(c[j] if side > 0 else c[j + 1])
            out[j + 1] = <float>(c[j + 1] if side > 0 else c[j])
        for j in range(PAIRS_END, BASE_END):
            out[j] = <float>c[j]
        if past < 0:
            for j in range(BASE_END, NFEAT):
                out[j] = 0.0
            return flags
        p = self.hist[past]
        out[27] = <float>(sd * ((c[0] - p[0]) / p[0] * 1e4))
        for j in range(5):
            out[28 + j] = <float>(sd * (c[D_SRC[j]] - p[D_SRC[j]]))
        out[33] = <float>((c[10] - p[10]) if side > 0 else (c[11] - p[11]))
        out[34] = <float>((c[11] - p[11]) if side > 0 else (c[10] - p[10]))
        return flags | HAS_PAST

    @property
    def n_features(self) -> int:
        return NFEAT


cdef int _acquire(object a, Py_buffer* v, char kind, Py_ssize_t n, bint write) except -1:
    """A C-contiguous buffer of ``n`` items of ``kind`` (``f`` float32, ``d`` float64): far cheaper per call than
    a typed memoryview (the per-event paths take one or two)."""
    cdef const char* f
    PyObject_GetBuffer(a, v, PyBUF_C_CONTIGUOUS | PyBUF_FORMAT | (PyBUF_WRITABLE if write else 0))
    f = v.format
    if f != NULL and (f[0] == b"<" or f[0] == b"=" or f[0] == b"@"):
        f += 1
    if f == NULL or f[0] != kind or f[1] != 0 or v.len != n * v.itemsize:
        PyBuffer_Release(v)
        raise ValueError(f"expected {n} contiguous {'float32' if kind == b'f' else 'float64'} values")
    return 0


def features_into(SymbolFeed sf, int64_t now_ns, int side, FeatureState state, object out) -> int:
    """Write the feature row of ``side`` (+1 buy, -1 sell) at exchange time ``now_ns`` into ``out`` (float32,
    ``len(FEATURE_NAMES)``); returns the flags ``PUSHED | HAS_PAST``, or ``UNUSABLE`` (row all NaN)."""
    cdef Py_buffer v
    cdef int r
    if side != 1 and side != -1:
        raise ValueError(f"side must be +1 (buy) or -1 (sell), got {side}")
    _acquire(out, &v, b"f", NFEAT, True)
    r = state.fill(sf, now_ns, side, <float*>v.buf)
    PyBuffer_Release(&v)
    return r


def trade_at(SymbolFeed sf, int64_t k):
    """The ``k``-th market trade the feed ever kept (0-based): ``(t_ns, price ticks, qty lots, sell aggressor)``,
    or None when it is not in the ring (not yet seen, or overwritten)."""
    cdef int64_t j
    if k < 0 or k >= sf.tr_total or k < sf.tr_total - TR_RING:
        return None
    j = k & (TR_RING - 1)
    return sf.tr_t[j], sf.tr_px[j], sf.tr_qty[j], bool(sf.tr_sell[j])


def trades_total(SymbolFeed sf) -> int:
    """How many market trades the feed has kept so far (``trade_at`` reads them back)."""
    return sf.tr_total


def predict_into(SymbolFeed sf, int64_t now_ns, int side, FeatureState state, tuple kernels, object out) -> int:
    """Features at ``now_ns`` for ``side`` (+1 buy, -1 sell) and every kernel's prediction into ``out`` (float64,
    one per kernel, in order), in one call: the engine's per-event path. Returns ``fill``'s flags; on ``UNUSABLE``
    ``out`` is NaN."""
    cdef Py_ssize_t i, n = len(kernels)
    cdef Py_buffer v
    cdef double* o
    cdef Kernel kr
    cdef int flags
    for i in range(n):
        if not isinstance(kernels[i], Kernel) or (<Kernel>kernels[i]).n_in != NFEAT:
            raise ValueError(f"kernel {i} is not a model of the {NFEAT} features")
    _acquire(out, &v, b"d", n, True)
    o = <double*>v.buf
    flags = state.fill(sf, now_ns, 1 if side > 0 else -1, state.buf)
    for i in range(n):
        kr = <Kernel>kernels[i]
        o[i] = NAN if flags < 0 else _link(kr.link, kr.raw(state.buf))
    PyBuffer_Release(&v)
    return flags


cdef class Kernel:
    """One model's inference on one float32 feature row: ``one(x)`` (after the link), ``score(x)`` (before)."""

    cdef double raw(self, const float* x) noexcept nogil:
        return 0.0

    def one(self, object x) -> float:
        """The prediction for one row (float32, contiguous; a probability for a logistic link)."""
        cdef Py_buffer v
        cdef double z
        _acquire(x, &v, b"f", self.n_in, False)
        z = self.raw(<const float*>v.buf)
        PyBuffer_Release(&v)
        return _link(self.link, z)

    def score(self, object x) -> float:
        """The raw score for one row (before the link)."""
        cdef Py_buffer v
        cdef double z
        _acquire(x, &v, b"f", self.n_in, False)
        z = self.raw(<const float*>v.buf)
        PyBuffer_Release(&v)
        return z

    def many(self, const float[:, ::1] X) -> np.ndarray:
        """``one`` over every row (a C loop; for checks and timing)."""
        cdef Py_ssize_t i, n = X.shape[0]
        out = np.empty(n, dtype=np.float64)
        cdef double[::1] o = out
        if X.shape[1] != self.n_in:
            raise ValueError(f"the model takes {self.n_in} features, got {X.shape[1]}")
        for i in range(n):
            o[i] = _link(self.link, self.raw(&X[i, 0]))
        return out


cdef const double* _f64(list keep, object a, Py_ssize_t n, str what) except NULL:
    """A private contiguous float64 copy of ``a`` (kept alive in ``keep``) and its data pointer."""
    cdef double[::1] mv = np.array(a, dtype=np.float64).reshape(-1)
    if mv.shape[0] != n or n == 0:
        raise ValueError(f"{what} must hold {n} values (> 0), got {mv.shape[0]}")
    keep.append(mv)
    return &mv[0]


cdef class LinearKernel(Kernel):
    """``z = b + sum_j w[j] * x[j]`` (j ascending), then the link."""

    def __init__(self, w, double b, int link=0):
        self.keep = []
        self.n_in = <int>len(w)
        self.w = _f64(self.keep, w, self.n_in, "w")
        self.b = b
        self.link = link

    cdef double raw(self, const float* x) noexcept nogil:
        cdef const double* w = self.w
        cdef double z = self.b
        cdef int j
        for j in range(self.n_in):
            z = z + w[j] * <double>x[j]
        return z


cdef class TreesKernel(Kernel):
    """Gradient-boosted trees from flat node arrays: at node k, a leaf when ``feat[k] < 0`` (add ``value[k]``),
    else go ``left[k]`` when ``x[feat[k]] <= thr[k]`` and ``right[k]`` otherwise. ``z = base + the leaves``, trees in
    order. Evaluated branch-free: each tree is laid out complete to the deepest tree's depth (at most
    ``MAX_DEPTH``), a shallower leaf repeated under pass-through nodes, so every tree costs ``depth`` compares and
    the trees' chains overlap in the CPU."""

    def __init__(self, feat, thr, left, right, value, roots, double base, int n_in, int link=0):
        f = np.asarray(feat, dtype=np.int64)
        t = np.asarray(thr, dtype=np.float64)
        lo = np.asarray(left, dtype=np.int64)
        hi = np.asarray(right, dtype=np.int64)
        val = np.asarray(value, dtype=np.float64)
        r = np.asarray(roots, dtype=np.int64)
        m = len(f)
        if not (len(t) == len(lo) == len(hi) == len(val) == m) or m == 0 or len(r) == 0:
            raise ValueError("the node arrays must have one, non-zero length, and there must be a tree")
        if f.max() >= n_in or np.any((f >= 0) & ((lo < 0) | (lo >= m) | (hi < 0) | (hi >= m))) \
                or np.any((r < 0) | (r >= m)):
            raise ValueError("a node or a root points outside the arrays")
        depth = max(_depth(f, lo, hi, int(k), 0) for k in r)
        self.n_trees = <int>len(r)
        self.depth = depth
        self.n_inner = (1 << depth) - 1
        cf = np.zeros((self.n_trees, max(self.n_inner, 1)), dtype=np.int32)
        ct = np.full((self.n_trees, max(self.n_inner, 1)), np.inf)
        cl = np.zeros((self.n_trees, 1 << depth))
        for k in range(self.n_trees):
            _lay(f, t, lo, hi, val, int(r[k]), 0, 0, depth, cf[k], ct[k], cl[k])
        self.keep = [np.ascontiguousarray(cf), np.ascontiguousarray(ct), np.ascontiguousarray(cl)]
        cdef int32_t[:, ::1] cfv = self.keep[0]
        cdef double[:, ::1] ctv = self.keep[1]
        cdef double[:, ::1] clv = self.keep[2]
        self.cfeat = &cfv[0, 0]
        self.cthr = &ctv[0, 0]
        self.cleaf = &clv[0, 0]
        self.base = base
        self.n_in = n_in
        self.link = link

    cdef double raw(self, const float* x) noexcept nogil:
        cdef const int32_t* f = self.cfeat
        cdef const double* th = self.cthr
        cdef const double* lv = self.cleaf
        cdef int t, d, i, ni = self.n_inner, depth = self.depth, stride = ni if ni > 0 else 1
        cdef double z = self.base
        for t in range(self.n_trees):
            i = 0
            for d in range(depth):
                i = 2 * i + 1 + (not (<double>x[f[i]] <= th[i]))
            z = z + lv[i - ni]
            f += stride
            th += stride
            lv += ni + 1
        return z


MAX_DEPTH = 10


def _depth(f, lo, hi, int k, int d) -> int:
    """Depth of the subtree at node ``k`` (a leaf: 0); ValueError past ``MAX_DEPTH`` (a malformed or cyclic file)."""
    if d > MAX_DEPTH:
        raise ValueError(f"a tree is deeper than {MAX_DEPTH} (or cyclic)")
    if f[k] < 0:
        return 0
    return 1 + max(_depth(f, lo, hi, int(lo[k]), d + 1), _depth(f, lo, hi, int(hi[k]), d + 1))


def _lay(f, t, lo, hi, val, int k, int pos, int d, int depth, cf, ct, cl) -> None:
    """Place node ``k`` at position ``pos`` (level ``d``) of a complete tree of ``depth`` levels."""
    cdef int inner = (1 << depth) - 1
    if d == depth:
        cl[pos - inner] = val[k]
        return
    if f[k] < 0:                           # a leaf above the bottom: pass through (always left), both copies
        cf[pos], ct[pos] = 0, np.inf
        _lay(f, t, lo, hi, val, k, 2 * pos + 1, d + 1, depth, cf, ct, cl)
        _lay(f, t, lo, hi, val, k, 2 * pos + 2, d + 1, depth, cf, ct, cl)
        return
    cf[pos], ct[pos] = f[k], t[k]
    _lay(f, t, lo, hi, val, int(lo[k]), 2 * pos + 1, d + 1, depth, cf, ct, cl)
    _lay(f, t, lo, hi, val, int(hi[k]), 2 * pos + 2, d + 1, depth, cf, ct, cl)


cdef class MLPKernel(Kernel):
    """One hidden layer: ``h[k] = tanh(b1[k] + sum_j x[j] * w1[j, k])`` (j ascending), ``z = b2 + sum_k w2[k] *
    h[k]`` (k ascending), then the link."""

    def __init__(self, w1, b1, w2, double b2, int link=0):
        a = np.asarray(w1)
        if a.ndim != 2 or a.shape[1] != len(b1) or len(b1) != len(w2):
            raise ValueError("w1 (inputs x hidden), b1 and w2 disagree on the hidden width")
        self.keep = []
        self.n_in = <int>a.shape[0]
        self.hidden = <int>a.shape[1]
        self.w1 = _f64(self.keep, a, self.n_in * self.hidden, "w1")
        self.b1 = _f64(self.keep, b1, self.hidden, "b1")
        self.w2 = _f64(self.keep, w2, self.hidden, "w2")
        self.b2 = b2
        self.link = link
        self.h = <double*>malloc(max(self.hidden, 1) * sizeof(double))
        if self.h == NULL:
            raise MemoryError()

    def __dealloc__(self):
        free(self.h)

    cdef double raw(self, const float* x) noexcept nogil:
        cdef const double* w1 = self.w1
        cdef const double* row
        cdef double* h = self.h
        cdef int j, k, nh = self.hidden
        cdef double xj, z = self.b2
        for k in range(nh):
            h[k] = self.b1[k]
        for j in range(self.n_in):
            xj = <double>x[j]
            row = w1 + j * nh
            for k in range(nh):
                h[k] = h[k] + xj * row[k]
        for k in range(nh):
            z = z + self.w2[k] * tanh(h[k])
        return z
