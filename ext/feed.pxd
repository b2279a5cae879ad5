# The market-data hot path: raw bytes -> scan -> depth sync -> book -> signals, one call per message.
from libc.stdint cimport int32_t, int64_t

from ext.book cimport Book, LevelChange
from ext.parse cimport Grid, Msg
from ext.timing cimport Timing

cdef enum:
    S_WAIT_SNAPSHOT = 0    # buffering diffs until a REST snapshot arrives
    S_WAIT_FIRST = 1       # snapshot loaded; waiting for the diff with U <= lastUpdateId <= u
    S_SYNCED = 2           # every diff's pu equals the previous u

cdef enum:
    TK_RING = 256          # bookTicker oracle: pending tickers and closed book states kept
    TR_RING = 16384        # recent trades kept per symbol (the decision dataset's tape at an intent's arrival)
    MID_RING = 4096        # mid samples kept per symbol, one per MID_STEP_MS of exchange time: ~410 s
    MID_STEP_MS = 100


cdef class SymbolFeed:
    cdef readonly object instrument
    cdef readonly str symbol
    cdef bytes sym_b
    cdef Grid pgrid
    cdef Grid qgrid
    cdef readonly Book book
    cdef readonly Timing timing
    cdef public bint signals_on
    cdef public bint resync_on_mismatch
    cdef readonly int state
    cdef readonly int64_t last_u
    cdef int64_t last_pu, last_U          # of the last applied diff: tells a replay from a broken chain
    cdef readonly int64_t snapshot_id
    cdef readonly bint needs_snapshot
    cdef list pending
    cdef readonly int64_t max_pending
    cdef LevelChange* changes
    cdef int changes_cap
    cdef readonly int64_t last_book_ns       # exchange time of the last applied diff
    cdef readonly int64_t last_event_ns      # exchange time of the last event of any kind
    cdef readonly int64_t n_diffs, n_levels, n_gaps, n_resyncs, n_snapshots, n_stale_dropped
    cdef readonly int64_t n_duplicates, n_snapshot_too_old, n_pending_dropped, n_bad
    cdef readonly int64_t n_trades, n_tickers, n_crossed
    cdef readonly int64_t last_trade_id
    cdef readonly int64_t n_trade_id_gaps
    # bookTicker oracle: a ticker with u in [u_k, U_k+1) must equal the top after diff k
    cdef int64_t tk_u[TK_RING]
    cdef int64_t tk_v[TK_RING][4]
    cdef int tk_n
    cdef int64_t st_lo[TK_RING]
    cdef int64_t st_hi[TK_RING]
    cdef int64_t st_v[TK_RING][4]
    cdef int st_head
    cdef int st_n
    cdef readonly int64_t ticker_checks, ticker_mismatches, ticker_unchecked
    cdef readonly int64_t last_ticker_u
    cdef readonly int64_t tk_bid, tk_bid_qty, tk_ask, tk_ask_qty
    # Off the book path: plain Python attributes the market-data layer sets (engine.feed.live.MarketData) from
    # <symbol>@markPrice@1s; None before the first markPriceUpdate. Prices and the rate are Decimal.
    cdef public object mark_price         # Decimal: the mark price
    cdef public object index_price        # Decimal: the index price
    cdef public object funding_rate       # Decimal: the current funding rate (0.0001 = 0.01% per 8 h)
    cdef public object next_funding_ms    # int: next funding time, ms since the epoch
    cdef public object mark_time_ms       # int: event time of the last markPriceUpdate, ms
    cdef public str unavailable           # why no more market data will come (e.g. the tape ended); "" otherwise
    # The recent tape and the mid's history, for the decision dataset (engine.dataset.state), off the book path:
    # a trade costs five stores, a diff one compare (a mid sample at most every MID_STEP_MS of exchange time).
    cdef int64_t* tr_t                    # TR_RING each: exchange time (ns), price (ticks), qty (lots), trade id
    cdef int64_t* tr_px
    cdef int64_t* tr_qty
    cdef int64_t* tr_id
    cdef char* tr_sell                    # 1: the buyer was the maker (a sell aggressor)
    cdef readonly int64_t tr_total        # trades ever put in the ring (the newest is at (tr_total - 1) % TR_RING)
    cdef int64_t mh_t[MID_RING]
    cdef double mh_mid[MID_RING]
    cdef int64_t mh_total
    cdef int64_t mh_next_ns

    cdef int on_depth(self, Msg* m, bytes raw) except -100
    cdef int apply_diff(self, Msg* m) except -100
    cdef int convert(self, Msg* m) noexcept
    cdef int on_ticker(self, Msg* m) noexcept
    cdef int on_trade(self, Msg* m) noexcept
    cdef void sample_mid(self, int64_t ts) noexcept
    cdef int load_snapshot(self, Msg* m) except -100
    cdef void start_resync(self) noexcept
    cdef void oracle_before_diff(self, int64_t U, int64_t u) noexcept
    cdef void oracle_check(self, int64_t* v) noexcept
    cdef void oracle_late(self, int64_t tu, int64_t* v) noexcept
    cdef void oracle_close_state(self, int64_t U) noexcept


cdef class Feed:
    cdef Msg msg
    cdef readonly list symbols
    cdef SymbolFeed only
    cdef dict by_symbol
    cdef readonly SymbolFeed last
    cdef readonly int last_kind
    cdef readonly int64_t n_messages, n_errors, n_unknown_symbol, n_other
    cdef readonly int64_t exchange_ns        # newest exchange time seen on any stream
    cdef readonly int64_t exchange_seen_ns   # CLOCK_MONOTONIC when exchange_ns last advanced
    cdef readonly int64_t wall0_ms           # CLOCK_REALTIME at construction (ms): bounds event times
    cdef readonly int64_t n_future           # messages refused for an event time over a day ahead
    cdef readonly str last_error

    cpdef int on_message(self, bytes data) except -100
    cdef int64_t time_limit_ms(self) noexcept
    cdef SymbolFeed route(self, Msg* m)
    cdef int dispatch(self, SymbolFeed sf, bytes data) except -100
    cdef void _drain(self, SymbolFeed sf) except *
