"""The command surface every front end calls (console, control socket, Telegram): ``engine.commands.Commands``
implemented as a small facade over the components. No trading logic lives here: it parses, routes and words.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import orjson

from engine.bus import Bus
from engine.commands import ProgressCallback, Submitted
from engine.errors import ConfigError
from engine.execution import Arrival, make_spec
from engine.intent_runner import IntentRunner
from engine.intents import IntentKind, parse
from engine.kill import KillAction, KillReport, Watchdog
from engine.metrics import KILLS
from engine.protect import Protections
from engine.risk import TradingState

log = logging.getLogger(__name__)
MS = 1_000_000


class Cockpit:
    """``Commands`` over the intent runner, the protections, the OMS and the risk gateway."""

    def __init__(self, cfg: Any, bus: Bus, runner: IntentRunner, protect: Protections, oms: Any, journal: Any,
                 risk: Any, killswitch: Any, seen: set[str]) -> None:
        self.cfg, self.bus, self.runner, self.protect = cfg, bus, runner, protect
        self.oms, self.journal, self.risk, self.killswitch = oms, journal, risk, killswitch
        self._seen = seen
        self.killer: KillAction | None = None       # the venue-side kill action and its watchdog (the node's)
        self.watchdog: Watchdog | None = None

    @property
    def feed(self) -> Any:
        return self.runner.feed

    @property
    def instruments(self) -> dict[str, Any]:
        return self.runner.instruments

    def _defaults(self) -> dict:
        e = self.cfg.execution
        return {"window_s": e.window_s, "max_slippage_bps": e.max_slippage_bps, "algo": e.algo,
                "on_deadline": e.on_deadline}

    async def submit(self, text: str, *, source: str, user: str, key: str | None = None) -> Submitted:
        intent = parse(text, self._defaults())
        if intent.kind in (IntentKind.ENTER, IntentKind.EXIT):
            return await self.runner.accept(intent, source, user, key)
        if intent.kind in (IntentKind.TP, IntentKind.SL):
            return await self.protect.set_level(intent, self.runner.instrument(intent.symbol), source, user)
        if intent.kind is IntentKind.CANCEL:
            done = self.runner.cancel(intent.symbol, f"cancelled by {user or source}")
            return Submitted("", f"cancelling {', '.join(done)}" if done else "nothing working to cancel")
        return Submitted("", await self.status(intent.symbol))

    async def seen(self, key: str) -> bool:
        return key in self._seen or key in self.runner.keys

    async def remember(self, key: str) -> None:
        if key in self._seen:
            return
        self._seen.add(key)
        self.journal.seen(key, self.runner.clock() // MS)
        await self.journal.sync()

    async def preview(self, text: str) -> str:
        intent = parse(text, self._defaults())
        if intent.kind not in (IntentKind.ENTER, IntentKind.EXIT):
            return intent.describe()
        inst = self.runner.instrument(intent.symbol)
        sf = self.feed[inst.symbol]
        now = self.runner.clock()
        arrival = Arrival.stamp(sf, now)
        refusal = self.runner.would_refuse(intent, arrival)
        if refusal:
            return f"{intent.describe()}\n  would be refused: {refusal}"
        pos = self.oms.positions.get(inst.symbol).qty
        spec = make_spec(intent, inst, arrival, inst.qty_to_lots(abs(pos)) * (1 if pos >= 0 else -1))
        from strategies import auto

        chosen = auto.choose(spec, sf, now)[0].__name__.lower() if intent.algo == "auto" else intent.algo
        return (f"{intent.describe()}\n  size {inst.lots_to_qty(spec.qty)} {inst.symbol}, cap "
                f"{inst.fmt_price(spec.cap)}, mid {Decimal(repr(arrival.mid_ticks)) * inst.tick_size}, spread "
                f"{arrival.ask[0] - arrival.bid[0]} ticks, algo {chosen}, score "
                f"{sf.timing.py_score(spec.side, now):+.2f}")

    async def status(self, symbol: str | None = None) -> str:
        ks = self.killswitch
        lines = [f"trading {self.risk.state.value}" + (f" ({ks.tripped})" if ks.tripped else "")]
        for sym, inst in self.instruments.items():
            if symbol and sym != symbol:
                continue
            sf = self.feed[sym]
            pos = self.oms.positions.get(sym)
            bid, ask = sf.book.best(0), sf.book.best(1)
            lines.append(f"{sym}: pos {pos.qty} @ {pos.entry:.2f}, realised {pos.realized:.2f}, fees {pos.fees:.4f}; "
                         f"book {'synced' if sf.synced else 'RESYNCING'} "
                         f"{inst.fmt_price(bid[0]) if bid else '-'} / {inst.fmt_price(ask[0]) if ask else '-'}; "
                         f"levels {self.protect.levels.get(sym, {})}")
        for li in self.runner.intents.values():
            if li.state.live:
                a = li.algo
                said = li.intent.raw or li.intent.describe()
                lines.append(f"{li.id} [{li.state.value}{', resumed' if li.resumed else ''}] \"{said}\": "
                             f"{li.inst.lots_to_qty(a.filled)}/{li.inst.lots_to_qty(a.spec.qty)} "
                             f"{li.inst.symbol}, {a.name}")
        return "\n".join(lines)

    async def positions(self) -> str:
        return "\n".join(f"{s}: {p.qty} @ {p.entry:.2f} realised {p.realized:.2f} fees {p.fees:.4f}"
                         for s, p in self.oms.positions.positions.items()) or "no positions"

    async def kill(self, reason: str, *, user: str, trigger: str = "manual") -> str:
        """HALTED now; then the kill action (``engine.kill``): cancel-all per symbol confirmed, flatten if
        configured, TP/SL back; the report to the journal, the console and Telegram, counted per trigger."""
        self.risk.state = TradingState.HALTED
        if not self.killswitch.tripped:
            self.killswitch.trip(reason, trigger)
        if self.watchdog is not None:
            self.watchdog.request(trigger, reason, from_loop=True)
        report = KillReport(trigger, reason, user)
        if self.killer is not None:
            await self.killer.run(report)
        else:
            await self._cancel_local(report)
        KILLS[trigger] = KILLS.get(trigger, 0) + 1
        self.journal.decision(None, self.runner.clock() // MS, "kill", report.as_dict())
        await self.journal.sync()
        text = report.text()
        log.warning("%s", text)
        self.bus.emit_all("risk", text)
        return text

    async def _cancel_local(self, report: KillReport) -> None:
        """Without a venue-side kill action (no node): cancel what the OMS knows."""
        self.runner.cancel(None, f"kill switch: {report.reason}")
        for o in list(self.oms.orders.values()):
            if o.state.open:
                await self.oms.cancel(o.client_order_id)
                report.cancelled.append(o.client_order_id)

    async def reduce(self, reason: str, *, user: str) -> str:
        """REDUCING: only orders that shrink a position go out (``flat``, TP/SL); working intents carry on
        under that rule."""
        self.risk.state = TradingState.REDUCING
        self.journal.decision(None, self.runner.clock() // MS, "reduce", {"reason": reason, "user": user})
        await self.journal.sync()
        text = f"trading REDUCING: only flat and TP/SL go out ({reason})"
        self.bus.emit_all("risk", text)
        return text

    async def resume(self, *, user: str) -> str:
        self.killswitch.reset()
        if self.watchdog is not None:
            self.watchdog.done()
        self.risk.state = TradingState.ACTIVE
        self.journal.decision(None, self.runner.clock() // MS, "resume", {"user": user})
        await self.journal.sync()
        self.bus.emit_all("risk", "trading resumed")
        return "trading resumed"

    async def add_rationale(self, intent_id: str, text: str, *, user: str) -> None:
        if intent_id not in self.runner.intents and not self.journal.query("SELECT id FROM intents WHERE id=?",
                                                                            (intent_id,)):
            raise ConfigError(f"no intent {intent_id}")
        self.journal.decision(intent_id, self.runner.clock() // MS, "rationale", {"text": text, "user": user})
        await self.journal.sync()

    async def report(self, intent_id: str) -> dict | None:
        li = self.runner.intents.get(intent_id)
        if li is not None:
            return li.report
        rows = self.journal.query("SELECT report FROM intents WHERE id=?", (intent_id,))
        return orjson.loads(rows[0]["report"]) if rows and rows[0]["report"] else None

    def subscribe(self, callback: ProgressCallback) -> Callable[[], None]:
        return self.bus.subscribe(callback)
