"""The recorded tape the simulated venue replays: every message of a recording, in arrival order, with its
exchange time, its stream name and its ``data`` bytes exactly as Binance sent them.

Assumptions:

- The files of one recording are read in the order given, as one stream (``engine.feed.recording.iter_lines``);
  arrival (recorded) order is the replay order.
- An event's exchange time is its ``T`` for depthUpdate, trade, aggTrade and bookTicker, else its ``E``
  (markPriceUpdate's ``T`` is the next funding time, not an event time). A REST snapshot line takes its ``T``/``E``
  when it has them. Exchange time is made monotone for scheduling: ``time_ns = max(previous time_ns, t)``.
- A bare REST snapshot line (``{"lastUpdateId": ...}``) belongs to the tape's single symbol, or to the symbol its
  line names (cryptofeed's REST lines); it is applied to the recorded book but never published on a stream.
- Local receive stamps are normalised to ns (µs stamps, older than ~1973 in ns, are multiplied by 1000); only
  their differences to exchange time are used (recorded feed latency).
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import orjson

from engine.errors import DataError
from engine.feed.recording import iter_lines

MS = 1_000_000

# Event kinds of the tape.
DEPTH = "depthUpdate"
TRADE = "trade"
AGG_TRADE = "aggTrade"
BOOK_TICKER = "bookTicker"
MARK_PRICE = "markPriceUpdate"
SNAPSHOT = "snapshot"
OTHER = "other"

_TIME_FROM_T = frozenset({DEPTH, TRADE, AGG_TRADE, BOOK_TICKER})
_DEFAULT_STREAM = {DEPTH: "depth@0ms", TRADE: "trade", AGG_TRADE: "aggTrade", BOOK_TICKER: "bookTicker",
                   MARK_PRICE: "markPrice@1s"}


@dataclass(frozen=True, slots=True)
class TapeEvent:
    """One recorded message. ``data`` is the event object's bytes as recorded (the ``data`` part of a
    combined-stream envelope); ``raw`` the whole recorded message (what the recorded book is fed)."""

    seq: int
    kind: str
    symbol: str
    stream: str
    time_ns: int          # monotone exchange time used for scheduling
    exch_ns: int          # the message's own exchange time (0 when it has none)
    local_ns: int         # the recorder's receive stamp, in ns
    data: bytes
    raw: bytes
    obj: dict


@dataclass(slots=True)
class SymbolStreams:
    """Which streams the tape carries for one symbol, and the first recorded ids (to chain synthetic ones)."""

    depth: str = ""
    trade: str = ""
    agg_trade: str = ""
    book_ticker: str = ""
    mark_price: str = ""
    first_trade_id: int | None = None
    first_agg_id: int | None = None
    price_decimals: int | None = None
    qty_decimals: int | None = None


@dataclass(frozen=True, slots=True)
class Tape:
    """A whole recording in memory. Immutable and shared between simulated exchanges of the same files."""

    events: tuple[TapeEvent, ...]
    symbols: tuple[str, ...]
    streams: dict[str, SymbolStreams] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.events)

    def recorded_latencies_ns(self) -> list[int]:
        """Per event: local receive stamp minus exchange time (ns). Only the spread is meaningful."""
        return [ev.local_ns - ev.exch_ns if ev.exch_ns else 0 for ev in self.events]


def load_tape(paths: Sequence[str | Path]) -> Tape:
    """Read a recording (its files in order) into a ``Tape``; cached by path, size and mtime."""
    key = []
    for p in paths:
        st = Path(p).stat()
        key.append((str(Path(p).resolve()), st.st_size, st.st_mtime_ns))
    return _load_cached(tuple(key))


@functools.lru_cache(maxsize=4)
def _load_cached(key: tuple[tuple[str, int, int], ...]) -> Tape:
    return _read([k[0] for k in key])


def _read(paths: list[str]) -> Tape:
    events: list[TapeEvent] = []
    streams: dict[str, SymbolStreams] = {}
    snapshots: list[tuple[int, dict, object]] = []     # (index in events, obj, line) of symbol-less snapshots
    last_t = 0
    for line in iter_lines(list(paths)):
        try:
            obj = orjson.loads(line.raw)
        except orjson.JSONDecodeError as exc:
            raise DataError(f"{line.path}:{line.lineno}: not JSON: {exc}") from exc
        if not isinstance(obj, dict):
            raise DataError(f"{line.path}:{line.lineno}: not a JSON object")
        stream = obj.get("stream") if isinstance(obj.get("stream"), str) else ""
        if stream and isinstance(obj.get("data"), dict):
            data_obj = obj["data"]
            data = _data_bytes(line.raw, stream, data_obj)
        else:
            data_obj, data = obj, line.raw
        kind = _kind(data_obj)
        symbol = str(data_obj.get("s", "")) if kind != SNAPSHOT else line.symbol
        exch_ms = _event_ms(kind, data_obj)
        exch_ns = exch_ms * MS if exch_ms else 0
        time_ns = max(last_t, exch_ns)
        last_t = time_ns
        if not stream and kind in _DEFAULT_STREAM and symbol:
            stream = f"{symbol.lower()}@{_DEFAULT_STREAM[kind]}"
        local_ns = line.local_ts * 1000 if 0 < line.local_ts < 10**17 else line.local_ts
        ev = TapeEvent(len(events), kind, symbol, stream, time_ns, exch_ns, local_ns, data, line.raw, data_obj)
        if kind == SNAPSHOT and not symbol:
            snapshots.append((len(events), data_obj, line))
        events.append(ev)
        if symbol and kind != SNAPSHOT:
            _note_stream(streams.setdefault(symbol, SymbolStreams()), kind, stream, data_obj)
    symbols = tuple(streams)
    if snapshots:
        if len(symbols) != 1:
            raise DataError(f"a bare REST snapshot line in a tape of {len(symbols)} symbols {list(symbols)}: "
                            "cannot tell whose it is")
        for i, _obj, _line in snapshots:
            ev = events[i]
            events[i] = TapeEvent(ev.seq, ev.kind, symbols[0], ev.stream, ev.time_ns, ev.exch_ns, ev.local_ns,
                                  ev.data, ev.raw, ev.obj)
    for ev in events:
        if ev.kind == SNAPSHOT and ev.symbol in streams:
            _note_decimals(streams[ev.symbol], ev.obj.get("bids", []) + ev.obj.get("asks", []))
    return Tape(tuple(events), symbols, streams)


def _data_bytes(raw: bytes, stream: str, data_obj: dict) -> bytes:
    """The ``data`` object's bytes exactly as recorded, cut out of a combined-stream envelope."""
    head = b'{"stream":"' + stream.encode() + b'","data":'
    body = raw.rstrip()
    if body.startswith(head) and body.endswith(b"}"):
        return body[len(head):-1]
    return orjson.dumps(data_obj)             # unusual layout: re-serialise (same content, maybe other bytes)


