"""Reconciliation: the venue is the truth; the journal is our memory of intent. Decisions out, nothing guessed.

Run at start-up (and, for live orders, after a lost user stream). In venue time, by order and trade ids:

1. For every symbol with an unfinished intent or an order the journal left open, the venue's order history
   (``allOrders`` since the earliest such intent arrived) is read. Each of our orders there takes the venue's
   state and executed quantity; one the journal never recorded (the engine sends before its journal row
   commits) is adopted from the venue's row: client order ids start with their intent's id, so every order is
   attributable without a journal row.
2. Orders the journal holds open that the history did not return are queried by client order id (an order the
   venue never received ends REJECTED "lost").
3. Fills: every order whose venue executed quantity exceeds the fills we hold gets its trades by ``orderId``
   (``userTrades``): counted once by trade id.
4. Unfinished intents: their open orders are cancelled and settled; what the venue executed for them is the
   filled size; an intent resumes only for ``requested - executed at the venue``, only inside its window, and
   never when the venue already holds its full size. The others close (done when complete, else interrupted).
5. Positions are compared with ``positionRisk``; open venue orders we do not know are reported, not touched.

Imports nothing above the OMS: it returns ``Reconciliation`` and the intent runner carries out the resumes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from engine.errors import VenueError
from engine.oms.orders import Order, OState, Trigger

MS = 1_000_000
LOOKBACK_MS = 60_000            # venue history read from this long before the earliest unfinished intent
UNFINISHED = ("accepted", "working", "completing", "cancelling")


@dataclass
class Resume:
    intent_id: str
    row: dict
    left: Decimal               # base quantity still to execute: requested - executed at the venue
    executed: Decimal


@dataclass
class Close:
    intent_id: str
    state: str                  # done (the venue holds its full size) or interrupted
    executed: Decimal
    note: str


@dataclass
class Reconciliation:
    notes: list[str] = field(default_factory=list)
    resume: list[Resume] = field(default_factory=list)
    close: list[Close] = field(default_factory=list)
    adopted: int = 0
    differences: dict[str, int] = field(default_factory=dict)   # by kind: order, position, fill (the metrics)

    def differ(self, kind: str, note: str) -> None:
        """One difference between the journal and the venue (``kind``: order, position or fill), noted."""
        self.differences[kind] = self.differences.get(kind, 0) + 1
        self.notes.append(note)


def intent_of(client_order_id: str) -> str:
    """The intent id a client order id was derived from (``<intent id>-<seq>``), or "" for other orders."""
    head, sep, _ = client_order_id.partition("-")
    return head if sep and head.startswith("i") else ""


async def reconcile(rest: Any, oms: Any, intents: dict[str, dict], instruments: dict[str, Any], now_ns: int,
                    margin_ns: int) -> Reconciliation:
    """Compare and repair our order/fill state against the venue; decide each unfinished intent's fate.
    ``intents``: the journal's rows (id -> row with ``state`` and ``data``); ``margin_ns``: the least window
    worth resuming for (a few round trips)."""
    rec = Reconciliation()
    unfinished = {iid: r for iid, r in intents.items() if r["state"] in UNFINISHED}
    executed: dict[str, Decimal] = {}                       # client order id -> venue executedQty
    for sym in _symbols(oms, unfinished, instruments):
        await _history(rest, oms, sym, unfinished, intents, executed, rec)
    await _resolve_open(oms, executed, rec)
    await _fills(oms, executed, rec)
    await _unknown_open(rest, oms, rec)
    for iid, row in unfinished.items():
        await _decide(oms, iid, row, instruments, executed, now_ns, margin_ns, rec)
    await _positions(rest, oms, instruments, rec)
    return rec


def _symbols(oms: Any, unfinished: dict[str, dict], instruments: dict[str, Any]) -> list[str]:
    syms = {r["data"]["symbol"] for r in unfinished.values()}
    syms |= {o.symbol for o in oms.orders.values() if not o.state.final}
    return sorted(s for s in syms if s in instruments)


def _since_ms(oms: Any, sym: str, unfinished: dict[str, dict]) -> int:
    starts = [r["data"]["arrival_ns"] // MS for r in unfinished.values() if r["data"]["symbol"] == sym]
    starts += [o.created_ms for o in oms.orders.values() if o.symbol == sym and not o.state.final and o.created_ms]
    return max(0, min(starts) - LOOKBACK_MS) if starts else 0


async def _history(rest: Any, oms: Any, sym: str, unfinished: dict[str, dict], intents: dict[str, dict],
                   executed: dict[str, Decimal], rec: Reconciliation) -> None:
    """Step 1: the venue's orders for ``sym`` since the earliest unfinished intent, paged by order id."""
    since, from_id = _since_ms(oms, sym, unfinished), None
    for _ in range(50):                                     # 50 pages of 1000: far beyond a few minutes' orders
        try:
            rows = await rest.all_orders(sym, start_ms=since if from_id is None else None, order_id=from_id,
                                         limit=1000)
        except VenueError as exc:
            rec.notes.append(f"could not read {sym} order history: {exc}")
            return
        for row in rows:
            _take(oms, row, intents, executed, rec)
        if len(rows) < 1000:
            return
        from_id = max(int(r["orderId"]) for r in rows) + 1


