"""The order state machine, one transition table, every transition explicit.

    NEW ─submit─► SUBMITTED ─ack─► ACKNOWLEDGED ─fill─► PARTIALLY_FILLED ─fill─► FILLED
                      │  └─timeout─► UNKNOWN ─resolve(venue status)─► any venue state
                      ├─reject─► REJECTED          ACKNOWLEDGED / PARTIALLY_FILLED ─cancel─► CANCELED
                      └─fill─► PARTIALLY_FILLED / FILLED (the fill outran the ack)     ─expire─► EXPIRED

Events from the venue race each other (a fill on the user stream can beat the order's own ack); the table says
which late events are harmless (``STALE``: recorded, no change) and which are impossible (``StateError``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from enum import StrEnum

from engine.errors import StateError


class OState(StrEnum):
    NEW = "NEW"                          # created here, not yet on the wire
    SUBMITTED = "SUBMITTED"              # bytes written, no answer yet
    ACKNOWLEDGED = "ACKNOWLEDGED"        # the venue has it (Binance NEW)
    PARTIALLY_FILLED = "PARTIALLY_FILLED"
    FILLED = "FILLED"
    CANCELED = "CANCELED"
    REJECTED = "REJECTED"
    EXPIRED = "EXPIRED"
    UNKNOWN = "UNKNOWN"                  # the answer was lost: query the venue

    @property
    def final(self) -> bool:
        return self in FINAL_STATES

    @property
    def open(self) -> bool:
        return not self.final and self is not OState.NEW


FINAL_STATES = frozenset({OState.FILLED, OState.CANCELED, OState.REJECTED, OState.EXPIRED})


class Trigger(StrEnum):
    SUBMIT = "submit"
    ACK = "ack"
    FILL = "fill"              # a fill that leaves quantity open
    FILL_ALL = "fill_all"      # a fill that completes the order
    CANCEL = "cancel"
    REJECT = "reject"
    EXPIRE = "expire"
    TIMEOUT = "timeout"        # no answer within the deadline, or the connection dropped mid-request


STALE = object()   # a late duplicate of something already known: recorded, state unchanged

S, T = OState, Trigger
TRANSITIONS: dict[tuple[OState, Trigger], OState | object] = {
    (S.NEW, T.SUBMIT): S.SUBMITTED,
    (S.NEW, T.REJECT): S.REJECTED,                      # refused before sending (risk, filters)
    (S.SUBMITTED, T.ACK): S.ACKNOWLEDGED,
    (S.SUBMITTED, T.FILL): S.PARTIALLY_FILLED,
    (S.SUBMITTED, T.FILL_ALL): S.FILLED,
    (S.SUBMITTED, T.CANCEL): S.CANCELED,
    (S.SUBMITTED, T.REJECT): S.REJECTED,
    (S.SUBMITTED, T.EXPIRE): S.EXPIRED,
    (S.SUBMITTED, T.TIMEOUT): S.UNKNOWN,
    (S.ACKNOWLEDGED, T.ACK): STALE,
    (S.ACKNOWLEDGED, T.FILL): S.PARTIALLY_FILLED,
    (S.ACKNOWLEDGED, T.FILL_ALL): S.FILLED,
    (S.ACKNOWLEDGED, T.CANCEL): S.CANCELED,
    (S.ACKNOWLEDGED, T.EXPIRE): S.EXPIRED,
    (S.ACKNOWLEDGED, T.TIMEOUT): STALE,                 # a cancel request timed out: the order is still known
    (S.PARTIALLY_FILLED, T.ACK): STALE,
    (S.PARTIALLY_FILLED, T.FILL): S.PARTIALLY_FILLED,
    (S.PARTIALLY_FILLED, T.FILL_ALL): S.FILLED,
    (S.PARTIALLY_FILLED, T.CANCEL): S.CANCELED,
    (S.PARTIALLY_FILLED, T.EXPIRE): S.EXPIRED,
    (S.PARTIALLY_FILLED, T.TIMEOUT): STALE,
    (S.UNKNOWN, T.ACK): S.ACKNOWLEDGED,
    (S.UNKNOWN, T.FILL): S.PARTIALLY_FILLED,
    (S.UNKNOWN, T.FILL_ALL): S.FILLED,
    (S.UNKNOWN, T.CANCEL): S.CANCELED,
    (S.UNKNOWN, T.REJECT): S.REJECTED,
    (S.UNKNOWN, T.EXPIRE): S.EXPIRED,
    (S.UNKNOWN, T.TIMEOUT): STALE,
    (S.FILLED, T.ACK): STALE,                           # the ack arrived after the fills
    (S.FILLED, T.FILL_ALL): STALE,
    (S.FILLED, T.TIMEOUT): STALE,
    (S.CANCELED, T.ACK): STALE,
    (S.CANCELED, T.CANCEL): STALE,
    (S.CANCELED, T.TIMEOUT): STALE,
    (S.EXPIRED, T.ACK): STALE,
    (S.EXPIRED, T.EXPIRE): STALE,
    (S.EXPIRED, T.TIMEOUT): STALE,
    (S.REJECTED, T.REJECT): STALE,
    (S.REJECTED, T.TIMEOUT): STALE,
}

# Binance order status -> the trigger that brings us there
VENUE_STATUS = {"NEW": T.ACK, "PARTIALLY_FILLED": T.FILL, "FILLED": T.FILL_ALL, "CANCELED": T.CANCEL,
                "REJECTED": T.REJECT, "EXPIRED": T.EXPIRE, "EXPIRED_IN_MATCH": T.EXPIRE}


@dataclass
class Fill:
    """One execution of one of our orders, identified by the venue's trade id."""

    trade_id: int
    client_order_id: str
    symbol: str
    side: str                 # BUY / SELL
    price: Decimal
    qty: Decimal
    fee: Decimal              # in USDT
    maker: bool
    time_ms: int


