# cython: language_level=3
"""The order path from decision to socket, in C: what must happen before an order's bytes leave.

- ``hmac_sha256_hex``/``Hmac``: HMAC-SHA256 (RFC 2104) over SHA-256 (FIPS 180-4), on the CPU's SHA extensions
  when CPUID reports them, else in portable C. The key is absorbed once into the inner and outer midstates, so
  signing a ~250-byte Binance payload costs 4 + 1 compressions instead of 6 + 1. Checked bit for bit against
  ``hashlib``/``hmac``, both ways (tests/unit/test_orders.py).
- ``RateWindows``: the venue's fixed-window counters (request weight, orders per 10 s / per minute), the state
  behind ``engine.venues.binance.limiter.RateLimiter``; a request that would cross ``safety`` x limit waits.
- ``RiskCore``: the pre-trade checks of ``engine.risk.RiskGateway`` on doubles, returning a reason code.
- ``OrderGate``: risk, rate windows and ``OrderWire`` in one call per order: what ``engine.node`` fires.
- ``OrderWire``: an ``order.place`` request for Binance's WebSocket API, written from integer lots and ticks into
  one reusable buffer, signed (HMAC in C, or an Ed25519 callable), framed and masked in place and written with
  ``send(2)`` on the connection's socket (plain TCP with nothing queued in the transport; otherwise picows's
  ``send_reuse_external_bytearray`` takes it). The frame is byte-identical to
  ``orjson.dumps({"id", "method", "params": WsApi.signed(params)})`` for the same order and timestamp.

Nothing here allocates Python objects on the way to the socket (HMAC keys; Ed25519 signs through Python).
"""

from cpython.bytearray cimport PyByteArray_AS_STRING, PyByteArray_Resize
from cpython.bytes cimport PyBytes_FromStringAndSize
from cpython.unicode cimport PyUnicode_DecodeASCII
from libc.math cimport fabs, isnan, NAN
from libc.stdint cimport int64_t, uint32_t, uint64_t, INT64_MAX
from libc.stdlib cimport calloc, free, malloc
from libc.string cimport memcpy, memset
from posix.time cimport CLOCK_MONOTONIC, CLOCK_REALTIME, clock_gettime, timespec

from ext.book cimport NO_ASK, NO_BID, Book
from ext.feed cimport S_SYNCED, SymbolFeed

cdef extern from "<sys/socket.h>":
    ssize_t c_send "send"(int fd, const void* buf, size_t n, int flags) nogil
    const int MSG_NOSIGNAL
    const int MSG_DONTWAIT

cdef extern from "<errno.h>":
    int errno
    const int EINTR

cdef extern from "Python.h":
    const char* PyUnicode_AsUTF8AndSize(object s, Py_ssize_t* size) except NULL