def _take(oms: Any, row: dict, intents: dict[str, dict], executed: dict[str, Decimal], rec: Reconciliation) -> None:
    cid = row.get("clientOrderId", "")
    o = oms.orders.get(cid)
    iid = intent_of(cid)
    if o is None:
        if iid not in intents:
            return                                          # not ours, or another engine's: reported in step 5
        o = oms.adopt(row, iid, "exit" if intents[iid]["data"].get("kind") == "exit" else "entry")
        rec.adopted += 1
        rec.differ("order", f"order {cid} found at the venue with no journal row (sent before its row was "
                         f"written): {row.get('status')}, executed {row.get('executedQty')}")
    elif o.state is OState.NEW:
        o.apply(Trigger.SUBMIT, o.updated_ms)              # journalled as not sent, but the venue has it
    before = (o.state, o.filled)
    oms.apply_answer(o, row, fetch=False)
    executed[cid] = Decimal(row.get("executedQty") or "0")
    if (o.state, o.filled) != before:
        rec.differ("order", f"order {cid}: {before[0]} -> {o.state}")


async def _resolve_open(oms: Any, executed: dict[str, Decimal], rec: Reconciliation) -> None:
    """Step 2: orders the journal left open that the history did not show: ask for each by client id."""
    for o in list(oms.orders.values()):
        if o.state.final or o.client_order_id in executed:
            continue
        if o.state is OState.NEW:
            o.apply(Trigger.SUBMIT, o.updated_ms)          # it may have left just before the crash: ask
        before = o.state
        await oms.resolve(o, fetch=False)
        if o.client_order_id in oms.venue_filled:
            executed[o.client_order_id] = oms.venue_filled[o.client_order_id]
        if o.state is not before:
            rec.differ("order", f"order {o.client_order_id}: {before} -> {o.state}" +
                             (f" ({o.reason})" if o.reason else ""))


async def _fills(oms: Any, executed: dict[str, Decimal], rec: Reconciliation) -> None:
    """Step 3: trades by order id for every order the venue filled more than we know."""
    for cid, qty in executed.items():
        o = oms.orders.get(cid)
        if o is None or qty <= o.filled:
            continue
        before = o.filled
        await oms.fetch_fills(o, every=True)
        rec.differ("fill", f"order {cid}: {o.filled - before} filled at the venue that the journal never saw")


async def _decide(oms: Any, iid: str, row: dict, instruments: dict[str, Any], executed: dict[str, Decimal],
                  now_ns: int, margin_ns: int, rec: Reconciliation) -> None:
    """Step 4: cancel and settle the intent's open orders, then resume it for what the venue has not done."""
    d = row["data"]
    inst = instruments.get(d["symbol"])
    orders = [o for o in oms.orders.values() if o.intent_id == iid]
    for o in orders:
        if o.state.open:
            await oms.cancel(o.client_order_id)
            if not o.state.final:
                await oms.resolve(o, fetch=False)
            if oms.venue_filled.get(o.client_order_id, Decimal(0)) > o.filled:
                await oms.fetch_fills(o, every=True)
    done = sum((max(o.filled, oms.venue_filled.get(o.client_order_id, Decimal(0))) for o in orders), Decimal(0))
    requested = inst.lots_to_qty(d["qty_lots"]) if inst is not None else done
    left = requested - done
    room = d["deadline_ns"] - now_ns - margin_ns
    if left <= 0:
        rec.close.append(Close(iid, "done", done, f"the venue holds its full size ({done})"))
    elif inst is not None and row["state"] in ("accepted", "working", "completing") and room > 0:
        rec.resume.append(Resume(iid, row, left, done))
        rec.notes.append(f"intent {iid}: {done} of {requested} executed at the venue; resuming for {left} "
                         f"({room / 1e9:.1f} s left)")
        return
    else:
        why = "its window has passed" if room <= 0 else "it was being cancelled"
        rec.close.append(Close(iid, "interrupted", done, f"the engine stopped while it worked and {why}; "
                                                          f"{done} of {requested} executed"))
    rec.notes.append(f"intent {iid}: closed as {rec.close[-1].state} ({rec.close[-1].note})")


async def _unknown_open(rest: Any, oms: Any, rec: Reconciliation) -> None:
    try:
        venue_open = await rest.open_orders()
    except VenueError as exc:
        rec.notes.append(f"could not list open orders: {exc}")
        return
    for row in venue_open:
        if row.get("clientOrderId") not in oms.orders:
            rec.differ("order", f"venue has an order we did not place: {row.get('symbol')} {row.get('side')} "
                             f"{row.get('origQty')} @ {row.get('price')} ({row.get('clientOrderId')})")


async def _positions(rest: Any, oms: Any, instruments: dict[str, Any], rec: Reconciliation) -> None:
    try:
        venue_pos = {p["symbol"]: Decimal(p["positionAmt"]) for p in await rest.position_risk()}
    except VenueError as exc:
        rec.notes.append(f"could not read positions: {exc}")
        return
    for sym in instruments:
        ours, theirs = oms.positions.get(sym).qty, venue_pos.get(sym, Decimal(0))
        if ours != theirs:
            rec.differ("position", f"position {sym}: journal {ours} vs venue {theirs} (trades outside this engine?)")


def adopt_order(row: dict, intent_id: str, purpose: str) -> Order:
    """An ``Order`` rebuilt from the venue's order row (query / allOrders JSON), SUBMITTED, not yet journalled."""
    price = Decimal(row["price"]) if row.get("price") not in (None, "", "0", "0.00", "0.0") else None
    if price is not None and price == 0:
        price = None
    stop = Decimal(row["stopPrice"]) if row.get("stopPrice") not in (None, "") else None
    o = Order(row["clientOrderId"], row["symbol"], row["side"], row.get("type") or row.get("origType") or "LIMIT",
              Decimal(row["origQty"]), price, row.get("timeInForce") if price is not None else None,
              stop if stop else None, reduce_only=bool(row.get("reduceOnly")),
              close_position=bool(row.get("closePosition")), intent_id=intent_id, purpose=purpose)
    o.venue_order_id = int(row["orderId"])
    o.created_ms = o.updated_ms = int(row.get("time") or row.get("updateTime") or 0)
    o.apply(Trigger.SUBMIT, o.created_ms)
    return o
