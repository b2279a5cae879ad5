"""The bottom of the engine: the progress bus every component publishes to, and the task spawner.

Components are handed a ``Bus`` instead of reaching each other through a shared node: the intent runner, the
protections, the guards and reconciliation publish ``Progress`` here; the front ends (console, control socket,
Telegram) subscribe. Nothing here imports anything above it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine
from typing import Any

from engine.commands import Progress, ProgressCallback
from engine.errors import TapeshotError

log = logging.getLogger(__name__)


class Bus:
    """Fan-out of ``Progress`` to subscribers (sync or async callbacks), and ``spawn`` for background work whose
    failures are logged rather than lost."""

    def __init__(self) -> None:
        self._subs: list[ProgressCallback] = []
        self._tasks: set[asyncio.Task] = set()

    def subscribe(self, callback: ProgressCallback) -> Callable[[], None]:
        """Receive every ``Progress``; returns the unsubscribe function."""
        self._subs.append(callback)
        return lambda: self._subs.remove(callback) if callback in self._subs else None

    def publish(self, p: Progress) -> None:
        for cb in list(self._subs):
            try:
                out = cb(p)
                if asyncio.iscoroutine(out):
                    self.spawn(out)
            except Exception:
                log.exception("progress subscriber failed")

    def emit(self, intent_id: str, kind: str, text: str, source: str = "", user: str = "",
             data: dict | None = None) -> None:
        self.publish(Progress(intent_id, kind, text, source, user, data or {}))

    def emit_all(self, kind: str, text: str, user: str = "", event: str = "") -> None:
        """A notice for everyone (kill switch, TP/SL, reconciliation). ``user``: who caused it (a front end that
        already answered that user need not tell them twice); ``event``: what it is (kill, reduce, resume, ...)."""
        self.publish(Progress("", kind, text, "", user, {"event": event} if event else {}))

    def spawn(self, coro: Coroutine[Any, Any, Any]) -> asyncio.Task:
        """Run ``coro`` in the background; its exception, if any, is logged."""
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(_done)
        task.add_done_callback(self._tasks.discard)
        return task

    async def drain(self, timeout: float) -> None:
        """Wait up to ``timeout`` s for spawned work to end (shutdown)."""
        pending = [t for t in self._tasks if not t.done()]
        if pending:
            await asyncio.wait(pending, timeout=timeout)


def _done(task: asyncio.Task) -> None:
    if task.cancelled():
        return
    exc = task.exception()
    if exc is not None and not isinstance(exc, TapeshotError):
        log.error("background task failed", exc_info=exc)
    elif exc is not None:
        log.warning("%s", exc)
