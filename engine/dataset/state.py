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
CONTEXT_STALE_NS = 5 * SEC            # a mid sample further than this before the time asked for does not count
_NO_BID, _NO_ASK = -(2**63), 2**63 - 1


def capture(sf: Any, now_ns: int, signals: dict[str, float], context_sf: Any = None) -> dict[str, Any]:
    """The market state of ``sf`` at ``now_ns`` (exchange time) in grid units, as it is journalled (an
    ``arrival_state`` decision; ``state_record`` turns it into the documented struct at export). ``signals``:
    the arrival's snapshot; ``context_sf``: the context symbol's feed (None: no context). Copies only: the
    trades are numpy arrays that ``journal_bytes`` serializes in one C call."""
    inst = sf.instrument
    return {"v": 2, "symbol": inst.symbol, "tick": str(inst.tick_size), "step": str(inst.step_size),
            "exchange_ns": now_ns, "local_ms": time.time_ns() // 1_000_000,
            "bids": sf.book.top(0, BOOK_LEVELS), "asks": sf.book.top(1, BOOK_LEVELS),
            "trades": sf.recent_trades(now_ns - TRADES_WINDOW_S * SEC, TRADES_KEPT), "signals": signals,
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
           "signals": {}, "mids_before": {}, "now_ns": now_ns}
    if sf.synced and book.best_bid != _NO_BID and book.best_ask != _NO_ASK:
        out.update(synced=True, bid=book.best_bid, ask=book.best_ask, signals=sf.timing.snapshot(now_ns),
                   mids_before={str(h): list(sf.mid_at(now_ns - h * SEC)) for h in CONTEXT_MOVES_S})
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
    window (the kernel's ``trade_summary`` when the capture has it, else ``summary_of`` the trades): volume and
    notional by aggressor side, VWAP, runs of same-side trades, the largest print."""
    t, px, qty, ids, sell = tr["t_ns"], tr["price"], tr["qty"], tr["trade_id"], tr["sell"]
    sm = tr.get("summary") or summary_of(t, px, qty, ids, sell)
    covered = None if tr["covered_ns"] < 0 else round(max(0.0, min(TRADES_WINDOW_S, (now_ns - tr["covered_ns"])
                                                                   / SEC)), 3)
    trades = [{"time_ms": int(t[i]) // 1_000_000, "price": _units(int(px[i]), inst.tick_size),
               "qty": _units(int(qty[i]), inst.step_size), "aggressor": "SELL" if sell[i] else "BUY",
               "trade_id": int(ids[i])} for i in range(len(t))]
    lots = sm["buy_lots"] + sm["sell_lots"]
    unit = inst.tick_size * inst.step_size
    values = (sm["buy_value"], sm["sell_value"])
    exact = None not in values
    big = sm["largest"]
    return {"trades": trades, "tape": {
        "window_s": float(TRADES_WINDOW_S), "count": sm["count"], "kept": len(trades), "covered_s": covered,
        "buy_qty": _units(sm["buy_lots"], inst.step_size), "sell_qty": _units(sm["sell_lots"], inst.step_size),
        "buy_notional": _s(Decimal(values[0]) * unit) if exact else None,
        "sell_notional": _s(Decimal(values[1]) * unit) if exact else None,
        "vwap": _s((Decimal(sum(values)) * inst.tick_size / lots).quantize(inst.tick_size / 1000))
        if lots and exact else None,
        "runs": sm["runs"], "longest_run": sm["longest_run"],
        "longest_run_side": _side(sm["longest_run_sell"]) if sm["longest_run"] else None,
        "longest_run_qty": _units(sm["longest_run_lots"], inst.step_size), "last_run": sm["last_run"],
        "last_run_side": _side(sm["last_run_sell"]) if sm["last_run"] else None,
        "last_run_qty": _units(sm["last_run_lots"], inst.step_size),
        "largest": None if big is None else {
            "time_ms": int(big["t_ns"]) // 1_000_000, "price": _units(int(big["price"]), inst.tick_size),
            "qty": _units(int(big["qty"]), inst.step_size), "aggressor": _side(big["sell"])},
    }}


def summary_of(t: np.ndarray, px: np.ndarray, qty: np.ndarray, ids: np.ndarray, sell: np.ndarray) -> dict[str, Any]:
    """The reference for ``ext.feed.SymbolFeed.trade_summary`` (the same keys and values, in plain numpy):
    volumes and values by side, runs (maximal sequences of one aggressor side), the longest (the first of
    equals) and the last, and the largest print (the first of equals)."""
    t, px, qty, ids = (np.asarray(a, np.int64) for a in (t, px, qty, ids))
    sell = np.asarray(sell, bool)
    n, buy = len(t), ~sell
    out: dict[str, Any] = {"count": n, "buy_lots": int(qty[buy].sum()), "sell_lots": int(qty[sell].sum()),
                           "buy_value": _dot(px[buy], qty[buy]), "sell_value": _dot(px[sell], qty[sell]),
                           "runs": 0, "longest_run": 0, "longest_run_sell": False, "longest_run_lots": 0,
                           "last_run": 0, "last_run_sell": False, "last_run_lots": 0, "largest": None}
    if n == 0:
        return out
    starts = np.flatnonzero(np.r_[True, sell[1:] != sell[:-1]])
    lengths = np.r_[starts[1:], n] - starts
    vols = np.add.reduceat(qty, starts)
    k, i = int(np.argmax(lengths)), int(np.argmax(qty))
    out.update(runs=len(starts), longest_run=int(lengths[k]), longest_run_sell=bool(sell[starts[k]]),
               longest_run_lots=int(vols[k]), last_run=int(lengths[-1]), last_run_sell=bool(sell[starts[-1]]),
               last_run_lots=int(vols[-1]),
               largest={"t_ns": int(t[i]), "price": int(px[i]), "qty": int(qty[i]), "trade_id": int(ids[i]),
                        "sell": bool(sell[i])})
    if float(px.max()) * float(qty.sum()) >= 9.0e18:       # as the kernel: not exact in int64, not given
        out["buy_value"] = out["sell_value"] = None
    return out


def _dot(px: np.ndarray, qty: np.ndarray) -> int:
    """Sum of ticks x lots as a Python integer (exact at any size)."""
    return sum(int(p) * int(q) for p, q in zip(px.tolist(), qty.tolist(), strict=True))


def _side(sell: bool) -> str:
    return "SELL" if sell else "BUY"


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
    now = c.get("now_ns")
    for h, sample in (c.get("mids_before") or {}).items():
        t, before = sample if isinstance(sample, list) and len(sample) == 2 else (-1, None)
        fresh = now is None or (isinstance(t, int) and 0 <= now - int(h) * SEC - t <= CONTEXT_STALE_NS)
        if isinstance(before, int | float) and before == before and before > 0 and t >= 0 and fresh:
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
