"""The picture of an execution end to end: a real intent on the embedded sim venue (bundled tape), its touch
journalled with its markouts, the chart built back from the journal file (in the worker process too), the
``tapeshot report ID --plot FILE`` command on it after the engine stopped, and the Bot API stand-in taking the
chart as a photo from python-telegram-bot."""

from __future__ import annotations

from decimal import Decimal

import numpy as np
import orjson
import pytest
from telegram import Bot
from telegram.error import BadRequest

from engine.cli import main
from engine.config import Config, EngineConfig, VenueConfig
from engine.execution import MARKOUTS_S
from engine.loop import run
from engine.oms.journal import Journal
from engine.plot import chart_data, intent_chart, render_png
from engine.telegram.standin import StandIn
from tests.integration.conftest import node_with_control

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _png_size(png: bytes) -> tuple[int, int]:
    assert png.startswith(PNG_MAGIC)
    return int.from_bytes(png[16:20], "big"), int.from_bytes(png[20:24], "big")


@pytest.fixture(scope="module")
def traded(tmp_path_factory):
    """One intent traded to its +30 s markouts on the embedded sim; yields (journal path, intent id, report,
    the venue's trades, the chart the worker drew while the engine ran, its answer for an unknown id)."""
    home = tmp_path_factory.mktemp("chart")
    out: dict = {}

    async def go():
        cfg = Config(venue=VenueConfig(speed=8.0), engine=EngineConfig(home=str(home)))
        async with node_with_control(cfg) as (node, client):
            lines = [ln async for ln in client.intent("short btc 1.5 15s max 8bps", markouts=True)]
            assert lines[-1]["kind"] == "markouts", lines
            out["iid"], out["report"] = lines[0]["intent_id"], lines[-1]["data"]
            out["trades"] = await node.rest.user_trades("BTCUSDT")
            out["png"] = await intent_chart(node.journal, out["iid"])
            out["unknown"] = await intent_chart(node.journal, "i-no-such-intent")
            out["path"] = node.journal.path

    run(go())
    return out


def test_the_chart_data_is_the_intents_execution(traded):
    data = chart_data(traded["path"], traded["iid"])
    report, trades = traded["report"], traded["trades"]
    assert data.side == "SELL" and data.symbol == "BTCUSDT" and data.requested == float(report["requested"])
    assert len(data.fills) == len(trades) > 0                                   # every venue trade, once
    assert sorted(data.fills.price.tolist()) == sorted(float(t["price"]) for t in trades)
    assert data.fills.qty.sum() == pytest.approx(float(report["filled"]))
    avg = float((data.fills.price * data.fills.qty).sum() / data.fills.qty.sum())
    assert avg == pytest.approx(float(report["avg_price"]), abs=0.05)
    assert [o.cid for o in data.orders] == report["orders"]
    assert all(o.start_s >= 0 and o.end_s is not None and o.end_s >= o.start_s for o in data.orders)
    assert data.arrival_mid == pytest.approx(float(report["arrival_mid"]))
    assert data.cap == pytest.approx(float(report["cap"])) and data.cap < data.arrival_mid   # a sell's cap
    assert data.deadline_s == pytest.approx(15.0)
    assert data.last_fill_s is not None and 0 <= data.last_fill_s <= data.deadline_s + 1
    assert data.times[0] == 0 and data.times[-1] > data.end_s                # the touch, on after the execution
    assert data.span_s >= data.end_s + MARKOUTS_S[-1] - 1e-6                 # and drawn out to the last markout
    assert np.all(np.diff(data.times) > 0) and np.all(data.bid < data.ask)
    marks = report["markouts_bps"]
    assert data.markouts.labels == list(marks) and np.allclose(data.markouts.bps, list(marks.values()))
    assert not np.isnan(data.markouts.mid).any()


def test_the_worker_draws_the_same_chart_as_the_cli_after_the_engine_stopped(traded, tmp_path, capsys):
    png = traded["png"]
    width, _ = _png_size(png)
    assert 800 <= width <= 2400 and 10_000 <= len(png) <= 1_000_000
    assert traded["unknown"] is None
    assert render_png(chart_data(traded["path"], traded["iid"])) == png          # rendering is pure
    out = tmp_path / "exec.png"
    assert main(["report", traded["iid"], "--path", str(traded["path"]), "--plot", str(out)]) == 0
    printed = capsys.readouterr()
    assert traded["iid"] in printed.out and "filled" in printed.out and str(out) in printed.err
    assert out.read_bytes() == png
    assert main(["report", traded["iid"], "--path", str(traded["path"]), "--json"]) == 0
    assert orjson.loads(capsys.readouterr().out)["report"]["filled"] == traded["report"]["filled"]


def test_report_for_an_unknown_id_is_a_clear_error(traded, tmp_path, capsys):
    out = tmp_path / "none.png"
    assert main(["report", "i-nope", "--path", str(traded["path"]), "--plot", str(out)]) == 2
    err = capsys.readouterr().err
    assert "no intent i-nope in the journal" in err and not out.exists()
    assert main(["report", "i-nope", "--path", str(tmp_path / "missing.sqlite")]) == 2
    assert "no journal at" in capsys.readouterr().err


def test_the_timeline_is_journalled_once_with_the_markouts(traded):
    rows = Journal(traded["path"]).query("SELECT kind FROM decisions WHERE intent_id=? ORDER BY seq",
                                         (traded["iid"],))
    kinds = [r["kind"] for r in rows]
    assert kinds.count("timeline") == 1 and kinds.index("timeline") == kinds.index("markouts") + 1


def test_the_standin_takes_the_chart_as_a_photo(traded):
    png = traded["png"]
    width, height = _png_size(png)

    async def go():
        async with StandIn() as standin:
            standin.chat(42)
            async with Bot(standin.token, base_url=standin.base_url) as bot:
                msg = await bot.send_photo(42, photo=png, caption=f"{traded['iid']} chart")
                again = await bot.send_photo(42, photo=msg.photo[-1].file_id)
                with pytest.raises(BadRequest, match=r"(?i)wrong file identifier"):
                    await bot.send_photo(42, photo="no-such-file-id")
                with pytest.raises(BadRequest, match=r"(?i)there is no text in the message to edit"):
                    await bot.edit_message_text("x", chat_id=42, message_id=msg.message_id)
            return standin, msg, again

    standin, msg, again = run(go())
    sizes = msg.photo
    assert max(sizes[-1].width, sizes[-1].height) == min(max(width, height), 1280)
    assert sizes[-1].width / sizes[-1].height == pytest.approx(width / height, rel=0.01)
    assert [max(s.width, s.height) for s in sizes] == sorted(max(s.width, s.height) for s in sizes)
    assert max(sizes[0].width, sizes[0].height) == 90 and msg.caption == f"{traded['iid']} chart"
    assert standin.photo_bytes(standin.photos(42)[0]) == png == standin.photo_bytes(again.photo[-1].file_id)
    assert len(standin.photos(42)) == 2 and standin.count("sendPhoto") == 3
    with pytest.raises(KeyError):
        standin.photo_bytes("no-such-file-id")


def test_a_journal_row_is_in_trader_units(traded):
    data = chart_data(traded["path"], traded["iid"])
    tick = Decimal(traded["report"]["cap"]).as_tuple().exponent
    assert data.price_places == -tick
    assert data.base == "BTC"