cdef extern from *:
    """
    #include <stdint.h>
    #include <string.h>

    static const uint32_t TS_K[64] = {
        0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
        0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
        0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
        0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
        0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
        0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
        0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
        0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2};
    static const uint32_t TS_IV[8] = {
        0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19};

    #define TS_ROR(x, n) (((x) >> (n)) | ((x) << (32 - (n))))

    static void ts_sha256_block(uint32_t* s, const unsigned char* p) {
        uint32_t w[64], a, b, c, d, e, f, g, h, t1, t2;
        int i;
        for (i = 0; i < 16; i++)
            w[i] = (uint32_t)p[4 * i] << 24 | (uint32_t)p[4 * i + 1] << 16 | (uint32_t)p[4 * i + 2] << 8
                   | (uint32_t)p[4 * i + 3];
        for (i = 16; i < 64; i++) {
            uint32_t s0 = TS_ROR(w[i - 15], 7) ^ TS_ROR(w[i - 15], 18) ^ (w[i - 15] >> 3);
            uint32_t s1 = TS_ROR(w[i - 2], 17) ^ TS_ROR(w[i - 2], 19) ^ (w[i - 2] >> 10);
            w[i] = w[i - 16] + s0 + w[i - 7] + s1;
        }
        a = s[0]; b = s[1]; c = s[2]; d = s[3]; e = s[4]; f = s[5]; g = s[6]; h = s[7];
        for (i = 0; i < 64; i++) {
            t1 = h + (TS_ROR(e, 6) ^ TS_ROR(e, 11) ^ TS_ROR(e, 25)) + ((e & f) ^ (~e & g)) + TS_K[i] + w[i];
            t2 = (TS_ROR(a, 2) ^ TS_ROR(a, 13) ^ TS_ROR(a, 22)) + ((a & b) ^ (a & c) ^ (b & c));
            h = g; g = f; f = e; e = d + t1; d = c; c = b; b = a; a = t1 + t2;
        }
        s[0] += a; s[1] += b; s[2] += c; s[3] += d; s[4] += e; s[5] += f; s[6] += g; s[7] += h;
    }

    /* SHA-NI (Intel SHA extensions): the same compression in ~4x fewer cycles, chosen at run time by CPUID. */
    #if (defined(__x86_64__) || defined(__i386__)) && (defined(__GNUC__) || defined(__clang__))
    #include <immintrin.h>
    #include <cpuid.h>
    #define TS_HAVE_SHANI 1
    __attribute__((target("sha,sse4.1,ssse3")))
    static void ts_sha256_block_ni(uint32_t* s, const unsigned char* p) {
        const __m128i shuf = _mm_set_epi64x(0x0c0d0e0f08090a0bULL, 0x0405060700010203ULL);
        __m128i tmp = _mm_loadu_si128((const __m128i*)&s[0]);
        __m128i st1 = _mm_loadu_si128((const __m128i*)&s[4]);
        __m128i st0, abef, cdgh, m[4], msg;
        int i;
        tmp = _mm_shuffle_epi32(tmp, 0xB1);                 /* CDAB */
        st1 = _mm_shuffle_epi32(st1, 0x1B);                 /* EFGH */
        st0 = _mm_alignr_epi8(tmp, st1, 8);                 /* ABEF */
        st1 = _mm_blend_epi16(st1, tmp, 0xF0);              /* CDGH */
        abef = st0; cdgh = st1;
        for (i = 0; i < 16; i++) {
            __m128i w;
            if (i < 4) {
                w = _mm_shuffle_epi8(_mm_loadu_si128((const __m128i*)(p + 16 * i)), shuf);
            } else {
                w = _mm_sha256msg1_epu32(m[i & 3], m[(i + 1) & 3]);
                w = _mm_add_epi32(w, _mm_alignr_epi8(m[(i + 3) & 3], m[(i + 2) & 3], 4));
                w = _mm_sha256msg2_epu32(w, m[(i + 3) & 3]);
            }
            m[i & 3] = w;
            msg = _mm_add_epi32(w, _mm_loadu_si128((const __m128i*)&TS_K[4 * i]));
            st1 = _mm_sha256rnds2_epu32(st1, st0, msg);
            msg = _mm_shuffle_epi32(msg, 0x0E);
            st0 = _mm_sha256rnds2_epu32(st0, st1, msg);
        }
        st0 = _mm_add_epi32(st0, abef);
        st1 = _mm_add_epi32(st1, cdgh);
        tmp = _mm_shuffle_epi32(st0, 0x1B);                 /* FEBA */
        st1 = _mm_shuffle_epi32(st1, 0xB1);                 /* DCHG */
        st0 = _mm_blend_epi16(tmp, st1, 0xF0);              /* DCBA */
        st1 = _mm_alignr_epi8(st1, tmp, 8);                 /* HGFE */
        _mm_storeu_si128((__m128i*)&s[0], st0);
        _mm_storeu_si128((__m128i*)&s[4], st1);
    }
    static int ts_cpu_has_shani(void) {
        unsigned a, b, c, d;
        if (!__get_cpuid(1, &a, &b, &c, &d) || !(c & (1u << 19)) || !(c & (1u << 9))) return 0;   /* SSE4.1, SSSE3 */
        if (__get_cpuid_max(0, 0) < 7) return 0;
        __cpuid_count(7, 0, a, b, c, d);
        return (b >> 29) & 1;
    }
    #else
    #define TS_HAVE_SHANI 0
    static void ts_sha256_block_ni(uint32_t* s, const unsigned char* p) { ts_sha256_block(s, p); }
    static int ts_cpu_has_shani(void) { return 0; }
    #endif

    static int ts_use_shani = -1;                           /* -1: not decided yet */
    static void ts_sha256_blocks(uint32_t* s, const unsigned char* p) {
        if (ts_use_shani < 0) ts_use_shani = ts_cpu_has_shani();
        if (ts_use_shani) ts_sha256_block_ni(s, p); else ts_sha256_block(s, p);
    }

    /* The digest of (prior bytes already absorbed into `state`, prior % 64 == 0) followed by msg[0:len]. */
    static void ts_sha256_finish(const uint32_t* state, uint64_t prior, const unsigned char* msg, size_t len,
                                 unsigned char* out) {
        uint32_t s[8];
        unsigned char blk[64];
        uint64_t bits = (prior + len) * 8;
        int i;
        memcpy(s, state, 32);
        while (len >= 64) { ts_sha256_blocks(s, msg); msg += 64; len -= 64; }
        memset(blk, 0, 64);
        memcpy(blk, msg, len);
        blk[len] = 0x80;
        if (len >= 56) { ts_sha256_blocks(s, blk); memset(blk, 0, 64); }
        for (i = 0; i < 8; i++) blk[63 - i] = (unsigned char)(bits >> (8 * i));
        ts_sha256_blocks(s, blk);
        for (i = 0; i < 8; i++) {
            out[4 * i] = (unsigned char)(s[i] >> 24); out[4 * i + 1] = (unsigned char)(s[i] >> 16);
            out[4 * i + 2] = (unsigned char)(s[i] >> 8); out[4 * i + 3] = (unsigned char)s[i];
        }
    }

    static void ts_wipe(void* p, size_t n) {          /* a memset the optimiser may not drop */
        volatile unsigned char* v = (volatile unsigned char*)p;
        while (n--) *v++ = 0;
    }

    static void ts_hmac_key(const unsigned char* key, size_t n, uint32_t* inner, uint32_t* outer) {
        unsigned char k[64], pad[64];
        int i;
        memset(k, 0, 64);
        if (n > 64) ts_sha256_finish(TS_IV, 0, key, n, k); else memcpy(k, key, n);
        for (i = 0; i < 64; i++) pad[i] = k[i] ^ 0x36;
        memcpy(inner, TS_IV, 32); ts_sha256_blocks(inner, pad);
        for (i = 0; i < 64; i++) pad[i] = k[i] ^ 0x5c;
        memcpy(outer, TS_IV, 32); ts_sha256_blocks(outer, pad);
        ts_wipe(k, 64); ts_wipe(pad, 64);
    }

    static void ts_hmac_hex(const uint32_t* inner, const uint32_t* outer, const unsigned char* msg, size_t n,
                            char* hex) {
        static const char digits[] = "0123456789abcdef";
        unsigned char d[32];
        int i;
        ts_sha256_finish(inner, 64, msg, n, d);
        ts_sha256_finish(outer, 64, d, 32, d);
        for (i = 0; i < 32; i++) { hex[2 * i] = digits[d[i] >> 4]; hex[2 * i + 1] = digits[d[i] & 15]; }
    }

    static inline char* ts_put(char* p, const char* s, size_t n) { memcpy(p, s, n); return p + n; }
    static inline char* ts_puts(char* p, const char* s) { size_t n = strlen(s); memcpy(p, s, n); return p + n; }

    static char* ts_put_uint(char* p, uint64_t v) {
        char tmp[24];
        int n = 0;
        do { tmp[n++] = (char)('0' + v % 10); v /= 10; } while (v);
        while (n) *p++ = tmp[--n];
        return p;
    }

    /* v x 10**-dec with exactly dec places ("0.010", "67000.1"): Binance's own formatting of a grid value. */
    static char* ts_put_dec(char* p, uint64_t v, int dec) {
        char tmp[48];
        int n = 0;
        do { tmp[n++] = (char)('0' + v % 10); v /= 10; } while (v);
        while (n <= dec) tmp[n++] = '0';
        while (n > dec) *p++ = tmp[--n];
        if (dec) { *p++ = '.'; while (n) *p++ = tmp[--n]; }
        return p;
    }
    """
    const uint32_t TS_IV[8]
    void ts_sha256_finish(const uint32_t* state, uint64_t prior, const unsigned char* msg, size_t n,
                          unsigned char* out) noexcept nogil
    void ts_hmac_key(const unsigned char* key, size_t n, uint32_t* inner, uint32_t* outer) noexcept nogil
    void ts_hmac_hex(const uint32_t* inner, const uint32_t* outer, const unsigned char* msg, size_t n,
                     char* hex) noexcept nogil
    void ts_wipe(void* p, size_t n) noexcept nogil
    int ts_use_shani
    int ts_cpu_has_shani() noexcept nogil
    char* ts_put(char* p, const char* s, size_t n) noexcept nogil
    char* ts_puts(char* p, const char* s) noexcept nogil
    char* ts_put_uint(char* p, uint64_t v) noexcept nogil
    char* ts_put_dec(char* p, uint64_t v, int dec) noexcept nogil


# ---- HMAC-SHA256 ---------------------------------------------------------------------------------------------------

def use_sha_extensions(on: bool | None = None) -> bool:
    """Whether SHA-256 runs on the CPU's SHA extensions (SHA-NI); ``on``: force it off, or on where the CPU has
    them (None: detect). Returns the choice in force. Both paths give identical digests (the tests run both)."""
    global ts_use_shani
    ts_use_shani = ts_cpu_has_shani() if on is None else (1 if on and ts_cpu_has_shani() else 0)
    return bool(ts_use_shani)


def sha256_hex(bytes data) -> str:
    """SHA-256 of ``data`` as lowercase hex (the C implementation; for tests against ``hashlib``)."""
    cdef unsigned char d[32]
    ts_sha256_finish(TS_IV, 0, <const unsigned char*>data, len(data), d)
    return PyBytes_FromStringAndSize(<char*>d, 32).hex()


