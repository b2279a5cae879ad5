"""What the bot says, as pure functions: help, menus, echoes, progress lines, reports and questions.

Everything is in the trader's units (``engine.words``): sizes with their asset, money in USDT, prices on the grid;
never lots, ``None``, a ``Decimal(...)`` or a dict.
"""

from __future__ import annotations

import re
from typing import Any

from engine import words
from engine.commands import Progress, Submitted

MAX_TEXT = 4096
WHY_NOW = "🤔 why now? Reply to this message with your reason (#tags welcome), or 'skip'."
GENERIC_FAILURE = "Sorry, that failed unexpectedly; it is logged. Check /status before retrying."
REFUSAL = "Sorry, this bot only takes instructions from its registered traders."
VIEWER_ONLY = ("👁 Your role is viewer: you can read (/status, /pos, /orders, /pnl, /limits, /report, /scorecard), "
               "not trade.")
REPORT_HEAD = re.compile(r"^🏁 (i[\w-]+) ")   # a report message's first line names its intent
WHY_HEAD = re.compile(r"^🤔 (i[\w-]+): why now\?")   # the why-now question names its intent

HELP_TEXT = """Tapeshot: say where to go, the engine decides when and how.

Enter (side, symbol, size, window 5-60 s, slippage cap):
  long btc 0.5 30s max 8bps
  short eth 5k 1m sniper          (5k / $2500 = USDT notional)
  long btc 0.5 30s why absorption at 70k #absorption
Exit: flat btc · exit btc · close btc 0.2
Levels: tp btc 71250 · sl btc 68900 · tp btc off
Cancel: cancel btc · cancel all
The same as commands: /long btc 0.5 30s · /short eth 5k · /flat btc

A reason goes after why, --, because or why:; #tags are kept apart. Sent without one, I ask "why now?" once.
Large intents show a preview first and go out only on Confirm.

Read:
  /status [sym]   state, books, venue, round trip, working intents
  /pos            positions         /orders   open orders
  /pnl            realised, unrealised at the mark, fees, today
  /limits         risk limits and kill-switch triggers
  /preview <intent>  what it would do now, without doing it
  /report <id>    an execution report again
  /scorecard      your calls against the market and a random control
Act (traders):
  /kill [reason]  cancel everything and halt (asks to confirm)
  /reduce [reason]  only flat and TP/SL go out until /resume
  /resume         allow new orders again
  /why <id> <text>  record why (or reply to the question)"""

COMMAND_MENU = (("long", "enter long: /long btc 0.5 30s"), ("short", "enter short: /short eth 5k 20s"),
                ("flat", "exit a position: /flat btc"), ("status", "state, books, venue, working intents"),
                ("pos", "positions"), ("orders", "open orders"), ("pnl", "realised, unrealised, fees, today"),
                ("limits", "risk limits and kill-switch triggers"), ("preview", "what an intent would do now"),
                ("report", "an intent's execution report"), ("scorecard", "your calls scored against the market"),
                ("why", "record an intent's reason"),
                ("kill", "cancel everything and halt (confirm)"), ("reduce", "only flat and TP/SL until /resume"),
                ("resume", "allow new orders again"), ("help", "the intent grammar"))


def clip(text: str, limit: int = MAX_TEXT) -> str:
    """Telegram refuses texts over 4096 characters: cut with a marker."""
    return text if len(text) <= limit else text[: limit - 2] + " …"


def fmt_error(exc: BaseException) -> str:
    """A TapeshotError as the trader sees it: one short line."""
    return clip(f"⚠️ {exc}", 600)


def fmt_submitted(sub: Submitted) -> str:
    """The accepted echo: id, what was understood, and the mid it found."""
    line = f"✅ {sub.intent_id} accepted: {sub.echo}"
    mid = sub.arrival.get("mid") if sub.arrival else None
    return f"{line}\narrival mid {words.price(mid)}" if mid else line


def fmt_report(report: dict, intent_id: str = "") -> str:
    """An execution report as a chat message: ``engine.words.report_text`` under the 🏁 head the bot recognises."""
    return f"🏁 {words.report_text(report, intent_id)}"


_ICONS = {"accepted": "✅", "fired": "🎯", "fill": "·", "done": "🏁", "markouts": "📈", "error": "⚠️",
          "tp_sl": "🎚", "cancelled": "✖️", "risk": "⛔"}


def fmt_progress(p: Progress, fills: int = 0) -> str:
    """One status line for a Progress event (a fill line counts the fills so far)."""
    icon = _ICONS.get(p.kind, "•")
    if p.kind == "fill":
        return f"{icon} fill {fills}: {p.text}" if fills else f"{icon} fill: {p.text}"
    if p.kind == "markouts":
        return f"{icon} markouts in: see the report"
    if p.kind == "done":
        return f"{icon} {p.data.get('state', 'done') if p.data else 'done'}: see the report"
    return f"{icon} {p.kind}: {p.text}" if p.text else f"{icon} {p.kind}"


_NOTICE_ICONS = {"resume": "✅", "reduce": "⚠️", "kill": "⛔", "reconcile": "🔄", "tape": "⏹", "tp_sl": "🎚"}


def fmt_notice(p: Progress) -> str:
    """An engine-wide event (``intent_id`` ""): the icon follows ``data['event']`` (resume is good news)."""
    icon = _NOTICE_ICONS.get(str((p.data or {}).get("event", "")), _ICONS.get(p.kind, "⛔"))
    return f"{icon} {p.text or p.kind}"


def fmt_duplicate(intent_id: str) -> str:
    """The one short answer to a message that reached the bot again after it had already been acted on."""
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


def fmt_confirm_question(quote: Any, expires_s: float) -> str:
    """The preview of a large intent with its question: Confirm sends it, Cancel or silence does not."""
    return (f"🔎 Large intent ({words.usdt(quote.notional)}): confirm within {expires_s:g} s.\n"
            f"{quote.text()}")


def fmt_why_question(intent_id: str) -> str:
    return f"🤔 {intent_id}: why now? Reply to this message with your reason (#tags welcome), or 'skip'."


def fmt_rationale_noted(intent_id: str, text: str) -> str:
    return f"📝 {'skipped' if text.strip().lower() == 'skip' else 'noted'} for {intent_id}"
