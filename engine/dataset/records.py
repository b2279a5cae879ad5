"""One research record per intent out of the journal: ``state``, ``decision``, ``rationale``, ``outcome``
(``docs/dataset.md``, schema ``tapeshot.dataset/2``).

The engine journals what it saw (the intent row, its decisions, orders, fills and the ``outcomes`` rows); this
module derives the rest, exactly and offline: the tape's summary and the context's moves
(``engine.dataset.state``), the immediate fill on the arrival book, the shortfall, and each horizon's move and
PnL of the executed size. Decimals stay ``Decimal`` until the very end (strings in the record).
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any

from engine.dataset.outcomes import ANCHORS, HORIZONS_S
from engine.dataset.state import state_record

log = logging.getLogger(__name__)
SCHEMA = "tapeshot.dataset/2"
LIVE_STATES = ("accepted", "working", "completing", "cancelling")
DEFAULT_TAKER_FEE_BPS = 5.0
_SIDES = {0: "BUY", 1: "SELL", "0": "BUY", "1": "SELL", "BUY": "BUY", "SELL": "SELL"}
_BPS = Decimal(10_000)


@dataclass
class IntentRows:
    """Everything the journal holds about one intent (rows as dicts, JSON columns parsed)."""

    intent: dict[str, Any]
    decisions: list[dict[str, Any]] = field(default_factory=list)
    orders: list[dict[str, Any]] = field(default_factory=list)
    fills: list[dict[str, Any]] = field(default_factory=list)
    outcomes: list[dict[str, Any]] = field(default_factory=list)


def utc_date(ms: int) -> str:
    """``YYYY-MM-DD`` of an epoch-ms time, in UTC (the partition key)."""
    return dt.datetime.fromtimestamp(ms / 1000, dt.UTC).strftime("%Y-%m-%d")


def intent_record(rows: IntentRows) -> dict[str, Any]:
    """The v2 ``intent`` record of one intent."""
    r = rows.intent
    data = r.get("data") if isinstance(r.get("data"), dict) else {}
    report = r.get("report") if isinstance(r.get("report"), dict) else {}
    symbol = data.get("symbol") or report.get("symbol")
    side = _SIDES.get(data.get("side"), report.get("side"))
    raw_state = _last(rows.decisions, "arrival_state")
    state = _state(r["id"], raw_state)
    decision = _decision(r, data, report, rows, state)
    return {
        "type": "intent", "schema": SCHEMA, "id": r["id"], "created_ms": r["created_ms"],
        "updated_ms": r.get("updated_ms"), "date": utc_date(r["created_ms"]), "symbol": symbol, "side": side,
        "status": r.get("state"), "state": state, "decision": decision,
        "rationale": _rationale(r, data, rows.decisions),
        "outcome": _outcome(side, state, data, report, rows),
    }


def _state(intent_id: str, raw: Any) -> dict[str, Any] | None:
    """The arrival state, or None (logged) when the journalled capture is absent, of an unknown version, or
    unreadable: one damaged row never stops an export."""
    if not isinstance(raw, dict):
        return None
    if raw.get("v") not in (1, 2):
        log.warning("export: %s: arrival state of version %r is not read by this engine", intent_id, raw.get("v"))
        return None
    try:
        return state_record(raw)
    except (KeyError, TypeError, ValueError, IndexError, ArithmeticError) as exc:
        log.warning("export: %s: unreadable arrival state (%s: %s)", intent_id, type(exc).__name__, exc)
        return None


# ---- decision ---------------------------------------------------------------------------------------------------

def _decision(r: dict, data: dict, report: dict, rows: IntentRows, state: dict | None) -> dict[str, Any]:
    tick = _tick(data, state, rows)
    qty = _dec(report.get("requested")) or _scaled(data.get("qty_lots"), _step(data, state, rows))
    mid = _dec((state or {}).get("mid")) or _dec(report.get("arrival_mid"))
    if mid is None and isinstance(data.get("mid_ticks"), int | float) and tick is not None:
        mid = Decimal(repr(data["mid_ticks"])) * tick
    deadline_ns = data.get("deadline_ns")
    limit = data.get("limit")
    return {
        "text": r.get("text") or "", "source": r.get("source") or data.get("source") or "",
        "user": str(data.get("user") or ""), "kind": data.get("kind"), "qty": _s(qty),
        "notional": _s(None if qty is None or mid is None else (qty * mid).quantize(Decimal("1e-8"))),
        "window_s": data.get("window_s"), "max_slippage_bps": data.get("max_slippage_bps"),
        "cap": _s(_dec(report.get("cap")) or _scaled(data.get("cap"), tick)),
        "limit": _s(_scaled(limit, tick) if isinstance(limit, int) and limit >= 1 else None),
        "deadline_ms": deadline_ns // 1_000_000 if isinstance(deadline_ns, int) else None,
        "on_deadline": "complete" if data.get("complete", True) else "cancel",
        "reduce_only": bool(data.get("reduce_only")), "algo_requested": data.get("algo_requested") or "auto",
        "algo": data.get("algo") or report.get("algo"), "algo_why": data.get("why") or "",
        "actions": _actions(rows), "notes": [str(n) for n in report.get("notes") or []],
        "refusals": [_refusal(d["data"]) for d in rows.decisions if d["kind"] == "refused"],
    }


def _actions(rows: IntentRows) -> list[dict[str, Any]]:
    orders = {o["client_order_id"]: o for o in rows.orders}
    out = []
    for d in rows.decisions:
        if d["kind"] != "action" or not isinstance(d["data"], dict):
            continue
        a, o = d["data"], orders.get(d["data"].get("cid"), {})
        out.append({"time_ms": d["time_ms"], "action": a.get("action"), "client_order_id": a.get("cid"),
                    "tag": a.get("tag") or "", "reason": a.get("reason") or "", "order_type": o.get("type"),
                    "tif": o.get("tif"), "price": o.get("price"), "qty": o.get("qty")})
    return out


def _refusal(d: Any) -> str:
    if not isinstance(d, dict):
        return str(d)
    return str(d.get("message") or d.get("detail") or d.get("reason") or d)


# ---- rationale --------------------------------------------------------------------------------------------------

def _rationale(r: dict, data: dict, decisions: list[dict]) -> dict[str, Any]:
    entries = []
    if data.get("rationale") or data.get("tags"):
        entries.append({"text": data.get("rationale") or "", "tags": list(data.get("tags") or []),
                        "when": "with_intent", "time_ms": r["created_ms"], "after_arrival_s": 0.0,
                        "user": str(data.get("user") or ""), "skipped": False})
    for d in decisions:
        if d["kind"] != "rationale" or not isinstance(d["data"], dict):
            continue
        x = d["data"]
        entries.append({"text": x.get("text") or "", "tags": list(x.get("tags") or []),
                        "when": x.get("when") or "after_outcome", "time_ms": d["time_ms"],
                        "after_arrival_s": round((d["time_ms"] - r["created_ms"]) / 1000, 3),
                        "user": str(x.get("user") or ""), "skipped": bool(x.get("skipped"))})
    before = _tags(e for e in entries if e["when"] != "after_outcome")
    after = [t for t in _tags(e for e in entries if e["when"] == "after_outcome") if t not in before]
    return {"text": " / ".join(e["text"] for e in entries if e["text"]), "tags": before, "tags_after": after,
            "entries": entries}


def _tags(entries: Iterable[dict]) -> list[str]:
    out: list[str] = []
    for e in entries:
        out += [t for t in e["tags"] if t not in out]
    return out


# ---- outcome ----------------------------------------------------------------------------------------------------

def _outcome(side: str | None, state: dict | None, data: dict, report: dict, rows: IntentRows) -> dict[str, Any]:
    sign = 1 if side == "BUY" else -1
    fills = sorted(rows.fills, key=lambda f: (f["time_ms"], f["trade_id"]))
    qty = sum((Decimal(f["qty"]) for f in fills), Decimal(0))
    notional = sum((Decimal(f["qty"]) * Decimal(f["price"]) for f in fills), Decimal(0))
    fees = sum((Decimal(f["fee"]) for f in fills), Decimal(0))
    avg = notional / qty if qty else None
    mid = _dec((state or {}).get("mid")) or _dec(report.get("arrival_mid"))
    shortfall = float((sign * (notional - mid * qty) + fees) / (mid * qty) * _BPS) if qty and mid else None
    requested = _dec(report.get("requested"))
    fee_bps = float(data.get("taker_fee_bps", DEFAULT_TAKER_FEE_BPS))
    immediate = _immediate(side, state, qty if qty else requested, mid, fee_bps)
    maker = sum((Decimal(f["qty"]) for f in fills if f["maker"]), Decimal(0))
    out = {
        "filled_qty": _s(qty), "avg_price": _s(None if avg is None else avg.quantize(Decimal("1e-10")).normalize()),
        "notional": _s(notional), "fees": _s(fees), "maker_share": round(float(maker / qty), 4) if qty else None,
        "complete": bool(requested is not None and qty >= requested and qty > 0), "n_fills": len(fills),
        "first_fill_ms": fills[0]["time_ms"] if fills else None,
        "last_fill_ms": fills[-1]["time_ms"] if fills else None,
        "time_to_fill_s": report.get("time_to_fill_s"), "shortfall_bps": _r(shortfall), "immediate": immediate,
        "saving_bps": _r(immediate["cost_bps"] - shortfall) if immediate["cost_bps"] is not None
        and shortfall is not None else None,
    }
    out["horizons"] = horizons(sign, rows.outcomes, fills, rows.intent.get("state") in LIVE_STATES)
    return out


def _immediate(side: str | None, state: dict | None, qty: Decimal | None, mid: Decimal | None,
               fee_bps: float) -> dict[str, Any]:
    """The same size taken at once against the arrival book's far side (its top 20 levels)."""
    none = {"avg_price": None, "cost_bps": None, "levels": 0, "enough_depth": False}
    if not state or not qty or not mid or side not in ("BUY", "SELL"):
        return none
    levels = state["book"]["asks" if side == "BUY" else "bids"]
    left, value, walked = qty, Decimal(0), 0
    for lv in levels:
        if left <= 0:
            break
        take = min(left, Decimal(lv["qty"]))
        value += take * Decimal(lv["price"])
        left -= take
        walked += 1
    got = qty - left
    if not got:
        return none
    avg = value / got
    sign = 1 if side == "BUY" else -1
    cost = float(sign * (avg - mid) / mid * _BPS) + fee_bps
    return {"avg_price": _s(avg.quantize(Decimal("1e-10")).normalize()), "cost_bps": _r(cost), "levels": walked,
            "enough_depth": left <= 0}