cdef class Hmac:
    """An HMAC-SHA256 key absorbed once (inner and outer midstates); ``hexdigest(msg)`` signs one message.

    Never shows the key: the midstates are wiped when the object goes."""

    cdef HmacKey key

    def __init__(self, bytes key not None) -> None:
        ts_hmac_key(<const unsigned char*>key, len(key), self.key.inner, self.key.outer)

    def hexdigest(self, bytes msg not None) -> str:
        cdef char hex[64]
        ts_hmac_hex(self.key.inner, self.key.outer, <const unsigned char*>msg, len(msg), hex)
        return PyUnicode_DecodeASCII(hex, 64, NULL)

    def __repr__(self) -> str:
        return "Hmac(****)"

    def __reduce__(self):
        raise TypeError("keys are not serialisable")

    def __dealloc__(self) -> None:
        ts_wipe(&self.key, sizeof(HmacKey))


def hmac_sha256_hex(bytes key not None, bytes msg not None) -> str:
    """HMAC-SHA256(key, msg) as lowercase hex."""
    return Hmac(key).hexdigest(msg)


# ---- rate windows ------------------------------------------------------------------------------------------------

cdef class RateWindows:
    """Fixed-window counters, one per venue limit: ``(orders, window_ms, limit)`` with ``orders`` False for
    request weight. Windows start at multiples of ``window_ms`` (Binance's fixed windows); a request of a given
    weight and order count may go now when no window would pass ``safety`` x its limit, else ``delay`` says how
    many ms until the window that blocks it rolls over. ``banned_until_ms``: nothing goes before it (a 429/418's
    Retry-After). Times are the caller's milliseconds."""

    def __init__(self, windows, double safety=0.9) -> None:
        self.banned_until_ms = 0
        self.configure(windows, safety)

    def configure(self, windows, double safety=0.9) -> None:
        """Replace the windows (their counts start from zero)."""
        windows = list(windows)
        if len(windows) > MAX_WINDOWS:
            raise ValueError(f"at most {MAX_WINDOWS} rate windows")
        if not 0 < safety <= 1:
            raise ValueError("safety must be in (0, 1]")
        for orders, window_ms, limit in windows:
            if window_ms <= 0 or limit <= 0:
                raise ValueError(f"a rate window needs a positive span and limit, got {window_ms} ms / {limit}")
        self.n = 0
        for i, (orders, window_ms, limit) in enumerate(windows):
            self.orders[i] = bool(orders)
            self.window_ms[i] = window_ms
            self.limit[i] = limit
            self.start[i] = 0
            self.count[i] = 0
        self.n = len(windows)
        self.safety = safety

    cdef void roll(self, int i, int64_t now) noexcept:
        cdef int64_t s = now - now % self.window_ms[i]
        if s != self.start[i]:
            self.start[i] = s
            self.count[i] = 0

    cdef int64_t delay(self, int64_t now, int64_t weight, int64_t orders) noexcept:
        cdef int64_t wait = self.banned_until_ms - now, need, until
        cdef int i
        if wait < 0:
            wait = 0
        for i in range(self.n):
            self.roll(i, now)
            need = orders if self.orders[i] else weight
            if need and <double>(self.count[i] + need) > <double>self.limit[i] * self.safety:
                until = self.start[i] + self.window_ms[i] - now
                if until > wait:
                    wait = until
        return wait

    cdef void charge(self, int64_t now, int64_t weight, int64_t orders) noexcept:
        cdef int i
        for i in range(self.n):
            self.roll(i, now)
            self.count[i] += orders if self.orders[i] else weight

    def delay_ms(self, int64_t now, int64_t weight, int64_t orders=0) -> int:
        """How long (ms) a request of this cost must wait at ``now`` (0: it may go)."""
        return self.delay(now, weight, orders)

    def add(self, int64_t now, int64_t weight, int64_t orders=0) -> None:
        """Count a request that went."""
        self.charge(now, weight, orders)

    def set_count(self, int i, int64_t now, int64_t value) -> None:
        """Adopt the venue's own count for window ``i`` (from a response header or ``rateLimits``)."""
        if not 0 <= i < self.n:
            raise IndexError(i)
        self.roll(i, now)
        self.count[i] = value

    def used(self, int i, int64_t now) -> int:
        if not 0 <= i < self.n:
            raise IndexError(i)
        self.roll(i, now)
        return self.count[i]


# ---- pre-trade risk ------------------------------------------------------------------------------------------------

RISK_OK = 0
RISK_REASONS = ("", "halted", "reducing", "book_unsynced", "book_stale", "book_crossed", "no_price",
                "order_notional", "position_notional", "price_band", "open_orders", "order_rate",
                "order_qty", "position_qty", "min_notional", "order_rate_1s", "price_tick")
RISK_ACCOUNT = -1          # ``last_sym`` of a refusal by an account-wide limit (open orders, order rate)


cdef int _limits(Limits* lim, double order_qty, double order_notional, double position_qty,
                 double position_notional, double band_bps, double min_notional, int64_t open_orders,
                 int64_t per_s, int64_t per_10s) except -1:
    """Fill ``lim``, or raise ``ValueError`` naming the limit that is out of range (0 turns an optional one off)."""
    if not (order_notional > 0 and position_notional > 0 and band_bps > 0):
        raise ValueError("risk limits must be positive (order and position notional, price band)")
    if not (order_qty >= 0 and position_qty >= 0 and min_notional >= 0 and per_s >= 0):
        raise ValueError("optional risk limits must be >= 0 (0: off)")
    if open_orders < 1 or per_10s < 1:
        raise ValueError("risk counts must be at least 1 (open orders, orders per 10 s)")
    lim.order_qty, lim.order_notional, lim.position_qty = order_qty, order_notional, position_qty
    lim.position_notional, lim.band_bps, lim.min_notional = position_notional, band_bps, min_notional
    lim.open_orders, lim.per_s, lim.per_10s = open_orders, per_s, per_10s
    return 0


cdef int _rate_init(Rate* r, int64_t per_s, int64_t per_10s) except -1:
    r.cap = per_10s if per_10s > per_s else per_s
    r.n = r.head = 0
    r.t = <double*>malloc(r.cap * sizeof(double))
    if r.t is NULL:
        raise MemoryError()
    return 0


cdef inline bint _rate_full(Rate* r, int64_t limit, double window_s, double now_s) noexcept:
    """``limit`` orders were already sent within ``window_s`` (inclusive) before ``now_s``: one more is too many."""
    return limit > 0 and r.n >= limit and now_s - r.t[(r.head - limit + r.cap) % r.cap] <= window_s


cdef inline void _rate_add(Rate* r, double now_s) noexcept:
    r.t[r.head] = now_s
    r.head = (r.head + 1) % r.cap
    if r.n < r.cap:
        r.n += 1


