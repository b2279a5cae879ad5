# cython: language_level=3
"""The market-data hot path: one call per raw message, from bytes to an updated book and updated signals.

Depth sync follows Binance's "How to manage a local order book correctly" for USD-M futures exactly:
buffer diffs, load the REST snapshot, drop diffs with ``u < lastUpdateId``, the first applied diff must have
``U <= lastUpdateId <= u``, then every diff's ``pu`` must equal the previous ``u``. Any break marks the book
unsynced, counts a gap, and asks for a new snapshot (``needs_snapshot``); nothing is applied out of chain.

Every bookTicker doubles as a correctness oracle: a ticker whose ``u`` lies in ``[u_k, U_k+1)`` must equal the
book's top after diff ``k``; checks, mismatches and unchecked tickers are counted per symbol.
"""
from libc.stdint cimport int64_t
from libc.stdlib cimport free, malloc, realloc
from libc.string cimport memcmp
from posix.time cimport CLOCK_MONOTONIC, CLOCK_REALTIME, clock_gettime, timespec

import numpy as np

from ext.book cimport ASK, BID, NO_ASK, NO_BID, Book, LevelChange
from ext.parse cimport (
    E_FUTURE, E_GRID, E_NUMBER, E_SYMBOL, F_E, F_pu, K_AGG_TRADE, K_BOOK_TICKER, K_DEPTH, K_OTHER, K_PARTIAL_DEPTH,
    K_SNAPSHOT, K_TRADE, Dec, Grid, Msg, grid_init, msg_free, msg_init, scan, to_units,
)
from ext.timing cimport Timing

from ext.parse import ERROR_NAMES

STATE_NAMES = {S_WAIT_SNAPSHOT: "wait_snapshot", S_WAIT_FIRST: "wait_first_diff", S_SYNCED: "synced"}
cdef int64_t MS = 1000000