def horizons(sign: int, rows: list[dict], fills: list[dict], working: bool = False) -> list[dict[str, Any]]:
    """The ten horizon rows (5 horizons x 2 anchors), in order. A row the journal lacks is ``pending`` while the
    intent works (the last fill's anchor is set when the execution ends), else ``missing`` with the reason."""
    have = {(r["anchor"], r["h_s"]): r for r in rows}
    out = []
    for anchor in ANCHORS:
        for h in HORIZONS_S:
            row = _horizon(sign, anchor, h, have.get((anchor, h)), fills)
            if (anchor, h) not in have:
                row.update(_absent(anchor, working, bool(rows)))
            out.append(row)
    return out


def _absent(anchor: str, working: bool, planned: bool) -> dict[str, str]:
    if working and anchor == "last_fill":
        return {"status": "pending", "reason": "the execution has not ended"}
    if planned or working:
        return {"status": "missing", "reason": "not recorded (the engine stopped before it planned this horizon)"}
    return {"status": "missing", "reason": "not recorded (the journal predates the decision dataset, or the "
                                           "engine stopped before it planned this horizon)"}


def _horizon(sign: int, anchor: str, h: int, r: dict | None, fills: list[dict]) -> dict[str, Any]:
    row: dict[str, Any] = {"anchor": anchor, "h_s": h, "due_ms": None, "status": "missing",
                           "reason": "not recorded (the journal predates the decision dataset)", "observed_ms": None,
                           "anchor_mid": None, "mid": None, "move_bps": None, "exec_qty": None, "pnl_usdt": None,
                           "pnl_bps": None}
    if r is None:
        return row
    row.update(due_ms=r["due_ms"], status=r["status"], reason=r.get("reason") or "",
               observed_ms=r.get("observed_ms"), anchor_mid=r.get("anchor_mid"), mid=r.get("mid"))
    mid, anchor_mid = _dec(r.get("mid")), _dec(r.get("anchor_mid"))
    if r["status"] != "observed" or mid is None:
        return row
    if anchor_mid:
        row["move_bps"] = _r(float(sign * (mid - anchor_mid) / anchor_mid * _BPS))
    done = [f for f in fills if r["due_ms"] is not None and f["time_ms"] <= r["due_ms"]]
    qty = sum((Decimal(f["qty"]) for f in done), Decimal(0))
    row["exec_qty"] = _s(qty)
    if qty:
        notional = sum((Decimal(f["qty"]) * Decimal(f["price"]) for f in done), Decimal(0))
        pnl = sign * (qty * mid - notional) - sum((Decimal(f["fee"]) for f in done), Decimal(0))
        row["pnl_usdt"] = _s(pnl.quantize(Decimal("1e-8")))
        row["pnl_bps"] = _r(float(pnl / notional * _BPS))
    return row


