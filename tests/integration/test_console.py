"""The console on the real engine (embedded sim venue): each line through ``Console.handle``, printed once, in the
trader's units; intents that cannot work are refused at once, with the reason, and journalled."""

from __future__ import annotations

import contextlib
import io
import json
from decimal import Decimal

from engine.config import Config, EngineConfig, VenueConfig
from engine.console import Console
from engine.dataset.export import export_jsonl
from engine.loop import run
from engine.node import Node
from engine.risk import TradingState
from tests.integration.conftest import node_with_control, refused, wait_for

SEC = 1_000_000_000


@contextlib.asynccontextmanager
async def console(tmp_path):
    """A started node and a console on it printing into a StringIO: yields (node, console, out)."""
    cfg = Config(venue=VenueConfig(speed=8.0), engine=EngineConfig(home=str(tmp_path)))
    async with node_with_control(cfg) as (node, _client):
        out = io.StringIO()
        con = Console(node, out)
        unsubscribe = node.subscribe(con.on_progress)
        try:
            yield node, con, out
        finally:
            unsubscribe()


async def say(con: Console, out: io.StringIO, line: str) -> tuple[bool, str]:
    """Send ``line``; (what handle returned, what it printed)."""
    start = len(out.getvalue())
    keep = await con.handle(line)
    return keep, out.getvalue()[start:]


def clean(text: str) -> None:
    assert "None" not in text and "Decimal(" not in text and "{" not in text, text


def mid(node: Node) -> Decimal:
    return Decimal(repr(node.feed["BTCUSDT"].book.mid)) / 10


def test_status_pos_and_report_are_in_the_traders_units(tmp_path):
    async def main():
        async with console(tmp_path) as (node, con, out):
            _, said = await say(con, out, "long btc 0.01 10s why testing the console #absorption")
            assert said.startswith("[i") and "] accepted: LONG 0.01 BTC of BTCUSDT" in said and "lots" not in said
            await wait_for(lambda: "DONE BUY BTCUSDT" in out.getvalue())
            iid = next(iter(node.intents))
            assert out.getvalue().count("] accepted:") == 1          # each progress line once
            assert "filled 0.010 BTC of 0.010 BTC" in out.getvalue()
            _, status = await say(con, out, "status btc")
            clean(status)
            assert "BTCUSDT: long 0.010 BTC @ " in status and "book synced" in status
            kind = "mark" if getattr(node.feed["BTCUSDT"], "mark_price", None) else "mid"
            assert f"at the {kind}" in status and "net of fees" in status
            _, same = await say(con, out, "status BTCUSDT")
            assert same.splitlines()[1].startswith("BTCUSDT: long 0.010 BTC")
            _, pos = await say(con, out, "pos")
            clean(pos)
            assert pos.startswith("BTCUSDT: long 0.010 BTC") and "no TP/SL" in pos
            _, unknown = await say(con, out, "status doge")
            assert "DOGEUSDT is not traded here (symbols: BTCUSDT" in unknown
            _, report = await say(con, out, f"report {iid}")
            clean(report)
            assert report.startswith(f"{iid} DONE BUY BTCUSDT") and "fees in" in report and "USDT" in report
            assert "(+ = in your favour)" in report
            _, missing = await say(con, out, "report i-nope")
            assert missing.startswith("! no report for i-nope")
            tp = (mid(node) * Decimal("1.05")).quantize(Decimal("0.1"))
            _, said = await say(con, out, f"tp btc {tp}")
            assert said.count(f"TP BTCUSDT at {tp}") == 1                 # the notice, not the answer again
            _, pos = await say(con, out, "pos")
            assert f"TP {tp}" in pos

    run(main())


def test_exit_quit_and_kill(tmp_path):
    async def main():
        async with console(tmp_path) as (node, con, out):
            keep, said = await say(con, out, "exit")
            assert keep and "'exit <symbol>'" in said and "'quit'" in said
            low = (mid(node) * Decimal("0.99")).quantize(Decimal("0.1"))
            await say(con, out, f"long btc 0.01 30s ladder cancel limit {low}")        # rests below the market
            await wait_for(lambda: any(o.state.open for o in node.oms.orders.values()))
            iid = next(iter(node.intents))
            _, status = await say(con, out, "status")
            line = next(ln for ln in status.splitlines() if ln.startswith(iid))
            assert "0.000 BTC of 0.010 BTC filled, ladder; resting " in line and " BTC at " in line, line
            keep, said = await say(con, out, "quit")
            assert keep and f"1 intent(s) still working ({iid})" in said and "[y/N]" in said
            keep, said = await say(con, out, "")                              # anything but y: not done
            assert keep and said.startswith("not done")
            keep, said = await say(con, out, "kill testing")
            assert keep and "[y/N]" in said and node.risk.state is TradingState.ACTIVE
            _, said = await say(con, out, "no")
            assert said.startswith("not done") and node.risk.state is TradingState.ACTIVE
            await say(con, out, "kill testing")
            _, said = await say(con, out, "y")
            assert node.risk.state is TradingState.HALTED
            assert said.count("KILL SWITCH (manual): trading halted: testing") == 1     # printed once
            _, said = await say(con, out, "resume")
            assert said.count("trading resumed") == 1
            await wait_for(lambda: not con._working())
            keep, _ = await say(con, out, "quit")                              # nothing working: no question
            assert keep is False

    run(main())


