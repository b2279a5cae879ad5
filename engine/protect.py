"""The trader's protections: TP/SL levels as exchange-side close-position orders that follow the position.

A level is the trader's call (``tp btc 71250``, ``sl btc off``); this keeps one STOP_MARKET / TAKE_PROFIT_MARKET
close-position order per level on the side that closes the position, re-synced after every fill and at start-up.
Levels belong to a position: when it closes they are cleared (set before an entry, they wait for it). Close-
position orders only ever reduce, so they are allowed in every trading state.
"""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal
from typing import Any

from engine.bus import Bus
from engine.commands import Submitted
from engine.errors import ConfigError
from engine.intents import Intent
from engine.oms.orders import Order, OState

MS = 1_000_000


class Protections:
    """TP/SL levels per symbol, journalled under ``tp/<symbol>`` and mirrored at the venue."""

    def __init__(self, bus: Bus, journal: Any, oms: Any, feed: Any, instruments: dict[str, Any],
                 clock: Callable[[], int], run_id: str, levels: dict[str, dict[str, Decimal | None]]) -> None:
        self.bus, self.journal, self.oms, self.feed = bus, journal, oms, feed
        self.instruments, self.clock, self.run_id = instruments, clock, run_id
        self.levels = levels
        self._level_pos: dict[str, Decimal] = {}        # the position the levels were last synced at
        self._n = 0

    @staticmethod
    def from_kv(kv: dict[str, Any]) -> dict[str, dict[str, Decimal | None]]:
        """The levels the journal holds (``tp/<symbol>`` keys)."""
        return {k[3:]: {kk: (Decimal(v) if v else None) for kk, v in val.items()}
                for k, val in kv.items() if k.startswith("tp/") and isinstance(val, dict)}

    async def set_level(self, intent: Intent, inst: Any, source: str, user: str) -> Submitted:
        kind, price = intent.kind.value, intent.price
        if price is not None and price % inst.tick_size != 0:
            raise ConfigError(f"{kind} {price} is not on the {inst.tick_size} tick")
        self._check_side(kind, price, inst)
        self.levels.setdefault(inst.symbol, {})[kind] = price
        self.journal.kv_set(f"tp/{inst.symbol}", {k: (str(v) if v is not None else None)
                                                   for k, v in self.levels[inst.symbol].items()})
        self.journal.decision(None, self.clock() // MS, kind, {"symbol": inst.symbol, "price": str(price),
                                                               "source": source, "user": user,
                                                               "rationale": intent.rationale})
        await self.journal.sync()
        await self.sync_now(inst.symbol)
        text = f"{kind.upper()} {inst.symbol} " + (f"at {price}" if price is not None else "removed")
        self.bus.emit_all("tp_sl", text, user, "tp_sl")
        return Submitted("", text)

    def _check_side(self, kind: str, price: Decimal | None, inst: Any) -> None:
        pos = self.oms.positions.get(inst.symbol).qty
        mid = self.feed[inst.symbol].book.mid
        if price is None or pos == 0 or mid != mid:
            return
        mark = Decimal(repr(mid)) * inst.tick_size
        if (kind == "tp") != ((price > mark) == (pos > 0)):
            where = "above" if (kind == "tp") == (pos > 0) else "below"
            raise ConfigError(f"{kind} {price} is on the wrong side: for a {'long' if pos > 0 else 'short'} "
                              f"it must be {where} the market ({mark})")

    def sync(self, symbol: str) -> None:
        """Re-sync ``symbol``'s protective orders in the background (after a fill)."""
        if self.levels.get(symbol):
            self.bus.spawn(self.sync_now(symbol))

    async def sync_all(self) -> None:
        """At start-up: the venue's protective orders made to match the journalled levels and position."""
        for symbol in list(self.levels):
            if symbol in self.instruments:
                await self.sync_now(symbol)

    async def sync_now(self, symbol: str) -> None:
        """Keep one exchange-side close-position order per level on the side that closes the position."""
        pos = self.oms.positions.get(symbol).qty
        was = self._level_pos.get(symbol, Decimal(0))
        self._level_pos[symbol] = pos
        if was != 0 and (pos == 0 or (pos > 0) != (was > 0)) and any(self.levels.get(symbol, {}).values()):
            self.levels[symbol] = {}
            self.journal.kv_set(f"tp/{symbol}", {})
            self.bus.emit_all("tp_sl", f"{symbol} position closed: TP/SL cleared")
        for kind, order_type in (("tp", "TAKE_PROFIT_MARKET"), ("sl", "STOP_MARKET")):
            await self._sync_one(symbol, kind, order_type, pos)

    async def _sync_one(self, symbol: str, kind: str, order_type: str, pos: Decimal) -> None:
        want = self.levels.get(symbol, {}).get(kind)
        side = "SELL" if pos > 0 else "BUY"
        live = [o for o in self.oms.orders.values() if o.symbol == symbol and o.purpose == kind and o.state.open]
        keep = [o for o in live if want is not None and pos != 0 and o.stop_price == want and o.side == side]
        for o in live:
            if o not in keep:
                await self.oms.cancel(o.client_order_id)
        if want is None or pos == 0 or keep:
            return
        self._n += 1
        cid = f"{kind}{self.run_id}{self._n:04d}"
        order = Order(cid, symbol, side, order_type, abs(pos), None, None, want, reduce_only=True,
                      close_position=True, purpose=kind)
        await self.oms.submit(order)
        if order.state is OState.REJECTED:
            self.bus.emit_all("error", f"{kind.upper()} {symbol} at {want} refused: {order.reason}")

    def on_order(self, o: Order, fill: Any) -> None:
        """A protective order moved (a TP/SL fill is news for the trader)."""
        if fill is not None:
            self.bus.emit_all("tp_sl", f"{o.purpose.upper()} {o.symbol} filled {fill.qty} at {fill.price}")