cdef class RiskCore:
    """The pre-trade checks, in order: trading state (0 active, 1 reducing: only position-reducing orders,
    2 halted: only reduce-only orders on the side that closes the position, so the trader can always get out),
    book health (synced, fresh, not crossed), a limit price of at least one tick, a price to value the order by
    (the limit, else the mid), then the symbol's limits: order quantity, notional and the minimum notional (not
    for reduce-only orders: the way out stays open), position quantity and notional after the order (unless it reduces), the limit's
    distance from the mid in bps; then the counts: open orders and our own order rate over a sliding 1 s and
    10 s, for the account and for the symbol. ``check`` returns 0 and counts the order against the rates, or the
    index of the first failed check in ``RISK_REASONS`` (and counts nothing); ``last_limit``, ``last_value`` and
    ``last_sym`` then say which limit and what value broke it.

    The constructor's limits are the account's counts (open orders, order rates) and every symbol's defaults;
    ``add_symbol`` gives a symbol its own (counts no looser than the account's). ``sym`` -1 checks against the
    defaults and the account alone. Sizes and prices are doubles in instrument units (qty in base asset, prices
    in quote): limits are thresholds, the OMS keeps the exact accounting. A missing price or mid is NaN."""

    def __cinit__(self, double max_order_notional, double max_position_notional, int64_t max_open_orders,
                  double price_band_bps, int64_t max_orders_per_10s, int64_t max_orders_per_s=0,
                  double max_order_qty=0, double max_position_qty=0, double min_notional=0) -> None:
        _limits(&self.glob, max_order_qty, max_order_notional, max_position_qty, max_position_notional,
                price_band_bps, min_notional, max_open_orders, max_orders_per_s, max_orders_per_10s)
        self.lims = <Limits*>calloc(MAX_SYMBOLS, sizeof(Limits))
        self.rates = <Rate*>calloc(MAX_SYMBOLS, sizeof(Rate))
        if self.lims is NULL or self.rates is NULL:
            raise MemoryError()
        _rate_init(&self.acct, max_orders_per_s, max_orders_per_10s)
        self.index = {}
        self.last_sym = -1

    def __dealloc__(self) -> None:
        cdef int i
        if self.rates is not NULL:
            for i in range(self.n_syms):
                free(self.rates[i].t)
        free(self.acct.t)
        free(self.lims)
        free(self.rates)

    @property
    def max_order_notional(self) -> float:
        return self.glob.order_notional

    @property
    def max_open_orders(self) -> int:
        return self.glob.open_orders

    @property
    def max_orders_per_10s(self) -> int:
        return self.glob.per_10s

    def add_symbol(self, str symbol not None, double max_order_qty=-1, double max_order_notional=-1,
                   double max_position_qty=-1, double max_position_notional=-1, double price_band_bps=-1,
                   double min_notional=-1, int64_t max_open_orders=-1, int64_t max_orders_per_s=-1,
                   int64_t max_orders_per_10s=-1) -> int:
        """Give ``symbol`` its limits (each left out, or < 0: the default's) and return its index. Counts may not
        be looser than the account's. Called again, it replaces the limits (the symbol's rate history stays)."""
        cdef Limits lim
        cdef Limits* g = &self.glob
        cdef int i = self.index.get(symbol, self.n_syms)
        _limits(&lim, g.order_qty if max_order_qty < 0 else max_order_qty,
                g.order_notional if max_order_notional < 0 else max_order_notional,
                g.position_qty if max_position_qty < 0 else max_position_qty,
                g.position_notional if max_position_notional < 0 else max_position_notional,
                g.band_bps if price_band_bps < 0 else price_band_bps,
                g.min_notional if min_notional < 0 else min_notional,
                g.open_orders if max_open_orders < 0 else max_open_orders,
                g.per_s if max_orders_per_s < 0 else max_orders_per_s,
                g.per_10s if max_orders_per_10s < 0 else max_orders_per_10s)
        if lim.open_orders > g.open_orders or lim.per_10s > g.per_10s or (g.per_s and lim.per_s > g.per_s):
            raise ValueError(f"{symbol}: open orders and order rates may not exceed the account's")
        if i == self.n_syms:
            if i >= MAX_SYMBOLS:
                raise ValueError(f"at most {MAX_SYMBOLS} symbols")
            _rate_init(&self.rates[i], lim.per_s, lim.per_10s)
            self.index[symbol] = i
            self.n_syms += 1
        elif self.rates[i].cap < lim.per_s or self.rates[i].cap < lim.per_10s:
            raise ValueError(f"{symbol}: its order-rate limits may only be lowered once it has traded")
        self.lims[i] = lim
        return i

    def symbol(self, str symbol not None, double venue_min_notional=0) -> int:
        """``symbol``'s index (registered with the defaults on first use); the venue's minimum notional, when
        given, is the floor of the symbol's."""
        cdef int i = self.index.get(symbol, -1)
        if i < 0:
            i = self.add_symbol(symbol)
        if venue_min_notional > self.lims[i].min_notional:
            self.lims[i].min_notional = venue_min_notional
        return i

    def limits(self, int sym=-1) -> dict:
        """The limits in force for symbol index ``sym`` (-1: the defaults and the account's counts)."""
        cdef Limits* lim = self._lim(sym)
        return {"max_order_qty": lim.order_qty, "max_order_notional": lim.order_notional,
                "max_position_qty": lim.position_qty, "max_position_notional": lim.position_notional,
                "price_band_bps": lim.band_bps, "min_notional": lim.min_notional,
                "max_open_orders": lim.open_orders, "max_orders_per_s": lim.per_s,
                "max_orders_per_10s": lim.per_10s}

    cdef Limits* _lim(self, int sym) except NULL:
        if sym == -1:
            return &self.glob
        if not 0 <= sym < self.n_syms:
            raise IndexError(f"no risk symbol {sym}")
        return &self.lims[sym]

    cdef int refuse(self, int code, double limit, double value, int sym) noexcept:
        self.last_limit, self.last_value, self.last_sym = limit, value, sym
        return code

    cdef int check_c(self, bint buy, double qty, double price, double mid, double position, bint reduce_only,
                     bint synced, bint stale, bint crossed, double now_s, int sym, int64_t sym_open) noexcept:
        """``sym``: the symbol's index, or -1 (the defaults, the account alone); ``sym_open``: the symbol's open
        orders, or -1 when its limit is not tighter than the account's (nothing to count)."""
        cdef bint reduces = reduce_only or (position > 0 and not buy and qty <= position) or \
            (position < 0 and buy and qty <= -position)
        cdef Limits* lim = &self.glob if sym < 0 else &self.lims[sym]
        cdef int code
        if self.state == 2 and not (reduce_only and ((position > 0 and not buy) or (position < 0 and buy))):
            return 1                       # halted: only reduce-only orders against the position (flat, TP/SL)
        if self.state == 1 and not reduces:
            return 2
        if not synced:
            return 3
        if stale:
            return 4
        if crossed:
            return 5
        code = self.limits_c(lim, sym, buy, qty, price, mid, position, reduces, reduce_only)
        if code:
            return code
        return self.counts_c(lim, <Rate*>NULL if sym < 0 else &self.rates[sym], sym, sym_open, now_s)

    cdef int limits_c(self, Limits* lim, int sym, bint buy, double qty, double price, double mid, double position,
                      bint reduces, bint reduce_only) noexcept:
        """The symbol's numeric limits on one order (a reason code, or 0)."""
        cdef double ref, after, notional, bps
        if not isnan(price) and not price > 0:
            return self.refuse(16, 0.0, price, sym)                    # a limit below one tick is no price
        ref = mid if isnan(price) else price
        if isnan(ref) or ref <= 0:
            return 6
        notional = qty * ref
        if not reduce_only:                # a reduce-only order can only close: the way out stays open
            if lim.order_qty > 0 and qty > lim.order_qty:
                return self.refuse(12, lim.order_qty, qty, sym)
            if notional > lim.order_notional:
                return self.refuse(7, lim.order_notional, notional, sym)
            if notional < lim.min_notional:
                return self.refuse(14, lim.min_notional, notional, sym)
        after = fabs(position + (qty if buy else -qty))
        if not reduces and lim.position_qty > 0 and after > lim.position_qty:
            return self.refuse(13, lim.position_qty, after, sym)
        if not reduces and after * ref > lim.position_notional:
            return self.refuse(8, lim.position_notional, after * ref, sym)
        if not isnan(price) and not isnan(mid) and mid != 0:
            bps = fabs(price - mid) / mid * 10_000
            if bps > lim.band_bps:
                return self.refuse(9, lim.band_bps, bps, sym)
        return 0

    cdef int counts_c(self, Limits* lim, Rate* rate, int sym, int64_t sym_open, double now_s) noexcept:
        """Open orders and the order rates, the account's then the symbol's; on success the order is counted."""
        cdef Limits* g = &self.glob
        if self.open_orders >= g.open_orders:
            return self.refuse(10, <double>g.open_orders, <double>self.open_orders, -1)
        if sym_open >= 0 and sym_open >= lim.open_orders:
            return self.refuse(10, <double>lim.open_orders, <double>sym_open, sym)
        if _rate_full(&self.acct, g.per_s, 1.0, now_s):
            return self.refuse(15, <double>g.per_s, <double>g.per_s, -1)
        if _rate_full(&self.acct, g.per_10s, 10.0, now_s):
            return self.refuse(11, <double>g.per_10s, <double>g.per_10s, -1)
        if rate is not NULL:
            if _rate_full(rate, lim.per_s, 1.0, now_s):
                return self.refuse(15, <double>lim.per_s, <double>lim.per_s, sym)
            if _rate_full(rate, lim.per_10s, 10.0, now_s):
                return self.refuse(11, <double>lim.per_10s, <double>lim.per_10s, sym)
            _rate_add(rate, now_s)
        _rate_add(&self.acct, now_s)
        return 0

    def check(self, bint buy, double qty, double price, double mid, double position, bint reduce_only,
              bint synced=True, bint stale=False, bint crossed=False, double now_s=0.0, int sym=-1,
              int64_t sym_open_orders=-1) -> int:
        """0 when the order may go (and it is counted), else the reason's index in ``RISK_REASONS``. ``sym``: a
        symbol index (``symbol``), -1 for the defaults and the account alone; ``sym_open_orders``: the symbol's
        own open orders (-1: not counted)."""
        if not -1 <= sym < self.n_syms:
            raise IndexError(f"no risk symbol {sym}")
        return self.check_c(buy, qty, price, mid, position, reduce_only, synced, stale, crossed, now_s, sym,
                            sym_open_orders)

    def check_order(self, SymbolFeed sf not None, bint buy, int64_t lots, object ticks, double tick, double step,
                    double position, bint reduce_only, int64_t open_orders, int64_t now_ns, int64_t stale_ns,
                    set live=None, dict orders=None) -> int:
        """``check`` for an order in integer ``lots`` and ``ticks`` (None: MARKET; a limit's ticks must be >= 1) on
        ``sf``'s book, read in C: synced, fresh (a diff applied within ``stale_ns`` of exchange time before
        ``now_ns``), not crossed, its mid the reference; the symbol's limits (registered on first use, the venue's
        minimum notional as the floor). ``open_orders`` is the OMS's count; ``live``/``orders`` (the OMS's open
        order ids and orders) count the symbol's own when its limit is tighter. The order rate runs on
        ``CLOCK_MONOTONIC`` seconds, as ``time.monotonic()``."""
        cdef int sym = self.index.get(sf.symbol, -1)
        cdef int64_t sym_open = -1
        if sym < 0:
            sym = self.symbol(sf.symbol, float(sf.instrument.min_notional))
        if live is not None and orders is not None and self.lims[sym].open_orders < self.glob.open_orders:
            sym_open = _count_symbol(live, orders, sf.symbol)
        return self.check_book(sf, sym, buy, lots, 0 if ticks is None else ticks, ticks is None, tick, step,
                               position, reduce_only, open_orders, sym_open, now_ns, stale_ns)

    cdef int check_book(self, SymbolFeed sf, int sym, bint buy, int64_t lots, int64_t ticks, bint market,
                        double tick, double step, double position, bint reduce_only, int64_t open_orders,
                        int64_t sym_open, int64_t now_ns, int64_t stale_ns) noexcept:
        cdef Book book = sf.book
        cdef bint synced = sf.state == S_SYNCED
        cdef double mid = book.mid_ticks() * tick
        self.open_orders = open_orders
        return self.check_c(buy, lots * step, NAN if market else (ticks * tick if ticks > 0 else 0.0), mid,
                            position, reduce_only, synced, not synced or now_ns - sf.last_book_ns > stale_ns,
                            book.best_bid != NO_BID and book.best_ask != NO_ASK and book.best_bid >= book.best_ask,
                            _monotonic_s(), sym, sym_open)

    @property
    def orders_in_window(self) -> int:
        """Orders the account sent, as far back as the rate windows look (capped at the larger limit)."""
        return self.acct.n