cdef class SymbolFeed:
    """Depth sync, book, signals and book-health counters for one instrument."""

    def __init__(self, instrument, int64_t window=32768, Timing timing=None, int64_t max_pending=50000):
        from engine.model import Instrument

        cdef int64_t m
        cdef int d
        self.instrument = instrument
        self.symbol = instrument.symbol
        self.sym_b = instrument.symbol.encode()
        m, d = Instrument.grid(instrument.tick_size)
        if grid_init(&self.pgrid, m, d) != 0:
            raise ValueError(f"{self.symbol}: unusable tick size {instrument.tick_size}")
        m, d = Instrument.grid(instrument.step_size)
        if grid_init(&self.qgrid, m, d) != 0:
            raise ValueError(f"{self.symbol}: unusable step size {instrument.step_size}")
        self.book = Book(window)
        self.timing = timing if timing is not None else Timing()
        self.signals_on = True
        self.resync_on_mismatch = False
        self.state = S_WAIT_SNAPSHOT
        self.needs_snapshot = True
        self.pending = []
        self.max_pending = max_pending
        self.last_u = -1
        self.snapshot_id = -1
        self.last_trade_id = -1
        self.last_ticker_u = -1
        self.mark_price = self.index_price = self.funding_rate = self.next_funding_ms = self.mark_time_ms = None
        self.unavailable = ""
        self.tr_t = <int64_t*>malloc(TR_RING * sizeof(int64_t))
        self.tr_px = <int64_t*>malloc(TR_RING * sizeof(int64_t))
        self.tr_qty = <int64_t*>malloc(TR_RING * sizeof(int64_t))
        self.tr_id = <int64_t*>malloc(TR_RING * sizeof(int64_t))
        self.tr_sell = <char*>malloc(TR_RING * sizeof(char))
        if not (self.tr_t and self.tr_px and self.tr_qty and self.tr_id and self.tr_sell):
            raise MemoryError("the recent-trades ring")

    def __dealloc__(self):
        free(self.changes)
        free(self.tr_t)
        free(self.tr_px)
        free(self.tr_qty)
        free(self.tr_id)
        free(self.tr_sell)

    # ---- depth -----------------------------------------------------------------------------------------------

    cdef int on_depth(self, Msg* m, bytes raw) except -100:
        cdef bint chained
        if self.state == S_SYNCED:
            if m.u <= self.last_u:
                if (m.pu > self.last_pu) if m.seen & F_pu else (m.U > self.last_U):
                    self.n_gaps += 1                # continues past the last applied diff, whose u jumped ahead:
                    self.start_resync()             # not a replay but a broken chain (else the book would freeze)
                    self.pending.append(raw)
                    return 0
                self.n_duplicates += 1              # replayed or duplicated diff: already in the book
                return 0
            chained = m.pu == self.last_u if m.seen & F_pu else m.U == self.last_u + 1
            if not chained:
                self.n_gaps += 1
                self.start_resync()
                self.pending.append(raw)
                return 0
            return self.apply_diff(m)
        if self.state == S_WAIT_FIRST:
            if m.u < self.snapshot_id:
                self.n_stale_dropped += 1
                return 0
            if m.U > self.snapshot_id + (0 if m.seen & F_pu else 1):
                self.n_snapshot_too_old += 1        # the snapshot predates the oldest diff we hold
                self.start_resync()
                self.pending.append(raw)
                return 0
            return self.apply_diff(m)
        if len(self.pending) >= self.max_pending:
            del self.pending[0]
            self.n_pending_dropped += 1
        self.pending.append(raw)
        return 0

    cdef int convert(self, Msg* m) noexcept:
        """Map the message's levels onto ticks/lots in self.changes (nothing touches the book yet)."""
        cdef int k, r
        cdef LevelChange* c
        cdef LevelChange* grown
        if m.n_levels > self.changes_cap:
            grown = <LevelChange*>realloc(self.changes, m.n_levels * sizeof(LevelChange))
            if grown == NULL:
                return E_NUMBER
            self.changes = grown
            self.changes_cap = m.n_levels
        for k in range(m.n_levels):
            c = &self.changes[k]
            r = to_units(m.levels[k].px, &self.pgrid, &c.price)
            if r == 0:
                r = to_units(m.levels[k].qty, &self.qgrid, &c.qty)
            if r != 0:
                return r
            c.side = m.levels[k].side
        return 0

    cdef int apply_diff(self, Msg* m) except -100:
        cdef int k, r, n = m.n_levels
        cdef LevelChange* c
        cdef int64_t ts
        r = self.convert(m)
        if r != 0:
            self.n_bad += 1                         # a lost update: the book can no longer be trusted
            self.start_resync()
            return r
        if self.state == S_SYNCED:
            self.oracle_before_diff(m.U, m.u)
        for k in range(n):
            c = &self.changes[k]
            c.old_qty = self.book.set_level(c.side, c.price, c.qty)
        self.book.recenter_if_needed()
        self.last_u = m.u
        self.last_pu = m.pu
        self.last_U = m.U
        self.state = S_SYNCED
        self.n_diffs += 1
        self.n_levels += n
        ts = m.T * MS
        self.last_book_ns = ts
        if self.last_event_ns < ts:
            self.last_event_ns = ts
        if self.book.best_bid >= self.book.best_ask and self.book.best_bid != NO_BID \
                and self.book.best_ask != NO_ASK:
            self.n_crossed += 1
        if ts >= self.mh_next_ns:
            self.sample_mid(ts)
        if self.signals_on:
            self.timing.on_depth(self.book, self.changes, n, ts, m.u)
        return K_DEPTH

    cdef int load_snapshot(self, Msg* m) except -100:
        cdef int k, r
        cdef LevelChange* c
        if self.state == S_SYNCED:
            return 0                                # already chained past any snapshot: nothing to learn
        r = self.convert(m)
        if r != 0:
            self.n_bad += 1
            return r
        self.book.clear()
        for k in range(m.n_levels):
            c = &self.changes[k]
            self.book.set_level(c.side, c.price, c.qty)
        self.book.recenter_if_needed()
        self.timing.reset_depth()          # depth-derived signal state belongs to the book we just replaced
        self.snapshot_id = m.u
        self.last_u = m.u
        self.state = S_WAIT_FIRST
        self.needs_snapshot = False
        self.n_snapshots += 1
        self.st_n = 0
        return K_SNAPSHOT

    cdef void start_resync(self) noexcept:
        cdef int64_t j
        if self.state == S_SYNCED and self.mh_total:   # the mid history says "unknown from here" (NaN)
            j = self.mh_total & (MID_RING - 1)
            self.mh_t[j] = max(self.last_event_ns, self.mh_t[(self.mh_total - 1) & (MID_RING - 1)])
            self.mh_mid[j] = float("nan")
            self.mh_total += 1
            self.mh_next_ns = 0                          # the first diff after the resync samples at once
        self.state = S_WAIT_SNAPSHOT
        self.needs_snapshot = True
        self.n_resyncs += 1
        self.pending = []
        self.st_n = 0                                # the book's past states are void; pending tickers wait

    # ---- bookTicker oracle -----------------------------------------------------------------------------------

    cdef void oracle_check(self, int64_t* v) noexcept:
        cdef Book b = self.book
        self.ticker_checks += 1
        if v[0] != b.best_bid or v[1] != b.best_qty(BID) or v[2] != b.best_ask or v[3] != b.best_qty(ASK):
            self.ticker_mismatches += 1
            if self.resync_on_mismatch:
                self.start_resync()

    cdef void oracle_before_diff(self, int64_t U, int64_t u) noexcept:
        """Resolve pending tickers against the top after diff k, then close that state as [u_k, U_k+1)."""
        cdef int i, keep = 0
        for i in range(self.tk_n):
            if self.tk_u[i] < self.last_u:
                self.oracle_late(self.tk_u[i], self.tk_v[i])     # received before we were synced
            elif self.tk_u[i] < U:
                self.oracle_check(self.tk_v[i])
            elif self.tk_u[i] < u:
                self.ticker_unchecked += 1          # inside the diff's own update range: never a whole state
            else:
                self.tk_u[keep] = self.tk_u[i]
                self.tk_v[keep][:] = self.tk_v[i]
                keep += 1
            if self.state != S_SYNCED:               # a mismatch asked for a resync
                self.ticker_unchecked += self.tk_n - i - 1
                keep = 0
                break
        self.tk_n = keep
        if self.state == S_SYNCED:
            self.oracle_close_state(U)

    cdef void oracle_late(self, int64_t tu, int64_t* v) noexcept:
        """A ticker older than the book's state: check it against the closed state it belongs to, if kept."""
        cdef int i, j
        for i in range(self.st_n):
            j = (self.st_head - 1 - i + TK_RING) % TK_RING
            if self.st_lo[j] <= tu:
                if tu < self.st_hi[j]:
                    self.ticker_checks += 1
                    if (v[0] != self.st_v[j][0] or v[1] != self.st_v[j][1] or v[2] != self.st_v[j][2]
                            or v[3] != self.st_v[j][3]):
                        self.ticker_mismatches += 1
                        if self.resync_on_mismatch:
                            self.start_resync()
                else:
                    self.ticker_unchecked += 1      # inside a diff's own range
                return
        self.ticker_unchecked += 1

    cdef void oracle_close_state(self, int64_t U) noexcept:
        cdef int j = self.st_head
        cdef Book b = self.book
        self.st_lo[j] = self.last_u
        self.st_hi[j] = U
        self.st_v[j][0] = b.best_bid
        self.st_v[j][1] = b.best_qty(BID)
        self.st_v[j][2] = b.best_ask
        self.st_v[j][3] = b.best_qty(ASK)
        self.st_head = (j + 1) % TK_RING
        if self.st_n < TK_RING:
            self.st_n += 1

    cdef int on_ticker(self, Msg* m) noexcept:
        cdef int64_t v[4]
        cdef int i
        cdef int64_t tu = m.u
        if (to_units(m.b, &self.pgrid, &v[0]) or to_units(m.B, &self.qgrid, &v[1])
                or to_units(m.a, &self.pgrid, &v[2]) or to_units(m.A, &self.qgrid, &v[3])):
            self.n_bad += 1
            return E_GRID
        self.n_tickers += 1
        if m.seen & F_E and self.last_event_ns < m.T * MS:
            self.last_event_ns = m.T * MS
        if self.state == S_SYNCED and tu < self.last_u:
            self.oracle_late(tu, v)
        else:                                        # its state is not closed yet: wait for the next diff
            if self.tk_n == TK_RING:                 # keep the newest: drop the oldest pending
                self.ticker_unchecked += 1
                for i in range(TK_RING - 1):
                    self.tk_u[i] = self.tk_u[i + 1]
                    self.tk_v[i][:] = self.tk_v[i + 1]
                self.tk_n -= 1
            self.tk_u[self.tk_n] = tu
            self.tk_v[self.tk_n][:] = v
            self.tk_n += 1
        if tu > self.last_ticker_u:
            self.last_ticker_u = tu
            self.tk_bid, self.tk_bid_qty, self.tk_ask, self.tk_ask_qty = v[0], v[1], v[2], v[3]
            if self.signals_on:
                self.timing.on_ticker(v[0], v[1], v[2], v[3], m.T * MS, tu)
        return K_BOOK_TICKER

    # ---- trades ----------------------------------------------------------------------------------------------

    cdef int on_trade(self, Msg* m) noexcept:
        cdef int64_t px, qty, k
        if to_units(m.p, &self.pgrid, &px) or to_units(m.q, &self.qgrid, &qty):
            self.n_bad += 1
            return E_GRID
        if m.last_id <= self.last_trade_id:
            self.n_duplicates += 1
            return 0
        if self.last_trade_id >= 0 and m.first_id != self.last_trade_id + 1:
            self.n_trade_id_gaps += 1
        self.last_trade_id = m.last_id
        self.n_trades += 1
        if self.last_event_ns < m.T * MS:
            self.last_event_ns = m.T * MS
        if m.market and qty > 0:
            k = self.tr_total & (TR_RING - 1)
            self.tr_t[k] = m.T * MS
            self.tr_px[k] = px
            self.tr_qty[k] = qty
            self.tr_id[k] = m.last_id
            self.tr_sell[k] = m.maker == 1
            self.tr_total += 1
            if self.signals_on:
                self.timing.on_trade(px, qty, m.maker == 1, m.T * MS)
        return m.kind

    cdef void sample_mid(self, int64_t ts) noexcept:
        """One sample of the mid (ticks) into the history; none while a side is empty."""
        cdef int64_t j
        if self.book.best_bid == NO_BID or self.book.best_ask == NO_ASK:
            return
        j = self.mh_total & (MID_RING - 1)
        self.mh_t[j] = ts
        self.mh_mid[j] = (self.book.best_bid + self.book.best_ask) / 2.0
        self.mh_total += 1
        self.mh_next_ns = ts + MID_STEP_MS * MS

    # ---- Python API ------------------------------------------------------------------------------------------

    def recent_trades(self, int64_t since_ns, int64_t keep=2000) -> dict:
        """The market trades with exchange time >= ``since_ns`` still in the ring: the newest ``keep`` of them,
        oldest first, as numpy arrays (``t_ns``, ``price`` ticks, ``qty`` lots, ``trade_id``, ``sell``: a sell
        aggressor, the buyer was the maker), ``summary`` over all of them (``trade_summary``), and ``covered_ns``:
        the time of the oldest trade the ring holds (what came before it was never seen, or was overwritten), -1
        when it holds none. Copies at most ``keep`` trades: tens of µs on the busiest tape."""
        cdef int64_t n = min(self.tr_total, <int64_t>TR_RING)
        cdef int64_t k = 0, m, i, j
        while k < n and self.tr_t[(self.tr_total - 1 - k) & (TR_RING - 1)] >= since_ns:
            k += 1
        summary = self.trade_summary(k)
        m = min(k, max(keep, 0))
        t = np.empty(m, np.int64)
        px = np.empty(m, np.int64)
        q = np.empty(m, np.int64)
        ids = np.empty(m, np.int64)
        sell = np.empty(m, np.bool_)
        cdef int64_t[::1] tv = t, pv = px, qv = q, iv = ids
        cdef unsigned char[::1] sv = sell.view(np.uint8)
        for i in range(m):
            j = (self.tr_total - m + i) & (TR_RING - 1)
            tv[i] = self.tr_t[j]
            pv[i] = self.tr_px[j]
            qv[i] = self.tr_qty[j]
            iv[i] = self.tr_id[j]
            sv[i] = self.tr_sell[j]
        covered = -1
        if self.tr_total:
            covered = self.tr_t[(self.tr_total - n) & (TR_RING - 1)]
        return {"t_ns": t, "price": px, "qty": q, "trade_id": ids, "sell": sell, "covered_ns": covered,
                "summary": summary}

    def trade_summary(self, int64_t k) -> dict:
        """The newest ``k`` trades of the ring summarised in one pass, integers only (grid units): ``count``,
        ``buy_lots``/``sell_lots``, ``buy_value``/``sell_value`` (sum of ticks x lots; None if it would overflow
        int64), ``runs`` (maximal sequences of one aggressor side), the longest run (``longest_run`` trades,
        ``longest_run_sell``, ``longest_run_lots``; the first of equals), the run in progress (``last_run``,
        ``last_run_sell``, ``last_run_lots``), and the largest print (``largest``: its ``t_ns``, ``price``,
        ``qty``, ``trade_id``, ``sell``; None with no trade; the first of equals).
        ``engine.dataset.state.summary_of`` is the reference it agrees with exactly."""
        cdef int64_t i, j, q, runs = 0, cur = 0, cur_lots = 0, best = 0, best_lots = 0, big = -1, big_q = -1
        cdef int64_t lots_b = 0, lots_s = 0, val_b = 0, val_s = 0
        cdef double shadow = 0.0
        cdef char s, prev = -1, best_side = 0
        for i in range(k):
            j = (self.tr_total - k + i) & (TR_RING - 1)
            q = self.tr_qty[j]
            s = self.tr_sell[j]
            shadow += <double>self.tr_px[j] * <double>q
            if s:
                lots_s += q
                val_s += self.tr_px[j] * q
            else:
                lots_b += q
                val_b += self.tr_px[j] * q
            if s != prev:
                runs += 1
                cur = 0
                cur_lots = 0
                prev = s
            cur += 1
            cur_lots += q
            if cur > best:
                best, best_lots, best_side = cur, cur_lots, s
            if q > big_q:
                big_q, big = q, j
        exact = shadow < 9.0e18
        largest = None
        if big >= 0:
            largest = {"t_ns": self.tr_t[big], "price": self.tr_px[big], "qty": self.tr_qty[big],
                       "trade_id": self.tr_id[big], "sell": bool(self.tr_sell[big])}
        return {"count": k, "buy_lots": lots_b, "sell_lots": lots_s, "buy_value": val_b if exact else None,
                "sell_value": val_s if exact else None, "runs": runs, "longest_run": best,
                "longest_run_sell": bool(best_side), "longest_run_lots": best_lots, "last_run": cur,
                "last_run_sell": bool(prev == 1), "last_run_lots": cur_lots, "largest": largest}

    def mid_at(self, int64_t t_ns) -> tuple:
        """The mid as it was at exchange time ``t_ns``: ``(sample time ns, mid ticks)`` of the newest sample at
        or before it (a sample is taken at a book update, at most every 100 ms of exchange time, so it is at most
        100 ms older than ``t_ns`` while updates flow; the sample time says how old), or ``(-1, nan)`` when the history does not reach back
        that far (the feed started later, or over ~400 s ago)."""
        cdef int64_t n = min(self.mh_total, <int64_t>MID_RING)
        cdef int64_t k, j
        for k in range(n):
            j = (self.mh_total - 1 - k) & (MID_RING - 1)
            if self.mh_t[j] <= t_ns:
                return self.mh_t[j], self.mh_mid[j]
        return -1, float("nan")

    @property
    def synced(self) -> bool:
        return self.state == S_SYNCED

    @property
    def state_name(self) -> str:
        return STATE_NAMES[self.state]

    @property
    def n_pending(self) -> int:
        return len(self.pending)

    def is_stale(self, int64_t now_ns, int64_t stale_ns) -> bool:
        """True when unsynced or no diff has been applied for ``stale_ns`` of exchange time before ``now_ns``."""
        return self.state != S_SYNCED or now_ns - self.last_book_ns > stale_ns

    def health(self, int64_t now_ns, int64_t stale_ns) -> dict:
        """Book health for risk and metrics: synced, stale, crossed, and the gap / oracle counters."""
        return {
            "symbol": self.symbol, "state": self.state_name, "synced": self.synced,
            "stale": self.is_stale(now_ns, stale_ns), "crossed": self.book.crossed,
            "gaps": self.n_gaps, "resyncs": self.n_resyncs, "bad_messages": self.n_bad,
            "ticker_checks": self.ticker_checks, "ticker_mismatches": self.ticker_mismatches,
            "last_update_id": self.last_u, "last_book_ns": self.last_book_ns,
        }

    def request_resync(self) -> None:
        """Forget the chain and wait for a new snapshot (a reconnect is always a gap)."""
        self.start_resync()

    def finish(self) -> None:
        """End of a recording: tickers still waiting for their next diff cannot be checked."""
        self.ticker_unchecked += self.tk_n
        self.tk_n = 0


