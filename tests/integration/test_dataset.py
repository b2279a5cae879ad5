"""The decision dataset end to end on the real engine and the sim venue: every intent's state at arrival (checked
against the recorded tape itself), its decision with every order and cancel and their reasons, the rationale and
when it was given, the outcome at every horizon (recomputed here from the fills and the mids), the export in
JSON lines and Parquet read back with pyarrow and DuckDB, and the horizons across a kill -9 and a restart."""

from __future__ import annotations

import asyncio
import io
import signal
import time
import urllib.request
from decimal import Decimal
from pathlib import Path

import orjson

from engine.config import Config, EngineConfig, VenueConfig
from engine.control import ControlClient
from engine.dataset.export import export_jsonl
from engine.feed.recording import iter_lines, sample_paths
from engine.loop import run
from engine.oms.journal import Journal
from tests.integration.conftest import node_with_control, wait_for
from tests.integration.test_crash import free_port, start, stop_all

SEC_MS = 1000


def tape_trades(path: Path, symbol: str) -> list[dict]:
    """The market trades of ``symbol`` in a recording, in exchange-time order (the test's own reading)."""
    out = []
    for ln in iter_lines([path]):
        if b'"trade"' not in ln.raw and b"aggTrade" not in ln.raw:
            continue
        d = orjson.loads(ln.raw)
        d = d.get("data", d)
        if d.get("s") == symbol and d.get("X", "MARKET") == "MARKET" and d.get("e") in ("trade", "aggTrade"):
            out.append({"T": d["T"], "id": d.get("t", d.get("l")), "p": Decimal(d["p"]), "q": Decimal(d["q"]),
                        "sell": bool(d["m"])})
    return sorted(out, key=lambda t: (t["T"], t["id"]))


def export(journal: Path) -> dict[str, list[dict]]:
    buf = io.StringIO()
    export_jsonl(journal, buf)
    out: dict[str, list[dict]] = {"intent": [], "order": [], "fill": []}
    for line in buf.getvalue().splitlines():
        rec = orjson.loads(line)
        out[rec["type"]].append(rec)
    return out


def check_tape(st: dict, trades: list[dict]) -> None:
    """The recorded last 30 s of trades are the tape's own, and the summary is theirs."""
    arrival = st["exchange_ms"]
    kept = st["trades"]
    assert kept and st["tape"]["count"] == st["tape"]["kept"] == len(kept)
    last = kept[-1]["time_ms"]
    assert arrival - last < 2 * SEC_MS                       # nothing recent is missing...
    since = arrival - int(st["tape"]["covered_s"] * SEC_MS)          # the engine's memory: from its first trade
    assert st["tape"]["covered_s"] == 30 or since <= kept[0]["time_ms"] <= since + 1
    want = [t for t in trades if max(since, arrival - 30 * SEC_MS) <= t["T"] <= last]
    assert [t["trade_id"] for t in kept] == [t["id"] for t in want]    # ...nor anything in between
    for k, t in zip(kept, want, strict=True):
        assert (Decimal(k["price"]), Decimal(k["qty"])) == (t["p"], t["q"])
        assert k["aggressor"] == ("SELL" if t["sell"] else "BUY")
    tape = st["tape"]
    buys = [t for t in want if not t["sell"]]
    assert Decimal(tape["buy_qty"]) == sum(t["q"] for t in buys)
    assert Decimal(tape["sell_notional"]) == sum(t["q"] * t["p"] for t in want if t["sell"])
    runs, prev = [], None
    for t in want:
        if t["sell"] != prev:
            runs.append([])
        runs[-1].append(t)
        prev = t["sell"]
    assert tape["runs"] == len(runs)
    assert tape["longest_run"] == max(len(r) for r in runs) and tape["last_run"] == len(runs[-1])
    assert Decimal(tape["largest"]["qty"]) == max(t["q"] for t in want)


