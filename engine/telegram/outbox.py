"""Everything the bot says on its own initiative: one queue, one worker task, paced API calls.

Per intent a status message (edited as it goes, fills coalesced), the why-now question when the intent came
without a reason, the execution report (edited when the markouts arrive) and its chart as a photo; notices for
everyone (kill switch, resume, reconciliation). ``put`` never blocks: the engine's progress callbacks call it.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import time
import warnings
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from telegram import InlineKeyboardMarkup, InputFile, Message, ReplyParameters
from telegram.error import BadRequest, RetryAfter, TelegramError

from engine.commands import Progress, Submitted
from engine.telegram.text import clip, fmt_notice, fmt_progress, fmt_report, fmt_submitted, fmt_why_question

log = logging.getLogger(__name__)
TRACKED_INTENTS = 500


@dataclass
class Track:
    """One intent's place in the chat: its status message (edited as it goes) and its report message."""

    chat_id: int
    reply_to: int | None = None
    status_id: int | None = None
    echo: str = ""
    state: str = ""
    fills: int = 0
    shown: str = ""
    last_edit: float = -1e9
    flush_pending: bool = False
    report_id: int | None = None
    report: dict = field(default_factory=dict)
    rationale: str = ""
    ask_why: bool = False              # the intent came without a reason: ask once, after the echo
    asked: bool = False
    charted: bool = False

    def status_text(self, intent_id: str) -> str:
        return "\n".join(x for x in (self.echo or f"{intent_id}", self.state) if x)

    def report_text(self, intent_id: str) -> str:
        tail = f"\nwhy: {self.rationale}" if self.rationale else ""
        return clip(f"{fmt_report(self.report, intent_id)}{tail}")


