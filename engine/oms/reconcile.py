"""Start-up reconciliation: the journal's view against the venue's, differences reported, nothing guessed.

1. Every order the journal left open or UNKNOWN is queried and takes the venue's state; fills the stream never
   delivered are fetched from ``/fapi/v1/userTrades`` (by trade id, so nothing counts twice).
2. Open orders at the venue that the journal does not know are reported (not cancelled: they may be the
   trader's own manual orders).
3. Each position (from journaled fills) is compared with ``/fapi/v2/positionRisk``.
4. Intents that were working when the engine stopped: their open orders are cancelled; an intent whose window
   is still open is resumed for what is left of it (same deadline, same cap), otherwise it is closed with a
   report marked "interrupted".
"""

from __future__ import annotations

from decimal import Decimal
from typing import TYPE_CHECKING

from engine.errors import VenueError
from engine.intents import Intent, IntentKind
from engine.oms.orders import OState, Trigger

if TYPE_CHECKING:
    from engine.node import Node

MS = 1_000_000


async def reconcile(node: Node, state) -> list[str]:
    notes: list[str] = []
    oms = node.oms
    for o in list(oms.orders.values()):
        if not o.state.final and o.state is not OState.NEW:
            before = (o.state, o.filled)
            await oms.resolve(o)
            await oms.fetch_fills(o)
            if (o.state, o.filled) != before:
                notes.append(f"order {o.client_order_id}: {before[0]} -> {o.state}, filled {before[1]} -> {o.filled}")
        elif o.state is OState.NEW:                      # journaled but never sent: the venue cannot have it
            o.apply(Trigger.REJECT, reason="never sent")
            oms.live.discard(o.client_order_id)
            node.journal.order(o)
    try:
        venue_open = await node.rest.open_orders()
    except VenueError as exc:
        notes.append(f"could not list open orders: {exc}")
        venue_open = []
    for row in venue_open:
        if row.get("clientOrderId") not in oms.orders:
            notes.append(f"venue has an order we did not place: {row.get('symbol')} {row.get('side')} "
                         f"{row.get('origQty')} @ {row.get('price')} ({row.get('clientOrderId')})")
    try:
        venue_pos = {p["symbol"]: Decimal(p["positionAmt"]) for p in await node.rest.position_risk()}
    except VenueError as exc:
        notes.append(f"could not read positions: {exc}")
        venue_pos = {}
    for sym in node.instruments:
        ours = oms.positions.get(sym).qty
        theirs = venue_pos.get(sym, Decimal(0))
        if ours != theirs:
            notes.append(f"position {sym}: journal {ours} vs venue {theirs}")
    await _intents(node, state, notes)
    await node.journal.sync()
    return notes


async def _intents(node: Node, state, notes: list[str]) -> None:
    now = node.now()
    for iid, row in state.intents.items():
        if row["state"] not in ("working", "cancelling"):
            continue
        orders = [o for o in node.oms.orders.values() if o.intent_id == iid]
        for o in orders:
            if o.state.open:
                await node.oms.cancel(o.client_order_id)
        data = row["data"]
        inst = node.instruments.get(data["symbol"])
        filled = sum((o.filled for o in orders), Decimal(0))
        left = inst.lots_to_qty(data["qty_lots"]) - filled if inst else Decimal(0)
        room = data["deadline_ns"] - now - 4 * int(node.cfg.execution.round_trip_ms * MS)
        if inst is not None and row["state"] == "working" and left > 0 and room > 0:
            notes.append(f"intent {iid}: resumed for the remaining {left} ({room / 1e9:.1f} s left)")
            await node.resume_intent(iid, row, left)
        else:
            node.journal.intent_state(iid, "interrupted", now // MS,
                                      {"intent_id": iid, "state": "interrupted", "filled": str(filled),
                                       "note": "the engine stopped while it worked; its orders were cancelled"})
            notes.append(f"intent {iid}: closed as interrupted (filled {filled})")


def resumed_intent(row: dict, left: Decimal) -> Intent:
    d = row["data"]
    return Intent(IntentKind.ENTER if d["kind"] == "enter" else IntentKind.EXIT, d["symbol"], None, left,
                  window_s=d["window_s"], max_slippage_bps=d["max_slippage_bps"], algo=d["algo"],
                  on_deadline="complete" if d["complete"] else "cancel", rationale=d.get("rationale", ""),
                  raw=row.get("text") or "")

