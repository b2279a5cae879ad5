# The order-entry path in C: HMAC-SHA256 with keyed midstates, the venue's rate windows, the pre-trade risk
# check, and the WebSocket API order.place frame written straight into the socket's send buffer.
from libc.stdint cimport int64_t, uint32_t

from ext.feed cimport SymbolFeed

cdef enum:
    MAX_WINDOWS = 8        # rate-limit windows the venue declares (Binance USD-M has 3)
    MAX_SYMBOLS = 256      # symbols one OrderWire can encode
    FRAME_ROOM = 14        # bytes kept free before a frame for the WebSocket header (picows writes it there)
    SYM_LEN = 32
    KEY_LEN = 128
    PAYLOAD_CAP = 1024


cdef struct HmacKey:       # SHA-256 state after the ipad and opad blocks: two compressions saved per message
    uint32_t inner[8]
    uint32_t outer[8]


cdef struct SymFmt:        # how one symbol's lots and ticks are written (units x mant x 10**-dec)
    char name[SYM_LEN]
    int name_len
    int64_t tick_mant, step_mant
    int tick_dec, step_dec


cdef class RateWindows:
    cdef int n
    cdef int64_t window_ms[MAX_WINDOWS]
    cdef int64_t limit[MAX_WINDOWS]
    cdef bint orders[MAX_WINDOWS]
    cdef int64_t start[MAX_WINDOWS]
    cdef int64_t count[MAX_WINDOWS]
    cdef double safety
    cdef public int64_t banned_until_ms

    cdef void roll(self, int i, int64_t now) noexcept
    cdef int64_t delay(self, int64_t now, int64_t weight, int64_t orders) noexcept
    cdef void charge(self, int64_t now, int64_t weight, int64_t orders) noexcept


cdef struct Limits:        # one scope's numeric limits (a symbol's, or the account's); 0 turns an optional one off
    double order_qty, order_notional, position_qty, position_notional, band_bps, min_notional
    int64_t open_orders, per_s, per_10s


cdef struct Rate:          # send times (monotonic s) of the last ``cap`` orders: the k-th newest is t[head - k]
    double* t
    int64_t cap, n, head


cdef class RiskCore:
    cdef Limits glob                       # the account's counts, and every symbol's defaults
    cdef Rate acct                         # the account's order rate
    cdef Limits* lims                      # per symbol (``symbol``: name -> index)
    cdef Rate* rates
    cdef int n_syms
    cdef dict index
    cdef public int state                  # 0 active, 1 reducing, 2 halted
    cdef public int64_t open_orders
    cdef readonly double last_limit, last_value     # the limit a refusal broke and the value that broke it
    cdef readonly int last_sym                      # ... and its scope: a symbol's index, or -1 (the account)

    cdef int check_c(self, bint buy, double qty, double price, double mid, double position, bint reduce_only,
                     bint synced, bint stale, bint crossed, double now_s, int sym, int64_t sym_open) noexcept
    cdef int limits_c(self, Limits* lim, int sym, bint buy, double qty, double price, double mid, double position,
                      bint reduces, bint reduce_only) noexcept
    cdef int counts_c(self, Limits* lim, Rate* rate, int sym, int64_t sym_open, double now_s) noexcept
    cdef int refuse(self, int code, double limit, double value, int sym) noexcept
    cdef Limits* _lim(self, int sym) except NULL
    cdef int check_book(self, SymbolFeed sf, int sym, bint buy, int64_t lots, int64_t ticks, bint market,
                        double tick, double step, double position, bint reduce_only, int64_t open_orders,
                        int64_t sym_open, int64_t now_ns, int64_t stale_ns) noexcept


cdef class OrderWire:
    cdef HmacKey key
    cdef bint has_hmac
    cdef object signer                     # Ed25519: a callable payload bytes -> signature str
    cdef char api_key[KEY_LEN]
    cdef int api_key_len
    cdef public int64_t recv_window_ms
    cdef SymFmt* syms
    cdef int n_syms
    cdef readonly bytearray buf
    cdef char payload[PAYLOAD_CAP]
    cdef int payload_len
    cdef public RateWindows limits
    cdef object text_type                  # picows WSMsgType.TEXT
    cdef object bound                      # the picows transport whose socket ``fd`` is
    cdef int fd                            # its plain TCP socket, or -1 (TLS, or unknown): picows sends
    cdef object write_buffer_size          # the asyncio transport's get_write_buffer_size
    cdef object transport_write            # and its write (the tail of a partial send goes there)
    cdef uint32_t masks[64]                # WebSocket masking keys, drawn from os.urandom 64 at a time
    cdef int n_masks
    cdef public object transport           # the connection an OrderGate sends on (set by the WebSocket API)
    cdef int64_t next_id                   # request ids, shared with the general path (``next(wire)``)
    cdef readonly int64_t last_write_ns    # CLOCK_MONOTONIC right after the last frame's write

    cdef int send_frame(self, Py_ssize_t n) except -1
    cdef Py_ssize_t encode(self, int sym, bint buy, int64_t lots, int64_t ticks, int tif, bint reduce_only,
                           const char* cid, Py_ssize_t cid_len, int64_t rid, int64_t ts_ms) except -1
    cdef int place_c(self, object transport, int sym, bint buy, int64_t lots, int64_t ticks, int tif,
                     bint reduce_only, str cid, int64_t rid, int64_t offset_ms) except -1


cdef class OrderGate:
    cdef RiskCore risk
    cdef OrderWire wire
    cdef SymbolFeed sf
    cdef int sym
    cdef double tick, step
    cdef object position                   # has ``qty_f``: the position in base units, as a float
    cdef set live                          # the OMS's open orders (its size is the count)
    cdef dict orders                       # the OMS's orders by client id
    cdef object clock                      # has ``time_offset_ms``: the venue's clock minus ours
    cdef int64_t stale_ns
    cdef int rsym                          # the symbol's index in ``risk``
    cdef readonly int64_t rid              # the request id of the last order fired
