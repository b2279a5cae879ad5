"""The Telegram front end end to end: python-telegram-bot polling the local Bot API stand-in over loopback, driven
the way a trader (and a stranger in the same group) would, against a small in-memory ``Commands``."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import itertools
import logging
import time
from collections.abc import AsyncIterator, Callable
from decimal import Decimal

import aiohttp
import pytest
from telegram.error import InvalidToken, NetworkError

from engine import loop
from engine.commands import Progress, ProgressCallback, Submitted
from engine.errors import RiskRefused
from engine.intents import IntentKind, parse
from engine.keys import Secret
from engine.telegram import start_bot
from engine.telegram.bot import GENERIC_FAILURE, REFUSAL, fmt_report, fmt_submitted
from engine.telegram.standin import StandIn, new_token
from engine.views import Immediate, Quote

TRADER, TRADER2, STRANGER = 1001, 1002, 6666
GROUP = -100555

REPORT = {"symbol": "BTCUSDT", "side": "BUY", "algo": "sniper", "requested": "0.5", "filled": "0.5",
          "complete": True, "avg_price": "70012.30", "arrival_mid": "70003.65", "shortfall_bps": 1.236,
          "fees": "14.00246000", "maker_share": 0.4, "cap": "70059.6", "best_in_window": "70001.0",
          "worst_in_window": "70020.5", "time_to_fill_s": 12.3, "markouts_bps": {}, "orders": ["o1"],
          "fee_note": ""}


class MemCommands:
    """A small real ``Commands``: parses with the one grammar, keeps intents in memory, pushes Progress."""

    def __init__(self) -> None:
        self.submitted: list[tuple[str, str, str]] = []
        self.rationales: list[tuple[str, str, str]] = []
        self.kills: list[tuple[str, str]] = []
        self.resumes: list[str] = []
        self.previews: list[str] = []
        self.reports: dict[str, dict] = {}
        self.users: dict[str, str] = {}
        self.halted = False
        self.fail_preview: Exception | None = None
        self.keys: dict[str, Submitted] = {}          # submit keys (durable in the node)
        self.handled: set[str] = set()                # seen / remember (durable in the node)
        self.remember_calls: list[str] = []
        self.forget_on_remember = False               # as if the process died before each remember
        self._subs: list[ProgressCallback] = []
        self._ids = itertools.count(1)

    async def submit(self, text: str, *, source: str, user: str, key: str | None = None) -> Submitted:
        if key is not None and key in self.keys:
            return dataclasses.replace(self.keys[key], duplicate=True)
        intent = parse(text)
        if self.halted and intent.kind is IntentKind.ENTER:
            raise RiskRefused("halted", "the kill switch is on")
        await asyncio.sleep(0)                        # the node awaits its journal here
        intent_id = f"i-{next(self._ids)}"
        self.submitted.append((text, source, user))
        self.users[intent_id] = user
        self.emit(Progress(intent_id, "accepted", intent.describe(), source, user))
        sub = Submitted(intent_id, intent.describe(), {"mid": "70003.65", "spread_bps": 0.014})
        if key is not None:
            self.keys[key] = sub
        return sub

    async def seen(self, key: str) -> bool:
        return key in self.handled

    async def remember(self, key: str) -> None:
        self.remember_calls.append(key)
        if not self.forget_on_remember:
            self.handled.add(key)

    async def quote(self, text: str) -> Quote | None:
        """The preview as data, at a fixed mid (70,000 USDT): enough for the bot's confirmation threshold."""
        intent = parse(text)
        if intent.kind not in (IntentKind.ENTER, IntentKind.EXIT):
            return None
        mid = Decimal(70000)
        size = intent.qty if intent.qty is not None else (intent.notional or Decimal(0)) / mid
        side = "SELL" if intent.kind is IntentKind.EXIT or intent.side.name == "SELL" else "BUY"
        return Quote(intent.describe(), intent.kind, intent.symbol, side, size, size * mid, intent.window_s,
                     intent.algo, intent.max_slippage_bps, mid, 0.5, Immediate(mid, mid, 1, 5.5, False),
                     "halted" if self.halted else "")

    async def orders(self) -> str:
        return "no open orders"

    async def pnl(self) -> str:
        return "BTCUSDT: +0.5 BTC, unrealised +1.20 USDT"

    async def limits(self) -> str:
        return "BTCUSDT: order ≤ 250,000.00 USDT"

    async def health(self) -> str:
        return "venue: market stream up"

    async def preview(self, text: str) -> str:
        if self.fail_preview is not None:
            raise self.fail_preview
        self.previews.append(text)
        return f"would: {parse(text).describe()}"

    async def status(self, symbol: str | None = None) -> str:
        return f"status {symbol or 'all'}: {'HALTED' if self.halted else 'trading'}"

    async def positions(self) -> str:
        return "BTCUSDT +0.5 @ 70012.30"

    async def kill(self, reason: str, *, user: str) -> str:
        self.kills.append((reason, user))
        self.halted = True
        self.emit(Progress("", "risk", f"kill switch on ({reason})", "", user))
        return "kill switch on: 0 orders cancelled"

    async def resume(self, *, user: str) -> str:
        self.resumes.append(user)
        self.halted = False
        return "trading resumed"

    async def add_rationale(self, intent_id: str, text: str, *, user: str) -> None:
        self.rationales.append((intent_id, text, user))

    async def report(self, intent_id: str) -> dict | None:
        return self.reports.get(intent_id)

    def subscribe(self, callback: ProgressCallback) -> Callable[[], None]:
        self._subs.append(callback)
        return lambda: self._subs.remove(callback)

    def emit(self, p: Progress) -> None:
        """Push to every subscriber, the way the node's hot path would: a callback must not be a coroutine."""
        for cb in list(self._subs):
            assert cb(p) is None

    def progress(self, intent_id: str, kind: str, text: str = "", data: dict | None = None) -> None:
        self.emit(Progress(intent_id, kind, text, "telegram", self.users.get(intent_id, ""), data or {}))


