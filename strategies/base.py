"""The execution-algorithm interface: events in, order actions out; the same code live, on the sim and in replay.

An algorithm gets one ``Spec`` (side, size in lots, window, price cap, deadline rule), reads the market through a
``SymbolFeed`` (``sf.book`` for the L2 book in ticks/lots, ``sf.timing`` for the signals, ``sf.last_event_ns``
for exchange time), hears about its own orders through ``OrderUpdate``, and answers every call with a list of
``Place`` / ``Cancel`` actions. It never talks to a venue, a clock or a journal: the executor does.

Deadline rule, shared by every algorithm: two round trips (plus one timer period, so a timer tick that lands on the
deadline is never late) before the deadline every resting order is cancelled;
once the cancels are confirmed (so nothing can fill twice), with ``complete`` the remainder goes as one marketable
IOC at the cap. So the last order leaves before the deadline and a window never overruns by more than the order
round trip.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

BUY, SELL = 0, 1
BID, ASK = 0, 1


@dataclass(frozen=True, slots=True)
class Place:
    """A new order: prices in ticks (None: MARKET), sizes in lots, tif GTC / IOC / FOK / GTX."""

    cid: str
    side: int
    qty: int
    price: int | None
    tif: str = "IOC"
    reduce_only: bool = False
    tag: str = ""
    reason: str = ""                  # why, in words, for the decision journal


@dataclass(frozen=True, slots=True)
class Cancel:
    cid: str
    reason: str = ""                  # why, in words, for the decision journal


Action = Place | Cancel


@dataclass(frozen=True, slots=True)
class Spec:
    """What to execute. ``cap`` is the worst acceptable price (buy: highest, sell: lowest), in ticks."""

    symbol: str
    side: int
    qty: int
    arrival_ns: int
    deadline_ns: int
    cap: int
    complete: bool = True
    reduce_only: bool = False
    round_trip_ns: int = 5_000_000
    limit: int | None = None          # the trader's own limit price, if any (never crossed)
    min_lots: int = 1                 # smallest order the venue accepts here (min qty, min notional at arrival)
    timer_ns: int = 20_000_000        # the executor calls on_timer at least this often

    def __post_init__(self) -> None:
        if self.side not in (BUY, SELL) or self.qty <= 0 or self.deadline_ns <= self.arrival_ns:
            raise ValueError(f"bad spec {self}")

    @property
    def worst(self) -> int:
        """The most aggressive price any order may carry: the cap, tightened by the trader's limit."""
        if self.limit is None:
            return self.cap
        return min(self.cap, self.limit) if self.side == BUY else max(self.cap, self.limit)


@dataclass(slots=True)
class OrderUpdate:
    """What happened to one of the algorithm's orders: a fill (``filled`` lots at ``price``) and/or a status."""

    cid: str
    status: str                 # NEW / PARTIALLY_FILLED / FILLED / CANCELED / EXPIRED / REJECTED
    filled: int = 0
    price: int | None = None
    final: bool = False
    code: int = 0               # a rejection's code (Binance's, or 0 for our own risk gateway)
    reason: str = ""            # a rejection's message
    transient: bool = True      # a rejection that may pass if tried again later (rate limit, overload, stale book)


@dataclass(slots=True)
class _Live:
    place: Place
    filled: int = 0
    cancel_sent: bool = False


