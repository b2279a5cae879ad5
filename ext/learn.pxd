# Learned timing models (issue 16): the live feature vector and the per-event inference kernels.
from libc.stdint cimport int32_t, int64_t

from ext.feed cimport SymbolFeed

cdef enum:
    NBASE = 27           # a sample's side-independent values: the mid (ticks), then features 1-26 for a buy
    NFEAT = 35           # features per row (engine.learn.features.FEATURES)
    HIST = 64            # past samples kept for the 0.5 s dynamics (a power of two)


cdef class FeatureState:
    cdef readonly int64_t step_ns        # at most one ring sample per step of exchange time
    cdef readonly int64_t lag_ns         # the dynamics look back this far
    cdef readonly double age_cap_s       # time since the last trade is capped here
    cdef readonly int64_t next_ns        # the next call at or after this time pushes a sample
    cdef readonly int64_t n_pushed
    cdef readonly int64_t epoch          # the feed's snapshot count when the history began (a resync resets it)
    cdef int64_t hist_t[HIST]
    cdef double hist[HIST][NBASE]
    cdef double cur[NBASE]
    cdef float buf[NFEAT]

    cdef int _base(self, SymbolFeed sf, int64_t now) noexcept
    cdef int fill(self, SymbolFeed sf, int64_t now, int side, float* out) noexcept


cdef class Kernel:
    cdef readonly int n_in
    cdef readonly int link               # 0: identity, 1: logistic (a probability)
    cdef object keep                     # the arrays the pointers below point into
    cdef double raw(self, const float* x) noexcept nogil


cdef class LinearKernel(Kernel):
    cdef const double* w
    cdef double b


cdef class TreesKernel(Kernel):
    # Every tree laid out complete to the deepest tree's depth (a shallower leaf repeated below a pass-through
    # node): ``n_inner`` = 2^depth - 1 inner nodes per tree (feature, threshold), 2^depth leaf values.
    cdef int32_t* cfeat
    cdef double* cthr
    cdef double* cleaf
    cdef readonly int n_trees, depth
    cdef int n_inner
    cdef double base


cdef class MLPKernel(Kernel):
    cdef const double* w1                # n_in x hidden, row-major
    cdef const double* b1
    cdef const double* w2
    cdef double b2
    cdef int hidden
    cdef double* h
