"""The bot's handlers: who asks (``auth``), what they asked, one ``Commands`` call, the answer.

Intents come as plain text (``long btc 0.5 30s``) or as commands (``/long btc 0.5 30s``, ``/short``, ``/flat``).
An entry worth ``confirm_above_usdt`` or more is previewed first (size in base and USDT, mid and spread, the immediate
fill's cost walked on the live book, the risk verdict) with Confirm / Cancel buttons; it goes out only on the
sender's Confirm within ``confirm_s``; Cancel, silence or a second press send nothing. An intent sent without a
reason gets one "why now?" question; the reply (or "skip") is its rationale, stored as given before the outcome.

One message, one intent (docs/telegram.md): a group -1 gate drops updates already handled (``Commands.seen``;
the ``authorised`` wrapper ``remember``s each update once its handler finished), an intent is submitted with the
key ``tg:<bot>:<chat>:<message>`` of the trader's message (also when it goes out on a Confirm), buttons and
rationales are remembered by their own keys, and an edited message is answered but never acted on.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import secrets
import time
from collections import OrderedDict
from collections.abc import Awaitable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from telegram import InlineKeyboardButton, InlineKeyboardMarkup, Message, Update
from telegram.error import TelegramError
from telegram.ext import (
    Application,
    ApplicationHandlerStop,
    CallbackQueryHandler,
    CommandHandler,
    ContextTypes,
    MessageHandler,
    TypeHandler,
    filters,
)

from engine.commands import Commands, Progress
from engine.intents import IntentKind, parse
from engine.telegram.auth import Auth, Role, authorised
from engine.telegram.outbox import TRACKED_INTENTS, Outbox
from engine.telegram.text import (
    HELP_TEXT,
    REFUSAL,
    REPORT_HEAD,
    VIEWER_ONLY,
    WHY_HEAD,
    fmt_confirm_question,
    fmt_duplicate,
    fmt_edit_refused,
    fmt_kill_question,
    fmt_rationale_noted,
)

log = logging.getLogger(__name__)
Ctx = ContextTypes.DEFAULT_TYPE
COMMAND_TIMEOUT_S = 20.0
SCORECARD_TIMEOUT_S = 120.0           # a year of journals is scored in the worker process: allow for it
KILL_CONFIRM_S = 60.0
GATE_GROUP = -1              # the handler group of the de-duplication gate: before every other handler
INTENT_COMMANDS = {"long": "long", "short": "short", "buy": "buy", "sell": "sell", "flat": "flat", "exit": "exit",
                   "close": "close"}


async def ack(query: Any, text: str) -> None:
    """Answer a button press (the small toast); a press answered too late is not worth an error."""
    try:
        await query.answer(text)
    except TelegramError as e:
        log.warning("telegram: could not answer a button press: %s", type(e).__name__)


@dataclass
class _KillRequest:
    reason: str
    asked_at: float


@dataclass
class _Pending:
    """A large intent waiting for its sender's Confirm: the words, the trader's message (its key is the intent's
    idempotency key) and the question's message."""

    text: str
    chat_id: int
    message_id: int
    user_id: int
    asked_at: float
    ask_why: bool
    question_id: int | None = None


@dataclass(frozen=True)
class Options:
    """The bot's behaviour (``[telegram]`` in the configuration)."""

    edit_interval: float = 0.5
    max_age_s: float = 60.0
    confirm_above_usdt: Decimal = Decimal("10000")   # 0: never ask
    confirm_s: float = 30.0