def check_fields(value: object, typ: object, where: str) -> None:
    """Every field the versioned schema names is in the JSON record, with a value of its type (or null)."""
    import pyarrow as pa

    if value is None:
        return
    if pa.types.is_struct(typ):
        assert isinstance(value, dict), where
        for f in typ:
            assert f.name in value, f"{where}.{f.name} is missing"
            check_fields(value[f.name], f.type, f"{where}.{f.name}")
    elif pa.types.is_list(typ):
        assert isinstance(value, list), where
        for i, v in enumerate(value):
            check_fields(v, typ.value_type, f"{where}[{i}]")
    elif pa.types.is_map(typ):
        assert isinstance(value, dict) and all(isinstance(k, str) for k in value), where
    elif pa.types.is_decimal(typ):
        assert isinstance(value, str) and Decimal(value) == Decimal(value), where        # exact: never a float
    elif pa.types.is_floating(typ):
        assert isinstance(value, int | float) and not isinstance(value, bool), where
    elif pa.types.is_integer(typ):
        assert isinstance(value, int) and not isinstance(value, bool), where
    elif pa.types.is_boolean(typ):
        assert isinstance(value, bool), where
    else:
        assert isinstance(value, str), where


def check_record_types(recs: dict[str, list[dict]]) -> None:
    import pyarrow as pa

    from engine.dataset.schema import SCHEMAS

    for kind, rows in recs.items():
        assert rows, kind
        for r in rows:
            check_fields(r, pa.struct(list(SCHEMAS[kind])), kind)


def check_book(st: dict) -> None:
    bids, asks = st["book"]["bids"], st["book"]["asks"]
    assert len(bids) == len(asks) == 20
    bp, ap = [Decimal(x["price"]) for x in bids], [Decimal(x["price"]) for x in asks]
    assert bp == sorted(bp, reverse=True) and ap == sorted(ap) and bp[0] < ap[0]
    assert (bids[0]["price"], asks[0]["price"]) == (st["bid"], st["ask"])
    assert Decimal(st["mid"]) == (bp[0] + ap[0]) / 2
    assert all(Decimal(x["qty"]) > 0 for x in bids + asks)


def check_outcome(rec: dict, fills: list[dict]) -> None:
    """Shortfall, the immediate fill and every observed horizon, recomputed from the record's own parts."""
    sign = 1 if rec["side"] == "BUY" else -1
    out, st = rec["outcome"], rec["state"]
    mine = sorted((f for f in fills if f["intent_id"] == rec["id"]), key=lambda f: f["time_ms"])
    qty = sum(Decimal(f["qty"]) for f in mine)
    value = sum(Decimal(f["qty"]) * Decimal(f["price"]) for f in mine)
    fees = sum(Decimal(f["fee"]) for f in mine)
    mid = Decimal(st["mid"])
    assert Decimal(out["filled_qty"]) == qty and out["n_fills"] == len(mine) and Decimal(out["fees"]) == fees
    if qty:
        assert abs(out["shortfall_bps"] - float((sign * (value - mid * qty) + fees) / (mid * qty) * 10_000)) < 1e-3
        far = st["book"]["asks" if sign == 1 else "bids"]
        left, cost = qty, Decimal(0)
        for lv in far:
            take = min(left, Decimal(lv["qty"]))
            cost, left = cost + take * Decimal(lv["price"]), left - take
        imm = float(sign * (cost / qty - mid) / mid * 10_000) + 5.0
        assert abs(out["immediate"]["cost_bps"] - imm) < 1e-3
        assert abs(out["saving_bps"] - (imm - out["shortfall_bps"])) < 2e-3
    assert [(h["anchor"], h["h_s"]) for h in out["horizons"]] == \
        [(a, h) for a in ("arrival", "last_fill") for h in (1, 5, 30, 60, 300)]
    for h in out["horizons"]:
        if h["status"] != "observed":
            assert h["mid"] is None and h["move_bps"] is None and h["pnl_usdt"] is None
            continue
        m, a = Decimal(h["mid"]), Decimal(h["anchor_mid"])
        assert abs(h["move_bps"] - float(sign * (m - a) / a * 10_000)) < 1e-3
        done = [f for f in mine if f["time_ms"] <= h["due_ms"]]
        assert Decimal(h["exec_qty"]) == sum(Decimal(f["qty"]) for f in done)
        if done:
            pnl = sign * sum(Decimal(f["qty"]) * (m - Decimal(f["price"])) for f in done) - \
                sum(Decimal(f["fee"]) for f in done)
            assert abs(Decimal(h["pnl_usdt"]) - pnl) < Decimal("1e-6")
        assert -5000 <= h["observed_ms"] - h["due_ms"] <= 250


