"""``tapeshot verify-book``: rebuild a recording's book by Binance's procedure and check it against every
checkable bookTicker (a ticker with ``u`` in ``[u_k, U_k+1)`` must equal the top after diff ``k``)."""

from __future__ import annotations

import heapq
from dataclasses import dataclass, field
from pathlib import Path

from engine.errors import DataError
from engine.feed import instruments as inst
from engine.feed.recording import Line, file_lines
from engine.feed.reference import parse_message
from ext.feed import Feed


@dataclass
class SymbolResult:
    symbol: str
    checks: int
    mismatches: int
    gaps: int
    diffs: int
    unchecked: int
    synced: bool
    snapshot_too_old: int
    bad: int


@dataclass
class VerifyResult:
    symbols: list[SymbolResult]
    messages: int
    errors: int
    first_errors: list[str] = field(default_factory=list)

    @property
    def checks(self) -> int:
        return sum(s.checks for s in self.symbols)

    @property
    def mismatches(self) -> int:
        return sum(s.mismatches for s in self.symbols)

    @property
    def gaps(self) -> int:
        return sum(s.gaps + s.snapshot_too_old for s in self.symbols)

    @property
    def ok(self) -> bool:
        return (self.mismatches == 0 and self.gaps == 0 and self.errors == 0
                and all(s.synced and s.bad == 0 for s in self.symbols))

    def summary(self) -> str:
        return f"checked {self.checks} bookTickers, {self.mismatches} mismatches, {self.gaps} gaps"


def merged_lines(paths: list[str | Path]) -> list[Line]:
    """All lines of the files, merged by local stamp; each file's own order is always kept, so the files of one
    recording given in order read as one stream, and a REST file beside a WebSocket file interleaves. A bare
    snapshot line is its file's symbol's (``file_lines``), so files of several symbols merge."""
    streams = [file_lines(p) for p in paths]
    return list(heapq.merge(*streams, key=lambda ln: ln.local_ts))


def _symbols_and_snapshots(lines: list[Line]) -> tuple[list[str], dict[str, dict]]:
    symbols: dict[str, None] = {}
    snapshots: dict[str, dict] = {}
    bare: list[dict] = []
    for ln in lines:
        try:
            d = parse_message(ln.raw)
        except ValueError:
            continue
        if d["kind"] == "snapshot":
            if ln.symbol:
                snapshots.setdefault(ln.symbol, d)
            else:
                bare.append(d)
        elif "s" in d:
            symbols.setdefault(d["s"], None)
    if bare and len(symbols) == 1:
        snapshots.setdefault(next(iter(symbols)), bare[0])
    return list(symbols), snapshots


def verify(paths: list[str | Path], exchange_info: str | Path | None = None, window: int = 32768) -> VerifyResult:
    if not paths:
        raise DataError("no recording given")
    lines = merged_lines(paths)
    symbols, snapshots = _symbols_and_snapshots(lines)
    if not symbols:
        raise DataError("no market-data messages in the recording")
    table = inst.load_exchange_info(exchange_info) if exchange_info else None
    feed = Feed(inst.resolve(symbols, table, snapshots), window)
    for sf in feed.symbols:
        sf.signals_on = False
    errors: list[str] = []
    for ln in lines:
        r = feed.on_snapshot(ln.symbol, ln.raw) if ln.symbol and ln.symbol in symbols else feed.on_message(ln.raw)
        if r < 0 and len(errors) < 10:
            errors.append(f"{ln.path}:{ln.lineno}: {feed.last_error or 'rejected'}")
    feed.finish()
    results = [SymbolResult(sf.symbol, sf.ticker_checks, sf.ticker_mismatches, sf.n_gaps, sf.n_diffs,
                            sf.ticker_unchecked, sf.n_diffs > 0, sf.n_snapshot_too_old, sf.n_bad)
               for sf in feed.symbols]
    return VerifyResult(results, feed.n_messages, feed.n_errors + feed.n_unknown_symbol, errors)
