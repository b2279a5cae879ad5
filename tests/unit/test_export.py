"""``tapeshot journal export --format jsonl``: one JSON object a line, exact decimals, read-only and safe beside a
running writer."""

from __future__ import annotations

import io
import sqlite3
import threading
from decimal import Decimal

import orjson
import pytest

from engine.cli import main
from engine.dataset.export import export_jsonl, intent_of
from engine.errors import ConfigError
from engine.oms.journal import Journal
from engine.oms.orders import Fill, Order, OState

IID = "i61947119340001"
DATA = {"kind": "enter", "symbol": "BTCUSDT", "side": 0, "qty_lots": 300, "cap": 281676,
        "arrival_ns": 1680652701266872268, "deadline_ns": 1680652709266872268, "complete": True,
        "reduce_only": False, "limit": None, "algo": "ladder", "why": "ladder", "window_s": 8.0,
        "max_slippage_bps": 8.0, "rationale": "bid absorbing", "source": "control", "user": "uid:0"}


def build(path, *, report: bool = True) -> Journal:
    """A journal as the engine writes it: one intent, one order with two fills, two decisions."""
    j = Journal(path)
    j.start()
    j.intent(IID, 1680652701266, "control", "long btc 0.3 8s ladder max 8bps -- bid absorbing", DATA, "working")
    o = Order(f"{IID}-1", "BTCUSDT", "BUY", "LIMIT", Decimal("0.300"), Decimal("28145.1"), "GTC", intent_id=IID,
              state=OState.FILLED, venue_order_id=7, filled=Decimal("0.300"), notional=Decimal("8443.53000"),
              fees=Decimal("1.68870600"), created_ms=1680652701270, updated_ms=1680652702258)
    j.order(o)
    j.fill(Fill(3535186096, o.client_order_id, "BTCUSDT", "BUY", Decimal("28145.10"), Decimal("0.004"),
                Decimal("0.02251608"), True, 1680652702258))
    j.fill(Fill(3535186097, o.client_order_id, "BTCUSDT", "BUY", Decimal("28145.10"), Decimal("0.296"),
                Decimal("1.66618992"), True, 1680652702258))
    j.fill(Fill(3535186097, o.client_order_id, "BTCUSDT", "BUY", Decimal("28145.10"), Decimal("0.296"),
                Decimal("1.66618992"), True, 1680652702258))                    # a duplicate: stored once
    j.decision(IID, 1680652701266, "arrival", {"mid_ticks": 281451.5, "algo": "ladder"})
    if report:
        j.intent_state(IID, "done", 1680652702270, {"requested": "0.300", "filled": "0.300", "cap": "28167.6",
                                                      "side": "BUY", "symbol": "BTCUSDT"})
        j.decision(IID, 1680652702271, "done", {"filled": "0.300"})
    j.sync_blocking()
    return j


def lines(text: str) -> list[dict]:
    return [orjson.loads(line) for line in text.splitlines()]


def test_one_line_per_intent_order_fill_and_decision(tmp_path):
    j = build(tmp_path / "journal.sqlite")
    out = io.StringIO()
    counts = export_jsonl(j.path, out, decisions=True)
    j.close()
    rows = lines(out.getvalue())
    assert counts == {"intent": 1, "order": 1, "fill": 2, "decision": 2}
    assert [r["type"] for r in rows] == ["intent", "order", "fill", "fill", "decision", "decision"]
    intent, order, fill = rows[0], rows[1], rows[2]
    d = intent["decision"]
    assert intent["id"] == IID and d["text"] == "long btc 0.3 8s ladder max 8bps -- bid absorbing"
    assert (intent["symbol"], intent["side"], d["qty"], d["cap"], d["algo"]) == \
        ("BTCUSDT", "BUY", "0.300", "28167.6", "ladder")
    assert d["deadline_ms"] == 1680652709266 and d["window_s"] == 8.0 and intent["status"] == "done"
    assert intent["rationale"]["text"] == "bid absorbing" and intent["outcome"]["filled_qty"] == "0.300"
    assert intent["state"] is None                  # a journal from before the dataset: no arrival state...
    assert {h["status"] for h in intent["outcome"]["horizons"]} == {"missing"}     # ...and no horizons, said so
    assert order["client_order_id"] == f"{IID}-1" and order["intent_id"] == IID and order["venue_order_id"] == 7
    assert (order["qty"], order["price"], order["filled"], order["avg_price"]) == ("0.300", "28145.1", "0.300",
                                                                                  "28145.1")
    assert fill == {"type": "fill", "trade_id": 3535186096, "symbol": "BTCUSDT", "side": "BUY", "price": "28145.10",
                    "qty": "0.004", "fee": "0.02251608", "maker": True, "time_ms": 1680652702258,
                    "client_order_id": f"{IID}-1", "intent_id": IID, "fee_asset": "USDT", "date": "2023-04-04"}
    assert rows[4]["kind"] == "arrival" and rows[4]["data"]["algo"] == "ladder"


