"""The engine's command surface: what the trader can ask, whatever the transport.

Telegram, the console and the local control endpoint (``tapeshot intent``) all call these methods; none of them
holds trading logic (freqtrade's lesson: commands are plain functions, the chat transport only calls them).
Every method answers with plain text or a ``Submitted`` and raises ``TapeshotError`` subclasses with messages
fit to show the trader (``IntentError``: could not read it; ``RiskRefused``: not allowed now).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Protocol


@dataclass(frozen=True)
class Submitted:
    """An accepted instruction: its id (``i-...``), what was understood, and the market it found.

    ``duplicate``: this answers a key that was already submitted (see ``Commands.submit``); nothing new was done,
    and the fields are the first submission's.
    """

    intent_id: str
    echo: str
    arrival: dict = field(default_factory=dict)
    duplicate: bool = False


@dataclass(frozen=True)
class Progress:
    """One step of an intent's life, pushed to whoever sent it.

    ``kind``: accepted, fired, fill, done (the execution report is in ``data``), markouts (the report again, with
    markouts filled in), error, tp_sl, cancelled, risk (a kill switch or trading-state change, ``intent_id`` "").
    """

    intent_id: str
    kind: str
    text: str
    source: str = ""
    user: str = ""
    data: dict = field(default_factory=dict)


ProgressCallback = Callable[[Progress], Awaitable[None] | None]


class Commands(Protocol):
    async def submit(self, text: str, *, source: str, user: str, key: str | None = None) -> Submitted:
        """Parse and act on one intent text (enter, exit, tp, sl, cancel, status).

        ``key`` (an idempotency key, e.g. ``tg:<bot>:<chat>:<message>`` or a control client's own): the same key
        again does nothing new and returns the first submission's ``Submitted`` with ``duplicate=True``, also
        after a restart (the key is stored durably with the intent before this returns). A submission that was
        refused (raised) stores nothing, so its key may be used again. Without a key every call is new."""

    async def seen(self, key: str) -> bool:
        """Whether ``key`` is in the durable set of handled keys (``remember``); e.g. ``tg-update:<bot>:<id>``."""

    async def remember(self, key: str) -> None:
        """Add ``key`` to the durable set of handled keys; durable (survives ``kill -9``) when this returns."""

    async def preview(self, text: str) -> str:
        """What ``text`` would do now (size, cap, window, arrival mid and spread, the algorithm auto would pick),
        without doing it."""

    async def quote(self, text: str) -> Any:
        """The preview of an enter or exit intent as data (``engine.views.Quote``: size in base and USDT, mid,
        spread, the immediate fill's cost walked on the book, the risk verdict); None for other instructions."""

    async def orders(self) -> str:
        """The open orders, in the trader's units."""

    async def pnl(self) -> str:
        """Realised (before fees), unrealised at the mark, fees and net, per symbol and in total, and the day's."""

    async def limits(self) -> str:
        """The pre-trade limits per symbol, the account's, and what trips the kill switch."""

    async def health(self) -> str:
        """Venue connections, each book's health, the order round trip's p99."""

    async def chart(self, intent_id: str) -> bytes | None:
        """The execution's chart as PNG bytes (touch and mid, our orders, fills, cap, deadline, markouts), drawn
        off the event loop; None when there is nothing to draw."""

    async def scorecard(self) -> tuple[str, bytes | None]:
        """The trader's scorecard over the journal: its summary text and its plot (PNG, or None), computed off the
        event loop (``engine.dataset.scorecard``)."""

    async def status(self, symbol: str | None = None) -> str:
        """Working intents, open orders, positions and PnL, book health, trading state."""

    async def positions(self) -> str:
        ...

    async def kill(self, reason: str, *, user: str) -> str:
        """KillSwitch: HALTED, cancel everything at the venue, flatten if configured, report; ``flat`` and TP/SL
        (reduce-only) still go out, new exposure does not until ``resume``."""

    async def reduce(self, reason: str, *, user: str) -> str:
        """REDUCING: only orders that shrink a position go out (``flat``, TP/SL); nothing is cancelled."""

    async def resume(self, *, user: str) -> str:
        ...

    async def add_rationale(self, intent_id: str, text: str, *, user: str) -> None:
        """The trader's stated reason for an intent, stored in the decision journal."""

    async def report(self, intent_id: str) -> dict | None:
        ...

    def subscribe(self, callback: ProgressCallback) -> Callable[[], None]:
        """Receive every ``Progress``; returns the unsubscribe function."""
