# cython: language_level=3
"""L2 order book on integer ticks and integer lots.

Layout (after hftbacktest's ROI vector): each side is a flat ``int64`` ladder indexed by ``price - base`` over a
window of ``window`` ticks around the touch, so setting or deleting a level is one array store plus a compare
against the cached best price. Levels outside the window live in an ordered ``std::map`` per side, so nothing is
ever lost; when the mid drifts out of the central half of the window, the window is re-centred and levels move
between the map and the ladder.

Prices are ticks (``price / tick_size``), quantities are lots (``qty / step_size``): never floats.
"""
from cython.operator cimport dereference as deref, preincrement as inc, predecrement as dec
from libc.stdint cimport int64_t
from libc.math cimport NAN
from libc.stdlib cimport calloc, free, malloc
from libc.string cimport memmove, memset
from posix.time cimport CLOCK_MONOTONIC, clock_gettime, timespec
from libcpp.map cimport map as cmap

DEF_WINDOW = 32768


cdef class Book:
    """One instrument's L2 book (both sides), prices in ticks and sizes in lots.

    ``window`` is the width of the flat ladder in ticks (default 32768, 512 KB a book): wide enough that nearly
    every level Binance updates falls inside it (±2.6% of BTCUSDT at 0.10 ticks), since a level outside costs a
    tree lookup instead of an array store.
    """

    def __cinit__(self, int64_t window=DEF_WINDOW):
        if window < 64:
            raise ValueError(f"book window must be >= 64 ticks, got {window}")
        self.window = window
        self.bidq = <int64_t*>malloc(window * sizeof(int64_t))
        self.askq = <int64_t*>malloc(window * sizeof(int64_t))
        if self.bidq == NULL or self.askq == NULL:
            raise MemoryError()
        memset(self.bidq, 0, window * sizeof(int64_t))    # written, not calloc'd: pages fault in now, not
        memset(self.askq, 0, window * sizeof(int64_t))    # on the first update that touches them
        self.best_bid = NO_BID
        self.best_ask = NO_ASK
        self.has_base = False
        self.base = 0
        self.n_recenters = 0

    def __dealloc__(self):
        free(self.bidq)
        free(self.askq)

    # ---- C-level interface -------------------------------------------------------------------------------------

    cdef int64_t set_level(self, int side, int64_t price, int64_t qty) noexcept nogil:
        """Set the resting quantity at ``price`` (``qty == 0`` deletes); returns the quantity it replaced."""
        cdef int64_t old, i
        cdef int64_t* arr
        cdef cmap[int64_t, int64_t]* far
        cdef cmap[int64_t, int64_t].iterator it
        if not self.has_base:
            if qty == 0:
                return 0
            self.base = price - self.window // 2
            self.has_base = True
        i = price - self.base
        arr = self.bidq if side == BID else self.askq
        if <unsigned long long>i < <unsigned long long>self.window:
            old = arr[i]
            arr[i] = qty
        else:
            far = &self.far_bid if side == BID else &self.far_ask
            it = far.find(price)
            if it == far.end():
                old = 0
                if qty != 0:
                    far[0][price] = qty
            else:
                old = deref(it).second
                if qty != 0:
                    deref(it).second = qty
                else:
                    far.erase(it)
        if side == BID:
            if qty != 0:
                if price > self.best_bid:
                    self.best_bid = price
            elif price == self.best_bid:
                self.best_bid = self._next_bid_below(price)
        else:
            if qty != 0:
                if price < self.best_ask:
                    self.best_ask = price
            elif price == self.best_ask:
                self.best_ask = self._next_ask_above(price)
        return old

    cdef int64_t _next_bid_below(self, int64_t p) noexcept nogil:
        """Highest bid price strictly below ``p`` with a resting quantity, or NO_BID."""
        cdef int64_t cand = NO_BID
        cdef int64_t top = self.base + self.window - 1
        cdef int64_t i
        cdef cmap[int64_t, int64_t].iterator it
        if not self.far_bid.empty():
            it = self.far_bid.lower_bound(p)
            if it != self.far_bid.begin():
                dec(it)
                cand = deref(it).first
                if cand > top:          # a far level above the window beats every ladder level
                    return cand
        i = (p - 1 if p - 1 < top else top) - self.base
        while i >= 0:
            if self.bidq[i] != 0:
                return self.base + i
            i -= 1
        return cand

    cdef int64_t _next_ask_above(self, int64_t p) noexcept nogil:
        """Lowest ask price strictly above ``p`` with a resting quantity, or NO_ASK."""
        cdef int64_t cand = NO_ASK
        cdef int64_t i
        cdef cmap[int64_t, int64_t].iterator it
        if not self.far_ask.empty():
            it = self.far_ask.upper_bound(p)
            if it != self.far_ask.end():
                cand = deref(it).first
                if cand < self.base:    # a far level below the window beats every ladder level
                    return cand
        i = (p + 1 if p + 1 > self.base else self.base) - self.base
        while i < self.window:
            if self.askq[i] != 0:
                return self.base + i
            i += 1
        return cand

    cdef int64_t level_qty(self, int side, int64_t price) noexcept nogil:
        cdef int64_t i = price - self.base
        cdef cmap[int64_t, int64_t]* far
        cdef cmap[int64_t, int64_t].iterator it
        if not self.has_base:
            return 0
        if <unsigned long long>i < <unsigned long long>self.window:
            return self.bidq[i] if side == BID else self.askq[i]
        far = &self.far_bid if side == BID else &self.far_ask
        it = far.find(price)
        return 0 if it == far.end() else deref(it).second

    cdef int64_t best_qty(self, int side) noexcept nogil:
        if side == BID:
            return 0 if self.best_bid == NO_BID else self.level_qty(BID, self.best_bid)
        return 0 if self.best_ask == NO_ASK else self.level_qty(ASK, self.best_ask)

    cdef int64_t depth_ticks(self, int side, int64_t n_ticks) noexcept nogil:
        """Resting quantity (lots) within ``n_ticks`` of the touch, touch included: bids in [bb-n, bb]."""
        cdef int64_t lo, hi, i, a, b, total = 0
        cdef int64_t* arr
        cdef cmap[int64_t, int64_t]* far
        cdef cmap[int64_t, int64_t].iterator it
        if side == BID:
            if self.best_bid == NO_BID:
                return 0
            hi = self.best_bid
            lo = hi - n_ticks
            arr = self.bidq
            far = &self.far_bid
        else:
            if self.best_ask == NO_ASK:
                return 0
            lo = self.best_ask
            hi = lo + n_ticks
            arr = self.askq
            far = &self.far_ask
        a = lo - self.base
        b = hi - self.base
        if a < 0:
            a = 0
        if b > self.window - 1:
            b = self.window - 1
        i = a
        while i <= b:
            total += arr[i]
            i += 1
        if not far.empty() and (lo < self.base or hi >= self.base + self.window):
            it = far.lower_bound(lo)
            while it != far.end() and deref(it).first <= hi:
                total += deref(it).second
                inc(it)
        return total

    cdef int64_t bps_to_ticks(self, double bps) noexcept nogil:
        """Number of ticks that ``bps`` basis points of the current mid spans (rounded down, at least 0)."""
        cdef double mid = self.mid_ticks()
        if mid != mid or mid <= 0:
            return 0
        return <int64_t>(mid * bps * 1e-4)

    cdef int top_levels(self, int side, int n, int64_t* px, int64_t* qty) noexcept nogil:
        """Write the best ``n`` levels of one side (best first); returns how many were written."""
        cdef int k = 0
        cdef int64_t i, top = self.base + self.window - 1
        cdef cmap[int64_t, int64_t].iterator it
        cdef cmap[int64_t, int64_t].reverse_iterator rit
        if not self.has_base or n <= 0:
            return 0
        if (side == BID and self.best_bid == NO_BID) or (side == ASK and self.best_ask == NO_ASK):
            return 0
        if side == BID:
            rit = self.far_bid.rbegin()        # far bids above the window (rare) come first
            while rit != self.far_bid.rend() and k < n and deref(rit).first > top:
                px[k] = deref(rit).first
                qty[k] = deref(rit).second
                k += 1
                inc(rit)
            i = (self.best_bid if self.best_bid < top else top) - self.base
            while i >= 0 and k < n:
                if self.bidq[i] != 0:
                    px[k] = self.base + i
                    qty[k] = self.bidq[i]
                    k += 1
                i -= 1
            while rit != self.far_bid.rend() and k < n:
                if deref(rit).first < self.base:
                    px[k] = deref(rit).first
                    qty[k] = deref(rit).second
                    k += 1
                inc(rit)
        else:
            it = self.far_ask.begin()          # far asks below the window (rare) come first
            while it != self.far_ask.end() and k < n and deref(it).first < self.base:
                px[k] = deref(it).first
                qty[k] = deref(it).second
                k += 1
                inc(it)
            i = (self.best_ask if self.best_ask > self.base else self.base) - self.base
            while i < self.window and k < n:
                if self.askq[i] != 0:
                    px[k] = self.base + i
                    qty[k] = self.askq[i]
                    k += 1
                i += 1
            while it != self.far_ask.end() and k < n:
                if deref(it).first > top:
                    px[k] = deref(it).first
                    qty[k] = deref(it).second
                    k += 1
                inc(it)
        return k

    cdef double mid_ticks(self) noexcept nogil:
        if self.best_bid == NO_BID or self.best_ask == NO_ASK:
            return NAN
        return 0.5 * (<double>self.best_bid + <double>self.best_ask)

    cdef double microprice_ticks(self) noexcept nogil:
        """Size-weighted mid: (bid*ask_qty + ask*bid_qty) / (bid_qty + ask_qty), in ticks."""
        cdef double bq, aq
        if self.best_bid == NO_BID or self.best_ask == NO_ASK:
            return NAN
        bq = <double>self.best_qty(BID)
        aq = <double>self.best_qty(ASK)
        return (<double>self.best_bid * aq + <double>self.best_ask * bq) / (bq + aq)

    cdef void recenter_if_needed(self) noexcept nogil:
        """Re-centre the window when the touch leaves its central half (call once per applied message)."""
        cdef int64_t centre, off
        if not self.has_base:
            return
        if self.best_bid != NO_BID and self.best_ask != NO_ASK:
            centre = self.best_bid + (self.best_ask - self.best_bid) // 2
        elif self.best_bid != NO_BID:
            centre = self.best_bid
        elif self.best_ask != NO_ASK:
            centre = self.best_ask
        else:
            return
        off = centre - self.base
        if off < self.window // 4 or off > self.window - self.window // 4:
            self.recenter(centre - self.window // 2)

    cdef void recenter(self, int64_t new_base) noexcept nogil:
        """Move the window to start at ``new_base``: ladder levels that leave go to the maps and back."""
        cdef int64_t shift = new_base - self.base
        cdef int64_t w = self.window
        cdef int64_t i, lo, hi
        cdef int s
        cdef int64_t* arr
        cdef cmap[int64_t, int64_t]* far
        cdef cmap[int64_t, int64_t].iterator it
        if shift == 0:
            return
        for s in range(2):
            arr = self.bidq if s == BID else self.askq
            far = &self.far_bid if s == BID else &self.far_ask
            # 1. ladder slots that fall outside the new window go to the map
            if shift > 0:
                lo = 0
                hi = shift if shift < w else w
            else:
                lo = w + shift if w + shift > 0 else 0
                hi = w
            for i in range(lo, hi):
                if arr[i] != 0:
                    far[0][self.base + i] = arr[i]
            # 2. slide the part that stays, zero the rest
            if shift > 0 and shift < w:
                memmove(arr, arr + shift, (w - shift) * sizeof(int64_t))
                memset(arr + (w - shift), 0, shift * sizeof(int64_t))
            elif shift < 0 and -shift < w:
                memmove(arr - shift, arr, (w + shift) * sizeof(int64_t))
                memset(arr, 0, (-shift) * sizeof(int64_t))
            else:
                memset(arr, 0, w * sizeof(int64_t))
            # 3. map levels now inside the window come back to the ladder
            it = far.lower_bound(new_base)
            while it != far.end() and deref(it).first < new_base + w:
                arr[deref(it).first - new_base] = deref(it).second
                it = far.erase(it)
        self.base = new_base
        self.n_recenters += 1

    cdef void clear(self) noexcept nogil:
        memset(self.bidq, 0, self.window * sizeof(int64_t))
        memset(self.askq, 0, self.window * sizeof(int64_t))
        self.far_bid.clear()
        self.far_ask.clear()
        self.best_bid = NO_BID
        self.best_ask = NO_ASK
        self.has_base = False

    # ---- Python API -------------------------------------------------------------------------------------------

    def set(self, int side, int64_t price, int64_t qty) -> int:
        """Set one level (``qty == 0`` deletes); returns the previous quantity. Side: 0 bid, 1 ask."""
        _check_side(side)
        if qty < 0:
            raise ValueError(f"negative quantity {qty}")
        return self.set_level(side, price, qty)

    def apply(self, int side, prices, qtys) -> None:
        """Apply a batch of levels on one side (sequences of ints of equal length), then re-centre if needed."""
        cdef Py_ssize_t k, n = len(prices)
        _check_side(side)
        if len(qtys) != n:
            raise ValueError("prices and qtys differ in length")
        for k in range(n):
            if qtys[k] < 0:
                raise ValueError(f"negative quantity {qtys[k]}")
            self.set_level(side, prices[k], qtys[k])
        self.recenter_if_needed()

    def qty_at(self, int side, int64_t price) -> int:
        _check_side(side)
        return self.level_qty(side, price)

    def best(self, int side):
        """(price_ticks, qty_lots) of the touch on one side, or None when that side is empty."""
        _check_side(side)
        if side == BID:
            return None if self.best_bid == NO_BID else (self.best_bid, self.best_qty(BID))
        return None if self.best_ask == NO_ASK else (self.best_ask, self.best_qty(ASK))

    def top(self, int side, int n=10) -> list:
        """The best ``n`` levels of one side as [(price_ticks, qty_lots)], best first."""
        cdef int64_t[256] px_buf
        cdef int64_t[256] q_buf
        cdef int64_t* px = px_buf
        cdef int64_t* q = q_buf
        cdef int k, got
        _check_side(side)
        if n > 256:
            px = <int64_t*>calloc(n, sizeof(int64_t))
            q = <int64_t*>calloc(n, sizeof(int64_t))
        try:
            got = self.top_levels(side, n, px, q)
            return [(px[k], q[k]) for k in range(got)]
        finally:
            if n > 256:
                free(px)
                free(q)

    def levels(self, int side) -> list:
        """Every resting level of one side, best first."""
        return self.top(side, self.count(side))

    def count(self, int side) -> int:
        """Number of resting levels on one side."""
        cdef int64_t i, c = 0
        cdef int64_t* arr
        _check_side(side)
        arr = self.bidq if side == BID else self.askq
        for i in range(self.window):
            if arr[i] != 0:
                c += 1
        return c + (self.far_bid.size() if side == BID else self.far_ask.size())

    def depth(self, int side, int64_t n_ticks) -> int:
        """Resting lots within ``n_ticks`` of the touch on one side (touch included)."""
        _check_side(side)
        if n_ticks < 0:
            raise ValueError("n_ticks must be >= 0")
        return self.depth_ticks(side, n_ticks)

    def depth_bps(self, int side, double bps) -> int:
        """Resting lots within ``bps`` basis points of the touch on one side (touch included)."""
        _check_side(side)
        return self.depth_ticks(side, self.bps_to_ticks(bps))

    @property
    def mid(self) -> float:
        return self.mid_ticks()

    @property
    def microprice(self) -> float:
        return self.microprice_ticks()

    @property
    def crossed(self) -> bool:
        """True when best bid >= best ask (never true of a healthy Binance book after a whole diff)."""
        return self.best_bid != NO_BID and self.best_ask != NO_ASK and self.best_bid >= self.best_ask

    @property
    def spread(self):
        """Best ask minus best bid in ticks, or None when a side is empty."""
        if self.best_bid == NO_BID or self.best_ask == NO_ASK:
            return None
        return self.best_ask - self.best_bid

    def maybe_recenter(self) -> None:
        self.recenter_if_needed()

    def recenter_at(self, int64_t new_base) -> None:
        """Force the window to start at ``new_base`` (tests and tools)."""
        if not self.has_base:
            self.base = new_base
            self.has_base = True
            return
        self.recenter(new_base)

    def reset(self) -> None:
        self.clear()


cdef inline int _check_side(int side) except -1:
    if side != BID and side != ASK:
        raise ValueError(f"side must be 0 (bid) or 1 (ask), got {side}")
    return 0


def time_apply(Book book, sides, prices, qtys):
    """Apply pre-converted levels (int64 arrays) in one timed pass; returns total ns (benchmarks)."""
    cdef const long long[::1] s = sides
    cdef const long long[::1] p = prices
    cdef const long long[::1] q = qtys
    cdef Py_ssize_t i, n = s.shape[0]
    cdef timespec t0, t1
    clock_gettime(CLOCK_MONOTONIC, &t0)
    for i in range(n):
        book.set_level(<int>s[i], p[i], q[i])
    clock_gettime(CLOCK_MONOTONIC, &t1)
    return (t1.tv_sec - t0.tv_sec) * 1000000000 + (t1.tv_nsec - t0.tv_nsec)