async def wait_for(pred: Callable[[], object], timeout: float = 5.0) -> None:
    end = time.monotonic() + timeout
    while not pred():
        if time.monotonic() > end:
            raise AssertionError(f"timed out waiting for {getattr(pred, '__name__', pred)}")
        await asyncio.sleep(0.01)


def texts(tg: StandIn, chat_id: int) -> list[str]:
    return [m.get("text", "") for m in tg.bot_messages(chat_id)]


def find(tg: StandIn, chat_id: int, needle: str) -> dict | None:
    return next((m for m in reversed(tg.bot_messages(chat_id)) if needle in m.get("text", "")), None)


@contextlib.asynccontextmanager
async def running(users: set[int] | None = None, **kw) -> AsyncIterator[tuple[StandIn, MemCommands]]:
    async with StandIn() as tg, bot(tg, MemCommands(), users, **kw) as cmds:
        yield tg, cmds


@contextlib.asynccontextmanager
async def bot(tg: StandIn, cmds: MemCommands, users: set[int] | None = None, **kw) -> AsyncIterator[MemCommands]:
    """A bot on ``tg`` serving ``cmds`` until the block ends (a second one on the same stand-in and commands is
    the engine restarted on the same journal). Large-intent confirmation is off unless ``kw`` turns it on
    (``tests/integration/test_cockpit_telegram.py`` covers it on the real node)."""
    kw.setdefault("confirm_above_usdt", 0)
    handle = await start_bot(cmds, Secret(tg.token), users or {TRADER}, base_url=tg.base_url, poll_timeout=2.0,
                             **kw)
    try:
        yield cmds
    finally:
        await handle.stop()


async def submit(tg: StandIn, cmds: MemCommands, text: str, chat_id: int = GROUP) -> tuple[str, dict]:
    """The trader sends an intent; returns its id and the bot's status message once the echo is there."""
    before = len(cmds.submitted)
    tg.send_text(TRADER, text, chat_id)
    await wait_for(lambda: len(cmds.submitted) > before)
    intent_id = f"i-{len(cmds.submitted)}"
    await wait_for(lambda: find(tg, chat_id, f"{intent_id} accepted"))
    return intent_id, find(tg, chat_id, f"{intent_id} accepted")


