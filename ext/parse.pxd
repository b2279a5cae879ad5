# Scanner for Binance USD-M market-data messages: raw bytes -> flat Msg record (no Python objects).
from libc.stdint cimport int32_t, int64_t

cdef enum:
    K_NONE = 0
    K_DEPTH = 1          # depthUpdate diff (U/u/pu)
    K_BOOK_TICKER = 2
    K_TRADE = 3
    K_AGG_TRADE = 4
    K_SNAPSHOT = 5       # REST /fapi/v1/depth answer
    K_PARTIAL_DEPTH = 6  # <sym>@depth5/10/20: a top-N picture, never applied as a diff
    K_OTHER = 7          # a well-formed event we do not use (markPriceUpdate, kline, ...)

cdef enum:
    E_SYNTAX = -1        # not the JSON we expect
    E_NUMBER = -2        # a decimal string we cannot read exactly
    E_MISSING = -3       # a field the event requires is absent
    E_GRID = -4          # a price or quantity off the instrument's tick/step grid
    E_SYMBOL = -5        # a symbol the feed does not know
    E_TOO_BIG = -6       # more levels than any Binance message carries
    E_FUTURE = -7        # an event time over a day ahead of everything seen (and of the wall clock)

cdef enum:                 # Msg.seen bits
    F_E = 1
    F_T = 2
    F_U = 4
    F_u = 8
    F_pu = 16
    F_s = 32
    F_b = 64
    F_B = 128
    F_a = 256
    F_A = 512
    F_p = 1024
    F_q = 2048
    F_m = 4096
    F_t = 8192
    F_f = 16384
    F_l = 32768
    F_BIDS = 65536
    F_ASKS = 131072
    F_AGG_ID = 262144
    F_LAST_ID = 524288
    F_e = 1048576

cdef struct Dec:
    int64_t mant         # digits without the point
    int32_t exp          # digits after the point (value = mant * 10**-exp); -1 when absent

cdef struct RawLevel:
    Dec px
    Dec qty
    int32_t side         # 0 bid, 1 ask

cdef struct Msg:
    int32_t kind
    int32_t enveloped    # the first key is "stream": a combined-stream envelope, whose event is "data" alone
    int32_t err_at       # byte offset where scanning failed
    int64_t E, T, U, u, pu, trade_id, first_id, last_id
    int32_t seen         # bitmask of F_* fields present
    const char* sym
    int32_t sym_len
    const char* stream
    int32_t stream_len
    const char* ev
    int32_t ev_len
    Dec b, B, a, A, p, q
    int32_t maker        # Binance `m`: 1 buyer is maker (aggressor sold), 0 aggressor bought
    int32_t market       # 1 unless `X` names a non-market print (INSURANCE_FUND, ADL, ...)
    int32_t n_levels
    int32_t cap
    RawLevel* levels

# Decimal -> integer units on one grid (tick or step): units = mant * num[e] / den[e], exact or refused.
cdef struct Grid:
    int64_t num[19]
    int64_t den[19]
    int64_t maxmant[19]
    double inv[19]
    int32_t ok[19]

cdef int scan(const char* buf, Py_ssize_t n, Msg* m) noexcept nogil
cdef void msg_init(Msg* m) noexcept nogil
cdef void msg_free(Msg* m) noexcept nogil
cdef int grid_init(Grid* g, int64_t size_mant, int32_t size_dec) noexcept nogil


cdef inline int to_units(Dec d, const Grid* g, int64_t* out) noexcept nogil:
    """Exact decimal -> integer units on grid ``g``; returns 0 on success, E_NUMBER / E_GRID otherwise."""
    cdef int e = d.exp
    cdef int64_t v = d.mant, den, q
    if e < 0 or e > 18 or not g.ok[e]:
        return E_NUMBER
    if g.num[e] != 1:
        if v > g.maxmant[e]:
            return E_NUMBER
        v *= g.num[e]
    den = g.den[e]
    if den == 1:
        out[0] = v
        return 0
    q = <int64_t>(<double>v * g.inv[e] + 0.5)
    if q * den != v:
        q = v // den
        if q * den != v:
            return E_GRID
    out[0] = q
    return 0