@dataclass
class Algo:
    """Base class: tracks its orders and fills, enforces the deadline rule. Subclasses implement ``decide``."""

    spec: Spec
    new_id: Callable[[], str]
    name: str = "base"
    filled: int = 0
    notional: int = 0                                   # sum of price_ticks x lots over fills
    live: dict[str, _Live] = field(default_factory=dict)
    finished: bool = False
    deadline_fired: bool = False
    rejects: int = 0                                    # transient rejections so far
    hold_until: int = 0                                 # no new order before this (backing off a transient reject)
    failure: str = ""                                   # a definitive rejection ended the intent early: why
    _completed: bool = False
    log: list[tuple[int, str]] = field(default_factory=list)

    # ---- bookkeeping --------------------------------------------------------------------------------------

    @property
    def remaining(self) -> int:
        return self.spec.qty - self.filled

    @property
    def working(self) -> int:
        """Lots in live orders not yet filled."""
        return sum(o.place.qty - o.filled for o in self.live.values())

    @property
    def free(self) -> int:
        """Lots neither filled nor working: what a new order may carry."""
        return self.remaining - self.working

    @property
    def dust(self) -> bool:
        """What is left is too small to trade on its own (reduce-only orders are exempt, as on Binance)."""
        return 0 < self.remaining < self.spec.min_lots and not self.spec.reduce_only

    def split_ok(self, qty: int) -> bool:
        """An order of ``qty`` is allowed and leaves no untradeable remainder behind it."""
        if self.spec.reduce_only:
            return qty > 0
        rest = self.free - qty
        return qty >= self.spec.min_lots and (rest == 0 or rest >= self.spec.min_lots)

    @property
    def avg_price_ticks(self) -> float | None:
        return self.notional / self.filled if self.filled else None

    def place(self, qty: int, price: int | None, tif: str, tag: str, reason: str = "") -> Place:
        p = Place(self.new_id(), self.spec.side, qty, price, tif, self.spec.reduce_only, tag, reason)
        self.live[p.cid] = _Live(p)
        return p

    def cancel(self, cid: str, reason: str = "") -> Cancel | None:
        o = self.live.get(cid)
        if o is None or o.cancel_sent:
            return None
        o.cancel_sent = True
        return Cancel(cid, reason)

    def cancel_all(self, reason: str = "") -> list[Action]:
        return [c for cid in list(self.live) if (c := self.cancel(cid, reason)) is not None]

    def note(self, now: int, text: str) -> None:
        self.log.append((now, text))

    # ---- events -------------------------------------------------------------------------------------------

    def on_order(self, up: OrderUpdate, sf, now: int) -> list[Action]:
        o = self.live.get(up.cid)
        if o is None:
            return []
        if up.filled:
            o.filled += up.filled
            self.filled += up.filled
            self.notional += up.filled * (up.price if up.price is not None else o.place.price or 0)
        if up.final:
            del self.live[up.cid]
        if up.status == "REJECTED":
            acts = self.rejected(up, now, o.place.tag)
            if self.failure:
                return acts
        if self.remaining <= 0:
            self.finished = not self.live
            return self.cancel_all("filled: nothing left to execute")
        if self.deadline_fired:
            return self.at_deadline(sf, now)
        return self.step(sf, now)

    def rejected(self, up: OrderUpdate, now: int, tag: str = "") -> list[Action]:
        """A rejection. Transient (rate limit, overload, a stale book): back off inside the window, 100 ms
        doubling to 2 s but never more than a quarter of the time left, and carry on; the deadline rule holds.
        Definitive (margin, filters, reduce-only, halted): stop now, cancel what rests, and keep the venue's
        code and message as ``failure``."""
        if up.transient:
            self.rejects += 1
            room = self.spec.deadline_ns - now          # near the deadline the pauses shrink with the time left
            self.hold_until = now + min(100_000_000 << min(self.rejects - 1, 5), 2_000_000_000,
                                        max(room // 4, 1_000_000))
            self.note(now, f"rejected ({up.code} {up.reason}); retrying in {(self.hold_until - now) / 1e9:.1f} s")
            if tag == "deadline":
                self._completed = False                 # the completing IOC may go again once the hold ends
            return []
        self.failure = f"{up.code}: {up.reason}" if up.code else up.reason or "rejected"
        self.note(now, f"rejected for good ({self.failure}): stopping")
        self.deadline_fired = self._completed = True
        self.finished = not self.live
        return self.cancel_all(f"rejected for good: {self.failure}")

    def expire(self, cid: str, now: int, why: str) -> None:
        """An order of ours that was never sent (its deadline passed while it waited): forget it."""
        if self.live.pop(cid, None) is not None:
            self.note(now, f"{cid} not sent: {why}")
        if self.deadline_fired or now >= self.spec.deadline_ns:
            self.deadline_fired = self._completed = True
            self.finished = not self.live

    def on_market(self, sf, now: int) -> list[Action]:
        return [] if self.finished else self.step(sf, now)

    def on_timer(self, sf, now: int) -> list[Action]:
        return [] if self.finished else self.step(sf, now)

    def step(self, sf, now: int) -> list[Action]:
        if now < self.hold_until:
            return []
        if self.dust and not self.live:
            self.finished = True
            self.note(now, f"{self.remaining} lots left: below the venue's minimum order")
            return []
        if now >= self.spec.deadline_ns - 2 * self.spec.round_trip_ns - self.spec.timer_ns:
            return self.at_deadline(sf, now)
        return self.decide(sf, now)             # resting algorithms re-price even with nothing free

    def at_deadline(self, sf, now: int) -> list[Action]:
        """Phase 1: cancel everything resting. Phase 2 (all confirmed): the completing IOC, or stop."""
        acts: list[Action] = []
        if not self.deadline_fired:
            self.deadline_fired = True
            acts = self.cancel_all("deadline rule: nothing rests into the deadline")
            self.note(now, f"deadline: cancelling {len(acts)} resting")
        if self.live:
            return acts
        if now >= self.spec.deadline_ns:                # nothing leaves after the deadline
            self._completed = True
        elif now < self.hold_until:                     # backing off a transient rejection
            return acts
        if self.spec.complete and self.remaining > 0 and not self._completed and not self.dust:
            self._completed = True
            acts.append(self.place(self.remaining, self.spec.worst, "IOC", "deadline",
                                   "deadline rule: IOC the rest at the cap (complete)"))
            self.note(now, f"deadline: IOC {self.remaining} at cap {self.spec.worst}")
            return acts
        self.finished = not self.live
        if self.remaining > 0 and self.finished:
            self.note(now, "deadline: the rest is not filled" + ("" if self.spec.complete else " (cancel rule)"))
        return acts

    def decide(self, sf, now: int) -> list[Action]:
        raise NotImplementedError

    # ---- helpers for subclasses ---------------------------------------------------------------------------

    def frac(self, now: int) -> float:
        s = self.spec
        return min(1.0, max(0.0, (now - s.arrival_ns) / (s.deadline_ns - s.arrival_ns)))

    def within_cap(self, price: int) -> bool:
        return price <= self.spec.worst if self.spec.side == BUY else price >= self.spec.worst

    def clamp(self, price: int) -> int:
        w = self.spec.worst
        return min(price, w) if self.spec.side == BUY else max(price, w)

    def touches(self, sf) -> tuple[tuple[int, int] | None, tuple[int, int] | None]:
        """(own-side touch, opposite touch) as (price, qty), or None when a side is empty."""
        bid, ask = sf.book.best(BID), sf.book.best(ASK)
        return (bid, ask) if self.spec.side == BUY else (ask, bid)

    def toward(self, price: int, ticks: int) -> int:
        """``ticks`` more aggressive than ``price`` (up for a buy, down for a sell)."""
        return price + ticks if self.spec.side == BUY else price - ticks