class TelegramFront:
    """The handlers: authorisation, argument reading, one ``Commands`` call each, and the answer."""

    def __init__(self, app: Application, commands: Commands, auth: Auth, options: Options | None = None) -> None:
        self.app, self.commands, self.auth = app, commands, auth
        self.options = options or Options()
        self.max_age_s = self.options.max_age_s
        self.outbox = Outbox(self, self.options.edit_interval)
        self.reports: OrderedDict[tuple[int, int], str] = OrderedDict()     # report or why-question -> intent
        self.intent_of: OrderedDict[tuple[int, int], str] = OrderedDict()   # (chat, message) -> its intent
        self.last_chat: dict[int, int] = {}
        self._kills: dict[str, _KillRequest] = {}
        self._pending: dict[str, _Pending] = {}
        self._refused: dict[int, float] = {}
        self._intent_lock = asyncio.Lock()
        self._scoring = False
        self._loop = asyncio.get_running_loop()

    @property
    def bot(self) -> Any:
        return self.app.bot

    def install(self) -> None:
        only_new = filters.UpdateType.MESSAGE  # never act on an edited message
        self.app.add_handler(TypeHandler(Update, self.gate, block=True), group=GATE_GROUP)
        on = {"start": self.cmd_help, "help": self.cmd_help, "preview": self.cmd_preview,
              "status": self.cmd_status, "pos": self.cmd_pos, "orders": self.cmd_orders, "pnl": self.cmd_pnl,
              "limits": self.cmd_limits, "kill": self.cmd_kill, "reduce": self.cmd_reduce,
              "resume": self.cmd_resume, "why": self.cmd_why, "report": self.cmd_report,
              "scorecard": self.cmd_scorecard}
        on.update({name: self.cmd_intent for name in INTENT_COMMANDS})
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
        return self.key_of(msg.chat_id, msg.message_id, kind)

    def key_of(self, chat_id: int, message_id: int, kind: str = "tg") -> str:
        return f"{kind}:{self.bot.id}:{chat_id}:{message_id}"

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

    # -- helpers the wrapper and the outbox use

    async def refuse(self, update: Update) -> None:
        """A stranger: one polite refusal a minute, nothing about the account; logged without the content."""
        user, chat = update.effective_user, update.effective_chat
        uid = user.id if user else None
        kind = "callback" if update.callback_query else "message" if update.effective_message else "update"
        log.warning("telegram: refused %s from user %s in chat %s", kind, uid, chat.id if chat else None)
        if update.callback_query is not None:
            await ack(update.callback_query, "Not authorised.")
            return
        now = time.monotonic()
        if uid is None or now - self._refused.get(uid, -1e9) < 60:
            return
        if len(self._refused) > 1000:
            self._refused.clear()
        self._refused[uid] = now
        await self.answer(update, REFUSAL)

    async def tell_role(self, update: Update) -> None:
        if update.callback_query is not None:
            await ack(update.callback_query, "Viewers cannot trade.")
            return
        await self.answer(update, VIEWER_ONLY)

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
        """A reply to this message (a report, or a why-now question) is the rationale of ``intent_id``."""
        self.reports[(chat_id, message_id)] = intent_id
        while len(self.reports) > 4 * TRACKED_INTENTS:
            self.reports.popitem(last=False)

    remember_question = remember_report

    def chat_of(self, user: str) -> int | None:
        """Where ``user``'s intent progress goes: their last chat, else (a registered user's intent resumed after
        a restart) their private chat."""
        with contextlib.suppress(ValueError):
            uid = int(user)
            return self.last_chat.get(uid, uid if uid in self.auth.users else None)
        return None

    def broadcast_chats(self) -> list[int]:
        """Each registered user's last chat with the bot (their private chat when none yet), once each."""
        return list(dict.fromkeys(self.last_chat.get(u, u) for u in sorted(self.auth.users)))

    def answered_chat(self, p: Progress) -> int | None:
        """The chat a notice was already answered in (the Telegram user who caused it got the handler's answer)."""
        with contextlib.suppress(ValueError):
            uid = int(p.user)
            if uid in self.auth.users:
                return self.last_chat.get(uid)
        return None

    async def chart(self, intent_id: str) -> bytes | None:
        """The execution's chart (PNG) from the engine, when it can draw one."""
        draw = getattr(self.commands, "chart", None)
        return await draw(intent_id) if draw is not None else None

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
    def _command(update: Update) -> str:
        """``/long@tapeshot_bot btc`` -> ``long``."""
        text = (update.effective_message.text or "") if update.effective_message else ""
        return text.split(maxsplit=1)[0].lstrip("/").split("@", 1)[0].lower() if text else ""

    @staticmethod
    def _user(update: Update) -> str:
        return str(update.effective_user.id)

    async def _ask(self, coro: Awaitable[Any]) -> Any:
        """A command's answer, bounded by ``COMMAND_TIMEOUT_S``."""
        return await asyncio.wait_for(coro, COMMAND_TIMEOUT_S)

    # -- intents: plain text, /long /short /flat, the large-intent confirmation, and the rationale replies

    @authorised("intent", Role.TRADER)
    async def on_text(self, update: Update, context: Ctx) -> None:
        msg = update.effective_message
        report_of = self._report_of(msg)
        if report_of:
            await self._store_rationale(update, report_of, msg.text)
            return
        await self._intent(update, msg.text)

    @authorised("intent", Role.TRADER)
    async def cmd_intent(self, update: Update, context: Ctx) -> None:
        rest = self._rest(update)
        word = INTENT_COMMANDS.get(self._command(update), "long")
        if not rest:
            example = "btc" if word in ("flat", "exit", "close") else "btc 0.5 30s max 8bps"
            await self.answer(update, f"usage: /{word} {example}")
            return
        await self._intent(update, f"{word} {rest}")

    async def _intent(self, update: Update, text: str) -> None:
        msg = update.effective_message
        age = (dt.datetime.now(dt.UTC) - msg.date).total_seconds()
        if age > self.max_age_s:
            await self._refuse_stale(update, age)
            return
        intent = parse(text)                               # a grammar error is shown as it is
        sized = intent.kind in (IntentKind.ENTER, IntentKind.EXIT)
        ask_why = sized and not intent.rationale and not intent.tags
        limit = self.options.confirm_above_usdt
        if intent.kind is IntentKind.ENTER and limit > 0:      # getting out is never held up by a question
            quote = await self._ask(self.commands.quote(text))
            if quote is not None and not quote.verdict and quote.notional >= limit:
                await self._ask_confirm(update, text, quote, ask_why)
                return
        await self._submit(msg.chat_id, msg.message_id, self._user(update), text, ask_why, update)

    async def _submit(self, chat_id: int, message_id: int, user: str, text: str, ask_why: bool,
                      update: Update | None = None) -> None:
        """Submit with the trader's message's key; answer a duplicate once, an instruction's echo directly, an
        intent through its status message."""
        async with self._intent_lock:          # handlers run concurrently; intents keep their order
            sub = await self._ask(self.commands.submit(text, source="telegram", user=user,
                                                       key=self.key_of(chat_id, message_id)))
        if sub.duplicate:                      # delivered again after its intent was submitted: say so, once
            await self.outbox.send(chat_id, fmt_duplicate(sub.intent_id), message_id)
            return
        if not sub.intent_id:                  # tp, sl, cancel, status: the answer is the echo
            await self.outbox.send(chat_id, sub.echo, message_id)
            return
        self.intent_of[(chat_id, message_id)] = sub.intent_id
        while len(self.intent_of) > 2 * TRACKED_INTENTS:
            self.intent_of.popitem(last=False)
        self.outbox.put(("submitted", chat_id, message_id, sub, ask_why))
        await self.remember(self.key_of(chat_id, message_id, "tg-msg"))

    async def _ask_confirm(self, update: Update, text: str, quote: Any, ask_why: bool) -> None:
        msg = update.effective_message
        nonce = secrets.token_hex(6)
        pending = _Pending(text, msg.chat_id, msg.message_id, update.effective_user.id, time.monotonic(), ask_why)
        self._pending[nonce] = pending
        keyboard = InlineKeyboardMarkup([[InlineKeyboardButton("✅ Confirm", callback_data=f"ok:{nonce}"),
                                          InlineKeyboardButton("✖️ Cancel", callback_data=f"no:{nonce}")]])
        question = await self.answer(update, fmt_confirm_question(quote, self.options.confirm_s), keyboard)
        pending.question_id = question.message_id if question is not None else None
        self._loop.call_later(self.options.confirm_s, self._expire, nonce)

    def _expire(self, nonce: str) -> None:
        pending = self._pending.pop(nonce, None)
        if pending is not None and pending.question_id is not None:
            self.outbox.put(("edit", pending.chat_id, pending.question_id,
                             f"⌛ preview expired after {self.options.confirm_s:g} s: nothing was sent"))

    def _report_of(self, msg: Message) -> str | None:
        """The intent whose report or why-now question ``msg`` replies to, if it does: from the messages this bot
        sent, else (sent before a restart) from that message's first line."""
        replied = msg.reply_to_message
        if replied is None:
            return None
        known = self.reports.get((msg.chat_id, replied.message_id))
        if known is not None:
            return known
        text = replied.text or ""
        if replied.from_user is None or replied.from_user.id != self.bot.id:
            return None
        head = REPORT_HEAD.match(text) or WHY_HEAD.match(text)
        return head.group(1) if head else None

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
        if text.strip().lower() != "skip":
            self.outbox.put(("rationale", intent_id, text))
        await self.answer(update, fmt_rationale_noted(intent_id, text))

    @authorised("edited")
    async def on_edited(self, update: Update, context: Ctx) -> None:
        """An edited message is never acted on (a fixed typo must not become a second order): the trader is told,
        and told which intent the message already became, if it became one."""
        msg = update.effective_message
        intent_id = self.intent_of.get((msg.chat_id, msg.message_id))
        if intent_id is None and await self.commands.seen(self.message_key(msg, "tg-msg")):
            intent_id = ""
        await self.answer(update, fmt_edit_refused(intent_id))

    @authorised("other")
    async def on_other(self, update: Update, context: Ctx) -> None:
        await self.answer(update, "I read text only: an intent like 'long btc 0.5 30s max 8bps', or /help.")

    # -- reading (viewers too)

    @authorised("help")
    async def cmd_help(self, update: Update, context: Ctx) -> None:
        await self.answer(update, HELP_TEXT)

    @authorised("unknown")
    async def cmd_unknown(self, update: Update, context: Ctx) -> None:
        await self.answer(update, "Unknown command; /help lists them.")

    @authorised("preview")
    async def cmd_preview(self, update: Update, context: Ctx) -> None:
        text = self._rest(update)
        if not text:
            await self.answer(update, "usage: /preview long btc 0.5 30s max 8bps")
            return
        await self.answer(update, await self._ask(self.commands.preview(text)))

    @authorised("status")
    async def cmd_status(self, update: Update, context: Ctx) -> None:
        status = await self._ask(self.commands.status(self._rest(update) or None))
        health = await self._ask(self.commands.health()) if hasattr(self.commands, "health") else ""
        await self.answer(update, "\n".join(x for x in (status, health) if x))

    @authorised("pos")
    async def cmd_pos(self, update: Update, context: Ctx) -> None:
        await self.answer(update, await self._ask(self.commands.positions()))

    @authorised("orders")
    async def cmd_orders(self, update: Update, context: Ctx) -> None:
        await self.answer(update, await self._ask(self.commands.orders()))

    @authorised("pnl")
    async def cmd_pnl(self, update: Update, context: Ctx) -> None:
        await self.answer(update, await self._ask(self.commands.pnl()))

    @authorised("limits")
    async def cmd_limits(self, update: Update, context: Ctx) -> None:
        await self.answer(update, await self._ask(self.commands.limits()))

    @authorised("report")
    async def cmd_report(self, update: Update, context: Ctx) -> None:
        from engine.telegram.text import fmt_report

        intent_id = self._rest(update).split(maxsplit=1)[0] if self._rest(update) else ""
        if not intent_id:
            await self.answer(update, "usage: /report <intent_id>")
            return
        report = await self._ask(self.commands.report(intent_id))
        if not report:
            await self.answer(update, f"no report for {intent_id} (unknown, or still working)")
            return
        msg = await self.answer(update, fmt_report(report, intent_id))
        if msg is not None:
            self.remember_report(msg.chat_id, msg.message_id, intent_id)

    @authorised("scorecard")
    async def cmd_scorecard(self, update: Update, context: Ctx) -> None:
        score = getattr(self.commands, "scorecard", None)
        if score is None:
            await self.answer(update, "no scorecard here")
            return
        if self._scoring:                     # one at a time: a second request while one runs gets told so
            await self.answer(update, "📊 a scorecard is being computed: it follows shortly")
            return
        self._scoring = True
        try:
            await self.answer(update, "📊 scoring your calls against the market and a random control…")
            text, png = await asyncio.wait_for(score(), SCORECARD_TIMEOUT_S)
        finally:
            self._scoring = False
        msg = await self.answer(update, f"📊 {text}")
        if png is not None and msg is not None:
            await self.outbox.send_photo(msg.chat_id, png, "scorecard: edge by horizon (control beside it) and "
                                         "cumulative PnL split into direction and execution", msg.message_id,
                                         filename="scorecard.png")

    # -- acting (traders)

    @authorised("reduce", Role.TRADER)
    async def cmd_reduce(self, update: Update, context: Ctx) -> None:
        reason = self._rest(update) or "reduce from telegram"
        await self.answer(update, "⚠️ " + await self._ask(self.commands.reduce(reason, user=self._user(update))))

    @authorised("resume", Role.TRADER)
    async def cmd_resume(self, update: Update, context: Ctx) -> None:
        await self.answer(update, "✅ " + await self._ask(self.commands.resume(user=self._user(update))))

    @authorised("why", Role.TRADER)
    async def cmd_why(self, update: Update, context: Ctx) -> None:
        parts = self._rest(update).split(maxsplit=1)
        if len(parts) < 2:
            await self.answer(update, "usage: /why <intent_id> <your reason>  (or reply to the question)")
            return
        await self._store_rationale(update, parts[0], parts[1])

    @authorised("kill", Role.TRADER)
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

    @authorised("button", Role.TRADER)
    async def on_button(self, update: Update, context: Ctx) -> None:
        query = update.callback_query
        action, _, nonce = (query.data or "").partition(":")
        key = f"tg-button:{self.bot.id}:{nonce}"
        if nonce and await self.commands.seen(key):        # a press delivered again: done already, keep its answer
            await ack(query, "already done")
            return
        if action in ("ok", "no"):
            done = await self._confirm_pressed(update, action == "ok", nonce)
        else:
            done = await self._kill_pressed(update, action, nonce)
        if done:
            await self.remember(key)

    async def _confirm_pressed(self, update: Update, confirmed: bool, nonce: str) -> bool:
        query = update.callback_query
        pending = self._pending.get(nonce)
        if pending is None:
            await ack(query, "already answered or expired: nothing more was done")
            return False
        if update.effective_user.id != pending.user_id:
            await ack(query, "only the trader who sent it can confirm it")
            return False
        del self._pending[nonce]
        question = pending.question_id
        if time.monotonic() - pending.asked_at > self.options.confirm_s:
            await ack(query, "expired: send it again")
            if question is not None:
                await self.outbox.edit(pending.chat_id, question, "⌛ preview expired: nothing was sent")
            return True
        if not confirmed:
            await ack(query, "cancelled")
            if question is not None:
                await self.outbox.edit(pending.chat_id, question, "✖️ cancelled: nothing was sent")
            return True
        await ack(query, "sending…")
        if question is not None:
            await self.outbox.edit(pending.chat_id, question, f"✅ confirmed: {pending.text}")
        await self._submit(pending.chat_id, pending.message_id, str(pending.user_id), pending.text, pending.ask_why)
        return True

    async def _kill_pressed(self, update: Update, action: str, nonce: str) -> bool:
        query = update.callback_query
        self._expire_kills()
        request = self._kills.pop(nonce, None)
        msg = query.message
        if request is None or action not in ("kill", "abort"):
            await ack(query, "expired: send /kill again")
            if isinstance(msg, Message):
                await self.outbox.edit(msg.chat_id, msg.message_id, "⛔ kill request expired")
            return False
        if action == "abort":
            await ack(query, "aborted")
            result = "kill aborted; nothing was done"
        else:
            await ack(query, "killing…")
            result = "⛔ " + await self._ask(self.commands.kill(request.reason, user=self._user(update)))
        if isinstance(msg, Message):
            await self.outbox.edit(msg.chat_id, msg.message_id, result)
        return True

    async def on_error(self, update: object, context: Ctx) -> None:
        err = context.error
        log.error("telegram: unhandled %s in the bot", type(err).__name__, exc_info=err)
