"""What must hold after every settle, journal (its export) against venue (its REST answers).

Each check returns the offending items (trade ids, order ids, intent ids), so the drill can count each offence
once across the runs of one venue session and print what it found.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from engine.dataset.export import intent_of

KINDS = ("lost_fills", "doubled_fills", "position", "orphan_orders", "working_intents", "overfilled",
         "late_orders", "concurrent_accepts")
ACTIVE_INTENT_STATES = frozenset({"accepted", "working", "completing", "cancelling"})
OPEN_ORDER_STATES = frozenset({"NEW", "SUBMITTED", "ACKNOWLEDGED", "PARTIALLY_FILLED", "UNKNOWN"})


@dataclass
class Export:
    """A journal export split by line type."""

    intents: dict[str, dict] = field(default_factory=dict)
    orders: dict[str, dict] = field(default_factory=dict)
    fills: list[dict] = field(default_factory=list)

    @classmethod
    def of(cls, rows: list[dict[str, Any]]) -> Export:
        ex = cls()
        for r in rows:
            if r["type"] == "intent":            # the few fields the checks read, flat (tapeshot.dataset/2)
                d = r.get("decision") or {}
                ex.intents[r["id"]] = {"id": r["id"], "symbol": r.get("symbol"), "state": r.get("status"),
                                       "qty": d.get("qty"), "text": d.get("text"), "deadline_ms": d.get("deadline_ms")}
            elif r["type"] == "order":
                ex.orders[r["client_order_id"]] = r
            elif r["type"] == "fill":
                ex.fills.append(r)
        return ex

    def position(self, symbol: str) -> Decimal:
        """The position the journal's fills add up to."""
        pos = Decimal(0)
        for f in self.fills:
            if f["symbol"] == symbol:
                pos += Decimal(f["qty"]) if f["side"] == "BUY" else -Decimal(f["qty"])
        return pos


@dataclass
class VenueState:
    """What the venue says, for one symbol."""

    symbol: str
    trades: list[dict]
    orders: list[dict]
    open_orders: list[dict]
    position: Decimal


def lost_fills(ex: Export, venue: VenueState) -> set[str]:
    """Venue trades of ours that the export does not hold."""
    held = {f["trade_id"] for f in ex.fills if f["symbol"] == venue.symbol}
    return {f"trade {t['id']}" for t in venue.trades if int(t["id"]) not in held}


def doubled_fills(ex: Export, venue: VenueState) -> set[str]:
    """Trade ids the export holds more than once."""
    counts = Counter(f["trade_id"] for f in ex.fills if f["symbol"] == venue.symbol)
    return {f"trade {tid} x{n}" for tid, n in counts.items() if n > 1}


def position(ex: Export, venue: VenueState) -> set[str]:
    """The export's position against positionRisk."""
    mine = ex.position(venue.symbol)
    return set() if mine == venue.position else {f"{venue.symbol} journal {mine} venue {venue.position}"}


def orphan_orders(ex: Export, venue: VenueState) -> set[str]:
    """Orders open at the venue that the journal does not hold open."""
    out = set()
    for o in venue.open_orders:
        row = ex.orders.get(o["clientOrderId"])
        if row is None or row["state"] not in OPEN_ORDER_STATES:
            out.add(f"order {o['clientOrderId']} open at the venue, journal {row['state'] if row else 'none'}")
    return out


def working_intents(ex: Export) -> set[str]:
    """Intents still working after the settle."""
    return {f"intent {i['id']} {i['state']}" for i in ex.intents.values() if i["state"] in ACTIVE_INTENT_STATES}


def overfilled(ex: Export, venue: VenueState, requested: dict[str, Decimal]) -> set[str]:
    """Intents whose orders executed more at the venue than the intent asked for (``requested``: what the drill
    sent, else the export's size)."""
    executed: Counter[str] = Counter()
    for o in venue.orders:
        iid = intent_of(o["clientOrderId"])
        if iid is not None:
            executed[iid] += Decimal(o["executedQty"])
    out = set()
    for iid, qty in executed.items():
        want = requested.get(iid)
        if want is None and iid in ex.intents and ex.intents[iid].get("qty"):
            want = Decimal(ex.intents[iid]["qty"])
        if want is not None and qty > want:
            out.add(f"intent {iid} executed {qty} > requested {want}")
    return out


def late_orders(ex: Export, venue: VenueState, allowance_ms: int) -> set[str]:
    """Orders the venue received after their intent's deadline (+ ``allowance_ms``, the documented round trip)."""
    out = set()
    for o in venue.orders:
        intent = ex.intents.get(intent_of(o["clientOrderId"]) or "")
        deadline = intent.get("deadline_ms") if intent else None
        if deadline is not None and int(o["time"]) > deadline + allowance_ms:
            out.add(f"order {o['clientOrderId']} at {o['time']} > deadline {deadline} + {allowance_ms} ms")
    return out


def latest_order(ex: Export, venue: VenueState) -> tuple[int, str] | None:
    """The order that reached the venue latest relative to its intent's deadline: (ms after it, client id)."""
    out: tuple[int, str] | None = None
    for o in venue.orders:
        intent = ex.intents.get(intent_of(o["clientOrderId"]) or "")
        deadline = intent.get("deadline_ms") if intent else None
        if deadline is not None and (out is None or int(o["time"]) - deadline > out[0]):
            out = (int(o["time"]) - deadline, o["clientOrderId"])
    return out


def check_all(ex: Export, venue: VenueState, requested: dict[str, Decimal], allowance_ms: int) -> dict[str, set[str]]:
    """Every check but ``concurrent_accepts`` (which the drill counts as it submits)."""
    return {"lost_fills": lost_fills(ex, venue), "doubled_fills": doubled_fills(ex, venue),
            "position": position(ex, venue), "orphan_orders": orphan_orders(ex, venue),
            "working_intents": working_intents(ex), "overfilled": overfilled(ex, venue, requested),
            "late_orders": late_orders(ex, venue, allowance_ms)}
