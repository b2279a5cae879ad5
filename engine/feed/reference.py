"""Plain pure-Python references for the Cython kernels: slow, obvious, and the yardstick in property tests.

``RefBook`` mirrors ``ext.book.Book``'s Python API on a pair of dicts. ``parse_message`` mirrors
``ext.parse.parse`` with orjson and string arithmetic (never floats).
"""

from __future__ import annotations

from math import nan

BID, ASK = 0, 1


class RefBook:
    """Dict-of-levels book with the same reads as ``ext.book.Book`` (prices in ticks, sizes in lots)."""

    def __init__(self) -> None:
        self.sides: tuple[dict[int, int], dict[int, int]] = ({}, {})

    def set(self, side: int, price: int, qty: int) -> int:
        levels = self.sides[side]
        old = levels.get(price, 0)
        if qty:
            levels[price] = qty
        else:
            levels.pop(price, None)
        return old

    def qty_at(self, side: int, price: int) -> int:
        return self.sides[side].get(price, 0)

    def best(self, side: int) -> tuple[int, int] | None:
        levels = self.sides[side]
        if not levels:
            return None
        price = max(levels) if side == BID else min(levels)
        return price, levels[price]

    def top(self, side: int, n: int = 10) -> list[tuple[int, int]]:
        levels = self.sides[side]
        prices = sorted(levels, reverse=(side == BID))[:n]
        return [(p, levels[p]) for p in prices]

    def levels(self, side: int) -> list[tuple[int, int]]:
        return self.top(side, len(self.sides[side]))

    def count(self, side: int) -> int:
        return len(self.sides[side])

    def depth(self, side: int, n_ticks: int) -> int:
        best = self.best(side)
        if best is None:
            return 0
        touch = best[0]
        lo, hi = (touch - n_ticks, touch) if side == BID else (touch, touch + n_ticks)
        return sum(q for p, q in self.sides[side].items() if lo <= p <= hi)

    @property
    def mid(self) -> float:
        b, a = self.best(BID), self.best(ASK)
        if b is None or a is None:
            return nan
        return 0.5 * (float(b[0]) + float(a[0]))

    @property
    def microprice(self) -> float:
        b, a = self.best(BID), self.best(ASK)
        if b is None or a is None:
            return nan
        bq, aq = float(b[1]), float(a[1])
        return (float(b[0]) * aq + float(a[0]) * bq) / (bq + aq)

    @property
    def crossed(self) -> bool:
        b, a = self.best(BID), self.best(ASK)
        return b is not None and a is not None and b[0] >= a[0]

    @property
    def spread(self) -> int | None:
        b, a = self.best(BID), self.best(ASK)
        return None if b is None or a is None else a[0] - b[0]


# ---- reference message parser ---------------------------------------------------------------------------------

_KINDS = {"depthUpdate": "depthUpdate", "bookTicker": "bookTicker", "trade": "trade", "aggTrade": "aggTrade"}


def _canon(value: object) -> str:
    """Validate a Binance decimal string and return it canonically: no sign, no exponent, digits kept."""
    if not isinstance(value, str):
        raise ValueError(f"decimal must be a string, got {value!r}")
    whole, dot, frac = value.partition(".")
    if not whole.isdigit() or not whole.isascii() or (dot and (not frac.isdigit() or not frac.isascii())):
        raise ValueError(f"not a plain decimal: {value!r}")
    if len(frac) > 18 or len((whole + frac).lstrip("0")) > 18:
        raise ValueError(f"too many digits: {value!r}")
    digits = str(int(whole + frac))
    if not frac:
        return digits
    digits = digits.rjust(len(frac) + 1, "0")
    return digits[: -len(frac)] + "." + digits[-len(frac):]


def _int(value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"expected an integer, got {value!r}")
    if not -(2**63) <= value < 2**63:
        raise ValueError(f"integer out of range: {value}")
    return value


def _levels(raw: object) -> list[tuple[str, str]]:
    if not isinstance(raw, list):
        raise ValueError("levels must be an array")
    out = []
    for lv in raw:
        if not isinstance(lv, list) or len(lv) < 2:
            raise ValueError(f"bad level {lv!r}")
        out.append((_canon(lv[0]), _canon(lv[1])))
    return out


def parse_message(data: bytes) -> dict:
    """Reference for ``ext.parse.parse``: the same dict for the same bytes, or ValueError."""
    import orjson

    try:
        obj = orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        raise ValueError(f"syntax: {exc}") from exc
    _no_repeated_fields(data)
    if not isinstance(obj, dict):
        raise ValueError("syntax: not an object")
    stream = obj.get("stream") if isinstance(obj.get("stream"), str) else ""
    if next(iter(obj), None) == "stream":     # a combined-stream envelope: the event is "data", nothing beside it
        obj = obj["data"] if isinstance(obj.get("data"), dict) else {}
    return _classify(obj, stream)


def _no_repeated_fields(data: bytes) -> None:
    """A field the scanner reads, given twice in one object, is refused (JSON leaves its meaning undefined)."""
    import json

    def check(pairs: list) -> dict:
        keys = [k for k, _ in pairs if k in _FIELDS]
        if len(keys) != len(set(keys)):
            raise ValueError("syntax: a field twice")
        return dict(pairs)

    if any(data.count(b'"%s"' % k.encode()) > 1 for k in _FIELDS):   # cheap: most messages name each once
        json.loads(data, object_pairs_hook=check)


