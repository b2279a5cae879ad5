"""The trader's cockpit in Telegram, on the real node: the real python-telegram-bot polling the local Bot API
stand-in, the engine trading on its embedded sim venue. Roles, strangers, the large-intent preview (confirm,
cancel, expiry, a second press), every command, the why-now question, and the trader's units everywhere."""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections.abc import AsyncIterator
from decimal import Decimal
from pathlib import Path

import orjson

from engine.config import Config, EngineConfig, VenueConfig
from engine.keys import Secret
from engine.loop import run
from engine.metrics import TELEGRAM
from engine.node import Node
from engine.telegram import start_bot
from engine.telegram.standin import StandIn
from engine.telegram.text import REFUSAL, VIEWER_ONLY
from tests.integration.conftest import wait_for

TRADER, VIEWER, STRANGER = 1001, 1002, 6666
USERS = {TRADER: "trader", VIEWER: "viewer"}
PYTHON_INSIDES = re.compile(r"None|Decimal\(|\{'|\[\(|\d\.\d{6,} USDT|lots\b")


def texts(tg: StandIn, chat: int) -> list[str]:
    return [m["text"] for m in tg.bot_messages(chat) if "text" in m]


def find(tg: StandIn, chat: int, needle: str) -> dict | None:
    return next((m for m in reversed(tg.bot_messages(chat)) if needle in m.get("text", "")), None)


async def answer(tg: StandIn, chat: int, needle: str, timeout: float = 30.0) -> dict:
    await wait_for(lambda: find(tg, chat, needle), timeout)
    return find(tg, chat, needle)


def rationales(node: Node, intent_id: str) -> list[dict]:
    rows = node.journal.query("SELECT data FROM decisions WHERE intent_id=? AND kind='rationale'", (intent_id,))
    return [orjson.loads(r["data"]) for r in rows]


@contextlib.asynccontextmanager
async def cockpit(tmp_path: Path, **kw) -> AsyncIterator[tuple[Node, StandIn]]:
    """The node on its embedded sim (bundled tape, 8x) with the bot on a stand-in: a trader and a viewer."""
    node = Node(Config(venue=VenueConfig(speed=8), engine=EngineConfig(home=str(tmp_path))))
    await node.start()
    try:
        async with StandIn() as tg:
            handle = await start_bot(node, Secret(tg.token), USERS, tg.base_url, poll_timeout=0.5, **kw)
            try:
                yield node, tg
            finally:
                await handle.stop()
    finally:
        await node.stop()


def btc_mid(node: Node) -> Decimal:
    sf = node.feed["BTCUSDT"]
    return Decimal(repr(sf.book.mid)) * sf.instrument.tick_size


def test_roles_viewers_read_strangers_get_nothing(tmp_path: Path) -> None:
    async def main() -> None:
        async with cockpit(tmp_path) as (node, tg):
            before = dict(TELEGRAM)
            for cmd in ("/status", "/pos", "/orders", "/pnl", "/limits", "/help"):
                tg.send_text(VIEWER, cmd)
            await wait_for(lambda: len(texts(tg, VIEWER)) >= 6)
            assert any("book synced" in t and "order round trip" in t for t in texts(tg, VIEWER))
            tg.send_text(VIEWER, "long btc 0.01 10s")
            tg.send_text(VIEWER, "/kill now")
            tg.send_text(VIEWER, "/long btc 0.01")
            await wait_for(lambda: texts(tg, VIEWER).count(VIEWER_ONLY) == 3)
            for cmd in ("/status", "/pnl", "long btc 0.01 10s", "/kill"):
                tg.send_text(STRANGER, cmd)
            await wait_for(lambda: TELEGRAM.get(("kill", "stranger"), 0) > before.get(("kill", "stranger"), 0))
            await asyncio.sleep(0.3)
            assert texts(tg, STRANGER) == [REFUSAL], "one polite refusal, nothing about the account"
            assert not node.intents and not node.journal.query("SELECT id FROM intents")
            assert TELEGRAM[("status", "ok")] - before.get(("status", "ok"), 0) == 1
            assert TELEGRAM[("intent", "forbidden")] - before.get(("intent", "forbidden"), 0) == 2
            assert TELEGRAM[("intent", "stranger")] - before.get(("intent", "stranger"), 0) == 1

    run(main())