def test_an_intent_becomes_a_full_research_record(tmp_path):
    """ETHUSDT traded alone (BTCUSDT fed for context only), an intent with its reason and a tag, a hindsight
    note after the outcome, the tape played to its end: the exported record, field by field."""
    cfg = Config(venue=VenueConfig(speed=8.0, symbols=("ETHUSDT",)), engine=EngineConfig(home=str(tmp_path)))

    async def main() -> str:
        async with node_with_control(cfg) as (node, _c):
            assert [sf.symbol for sf in node.feed.symbols] == ["ETHUSDT", "BTCUSDT"]
            assert list(node.instruments) == ["ETHUSDT"]
            await asyncio.sleep(1.5)                    # 12 s of tape: the context's 5 s move is known
            sub = await node.submit("short eth 2 12s max 8bps ladder why offers stacking #absorption",
                                    source="telegram", user="1001")
            live = node.intents[sub.intent_id]
            await wait_for(lambda: (live.report or {}).get("markouts_final"), 60)
            await node.add_rationale(sub.intent_id, "it was a trap #lucky", user="1001")
            await wait_for(lambda: node.tape_ended.is_set(), 60)
            await wait_for(lambda: node.runner.outcomes.pending == 0, 10)
            return sub.intent_id

    iid = run(main())
    recs = export(tmp_path / "sim" / "journal.sqlite")
    check_record_types(recs)
    rec = next(r for r in recs["intent"] if r["id"] == iid)
    assert rec["schema"] == "tapeshot.dataset/2" and rec["symbol"] == "ETHUSDT" and rec["side"] == "SELL"
    assert rec["date"] == "2024-07-18" and rec["status"] == "done"
    st = rec["state"]
    check_book(st)
    check_tape(st, tape_trades(sample_paths()[1], "ETHUSDT"))
    assert st["exchange_ms"] == rec["created_ms"] and st["local_ms"] > st["exchange_ms"]
    assert set(st["signals"]) >= {"ofi", "vacuum_bid", "absorption_ask", "tape_imb_fast", "micro_drift"}
    assert Decimal(st["mark"]["mark_price"]) > 0 and st["mark"]["funding_rate"] is not None
    ctx = st["context"]
    assert ctx["symbol"] == "BTCUSDT" and ctx["synced"] and Decimal(ctx["mid"]) > 60_000
    assert ctx["move_5s_bps"] is not None and ctx["move_300s_bps"] is None and "ofi" in ctx["signals"]

    d = rec["decision"]
    assert (d["text"], d["source"], d["user"], d["kind"]) == (
        "short eth 2 12s max 8bps ladder why offers stacking #absorption", "telegram", "1001", "enter")
    assert d["qty"] == "2.000" and d["algo_requested"] == "ladder" and d["algo"] == "ladder" and d["window_s"] == 12
    assert d["deadline_ms"] == rec["created_ms"] + 12_000 and d["on_deadline"] == "complete"
    orders = [o for o in recs["order"] if o["intent_id"] == iid]
    placed = [a for a in d["actions"] if a["action"] == "place"]
    assert sorted(a["client_order_id"] for a in placed) == sorted(o["client_order_id"] for o in orders)
    assert all(a["reason"] and a["tag"] and a["order_type"] for a in placed)
    assert all(a["reason"] for a in d["actions"] if a["action"] == "cancel")
    assert all(o["tag"] and o["date"] == "2024-07-18" for o in orders)     # the tape's clock, not the wall's

    r = rec["rationale"]
    assert r["tags"] == ["absorption"] and r["tags_after"] == ["lucky"]
    assert [e["when"] for e in r["entries"]] == ["with_intent", "after_outcome"]
    assert r["text"] == "offers stacking / it was a trap"

    check_outcome(rec, recs["fill"])
    rows = {(h["anchor"], h["h_s"]): h for h in rec["outcome"]["horizons"]}
    assert all(rows[("arrival", h)]["status"] == "observed" for h in (1, 5, 30, 60))
    assert rows[("arrival", 300)]["status"] == "missing" and "tape has ended" in rows[("arrival", 300)]["reason"]
    fills = [f for f in recs["fill"] if f["intent_id"] == iid]
    assert fills and all(f["date"] == "2024-07-18" and f["fee_asset"] == "USDT" for f in fills)
    check_parquet_and_scorecard(tmp_path, rec)