def _classify(d: dict, stream: str) -> dict:
    for key in ("e", "s"):                    # the scanner reads these only as strings
        if key in d and not isinstance(d[key], str):
            raise ValueError(f"syntax: {key} is not a string")
    ev = d.get("e")
    if ev is not None:
        if ev not in _KINDS:
            return {"kind": "other"}
        kind = ev
    elif "lastUpdateId" in d:
        kind = "snapshot"
    elif all(k in d for k in ("u", "s", "b", "B", "a", "A")):
        kind = "bookTicker"
    elif not any(k in d for k in _FIELDS):
        return {"kind": "other"}
    else:
        raise ValueError("missing field")
    return _BUILDERS[kind](d, stream)


_FIELDS = ("E", "T", "U", "u", "pu", "s", "b", "B", "a", "A", "p", "q", "m", "t", "f", "l",
           "lastUpdateId", "bids", "asks", "e")


def _need(d: dict, *keys: str) -> None:
    missing = [k for k in keys if k not in d]
    if missing:
        raise ValueError(f"missing field {missing}")


def _time(d: dict) -> int:
    if "T" in d:
        return _int(d["T"])
    return _int(d["E"]) if "E" in d else 0


def _depth(d: dict, stream: str) -> dict:
    _need(d, "U", "u", "s", "b", "a")
    partial = any(stream[i + 6 : i + 7].isdigit() for i in range(len(stream)) if stream.startswith("@depth", i))
    out = {"kind": "partialDepth" if partial else "depthUpdate", "s": d["s"], "u": _int(d["u"]),
           "E": _int(d.get("E", 0)), "T": _time(d), "U": _int(d["U"]), "pu": _int(d.get("pu", -1))}
    out["bids"], out["asks"] = _levels(d["b"]), _levels(d["a"])
    return out


def _ticker(d: dict, stream: str) -> dict:
    _need(d, "u", "s", "b", "B", "a", "A")
    return {"kind": "bookTicker", "s": d["s"], "u": _int(d["u"]), "T": _time(d),
            "b": _canon(d["b"]), "B": _canon(d["B"]), "a": _canon(d["a"]), "A": _canon(d["A"])}


def _trade(d: dict, stream: str) -> dict:
    agg = d["e"] == "aggTrade"
    _need(d, "s", "p", "q", "m", *(("a", "f", "l") if agg else ("t",)))
    if "T" not in d and "E" not in d:
        raise ValueError("missing field T")
    if not isinstance(d["m"], bool):
        raise ValueError("m must be a boolean")
    tid = _int(d["a"] if agg else d["t"])
    x = d.get("X", "MARKET")
    return {"kind": d["e"], "s": d["s"], "T": _time(d), "id": tid,
            "first": _int(d["f"]) if agg else tid, "last": _int(d["l"]) if agg else tid,
            "p": _canon(d["p"]), "q": _canon(d["q"]), "maker": d["m"],
            "market": not isinstance(x, str) or x == "MARKET"}


def _snapshot(d: dict, stream: str) -> dict:
    _need(d, "bids", "asks")
    return {"kind": "snapshot", "u": _int(d["lastUpdateId"]), "bids": _levels(d["bids"]), "asks": _levels(d["asks"])}


_BUILDERS = {"depthUpdate": _depth, "bookTicker": _ticker, "trade": _trade, "aggTrade": _trade,
             "snapshot": _snapshot}


# ---- reference book rebuild + bookTicker oracle (offline: it may look ahead) ------------------------------------

def reference_verify(messages: list[bytes], instrument) -> dict:
    """Rebuild the book with ``RefBook`` by Binance's procedure and check every bookTicker whose ``u`` lies in
    ``[u_k, U_k+1)`` against the top after diff ``k``. Knows the whole recording, so it finds every checkable
    ticker wherever it arrived; the online oracle in ``ext.feed`` must reach the same count."""
    diffs: list[dict] = []
    tickers: list[dict] = []
    snapshot = None
    for raw in messages:
        try:
            d = parse_message(raw)
        except ValueError:
            continue
        if d.get("s", instrument.symbol) != instrument.symbol:
            continue
        if d["kind"] == "depthUpdate":
            diffs.append(d)
        elif d["kind"] == "bookTicker":
            tickers.append(d)
        elif d["kind"] == "snapshot" and snapshot is None:
            snapshot = d
    if snapshot is None:
        raise ValueError("no depth snapshot in the recording")
    book = RefBook()
    for side, key in ((BID, "bids"), (ASK, "asks")):
        for p, q in snapshot[key]:
            book.set(side, instrument.price_to_ticks(p), instrument.qty_to_lots(q))
    last_id = snapshot["u"]
    states: list[tuple[int, tuple]] = []      # (u_k, top after diff k)
    bounds: list[int] = []                    # U_k
    started = False
    gaps = 0
    for d in diffs:
        if not started:
            if d["u"] < last_id:
                continue
            if d["U"] > last_id:
                raise ValueError("snapshot older than the first diff after it")
            started = True
        elif d["pu"] != last_id:
            gaps += 1
            break
        bounds.append(d["U"])
        for side, key in ((BID, "bids"), (ASK, "asks")):
            for p, q in d[key]:
                book.set(side, instrument.price_to_ticks(p), instrument.qty_to_lots(q))
        last_id = d["u"]
        states.append((d["u"], (book.best(BID), book.best(ASK))))
    import bisect

    us = [u for u, _ in states]
    checks = mismatches = 0
    for t in tickers:
        k = bisect.bisect_right(us, t["u"]) - 1
        if k < 0 or k + 1 >= len(states) or not (t["u"] < bounds[k + 1]):
            continue
        (bb, ba) = states[k][1]
        want = ((instrument.price_to_ticks(t["b"]), instrument.qty_to_lots(t["B"])),
                (instrument.price_to_ticks(t["a"]), instrument.qty_to_lots(t["A"])))
        checks += 1
        mismatches += (bb, ba) != want
    return {"checks": checks, "mismatches": mismatches, "gaps": gaps, "diffs": len(states)}