cdef int64_t _count_symbol(set live, dict orders, str symbol) except -1:
    """The open orders (``live`` ids in ``orders``) on ``symbol``."""
    cdef int64_t n = 0
    for cid in live:
        o = orders.get(cid)
        if o is not None and o.symbol == symbol:
            n += 1
    return n


# ---- the order.place frame -----------------------------------------------------------------------------------------

TIFS = ("GTC", "IOC", "FOK", "GTX")
cdef int TIF_MARKET = -1             # ``encode``'s time in force for a MARKET order
cdef enum:
    _SENT = 0
    _RATE_LIMITED = 1
    _NOT_CONNECTED = 2

PLACE_SENT = _SENT
PLACE_RATE_LIMITED = _RATE_LIMITED
PLACE_NOT_CONNECTED = _NOT_CONNECTED
cdef int FRAME_CAP = 2048


cdef inline bint _cid_ok(const char* s, Py_ssize_t n) noexcept:
    """Binance's newClientOrderId alphabet ``[.A-Z:/a-z0-9_-]{1,36}``: nothing in it needs a JSON escape."""
    cdef Py_ssize_t i
    cdef char c
    if n < 1 or n > 36:
        return False
    for i in range(n):
        c = s[i]
        if not ((b'a' <= c <= b'z') or (b'A' <= c <= b'Z') or (b'0' <= c <= b'9') or c == b'.' or c == b':'
                or c == b'/' or c == b'_' or c == b'-'):
            return False
    return True