def test_allowed_user_intent_is_submitted_and_echoed() -> None:
    async def go() -> None:
        async with running() as (tg, cmds):
            sent = tg.send_text(TRADER, "long btc 0.5 30s max 8bps", GROUP)
            await wait_for(lambda: find(tg, GROUP, "i-1 accepted"))
            status = find(tg, GROUP, "i-1 accepted")
            assert cmds.submitted == [("long btc 0.5 30s max 8bps", "telegram", str(TRADER))]
            assert "LONG 0.5 BTC of BTCUSDT within 30s, max 8 bps" in status["text"]
            assert "arrival mid 70003.65" in status["text"]
            assert status["reply_to_message"]["message_id"] == sent["message_id"]
            await wait_for(lambda: find(tg, GROUP, "why now?"))
            why = find(tg, GROUP, "why now?")               # sent without a reason: asked once, after the echo
            assert why["text"].startswith("🤔 i-1: why now?") and why["reply_to_message"]["message_id"] == status[
                "message_id"]
            await asyncio.sleep(0.2)
            assert len(tg.bot_messages(GROUP)) == 2, "the accepted Progress and the echo share one message"
            menu = [c["command"] for c in tg.commands]
            assert {"long", "short", "flat", "status", "pos", "orders", "pnl", "limits", "preview", "report", "kill",
                    "resume", "why", "help"} <= set(menu)

    loop.run(go())


def test_stranger_in_the_same_group_is_refused(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="engine.telegram")

    async def go() -> None:
        async with running() as (tg, cmds):
            tg.send_text(STRANGER, "long btc 1 30s -- secret plan", GROUP)
            await wait_for(lambda: find(tg, GROUP, REFUSAL))
            tg.send_text(STRANGER, "/kill now", GROUP)
            tg.send_text(STRANGER, "short eth 5k 1m", GROUP)
            _, _ = await submit(tg, cmds, "long btc 0.1 20s")           # the trader, same group, still served
            tg.send_text(TRADER, "/kill", GROUP)
            await wait_for(lambda: find(tg, GROUP, "Kill switch"))
            ask = find(tg, GROUP, "Kill switch")
            qid = tg.press(STRANGER, ask, ask["reply_markup"]["inline_keyboard"][0][0]["callback_data"])
            await wait_for(lambda: qid in tg.callback_answers)
            assert tg.callback_answers[qid]["text"] == "Not authorised."
            assert cmds.submitted == [("long btc 0.1 20s", "telegram", str(TRADER))]
            assert cmds.kills == []
            assert texts(tg, GROUP).count(REFUSAL) == 1, "one polite reply, not one per message"

    loop.run(go())
    refusals = [r for r in caplog.records if "refused" in r.getMessage()]
    assert len(refusals) == 4 and all(r.levelno == logging.WARNING for r in refusals)
    assert all(str(STRANGER) in r.getMessage() for r in refusals)
    assert not any("secret plan" in r.getMessage() or "eth" in r.getMessage() for r in caplog.records)


def test_progress_report_and_rationale_capture() -> None:
    async def go() -> None:
        async with running() as (tg, cmds):
            intent_id, status = await submit(tg, cmds, "long btc 0.5 30s max 8bps")
            cmds.progress(intent_id, "fired", "sniper fired: buy 0.5 @ 70010.0 IOC")
            await wait_for(lambda: "🎯 fired" in tg.messages[(GROUP, status["message_id"])]["text"])
            cmds.progress(intent_id, "fill", "0.5 @ 70012.30 (taker)")
            cmds.progress(intent_id, "done", "filled 0.5", REPORT)
            await wait_for(lambda: find(tg, GROUP, f"🏁 {intent_id} "))
            report = find(tg, GROUP, f"🏁 {intent_id} ")
            for part in ("🏁 i-1 DONE BUY BTCUSDT with sniper", "filled 0.5 BTC of 0.5 BTC at 70012.30 avg",
                         "shortfall +1.24 bps vs the arrival mid 70003.65 (fees in", "fees 14.00 USDT",
                         "window best 70001.0, worst 70020.5", "+30s pending"):
                assert part in report["text"], part
            assert "14.00246" not in report["text"] and "None" not in report["text"]
            assert report["reply_to_message"]["message_id"] == status["message_id"]
            assert "🏁 done" in tg.messages[(GROUP, status["message_id"])]["text"]

            tg.send_text(TRADER, "reclaiming VWAP after the flush", GROUP, reply_to=report)
            await wait_for(lambda: cmds.rationales)
            assert cmds.rationales == [(intent_id, "reclaiming VWAP after the flush", str(TRADER))]
            await wait_for(lambda: "why: reclaiming VWAP" in tg.messages[(GROUP, report["message_id"])]["text"])
            assert len(cmds.submitted) == 1, "a reply to a report is a rationale, not an intent"

            marked = dict(REPORT, markouts_bps={"+1s": 0.8, "+5s": -1.2, "+30s": 2.5})
            cmds.progress(intent_id, "markouts", "markouts in", marked)
            await wait_for(lambda: "+30s +2.50 bps" in tg.messages[(GROUP, report["message_id"])]["text"])
            assert "why: reclaiming VWAP" in tg.messages[(GROUP, report["message_id"])]["text"]

            tg.send_text(TRADER, f"/why {intent_id} also funding flipped", GROUP)
            await wait_for(lambda: len(cmds.rationales) == 2)
            assert cmds.rationales[1] == (intent_id, "also funding flipped", str(TRADER))

            cmds.reports[intent_id] = marked
            tg.send_text(TRADER, f"/report {intent_id}", GROUP)
            await wait_for(lambda: len([t for t in texts(tg, GROUP) if "+30s +2.50 bps" in t]) == 2)

            why = find(tg, GROUP, "why now?")                # the question asked at submission takes a reply too
            tg.send_text(TRADER, "skip", GROUP, reply_to=why)
            await wait_for(lambda: len(cmds.rationales) == 3)
            assert cmds.rationales[2] == (intent_id, "skip", str(TRADER))
            await wait_for(lambda: find(tg, GROUP, f"skipped for {intent_id}"))

    loop.run(go())