def test_a_large_intent_waits_for_confirm_and_goes_out_once(tmp_path: Path) -> None:
    async def main() -> None:
        async with cockpit(tmp_path, confirm_above_usdt=1000) as (node, tg):
            tg.send_text(TRADER, "long btc 0.05 10s max 8bps -- bids absorbing #absorption")
            ask = await answer(tg, TRADER, "Large intent")
            text = ask["text"]
            for part in ("0.050 BTC", "USDT", "window 10 s", "cap 8 bps", "mid ", "spread ", "immediate fill now",
                         "taker fee", "risk: ✅ would be accepted"):
                assert part in text, (part, text)
            assert not node.intents, "nothing goes out before the Confirm"
            buttons = ask["reply_markup"]["inline_keyboard"][0]
            assert [b["text"] for b in buttons] == ["✅ Confirm", "✖️ Cancel"]
            tg.press(VIEWER, ask, buttons[0]["callback_data"])           # a viewer's press does nothing
            q_other = tg.press(STRANGER, ask, buttons[0]["callback_data"])
            await wait_for(lambda: q_other in tg.callback_answers)
            assert not node.intents
            tg.press(TRADER, ask, buttons[0]["callback_data"])
            q_again = tg.press(TRADER, ask, buttons[0]["callback_data"])  # a double press
            await wait_for(lambda: q_again in tg.callback_answers)
            report = await answer(tg, TRADER, "🏁 i")
            assert "filled 0.050 BTC of 0.050 BTC" in report["text"]
            assert len(node.intents) == 1
            assert "already answered" in tg.callback_answers[q_again]["text"]
            assert tg.messages[(TRADER, ask["message_id"])]["text"].startswith("✅ confirmed")
            assert node.oms.positions.get("BTCUSDT").qty == Decimal("0.05")
            assert find(tg, TRADER, "why now?") is None, "a reason was given inline: no question"
            iid = next(iter(node.intents))
            row = orjson.loads(node.journal.query("SELECT data FROM intents WHERE id=?", (iid,))[0]["data"])
            assert row.get("tags") == ["absorption"]

            tg.send_text(TRADER, "short btc 0.05 10s")                    # Cancel sends nothing
            ask2 = await answer(tg, TRADER, "Large intent")
            assert ask2["message_id"] != ask["message_id"]
            tg.press(TRADER, ask2, ask2["reply_markup"]["inline_keyboard"][0][1]["callback_data"])
            await wait_for(lambda: "cancelled: nothing was sent" in tg.messages[(TRADER, ask2["message_id"])]["text"])
            await asyncio.sleep(0.3)
            assert len(node.intents) == 1

    run(main())


def test_a_preview_expires_and_a_late_press_does_nothing(tmp_path: Path) -> None:
    async def main() -> None:
        async with cockpit(tmp_path, confirm_above_usdt=1000, confirm_s=1.0) as (node, tg):
            tg.send_text(TRADER, "/long btc 0.05 10s")
            ask = await answer(tg, TRADER, "Large intent")
            confirm = ask["reply_markup"]["inline_keyboard"][0][0]["callback_data"]
            await wait_for(lambda: "expired" in tg.messages[(TRADER, ask["message_id"])]["text"], 10)
            assert "reply_markup" not in tg.messages[(TRADER, ask["message_id"])], "the buttons are gone"
            try:                                                          # a client that still shows them
                tg.messages[(TRADER, ask["message_id"])]["reply_markup"] = ask_markup(confirm)
                q = tg.press(TRADER, tg.messages[(TRADER, ask["message_id"])], confirm)
            finally:
                tg.messages[(TRADER, ask["message_id"])].pop("reply_markup", None)
            await wait_for(lambda: q in tg.callback_answers)
            assert "expired" in tg.callback_answers[q]["text"]
            await asyncio.sleep(0.3)
            assert not node.intents and node.oms.positions.get("BTCUSDT").qty == 0

            tg.send_text(TRADER, "long btc 0.005 10s")                    # small: straight out, no preview
            await answer(tg, TRADER, "accepted")
            assert len(node.intents) == 1

    run(main())


