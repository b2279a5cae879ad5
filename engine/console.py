"""The console: intents typed on stdin, progress printed as it happens.

Lines are intents in the one grammar (``long btc 0.5 30s max 8bps``, ``exit btc``), or: ``preview <intent>``,
``status [btc]``, ``pos``, ``kill [reason]`` (asks y/N), ``reduce [reason]``, ``resume``, ``why <intent id> <text>``,
``report <intent id>``, ``help``, ``quit`` (asks y/N while intents work). ``exit`` alone is not quit: ``exit btc``
is an intent, so a bare ``exit`` says which to write.

Every line is printed once: a command whose answer the engine also broadcasts as a notice (kill, reduce, resume,
TP/SL) is not printed again when the notice already was. Texts are in the trader's units (``engine.words``).
stdin is read by a daemon thread so a waiting terminal never blocks the event loop or its shutdown.
"""

from __future__ import annotations

import asyncio
import sys
import threading
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Any, TextIO

from engine import words
from engine.commands import Commands, Progress
from engine.errors import ConfigError, TapeshotError

HELP = """intents:  long btc 0.5 30s max 8bps   short eth 5k 1m sniper   flat btc (or exit btc)   tp btc 71250
          sl btc 68900 (or off)   cancel btc   a reason after 'why' or '--', tags with '#':
          long btc 0.2 30s why absorption at 64k #absorption
commands: preview <intent>   status [btc]   pos   kill [reason]   reduce [reason]   resume   why <id> <text>
          report <id>   help   quit"""
YES = ("y", "yes")


def progress_text(p: Progress) -> str:
    """How a terminal shows one progress event: an engine notice as ``[kind] text``, an intent's step as
    ``[id] kind: text`` (the kind said once when the text starts with it: "markouts +1s ..."), a finished
    intent's full execution report in the trader's units."""
    if not p.intent_id:
        return f"[{p.kind}] {p.text}"
    if p.kind == "done" and p.data:
        return words.report_text(p.data, p.intent_id)
    label = "" if p.text.startswith(p.kind) else f"{p.kind}: "
    return f"[{p.intent_id}] {label}{p.text}"


class Console:
    """One trader at a terminal: ``handle`` reads a line, ``on_progress`` prints what the engine says."""

    def __init__(self, commands: Commands, out: TextIO | None = None) -> None:
        self.commands = commands
        self.out = out or sys.stdout
        self.quit = asyncio.Event()
        self._lines: asyncio.Queue[str | None] = asyncio.Queue()
        self._notices: deque[str] = deque(maxlen=16)        # engine-wide notices printed lately
        self._confirm: tuple[str, Callable[[], Awaitable[bool]]] | None = None   # (question, action if yes)

    def say(self, text: str) -> None:
        print(text, file=self.out, flush=True)

    def _answer(self, text: str) -> None:
        """A command's answer, unless the engine's notice of it was just printed (kill, resume, TP/SL ...)."""
        if text not in self._notices:
            self.say(text)

    def on_progress(self, p: Progress) -> None:
        """Engine-wide notices, and the progress of intents sent from here or the control socket; a finished
        intent's full report in the trader's units."""
        if not p.intent_id:
            self._notices.append(p.text)
            self.say(progress_text(p))
        elif p.source in ("console", "control"):
            self.say(progress_text(p))

    def _reader(self, loop: asyncio.AbstractEventLoop) -> None:
        for line in sys.stdin:
            loop.call_soon_threadsafe(self._lines.put_nowait, line)
        loop.call_soon_threadsafe(self._lines.put_nowait, None)

    async def run(self) -> None:
        unsubscribe = self.commands.subscribe(self.on_progress)
        threading.Thread(target=self._reader, args=(asyncio.get_running_loop(),), daemon=True).start()
        self.say(HELP)
        try:
            while (line := await self._lines.get()) is not None:
                if not await self.handle(line.strip()):
                    break
        finally:
            unsubscribe()
            self.quit.set()

    async def handle(self, line: str) -> bool:
        """One console line; False to stop the console."""
        if self._confirm is not None:
            return await self._confirmed(line)
        if not line:
            return True
        word, _, rest = line.partition(" ")
        word, rest = word.lower(), rest.strip()
        try:
            return await self._command(word, rest, line)
        except TapeshotError as exc:
            self.say(f"! {exc}")
        return True

    async def _confirmed(self, line: str) -> bool:
        """The answer to a y/N question: the action on yes, nothing otherwise."""
        question, action = self._confirm or ("", None)
        self._confirm = None
        if line.strip().lower() not in YES or action is None:
            self.say(f"not done: {question.split('?')[0].lower()}")
            return True
        try:
            return await action()
        except TapeshotError as exc:
            self.say(f"! {exc}")
            return True

    def _ask(self, question: str, action: Callable[[], Awaitable[bool]]) -> bool:
        self._confirm = (question, action)
        self.say(f"{question} [y/N]")
        return True

    async def _command(self, word: str, rest: str, line: str) -> bool:
        c = self.commands
        if word == "quit":
            return self._quit()
        if word == "exit" and not rest:
            raise ConfigError("'exit' alone does nothing: 'exit <symbol>' (e.g. exit btc) closes a position, "
                              "'quit' stops the console")
        if word == "kill":
            reason = rest or "by hand"
            return self._ask(f"Kill switch: cancel every order and halt new ones? (reason: {reason})",
                             lambda: self._do(c.kill(reason, user="console")))
        simple: dict[str, Callable[[], Awaitable[Any]]] = {
            "help": lambda: _now(HELP), "preview": lambda: c.preview(rest),
            "status": lambda: c.status(rest or None), "pos": c.positions,
            "reduce": lambda: c.reduce(rest or "by hand", user="console"),
            "resume": lambda: c.resume(user="console"), "report": lambda: self._report(rest),
            "why": lambda: self._why(rest)}
        if word in simple:
            self._answer(await simple[word]())
            return True
        sub = await c.submit(line, source="console", user="console")
        if not sub.intent_id:
            self._answer(sub.echo)
        return True

    async def _do(self, awaitable: Awaitable[str]) -> bool:
        self._answer(await awaitable)
        return True

    def _quit(self) -> bool:
        working = self._working()
        if not working:
            return False
        return self._ask(f"{len(working)} intent(s) still working ({', '.join(working)}): quit anyway? They are "
                         "cancelled at the venue on the way out", _stop)

    def _working(self) -> list[str]:
        """Ids of the intents still working (the node's or the cockpit's runner)."""
        intents = getattr(self.commands, "intents", None)
        if intents is None:
            intents = getattr(getattr(self.commands, "runner", None), "intents", {})
        return [iid for iid, li in (intents or {}).items() if li.state.live]

    async def _report(self, intent_id: str) -> str:
        if not intent_id:
            raise ConfigError("report which intent? 'report <intent id>' (the id is in the accepted line)")
        report = await self.commands.report(intent_id)
        if report is None:
            raise ConfigError(f"no report for {intent_id}: no such intent, or it is still working (status shows it)")
        return words.report_text(report, intent_id)

    async def _why(self, rest: str) -> str:
        iid, _, text = rest.partition(" ")
        if not iid or not text.strip():
            raise ConfigError("why <intent id> <reason>: e.g. 'why i0001 absorption at 70k #absorption'")
        await self.commands.add_rationale(iid, text.strip(), user="console")
        return f"noted for {iid}"


async def _now(text: str) -> str:
    return text


async def _stop() -> bool:
    return False