def test_kill_needs_the_confirm_button() -> None:
    async def go() -> None:
        async with running({TRADER, TRADER2}) as (tg, cmds):
            tg.send_text(TRADER2, "/status", TRADER2)                 # TRADER2 last wrote in private
            await wait_for(lambda: find(tg, TRADER2, "status all"))
            tg.send_text(TRADER, "/kill tape too fast", GROUP)
            await wait_for(lambda: find(tg, GROUP, "Kill switch"))
            ask = find(tg, GROUP, "Kill switch")
            abort_data = ask["reply_markup"]["inline_keyboard"][0][1]["callback_data"]
            await asyncio.sleep(0.2)
            assert cmds.kills == [], "nothing happens before the button"

            tg.press(TRADER, ask, abort_data)
            await wait_for(lambda: "aborted" in tg.messages[(GROUP, ask["message_id"])]["text"])
            assert cmds.kills == [] and "reply_markup" not in tg.messages[(GROUP, ask["message_id"])]

            tg.send_text(TRADER, "/kill tape too fast", GROUP)
            await wait_for(lambda: len([t for t in texts(tg, GROUP) if "Kill switch" in t]) == 1)
            ask = find(tg, GROUP, "Kill switch")
            tg.press(TRADER, ask, ask["reply_markup"]["inline_keyboard"][0][0]["callback_data"])
            await wait_for(lambda: cmds.kills)
            assert cmds.kills == [("tape too fast", str(TRADER))]
            await wait_for(lambda: "0 orders cancelled" in tg.messages[(GROUP, ask["message_id"])]["text"])
            # the risk event reaches every allowed user's last chat
            await wait_for(lambda: find(tg, GROUP, "⛔ kill switch on") and find(tg, TRADER2, "⛔ kill switch on"))

            tg.send_text(TRADER, "long btc 0.5 30s", GROUP)
            await wait_for(lambda: find(tg, GROUP, "risk refused (halted)"))
            tg.send_text(TRADER, "/resume", GROUP)
            await wait_for(lambda: cmds.resumes == [str(TRADER)])

    loop.run(go())


