"""The market as an intent found it, for the decision dataset (``docs/dataset.md``, the ``state`` struct).

Two steps, so that the event loop only copies:

- ``capture`` runs on the loop when the intent is accepted: the top 20 levels a side, the last 30 s of trades
  (numpy copies out of the feed's trade ring, ``ext.feed.SymbolFeed.recent_trades``), the signals, the mark
  price, index price and funding rate, and the context symbol's touch, signals and mid history, in grid units;
  ``journal_bytes`` serializes it in one C call. Some 15-60 µs, nothing in Python per trade.
- ``state_record`` runs at export: units onto decimal strings, the tape's summary (volume by aggressor side,
  runs, the largest print), the context's moves. No Python work per trade ever runs beside the hot path
  (a writer thread doing it would hold the GIL against the event loop).

The context symbol (``BTCUSDT``) is captured for an intent on any other symbol; the engine subscribes it for
that even when it does not trade it (``[dataset] context_symbol``).
"""

from __future__ import annotations

import math
import time
from decimal import Decimal
from typing import Any

import numpy as np
import orjson

from engine.model import Instrument

SEC = 1_000_000_000
TRADES_WINDOW_S = 30
TRADES_KEPT = 2000                    # the newest trades kept in a record; the summary counts them all
BOOK_LEVELS = 20
CONTEXT_MOVES_S = (5, 30, 300)
_NO_BID, _NO_ASK = -(2**63), 2**63 - 1


def capture(sf: Any, now_ns: int, signals: dict[str, float], context_sf: Any = None) -> dict[str, Any]:
    """The market state of ``sf`` at ``now_ns`` (exchange time) in grid units, as it is journalled (an
    ``arrival_state`` decision; ``state_record`` turns it into the documented struct at export). ``signals``:
    the arrival's snapshot; ``context_sf``: the context symbol's feed (None: no context). Copies only: the
    trades are numpy arrays that ``journal_bytes`` serializes in one C call."""
    inst = sf.instrument
    return {"v": 1, "symbol": inst.symbol, "tick": str(inst.tick_size), "step": str(inst.step_size),
            "exchange_ns": now_ns, "local_ms": time.time_ns() // 1_000_000,
            "bids": sf.book.top(0, BOOK_LEVELS), "asks": sf.book.top(1, BOOK_LEVELS),
            "trades": sf.recent_trades(now_ns - TRADES_WINDOW_S * SEC), "signals": signals,
            "mark": [_s(sf.mark_price), _s(sf.index_price), _s(sf.funding_rate), sf.next_funding_ms,
                     sf.mark_time_ms],
            "context": None if context_sf is None else _context(context_sf, now_ns)}


def journal_bytes(raw: dict[str, Any]) -> orjson.Fragment:
    """``raw`` serialized now (numpy arrays natively; NaN signals become null), ready to embed in a journal
    record: a few tens of µs for a busy tape."""
    return orjson.Fragment(orjson.dumps(raw, option=orjson.OPT_SERIALIZE_NUMPY))


def _context(sf: Any, now_ns: int) -> dict[str, Any]:
    book = sf.book
    inst = sf.instrument
    out = {"symbol": inst.symbol, "tick": str(inst.tick_size), "synced": False, "bid": None, "ask": None,
           "signals": {}, "mids_before": {}}
    if sf.synced and book.best_bid != _NO_BID and book.best_ask != _NO_ASK:
        out.update(synced=True, bid=book.best_bid, ask=book.best_ask, signals=sf.timing.snapshot(now_ns),
                   mids_before={str(h): sf.mid_at(now_ns - h * SEC)[1] for h in CONTEXT_MOVES_S})
    return out


