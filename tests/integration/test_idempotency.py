"""One intent per message: a redelivered Telegram update, a repeated control key and simultaneous submits each trade
at most once. The real engine on the sim venue, the real python-telegram-bot against the Bot API stand-in, the
control endpoint over its Unix socket; every count is checked at the venue, not only in the engine."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import aiohttp

from engine.config import Config, EngineConfig, VenueConfig
from engine.control import MAX_BODY, ControlClient
from engine.feed.recording import sample_path
from engine.keys import Secret
from engine.loop import run
from engine.node import Node
from engine.oms.journal import Journal
from engine.telegram import start_bot
from engine.telegram.standin import StandIn
from engine.venues.sim import SimExchange
from engine.venues.sim.server import SimVenue, SimVenueConfig
from tests.integration.conftest import node_with_control, wait_for

TRADER = 1001
INTENT = "long btc 0.01 5s max 8bps"


async def venue_position(node: Node) -> Decimal:
    """The venue's own BTCUSDT position (positionRisk), not the engine's."""
    rows = await node.rest.position_risk("BTCUSDT")
    return Decimal(rows[0]["positionAmt"]) if rows else Decimal(0)


def intents_in_journal(node: Node) -> list[dict]:
    return Journal(node.paths()[0]).query("SELECT id, text, state FROM intents ORDER BY created_ms")


@contextlib.asynccontextmanager
async def engine(home: Path, venue: SimVenue | None = None) -> AsyncIterator[tuple[Node, ControlClient]]:
    """A node (on ``venue`` when given, else its embedded sim) with its control socket."""
    v = (VenueConfig(rest_url=venue.rest_url, ws_url=venue.ws_url, ws_api_url=venue.ws_api_url)
         if venue is not None else VenueConfig(speed=8.0))
    async with node_with_control(Config(venue=v, engine=EngineConfig(home=str(home)))) as pair:
        yield pair


@contextlib.asynccontextmanager
async def telegram(standin: StandIn, commands: Any) -> AsyncIterator[None]:
    """The bot on ``standin`` in front of ``commands``; a wide age limit, so only de-duplication can refuse."""
    handle = await start_bot(commands, Secret(standin.token), {TRADER}, standin.base_url, poll_timeout=0.5,
                             max_age_s=3600.0)
    try:
        yield
    finally:
        await handle.stop()


class ForgetsUpdates:
    """The node as the bot sees it, except that handled Telegram updates are not remembered: as if the engine
    died after submitting an intent and before it remembered the update."""

    def __init__(self, node: Node) -> None:
        self._node = node

    def __getattr__(self, name: str) -> Any:
        return getattr(self._node, name)

    async def remember(self, key: str) -> None:
        if not key.startswith("tg-update:"):
            await self._node.remember(key)


def texts(standin: StandIn) -> list[str]:
    return [m.get("text", "") for m in standin.bot_messages(TRADER)]


async def lines(client: ControlClient, text: str, key: str | None = None) -> list[dict]:
    return [line async for line in client.intent(text, key=key)]


def test_a_telegram_update_delivered_twice_trades_once(tmp_path: Path) -> None:
    async def main() -> None:
        async with engine(tmp_path) as (node, _), StandIn() as standin, telegram(standin, node):
            standin.send_text(TRADER, INTENT)
            update_id = standin.last_update_id
            standin.redeliver(update_id)                  # before it was handled: the intent's key holds
            await wait_for(lambda: any(t.startswith("🏁 i") for t in texts(standin)))
            await wait_for(lambda: any("already received as" in t for t in texts(standin)))
            standin.redeliver(update_id)                  # after it was handled: stopped at the gate
            await wait_for(lambda: standin.pending_updates == 0)
            await asyncio.sleep(0.5)
            assert len(intents_in_journal(node)) == 1 and len(node.intents) == 1
            assert sum("already received as" in t for t in texts(standin)) == 1
            assert await venue_position(node) == Decimal("0.01") == node.oms.positions.get("BTCUSDT").qty

    run(main())


def test_redeliveries_and_repeated_keys_after_an_engine_restart_do_nothing_new(tmp_path: Path) -> None:
    async def main() -> None:
        venue = SimVenue(SimExchange([sample_path()]), SimVenueConfig(speed=4.0))
        await venue.start()
        try:
            async with StandIn() as standin:
                update_id, iid, report = await first_run(tmp_path, venue, standin)
                await second_run(tmp_path, venue, standin, update_id, iid, report)
        finally:
            await venue.stop()

    run(main())


async def first_run(home: Path, venue: SimVenue, standin: StandIn) -> tuple[int, str, dict]:
    """An intent from Telegram (its update never remembered) and one over the control socket under a key;
    returns the update's id, the keyed intent's id and its report."""
    async with engine(home, venue) as (node, client), telegram(standin, ForgetsUpdates(node)):
        standin.send_text(TRADER, INTENT)
        update_id = standin.last_update_id
        await wait_for(lambda: any(t.startswith("🏁 i") for t in texts(standin)))
        await wait_for(lambda: not node.runner.armed())
        first = await lines(client, INTENT, key="order-7")
        assert first[0]["kind"] == "submitted" and not first[0]["duplicate"] and first[-1]["kind"] == "done"
        assert await venue_position(node) == Decimal("0.02")
        return update_id, first[0]["intent_id"], first[-1]["data"]


async def second_run(home: Path, venue: SimVenue, standin: StandIn, update_id: int, iid: str,
                     report: dict) -> None:
    """The engine again on the same journal: the update and the key come back, and nothing trades."""
    async with engine(home, venue) as (node, client), telegram(standin, node):
        standin.redeliver(update_id)             # not remembered as handled: the intent's own key catches it
        await wait_for(lambda: any("already received as" in t for t in texts(standin)))
        standin.redeliver(update_id)             # remembered now: the gate stops it
        again = await lines(client, INTENT, key="order-7")
        assert again[0] == {**again[0], "kind": "submitted", "intent_id": iid, "duplicate": True}
        assert again[-1]["kind"] == "done" and again[-1]["data"]["filled"] == report["filled"]
        await asyncio.sleep(0.5)
        assert sum("already received as" in t for t in texts(standin)) == 1
        assert len(intents_in_journal(node)) == 2
        assert await venue_position(node) == Decimal("0.02") == node.oms.positions.get("BTCUSDT").qty


def test_the_same_control_key_twice_trades_once(tmp_path: Path) -> None:
    async def main() -> None:
        async with engine(tmp_path) as (node, client):
            a, b = await asyncio.gather(lines(client, INTENT, "k-1"), lines(client, INTENT, "k-1"))
            assert a[0]["intent_id"] == b[0]["intent_id"] and {a[0]["duplicate"], b[0]["duplicate"]} == {True, False}
            assert a[-1]["kind"] == b[-1]["kind"] == "done" and a[-1]["data"] == b[-1]["data"]
            c = await lines(client, INTENT, "k-1")                # sequentially, once it is done
            assert c[0]["duplicate"] and c[0]["intent_id"] == a[0]["intent_id"] and len(c) == 2
            assert c[1]["data"]["filled"] == a[-1]["data"]["filled"] == "0.010"
            d = await lines(client, INTENT, "k-2")                # another key is another intent
            assert not d[0]["duplicate"] and d[-1]["kind"] == "done"
            assert len(intents_in_journal(node)) == 2
            assert await venue_position(node) == Decimal("0.02") == node.oms.positions.get("BTCUSDT").qty

    run(main())


def test_ten_simultaneous_submits_for_one_symbol_accept_exactly_one(tmp_path: Path) -> None:
    async def main() -> None:
        async with engine(tmp_path) as (node, client):
            texts_ = [f"long btc 0.01 5s max {8 + i}bps" for i in range(10)]
            answers = await asyncio.gather(*(lines(client, t, f"burst-{i}") for i, t in enumerate(texts_)))
            accepted = [a for a in answers if a[0].get("kind") == "submitted"]
            refused = [a[0]["error"] for a in answers if "error" in a[0]]
            assert len(accepted) == 1 and accepted[0][-1]["kind"] == "done", answers
            assert len(refused) == 9 and all("risk refused (busy)" in e for e in refused), refused
            assert len(intents_in_journal(node)) == 1
            assert await venue_position(node) == Decimal("0.01") == node.oms.positions.get("BTCUSDT").qty

    run(main())


def test_control_requests_are_validated(tmp_path: Path) -> None:
    async def main() -> None:
        async with engine(tmp_path) as (node, client):
            for bad in ("", "x" * 129, "tab\there", "é", 7):
                answer = await post(node.paths()[1], {"text": INTENT, "key": bad})
                assert answer == (400, {"error": "key must be a string of 1-128 printable ASCII characters"}), bad
            assert await post(node.paths()[1], {"text": ["long"]}) == (400, {"error": "text must be a string"})
            status, body = await post(node.paths()[1], {"text": "x" * MAX_BODY})
            assert status == 413 and body == {"error": f"request body over {MAX_BODY} bytes"}
            status, body = await post(node.paths()[1], chunks(b"x" * 1024, 80))       # no Content-Length
            assert status == 413 and body == {"error": f"request body over {MAX_BODY} bytes"}
            assert (await lines(client, INTENT, "x" * 129))[0]["error"].startswith("key must be")
            assert not intents_in_journal(node)

    run(main())


async def post(sock: Path, body: dict | AsyncIterator[bytes]) -> tuple[int, dict]:
    """POST /intent with a JSON ``body``, or a chunked one."""
    kw = {"json": body} if isinstance(body, dict) else {"data": body}
    async with aiohttp.ClientSession(connector=aiohttp.UnixConnector(path=str(sock))) as s, \
            s.post("http://engine/intent", **kw) as resp:
        return resp.status, await resp.json(content_type=None)


async def chunks(chunk: bytes, n: int) -> AsyncIterator[bytes]:
    for _ in range(n):
        yield chunk