def test_errors_are_short_and_never_tracebacks(caplog: pytest.LogCaptureFixture) -> None:
    async def go() -> None:
        async with running() as (tg, cmds):
            tg.send_text(TRADER, "long btc", GROUP)
            await wait_for(lambda: find(tg, GROUP, "how much BTCUSDT?"))
            assert find(tg, GROUP, "how much")["text"].startswith("⚠️ how much BTCUSDT? give a base size")
            tg.send_text(TRADER, "/preview long btc 0.5 30s", GROUP)
            await wait_for(lambda: find(tg, GROUP, "would: LONG 0.5 BTC of BTCUSDT"))
            cmds.fail_preview = RuntimeError("internal detail")
            tg.send_text(TRADER, "/preview long btc 0.5 30s", GROUP)
            await wait_for(lambda: find(tg, GROUP, GENERIC_FAILURE))
            assert not any("Traceback" in t or "internal detail" in t for t in texts(tg, GROUP))
            tg.send_text(TRADER, "/pos", TRADER)
            await wait_for(lambda: find(tg, TRADER, "BTCUSDT +0.5"))
            tg.send_text(TRADER, "/status btc", TRADER)
            await wait_for(lambda: find(tg, TRADER, "status btc"))
            tg.send_text(TRADER, "/help", TRADER)
            await wait_for(lambda: find(tg, TRADER, "long btc 0.5 30s max 8bps"))
            tg.send_text(TRADER, "/frobnicate", TRADER)
            await wait_for(lambda: find(tg, TRADER, "Unknown command"))

    caplog.set_level(logging.ERROR, logger="engine.telegram")
    loop.run(go())
    assert any(r.exc_info for r in caplog.records), "the unexpected error is logged with its traceback"


def test_edited_and_stale_messages_are_not_acted_on() -> None:
    async def go() -> None:
        async with running() as (tg, cmds):
            msg = tg.send_text(TRADER, "long btc 0.5 30s", GROUP)
            await wait_for(lambda: find(tg, GROUP, "i-1 accepted"))
            tg.edit_text(msg, "long btc 5 30s")
            await wait_for(lambda: find(tg, GROUP, "edit not acted on: this message became i-1"))
            typo = tg.send_text(TRADER, "lng btc 0.5 30s", GROUP)
            await wait_for(lambda: find(tg, GROUP, "unknown action"))
            tg.edit_text(typo, "long btc 0.5 30s")
            await wait_for(lambda: find(tg, GROUP, "edits are not acted on: send the corrected intent"))
            tg.send_text(TRADER, "short btc 1 30s", GROUP, date=int(time.time()) - 600)
            await wait_for(lambda: find(tg, GROUP, "not acted on: this was sent"))
            await asyncio.sleep(0.2)
            assert cmds.submitted == [("long btc 0.5 30s", "telegram", str(TRADER))]
            assert find(tg, GROUP, "edit not acted on")["reply_to_message"]["message_id"] == msg["message_id"]

    loop.run(go())


def test_a_redelivered_update_is_handled_once() -> None:
    async def go() -> None:
        async with running() as (tg, cmds):
            tg.send_text(TRADER, "long btc 0.5 30s", GROUP)
            first = tg.last_update_id
            await wait_for(lambda: find(tg, GROUP, "i-1 accepted"))
            await wait_for(lambda: any(k.endswith(f":{first}") for k in cmds.handled))
            tg.redeliver(first)                                  # after it was handled: stopped at the gate
            await wait_for(lambda: tg.pending_updates == 0)
            tg.send_text(TRADER, "/status", GROUP)               # the next update is served as usual
            await wait_for(lambda: find(tg, GROUP, "status all") and find(tg, GROUP, "why now?"))
            assert cmds.submitted == [("long btc 0.5 30s", "telegram", str(TRADER))]
            assert len(tg.bot_messages(GROUP)) == 3, "the echo, the why-now question and the status"

            tg.send_text(TRADER, "short eth 5k 1m", GROUP)      # twice before it was handled: the key holds
            tg.redeliver(tg.last_update_id)
            await wait_for(lambda: find(tg, GROUP, "already received as i-2"))
            await asyncio.sleep(0.2)
            assert [t for t, _, _ in cmds.submitted] == ["long btc 0.5 30s", "short eth 5k 1m"]
            assert len([t for t in texts(tg, GROUP) if "i-2" in t and "why now?" not in t]) == 2, \
                "the status and one short note"

    loop.run(go())


def test_a_redelivery_after_a_restart_does_nothing_new() -> None:
    async def go() -> None:
        async with StandIn() as tg:
            cmds = MemCommands()
            async with bot(tg, cmds):
                tg.send_text(TRADER, "long btc 0.5 30s", GROUP)
                handled = tg.last_update_id
                await wait_for(lambda: find(tg, GROUP, "i-1 accepted"))
                cmds.forget_on_remember = True                  # died after submitting, before remembering
                tg.send_text(TRADER, "short eth 5k 1m", GROUP)
                cut_short = tg.last_update_id
                await wait_for(lambda: find(tg, GROUP, "i-2 accepted"))
                await wait_for(lambda: any(k.endswith(f":{cut_short}") for k in cmds.remember_calls))
            cmds.forget_on_remember = False
            async with bot(tg, cmds):                          # the engine restarted on the same journal
                tg.redeliver(handled)
                tg.redeliver(cut_short)
                await wait_for(lambda: find(tg, GROUP, "already received as i-2"))
                await asyncio.sleep(0.2)
            assert [t for t, _, _ in cmds.submitted] == ["long btc 0.5 30s", "short eth 5k 1m"]
            assert not find(tg, GROUP, "already received as i-1"), "the handled update stopped at the gate"

    loop.run(go())