def ask_markup(data: str) -> dict:
    return {"inline_keyboard": [[{"text": "✅ Confirm", "callback_data": data}]]}


def test_commands_intents_why_now_and_units(tmp_path: Path) -> None:
    async def main() -> None:
        async with cockpit(tmp_path) as (node, tg):
            assert {"long", "short", "flat", "orders", "pnl", "limits", "status"} <= {c["command"]
                                                                                     for c in tg.commands}
            tg.send_text(TRADER, "/long btc 0.02 10s")
            why = await answer(tg, TRADER, "why now?")
            iid = re.match(r"🤔 (i[\w-]+):", why["text"]).group(1)
            tg.send_text(TRADER, "offers pulled above #spoof", reply_to=why)
            await answer(tg, TRADER, f"noted for {iid}")
            report = await answer(tg, TRADER, f"🏁 {iid}")
            await wait_for(lambda: tg.photos(TRADER), 60)                  # the chart, once the markouts are in
            (photo,) = tg.photos(TRADER)
            png = tg.photo_bytes(photo)
            assert png[:8] == b"\x89PNG\r\n\x1a\n" and 10_000 < len(png) < 1_000_000
            assert photo["caption"].startswith(iid) and photo["reply_to_message"]["message_id"] == report["message_id"]
            (r,) = rationales(node, iid)
            assert r["text"] == "offers pulled above" and r["tags"] == ["spoof"] and r["when"] == "before_outcome"
            tg.send_text(TRADER, "/scorecard")                              # the calls against a random control
            card = await answer(tg, TRADER, "📊 Scorecard: 1 entry scored", 60)
            assert "spoof" in card["text"] and "random" in card["text"] and "Verdict: too few" in card["text"]
            await wait_for(lambda: len(tg.photos(TRADER)) == 2, 60)
            sc = tg.photos(TRADER)[1]
            assert sc["caption"].startswith("scorecard") and sc["reply_to_message"]["message_id"] == card["message_id"]
            assert tg.photo_bytes(sc)[:8] == b"\x89PNG\r\n\x1a\n"

            tg.send_text(TRADER, "/pnl")
            pnl = await answer(tg, TRADER, "unrealised")
            assert all(part in pnl["text"] for part in ("0.020 BTC", "realised", "fees", "today", "USDT")), pnl["text"]
            tg.send_text(TRADER, "/orders")
            await answer(tg, TRADER, "no open orders")
            tg.send_text(TRADER, "/limits")
            limits = await answer(tg, TRADER, "kill switch trips on")
            assert "BTCUSDT: order ≤" in limits["text"]
            tg.send_text(TRADER, "/status btc")
            status = await answer(tg, TRADER, "order round trip p99")
            assert "market stream up" in status["text"] and "book synced" in status["text"]
            assert "ETHUSDT" not in status["text"], "status btc: that symbol only"

            tg.send_text(TRADER, "/flat btc")
            await wait_for(lambda: node.oms.positions.get("BTCUSDT").qty == 0)
            tg.send_text(TRADER, "long btc 0.5 30s twap")                # a grammar error names the word
            err = await answer(tg, TRADER, "twap")
            assert err["text"].startswith("⚠️")
            tg.send_text(TRADER, "/report i-nope")
            await answer(tg, TRADER, "no report for i-nope")
            await asyncio.sleep(0.5)
            for t in texts(tg, TRADER):
                assert not PYTHON_INSIDES.search(t), t

    run(main())


def test_kill_and_resume_answer_once_and_a_halted_engine_refuses(tmp_path: Path) -> None:
    async def main() -> None:
        async with cockpit(tmp_path) as (node, tg):
            tg.send_text(VIEWER, "/help")                                 # the viewer has a chat with the bot
            await answer(tg, VIEWER, "Tapeshot")
            tg.send_text(TRADER, "/kill tape looks wrong")
            ask = await answer(tg, TRADER, "Kill switch")
            tg.press(TRADER, ask, ask["reply_markup"]["inline_keyboard"][0][0]["callback_data"])
            await wait_for(lambda: "KILL" in tg.messages[(TRADER, ask["message_id"])]["text"].upper()
                           and "reason" not in tg.messages[(TRADER, ask["message_id"])]["text"])
            await answer(tg, VIEWER, "tape looks wrong")                  # the others are told
            tg.send_text(TRADER, "long btc 0.01 10s")
            refused = await answer(tg, TRADER, "⚠️")
            assert "halt" in refused["text"].lower() or "kill" in refused["text"].lower()
            tg.send_text(TRADER, "/resume")
            await answer(tg, TRADER, "✅ trading resumed")
            await answer(tg, VIEWER, "trading resumed")
            await asyncio.sleep(0.5)
            mine = texts(tg, TRADER)
            assert sum("trading resumed" in t for t in mine) == 1, mine
            assert sum("tape looks wrong" in t for t in mine) == 1, "the question edited into its answer, no broadcast"
            assert not any(t.startswith("⛔ trading resumed") for t in texts(tg, VIEWER))
            assert not node.intents

    run(main())


