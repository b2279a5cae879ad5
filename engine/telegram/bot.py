"""The Telegram front end: the trader's chat in, ``Commands`` calls out, progress and reports back.

The bot holds no trading logic: plain text is an intent passed verbatim to ``Commands.submit``; slash commands
map one to one onto ``Commands`` methods (``/preview``, ``/status``, ``/pos``, ``/kill`` behind a confirm button,
``/resume``, ``/why``, ``/report``, ``/help``). Progress events of intents sent from Telegram come back through
``Commands.subscribe`` into a queue; a worker task turns them into one status message per intent (edited, fills
coalesced to one edit per ``edit_interval``), an execution report message that asks for the rationale, and
notifications for errors and risk events. The engine never awaits Telegram.

One message, one intent (docs/telegram.md): a group -1 gate drops updates already handled (``Commands.seen``;
the authorised wrapper ``remember``s each update once its handler finished), an intent message is submitted with
the key ``tg:<bot>:<chat>:<message>``, kill buttons and rationales are remembered by their own keys, and an edited
message is answered but never acted on.

Security: only allowlisted Telegram *user* ids (optionally also chat ids) are served; everything else gets one
polite refusal and a log line without the message's content. The bot token is a ``Secret``: python-telegram-bot
only ever holds a placeholder, the real token is put into the URL at the last moment by the request object,
and the ``httpx`` request log line (which carries the URL) is redacted.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import functools
import logging
import os
import re
import secrets
import time
import warnings
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from telegram import BotCommand, InlineKeyboardButton, InlineKeyboardMarkup, Message, ReplyParameters, Update
from telegram.error import BadRequest, NetworkError, RetryAfter, TelegramError
from telegram.ext import (
    Application,
    ApplicationBuilder,
    ApplicationHandlerStop,
    CallbackQueryHandler,
    CommandHandler,
    ContextTypes,
    MessageHandler,
    TypeHandler,
    filters,
)
from telegram.request import HTTPXRequest

from engine.commands import Commands, Progress, Submitted
from engine.errors import ConfigError, TapeshotError
from engine.keys import Secret

log = logging.getLogger(__name__)

TELEGRAM_BASE_URL = "https://api.telegram.org/bot"
TOKEN_ENV = "TAPESHOT_TELEGRAM_TOKEN"
PLACEHOLDER_TOKEN = "0:tapeshot-token-withheld"  # what python-telegram-bot sees instead of the token
MAX_TEXT = 4096
WHY_PROMPT = "why? reply to this message"
GENERIC_FAILURE = "Sorry, that failed unexpectedly; it is logged. Check /status before retrying."
REFUSAL = "Sorry, this bot only takes instructions from its registered traders."
COMMAND_TIMEOUT_S = 20.0
KILL_CONFIRM_S = 60.0
TRACKED_INTENTS = 500
GATE_GROUP = -1              # the handler group of the de-duplication gate: before every other handler
REPORT_HEAD = re.compile(r"^🏁 (i[\w-]+) ")   # a report message's first line names its intent

Ctx = ContextTypes.DEFAULT_TYPE
H = TypeVar("H", bound=Callable[..., Awaitable[None]])

# --------------------------------------------------------------------------------------------- formatting (pure)

HELP_TEXT = """Tapeshot: say where to go, the engine decides when and how.

Enter (side, symbol, size, window 5-60 s, slippage cap):
  long btc 0.5 30s max 8bps
  short eth 5k 1m sniper          (5k / $2500 = USDT notional)
  buy sol $2500 20s ladder cancel limit 142.5 -- reclaiming VWAP
Exit: flat btc · close btc 0.2
Levels: tp btc 71250 · sl btc 68900 · tp btc off
Cancel: cancel btc · cancel all

Anything after --, #, because or why: is your rationale.