def test_a_late_redelivery_of_a_message_acted_on_says_so() -> None:
    async def go() -> None:
        async with StandIn() as tg:
            cmds = MemCommands()
            async with bot(tg, cmds):
                tg.send_text(TRADER, "tp btc 71250", GROUP)
                update_id = tg.last_update_id
                await wait_for(lambda: f"tg-update:{tg.bot_user['id']}:{update_id}" in cmds.handled)
            cmds.handled.discard(f"tg-update:{tg.bot_user['id']}:{update_id}")   # died before remembering it
            await asyncio.sleep(1.1)
            async with bot(tg, cmds, max_age_s=0.5):                   # back, but later than the age limit
                tg.redeliver(update_id)
                await wait_for(lambda: find(tg, GROUP, "already received before"))
                tg.send_text(TRADER, "long btc 0.5 30s", GROUP, date=int(time.time()) - 5)
                await wait_for(lambda: find(tg, GROUP, "not acted on: this was sent"))
            assert [t for t, _, _ in cmds.submitted] == ["tp btc 71250"]

    loop.run(go())


def test_kill_presses_and_rationale_replies_count_once() -> None:
    async def go() -> None:
        async with StandIn() as tg:
            cmds = MemCommands()
            async with bot(tg, cmds):
                intent_id, _ = await submit(tg, cmds, "long btc 0.5 30s")
                cmds.progress(intent_id, "done", "filled 0.5", REPORT)
                await wait_for(lambda: find(tg, GROUP, f"🏁 {intent_id} "))
                report = find(tg, GROUP, f"🏁 {intent_id} ")
                tg.send_text(TRADER, "/kill too fast", GROUP)
                await wait_for(lambda: find(tg, GROUP, "Kill switch"))
                ask = find(tg, GROUP, "Kill switch")
                tg.press(TRADER, ask, ask["reply_markup"]["inline_keyboard"][0][0]["callback_data"])
                pressed = tg.last_update_id
                await wait_for(lambda: "0 orders cancelled" in tg.messages[(GROUP, ask["message_id"])]["text"])
                tg.send_text(TRADER, "tape one-sided", GROUP, reply_to=report)
                why = tg.last_update_id
                await wait_for(lambda: find(tg, GROUP, "noted for"))
                await wait_for(lambda: f"tg-update:{tg.bot_user['id']}:{why}" in cmds.handled)
            for update_id in (pressed, why):      # as if it died after acting on them, before remembering them
                cmds.handled.discard(f"tg-update:{tg.bot_user['id']}:{update_id}")
            async with bot(tg, cmds):
                tg.redeliver(pressed)
                tg.redeliver(why)
                await wait_for(lambda: find(tg, GROUP, "already noted for"))
                tg.send_text(TRADER, "funding flipped", GROUP, reply_to=report)    # a report of the last run
                await wait_for(lambda: len(cmds.rationales) == 2)
                await asyncio.sleep(0.3)
            assert cmds.kills == [("too fast", str(TRADER))]
            assert "0 orders cancelled" in tg.messages[(GROUP, ask["message_id"])]["text"], "not 'expired'"
            assert cmds.rationales == [(intent_id, "tape one-sided", str(TRADER)),
                                       (intent_id, "funding flipped", str(TRADER))]
            assert len(cmds.submitted) == 1, "replies to reports are never intents"

    loop.run(go())