cdef inline bint _plain(const char* s, Py_ssize_t n) noexcept:
    """Letters, digits, ``-``, ``_`` and ``.`` only (API keys, symbols): nothing a JSON string must escape."""
    cdef Py_ssize_t i
    cdef char c
    for i in range(n):
        c = s[i]
        if not ((b'a' <= c <= b'z') or (b'A' <= c <= b'Z') or (b'0' <= c <= b'9') or c == b'-' or c == b'_'
                or c == b'.'):
            return False
    return n > 0


cdef inline bint _b64_ok(const char* s, Py_ssize_t n) noexcept:
    """Base64 (standard alphabet with padding): nothing in it needs a JSON escape."""
    cdef Py_ssize_t i
    cdef char c
    if n < 1:
        return False
    for i in range(n):
        c = s[i]
        if not ((b'a' <= c <= b'z') or (b'A' <= c <= b'Z') or (b'0' <= c <= b'9') or c == b'+' or c == b'/'
                or c == b'='):
            return False
    return True


cdef int _tif_index(str tif) except -1:
    if tif == "GTC":
        return 0
    if tif == "IOC":
        return 1
    if tif == "FOK":
        return 2
    if tif == "GTX":
        return 3
    raise ValueError(f"time in force {tif!r} is not one of {TIFS}")


cdef int _order_tif(object ticks, object tif) except -2:
    """``TIF_MARKET`` for a MARKET order (``ticks`` None), else the LIMIT's time in force."""
    if ticks is None:
        return TIF_MARKET
    if tif is None:
        raise ValueError("a LIMIT order needs a time in force")
    return _tif_index(tif)


cdef inline int64_t _ticks(object ticks) except? -1:
    return 0 if ticks is None else ticks


cdef inline double _monotonic_s() noexcept:
    cdef timespec ts
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return ts.tv_sec + ts.tv_nsec * 1e-9


cdef inline int64_t _monotonic_ns() noexcept:
    cdef timespec ts
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return ts.tv_sec * 1_000_000_000 + ts.tv_nsec


cdef inline int64_t _realtime_ms() noexcept:
    cdef timespec ts
    clock_gettime(CLOCK_REALTIME, &ts)
    return ts.tv_sec * 1000 + ts.tv_nsec // 1_000_000