cdef class Feed:
    """Routes raw market-data messages for a set of instruments to their ``SymbolFeed``.

    ``on_message(bytes)`` returns the message kind when it changed state (1 depth applied, 2 bookTicker, 3 trade,
    4 aggTrade, 5 snapshot loaded), 0 when it was buffered or ignored, or a negative error code (see
    ``ext.parse.ERROR_NAMES``); ``last`` is the SymbolFeed it touched.
    """

    def __init__(self, instruments, int64_t window=32768, timings=None):
        cdef timespec ts
        msg_init(&self.msg)
        self.symbols = []
        self.by_symbol = {}
        for i, inst in enumerate(instruments):
            sf = SymbolFeed(inst, window, timings[i] if timings is not None else None)
            if inst.symbol in self.by_symbol:
                raise ValueError(f"instrument {inst.symbol} given twice")
            self.symbols.append(sf)
            self.by_symbol[inst.symbol] = sf
        if not self.symbols:
            raise ValueError("a feed needs at least one instrument")
        self.only = self.symbols[0] if len(self.symbols) == 1 else None
        self.last = None
        self.last_error = ""
        clock_gettime(CLOCK_REALTIME, &ts)
        self.wall0_ms = ts.tv_sec * 1000 + ts.tv_nsec // 1000000

    def __dealloc__(self):
        msg_free(&self.msg)

    def __getitem__(self, str symbol) -> SymbolFeed:
        return self.by_symbol[symbol]

    cdef int64_t time_limit_ms(self) noexcept:
        """A day past the newest exchange time seen, or past the wall clock at start (a replay's old tape)."""
        cdef int64_t seen = self.exchange_ns // MS
        return (seen if seen > self.wall0_ms else self.wall0_ms) + 86_400_000

    cdef SymbolFeed route(self, Msg* m):
        cdef SymbolFeed sf
        cdef Py_ssize_t i, n
        if m.sym_len == 0:
            return self.only                         # a bare REST snapshot carries no symbol
        n = len(self.symbols)
        for i in range(n):
            sf = <SymbolFeed>self.symbols[i]
            if len(sf.sym_b) == m.sym_len and memcmp(<const char*>sf.sym_b, m.sym, m.sym_len) == 0:
                return sf
        return None

    cpdef int on_message(self, bytes data) except -100:
        cdef int r = scan(data, len(data), &self.msg)
        cdef SymbolFeed sf
        cdef timespec ts
        cdef int64_t limit
        self.n_messages += 1
        if r < 0:
            self.n_errors += 1
            self.last_error = f"{ERROR_NAMES.get(r, r)} at byte {self.msg.err_at}"
            return r
        if r == K_OTHER or r == K_PARTIAL_DEPTH:
            self.n_other += 1
            return 0
        limit = self.time_limit_ms()
        if self.msg.E > limit or self.msg.T > limit:
            self.n_errors += 1                      # decades ahead (or past int64 ns): never moves our clocks
            self.n_future += 1
            self.last_error = f"event time {max(self.msg.E, self.msg.T)} ms is over a day ahead"
            return E_FUTURE
        if self.msg.seen & F_E and self.exchange_ns < self.msg.E * MS:
            self.exchange_ns = self.msg.E * MS
            clock_gettime(CLOCK_MONOTONIC, &ts)
            self.exchange_seen_ns = ts.tv_sec * 1000000000 + ts.tv_nsec
        sf = self.route(&self.msg)
        if sf is None:
            self.n_unknown_symbol += 1
            return E_SYMBOL
        self.last = sf
        self.last_kind = r
        return self.dispatch(sf, data)

    cdef int dispatch(self, SymbolFeed sf, bytes data) except -100:
        cdef int r, kind = self.msg.kind
        if kind == K_DEPTH:
            return sf.on_depth(&self.msg, data)
        if kind == K_BOOK_TICKER:
            return sf.on_ticker(&self.msg)
        if kind == K_TRADE or kind == K_AGG_TRADE:
            return sf.on_trade(&self.msg)
        r = sf.load_snapshot(&self.msg)
        if r == K_SNAPSHOT:
            self._drain(sf)
        return r

    cdef void _drain(self, SymbolFeed sf) except *:
        cdef list raws = sf.pending
        cdef bytes raw
        sf.pending = []
        for raw in raws:
            if scan(raw, len(raw), &self.msg) == K_DEPTH:
                sf.on_depth(&self.msg, raw)

    def on_snapshot(self, str symbol, bytes data) -> int:
        """Load a REST depth snapshot (``/fapi/v1/depth`` answer) for ``symbol`` and replay buffered diffs."""
        cdef SymbolFeed sf = self.by_symbol[symbol]
        cdef int r = scan(data, len(data), &self.msg)
        if r != K_SNAPSHOT:
            self.n_errors += 1
            self.last_error = f"not a depth snapshot ({ERROR_NAMES.get(r, r)})"
            return r if r < 0 else E_SYMBOL
        r = sf.load_snapshot(&self.msg)
        if r == K_SNAPSHOT:
            self._drain(sf)
        return r

    def replay(self, list messages) -> int:
        """Feed every message in order (benchmarks and tools); returns how many were accepted without error."""
        cdef bytes data
        cdef int64_t ok = 0
        for data in messages:
            if self.on_message(data) >= 0:
                ok += 1
        return ok

    def time_each(self, list messages, decide=None):
        """Feed every message and return the ns each took (CLOCK_MONOTONIC), as an int64 array. With ``decide``,
        each accepted message is followed by ``decide(symbol_feed)`` inside the timing: bytes -> book -> signals
        -> decision, as the engine runs it."""
        cdef Py_ssize_t i, n = len(messages)
        cdef timespec t0, t1
        cdef bytes data
        out = np.empty(n, dtype=np.int64)
        cdef int64_t[::1] o = out
        for i in range(n):
            data = messages[i]
            clock_gettime(CLOCK_MONOTONIC, &t0)
            if self.on_message(data) > 0 and decide is not None:
                decide(self.last)
            clock_gettime(CLOCK_MONOTONIC, &t1)
            o[i] = (t1.tv_sec - t0.tv_sec) * 1000000000 + (t1.tv_nsec - t0.tv_nsec)
        return out

    def finish(self) -> None:
        for sf in self.symbols:
            sf.finish()

    def market_now(self, int64_t mono_ns) -> int:
        """The market's clock: the newest exchange time seen plus the monotonic time elapsed since (ns)."""
        return self.exchange_ns + (mono_ns - self.exchange_seen_ns) if self.exchange_ns else 0

    def set_max_pending(self, int64_t n) -> None:
        """Cap on diffs buffered per symbol while waiting for a snapshot (the oldest are dropped beyond it)."""
        if n < 1:
            raise ValueError("max_pending must be >= 1")
        for sf in self.symbols:
            (<SymbolFeed>sf).max_pending = n

    @property
    def stats(self) -> dict:
        return {"messages": self.n_messages, "errors": self.n_errors, "unknown_symbol": self.n_unknown_symbol,
                "other": self.n_other}
