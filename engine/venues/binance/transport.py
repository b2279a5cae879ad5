"""Which WebSocket implementation carries market data and order entry: ``"picows"`` (default) or ``"aiohttp"``.

Measured with ``engine.latency_bench`` (``latency(load_tape(None))``) on this machine: 2 shared vCPUs, loopback,
uvloop, bundled BTCUSDT tape, p50 / p99 in µs. "quiet": nothing else running; "loaded": another session's two
CPU-bound processes on both cores, as is common here.

wire to decision (a forked sender writes a recorded message; here: stream -> Feed -> sniper decision), both
processes on one core; 6000 messages, ~1600 depth diffs measured:

              quiet                         loaded
    picows    11.4 / 30.7  (unpinned 11.3 / 49)   20.7-24.9 / 52-197  (unpinned 22-25 / 60-180)
    aiohttp   16.2 / 59.3  (unpinned 17.0 / 133)  31-37 / 65-980      (unpinned 33-46 / 78-185)

decision to the return of the request frame's write on the WebSocket API socket (risk check, Order, OMS, gateway,
signing, serialisation, write), sim venue on loopback, 300 orders, each after the previous answer, the journal's
idle and 1 ms: a cold path, as real decisions are:

    picows, synchronous (submit_now)    ~98 / 119 quiet      101-115 / 125-142 loaded
    picows, node's current task hop     185-191 / 263-362    180-210 / 235-2800
    aiohttp, node's current task hop    195-199 / 262-349    194-226 / 238-350

picows is the default: faster on both paths in every run. Back to back (no idle between orders) the synchronous
path is ~35-64 µs p50: most of the cold figure is Python code and data fetched again after idling (risk check and
its Decimal arithmetic ~20 µs, signing ~20 µs, the send(2) itself ~18 µs).

(Those figures predate the C order path: see the README's benchmarks for the current ones.) The node's order path
is ``ext.orders.OrderGate.fire`` (risk, rate windows, frame, HMAC, ``send(2)`` in one C call) and then
``OrderManager.fired``; the general synchronous path, for what the gate cannot send at once, is
``OrderManager.place_now``/``submit_now`` -> ``OrderGateway.place_now`` -> ``PicowsWsApi.place_order_now``. Either
way the bytes are on the socket before the decision handler returns.
"""

from __future__ import annotations

from engine.venues.binance.fastws import PicowsMarketStream, PicowsWsApi
from engine.venues.binance.streams import MarketStream
from engine.venues.binance.wsapi import WsApi

KINDS = ("picows", "aiohttp")
DEFAULT = "picows"


def _check(kind: str) -> str:
    if kind not in KINDS:
        raise ValueError(f"venue.transport must be one of {', '.join(KINDS)}, not {kind!r}")
    return kind


def market_stream_class(kind: str = DEFAULT) -> type[MarketStream] | type[PicowsMarketStream]:
    """The market stream class for ``kind``; both take ``(ws_base, streams, session, on_raw, on_connect)``."""
    return PicowsMarketStream if _check(kind) == "picows" else MarketStream


def ws_api_class(kind: str = DEFAULT) -> type[WsApi]:
    """The WebSocket API class for ``kind``; both take ``(url, session, creds, now_ms, limiter, recv_window_ms)``."""
    return PicowsWsApi if _check(kind) == "picows" else WsApi
