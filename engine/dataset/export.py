"""``tapeshot journal export``: the journal as the decision dataset (``docs/dataset.md``, ``tapeshot.dataset/2``).

Records, each with a ``type``, in this order: one ``intent`` per intent (nested ``state``, ``decision``,
``rationale``, ``outcome``: ``engine.dataset.records``), then one ``order`` per order and one ``fill`` per fill,
and with ``decisions`` the raw decision journal (``decision``: ``seq``, ``intent_id``, ``time_ms``, ``kind``,
``data``). ``export_jsonl`` writes them as JSON lines; ``engine.dataset.parquet`` as a partitioned Parquet
dataset.

Prices, quantities and fees are decimal strings, never floats. The journal is opened read-only (an SQLite
``mode=ro`` URI) and read inside one transaction, so the export is a consistent snapshot even while an engine
writes to it (WAL readers never block the writer, and the engine's lock file is not touched).
"""

from __future__ import annotations

import contextlib
import logging
import sqlite3
from collections.abc import Iterator
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any, TextIO

import orjson

from engine.dataset.records import IntentRows, intent_record, utc_date
from engine.errors import ConfigError

log = logging.getLogger(__name__)
TYPES = ("intent", "order", "fill", "decision")
FORMATS = ("jsonl",)
_AVG_PLACES = Decimal("1e-8")


def connect_ro(path: str | Path, timeout_s: float = 10.0) -> sqlite3.Connection:
    """Open the journal at ``path`` read-only (never creates it, never writes, takes no engine lock)."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise ConfigError(f"no journal at {path}")
    uri = path.resolve().as_uri() + "?mode=ro"
    try:
        conn = sqlite3.connect(uri, uri=True, timeout=timeout_s, isolation_level=None, check_same_thread=False)
        conn.row_factory = sqlite3.Row
        conn.execute("PRAGMA query_only = ON")
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    except sqlite3.DatabaseError as exc:
        raise ConfigError(f"cannot read the journal {path}: {exc}") from None
    if not {"intents", "orders", "fills", "decisions"} <= tables:
        conn.close()
        raise ConfigError(f"{path} is not a Tapeshot journal")
    return conn


def export_jsonl(journal_path: str | Path, out: TextIO, *, decisions: bool = False) -> dict[str, int]:
    """Write the journal at ``journal_path`` to ``out`` as JSON lines (``decisions``: the raw decision journal
    too); returns the number of lines per type."""
    counts = dict.fromkeys(TYPES, 0)
    with contextlib.closing(connect_ro(journal_path)) as conn:
        conn.execute("BEGIN")                      # one read transaction: one consistent snapshot
        try:
            for record in records(conn, decisions=decisions):
                out.write(orjson.dumps(record).decode() + "\n")
                counts[record["type"]] += 1
        finally:
            conn.execute("COMMIT")
    return counts


def records(conn: sqlite3.Connection, *, decisions: bool = False, batch: int = 200) -> Iterator[dict[str, Any]]:
    """Every exported record of an open journal: intents (``engine.dataset.records``, ``batch`` at a time so a
    year of journals streams in bounded memory), then orders and fills (and with ``decisions`` the raw decision
    journal)."""
    owners = {r["client_order_id"]: r["intent_id"] for r in conn.execute("SELECT client_order_id, intent_id "
                                                                         "FROM orders")}
    has_outcomes = bool(conn.execute("SELECT 1 FROM sqlite_master WHERE type='table' AND name='outcomes'")
                        .fetchone())
    ids = [r["id"] for r in conn.execute("SELECT id FROM intents ORDER BY created_ms, id")]
    for k in range(0, len(ids), batch):
        for rows in _intent_rows(conn, ids[k:k + batch], has_outcomes):
            try:
                yield intent_record(rows)
            except (KeyError, TypeError, ValueError, ArithmeticError) as exc:   # one damaged row: said, skipped
                log.warning("export: intent %s skipped: unreadable (%s: %s)", rows.intent.get("id"),
                            type(exc).__name__, exc)
    tags = _order_tags(conn)
    for r in conn.execute("SELECT * FROM orders ORDER BY created_ms, client_order_id"):
        yield order_record(r, tags.get(r["client_order_id"], ""))
    for r in conn.execute("SELECT * FROM fills ORDER BY time_ms, trade_id"):
        yield fill_record(r, owners)
    if decisions:
        for r in conn.execute("SELECT * FROM decisions ORDER BY seq"):
            yield decision_record(r)


_KINDS = ("arrival_state", "action", "rationale", "refused", "timeline")


def _intent_rows(conn: sqlite3.Connection, ids: list[str], has_outcomes: bool) -> list[IntentRows]:
    """The journal's rows of the intents ``ids``, five queries for the whole batch."""
    marks = ",".join("?" * len(ids))
    out = {}
    for r in conn.execute(f"SELECT * FROM intents WHERE id IN ({marks})", ids):
        row = dict(r)
        row["data"], row["report"] = _json(r["data"]) or {}, _json(r["report"])
        out[r["id"]] = IntentRows(row)
    kinds = ",".join("?" * len(_KINDS))
    for r in conn.execute(f"SELECT intent_id, time_ms, kind, data FROM decisions WHERE intent_id IN ({marks}) "
                          f"AND kind IN ({kinds}) ORDER BY seq", [*ids, *_KINDS]):
        out[r["intent_id"]].decisions.append({"time_ms": r["time_ms"], "kind": r["kind"], "data": _json(r["data"])})
    for r in conn.execute(f"SELECT * FROM orders WHERE intent_id IN ({marks})", ids):
        out[r["intent_id"]].orders.append(dict(r))
    cids = {o["client_order_id"]: iid for iid, rows in out.items() for o in rows.orders}
    for r in conn.execute("SELECT * FROM fills WHERE client_order_id IN (SELECT client_order_id FROM orders "
                          f"WHERE intent_id IN ({marks}))", ids):
        out[cids[r["client_order_id"]]].fills.append(dict(r))
    if has_outcomes:
        for r in conn.execute(f"SELECT * FROM outcomes WHERE intent_id IN ({marks})", ids):
            out[r["intent_id"]].outcomes.append(dict(r))
    return [out[i] for i in ids if i in out]