def state_record(raw: dict[str, Any]) -> dict[str, Any]:
    """The ``state`` struct of ``docs/dataset.md`` from a journalled capture (decimals as strings)."""
    inst = Instrument.make(raw["symbol"], raw["tick"], raw["step"])
    bids, asks = [tuple(lv) for lv in raw["bids"]], [tuple(lv) for lv in raw["asks"]]
    bid, ask = (bids[0] if bids else None), (asks[0] if asks else None)
    mid = None if bid is None or ask is None else Decimal(bid[0] + ask[0]) * inst.tick_size / 2
    mark, index, rate, next_ms, mark_ms = raw["mark"]
    tr = raw["trades"]
    arrays = {k: np.asarray(tr[k], dtype=bool if k == "sell" else np.int64)
              for k in ("t_ns", "price", "qty", "trade_id", "sell")}
    return {
        "exchange_ms": raw["exchange_ns"] // 1_000_000, "local_ms": raw["local_ms"],
        "mid": _s(mid), "bid": _px(inst, bid), "ask": _px(inst, ask),
        "bid_qty": _qty(inst, bid), "ask_qty": _qty(inst, ask),
        "spread_bps": None if mid is None else _bps((ask[0] - bid[0]) * inst.tick_size, mid),
        "book": {"bids": [_level(inst, lv) for lv in bids], "asks": [_level(inst, lv) for lv in asks]},
        **tape(inst, {**arrays, "covered_ns": tr["covered_ns"]}, raw["exchange_ns"]),
        "signals": {k: _f(v) for k, v in (raw.get("signals") or {}).items()},
        "mark": {"mark_price": mark, "index_price": index, "funding_rate": rate, "next_funding_ms": next_ms,
                 "time_ms": mark_ms},
        "context": None if raw.get("context") is None else context_record(raw["context"]),
    }


def tape(inst: Instrument, tr: dict[str, Any], now_ns: int) -> dict[str, Any]:
    """``trades`` (the newest ``TRADES_KEPT``, oldest first) and ``tape``, the summary of every trade of the
    window: volume and notional by aggressor side, VWAP, runs of same-side trades, the largest print."""
    t, px, qty, ids, sell = tr["t_ns"], tr["price"], tr["qty"], tr["trade_id"], tr["sell"]
    n = len(t)
    covered = None if tr["covered_ns"] < 0 else round(min(TRADES_WINDOW_S, (now_ns - tr["covered_ns"]) / SEC), 3)
    keep = slice(max(0, n - TRADES_KEPT), n)
    trades = [{"time_ms": int(t[i]) // 1_000_000, "price": _units(int(px[i]), inst.tick_size),
               "qty": _units(int(qty[i]), inst.step_size), "aggressor": "SELL" if sell[i] else "BUY",
               "trade_id": int(ids[i])} for i in range(keep.start, keep.stop)]
    summary: dict[str, Any] = {"window_s": float(TRADES_WINDOW_S), "count": n, "kept": len(trades),
                               "covered_s": covered}
    summary.update(_volumes(inst, px, qty, sell))
    summary.update(_runs(inst, qty, sell))
    if n:
        i = int(np.argmax(qty))
        summary["largest"] = {"time_ms": int(t[i]) // 1_000_000, "price": _units(int(px[i]), inst.tick_size),
                              "qty": _units(int(qty[i]), inst.step_size), "aggressor": "SELL" if sell[i] else "BUY"}
    else:
        summary["largest"] = None
    return {"trades": trades, "tape": summary}


def _volumes(inst: Instrument, px: np.ndarray, qty: np.ndarray, sell: np.ndarray) -> dict[str, Any]:
    """Volumes by side (exact: integer lots and ticks x lots, converted once)."""
    buy = ~sell
    unit = inst.tick_size * inst.step_size
    lots_b, lots_s = int(qty[buy].sum()), int(qty[sell].sum())
    val_b, val_s = _dot(px[buy], qty[buy]), _dot(px[sell], qty[sell])
    lots = lots_b + lots_s
    vwap = (Decimal(val_b + val_s) * inst.tick_size / lots).quantize(inst.tick_size / 1000) if lots else None
    return {"buy_qty": _units(lots_b, inst.step_size), "sell_qty": _units(lots_s, inst.step_size),
            "buy_notional": _s(Decimal(val_b) * unit), "sell_notional": _s(Decimal(val_s) * unit),
            "vwap": _s(vwap)}


