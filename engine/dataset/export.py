"""``tapeshot journal export --format jsonl``: the journal as one JSON object a line.

Lines, each with a ``type``, in this order:

- ``intent``: ``id``, ``created_ms``, ``source``, ``text`` (as the trader sent it), ``symbol``, ``side``
  (BUY/SELL), ``qty`` (requested, base units), ``window_s``, ``cap`` (price), ``deadline_ms`` (exchange time),
  ``algo``, ``state``, ``report`` (the execution report, or null), ``rationale``, ``tags`` (the trader's
  ``#word`` tags, lower-case, without ``#``); the raw integer fields
  (``qty_lots``, ``cap_ticks``, ``deadline_ns``, ``arrival_ns``) ride along for exactness;
- ``order``: ``client_order_id``, ``venue_order_id``, ``intent_id``, ``symbol``, ``side``, ``order_type``, ``tif``,
  ``qty``, ``price``, ``stop_price``, ``reduce_only``, ``close_position``, ``state``, ``filled``, ``avg_price``,
  ``fees``, ``created_ms``, ``updated_ms``, ``purpose``, ``reason``;
- ``fill``: ``trade_id`` (the venue's trade id, an integer), ``symbol``, ``side``, ``price``, ``qty``, ``fee``,
  ``maker``, ``time_ms`` (exchange time), ``client_order_id``, ``intent_id``;
- ``decision``: ``seq``, ``intent_id``, ``time_ms``, ``kind``, ``data``.

Prices, quantities and fees are decimal strings, never floats. The journal is opened read-only (an SQLite
``mode=ro`` URI) and read inside one transaction, so the export is a consistent snapshot even while an engine
writes to it (WAL readers never block the writer, and the engine's lock file is not touched).
"""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Iterator
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any, TextIO

import orjson

from engine.errors import ConfigError

TYPES = ("intent", "order", "fill", "decision")
FORMATS = ("jsonl",)
_SIDES = {0: "BUY", 1: "SELL", "0": "BUY", "1": "SELL", "BUY": "BUY", "SELL": "SELL"}
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


def export_jsonl(journal_path: str | Path, out: TextIO) -> dict[str, int]:
    """Write the journal at ``journal_path`` to ``out`` as JSON lines; returns the number of lines per type."""
    counts = dict.fromkeys(TYPES, 0)
    with contextlib.closing(connect_ro(journal_path)) as conn:
        conn.execute("BEGIN")                      # one read transaction: one consistent snapshot
        try:
            for record in records(conn):
                out.write(orjson.dumps(record).decode() + "\n")
                counts[record["type"]] += 1
        finally:
            conn.execute("COMMIT")
    return counts


def records(conn: sqlite3.Connection) -> Iterator[dict[str, Any]]:
    """Every exported record of an open journal, intents first, then orders, fills and decisions."""
    grids = _grids(conn)
    owners = {r["client_order_id"]: r["intent_id"] for r in conn.execute("SELECT client_order_id, intent_id "
                                                                         "FROM orders")}
    for r in conn.execute("SELECT * FROM intents ORDER BY created_ms, id"):
        yield intent_record(r, grids)
    for r in conn.execute("SELECT * FROM orders ORDER BY created_ms, client_order_id"):
        yield order_record(r)
    for r in conn.execute("SELECT * FROM fills ORDER BY time_ms, trade_id"):
        yield fill_record(r, owners)
    for r in conn.execute("SELECT * FROM decisions ORDER BY seq"):
        yield decision_record(r)


def _json(text: str | None) -> Any:
    if not text:
        return None
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError:
        return text


def intent_record(r: sqlite3.Row, grids: dict[str, tuple[int, int]] | None = None) -> dict[str, Any]:
    """An ``intents`` row as an ``intent`` line."""
    data = _json(r["data"]) or {}
    data = data if isinstance(data, dict) else {}
    report = _json(r["report"])
    report = report if isinstance(report, dict) else None
    symbol = data.get("symbol") or (report or {}).get("symbol")
    price_places, qty_places = (grids or {}).get(symbol, (None, None))
    deadline_ns = data.get("deadline_ns")
    return {
        "type": "intent", "id": r["id"], "created_ms": r["created_ms"], "updated_ms": r["updated_ms"],
        "source": r["source"], "text": r["text"], "kind": data.get("kind"), "symbol": symbol,
        "side": _SIDES.get(data.get("side"), (report or {}).get("side")),
        "qty": _first_str(data.get("qty"), (report or {}).get("requested"),
                          _scaled(data.get("qty_lots"), qty_places)),
        "window_s": data.get("window_s"), "max_slippage_bps": data.get("max_slippage_bps"),
        "cap": _first_str(data.get("cap_price"), (report or {}).get("cap"),
                          _scaled(data.get("cap"), price_places)),
        "limit": data.get("limit") if data.get("limit") is None else str(data.get("limit")),
        "deadline_ms": deadline_ns // 1_000_000 if isinstance(deadline_ns, int) else None,
        "algo": data.get("algo"), "state": r["state"], "report": report, "rationale": data.get("rationale") or "",
        "tags": [str(t) for t in data.get("tags") or [] if isinstance(t, str)],
        "reduce_only": data.get("reduce_only"), "user": data.get("user"),
        "qty_lots": data.get("qty_lots"), "cap_ticks": data.get("cap"), "deadline_ns": deadline_ns,
        "arrival_ns": data.get("arrival_ns"),
    }