def test_no_floats_for_prices_and_quantities(tmp_path):
    j = build(tmp_path / "journal.sqlite")
    out = io.StringIO()
    export_jsonl(j.path, out)
    j.close()
    money = {"qty", "cap", "price", "filled", "avg_price", "fee", "fees", "stop_price"}
    for row in lines(out.getvalue()):
        for key in money & row.keys():
            assert row[key] is None or isinstance(row[key], str), (row["type"], key)


def test_a_working_intent_without_report_still_has_its_size_and_cap(tmp_path):
    j = build(tmp_path / "journal.sqlite", report=False)
    out = io.StringIO()
    export_jsonl(j.path, out)
    j.close()
    intent = lines(out.getvalue())[0]
    assert intent["status"] == "working" and intent["outcome"]["filled_qty"] == "0.300"
    assert intent["decision"]["qty"] == "0.300"                      # from lots, on the orders' grid


def test_export_reads_while_the_writer_commits_and_never_writes(tmp_path):
    j = build(tmp_path / "journal.sqlite")
    stop = threading.Event()

    def writer() -> None:
        n = 0
        while not stop.is_set() and n < 2000:
            n += 1
            j.fill(Fill(4_000_000_000 + n, f"{IID}-1", "BTCUSDT", "BUY", Decimal("1.0"), Decimal("0.001"),
                        Decimal("0"), False, 1680652703000 + n))
            j.sync_blocking()

    t = threading.Thread(target=writer)
    t.start()
    try:
        for _ in range(20):
            out = io.StringIO()
            counts = export_jsonl(j.path, out)
            ids = [r["trade_id"] for r in lines(out.getvalue()) if r["type"] == "fill"]
            assert len(ids) == len(set(ids)) == counts["fill"] >= 2
    finally:
        stop.set()
        t.join()
        j.close()
    with sqlite3.connect(f"file:{tmp_path / 'journal.sqlite'}?mode=ro", uri=True) as conn:
        assert conn.execute("SELECT COUNT(*) FROM fills").fetchone()[0] >= counts["fill"]


def test_a_missing_journal_is_refused_and_not_created(tmp_path):
    with pytest.raises(ConfigError):
        export_jsonl(tmp_path / "nope.sqlite", io.StringIO())
    assert not (tmp_path / "nope.sqlite").exists()


def test_the_engine_lock_is_not_needed(tmp_path):
    from engine.oms.journal import lock

    j = build(tmp_path / "journal.sqlite")
    fd = lock(j.path)                              # an engine holds the journal
    try:
        assert export_jsonl(j.path, io.StringIO())["fill"] == 2
    finally:
        import os

        os.close(fd)
        j.close()


def test_cli_export_to_file_and_stdout_and_format_validation(tmp_path, capsys):
    j = build(tmp_path / "journal.sqlite")
    j.close()
    dest = tmp_path / "out.jsonl"
    assert main(["journal", "export", "--format", "jsonl", "--path", str(j.path), "--out", str(dest)]) == 0
    assert [r["type"] for r in lines(dest.read_text())].count("fill") == 2
    assert main(["journal", "export", "--path", str(j.path)]) == 0
    assert lines(capsys.readouterr().out)[0]["type"] == "intent"
    with pytest.raises(SystemExit) as exc:
        main(["journal", "export", "--format", "csv", "--path", str(j.path)])
    assert exc.value.code == 2
    assert main(["journal", "export", "--path", str(tmp_path / "missing.sqlite")]) == 2


def test_intent_of_client_order_ids():
    assert intent_of("i0123456789001-3") == "i0123456789001"
    assert intent_of("web_abc") is None and intent_of(None) is None
