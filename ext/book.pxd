# The L2 book on integer ticks and lots: the C-level interface other kernels cimport.
from libc.stdint cimport int32_t, int64_t
from libcpp.map cimport map as cmap

cdef extern from "<stdint.h>":
    const int64_t INT64_MIN
    const int64_t INT64_MAX

cdef enum:
    BID = 0
    ASK = 1

# Sentinels for an empty side: they compare correctly in max/min and crossed checks.
cdef extern from *:
    """
    #define TS_NO_BID INT64_MIN
    #define TS_NO_ASK INT64_MAX
    """
    const int64_t NO_BID "TS_NO_BID"
    const int64_t NO_ASK "TS_NO_ASK"


# One level update as applied to a book: what the signal kernels see of a depth message.
cdef struct LevelChange:
    int64_t price      # ticks
    int64_t qty        # lots resting after the update (0: level deleted)
    int64_t old_qty    # lots resting before the update
    int32_t side       # BID or ASK


cdef class Book:
    cdef readonly int64_t window        # ticks held in each flat ladder
    cdef readonly int64_t base          # tick of slot 0 (valid once has_base)
    cdef readonly bint has_base
    cdef int64_t* bidq                  # flat ladders: qty in lots at tick base + i
    cdef int64_t* askq
    cdef cmap[int64_t, int64_t] far_bid # levels outside the window, nothing lost
    cdef cmap[int64_t, int64_t] far_ask
    cdef readonly int64_t best_bid      # cached touch, NO_BID / NO_ASK when a side is empty
    cdef readonly int64_t best_ask
    cdef readonly int64_t n_recenters

    cdef int64_t set_level(self, int side, int64_t price, int64_t qty) noexcept nogil
    cdef int64_t level_qty(self, int side, int64_t price) noexcept nogil
    cdef int64_t best_qty(self, int side) noexcept nogil
    cdef int64_t depth_ticks(self, int side, int64_t n_ticks) noexcept nogil
    cdef int64_t bps_to_ticks(self, double bps) noexcept nogil
    cdef int top_levels(self, int side, int n, int64_t* px, int64_t* qty) noexcept nogil
    cdef double mid_ticks(self) noexcept nogil
    cdef double microprice_ticks(self) noexcept nogil
    cdef void recenter_if_needed(self) noexcept nogil
    cdef void recenter(self, int64_t new_base) noexcept nogil
    cdef void clear(self) noexcept nogil
    cdef int64_t _next_bid_below(self, int64_t p) noexcept nogil
    cdef int64_t _next_ask_above(self, int64_t p) noexcept nogil