def check_parquet_and_scorecard(tmp_path: Path, rec: dict) -> None:
    """The same journal as Parquet (every field typed by the schema, or the export fails), read back with
    pyarrow and with DuckDB; the scorecard over it agrees with the record."""
    import duckdb

    from engine.dataset.parquet import export_parquet, read_intents
    from engine.dataset.scorecard import load_intents, scorecard

    out = tmp_path / "ds"
    counts = export_parquet(tmp_path / "sim" / "journal.sqlite", out)
    assert counts["intent"] == 1 and (out / "intents" / "date=2024-07-18" / "symbol=ETHUSDT").is_dir()
    back = read_intents(out)[0]
    assert back["id"] == rec["id"] and back["symbol"] == "ETHUSDT"
    assert back["state"]["mid"] == Decimal(rec["state"]["mid"]) and len(back["state"]["trades"]) == \
        len(rec["state"]["trades"])
    assert back["state"]["signals"] == rec["state"]["signals"]
    observed = [(h["h_s"], h["move_bps"]) for h in rec["outcome"]["horizons"]
                if h["anchor"] == "arrival" and h["status"] == "observed"]
    got = duckdb.connect().execute(
        "SELECT h.h_s, h.move_bps FROM read_parquet(?, hive_partitioning = true), unnest(outcome.horizons) AS t(h) "
        "WHERE h.anchor = 'arrival' AND h.status = 'observed' ORDER BY h.h_s",
        [str(out / "intents" / "**" / "*.parquet")]).fetchall()
    assert got == observed
    card = scorecard(load_intents(out))
    h30 = next(h for h in card["horizons"] if h["h_s"] == 30)
    move30 = dict(observed)[30]
    assert h30["n"] == 1 and h30["hit_rate"] == (1.0 if move30 > 0 else 0.0)
    assert abs(h30["edge_bps"] - move30) < 1e-3


def test_horizons_survive_a_kill_9_and_those_passed_while_down_are_missing(tmp_path):
    """The engine as its own process on ``tapeshot sim``: an intent, its 1 s and 5 s horizons seen, kill -9,
    the 30 s one comes due while it is down, a restart: 1 s and 5 s are kept as they were, 30 s is missing
    (never guessed), 60 s is observed by the restarted engine."""
    port = free_port()
    sim = start(["sim", "--port", str(port), "--speed", "4"], "api secret")
    home = str(tmp_path)
    run_args = ["run", "--venue-url", f"http://127.0.0.1:{port}", "--home", home, "--console", "off"]
    engine = start(run_args, "tapeshot running")
    journal = tmp_path / "sim" / "journal.sqlite"

    def horizons(iid: str) -> dict[tuple[str, int], dict]:
        rows = Journal(journal).query("SELECT * FROM outcomes WHERE intent_id=?", (iid,))
        return {(r["anchor"], r["h_s"]): r for r in rows}

    def sim_time_ms() -> int:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/sim/status", timeout=5) as r:
            return orjson.loads(r.read())["exchange_time_ns"] // 1_000_000

    async def accepted() -> str:
        async for line in ControlClient(tmp_path / "control.sock").intent("long btc 0.01 5s max 8bps"):
            if line["kind"] == "submitted":
                return line["intent_id"]
        raise AssertionError("the intent was not accepted")

    try:
        iid = run(asyncio.wait_for(accepted(), 60))
        poll(lambda: horizons(iid).get(("arrival", 5), {}).get("status") == "observed", 30)
        before = horizons(iid)
        engine.send_signal(signal.SIGKILL)
        engine.wait(10)
        due30 = before[("arrival", 30)]["due_ms"]
        poll(lambda: sim_time_ms() > due30 + 1000, 30)
        engine = start(run_args, "tapeshot running")
        poll(lambda: horizons(iid)[("arrival", 60)]["status"] != "pending", 60)
        after = horizons(iid)
        for h in (1, 5):
            assert after[("arrival", h)] == before[("arrival", h)] and after[("arrival", h)]["status"] == "observed"
        assert after[("arrival", 30)]["status"] == "missing"
        assert after[("arrival", 30)]["reason"] == "engine down when it came due"
        assert after[("arrival", 60)]["status"] == "observed"
        print("across kill -9:", {k: (v["status"], v["reason"]) for k, v in sorted(after.items())})
        rec = next(r for r in export(journal)["intent"] if r["id"] == iid)
        got = {(h["anchor"], h["h_s"]): h["status"] for h in rec["outcome"]["horizons"]}
        assert got[("arrival", 30)] == "missing" and got[("arrival", 60)] == "observed"
    finally:
        stop_all(engine, sim)


def poll(pred, timeout: float) -> None:
    end = time.monotonic() + timeout
    while not pred():
        assert time.monotonic() < end, "timed out"
        time.sleep(0.05)