Commands:
  /preview <intent>  what it would do now, without doing it
  /status [sym]      working intents, orders, positions, book health
  /pos               positions
  /kill [reason]     cancel everything and halt (asks to confirm); flat and TP/SL still work
  /reduce [reason]   only flat and TP/SL go out until /resume
  /resume            allow new orders again
  /why <intent_id> <text>   record why (or reply to a report)
  /report <intent_id>       the execution report again
  /help              this text"""

COMMAND_MENU = (("preview", "what an intent would do now"), ("status", "intents, orders, positions, health"),
                ("pos", "positions"), ("kill", "cancel everything and halt (confirm)"),
                ("reduce", "only flat and TP/SL until /resume"),
                ("resume", "allow new orders again"), ("why", "record an intent's rationale"),
                ("report", "an intent's execution report"), ("help", "the intent grammar"))


def clip(text: str, limit: int = MAX_TEXT) -> str:
    """Telegram refuses texts over 4096 characters: cut with a marker."""
    return text if len(text) <= limit else text[: limit - 2] + " …"


def fmt_error(exc: BaseException) -> str:
    """A TapeshotError as the trader sees it: one short line."""
    return clip(f"⚠️ {exc}", 600)


def _scalar(value: Any) -> bool:
    return isinstance(value, str | int | float) and not isinstance(value, bool)


def fmt_submitted(sub: Submitted) -> str:
    """The accepted echo: id, what was understood, and the market it found."""
    line = f"✅ {sub.intent_id} accepted: {sub.echo}"
    market = ", ".join(f"{k} {v}" for k, v in sub.arrival.items() if _scalar(v))
    return f"{line}\narrival: {market}" if market else line


def _v(value: Any, unit: str = "") -> str:
    return "—" if value is None or value == "" else f"{value}{unit}"


def fmt_markouts(marks: dict | None) -> str:
    """``+1s 0.5 · +5s -1.2`` (bps, positive = in the trade's favour); empty while none have arrived."""
    return " · ".join(f"{h} {_v(v)}" for h, v in (marks or {}).items())


def fmt_report(report: dict, intent_id: str = "") -> str:
    """An execution report (``engine.execution.Tracker.report``'s dict) as a short chat message."""
    r = report
    head = " ".join(x for x in ("🏁", intent_id, r.get("side", ""), r.get("symbol", "")) if x)
    state = "done" if r.get("complete", True) else "PARTIAL"
    lines = [f"{head} {state} ({_v(r.get('algo'))})",
             f"filled {_v(r.get('filled'))} / {_v(r.get('requested'))} @ {_v(r.get('avg_price'))} avg",
             f"shortfall {_v(r.get('shortfall_bps'), ' bps')} vs arrival mid {_v(r.get('arrival_mid'))}"
             f" · fees {_v(r.get('fees'))}",
             f"window best {_v(r.get('best_in_window'))} · worst {_v(r.get('worst_in_window'))}"
             f" · cap {_v(r.get('cap'))}"]
    extra = []
    if r.get("time_to_fill_s") is not None:
        extra.append(f"time {r['time_to_fill_s']} s")
    if r.get("maker_share") is not None:
        extra.append(f"maker {round(float(r['maker_share']) * 100)}%")
    if extra:
        lines.append(" · ".join(extra))
    marks = fmt_markouts(r.get("markouts_bps"))
    lines.append(f"markouts (bps) {marks}" if marks else "markouts: pending")
    if r.get("fee_note"):
        lines.append(str(r["fee_note"]))
    return "\n".join(lines)


_ICONS = {"accepted": "✅", "fired": "🎯", "fill": "·", "done": "🏁", "markouts": "📈", "error": "⚠️",
          "tp_sl": "🎚", "cancelled": "✖️", "risk": "⛔"}


def fmt_progress(p: Progress, fills: int = 0) -> str:
    """One status line for a Progress event (a fill line counts the fills so far)."""
    icon = _ICONS.get(p.kind, "•")
    if p.kind == "fill":
        return f"{icon} fill {fills}: {p.text}" if fills else f"{icon} fill: {p.text}"
    return f"{icon} {p.kind}: {p.text}" if p.text else f"{icon} {p.kind}"


def fmt_notice(p: Progress) -> str:
    """An engine-wide event (``intent_id`` ""): risk, kill switch, TP/SL, reconcile, errors."""
    return f"{_ICONS.get(p.kind, '⛔')} {p.text or p.kind}"


def fmt_duplicate(intent_id: str) -> str:
    """The one short answer to a message that reached the bot again after it had already been acted on (as
    ``intent_id``, or "" for an instruction that is no intent: tp, sl, cancel)."""
    what = f"as {intent_id}" if intent_id else "before"
    return f"↩️ already received {what}; nothing was done again"


def fmt_edit_refused(intent_id: str | None) -> str:
    """The answer to an edited message: edits are never acted on."""
    if intent_id is None:
        return "✏️ edits are not acted on: send the corrected intent as a new message"
    became = f"became {intent_id}" if intent_id else "was already acted on"
    return (f"✏️ edit not acted on: this message {became}. To change it, cancel that intent (cancel <symbol>) "
            "and send a new message")


def fmt_kill_question(reason: str) -> str:
    return f"⛔ Kill switch: cancel every order and halt new ones?\nreason: {reason}"


# --------------------------------------------------------------------------------------------- the token


def token_from_env(env: dict[str, str] | None = None) -> Secret:
    """The bot token from ``TAPESHOT_TELEGRAM_TOKEN`` (BotFather's ``<bot id>:<secret>``)."""
    value = (os.environ if env is None else env).get(TOKEN_ENV, "")
    if not value:
        raise ConfigError(f"{TOKEN_ENV} is not set")
    return Secret(value)


def redact(text: str, secrets_: Iterable[str]) -> str:
    for s in secrets_:
        if s:
            text = text.replace(s, "****")
    return text


class _Redactor(logging.Filter):
    """Removes live tokens from records of the logger it is attached to (``httpx`` logs every request URL)."""

    def __init__(self) -> None:
        super().__init__("tapeshot-redactor")
        self.tokens: set[str] = set()

    def filter(self, record: logging.LogRecord) -> bool:
        if self.tokens:
            message = record.getMessage()
            clean = redact(message, self.tokens)
            if clean != message:
                record.msg, record.args = clean, None
        return True


_REDACTOR = _Redactor()
_REDACTED_LOGGERS = ("httpx",)   # its INFO line names the URL; httpcore's traces do not (checked by the tests)


def _guard_logs(token: str, on: bool) -> None:
    if on:
        _REDACTOR.tokens.add(token)
    else:
        _REDACTOR.tokens.discard(token)
    for name in _REDACTED_LOGGERS:
        logger = logging.getLogger(name)
        if _REDACTOR.tokens and _REDACTOR not in logger.filters:
            logger.addFilter(_REDACTOR)
        elif not _REDACTOR.tokens:
            logger.removeFilter(_REDACTOR)


class TokenRequest(HTTPXRequest):
    """python-telegram-bot's httpx transport, holding the real token: the library builds URLs with
    ``PLACEHOLDER_TOKEN`` (so its reprs, debug logs and InvalidToken messages never see the token) and this
    swaps the token in just before the request, scrubbing it from any error that comes back."""

    def __init__(self, token: Secret, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._secret = token

    async def do_request(self, url: str, method: str, *args: Any, **kwargs: Any) -> tuple[int, bytes]:
        real = self._secret.reveal().decode()
        try:
            return await super().do_request(url.replace(PLACEHOLDER_TOKEN, real), method, *args, **kwargs)
        except TelegramError as e:
            if real in str(e) or real in str(e.__cause__ or ""):
                raise NetworkError(redact(str(e), [real])) from None
            raise


# --------------------------------------------------------------------------------------------- authorisation


@dataclass
class Auth:
    """Who may command the bot: Telegram user ids (never chat ids alone: a group shares one chat id)."""

    user_ids: frozenset[int]
    chat_ids: frozenset[int] | None = None

    def allows(self, update: Update) -> bool:
        user, chat = update.effective_user, update.effective_chat
        if user is None or user.id not in self.user_ids:
            return False
        return self.chat_ids is None or (chat is not None and chat.id in self.chat_ids)


def authorised(handler: H) -> H:
    """Every handler goes through here: refuse strangers, show TapeshotErrors, hide everything else; then
    remember the update as handled (durably), so a redelivery of it stops at the gate. An update whose handling
    was cut short (cancelled, or the process died) is not remembered: a redelivery runs it again, and an intent
    in it is then caught by its own key."""

    @functools.wraps(handler)
    async def wrapper(self: TelegramFront, update: Update, context: Ctx) -> None:
        if not self.auth.allows(update):
            await self.refuse(update)
            return
        self.note_chat(update)
        try:
            await handler(self, update, context)
        except TapeshotError as e:
            await self.answer(update, fmt_error(e))
        except TimeoutError:
            await self.answer(update, "⚠️ no answer from the engine in time; check /status before retrying")
        except Exception:
            log.exception("telegram: handler %s failed", handler.__name__)
            await self.answer(update, GENERIC_FAILURE)
        await self.handled(update)

    return wrapper  # type: ignore[return-value]


# --------------------------------------------------------------------------------------------- the outbox


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

    def status_text(self, intent_id: str) -> str:
        return "\n".join(x for x in (self.echo or f"{intent_id}", self.state) if x)

    def report_text(self, intent_id: str) -> str:
        tail = f"why: {self.rationale}" if self.rationale else WHY_PROMPT
        return clip(f"{fmt_report(self.report, intent_id)}\n{tail}")


class Outbox:
    """Everything the bot says on its own initiative goes through one queue and one worker task.

    ``put`` never blocks (the engine's progress callbacks call it); the worker paces API calls, coalesces fill
    updates per intent to one edit per ``edit_interval`` seconds, and retries once after a flood-control answer.
    """

    def __init__(self, front: TelegramFront, edit_interval: float, max_queue: int = 10_000,
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

    async def _submitted(self, chat_id: int, reply_to: int, sub: Submitted) -> None:
        track = self._track(sub.intent_id, chat_id)
        assert track is not None
        track.reply_to = track.reply_to or reply_to
        track.echo = fmt_submitted(sub)        # the handler's echo carries the arrival market: it wins
        await self._update_status(sub.intent_id, track, force=True)

    async def _progress(self, p: Progress) -> None:
        if p.kind == "risk" or not p.intent_id:
            await self._broadcast(fmt_notice(p))
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

    async def _rationale(self, intent_id: str, text: str) -> None:
        track = self.tracks.get(intent_id)
        if track is None:
            return
        track.rationale = text
        if track.report_id is not None:
            await self.edit(track.chat_id, track.report_id, track.report_text(intent_id))

    async def _broadcast(self, text: str) -> None:
        for chat_id in self.front.broadcast_chats():
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


# --------------------------------------------------------------------------------------------- the handlers


async def _ack(query: Any, text: str) -> None:
    """Answer a button press (the small toast); a press answered too late is not worth an error."""
    try:
        await query.answer(text)
    except TelegramError as e:
        log.warning("telegram: could not answer a button press: %s", type(e).__name__)


@dataclass
class _KillRequest:
    reason: str
    asked_at: float


class TelegramFront:
    """The handlers: authorisation, argument reading, one ``Commands`` call each, and the answer."""

    def __init__(self, app: Application, commands: Commands, auth: Auth, edit_interval: float = 0.5,
                 max_age_s: float = 60.0) -> None:
        self.app = app
        self.commands = commands
        self.auth = auth
        self.max_age_s = max_age_s
        self.outbox = Outbox(self, edit_interval)
        self.reports: dict[tuple[int, int], str] = {}
        self.intent_of: OrderedDict[tuple[int, int], str] = OrderedDict()   # (chat, message) -> its intent
        self.last_chat: dict[int, int] = {}
        self._kills: dict[str, _KillRequest] = {}
        self._refused: dict[int, float] = {}
        self._intent_lock = asyncio.Lock()
        self._loop = asyncio.get_running_loop()

    @property
    def bot(self) -> Any:
        return self.app.bot

    def install(self) -> None:
        only_new = filters.UpdateType.MESSAGE  # never act on an edited message
        self.app.add_handler(TypeHandler(Update, self.gate, block=True), group=GATE_GROUP)
        on = {"start": self.cmd_help, "help": self.cmd_help, "preview": self.cmd_preview,
              "status": self.cmd_status, "pos": self.cmd_pos, "kill": self.cmd_kill, "reduce": self.cmd_reduce,
              "resume": self.cmd_resume,
              "why": self.cmd_why, "report": self.cmd_report}
        for name, fn in on.items():
            self.app.add_handler(CommandHandler(name, fn, filters=only_new, block=False))
        self.app.add_handler(CallbackQueryHandler(self.on_button, block=False))
        self.app.add_handler(MessageHandler(only_new & filters.TEXT & ~filters.COMMAND, self.on_text, block=False))
        self.app.add_handler(MessageHandler(only_new & filters.COMMAND, self.cmd_unknown, block=False))
        self.app.add_handler(MessageHandler(only_new & ~filters.TEXT, self.on_other, block=False))
        self.app.add_handler(MessageHandler(filters.UpdateType.EDITED_MESSAGE & filters.TEXT, self.on_edited,
                                            block=False))
        self.app.add_error_handler(self.on_error)

    # -- de-duplication: every key names the bot, because update ids and private chats' message ids are per bot

    def update_key(self, update: Update) -> str:
        """The durable key of an update (``getUpdates`` delivers an update again until its offset is confirmed)."""
        return f"tg-update:{self.bot.id}:{update.update_id}"

    def message_key(self, msg: Message, kind: str = "tg") -> str:
        """The key of one message: ``tg:`` the idempotency key its intent is submitted with, ``tg-msg:`` remembered
        once it produced an intent, ``tg-why:`` once its rationale is stored."""
        return f"{kind}:{self.bot.id}:{msg.chat_id}:{msg.message_id}"

    async def gate(self, update: Update, context: Ctx) -> None:
        """Group -1, before every handler: an update already handled (a redelivery) goes no further. If the
        engine cannot answer, the update goes on: an intent in it still carries its own key."""
        try:
            seen = await self.commands.seen(self.update_key(update))
        except Exception:
            log.exception("telegram: could not check update %s against the handled ones", update.update_id)
            return
        if seen:
            log.info("telegram: update %s was already handled; dropped", update.update_id)
            raise ApplicationHandlerStop

    async def handled(self, update: Update) -> None:
        """Remember ``update`` as handled (durably)."""
        await self.remember(self.update_key(update))

    async def remember(self, key: str) -> None:
        """``Commands.remember``; a failure is logged, not shown: what it marks was done all the same."""
        try:
            await self.commands.remember(key)
        except Exception:
            log.exception("telegram: could not remember %s as handled", key)

    # -- helpers the decorator uses

    async def refuse(self, update: Update) -> None:
        user, chat = update.effective_user, update.effective_chat
        uid = user.id if user else None
        kind = "callback" if update.callback_query else "message" if update.effective_message else "update"
        log.warning("telegram: refused %s from user %s in chat %s", kind, uid, chat.id if chat else None)
        if update.callback_query is not None:
            await _ack(update.callback_query, "Not authorised.")
            return
        now = time.monotonic()
        if uid is None or now - self._refused.get(uid, -1e9) < 60:
            return
        if len(self._refused) > 1000:
            self._refused.clear()
        self._refused[uid] = now
        await self.answer(update, REFUSAL)

    def note_chat(self, update: Update) -> None:
        if update.effective_user and update.effective_chat:
            self.last_chat[update.effective_user.id] = update.effective_chat.id

    async def answer(self, update: Update, text: str, markup: InlineKeyboardMarkup | None = None) -> Message | None:
        """Reply to the update's message (quoting it in groups); errors are logged, never raised."""
        msg = update.effective_message
        if msg is None:
            return None
        return await self.outbox.send(msg.chat_id, text, msg.message_id, markup)

    def remember_report(self, chat_id: int, message_id: int, intent_id: str) -> None:
        """A reply to this message is the rationale of ``intent_id``."""
        self.reports[(chat_id, message_id)] = intent_id
        while len(self.reports) > 2 * TRACKED_INTENTS:
            del self.reports[next(iter(self.reports))]

    def chat_of(self, user: str) -> int | None:
        """Where ``user``'s intent progress goes: their last chat, else (an allowed user's intent resumed after
        a restart) their private chat."""
        with contextlib.suppress(ValueError):
            uid = int(user)
            return self.last_chat.get(uid, uid if uid in self.auth.user_ids else None)
        return None

    def broadcast_chats(self) -> list[int]:
        """Each allowed user's last chat with the bot (their private chat when none yet), once each."""
        return list(dict.fromkeys(self.last_chat.get(u, u) for u in sorted(self.auth.user_ids)))

    def on_progress(self, p: Progress) -> None:
        """The ``Commands.subscribe`` callback: filter and queue, never wait."""
        if p.source != "telegram" and p.kind != "risk" and p.intent_id:
            return
        try:
            same_loop = asyncio.get_running_loop() is self._loop
        except RuntimeError:
            same_loop = False
        if same_loop:
            self.outbox.put(("progress", p))
        else:
            self._loop.call_soon_threadsafe(self.outbox.put, ("progress", p))

    @staticmethod
    def _rest(update: Update) -> str:
        """The text after the command word, as typed."""
        text = (update.effective_message.text or "") if update.effective_message else ""
        parts = text.split(maxsplit=1)
        return parts[1].strip() if len(parts) > 1 else ""

    @staticmethod
    def _user(update: Update) -> str:
        return str(update.effective_user.id)

    async def _ask(self, coro: Awaitable[Any]) -> Any:
        return await asyncio.wait_for(coro, COMMAND_TIMEOUT_S)

    # -- plain text: intents and rationale replies

    @authorised
    async def on_text(self, update: Update, context: Ctx) -> None:
        msg = update.effective_message
        report_of = self._report_of(msg)
        if report_of:
            await self._store_rationale(update, report_of, msg.text)
            return
        age = (dt.datetime.now(dt.UTC) - msg.date).total_seconds()
        if age > self.max_age_s:
            await self._refuse_stale(update, age)
            return
        async with self._intent_lock:          # handlers run concurrently; intents keep their order
            sub = await self._ask(self.commands.submit(msg.text, source="telegram", user=self._user(update),
                                                       key=self.message_key(msg)))
        if sub.duplicate:                      # delivered again after its intent was submitted: say so, once
            await self.answer(update, fmt_duplicate(sub.intent_id))
            return
        self._note_intent(msg, sub.intent_id)
        self.outbox.put(("submitted", msg.chat_id, msg.message_id, sub))
        await self.remember(self.message_key(msg, "tg-msg"))

    def _report_of(self, msg: Message) -> str | None:
        """The intent whose report ``msg`` replies to (its rationale), if it does: from the reports this bot sent,
        else (sent before a restart) from the report's first line."""
        replied = msg.reply_to_message
        if replied is None:
            return None
        known = self.reports.get((msg.chat_id, replied.message_id))
        if known is not None:
            return known
        text = replied.text or ""
        mine = replied.from_user is not None and replied.from_user.id == self.bot.id
        head = REPORT_HEAD.match(text) if mine and (WHY_PROMPT in text or "\nwhy: " in text) else None
        return head.group(1) if head else None

    def _note_intent(self, msg: Message, intent_id: str) -> None:
        """Which intent a message became (for the answer to an edit of it)."""
        self.intent_of[(msg.chat_id, msg.message_id)] = intent_id
        while len(self.intent_of) > 2 * TRACKED_INTENTS:
            self.intent_of.popitem(last=False)

    async def _refuse_stale(self, update: Update, age: float) -> None:
        msg = update.effective_message
        if await self.commands.seen(self.message_key(msg, "tg-msg")):     # it was acted on before a restart
            await self.answer(update, fmt_duplicate(self.intent_of.get((msg.chat_id, msg.message_id), "")))
            return
        await self.answer(update, f"⚠️ not acted on: this was sent {age:.0f}s ago (limit {self.max_age_s:g}s)")

    async def _store_rationale(self, update: Update, intent_id: str, text: str) -> None:
        key = self.message_key(update.effective_message, "tg-why")
        if await self.commands.seen(key):     # delivered again: stored already (add_rationale takes no key)
            await self.answer(update, f"📝 already noted for {intent_id}")
            return
        await self._ask(self.commands.add_rationale(intent_id, text, user=self._user(update)))
        await self.remember(key)
        self.outbox.put(("rationale", intent_id, text))
        await self.answer(update, f"📝 noted for {intent_id}")

    @authorised
    async def on_edited(self, update: Update, context: Ctx) -> None:
        """An edited message is never acted on (a fixed typo must not become a second order): the trader is told,
        and told which intent the message already became, if it became one."""
        msg = update.effective_message
        intent_id = self.intent_of.get((msg.chat_id, msg.message_id))
        if intent_id is None and await self.commands.seen(self.message_key(msg, "tg-msg")):
            intent_id = ""
        await self.answer(update, fmt_edit_refused(intent_id))

    @authorised
    async def on_other(self, update: Update, context: Ctx) -> None:
        await self.answer(update, "I read text only: an intent like 'long btc 0.5 30s max 8bps', or /help.")

    # -- commands

    @authorised
    async def cmd_help(self, update: Update, context: Ctx) -> None:
        await self.answer(update, HELP_TEXT)

    @authorised
    async def cmd_unknown(self, update: Update, context: Ctx) -> None:
        await self.answer(update, "Unknown command; /help lists them.")

    @authorised
    async def cmd_preview(self, update: Update, context: Ctx) -> None:
        text = self._rest(update)
        if not text:
            await self.answer(update, "usage: /preview long btc 0.5 30s max 8bps")
            return
        await self.answer(update, await self._ask(self.commands.preview(text)))

    @authorised
    async def cmd_status(self, update: Update, context: Ctx) -> None:
        await self.answer(update, await self._ask(self.commands.status(self._rest(update) or None)))

    @authorised
    async def cmd_pos(self, update: Update, context: Ctx) -> None:
        await self.answer(update, await self._ask(self.commands.positions()))

    @authorised
    async def cmd_reduce(self, update: Update, context: Ctx) -> None:
        reason = self._rest(update) or "reduce from telegram"
        await self.answer(update, await self._ask(self.commands.reduce(reason, user=self._user(update))))

    @authorised
    async def cmd_resume(self, update: Update, context: Ctx) -> None:
        await self.answer(update, await self._ask(self.commands.resume(user=self._user(update))))

    @authorised
    async def cmd_why(self, update: Update, context: Ctx) -> None:
        parts = self._rest(update).split(maxsplit=1)
        if len(parts) < 2:
            await self.answer(update, "usage: /why <intent_id> <your reason>  (or reply to the report)")
            return
        await self._store_rationale(update, parts[0], parts[1])

    @authorised
    async def cmd_report(self, update: Update, context: Ctx) -> None:
        intent_id = self._rest(update).split(maxsplit=1)[0] if self._rest(update) else ""
        if not intent_id:
            await self.answer(update, "usage: /report <intent_id>")
            return
        report = await self._ask(self.commands.report(intent_id))
        if not report:
            await self.answer(update, f"no report for {intent_id} (unknown, or still working)")
            return
        msg = await self.answer(update, f"{fmt_report(report, intent_id)}\n{WHY_PROMPT}")
        if msg is not None:
            self.remember_report(msg.chat_id, msg.message_id, intent_id)

    @authorised
    async def cmd_kill(self, update: Update, context: Ctx) -> None:
        reason = self._rest(update) or "kill from telegram"
        self._expire_kills()
        nonce = secrets.token_hex(6)
        self._kills[nonce] = _KillRequest(reason, time.monotonic())
        keyboard = InlineKeyboardMarkup([[InlineKeyboardButton("⛔ KILL", callback_data=f"kill:{nonce}"),
                                          InlineKeyboardButton("abort", callback_data=f"abort:{nonce}")]])
        await self.answer(update, fmt_kill_question(reason), keyboard)

    def _expire_kills(self) -> None:
        now = time.monotonic()
        for nonce in [n for n, k in self._kills.items() if now - k.asked_at > KILL_CONFIRM_S]:
            del self._kills[nonce]

    @authorised
    async def on_button(self, update: Update, context: Ctx) -> None:
        query = update.callback_query
        action, _, nonce = (query.data or "").partition(":")
        key = f"tg-kill:{self.bot.id}:{nonce}"
        if nonce and await self.commands.seen(key):        # a press delivered again: done already, keep its answer
            await _ack(query, "already done")
            return
        self._expire_kills()
        request = self._kills.pop(nonce, None)
        msg = query.message
        if request is None or action not in ("kill", "abort"):
            await _ack(query, "expired: send /kill again")
            if isinstance(msg, Message):
                await self.outbox.edit(msg.chat_id, msg.message_id, "⛔ kill request expired")
            return
        if action == "abort":
            await _ack(query, "aborted")
            result = "kill aborted; nothing was done"
        else:
            await _ack(query, "killing…")
            result = "⛔ " + await self._ask(self.commands.kill(request.reason, user=self._user(update)))
        await self.remember(key)
        if isinstance(msg, Message):
            await self.outbox.edit(msg.chat_id, msg.message_id, result)

    async def on_error(self, update: object, context: Ctx) -> None:
        err = context.error
        log.error("telegram: unhandled %s in the bot", type(err).__name__, exc_info=err)


# --------------------------------------------------------------------------------------------- start / stop


@dataclass
class BotHandle:
    """A running bot: ``await handle.stop()`` stops polling, drains the outbox and closes the HTTP clients."""

    app: Application
    front: TelegramFront
    unsubscribe: Callable[[], None]
    token_text: str = field(repr=False)

    async def stop(self) -> None:
        self.unsubscribe()
        try:
            if self.app.updater is not None and self.app.updater.running:
                await self.app.updater.stop()
            if self.app.running:
                await self.app.stop()
            await self.front.outbox.close()
            await self.app.shutdown()
        finally:
            _guard_logs(self.token_text, on=False)


def _build_app(token: Secret, base_url: str | None) -> Application:
    kw = {"connect_timeout": 10.0, "read_timeout": 10.0, "write_timeout": 10.0, "pool_timeout": 5.0}
    base = base_url or TELEGRAM_BASE_URL
    return (ApplicationBuilder().token(PLACEHOLDER_TOKEN).base_url(base).base_file_url(base)
            .request(TokenRequest(token, connection_pool_size=8, **kw))
            .get_updates_request(TokenRequest(token, connection_pool_size=1, **kw))
            .job_queue(None).build())


async def start_bot(commands: Commands, token: Secret, allowed_user_ids: set[int], base_url: str | None = None,
                    allowed_chat_ids: set[int] | None = None, *, poll_timeout: float = 10.0,
                    edit_interval: float = 0.5, max_age_s: float = 60.0) -> BotHandle:
    """Start the bot inside the running event loop (long polling) and subscribe it to ``commands``' progress.

    ``base_url`` is the Bot API base the token is appended to (default Telegram's ``https://api.telegram.org/bot``;
    tests give the stand-in's). Raises ``ConfigError`` without users to serve, and python-telegram-bot's
    ``InvalidToken`` (showing only a placeholder) when the server refuses the token.
    """
    if not allowed_user_ids:
        raise ConfigError("telegram: no allowed user ids; the bot would serve nobody")
    if not isinstance(token, Secret):
        raise ConfigError("telegram: the token must be a Secret")
    token_text = token.reveal().decode()
    _guard_logs(token_text, on=True)
    app = _build_app(token, base_url)
    chats = frozenset(int(c) for c in allowed_chat_ids) if allowed_chat_ids else None
    users = frozenset(int(u) for u in allowed_user_ids)
    front = TelegramFront(app, commands, Auth(users, chats), edit_interval, max_age_s)
    front.install()
    try:
        await app.initialize()
        await _set_menu(app)
        await app.start()
        front.outbox.start()
        await app.updater.start_polling(timeout=poll_timeout, drop_pending_updates=True,
                                        allowed_updates=["message", "edited_message", "callback_query"])
    except BaseException:
        with contextlib.suppress(Exception):
            await _abort(app, front)
        _guard_logs(token_text, on=False)
        raise
    unsubscribe = commands.subscribe(front.on_progress)
    log.info("telegram: bot @%s polling, %d allowed users", app.bot.username, len(allowed_user_ids))
    return BotHandle(app, front, unsubscribe, token_text)


async def _set_menu(app: Application) -> None:
    try:
        await app.bot.set_my_commands([BotCommand(n, d) for n, d in COMMAND_MENU])
    except TelegramError as e:
        log.warning("telegram: could not set the command menu: %s", type(e).__name__)


async def _abort(app: Application, front: TelegramFront) -> None:
    if app.updater is not None and app.updater.running:
        await app.updater.stop()
    if app.running:
        await app.stop()
    await front.outbox.close(drain_s=0)
    await app.shutdown()