def _dot(px: np.ndarray, qty: np.ndarray) -> int:
    """Exact sum of ticks x lots: int64 when it cannot overflow, Python integers otherwise."""
    if not len(px):
        return 0
    if float(px.max()) * float(qty.sum()) < 9e18:
        return int(np.dot(px, qty))
    return sum(int(p) * int(q) for p, q in zip(px.tolist(), qty.tolist(), strict=True))


def _runs(inst: Instrument, qty: np.ndarray, sell: np.ndarray) -> dict[str, Any]:
    """Runs: maximal sequences of trades with the same aggressor. The longest (trades, side, volume) and the
    run in progress at the arrival (the last one)."""
    n = len(sell)
    if n == 0:
        return {"runs": 0, "longest_run": 0, "longest_run_side": None, "longest_run_qty": "0",
                "last_run": 0, "last_run_side": None, "last_run_qty": "0"}
    starts = np.flatnonzero(np.r_[True, sell[1:] != sell[:-1]])
    ends = np.r_[starts[1:], n]
    lengths = ends - starts
    vols = np.add.reduceat(qty, starts)
    k = int(np.argmax(lengths))
    side = ("SELL" if sell[starts[k]] else "BUY")
    return {"runs": len(starts), "longest_run": int(lengths[k]), "longest_run_side": side,
            "longest_run_qty": _units(int(vols[k]), inst.step_size), "last_run": int(lengths[-1]),
            "last_run_side": "SELL" if sell[starts[-1]] else "BUY",
            "last_run_qty": _units(int(vols[-1]), inst.step_size)}


def context_record(c: dict[str, Any]) -> dict[str, Any]:
    """The ``context`` struct: the context symbol's touch, spread, signals and its mid's moves (bps, up > 0)."""
    tick = Decimal(c["tick"])
    out: dict[str, Any] = {"symbol": c["symbol"], "synced": bool(c["synced"]), "mid": None, "bid": None,
                           "ask": None, "spread_bps": None,
                           "signals": {k: _f(v) for k, v in (c.get("signals") or {}).items()}}
    out.update({f"move_{h}s_bps": None for h in CONTEXT_MOVES_S})
    if not c["synced"] or c["bid"] is None or c["ask"] is None:
        return out
    bid, ask = int(c["bid"]), int(c["ask"])
    mid = Decimal(bid + ask) * tick / 2
    out.update({"mid": _s(mid), "bid": _units(bid, tick), "ask": _units(ask, tick),
                "spread_bps": _bps((ask - bid) * tick, mid)})
    for h, before in (c.get("mids_before") or {}).items():
        if isinstance(before, int | float) and before == before and before > 0:
            out[f"move_{h}s_bps"] = round(((bid + ask) / 2 - before) / before * 1e4, 4)
    return out


def _level(inst: Instrument, lv: tuple[int, int]) -> dict[str, str]:
    return {"price": _units(lv[0], inst.tick_size), "qty": _units(lv[1], inst.step_size)}


def _px(inst: Instrument, lv: tuple[int, int] | None) -> str | None:
    return None if lv is None else _units(lv[0], inst.tick_size)


def _qty(inst: Instrument, lv: tuple[int, int] | None) -> str | None:
    return None if lv is None else _units(lv[1], inst.step_size)


def _units(n: int, size: Decimal) -> str:
    return _s(n * size)


def _s(d: Any) -> str | None:
    """A decimal as a plain string (no exponent), None as None."""
    if d is None:
        return None
    d = d if isinstance(d, Decimal) else Decimal(str(d))
    return f"{d:f}"


def _bps(diff: Decimal, mid: Decimal) -> float:
    return round(float(diff / mid) * 1e4, 4)


def _f(v: Any) -> float | None:
    """A signal value as a float; NaN and infinities (not JSON) as None."""
    try:
        x = float(v)
    except (TypeError, ValueError):
        return None
    return x if math.isfinite(x) else None