cdef class OrderWire:
    """Writes, signs and sends Binance WebSocket API ``order.place`` requests for LIMIT and MARKET orders.

    ``api_key``: the key sent in ``apiKey``. Exactly one of ``secret`` (HMAC-SHA256; the key is absorbed into
    midstates at once and the bytes are not kept) and ``signer`` (a callable: signature payload ``str`` ->
    signature ``str``, for Ed25519 keys). ``limits``: the venue's rate windows, checked and charged per order
    (``RateLimiter.core``), on the same wall clock in ms as the limiter's default. Symbols are registered once
    with their grids (``add_symbol``) and then named by index. Stop orders, ``closePosition`` and anything but
    ``order.place`` take the general path (``WsApi.signed`` + orjson)."""

    def __cinit__(self) -> None:
        self.syms = <SymFmt*>calloc(MAX_SYMBOLS, sizeof(SymFmt))
        if self.syms is NULL:
            raise MemoryError()
        self.buf = bytearray(FRAME_CAP)
        self.fd = -1

    def __init__(self, str api_key not None, bytes secret=None, signer=None, int64_t recv_window_ms=5000,
                 RateWindows limits=None) -> None:
        cdef Py_ssize_t n
        cdef const char* k = PyUnicode_AsUTF8AndSize(api_key, &n)
        if (secret is None) == (signer is None):
            raise ValueError("OrderWire needs exactly one of an HMAC secret or an Ed25519 signer")
        if n >= KEY_LEN or not _plain(k, n):
            raise ValueError("the API key must be 1-127 of [A-Za-z0-9._-]")
        if not 0 < recv_window_ms <= 60_000:
            raise ValueError("recvWindow must be in 1..60000 ms")
        memcpy(self.api_key, k, n)
        self.api_key_len = <int>n
        if secret is not None:
            if not secret:
                raise ValueError("empty HMAC secret")
            ts_hmac_key(<const unsigned char*>secret, len(secret), self.key.inner, self.key.outer)
            self.has_hmac = True
        else:
            if not callable(signer):
                raise ValueError("signer must be callable")
            self.signer = signer
        self.recv_window_ms = recv_window_ms
        self.limits = limits
        from picows import WSMsgType
        self.text_type = WSMsgType.TEXT

    def __dealloc__(self) -> None:
        ts_wipe(&self.key, sizeof(HmacKey))
        ts_wipe(self.payload, PAYLOAD_CAP)
        free(self.syms)

    def __repr__(self) -> str:
        return f"OrderWire({'hmac' if self.has_hmac else 'ed25519'}, {self.n_syms} symbols)"

    def __reduce__(self):
        raise TypeError("keys are not serialisable")

    def add_symbol(self, str symbol not None, int64_t tick_mant, int tick_dec, int64_t step_mant,
                   int step_dec) -> int:
        """Register a symbol and its grids (tickSize = tick_mant x 10**-tick_dec, stepSize likewise); returns
        its index."""
        cdef Py_ssize_t n
        cdef const char* s = PyUnicode_AsUTF8AndSize(symbol, &n)
        cdef SymFmt* f
        if self.n_syms >= MAX_SYMBOLS:
            raise ValueError(f"at most {MAX_SYMBOLS} symbols")
        if n >= SYM_LEN or not _plain(s, n):
            raise ValueError(f"symbol {symbol!r} must be 1-31 of [A-Za-z0-9._-]")
        if tick_mant < 1 or step_mant < 1 or not 0 <= tick_dec <= 18 or not 0 <= step_dec <= 18:
            raise ValueError(f"{symbol}: bad grid {tick_mant}e-{tick_dec} / {step_mant}e-{step_dec}")
        f = &self.syms[self.n_syms]
        memcpy(f.name, s, n)
        f.name_len = <int>n
        f.tick_mant, f.tick_dec, f.step_mant, f.step_dec = tick_mant, tick_dec, step_mant, step_dec
        self.n_syms += 1
        return self.n_syms - 1

    cdef Py_ssize_t encode(self, int sym, bint buy, int64_t lots, int64_t ticks, int tif, bint reduce_only,
                           const char* cid, Py_ssize_t cid_len, int64_t rid, int64_t ts_ms) except -1:
        """The frame at ``buf[FRAME_ROOM:]``, its signature payload in ``payload``; returns the frame length.
        ``tif`` ``TIF_MARKET``: a MARKET order (no price, no timeInForce; ``ticks`` unused); any other is a LIMIT
        whose ``ticks`` must be >= 1 (never a MARKET by accident: a price that rounded to nothing raises)."""
        cdef SymFmt* f
        cdef char frame[2048]
        cdef char qty[48]
        cdef char px[48]
        cdef char* j = frame
        cdef char* q = self.payload
        cdef char* qe
        cdef char* pe = px
        cdef bint limit = tif != TIF_MARKET
        cdef const char* tifs
        cdef char hex[64]
        cdef Py_ssize_t sn, n
        cdef const char* sig
        if not 0 <= sym < self.n_syms:
            raise IndexError(f"no symbol {sym}")
        f = &self.syms[sym]
        if lots < 1 or lots > INT64_MAX // f.step_mant or (limit and not 1 <= ticks <= INT64_MAX // f.tick_mant):
            raise ValueError(f"bad order size or price: {lots} lots, {ticks} ticks")
        if not _cid_ok(cid, cid_len):
            raise ValueError("newClientOrderId must be 1-36 of [.A-Z:/a-z0-9_-]")
        if rid < 0 or ts_ms < 0:
            raise ValueError("request id and timestamp must be non-negative")
        qe = ts_put_dec(qty, <uint64_t>(lots * f.step_mant), f.step_dec)
        if limit:
            pe = ts_put_dec(px, <uint64_t>(ticks * f.tick_mant), f.tick_dec)
        tifs = "GTC" if tif == 0 else "IOC" if tif == 1 else "FOK" if tif == 2 else "GTX"
        # the JSON request, keys in WsApi.signed's order (the order's params, then apiKey, recvWindow, ...)
        j = ts_puts(j, b'{"id":')
        j = ts_put_uint(j, <uint64_t>rid)
        j = ts_puts(j, b',"method":"order.place","params":{"symbol":"')
        j = ts_put(j, f.name, f.name_len)
        j = ts_puts(j, b'","side":"BUY","type":"' if buy else b'","side":"SELL","type":"')
        j = ts_puts(j, b'LIMIT' if limit else b'MARKET')
        j = ts_puts(j, b'","newClientOrderId":"')
        j = ts_put(j, cid, cid_len)
        j = ts_puts(j, b'","quantity":"')
        j = ts_put(j, qty, qe - qty)
        if limit:
            j = ts_puts(j, b'","price":"')
            j = ts_put(j, px, pe - px)
            j = ts_puts(j, b'","timeInForce":"')
            j = ts_put(j, tifs, 3)
        if reduce_only:
            j = ts_puts(j, b'","reduceOnly":"true')
        j = ts_puts(j, b'","apiKey":"')
        j = ts_put(j, self.api_key, self.api_key_len)
        j = ts_puts(j, b'","recvWindow":')
        j = ts_put_uint(j, <uint64_t>self.recv_window_ms)
        j = ts_puts(j, b',"timestamp":')
        j = ts_put_uint(j, <uint64_t>ts_ms)
        j = ts_puts(j, b',"signature":"')
        # the signature payload: every param but the signature, sorted by name
        q = ts_puts(q, b'apiKey=')
        q = ts_put(q, self.api_key, self.api_key_len)
        q = ts_puts(q, b'&newClientOrderId=')
        q = ts_put(q, cid, cid_len)
        if limit:
            q = ts_puts(q, b'&price=')
            q = ts_put(q, px, pe - px)
        q = ts_puts(q, b'&quantity=')
        q = ts_put(q, qty, qe - qty)
        q = ts_puts(q, b'&recvWindow=')
        q = ts_put_uint(q, <uint64_t>self.recv_window_ms)
        if reduce_only:
            q = ts_puts(q, b'&reduceOnly=true')
        q = ts_puts(q, b'&side=BUY&symbol=' if buy else b'&side=SELL&symbol=')
        q = ts_put(q, f.name, f.name_len)
        if limit:
            q = ts_puts(q, b'&timeInForce=')
            q = ts_put(q, tifs, 3)
        q = ts_puts(q, b'&timestamp=')
        q = ts_put_uint(q, <uint64_t>ts_ms)
        q = ts_puts(q, b'&type=LIMIT' if limit else b'&type=MARKET')
        self.payload_len = <int>(q - self.payload)
        if self.has_hmac:
            ts_hmac_hex(self.key.inner, self.key.outer, <const unsigned char*>self.payload, self.payload_len, hex)
            j = ts_put(j, hex, 64)
        else:
            signature = self.signer(PyUnicode_DecodeASCII(self.payload, self.payload_len, NULL))
            sig = PyUnicode_AsUTF8AndSize(signature, &sn)
            if sn > 256 or not _b64_ok(sig, sn):
                raise ValueError("the signer returned something that is not a base64 signature")
            j = ts_put(j, sig, sn)
        j = ts_puts(j, b'"}}')
        n = j - frame
        if PyByteArray_Resize(self.buf, FRAME_ROOM + n) < 0:
            raise MemoryError()
        memcpy(PyByteArray_AS_STRING(self.buf) + FRAME_ROOM, frame, n)
        return n

    def bind(self, transport) -> None:
        """Write to ``transport``'s socket directly (when it is plain TCP), as picows's own send does: frame and
        mask in place, ``send(2)``, and the asyncio transport takes whatever the socket did not. Called on
        connect; ``place`` binds a transport it has not seen."""
        self.bound = transport
        self.fd = -1
        if transport is None or transport.is_secure:
            return
        under = transport.underlying_transport
        sock = under.get_extra_info("socket")
        if sock is None:
            return
        self.write_buffer_size = under.get_write_buffer_size
        self.transport_write = under.write
        self.fd = sock.fileno()

    cdef int send_frame(self, Py_ssize_t n) except -1:
        """The frame of ``n`` payload bytes at ``buf[FRAME_ROOM:]`` as one masked TEXT WebSocket frame (RFC 6455:
        FIN, opcode 1, MASK, 7- or 16-bit length) on ``fd``; what ``send`` does not take goes to the transport."""
        cdef unsigned char* p = <unsigned char*>PyByteArray_AS_STRING(self.buf) + FRAME_ROOM
        cdef unsigned char* h
        cdef uint32_t key
        cdef unsigned char k[4]
        cdef Py_ssize_t i, total
        cdef ssize_t sent
        if self.n_masks == 0:
            self.refill_masks()
        self.n_masks -= 1
        key = self.masks[self.n_masks]
        memcpy(k, &key, 4)
        if n < 126:
            h = p - 6
            h[1] = 0x80 | <unsigned char>n
        else:                                   # n < FRAME_CAP < 65536
            h = p - 8
            h[1] = 0x80 | 126
            h[2] = <unsigned char>(n >> 8)
            h[3] = <unsigned char>(n & 0xff)
        h[0] = 0x81
        memcpy(p - 4, k, 4)
        for i in range(n):
            p[i] ^= k[i & 3]
        total = n + (p - h)
        while True:
            sent = c_send(self.fd, h, total, MSG_NOSIGNAL | MSG_DONTWAIT)
            if sent >= 0 or errno != EINTR:
                break
        if sent == total:
            return 0
        if sent < 0:                            # EAGAIN or an error: the transport sends it or reports the loss
            sent = 0
        self.transport_write(PyBytes_FromStringAndSize(<char*>h + sent, total - sent))
        return 0

    def refill_masks(self) -> None:
        import os
        cdef bytes fresh = os.urandom(4 * 64)
        memcpy(self.masks, <const char*>fresh, 4 * 64)
        self.n_masks = 64

    def frame(self, int sym, bint buy, int64_t lots, object ticks, object tif, bint reduce_only,
              str cid not None, int64_t rid, int64_t ts_ms) -> bytes:
        """The request frame's bytes (what ``place`` would send), for tests and inspection; ``ticks`` None: a
        MARKET order (``tif`` unused), else a LIMIT at ``ticks`` >= 1."""
        cdef Py_ssize_t cn
        cdef const char* c = PyUnicode_AsUTF8AndSize(cid, &cn)
        cdef Py_ssize_t n = self.encode(sym, buy, lots, _ticks(ticks), _order_tif(ticks, tif), reduce_only, c, cn,
                                        rid, ts_ms)
        return PyBytes_FromStringAndSize(PyByteArray_AS_STRING(self.buf) + FRAME_ROOM, n)

    @property
    def last_payload(self) -> str:
        """The signature payload of the last frame (for tests)."""
        return PyUnicode_DecodeASCII(self.payload, self.payload_len, NULL)

    def __next__(self) -> int:
        """The next request id (the WebSocket API's general path takes its ids here too: one sequence)."""
        self.next_id += 1
        return self.next_id

    def place(self, transport, int sym, bint buy, int64_t lots, object ticks, object tif,
              bint reduce_only, str cid not None, int64_t rid, int64_t offset_ms) -> int:
        """Check the rate windows, write the frame and send it on the picows ``transport`` now; ``timestamp`` is
        this host's ``CLOCK_REALTIME`` in ms plus ``offset_ms`` (the venue's clock minus ours).

        Returns ``PLACE_SENT`` (the bytes were handed to ``send(2)``, or to the transport's buffer when the socket
        was full, and the order is charged to the windows), ``PLACE_RATE_LIMITED`` (nothing sent: a window is
        full; the caller waits through the limiter) or ``PLACE_NOT_CONNECTED`` (nothing sent). Errors in the
        order (size, id) raise ``ValueError`` before anything is sent; a write that fails in picows raises what
        picows raises (a failing ``send(2)`` of our own is left to the transport, which reports the loss)."""
        return self.place_c(transport, sym, buy, lots, _ticks(ticks), _order_tif(ticks, tif), reduce_only, cid, rid,
                            offset_ms)

    cdef int place_c(self, object transport, int sym, bint buy, int64_t lots, int64_t ticks, int tif,
                     bint reduce_only, str cid, int64_t rid, int64_t offset_ms) except -1:
        cdef int64_t now = _realtime_ms()
        cdef Py_ssize_t cn
        cdef const char* c = PyUnicode_AsUTF8AndSize(cid, &cn)
        cdef Py_ssize_t n
        self.last_write_ns = 0                  # until this frame is written (a failed write leaves it 0)
        if transport is None or transport.is_disconnected or transport.is_close_frame_sent:
            return _NOT_CONNECTED
        if self.limits is not None and self.limits.delay(now, 0, 1) > 0:
            return _RATE_LIMITED
        if transport is not self.bound:
            self.bind(transport)
        n = self.encode(sym, buy, lots, ticks, tif, reduce_only, c, cn, rid, now + offset_ms)
        if self.fd >= 0 and self.write_buffer_size() == 0:
            self.send_frame(n)
        else:
            transport.send_reuse_external_bytearray(self.text_type, self.buf, FRAME_ROOM)
        self.last_write_ns = _monotonic_ns()
        if self.limits is not None:
            self.limits.charge(now, 0, 1)
        return _SENT


