"""Synthetic ``tapeshot.dataset/2`` records built to ``docs/dataset.md``: every documented field present, JSON-style
(decimal strings, nested dicts, maps as dicts), with nulls where the spec allows them."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

DAY_MS = 86_400_000
T0 = 1721260800000                         # 2024-07-18T00:00:00Z
MIDS = {"BTCUSDT": Decimal("64000.1"), "ETHUSDT": Decimal("3400.05")}
HORIZONS = (1, 5, 30, 60, 300)


def _s(d: Decimal) -> str:
    return format(d, "f")


def _book(mid: Decimal, sign: int) -> list[dict[str, str]]:
    return [{"price": _s(mid + sign * (Decimal("0.05") + Decimal(i) / 10)), "qty": _s(Decimal("1.5") + i)}
            for i in range(3)]


def _tape(t: int, mid: Decimal, empty: bool) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    trades = [] if empty else [
        {"time_ms": t - 2000 + i * 500, "price": _s(mid + Decimal(i - 1) / 10), "qty": "0.004",
         "aggressor": "BUY" if i % 2 else "SELL", "trade_id": 900_000 + t % 1000 + i} for i in range(3)]
    tape = {"window_s": 30.0, "count": len(trades), "kept": len(trades), "covered_s": 12.5 if empty else 30.0,
            "buy_qty": "0.004" if trades else "0", "sell_qty": "0.008" if trades else "0",
            "buy_notional": _s(mid * Decimal("0.004")) if trades else "0",
            "sell_notional": _s(mid * Decimal("0.008")) if trades else "0",
            "vwap": None if empty else _s(mid), "runs": len(trades), "longest_run": 1 if trades else 0,
            "longest_run_side": None if empty else "SELL", "longest_run_qty": None if empty else "0.004",
            "last_run": 1 if trades else 0, "last_run_side": None if empty else "SELL",
            "last_run_qty": None if empty else "0.004",
            "largest": None if empty else {k: trades[2][k] for k in ("time_ms", "price", "qty", "aggressor")}}
    return trades, tape


def _state(t: int, symbol: str, mid: Decimal, *, nulls: bool) -> dict[str, Any]:
    bid, ask = mid - Decimal("0.05"), mid + Decimal("0.05")
    trades, tape = _tape(t, mid, nulls)
    context = None if symbol == "BTCUSDT" else {
        "symbol": "BTCUSDT", "mid": "64000.1", "bid": "64000.05", "ask": "64000.15", "spread_bps": 0.0156,
        "signals": {"ofi_5s": 0.25, "imbalance": -0.1}, "move_5s_bps": 0.5, "move_30s_bps": -1.25,
        "move_300s_bps": None if nulls else 7.5, "synced": True}
    return {
        "exchange_ms": t, "local_ms": t + 3, "mid": _s(mid), "bid": _s(bid), "ask": _s(ask), "bid_qty": "2.5",
        "ask_qty": "0.75", "spread_bps": float((ask - bid) / mid * 10_000),
        "book": {"bids": _book(mid, -1), "asks": _book(mid, 1)}, "trades": trades, "tape": tape,
        "signals": {"ofi_5s": 0.5, "imbalance": 0.125, "micro_bps": -0.75},
        "mark": {"mark_price": None if nulls else _s(mid + 1), "index_price": None if nulls else _s(mid),
                 "funding_rate": None if nulls else "0.00010000", "next_funding_ms": None if nulls else t + 3_600_000,
                 "time_ms": None if nulls else t - 400},
        "context": context,
    }


def _decision(t: int, iid: str, qty: str, mid: Decimal, *, nulls: bool) -> dict[str, Any]:
    actions = [{"time_ms": t + 4, "action": "place", "client_order_id": f"{iid}-1", "tag": "ladder",
                "reason": "join the touch", "order_type": "LIMIT", "tif": "GTX", "price": _s(mid), "qty": qty},
               {"time_ms": t + 900, "action": "cancel", "client_order_id": f"{iid}-1", "tag": "ladder",
                "reason": "deadline", "order_type": None, "tif": None, "price": None, "qty": None}]
    return {
        "text": f"long {qty} 8s ladder max 8bps", "source": "telegram", "user": "uid:42", "kind": "enter",
        "qty": qty, "notional": _s(mid * Decimal(qty)), "window_s": 8.0, "max_slippage_bps": 8.0,
        "cap": _s(mid * Decimal("1.0008")), "limit": None if nulls else _s(mid), "deadline_ms": t + 8000,
        "on_deadline": "complete", "reduce_only": False, "algo_requested": "auto", "algo": "ladder",
        "algo_why": "deep book, calm tape", "actions": actions, "notes": ["joined the bid", "escalated"],
        "refusals": [] if not nulls else ["max_notional: 12000 > 10000 USDT"],
    }


def _rationale(t: int, nulls: bool) -> dict[str, Any]:
    if nulls:
        return {"text": "", "tags": [], "tags_after": [], "entries": []}
    return {"text": "bid absorbing / was right", "tags": ["absorb"], "tags_after": ["lucky"], "entries": [
        {"text": "bid absorbing #absorb", "tags": ["absorb"], "when": "with_intent", "time_ms": t,
         "after_arrival_s": 0.0, "user": "uid:42", "skipped": False},
        {"text": "was right #lucky", "tags": ["lucky"], "when": "after_outcome", "time_ms": t + 600_000,
         "after_arrival_s": 600.0, "user": "uid:42", "skipped": False}]}


def _horizons(t: int, mid: Decimal, sign: int, filled: bool, last_ms: int | None) -> list[dict[str, Any]]:
    rows = []
    for anchor in ("arrival", "last_fill"):
        for h in HORIZONS:
            na = anchor == "last_fill" and not filled
            base = t if anchor == "arrival" else last_ms
            later = mid + sign * Decimal(h) / 10
            move = None if na else sign * float((later - mid) / mid * 10_000)
            rows.append({
                "anchor": anchor, "h_s": h, "due_ms": None if na else base + h * 1000,
                "status": "n/a" if na else "observed", "reason": "",
                "observed_ms": None if na else base + h * 1000 + 7, "anchor_mid": None if na else _s(mid),
                "mid": None if na else _s(later), "move_bps": move, "exec_qty": None if na else "0.010",
                "pnl_usdt": None if na else _s(Decimal("0.010") * (later - mid) * sign - Decimal("0.0128")),
                "pnl_bps": None if na else round(move - 2.0, 6)})
    return rows


def _outcome(t: int, mid: Decimal, side: str, filled: bool) -> dict[str, Any]:
    sign = 1 if side == "BUY" else -1
    last = t + 800 if filled else None
    return {
        "filled_qty": "0.010" if filled else "0", "avg_price": _s(mid) if filled else None,
        "notional": _s(mid * Decimal("0.010")) if filled else "0", "fees": "0.0128" if filled else "0",
        "maker_share": 1.0 if filled else None, "complete": filled, "n_fills": 1 if filled else 0,
        "first_fill_ms": last, "last_fill_ms": last, "time_to_fill_s": 0.8 if filled else None,
        "shortfall_bps": 2.0 if filled else None,
        "immediate": {"avg_price": _s(mid + sign * Decimal("0.05")), "cost_bps": 4.5, "levels": 1,
                      "enough_depth": True},
        "saving_bps": 2.5 if filled else None, "horizons": _horizons(t, mid, sign, filled, last),
    }


def make_intent(iid: str, created_ms: int, symbol: str = "BTCUSDT", side: str = "BUY", *, nulls: bool = False,
                filled: bool = True) -> dict[str, Any]:
    """A v2 intent record; ``nulls`` leaves null every field the spec allows to be null, ``filled=False`` makes
    an intent that never filled (``last_fill`` horizons ``n/a``)."""
    mid = MIDS[symbol]
    return {
        "type": "intent", "schema": "tapeshot.dataset/2", "id": iid, "created_ms": created_ms,
        "updated_ms": created_ms + 9000, "date": _date(created_ms), "symbol": symbol, "side": side,
        "status": "done" if filled else "cancelled", "state": _state(created_ms, symbol, mid, nulls=nulls),
        "decision": _decision(created_ms, iid, "0.010", mid, nulls=nulls),
        "rationale": _rationale(created_ms, nulls), "outcome": _outcome(created_ms, mid, side, filled),
    }


def make_order(coid: str, intent_id: str | None, created_ms: int, symbol: str = "BTCUSDT", side: str = "BUY",
               *, filled: bool = True) -> dict[str, Any]:
    """A v2 order record (``intent_id=None``: a TP/SL order of no intent)."""
    mid = MIDS[symbol]
    return {
        "type": "order", "client_order_id": coid, "venue_order_id": 7_000_000 + created_ms % 100_000,
        "intent_id": intent_id, "symbol": symbol, "side": side, "order_type": "LIMIT" if intent_id else "STOP_MARKET",
        "tif": "GTX" if intent_id else None, "qty": "0.010", "price": _s(mid) if intent_id else None,
        "stop_price": None if intent_id else _s(mid - 100), "reduce_only": intent_id is None,
        "close_position": False, "state": "FILLED" if filled else "CANCELED", "filled": "0.010" if filled else "0",
        "avg_price": _s(mid) if filled else None, "fees": "0.0128" if filled else "0", "created_ms": created_ms,
        "updated_ms": created_ms + 800, "purpose": "entry" if intent_id else "sl",
        "tag": "ladder" if intent_id else "", "reason": "" if filled else "deadline", "date": _date(created_ms),
    }


def make_fill(trade_id: int, coid: str, intent_id: str | None, time_ms: int, symbol: str = "BTCUSDT",
              side: str = "BUY") -> dict[str, Any]:
    """A v2 fill record (``intent_id=None``: a fill of no intent)."""
    return {
        "type": "fill", "trade_id": trade_id, "client_order_id": coid, "intent_id": intent_id, "symbol": symbol,
        "side": side, "price": _s(MIDS[symbol]), "qty": "0.010", "fee": "0.0128", "fee_asset": "USDT",
        "maker": True, "time_ms": time_ms, "date": _date(time_ms),
    }


def make_decision(seq: int, intent_id: str | None, time_ms: int, kind: str = "arrival") -> dict[str, Any]:
    """A raw decision-journal record (JSON lines only)."""
    return {"type": "decision", "seq": seq, "intent_id": intent_id, "time_ms": time_ms, "kind": kind,
            "data": {"algo": "ladder"}}


def make_records() -> list[dict[str, Any]]:
    """A small journal's export: 6 intents over 3 days and 2 symbols (one with the nulls, one never filled), their
    orders, fills and decisions, then a stop-loss order and fill of no intent; intents first, as exported."""
    specs = [("i1", T0 + 1000, "BTCUSDT", "BUY", False, True), ("i2", T0 + 5000, "ETHUSDT", "SELL", True, True),
             ("i3", T0 + DAY_MS + 1000, "BTCUSDT", "SELL", False, True),
             ("i4", T0 + DAY_MS + 2000, "ETHUSDT", "BUY", False, False),
             ("i5", T0 + 2 * DAY_MS + 1000, "BTCUSDT", "BUY", False, True),
             ("i6", T0 + 2 * DAY_MS + 9000, "ETHUSDT", "BUY", False, True)]
    intents, orders, fills, decisions = [], [], [], []
    for n, (iid, t, sym, side, nulls, filled) in enumerate(specs):
        intents.append(make_intent(iid, t, sym, side, nulls=nulls, filled=filled))
        orders.append(make_order(f"{iid}-1", iid, t + 4, sym, side, filled=filled))
        if filled:
            fills.append(make_fill(5000 + n, f"{iid}-1", iid, t + 800, sym, side))
        decisions.append(make_decision(n + 1, iid, t))
    orders.append(make_order("sl-1", None, T0 + DAY_MS + 50_000, "BTCUSDT", "SELL"))
    fills.append(make_fill(6000, "sl-1", None, T0 + DAY_MS + 60_000, "BTCUSDT", "SELL"))
    decisions.append(make_decision(99, None, T0 + DAY_MS + 70_000, "kill"))
    return intents + orders + fills + decisions


def _date(ms: int) -> str:
    return (datetime(1970, 1, 1, tzinfo=UTC) + timedelta(milliseconds=ms)).date().isoformat()