class Outbox:
    """Everything the bot says on its own initiative goes through one queue and one worker task.

    ``put`` never blocks (the engine's progress callbacks call it); the worker paces API calls, coalesces fill
    updates per intent to one edit per ``edit_interval`` seconds, and retries once after a flood-control answer.
    """

    def __init__(self, front: Any, edit_interval: float, max_queue: int = 10_000,
                 min_call_gap: float = 1 / 25) -> None:
        self.front = front
        self.edit_interval = edit_interval
        self.min_call_gap = min_call_gap
        self.queue: asyncio.Queue[tuple] = asyncio.Queue(max_queue)
        self.tracks: OrderedDict[str, Track] = OrderedDict()
        self.dropped = 0
        self._next_call = 0.0
        self._task: asyncio.Task | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="telegram-outbox")

    async def close(self, drain_s: float = 2.0) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.queue.join(), drain_s)
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    def put(self, item: tuple) -> None:
        try:
            self.queue.put_nowait(item)
        except asyncio.QueueFull:
            self.dropped += 1
            if self.dropped in (1, 10, 100) or self.dropped % 1000 == 0:
                log.warning("telegram: outbox full, %d progress messages dropped", self.dropped)

    async def _run(self) -> None:
        while True:
            item = await self.queue.get()
            try:
                await self._handle(item)
            except Exception:
                log.exception("telegram: outbox failed on a %s item", item[0])
            finally:
                self.queue.task_done()

    async def _handle(self, item: tuple) -> None:
        kind = item[0]
        if kind == "submitted":
            await self._submitted(*item[1:])
        elif kind == "progress":
            await self._progress(item[1])
        elif kind == "flush":
            track = self.tracks.get(item[1])
            if track is not None:
                track.flush_pending = False
                await self._update_status(item[1], track, force=True)
        elif kind == "rationale":
            await self._rationale(item[1], item[2])
        elif kind == "edit":
            await self.edit(*item[1:])
        elif kind == "send":
            await self.send(*item[1:])

    # -- intents

    def _track(self, intent_id: str, chat_id: int | None) -> Track | None:
        track = self.tracks.get(intent_id)
        if track is None:
            if chat_id is None:
                return None
            track = self.tracks[intent_id] = Track(chat_id)
            while len(self.tracks) > TRACKED_INTENTS:
                self.tracks.popitem(last=False)
        return track

    async def _submitted(self, chat_id: int, reply_to: int, sub: Submitted, ask_why: bool = False) -> None:
        track = self._track(sub.intent_id, chat_id)
        assert track is not None
        track.reply_to = track.reply_to or reply_to
        track.echo = fmt_submitted(sub)        # the handler's echo carries the arrival market: it wins
        track.ask_why = ask_why
        await self._update_status(sub.intent_id, track, force=True)
        await self._ask_why(sub.intent_id, track)

    async def _ask_why(self, intent_id: str, track: Track) -> None:
        """Once, right after the echo, for an intent sent without a reason: the reply is its rationale."""
        if not track.ask_why or track.asked:
            return
        track.asked = True
        msg = await self.send(track.chat_id, fmt_why_question(intent_id), track.status_id or track.reply_to)
        if msg is not None:
            self.front.remember_question(track.chat_id, msg.message_id, intent_id)

    async def _progress(self, p: Progress) -> None:
        if p.kind == "risk" or not p.intent_id:
            await self._broadcast(fmt_notice(p), skip=self.front.answered_chat(p))
            return
        track = self._track(p.intent_id, self.front.chat_of(p.user))
        if track is None:
            log.warning("telegram: no chat known for intent %s (user %s); progress dropped", p.intent_id, p.user)
            return
        if p.kind == "accepted":
            track.echo = track.echo or f"✅ {p.intent_id} accepted: {p.text}"
        elif p.kind == "fill":
            track.fills += 1
            track.state = fmt_progress(p, track.fills)
        else:
            track.state = fmt_progress(p)
        # until the handler's echo is in (it replies to the trader's message), progress waits a little too
        await self._update_status(p.intent_id, track, force=p.kind != "fill" and track.reply_to is not None)
        if p.kind in ("done", "markouts") and p.data:
            await self._report(p.intent_id, track, p.data)
            if p.kind == "markouts" or p.data.get("markouts_final"):
                await self._chart(p.intent_id, track)
        elif p.kind == "error":
            await self.send(track.chat_id, f"⚠️ {p.intent_id}: {p.text}", track.status_id or track.reply_to)

    async def _update_status(self, intent_id: str, track: Track, force: bool) -> None:
        text = clip(track.status_text(intent_id))
        if text == track.shown:
            return
        now = time.monotonic()
        wait = track.last_edit + self.edit_interval - now if track.status_id is not None else self.edit_interval
        if not force and wait > 0:
            if not track.flush_pending:
                track.flush_pending = True
                asyncio.get_running_loop().call_later(wait, self.put, ("flush", intent_id))
            return
        track.last_edit = now
        if track.status_id is None:
            msg = await self.send(track.chat_id, text, track.reply_to)
            track.status_id = msg.message_id if msg is not None else None
            ok = msg is not None
        else:
            ok = await self.edit(track.chat_id, track.status_id, text) is not None
        if ok:
            track.shown = text

    async def _report(self, intent_id: str, track: Track, report: dict) -> None:
        track.report = dict(report)
        text = track.report_text(intent_id)
        if track.report_id is None:
            msg = await self.send(track.chat_id, text, track.status_id or track.reply_to)
            if msg is not None:
                track.report_id = msg.message_id
                self.front.remember_report(track.chat_id, msg.message_id, intent_id)
        else:
            await self.edit(track.chat_id, track.report_id, text)

    async def _chart(self, intent_id: str, track: Track) -> None:
        """The execution's picture, once its markouts are in: rendered off the loop, sent as a photo under the
        report. Nothing to draw (or no renderer) sends nothing."""
        if track.charted:
            return
        track.charted = True
        try:
            png = await self.front.chart(intent_id)
        except Exception:
            log.exception("telegram: the chart of %s failed", intent_id)
            return
        if png:
            await self.send_photo(track.chat_id, png, f"{intent_id}: the execution", track.report_id)

    async def _rationale(self, intent_id: str, text: str) -> None:
        track = self.tracks.get(intent_id)
        if track is None:
            return
        track.rationale = text
        if track.report_id is not None:
            await self.edit(track.chat_id, track.report_id, track.report_text(intent_id))

    async def _broadcast(self, text: str, skip: int | None = None) -> None:
        for chat_id in self.front.broadcast_chats():
            if chat_id != skip:
                await self.send(chat_id, text)

    # -- the API calls

    async def send(self, chat_id: int, text: str, reply_to: int | None = None,
                   markup: InlineKeyboardMarkup | None = None) -> Message | None:
        reply = ReplyParameters(reply_to, allow_sending_without_reply=True) if reply_to else None
        return await self._call("sendMessage", self.front.bot.send_message, chat_id=chat_id, text=clip(text),
                                reply_parameters=reply, reply_markup=markup)

    async def edit(self, chat_id: int, message_id: int, text: str,
                   markup: InlineKeyboardMarkup | None = None) -> Any:
        return await self._call("editMessageText", self.front.bot.edit_message_text, chat_id=chat_id,
                                message_id=message_id, text=clip(text), reply_markup=markup)

    async def send_photo(self, chat_id: int, png: bytes, caption: str, reply_to: int | None = None,
                         filename: str = "execution.png") -> Any:
        reply = ReplyParameters(reply_to, allow_sending_without_reply=True) if reply_to else None
        return await self._call("sendPhoto", self.front.bot.send_photo, chat_id=chat_id,
                                photo=InputFile(png, filename=filename), caption=clip(caption, 1024),
                                reply_parameters=reply)

    async def _call(self, what: str, fn: Callable[..., Awaitable[Any]], **kwargs: Any) -> Any:
        chat_id = kwargs.get("chat_id")
        for attempt in range(2):
            await self._pace()
            try:
                return await fn(**kwargs)
            except RetryAfter as e:
                if attempt:
                    break
                await asyncio.sleep(_retry_after_s(e))
            except BadRequest as e:
                if "not modified" in e.message:
                    return True                  # already showing this text: done
                log.warning("telegram: %s to chat %s refused: %s", what, chat_id, e.message)
                return None
            except TelegramError as e:
                log.warning("telegram: %s to chat %s failed: %s", what, chat_id, type(e).__name__)
                return None
        log.warning("telegram: %s to chat %s dropped after flood control", what, chat_id)
        return None

    async def _pace(self) -> None:
        now = time.monotonic()
        if self._next_call > now:
            await asyncio.sleep(self._next_call - now)
        self._next_call = max(now, self._next_call) + self.min_call_gap


def _retry_after_s(e: RetryAfter) -> float:
    value = getattr(e, "_retry_after", None)
    if value is None:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            value = e.retry_after
    return value.total_seconds() if isinstance(value, dt.timedelta) else float(value)