def _kind(d: dict) -> str:
    e = d.get("e")
    if e in (DEPTH, TRADE, AGG_TRADE, BOOK_TICKER, MARK_PRICE):
        return str(e)
    if "lastUpdateId" in d and "bids" in d:
        return SNAPSHOT
    if e is None and "u" in d and "b" in d and "a" in d and "B" in d:
        return BOOK_TICKER                    # spot-style ticker without "e"
    return OTHER


def _event_ms(kind: str, d: dict) -> int:
    t = d.get("T") if kind in _TIME_FROM_T or kind == SNAPSHOT else None
    if not isinstance(t, int):
        t = d.get("E")
    return t if isinstance(t, int) else 0


def _note_stream(s: SymbolStreams, kind: str, stream: str, d: dict) -> None:
    if kind == DEPTH:
        s.depth = s.depth or stream
        _note_decimals(s, d.get("b", []) + d.get("a", []))
    elif kind == TRADE:
        s.trade = s.trade or stream
        if s.first_trade_id is None and isinstance(d.get("t"), int):
            s.first_trade_id = d["t"]
    elif kind == AGG_TRADE:
        s.agg_trade = s.agg_trade or stream
        if s.first_agg_id is None and isinstance(d.get("a"), int):
            s.first_agg_id = d["a"]
        if s.first_trade_id is None and isinstance(d.get("f"), int) and not s.trade:
            s.first_trade_id = d["f"]
    elif kind == BOOK_TICKER:
        s.book_ticker = s.book_ticker or stream
    elif kind == MARK_PRICE:
        s.mark_price = s.mark_price or stream


def _note_decimals(s: SymbolStreams, levels: list) -> None:
    """Learn how many decimals the venue prints prices and quantities with (for synthetic messages)."""
    if s.price_decimals is not None or not levels:
        return
    p, q = levels[0][0], levels[0][1]
    s.price_decimals = len(p.partition(".")[2])
    s.qty_decimals = len(q.partition(".")[2])
