"""The recorded tape the simulated venue replays: every message of a recording, in arrival order, with its
exchange time, its stream name and its ``data`` bytes exactly as Binance sent them.

Assumptions:

- Files naming the same symbols are one recording, read in the order given as one stream
  (``engine.feed.recording.iter_lines``); arrival (recorded) order is the replay order within it. Recordings of
  different symbols (``usdm_btcusdt_... usdm_ethusdt_...``) are merged by exchange time; equal times keep the
  order the files were given in.
- An event's exchange time is its ``T`` for depthUpdate, trade, aggTrade and bookTicker, else its ``E``
  (markPriceUpdate's ``T`` is the next funding time, not an event time). A REST snapshot line takes its ``T``/``E``
  when it has them. Exchange time is made monotone for scheduling: ``time_ns = max(previous time_ns, t)``.
- A bare REST snapshot line (``{"lastUpdateId": ...}``) belongs to the symbol its line names (cryptofeed's REST
  lines), else to the single symbol of the file it is in, else to the tape's single symbol; it is attributed
  before the merge, applied to the recorded book and never published on a stream.
- Local receive stamps are normalised to ns (µs stamps, older than ~1973 in ns, are multiplied by 1000); only
  their differences to exchange time are used (recorded feed latency).
"""

from __future__ import annotations

import functools
import heapq
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
    files = [_read_file(p) for p in paths]
    _attribute_orphans(files)
    streams_of: dict[frozenset[str], list[list[_Rec]]] = {}
    for recs in files:                                   # files of the same symbols: one stream, in the order given
        syms = frozenset(r.symbol for r in recs if r.symbol)
        streams_of.setdefault(syms, []).append(recs)
    merged = heapq.merge(*(_monotone(group) for group in streams_of.values()), key=lambda r: r.sched)
    events: list[TapeEvent] = []
    streams: dict[str, SymbolStreams] = {}
    for r in merged:
        stream = r.stream
        if not stream and r.kind in _DEFAULT_STREAM and r.symbol:
            stream = f"{r.symbol.lower()}@{_DEFAULT_STREAM[r.kind]}"
        events.append(TapeEvent(len(events), r.kind, r.symbol, stream, r.sched, r.exch_ns, r.local_ns, r.data,
                                r.raw, r.obj))
        if r.symbol and r.kind != SNAPSHOT:
            _note_stream(streams.setdefault(r.symbol, SymbolStreams()), r.kind, stream, r.obj)
    for ev in events:
        if ev.kind == SNAPSHOT and ev.symbol in streams:
            _note_decimals(streams[ev.symbol], ev.obj.get("bids", []) + ev.obj.get("asks", []))
    return Tape(tuple(events), tuple(streams), streams)


@dataclass(slots=True)
class _Rec:
    """One line of one file, before the merge (``sched``: its stream's monotone exchange time, set later)."""

    kind: str
    symbol: str
    stream: str
    exch_ns: int
    local_ns: int
    data: bytes
    raw: bytes
    obj: dict
    where: str
    sched: int = 0


def _read_file(path: str) -> list[_Rec]:
    out: list[_Rec] = []
    for line in iter_lines([path]):
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
        local_ns = line.local_ts * 1000 if 0 < line.local_ts < 10**17 else line.local_ts
        out.append(_Rec(kind, symbol, stream, exch_ms * MS if exch_ms else 0, local_ns, data, line.raw, data_obj,
                        f"{line.path}:{line.lineno}"))
    return out


def _attribute_orphans(files: list[list[_Rec]]) -> None:
    """Give each bare REST snapshot line its symbol: its file's single symbol, else the tape's single symbol."""
    every = {r.symbol for recs in files for r in recs if r.symbol and r.kind != SNAPSHOT}
    for recs in files:
        orphans = [r for r in recs if r.kind == SNAPSHOT and not r.symbol]
        if not orphans:
            continue
        mine = {r.symbol for r in recs if r.symbol and r.kind != SNAPSHOT} or every
        if len(mine) != 1:
            raise DataError(f"{orphans[0].where}: a bare REST snapshot line in a file of {len(mine)} symbols "
                            f"{sorted(mine)}: cannot tell whose it is (record one symbol per file)")
        sym = next(iter(mine))
        for r in orphans:
            r.symbol = sym


