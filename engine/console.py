"""The console: intents typed on stdin, progress printed as it happens.

Lines are intents in the one grammar (``long btc 0.5 30s max 8bps``), or: ``preview <intent>``, ``status``,
``pos``, ``kill [reason]``, ``reduce [reason]``, ``resume``, ``why <intent id> <text>``, ``report <intent id>``,
``help``, ``quit``.
stdin is read by a daemon thread so a waiting terminal never blocks the event loop or its shutdown.
"""

from __future__ import annotations

import asyncio
import sys
import threading
from typing import TextIO

from engine.commands import Commands, Progress
from engine.errors import TapeshotError

HELP = """intents:  long btc 0.5 30s max 8bps   short eth 5k 1m sniper   flat btc   tp btc 71250   sl btc 68900 (or off)
          cancel btc   add a reason after '--': long btc 0.2 -- absorption at 64k
commands: preview <intent>   status   pos   kill [reason]   reduce [reason]   resume   why <id> <text>
          report <id>   help   quit"""


class Console:
    def __init__(self, commands: Commands, out: TextIO | None = None) -> None:
        self.commands = commands
        self.out = out or sys.stdout
        self.quit = asyncio.Event()
        self._lines: asyncio.Queue[str | None] = asyncio.Queue()

    def say(self, text: str) -> None:
        print(text, file=self.out, flush=True)

    def on_progress(self, p: Progress) -> None:
        if p.source in ("console", "control") or not p.intent_id:
            self.say(f"[{p.intent_id or p.kind}] {p.kind}: {p.text}" if p.intent_id else f"[{p.kind}] {p.text}")

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
        if not line:
            return True
        word, _, rest = line.partition(" ")
        try:
            if word in ("quit", "exit"):
                return False
            if word == "help":
                self.say(HELP)
            elif word == "preview":
                self.say(await self.commands.preview(rest))
            elif word == "status":
                self.say(await self.commands.status(rest.strip().upper() or None))
            elif word == "pos":
                self.say(await self.commands.positions())
            elif word == "kill":
                self.say(await self.commands.kill(rest or "by hand", user="console"))
            elif word == "reduce":
                self.say(await self.commands.reduce(rest or "by hand", user="console"))
            elif word == "resume":
                self.say(await self.commands.resume(user="console"))
            elif word == "why":
                iid, _, text = rest.partition(" ")
                await self.commands.add_rationale(iid, text, user="console")
                self.say(f"noted for {iid}")
            elif word == "report":
                self.say(str(await self.commands.report(rest.strip())))
            else:
                sub = await self.commands.submit(line, source="console", user="console")
                if not sub.intent_id:
                    self.say(sub.echo)
        except TapeshotError as exc:
            self.say(f"! {exc}")
        return True