GATE_SENT = 0
GATE_RATE_LIMITED = -_RATE_LIMITED
GATE_NOT_CONNECTED = -_NOT_CONNECTED
GATE_DUPLICATE = -3


cdef class OrderGate:
    """One symbol's order path in one C call: an algorithm's order in integer lots and ticks, from the pre-trade
    risk check (``RiskCore.check_order`` on the symbol's live book) through the venue's rate windows to the signed
    ``order.place`` frame on the WebSocket API's socket (``OrderWire``). Built once per symbol and session; reads
    the position (``position.qty_f``), the OMS's open orders (``live``, a set) and its orders by id (``orders``,
    for idempotency), the venue clock offset (``clock.time_offset_ms``) and the connection (``wire.transport``)
    when it fires, so it never holds a stale copy of any of them. The symbol's risk limits are ``risk``'s for
    ``sf.symbol`` (registered on first use, the venue's minimum notional as the floor); when its open-order limit
    is tighter than the account's, its own open orders are counted (one pass over ``live``)."""

    def __init__(self, RiskCore risk not None, OrderWire wire not None, SymbolFeed sf not None, int sym,
                 double tick, double step, position, set live not None, dict orders not None, clock,
                 int64_t stale_ns) -> None:
        if not 0 <= sym < wire.n_syms:
            raise IndexError(f"no symbol {sym} in the wire")
        if not (tick > 0 and step > 0):
            raise ValueError("tick and step must be positive")
        self.risk, self.wire, self.sf, self.sym = risk, wire, sf, sym
        self.tick, self.step, self.position = tick, step, position
        self.live, self.orders, self.clock, self.stale_ns = live, orders, clock, stale_ns
        self.rsym = risk.symbol(sf.symbol, float(sf.instrument.min_notional))

    def fire(self, bint buy, int64_t lots, object ticks, object tif, bint reduce_only, str cid not None,
             int64_t now_ns) -> int:
        """Check and send one order (``ticks`` None: MARKET, ``tif`` then unused; else a LIMIT at ``ticks``, which
        risk refuses below one tick (``price_tick``): a price never becomes a MARKET order; ``now_ns``: the
        engine's clock, for the book's staleness). Returns ``GATE_SENT`` (the bytes are on the socket; ``rid`` is the request's id),
        a risk reason (> 0, an index of ``RISK_REASONS``; nothing sent), ``GATE_RATE_LIMITED`` or
        ``GATE_NOT_CONNECTED`` (passed risk, counted in its order rate, not sent: the caller takes the general
        path, which waits or connects), or ``GATE_DUPLICATE`` (the client id exists; nothing checked or sent).
        Raises ``ValueError`` for an order the wire cannot write (nothing sent), and what picows raises when its
        write fails."""
        cdef int t = _order_tif(ticks, tif)
        cdef int64_t px = _ticks(ticks)
        cdef double position = self.position.qty_f
        cdef int64_t offset_ms = self.clock.time_offset_ms
        cdef int64_t sym_open = -1
        cdef RiskCore risk = self.risk
        cdef int code
        if cid in self.orders:
            return -3
        if risk.lims[self.rsym].open_orders < risk.glob.open_orders:
            sym_open = _count_symbol(self.live, self.orders, self.sf.symbol)
        code = risk.check_book(self.sf, self.rsym, buy, lots, px, t == TIF_MARKET, self.tick, self.step, position,
                               reduce_only, len(self.live), sym_open, now_ns, self.stale_ns)
        if code:
            return code
        self.wire.next_id += 1
        self.rid = self.wire.next_id
        code = self.wire.place_c(self.wire.transport, self.sym, buy, lots, px, t, reduce_only, cid, self.rid,
                                 offset_ms)
        return -code