def test_engine_wide_events_and_resumed_intents_find_their_chat() -> None:
    async def go() -> None:
        async with running({TRADER, TRADER2}) as (tg, cmds):
            tg.chat(TRADER)                 # both pressed Start before the restart; neither has written since
            tg.chat(TRADER2)
            cmds.emit(Progress("i-7", "accepted", "resumed after a restart: 0.2 left", "telegram", str(TRADER)))
            cmds.emit(Progress("i-8", "accepted", "from the console", "console", str(TRADER)))
            cmds.emit(Progress("", "tp_sl", "TP BTCUSDT filled 0.5 at 71250"))
            await wait_for(lambda: find(tg, TRADER, "i-7 accepted: resumed after a restart"))
            await wait_for(lambda: find(tg, TRADER, "🎚 TP BTCUSDT filled") and find(tg, TRADER2, "🎚 TP BTCUSDT"))
            await asyncio.sleep(0.2)
            assert not find(tg, TRADER, "i-8"), "progress of intents sent elsewhere stays there"

    loop.run(go())


def test_a_burst_of_fills_is_coalesced() -> None:
    async def go() -> None:
        async with running() as (tg, cmds):
            intent_id, status = await submit(tg, cmds, "long btc 5 30s ladder")
            calls_before = tg.count("sendMessage", "editMessageText")
            t0 = time.perf_counter()
            for i in range(50):
                cmds.progress(intent_id, "fill", f"0.1 @ {70000 + i}.0 (maker)")
            emit_s = time.perf_counter() - t0
            await wait_for(lambda: "fill 50: 0.1 @ 70049.0" in tg.messages[(GROUP, status["message_id"])]["text"])
            await asyncio.sleep(0.7)
            calls = tg.count("sendMessage", "editMessageText") - calls_before
            assert calls <= 3, f"{calls} Bot API calls for 50 fills"
            assert emit_s < 0.05, f"50 progress callbacks took {emit_s * 1e3:.1f} ms: they must only queue"

    loop.run(go())


@pytest.mark.filterwarnings("ignore::telegram.warnings.PTBDeprecationWarning")  # raised inside RetryAfter itself
def test_flood_control_is_waited_out() -> None:
    async def go() -> None:
        async with running() as (tg, cmds):
            tg.flood_next = 1
            t0 = time.monotonic()
            await submit(tg, cmds, "flat btc")
            assert time.monotonic() - t0 >= 1.0, "the bot waited retry_after before sending again"
            assert tg.count("sendMessage") == 2 and tg.flood_next == 0

    loop.run(go())


