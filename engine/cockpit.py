"""The command surface every front end calls (console, control socket, Telegram): ``engine.commands.Commands``
implemented as a small facade over the components. No trading logic lives here: it parses, routes and words.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import orjson

from engine import views
from engine.bus import Bus
from engine.commands import ProgressCallback, Submitted
from engine.errors import ConfigError
from engine.intent_runner import IntentRunner
from engine.intents import IntentKind, parse, split_tags
from engine.kill import KillAction, KillReport, Watchdog
from engine.metrics import KILLS
from engine.protect import Protections
from engine.risk import TradingState
from engine.views import Quote

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
        self.venue_state: Callable[[], dict[str, str]] | None = None    # socket -> "up"/"down" (the node's)

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

    async def quote(self, text: str) -> Quote | None:
        """What an enter or exit intent would do now (``engine.views.Quote``); None for other instructions."""
        intent = parse(text, self._defaults())
        if intent.kind not in (IntentKind.ENTER, IntentKind.EXIT):
            return None
        return views.quote(self, intent)

    async def preview(self, text: str) -> str:
        q = await self.quote(text)
        return q.text() if q is not None else parse(text, self._defaults()).describe()

    async def orders(self) -> str:
        return views.orders_text(self)

    async def pnl(self) -> str:
        return views.pnl_text(self)

    async def limits(self) -> str:
        return views.limits_text(self)

    async def chart(self, intent_id: str) -> bytes | None:
        """The execution's picture (PNG) from the journal, drawn in the chart worker process (``engine.plot``);
        None when there is nothing to draw. Waiting for it never delays an order: the loop only awaits."""
        from engine import plot

        return await plot.intent_chart(self.journal, intent_id)

    async def scorecard(self) -> tuple[str, bytes | None]:
        """The trader's scorecard over the journal (``engine.dataset.scorecard``): its summary and its plot (PNG,
        None when nothing can be plotted), computed in the chart worker process, never on the loop."""
        from engine import plot
        from engine.dataset.scorecard import journal_scorecard

        return await plot.in_worker(journal_scorecard, str(plot.journal_file(self.journal)))

    async def health(self) -> str:
        return views.health_text(self, self.venue_state() if self.venue_state else None)

    async def status(self, symbol: str | None = None) -> str:
        """Trading state; per symbol (``btc`` or ``BTCUSDT``: one, or all) its position at the mark, PnL, TP/SL
        and book; the working intents and where their orders rest. A symbol not traded here is a ConfigError."""
        from engine import words
        from engine.intents import symbol as symbol_of

        only = self.runner.instrument(symbol_of(symbol)).symbol if symbol else None
        ks = self.killswitch
        lines = [f"trading {self.risk.state.value}" + (f" ({ks.tripped})" if ks.tripped else "")]
        for sym, inst in self.instruments.items():
            if only and sym != only:
                continue
            mark, kind = views.mark_of(self.feed[sym])
            lines.append(words.position_of(inst, self.oms.positions.get(sym), mark, kind, self.protect.levels.get(sym)))
            lines.append(words.book_of(inst, self.feed[sym]))
        working = [li for li in self.runner.intents.values() if li.state.live and (not only or li.inst.symbol == only)]
        lines += [words.working_of(li, self.oms.orders) for li in working] or ["no intent working"]
        return "\n".join(lines)

    async def positions(self) -> str:
        """Each position with its mark (or mid: said which), unrealised PnL, realised PnL net of fees, the fees
        and TP/SL levels as prices."""
        from engine import words

        lines = []
        for sym, p in self.oms.positions.positions.items():
            inst = self.instruments.get(sym)
            if inst is None or not (p.qty or p.realized or p.fees):
                continue
            mark, kind = views.mark_of(self.feed[sym])
            lines.append(words.position_of(inst, p, mark, kind, self.protect.levels.get(sym)))
        return "\n".join(lines) or "no positions"

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
        self.bus.emit_all("risk", text, user, "kill")
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
        self.bus.emit_all("risk", text, user, "reduce")
        return text

    async def resume(self, *, user: str) -> str:
        self.killswitch.reset()
        if self.watchdog is not None:
            self.watchdog.done()
        self.risk.state = TradingState.ACTIVE
        self.journal.decision(None, self.runner.clock() // MS, "resume", {"user": user})
        await self.journal.sync()
        text = "trading resumed: new orders may go out"
        self.bus.emit_all("risk", text, user, "resume")
        return text

    async def add_rationale(self, intent_id: str, text: str, *, user: str) -> None:
        """Store the trader's reason for ``intent_id`` (``skip``: asked and declined). ``#tags`` are kept apart;
        ``when`` says whether it was given before the outcome was known (the intent still working: nothing of
        its result has been reported) or after (its report is out: hindsight); research must be able to tell
        them apart, and the time is kept for a stricter cut."""
        live = self.runner.intents.get(intent_id)
        if live is None and not self.journal.query("SELECT id FROM intents WHERE id=?", (intent_id,)):
            raise ConfigError(f"no intent {intent_id}")
        body, tags = split_tags(text)
        tags = list(tags)
        skipped = body.lower() in ("skip", "-", "no", "none", "pass") and not tags
        before = live is not None and (live.state.live or live.state.value == "accepted")
        self.journal.decision(intent_id, self.runner.clock() // MS, "rationale",
                              {"text": "" if skipped else body, "tags": tags, "skipped": skipped, "user": user,
                               "when": "before_outcome" if before else "after_outcome"})
        await self.journal.sync()

    async def report(self, intent_id: str) -> dict | None:
        li = self.runner.intents.get(intent_id)
        if li is not None:
            return li.report
        rows = self.journal.query("SELECT report FROM intents WHERE id=?", (intent_id,))
        return orjson.loads(rows[0]["report"]) if rows and rows[0]["report"] else None

    def subscribe(self, callback: ProgressCallback) -> Callable[[], None]:
        return self.bus.subscribe(callback)