def _monotone(group: list[list[_Rec]]) -> list[_Rec]:
    """One stream's lines in file order, each with its scheduling time: the running max of exchange times."""
    last = 0
    out = []
    for recs in group:
        for r in recs:
            last = max(last, r.exch_ns)
            r.sched = last
            out.append(r)
    return out


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


@dataclass(frozen=True, slots=True)
class Lap:
    """How a replayed lap of a tape differs from the recording: exchange times moved forward by ``time_ms``, and
    per symbol its depth update ids (``depth``), trade ids (``trade``) and aggTrade ids (``agg``) moved forward."""

    time_ms: int
    depth: dict[str, int]
    trade: dict[str, int]
    agg: dict[str, int]


def lap_of(tape: Tape, n: int, start_ns: int) -> Lap:
    """The shifts of lap ``n`` (1 = the first replay after the recording itself) starting at exchange time
    ``start_ns``: every id moved past lap ``n - 1``'s (n x the recorded span), times by whole milliseconds."""
    first = tape.events[0].time_ns if tape.events else 0
    time_ms = max(0, -(-(start_ns - first) // MS))
    lo: dict[tuple[str, str], int] = {}
    hi: dict[tuple[str, str], int] = {}
    for ev in tape.events:
        for key, table in _ID_FIELDS.get(ev.kind, ()):
            v = ev.obj.get(key)
            if isinstance(v, int):
                k = (ev.symbol, table)
                lo[k] = min(lo.get(k, v), v)
                hi[k] = max(hi.get(k, v), v)
    width = {sym: {t: hi[(sym, t)] - lo[(sym, t)] + 1 if (sym, t) in hi else 0 for t in ("depth", "trade", "agg")}
             for sym in tape.symbols}
    return Lap(time_ms, {s: n * w["depth"] for s, w in width.items()}, {s: n * w["trade"] for s, w in width.items()},
               {s: n * w["agg"] for s, w in width.items()})


def shifted(tape: Tape, lap: Lap) -> Tape:
    """``tape`` as lap ``lap`` replays it: times and ids moved forward (``Lap``), each message re-serialised."""
    events = tuple(_shift_event(ev, lap) for ev in tape.events)
    return Tape(events, tape.symbols, tape.streams)


_ID_FIELDS = {DEPTH: (("U", "depth"), ("u", "depth"), ("pu", "depth")), BOOK_TICKER: (("u", "depth"),),
              SNAPSHOT: (("lastUpdateId", "depth"),), TRADE: (("t", "trade"),),
              AGG_TRADE: (("a", "agg"), ("f", "trade"), ("l", "trade"))}


def _shift_event(ev: TapeEvent, lap: Lap) -> TapeEvent:
    d = dict(ev.obj)
    for key in ("E", "T"):
        if isinstance(d.get(key), int):
            d[key] += lap.time_ms
    for key, table in _ID_FIELDS.get(ev.kind, ()):
        if isinstance(d.get(key), int):
            d[key] += getattr(lap, table).get(ev.symbol, 0)
    data = orjson.dumps(d)
    raw = b'{"stream":"' + ev.stream.encode() + b'","data":' + data + b"}" \
        if ev.raw.startswith(b'{"stream"') else data
    shift = lap.time_ms * MS
    return TapeEvent(ev.seq, ev.kind, ev.symbol, ev.stream, ev.time_ns + shift,
                     ev.exch_ns + shift if ev.exch_ns else 0, ev.local_ns + shift, data, raw, d)