def test_quit_confirmed_while_an_intent_works(tmp_path):
    async def main():
        async with console(tmp_path) as (node, con, out):
            low = (mid(node) * Decimal("0.99")).quantize(Decimal("0.1"))
            await say(con, out, f"long btc 0.01 30s ladder cancel limit {low}")
            assert await say(con, out, "quit") == (True, f"1 intent(s) still working ({next(iter(node.intents))}): "
                                                          "quit anyway? They are cancelled at the venue on the way "
                                                          "out [y/N]\n")
            keep, _ = await say(con, out, "y")
            assert keep is False

    run(main())


def refusals(node: Node) -> list[dict]:
    rows = node.journal.query("SELECT data FROM decisions WHERE kind='refused' AND intent_id IS NULL ORDER BY seq")
    return [json.loads(r["data"]) for r in rows]


def test_intents_that_cannot_work_are_refused_at_once_and_journalled(tmp_path):
    async def main():
        async with console(tmp_path) as (node, con, out):
            sf = node.feed["BTCUSDT"]
            real = node.runner.clock
            node.runner.clock = lambda: real() + 6 * SEC         # no market data for 6 s of exchange time
            try:
                stale = await refused(node, "long btc 0.01 10s")
            finally:
                node.runner.clock = real
            assert stale.reason == "book_stale" and "no BTCUSDT market data for 6." in str(stale)
            assert "the feed's limit is 5 s" in str(stale)
            sf.request_resync()                                   # a gap: the book waits for a new snapshot
            unsynced = await refused(node, "long btc 0.01 10s")
            assert unsynced.reason == "book_unsynced" and "BTCUSDT" in str(unsynced)
            await wait_for(lambda: sf.synced)
            big = await refused(node, "long btc 1000 10s")
            assert big.reason == "order_notional" and "250,000 USDT per order" in str(big)
            await node.kill("test", user="t")
            halted = await refused(node, "long btc 0.01 10s")
            assert halted.reason == "halted" and "/resume" in str(halted)
            _, said = await say(con, out, "long btc 0.01 10s")
            assert said.startswith("! risk refused (halted)")
            assert [r["reason"] for r in refusals(node)] == ["book_stale", "book_unsynced", "order_notional",
                                                            "halted", "halted"]
            assert all(r["stage"] == "accept" and r["detail"] for r in refusals(node))

    run(main())


def test_tags_and_the_reason_reach_the_journal_export(tmp_path):
    async def main():
        async with console(tmp_path) as (node, con, out):
            await say(con, out, "long btc 0.01 10s why absorption at 70k #Absorption #spoof")
            await wait_for(lambda: "DONE BUY" in out.getvalue())
            buf = io.StringIO()
            export_jsonl(node.paths()[0], buf, decisions=True)
        intents = [r for r in map(json.loads, buf.getvalue().splitlines()) if r["type"] == "intent"]
        why = intents[0]["rationale"]
        assert why["text"] == "absorption at 70k" and why["tags"] == ["absorption", "spoof"]
        assert why["entries"][0]["when"] == "with_intent"
        decisions = [r for r in map(json.loads, buf.getvalue().splitlines())
                     if r["type"] == "decision" and r["kind"] == "arrival"]
        assert decisions[0]["data"]["tags"] == ["absorption", "spoof"]

    run(main())


def test_progress_is_printed_once_per_event(tmp_path):
    async def main():
        async with console(tmp_path) as (_node, con, out):
            await say(con, out, "long btc 0.01 10s")
            await wait_for(lambda: "markouts +1s" in out.getvalue() and "pending" not in
                           out.getvalue().split("markouts +1s")[-1].splitlines()[0], timeout=30)
            lines = [ln for ln in out.getvalue().splitlines() if ln.startswith("[")]
            assert len(lines) == len(set(lines)), lines
            assert not any("markouts: markouts" in ln for ln in lines)

    run(main())