def _order_tags(conn: sqlite3.Connection) -> dict[str, str]:
    """The algorithm's tag of each order it placed (its ``action`` decision)."""
    out = {}
    for r in conn.execute("SELECT data FROM decisions WHERE kind='action'"):
        d = _json(r["data"])
        if isinstance(d, dict) and d.get("action") == "place" and d.get("cid"):
            out[d["cid"]] = d.get("tag") or ""
    return out


def _json(text: str | None) -> Any:
    if not text:
        return None
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError:
        return text


def order_record(r: sqlite3.Row, tag: str = "") -> dict[str, Any]:
    """An ``orders`` row as an ``order`` record (``avg_price``: notional / filled, null when nothing filled)."""
    filled = _dec(r["filled"]) or Decimal(0)
    notional = _dec(r["notional"]) or Decimal(0)
    avg = _plain((notional / filled).quantize(_AVG_PLACES)) if filled else None
    return {
        "type": "order", "client_order_id": r["client_order_id"], "venue_order_id": r["venue_order_id"],
        "intent_id": r["intent_id"], "symbol": r["symbol"], "side": r["side"], "order_type": r["type"],
        "tif": r["tif"], "qty": r["qty"], "price": r["price"], "stop_price": r["stop_price"],
        "reduce_only": bool(r["reduce_only"]), "close_position": bool(r["close_position"]), "state": r["state"],
        "filled": r["filled"] or "0", "avg_price": avg, "fees": r["fees"] or "0", "created_ms": r["created_ms"],
        "updated_ms": r["updated_ms"], "purpose": r["purpose"], "tag": tag, "reason": r["reason"] or "",
        "date": utc_date(r["created_ms"]) if r["created_ms"] else None,
    }


def fill_record(r: sqlite3.Row, owners: dict[str, str | None]) -> dict[str, Any]:
    """A ``fills`` row as a ``fill`` record; the intent is the order's, or read off the client order id."""
    cid = r["client_order_id"]
    return {
        "type": "fill", "trade_id": int(r["trade_id"]), "client_order_id": cid,
        "intent_id": owners.get(cid) or intent_of(cid), "symbol": r["symbol"], "side": r["side"],
        "price": r["price"], "qty": r["qty"], "fee": r["fee"], "fee_asset": "USDT", "maker": bool(r["maker"]),
        "time_ms": r["time_ms"], "date": utc_date(r["time_ms"]),
    }


def decision_record(r: sqlite3.Row) -> dict[str, Any]:
    """A ``decisions`` row as a ``decision`` record (its data parsed)."""
    return {"type": "decision", "seq": r["seq"], "intent_id": r["intent_id"], "time_ms": r["time_ms"],
            "kind": r["kind"], "data": _json(r["data"])}


def intent_of(client_order_id: str | None) -> str | None:
    """The intent id an engine client order id starts with (``i0123456789001-3`` -> ``i0123456789001``)."""
    if not client_order_id or not client_order_id.startswith("i") or "-" not in client_order_id:
        return None
    return client_order_id.split("-", 1)[0]


def _dec(text: Any) -> Decimal | None:
    if text is None:
        return None
    try:
        return Decimal(str(text))
    except InvalidOperation:
        return None


def _plain(d: Decimal) -> str:
    text = f"{d:f}"
    return text.rstrip("0").rstrip(".") if "." in text else text