@dataclass
class Order:
    """Our view of one order. ``client_order_id`` is ours and makes every submit idempotent."""

    client_order_id: str
    symbol: str
    side: str
    type: str
    qty: Decimal
    price: Decimal | None = None
    tif: str | None = None
    stop_price: Decimal | None = None
    reduce_only: bool = False
    close_position: bool = False
    intent_id: str | None = None
    purpose: str = "entry"               # entry / exit / tp / sl
    state: OState = OState.NEW
    venue_order_id: int | None = None
    filled: Decimal = Decimal(0)
    notional: Decimal = Decimal(0)       # sum of price x qty over fills
    fees: Decimal = Decimal(0)
    created_ms: int = 0
    updated_ms: int = 0
    reason: str = ""                     # reject / cancel reason, venue error text
    reject_code: int = 0                 # the venue's error code when it rejected the order
    trade_ids: set[int] = field(default_factory=set)

    @property
    def remaining(self) -> Decimal:
        return self.qty - self.filled

    @property
    def avg_price(self) -> Decimal | None:
        return self.notional / self.filled if self.filled else None

    def apply(self, trigger: Trigger, now_ms: int = 0, reason: str = "") -> bool:
        """Take one transition; returns False for a stale event; raises StateError for an impossible one."""
        nxt = TRANSITIONS.get((self.state, trigger))
        if nxt is None:
            raise StateError(f"order {self.client_order_id}: {trigger.value} is impossible in state {self.state}")
        if nxt is STALE:
            return False
        self.state = nxt  # type: ignore[assignment]
        if now_ms:
            self.updated_ms = now_ms
        if reason:
            self.reason = reason
        return True

    def add_fill(self, fill: Fill) -> bool:
        """Count a fill once (by trade id); moves the state to PARTIALLY_FILLED / FILLED. False if a duplicate."""
        if fill.trade_id in self.trade_ids:
            return False
        if fill.qty <= 0 or self.filled + fill.qty > self.qty:
            raise StateError(f"order {self.client_order_id}: fill of {fill.qty} exceeds the remaining {self.remaining}")
        self.trade_ids.add(fill.trade_id)
        self.filled += fill.qty
        self.notional += fill.price * fill.qty
        self.fees += fill.fee
        if self.state in (OState.CANCELED, OState.EXPIRED):
            return True        # a fill that happened before the cancel/expiry, reported after it
        self.apply(Trigger.FILL_ALL if self.filled == self.qty else Trigger.FILL, fill.time_ms)
        return True