# ---- small helpers ----------------------------------------------------------------------------------------------

def _last(decisions: list[dict], kind: str) -> Any:
    for d in reversed(decisions):
        if d["kind"] == kind:
            return d["data"]
    return None


def _tick(data: dict, state: dict | None, rows: IntentRows) -> Decimal | None:
    raw = _last(rows.decisions, "arrival_state")
    if isinstance(raw, dict) and raw.get("tick"):
        return Decimal(raw["tick"])
    tl = _last(rows.decisions, "timeline")
    return Decimal(tl["tick"]) if isinstance(tl, dict) and tl.get("tick") else None


def _step(data: dict, state: dict | None, rows: IntentRows) -> Decimal | None:
    raw = _last(rows.decisions, "arrival_state")
    if isinstance(raw, dict) and raw.get("step"):
        return Decimal(raw["step"])
    qtys = [Decimal(o["qty"]) for o in rows.orders if o.get("qty")]
    return min((Decimal(1).scaleb(q.as_tuple().exponent) for q in qtys), default=None) if qtys else None


def _scaled(units: Any, size: Decimal | None) -> Decimal | None:
    if not isinstance(units, int) or size is None:
        return None
    return units * size


def _dec(x: Any) -> Decimal | None:
    if x is None or x == "":
        return None
    try:
        return x if isinstance(x, Decimal) else Decimal(str(x))
    except InvalidOperation:
        return None


def _s(d: Decimal | None) -> str | None:
    return None if d is None else f"{d:f}"


def _r(x: float | None, nd: int = 4) -> float | None:
    return None if x is None else round(x, nd) + 0.0          # + 0.0: never "-0.0"