class _Capture(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(logging.Formatter("%(name)s %(message)s").format(record))


def test_the_token_never_reaches_a_log_record_or_an_error() -> None:
    capture, root = _Capture(), logging.getLogger()
    old_level = root.level
    root.addHandler(capture)
    root.setLevel(logging.DEBUG)
    leaks: list[str] = []

    async def go() -> None:
        async with StandIn() as tg:
            cmds = MemCommands()
            handle = await start_bot(cmds, Secret(tg.token), {TRADER}, base_url=tg.base_url, poll_timeout=1.0)
            leaks.extend(what for what, s in (("handle", repr(handle)), ("bot", repr(handle.app.bot)),
                                              ("base_url", handle.app.bot.base_url)) if tg.token in s)
            tg.send_text(TRADER, "long btc 0.5 30s", TRADER)
            tg.send_text(STRANGER, "hello", GROUP)
            await wait_for(lambda: find(tg, TRADER, "accepted") and find(tg, GROUP, REFUSAL))
            await handle.stop()
            refused = new_token()
            tries = [(refused, tg.base_url),                       # the server refuses the token
                     (tg.token, f"{tg.url}/nowhere/bot"),          # 404 everywhere
                     (tg.token, "http://127.0.0.1:9/bot")]         # nothing listens
            errors = [await _start_error(cmds, token, url) for token, url in tries]
            assert isinstance(errors[0], InvalidToken) and isinstance(errors[2], NetworkError)
            for (token, _), e in zip(tries, errors, strict=True):
                text = f"{e!s} {e!r} {e.__cause__!s} {e.__context__!s}"
                leaks.extend(type(e).__name__ for _ in range(text.count(token)))
            leaks.extend(line.split()[0] for line in capture.lines if tg.token in line or refused in line)
            assert any("getUpdates" in line for line in capture.lines), "the http log was captured"

    try:
        loop.run(go())
    finally:
        root.removeHandler(capture)
        root.setLevel(old_level)
    assert not leaks, f"the token leaked into {leaks}"   # logger / exception names only


async def _start_error(cmds: MemCommands, token: str, base_url: str) -> BaseException:
    with pytest.raises((InvalidToken, NetworkError)) as info:
        await start_bot(cmds, Secret(token), {TRADER}, base_url=base_url, poll_timeout=1.0)
    return info.value


def test_formatting_is_pure() -> None:
    text = fmt_report(dict(REPORT, complete=False, filled="0.3", shortfall_bps=None), "i-9")
    assert text.splitlines()[0] == "🏁 i-9 PARTIAL BUY BTCUSDT with sniper"
    assert "filled 0.3 BTC of 0.5 BTC" in text and "shortfall n/a vs the arrival mid" in text
    assert fmt_submitted(Submitted("i-2", "EXIT all BTCUSDT", {})) == "✅ i-2 accepted: EXIT all BTCUSDT"


def test_standin_speaks_the_bot_api() -> None:
    async def go() -> None:
        async with StandIn() as tg, aiohttp.ClientSession() as http:
            api = f"{tg.base_url}{tg.token}"

            async def call(method: str, base: str = api, **params) -> tuple[int, dict]:
                async with http.post(f"{base}/{method}", json=params) as r:
                    return r.status, await r.json()

            assert await call("getMe", base=f"{tg.base_url}1:wrong") == (
                401, {"ok": False, "error_code": 401, "description": "Unauthorized"})
            assert (await call("noSuchMethod"))[0] == 404
            status, body = await call("sendMessage", chat_id=GROUP, text="hi")
            assert (status, body["description"]) == (400, "Bad Request: chat not found")
            tg.send_text(TRADER, "/start")
            status, body = await call("getUpdates", offset=0, timeout=1)
            update = body["result"][0]
            assert update["message"]["entities"] == [{"type": "bot_command", "offset": 0, "length": 6}]
            assert update["message"]["from"]["id"] == TRADER and update["message"]["chat"]["type"] == "private"
            _, body = await call("getUpdates", offset=update["update_id"] + 1, timeout=0)
            assert body == {"ok": True, "result": []}
            status, body = await call("sendMessage", chat_id=TRADER, text="hello",
                                      reply_parameters={"message_id": update["message"]["message_id"]})
            assert status == 200 and body["result"]["reply_to_message"]["text"] == "/start"
            mid = body["result"]["message_id"]
            status, body = await call("editMessageText", chat_id=TRADER, message_id=mid, text="hello")
            assert status == 400 and "message is not modified" in body["description"]
            poll = asyncio.create_task(call("getUpdates", timeout=5))
            await asyncio.sleep(0.1)
            second = asyncio.create_task(call("getUpdates", timeout=0))
            assert (await poll)[0] == 409 and (await second)[0] == 200

    loop.run(go())


def test_the_real_node_traded_from_telegram(tmp_path):
    """The node itself behind the bot: an intent typed in Telegram trades on the sim venue, the report comes
    back, and the trader's reply lands in the decision journal."""
    from engine.config import Config, EngineConfig, VenueConfig
    from engine.node import Node
    from engine.oms.journal import Journal

    async def main():
        node = Node(Config(venue=VenueConfig(speed=8), engine=EngineConfig(home=str(tmp_path))))
        await node.start()
        try:
            async with StandIn(new_token()) as standin:
                handle = await start_bot(node, Secret(standin.token), {TRADER}, standin.base_url, poll_timeout=0.5,
                                         confirm_above_usdt=0)
                try:
                    standin.send_text(TRADER, "long btc 0.2 10s max 8bps")
                    report = None
                    for _ in range(300):
                        report = next((m for m in standin.bot_messages(TRADER)
                                       if m.get("text", "").startswith("🏁 i")), None)
                        if report is not None:
                            break
                        await asyncio.sleep(0.05)
                    assert report is not None, [m.get("text") for m in standin.bot_messages(TRADER)]
                    assert "0.200" in report["text"]
                    standin.send_text(TRADER, "spoof pulled on the offer", reply_to=report)
                    iid = next(iter(node.intents))
                    for _ in range(100):
                        rows = Journal(node.paths()[0]).query(
                            "SELECT data FROM decisions WHERE intent_id=? AND kind='rationale'", (iid,))
                        if rows:
                            break
                        await asyncio.sleep(0.05)
                    assert rows and "spoof pulled" in rows[0]["data"]
                    assert node.oms.positions.get("BTCUSDT").qty == __import__("decimal").Decimal("0.2"), report["text"]
                finally:
                    await handle.stop()
        finally:
            await node.stop()

    loop.run(main())