def test_every_other_command_and_its_error_paths(tmp_path: Path) -> None:
    async def main() -> None:
        async with cockpit(tmp_path) as (node, tg):
            tg.send_text(TRADER, "/start")
            await answer(tg, TRADER, "Tapeshot: say where to go")
            tg.send_text(TRADER, "/preview long btc 1000 30s")                # beyond a limit: says which
            big = await answer(tg, TRADER, "would be refused")
            assert "USDT per order" in big["text"]
            tg.send_text(VIEWER, "/preview short eth 1 20s sniper")          # viewers may preview
            prev = await answer(tg, VIEWER, "would be accepted")
            assert "1.000 ETH" in prev["text"] and "algorithm sniper" in prev["text"]
            tg.send_text(TRADER, "long btc 1000 30s")                         # refused at once, with the reason
            refused = await answer(tg, TRADER, "⚠️")
            assert "USDT per order" in refused["text"] and not node.intents
            tg.send_text(TRADER, "/short eth 1 10s -- offers stacking")
            report = await answer(tg, TRADER, "🏁 i")
            iid = re.match(r"🏁 (i[\w-]+) ", report["text"]).group(1)
            assert "filled 1.000 ETH of 1.000 ETH" in report["text"]
            tg.send_text(TRADER, f"/report {iid}")
            await wait_for(lambda: len([t for t in texts(tg, TRADER) if t.startswith(f"🏁 {iid}")]) == 2)
            tg.send_text(TRADER, f"/why {iid} the offers never left #stacking")
            await answer(tg, TRADER, f"noted for {iid}")
            why = rationales(node, iid)[-1]
            assert why["tags"] == ["stacking"] and why["text"] == "the offers never left"
            tg.send_text(TRADER, "/why i-unknown because")
            await answer(tg, TRADER, "no intent i-unknown")
            tg.send_text(TRADER, "/why")
            await answer(tg, TRADER, "usage: /why")
            tg.send_text(TRADER, "/long")
            await answer(tg, TRADER, "usage: /long btc")
            tg.send_text(TRADER, "/reduce funding soon")
            await answer(tg, TRADER, "REDUCING")
            await answer(tg, TRADER, "REDUCING")
            warned = len([t for t in texts(tg, TRADER) if t.startswith("⚠️")])
            tg.send_text(TRADER, "long eth 1 10s")                            # REDUCING: no new exposure
            await wait_for(lambda: len([t for t in texts(tg, TRADER) if t.startswith("⚠️")]) == warned + 1)
            assert "REDUCING" in [t for t in texts(tg, TRADER) if t.startswith("⚠️")][-1]
            assert node.oms.positions.get("ETHUSDT").qty == Decimal("-1")
            tg.send_text(TRADER, "/flat eth")                                 # ... but out is always allowed
            await wait_for(lambda: node.oms.positions.get("ETHUSDT").qty == 0)
            tg.send_text(TRADER, "/resume")
            await answer(tg, TRADER, "✅ trading resumed")
            tg.send_text(TRADER, "/nonsense")
            await answer(tg, TRADER, "Unknown command")
            tg.send_text(TRADER, "tp btc 1")                                  # a TP on no position: a clear error
            await answer(tg, TRADER, "TP")
            for t in texts(tg, TRADER) + texts(tg, VIEWER):
                assert not PYTHON_INSIDES.search(t), t
                assert "Traceback" not in t and "unexpectedly" not in t, t

    run(main())