def order_record(r: sqlite3.Row) -> dict[str, Any]:
    """An ``orders`` row as an ``order`` line (``avg_price``: notional / filled, null when nothing filled)."""
    filled = _dec(r["filled"]) or Decimal(0)
    notional = _dec(r["notional"]) or Decimal(0)
    avg = _plain((notional / filled).quantize(_AVG_PLACES)) if filled else None
    return {
        "type": "order", "client_order_id": r["client_order_id"], "venue_order_id": r["venue_order_id"],
        "intent_id": r["intent_id"], "symbol": r["symbol"], "side": r["side"], "order_type": r["type"],
        "tif": r["tif"], "qty": r["qty"], "price": r["price"], "stop_price": r["stop_price"],
        "reduce_only": bool(r["reduce_only"]), "close_position": bool(r["close_position"]), "state": r["state"],
        "filled": r["filled"] or "0", "avg_price": avg, "fees": r["fees"] or "0", "created_ms": r["created_ms"],
        "updated_ms": r["updated_ms"], "purpose": r["purpose"], "reason": r["reason"] or "",
    }


def fill_record(r: sqlite3.Row, owners: dict[str, str | None]) -> dict[str, Any]:
    """A ``fills`` row as a ``fill`` line; the intent is the order's, or read off the client order id."""
    cid = r["client_order_id"]
    return {
        "type": "fill", "trade_id": int(r["trade_id"]), "symbol": r["symbol"], "side": r["side"],
        "price": r["price"], "qty": r["qty"], "fee": r["fee"], "maker": bool(r["maker"]), "time_ms": r["time_ms"],
        "client_order_id": cid, "intent_id": owners.get(cid) or intent_of(cid),
    }


def decision_record(r: sqlite3.Row) -> dict[str, Any]:
    """A ``decisions`` row as a ``decision`` line (its data parsed)."""
    return {"type": "decision", "seq": r["seq"], "intent_id": r["intent_id"], "time_ms": r["time_ms"],
            "kind": r["kind"], "data": _json(r["data"])}


def intent_of(client_order_id: str | None) -> str | None:
    """The intent id an engine client order id starts with (``i0123456789001-3`` -> ``i0123456789001``)."""
    if not client_order_id or not client_order_id.startswith("i") or "-" not in client_order_id:
        return None
    return client_order_id.split("-", 1)[0]


def _grids(conn: sqlite3.Connection) -> dict[str, tuple[int, int]]:
    """Per symbol, the decimal places of our order prices (on the tick grid; fills carry the venue's price
    precision, which may be finer) and quantities, for intents whose record holds only integer ticks and lots
    and no report yet. An inference: exact for grids that are powers of ten (BTCUSDT 0.1 / 0.001)."""
    out: dict[str, tuple[int, int]] = {}
    for r in conn.execute("SELECT symbol, price, qty FROM orders WHERE type='LIMIT' AND price IS NOT NULL"):
        pp, qp = out.get(r["symbol"], (0, 0))
        out[r["symbol"]] = (max(pp, _places(r["price"])), max(qp, _places(r["qty"])))
    return out


def _places(text: str | None) -> int:
    d = _dec(text)
    return max(0, -d.as_tuple().exponent) if d is not None and isinstance(d.as_tuple().exponent, int) else 0


def _dec(text: Any) -> Decimal | None:
    if text is None:
        return None
    try:
        return Decimal(str(text))
    except InvalidOperation:
        return None


def _scaled(units: Any, places: int | None) -> str | None:
    """Integer ticks or lots as a decimal string, given the grid's decimal places."""
    if not isinstance(units, int) or places is None:
        return None
    return f"{Decimal(units).scaleb(-places):.{places}f}"


def _first_str(*values: Any) -> str | None:
    return next((str(v) for v in values if v is not None), None)


def _plain(d: Decimal) -> str:
    text = f"{d:f}"
    return text.rstrip("0").rstrip(".") if "." in text else text
