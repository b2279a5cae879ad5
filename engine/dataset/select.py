"""The export filters of ``docs/dataset.md`` (``--since``, ``--until``, ``--symbol``), the read-only snapshot they
run on, and the filtered JSON lines export.

Intents are selected by ``created_ms`` (``since <= created_ms < until``) and symbol (case-insensitive). Orders,
fills and decision records follow their intent; those of no intent (TP/SL orders and their fills, engine-level
decisions) are selected by their own time (orders ``created_ms``, fills and decisions ``time_ms``) and symbol. A
record of no intent and no time is kept only when no time bound is set; a decision that names no symbol passes
the symbol filter.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterable, Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any, TextIO

import orjson

from engine.dataset.export import connect_ro, records
from engine.errors import ConfigError

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MS = timedelta(milliseconds=1)
_DIGITS = re.compile(r"[0-9]+")
_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
_OWN_TIME = {"intent": "created_ms", "order": "created_ms", "fill": "time_ms", "decision": "time_ms"}


def parse_time(text: str) -> int:
    """``text`` as milliseconds since the epoch: an ISO date (``2024-07-18``, midnight UTC), an ISO date and time
    (``2024-07-18T12:30:00``, ``2024-07-18 12:30:00.250+02:00``, ``...Z``; UTC when it names no zone) or an integer
    number of milliseconds since the epoch. ConfigError naming the value otherwise."""
    s = str(text).strip()
    if _DIGITS.fullmatch(s):
        return int(s)
    try:
        if _DATE.fullmatch(s):
            return (datetime.combine(date.fromisoformat(s), datetime.min.time(), UTC) - _EPOCH) // _MS
        dt = datetime.fromisoformat(s)
    except ValueError:
        raise ConfigError(f"bad time {text!r}: expected an ISO date (2024-07-18), an ISO time "
                          "(2024-07-18T12:30:00, UTC unless it names a zone) or milliseconds since the epoch") from None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return (dt - _EPOCH) // _MS


def parse_range(since: str | None, until: str | None) -> tuple[int | None, int | None]:
    """``--since`` and ``--until`` as milliseconds (None when not given); ConfigError unless since < until."""
    since_ms = parse_time(since) if since is not None else None
    until_ms = parse_time(until) if until is not None else None
    if since_ms is not None and until_ms is not None and since_ms >= until_ms:
        raise ConfigError(f"--since {since} is not before --until {until}: nothing can be selected")
    return since_ms, until_ms


def select(recs: Iterable[dict[str, Any]], since_ms: int | None = None, until_ms: int | None = None,
           symbol: str | None = None, *, decisions: bool = True) -> Iterator[dict[str, Any]]:
    """The records of ``recs`` the filters select, in their order (``decisions=False`` drops decision records).

    Streams: intents must come before the records that follow them, as ``engine.dataset.export.records`` yields
    them; a record whose intent was never seen is judged by its own time and symbol."""
    want = symbol.upper() if symbol else None
    seen: set[str] = set()
    kept: set[str] = set()
    for rec in recs:
        kind = rec.get("type")
        if kind == "decision" and not decisions:
            continue
        if kind == "intent":
            seen.add(rec.get("id"))
            if not _own_match(rec, "created_ms", since_ms, until_ms, want):
                continue
            kept.add(rec.get("id"))
        elif rec.get("intent_id") in seen:
            if rec["intent_id"] not in kept:
                continue
        elif not _own_match(rec, _OWN_TIME.get(kind, "time_ms"), since_ms, until_ms, want):
            continue
        yield rec


def _own_match(rec: dict[str, Any], time_key: str, since_ms: int | None, until_ms: int | None,
               want: str | None) -> bool:
    t = rec.get(time_key)
    if (since_ms is not None or until_ms is not None) and not isinstance(t, int):
        return False
    if (since_ms is not None and t < since_ms) or (until_ms is not None and t >= until_ms):
        return False
    if want is None:
        return True
    sym = _symbol_of(rec)
    return sym == want if sym is not None else rec.get("type") == "decision"


def _symbol_of(rec: dict[str, Any]) -> str | None:
    sym = rec.get("symbol")
    if sym is None and rec.get("type") == "decision" and isinstance(rec.get("data"), dict):
        sym = rec["data"].get("symbol")
    return str(sym).upper() if sym is not None else None


@contextlib.contextmanager
def snapshot(journal_path: str | Path, *, decisions: bool = False) -> Iterator[Iterator[dict[str, Any]]]:
    """The journal's records (``engine.dataset.export.records``; the raw decision records too with ``decisions``)
    read read-only inside one transaction: one consistent snapshot even while an engine writes to it. Consume them
    inside the ``with``."""
    with contextlib.closing(connect_ro(journal_path)) as conn:
        conn.execute("BEGIN")
        try:
            yield records(conn, decisions=decisions)
        finally:
            conn.execute("COMMIT")


def export_selected_jsonl(journal_path: str | Path, out: TextIO, since_ms: int | None = None,
                          until_ms: int | None = None, symbol: str | None = None, *,
                          decisions: bool = False) -> dict[str, int]:
    """The journal's selected records as JSON lines into ``out`` (decision records only with ``decisions``);
    returns the number of lines per type."""
    counts = {"intent": 0, "order": 0, "fill": 0} | ({"decision": 0} if decisions else {})
    with snapshot(journal_path, decisions=decisions) as recs:
        for rec in select(recs, since_ms, until_ms, symbol, decisions=decisions):
            out.write(orjson.dumps(rec).decode() + "\n")
            counts[rec["type"]] = counts.get(rec["type"], 0) + 1
    return counts
